"""Returns and advantage estimators on rollouts of shape (T, E): T steps of E envs.

Derived in ``notebooks/02_actor_critic.ipynb``. Conventions for every function here:

- ``terminated[t]``: the episode ended at step t in a terminal state; the future is worth 0.
- ``dones[t] = terminated[t] or truncated[t]``: the episode stopped at step t (a time limit counts),
  so sums must not run from step t into step t + 1, which belongs to another episode.
- ``next_values[t] = V(s_{t+1})`` of the true next observation, which is the *final* observation
  when the episode was truncated. It is used for the bootstrap after a truncation and after the
  last step of the rollout, and never after a termination.

    total return          G_0 = sum_k gamma^k r_k                                        (PG.2)
    reward-to-go          G_t = r_t + gamma G_{t+1}                                      (PG.3)
    TD residual           delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)   (GAE.1)
    n-step return         R^(n)_t = sum_{k<n} gamma^k r_{t+k} + gamma^n V(s_{t+n})       (AC.2)
    GAE(gamma, lambda)    A_t = delta_t + gamma lam (1 - dones_t) A_{t+1}                (GAE.2)
    lambda-return         R_hat_t = A_t + V(s_t)

lam = 0 gives A_t = delta_t (TD(0)); lam = 1 gives A_t = G_t - V(s_t) with the tail of a cut
episode bootstrapped by V (Monte Carlo with a baseline). Sums never cross a ``dones`` boundary.
"""
import numpy as np

from rlref.errors import ConfigError, require_float
from rlref.value import value_forward


def _check(rewards, *others, names=()):
    rewards = np.asarray(rewards, dtype=np.float64)
    if rewards.ndim != 2:
        raise ValueError(f"rewards must have shape (T, E), got {rewards.shape}")
    out = [rewards]
    for name, x in zip(names, others):
        x = np.asarray(x)
        if x.shape != rewards.shape:
            raise ValueError(f"{name} must have the shape of rewards {rewards.shape}, got {x.shape}")
        out.append(np.asarray(x, dtype=np.float64))
    return out


def discount_cumsum(x, gamma, dones, bootstrap=None):
    """y_t = x_t + gamma (1 - dones_t) y_{t+1}, backwards in time; y_T = bootstrap (default 0).

    The backbone of every estimator below: with x = rewards it is the reward-to-go (PG.3), with
    x = TD residuals and gamma * lam it is GAE (GAE.2).
    """
    gamma = require_float("gamma", gamma, low=0.0, high=1.0)
    x, dones = _check(x, dones, names=("dones",))
    y = np.zeros_like(x)                                   # (T, E)
    keep = gamma * (1.0 - dones)                           # (T, E) what carries over from t + 1
    running = np.zeros(x.shape[1]) if bootstrap is None else np.asarray(bootstrap, dtype=np.float64)
    for t in range(x.shape[0] - 1, -1, -1):
        running = x[t] + keep[t] * running
        y[t] = running
    return y


def reward_to_go(rewards, dones, gamma):
    """G_t = sum_{k >= 0} gamma^k r_{t+k} until the episode stops (PG.3); nothing bootstrapped."""
    return discount_cumsum(rewards, gamma, dones)


def total_return(rewards, dones, gamma):
    """G_0 of each step's episode, counted from the episode's first step inside the rollout (PG.2).

    Every step of an episode gets the same weight: its whole discounted return.
    """
    rewards, dones = _check(rewards, dones, names=("dones",))
    G = reward_to_go(rewards, dones, gamma)                # (T, E): G_t
    out = np.empty_like(G)
    first = G[0].copy()                                    # G_0 of the episode running at t = 0
    for t in range(G.shape[0]):
        if t > 0:
            first = np.where(dones[t - 1] > 0, G[t], first)   # a new episode starts at t
        out[t] = first
    return out


def td_residuals(rewards, values, next_values, terminated, gamma):
    """delta_t = r_t + gamma (1 - terminated_t) V(s_{t+1}) - V(s_t)  (GAE.1)."""
    gamma = require_float("gamma", gamma, low=0.0, high=1.0)
    rewards, values, next_values, terminated = _check(
        rewards, values, next_values, terminated, names=("values", "next_values", "terminated"))
    return rewards + gamma * (1.0 - terminated) * next_values - values


def n_step_returns(rewards, next_values, terminated, dones, gamma, n):
    """R^(n)_t: n rewards, then gamma^n V of the state reached (AC.2), all within one episode.

    Cut short by the end of the episode (after a termination nothing is added; after a truncation
    V(final observation) is) and by the end of the rollout (bootstrapped with next_values there).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"n must be an integer >= 1, got {n!r}")
    gamma = require_float("gamma", gamma, low=0.0, high=1.0)
    rewards, next_values, terminated, dones = _check(
        rewards, next_values, terminated, dones, names=("next_values", "terminated", "dones"))
    T = rewards.shape[0]
    R = np.zeros_like(rewards)
    for t in range(T):
        acc = np.zeros(rewards.shape[1])                   # sum so far, per env
        scale = np.ones(rewards.shape[1])                  # gamma^k, or 0 once the episode stopped
        for k in range(min(n, T - t)):
            acc += scale * rewards[t + k]
            last = (k == n - 1) | (t + k == T - 1) | (dones[t + k] > 0)
            # the bootstrap V(s_{t+k+1}) enters once, at the step where the n-step sum stops
            acc += np.where(last, scale * gamma * (1.0 - terminated[t + k]) * next_values[t + k], 0.0)
            scale = np.where(last, 0.0, scale * gamma)
        R[t] = acc
    return R


def gae(rewards, values, next_values, terminated, dones, gamma, lam):
    """A_hat, R_hat = gae(...): generalized advantage estimation (GAE.1), (GAE.2).

    Arrays (T, E). Returns the advantages A_hat and the lambda-returns R_hat = A_hat + values
    (the value function's regression target).
    """
    lam = require_float("lam", lam, low=0.0, high=1.0)
    delta = td_residuals(rewards, values, next_values, terminated, gamma)   # (T, E)   (GAE.1)
    A_hat = discount_cumsum(delta, gamma * lam, dones)                      # (T, E)   (GAE.2)
    return A_hat, A_hat + np.asarray(values, dtype=np.float64)


def standardize(A_hat):
    """(A_hat - mean) / (std + 1e-8): advantages with mean 0 and std 1 over the given samples.
    An implementation detail of OpenAI baselines' PPO and TRPO (the 1e-8 guards a constant batch)."""
    return (A_hat - A_hat.mean()) / (A_hat.std() + 1e-8)


def batch_samples(batch, value, gamma, lam=1.0, n=None):
    """The first step of every algorithm's update: V_phi on every observation of the rollout, the
    advantages and value targets, and the valid samples of the Batch as flat arrays.

    value: the value function's parameters, or None for no critic (V = 0, so that lam = 1 gives
    the plain reward-to-go G_t). n: None for GAE(gamma, lam) (GAE.2); an integer for the n-step
    advantage R^(n)_t - V(s_t) (AC.2). Returns a dict of (N, ...) arrays: obs, actions, logp_old
    (log pi_old at collection), A_hat, R_hat, and V_old (V_phi(s) before this update).
    """
    if value is None:
        values = np.zeros(batch.obs.shape[:2])                            # (T + 1, E)
    else:
        values = value_forward(value, batch.obs)                          # (T + 1, E)
    if n is None:
        A_hat, R_hat = gae(batch.rewards, values[:-1], values[1:], batch.terminated, batch.dones,
                           gamma, lam)                                    # (GAE.2)
    else:
        R_hat = n_step_returns(batch.rewards, values[1:], batch.terminated, batch.dones, gamma, n)
        A_hat = R_hat - values[:-1]                                       # (AC.2)
    samples_of = batch.samples_of                                         # (T, E, ...) -> (N, ...)
    return {"obs": samples_of(batch.obs[:-1]), "actions": samples_of(batch.actions),
            "logp_old": samples_of(batch.logp), "A_hat": samples_of(A_hat), "R_hat": samples_of(R_hat),
            "V_old": samples_of(values[:-1])}
