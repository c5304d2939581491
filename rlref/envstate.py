"""The state of a vector env as JSON, for resuming a run exactly where it stopped (no pickle).

Only gymnasium's classic-control envs are captured: their whole dynamic state is a few public
attributes (the physical ``state``, Pendulum's ``last_u``, CartPoleVectorEnv's ``steps`` and
``prev_done``), the env's generator, TimeLimit's step count and the vector env's autoreset flags.
Restoring those into freshly made envs makes the next ``step`` return exactly what the original
envs would have returned. For any other env ``capture`` returns None, and a resumed run restarts
its envs instead (rlref/run.py says so in the log).
"""
import gymnasium as gym
import numpy as np

CLASSIC = "gymnasium.envs.classic_control"
FIELDS = ("state", "last_u", "steps", "prev_done", "steps_beyond_terminated")


def capturable(envs):
    """True for gymnasium's classic-control envs (vectorized CartPole, or sync vectors of them)."""
    holders = _holders(envs)
    return holders is not None and all(type(h).__module__.startswith(CLASSIC) for h, _ in holders)


def capture(envs):
    """A JSON-able dict of everything that decides the envs' next steps, or None if not capturable."""
    if not capturable(envs):
        return None
    out = []
    for holder, limit in _holders(envs):
        fields = {k: _encode(getattr(holder, k)) for k in FIELDS if k in vars(holder)}
        out.append({"fields": fields, "rng": holder.np_random.bit_generator.state,
                    "elapsed": None if limit is None else int(limit._elapsed_steps)})
    autoreset = getattr(envs, "_autoreset_envs", None)
    return {"holders": out, "autoreset": None if autoreset is None else autoreset.tolist()}


def restore(envs, saved):
    """Put a state from `capture` into envs made (and reset) the same way."""
    holders = _holders(envs)
    if holders is None or len(holders) != len(saved["holders"]):
        raise ValueError(f"the saved env state has {len(saved['holders'])} parts, these envs "
                         f"{0 if holders is None else len(holders)}")
    for (holder, limit), part in zip(holders, saved["holders"]):
        for key, value in part["fields"].items():
            setattr(holder, key, _decode(value))
        holder.np_random.bit_generator.state = part["rng"]
        if limit is not None:
            limit._elapsed_steps = part["elapsed"]
    if saved["autoreset"] is not None:
        envs._autoreset_envs = np.array(saved["autoreset"], dtype=bool)


def _holders(envs):
    """[(object holding the dynamic state, its TimeLimit wrapper or None)], or None if unknown."""
    if isinstance(envs, gym.vector.SyncVectorEnv):
        return [(env.unwrapped, _time_limit(env)) for env in envs.envs]
    if type(envs).__module__.startswith(CLASSIC) and hasattr(envs, "state"):   # e.g. CartPoleVectorEnv
        return [(envs, None)]                                   # counts its own steps
    return None


def _time_limit(env):
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def _encode(value):
    if isinstance(value, (np.ndarray, np.generic)):
        return {"dtype": value.dtype.str, "shape": list(np.shape(value)), "data": np.ravel(value).tolist()}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    return value                                                # None, bool, int, float


def _decode(value):
    if isinstance(value, dict) and "dtype" in value:
        array = np.array(value["data"], dtype=np.dtype(value["dtype"])).reshape(value["shape"])
        return array if value["shape"] else array[()]
    if isinstance(value, dict) and "tuple" in value:
        return tuple(_decode(v) for v in value["tuple"])
    return value
