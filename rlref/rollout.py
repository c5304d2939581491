"""Collecting experience from gymnasium 1.x vector envs.

Next-step autoreset (gymnasium's default): when sub-env e ends its episode at step t, the
observation returned at t is the episode's *final* observation; the call at t + 1 ignores the
action, resets e and returns the first observation of a new episode with reward 0. That step is not
a transition: it is stored (to keep arrays rectangular, (T, E)) but marked ``valid[t + 1] = False``,
given zero reward and no done flag, and every loss ignores it.

A useful consequence: the observation stored at slot t + 1 is the true next state of slot t in
every case (the final observation after a done), so V(s_{t+1}) = V(obs[t + 1]) and a truncated
episode bootstraps from its real final observation without any special case. ``obs`` therefore
has T + 1 rows: the last is the observation after the rollout.

Actions: ``Categorical`` for Discrete; ``DiagGaussian`` for a 1-D Box, sampled unclipped (the log
probability is of the sampled action) and clipped to the bounds only when sent to the env.

Optional normalization (rlref/normalize.py) belongs to data collection: the Collector owns the
running statistics, updates them with every step, and stores *normalized* observations and
*scaled* rewards in the Batch; finished episodes' returns are always the env's raw returns.

A Collector is started on freshly reset envs (``start``) or put back as a checkpoint saved it
(``restore``, for --resume); ``collect`` advances it by one rollout and returns the Batch.
"""
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np

from rlref.config import TrainConfig
from rlref.envs import spaces_of
from rlref.errors import ConfigError, NonFiniteError
from rlref.normalize import rms_init, rms_normalize, rms_update, scale_rewards
from rlref.policy import policy_forward

# NOTE on checks: observations and rewards enter rlref here, so this is where they are checked
# (finite, float64); the policy's forward pass inside the loop then runs with check=False.

CARRIED = ("obs", "autoreset", "ep_return", "ep_length", "disc_return")   # Collector.carried()


@dataclass
class Collector:
    """What persists between rollouts: the envs, the current observation, who resets next, the
    running return and length of each env's unfinished episode, and normalization statistics."""
    envs: gym.vector.VectorEnv
    obs: np.ndarray                                 # (E, D) current observation, as the policy sees it
    autoreset: np.ndarray                           # (E,) the next step of env e is a reset
    ep_return: np.ndarray                           # (E,) undiscounted raw return so far
    ep_length: np.ndarray                           # (E,)
    bounds: tuple = None                            # Box action bounds (low, high), or None
    transitions: int = 0                            # valid transitions collected so far
    calls: int = 0                                  # calls to envs.step since the reset
    obs_rms: dict = None                            # observation statistics (NORM.1), or None
    obs_clip: float = 10.0                          # (NORM.2)
    ret_rms: dict = None                            # statistics of the discounted return (NORM.3)
    disc_return: np.ndarray = None                  # (E,) running discounted return R_t
    gamma: float = 0.99                             # discount of R_t

    def stats(self):
        """The running statistics in use: {"obs_rms": ..., "ret_rms": ...}, each only if kept."""
        return {name: getattr(self, name) for name in ("obs_rms", "ret_rms") if getattr(self, name) is not None}

    def carried(self):
        """The per-env arrays one rollout hands to the next: {name: (E, ...) array} (CARRIED)."""
        return {name: getattr(self, name) for name in CARRIED if getattr(self, name) is not None}


def start(envs, seed, config=None, stats=None):
    """Reset every env (seeded) and return a new Collector, normalizing as config says
    (normalize_obs, scale_reward, gamma, obs_clip; None: no normalization). Refuses autoreset modes
    other than next-step.

    stats: {"obs_rms": ..., "ret_rms": ...} to continue from (e.g. a new set of episodes).
    """
    mode = envs.metadata.get("autoreset_mode", gym.vector.AutoresetMode.NEXT_STEP)
    if mode != gym.vector.AutoresetMode.NEXT_STEP:
        raise ConfigError(f"autoreset mode must be NEXT_STEP (gymnasium's default), got {mode}; "
                          f"make the vector env without an autoreset_mode argument")
    spaces = spaces_of(envs)                                  # an unsupported space fails before a reset
    raw, _ = envs.reset(seed=int(seed))
    return _collector(envs, spaces, config, stats, raw_obs=_finite_obs(raw, step=0, what="reset observation"))


def restore(envs, config, stats, carried, transitions, calls):
    """The Collector a checkpoint saved: its stats(), carried() arrays and counters, on envs that
    are already back in their saved state (rlref/envstate.py): nothing is reset."""
    return _collector(envs, spaces_of(envs), config, stats, carried=carried, transitions=transitions, calls=calls)


def _collector(envs, spaces, config, stats, raw_obs=None, carried=None, transitions=0, calls=0):
    """The one place a Collector is made: fresh counters and the statistics config asks for (stats
    continued where given), then the carried arrays, or the first observation raw_obs (E, D)."""
    config = config if config is not None else TrainConfig()
    E, stats = envs.num_envs, stats or {}
    collector = Collector(envs, None, np.zeros(E, bool), np.zeros(E), np.zeros(E, np.int64), spaces.bounds,
                          transitions, calls, obs_clip=config.obs_clip, gamma=config.gamma)
    if config.normalize_obs:
        collector.obs_rms = stats.get("obs_rms") or rms_init(spaces.obs_dim)
    if config.scale_reward:
        collector.ret_rms, collector.disc_return = stats.get("ret_rms") or rms_init(1), np.zeros(E)
    if carried is None:
        collector.obs, collector.obs_rms = _observe(collector.obs_rms, raw_obs, collector.obs_clip)
    for name, value in (carried or {}).items():
        setattr(collector, name, np.array(value))
    return collector


def _observe(obs_rms, raw, obs_clip):
    """(what the policy sees of a raw observation (E, D), the new statistics): raw itself, or
    normalized (NORM.2) after merging raw into the running statistics obs_rms."""
    if obs_rms is None:
        return raw, None
    obs_rms = rms_update(obs_rms, raw)
    return rms_normalize(obs_rms, raw, obs_clip), obs_rms


def _finite_obs(obs, step, what="observation"):
    obs = np.array(obs, dtype=np.float64)                     # a copy: the env may reuse its buffer
    if not np.isfinite(obs).all():
        e = int(np.argwhere(~np.isfinite(obs))[0][0])
        raise NonFiniteError(f"env {e} returned a non-finite {what} at step {step} (counting calls "
                             f"to step since the first reset): {obs[e]}; only finite values are allowed")
    return obs


@dataclass
class Batch:
    """T steps of E envs. obs has T + 1 rows (the last is the observation after the rollout)."""
    obs: np.ndarray                 # (T + 1, E, D)
    actions: np.ndarray             # (T, E) int, or (T, E, A) float (unclipped samples)
    logp: np.ndarray                # (T, E) log pi_old(a_t | s_t) at collection time
    rewards: np.ndarray             # (T, E)
    terminated: np.ndarray          # (T, E) float 0/1
    truncated: np.ndarray           # (T, E) float 0/1
    valid: np.ndarray               # (T, E) bool: a real transition (not an autoreset step)
    episode_returns: list = field(default_factory=list)   # finished episodes, in order
    episode_lengths: list = field(default_factory=list)

    @property
    def dones(self):
        return np.maximum(self.terminated, self.truncated)

    def samples_of(self, x):
        """The valid entries of a (T, E, ...) array as one (N, ...) batch of samples."""
        return x[self.valid]


def collect(collector, params, T, rng, stop_when_all_done=False):
    """Run the policy `params` for T steps in every env. Returns a Batch (the Collector advances).

    The loop only steps the envs and records; validity, done flags and episode statistics are
    derived afterwards for the whole rollout at once.

    stop_when_all_done: stop early once every env has finished an episode that started inside
    this rollout, and mark everything after each env's first episode as not valid (REINFORCE's
    "sample E whole episodes"; the caller resets the envs first).
    """
    envs, E = collector.envs, collector.envs.num_envs
    obs = np.empty((T + 1, E, collector.obs.shape[1]))
    raw_rewards, term, trunc = np.zeros((T, E)), np.zeros((T, E), bool), np.zeros((T, E), bool)
    actions, logps = [], np.zeros((T, E))
    first_reset = collector.autoreset                         # (E,) step 0 of env e is a reset
    finished = np.zeros(E, bool)                              # for stop_when_all_done
    for t in range(T):
        obs[t] = collector.obs
        dist, _ = policy_forward(params, collector.obs, check=False)
        a = dist.sample(rng)                                  # (E,) or (E, A)
        logps[t] = dist.logp(a, check=False)
        actions.append(a)
        next_obs, raw_rewards[t], term[t], trunc[t], _ = envs.step(
            a if collector.bounds is None else a.clip(*collector.bounds))
        collector.calls += 1
        collector.obs, collector.obs_rms = _observe(collector.obs_rms, _finite_obs(next_obs, collector.calls),
                                                    collector.obs_clip)
        if stop_when_all_done:                                # an episode begun here has ended
            finished |= ~(first_reset if t == 0 else term[t - 1] | trunc[t - 1]) & (term[t] | trunc[t])
            if finished.all():
                T = t + 1
                break
    obs[T] = collector.obs
    raw_rewards, term, trunc = raw_rewards[:T], term[:T], trunc[:T]
    _check_rewards(raw_rewards, collector.calls - T)
    valid = _valid(first_reset, term | trunc, stop_when_all_done)
    raw_rewards = np.where(valid, raw_rewards, 0.0)           # an autoreset step has no reward
    terminated, truncated = valid & term, valid & trunc
    collector.autoreset = term[-1] | trunc[-1]
    collector.transitions += int(valid.sum())
    returns, lengths, collector.ep_return, collector.ep_length = _finished_episodes(
        collector.ep_return, collector.ep_length, raw_rewards, valid, terminated | truncated)
    rewards = raw_rewards
    if collector.ret_rms is not None:
        rewards, collector.disc_return, collector.ret_rms = _scaled(
            collector.ret_rms, collector.disc_return, raw_rewards, valid, terminated | truncated, collector.gamma)
    return Batch(obs[:T + 1], np.stack(actions), logps[:T], rewards, terminated.astype(np.float64),
                 truncated.astype(np.float64), valid, returns, lengths)


def _valid(first_reset, ended, first_episode_only=False):
    """valid[t] = the step is a transition: not the autoreset step right after an episode's end
    (and, for first_episode_only, not after the env's first finished episode)."""
    valid = ~np.vstack([first_reset[None], ended[:-1]])       # (T, E)
    if first_episode_only:
        done = valid & ended
        valid &= np.cumsum(done, axis=0) - done == 0          # no earlier finished episode
    return valid


def _check_rewards(rewards, first_call):
    if not np.isfinite(rewards).all():
        t, e = np.argwhere(~np.isfinite(rewards))[0]
        raise NonFiniteError(f"env {e} returned a non-finite reward {rewards[t, e]} at step {first_call + t + 1} "
                             f"(counting calls to step since the first reset); only finite values are allowed")


def _finished_episodes(ep_return, ep_length, rewards, valid, dones):
    """Returns and lengths of the episodes that ended in this rollout (in order of their last
    step, then env), and the return and length (E,) of each env's unfinished episode so far;
    ep_return and ep_length are those at the start of the rollout."""
    cum_r = ep_return + np.cumsum(rewards, axis=0)                # (T, E) return since episode start
    cum_n = ep_length + np.cumsum(valid, axis=0)                  # (T, E)
    returns, lengths = [], []
    base_r, base_n = np.zeros(rewards.shape[1]), np.zeros(rewards.shape[1], np.int64)
    for t, e in np.argwhere(dones):                               # row-major: by step, then env
        returns.append(float(cum_r[t, e] - base_r[e]))
        lengths.append(int(cum_n[t, e] - base_n[e]))
        base_r[e], base_n[e] = cum_r[t, e], cum_n[t, e]
    return returns, lengths, cum_r[-1] - base_r, cum_n[-1] - base_n


def _scaled(ret_rms, disc_return, rewards, valid, dones, gamma):
    """Rewards (T, E) divided by the running std of the discounted return (NORM.3), step by step
    and valid steps only. Returns (scaled rewards, new disc_return (E,), new ret_rms)."""
    out, disc_return = np.zeros_like(rewards), disc_return.copy()
    for t in range(rewards.shape[0]):
        v = valid[t]
        if v.all():                                               # the common case, without masks
            out[t], disc_return, ret_rms = scale_rewards(ret_rms, disc_return, rewards[t], dones[t], gamma)
        elif v.any():
            out[t, v], disc_return[v], ret_rms = scale_rewards(ret_rms, disc_return[v], rewards[t, v],
                                                               dones[t, v], gamma)
    return out, disc_return, ret_rms
