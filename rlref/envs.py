"""The environments a run trains on: gymnasium vector envs, what their spaces mean for the policy,
and when an env counts as solved.

``make_envs`` is the one place rlref makes training and evaluation envs; ``spaces_of`` turns their
spaces into the policy's dimensions (or refuses a space rlref does not handle, with a hint).
"""
import difflib
import importlib
from typing import NamedTuple

import gymnasium as gym
import numpy as np

from rlref.errors import ConfigError, MissingDependencyError, UnsupportedSpaceError

SOLVED = {"Pendulum-v1": -200.0}          # envs whose spec has no reward_threshold (the peer's value)

# What the optional envs need, by the package their entry point lives in (requirements-envs.txt).
EXTRAS = {"mujoco": "MuJoCo (gymnasium[mujoco])", "box2d": "Box2D (gymnasium[box2d])",
          "classic_control": "pygame (gymnasium[classic-control]) to be drawn"}


class DropInfo(gym.Wrapper):
    """Returns an empty info dict: rlref reads none of it, and SyncVectorEnv would otherwise merge
    each env's info (MuJoCo's has six entries) into arrays on every step."""

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)[0], {}

    def step(self, action):
        return *self.env.step(action)[:4], {}


def env_spec(env_id):
    """The gymnasium EnvSpec of env_id, a registered id ("CartPole-v1") or gymnasium's "module:Env-v0"
    (the module is imported first: that registers the env, as gym.make("module:Env-v0") does).
    ConfigError in one line for an id gymnasium does not know, with its "did you mean"."""
    if not isinstance(env_id, str) or not env_id.strip():
        raise ConfigError(f"env must be a gymnasium id such as CartPole-v1, got {env_id!r}")
    module, _, name = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"env {env_id}: the module {module} that should register {name} cannot be "
                              f"imported ({err}); a custom env is given as module:Env-v0 where "
                              f"`import module` registers Env-v0 (gymnasium.register)") from None
    try:
        return gym.spec(name)
    except gym.error.Error as err:
        said = " ".join(str(err).split())              # gymnasium's own words, with its "Did you mean"
        lower = {known.lower(): known for known in gym.registry}
        close = [lower[m] for m in difflib.get_close_matches(name.lower(), list(lower), n=1)]
        if "did you mean" not in said.lower() and close:     # gymnasium has none for a missing version
            said = said.rstrip(". ") + f". Did you mean {close[0]}?"
        raise ConfigError(f"unknown env {env_id}: gymnasium says: {said} (the registered ids: "
                          f"python -c 'import gymnasium; gymnasium.pprint_registry()'; a custom env: "
                          f"module:Env-v0)") from None


def make_envs(env_id, num_envs, render_mode=None):
    """E copies of env_id: the env's own NumPy-vectorized form where it has one, else "sync".

    NOTE (speed): a sync vector env is made with copy=False (it then returns its own observation
    buffer, not a deep copy: the collector copies what it keeps) and without info dicts (DropInfo);
    with the clip changes they made a Hopper-v5 run about 7 % faster."""
    spec = env_spec(env_id)
    render = {"render_mode": render_mode} if render_mode else {}
    try:
        if spec.vector_entry_point is not None:
            return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **render)
        return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync", vector_kwargs={"copy": False},
                            wrappers=[DropInfo], **render)
    except gym.error.DependencyNotInstalled as err:
        raise missing_dependency(env_id, err) from None


def missing_dependency(env_id, err):
    """MissingDependencyError saying what env_id needs and how to install it."""
    entry = str(env_spec(env_id).entry_point)
    need = next((what for key, what in EXTRAS.items() if f".{key}." in entry), "an optional package")
    return MissingDependencyError(f"{env_id} needs {need}, which is not installed: pip install -r "
                                  f"requirements-envs.txt (MuJoCo, Box2D and pygame for rendering); "
                                  f"gymnasium says: {err}")


class Spaces(NamedTuple):
    """What the policy needs to know of an env: D, A, which distribution, and the action bounds."""
    obs_dim: int                    # D
    act_dim: int                    # A: the number of actions (Discrete) or the action's size (Box)
    gaussian: bool                  # DiagGaussian for a Box, Categorical for Discrete
    bounds: tuple = None            # (low (A,), high (A,)) a Box action is clipped to; None for Discrete


def spaces_of(envs):
    """The Spaces of a vector env; UnsupportedSpaceError for a space rlref does not handle."""
    obs_space, act_space = envs.single_observation_space, envs.single_action_space
    if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
        raise UnsupportedSpaceError(
            f"observation space must be a 1-D Box, got {obs_space}; flatten it first, e.g. "
            f"gym.wrappers.FlattenObservation (images need a convolutional network rlref does not have)")
    if isinstance(act_space, gym.spaces.Discrete):
        if act_space.start != 0:
            raise UnsupportedSpaceError(f"Discrete action spaces must start at 0, got start={act_space.start}")
        return Spaces(obs_space.shape[0], int(act_space.n), False, None)
    if isinstance(act_space, gym.spaces.Box) and len(act_space.shape) == 1:
        low, high = act_space.low.astype(np.float64), act_space.high.astype(np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise UnsupportedSpaceError(f"Box action bounds must be finite so that actions can be "
                                        f"clipped to them, got low={low}, high={high}")
        return Spaces(obs_space.shape[0], act_space.shape[0], True, (low, high))
    raise UnsupportedSpaceError(
        f"action space must be Discrete or a 1-D Box, got {act_space}; for MultiDiscrete, Dict or "
        f"Tuple spaces, wrap the env to expose one of those (e.g. gym.wrappers.FlattenObservation "
        f"handles observations only)")


def solved_threshold(env_id):
    """The return_mean at which env_id counts as solved: its spec's reward_threshold, or SOLVED's."""
    return SOLVED.get(env_id, env_spec(env_id).reward_threshold)


def episode_limit(env_id):
    """The env's time limit in steps (1000 when it has none): the longest whole episode."""
    return env_spec(env_id).max_episode_steps or 1000
