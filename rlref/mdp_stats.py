"""Statistics of episodes sampled from a tabular MDP (rlref.mdp): the tools with which notebooks 01
and 02 test claims such as "this estimator is unbiased" against the exact gradient.

Shapes: S states, A actions, N steps (all episodes back to back), n_ep episodes.

- ``weighted_score_sums(probs, episodes, c)``: per episode, sum_t c_t score_t with the tabular
  score (MDP.7), for any weights c_t, one per step. With c_t = gamma^t G_t it is the reward-to-go
  estimate (MDP.10) of ``rlref.mdp.reinforce_estimates``.
- ``hotelling(estimates, target)``: Hotelling's statistic n_ep (mean - target)^T C^-1 (mean - target)
  over the S (A - 1) free coordinates of n_ep estimates (n_ep, S, A), with C their sample covariance,
  and its chi-square tail. Every row of a tabular score sums to zero over the actions, so the last
  action column is minus the sum of the others and is dropped (C would be singular with it).
- ``chi2_tail_even(x, df)``: Pr(chi2(df) > x) for even df, exact and elementary:
  Pr(chi2_{2m} > x) = e^{-x/2} sum_{j<m} (x/2)^j / j!.
"""
import math

import numpy as np

from rlref.errors import ConfigError


def weighted_score_sums(probs, episodes, c):
    """sum_t c_t score_t for every episode, shape (n_ep, S, A); probs (S, A) is the policy that
    sampled the episodes and c (N,) has one weight per step. score_t is onehot(a_t) - pi(.|s_t) in
    row s_t (MDP.7)."""
    c = np.asarray(c, dtype=float)
    if c.shape != episodes.states.shape:
        raise ConfigError(f"c must have one weight per step, shape {episodes.states.shape}, got {c.shape}")
    S, A = probs.shape
    out = np.zeros((len(episodes), S, A))
    np.add.at(out, (episodes.episode, episodes.states, episodes.actions), c)                  # onehot(a_t)
    np.add.at(out, (episodes.episode, episodes.states), -c[:, None] * probs[episodes.states])  # -pi(.|s_t)
    return out


def chi2_tail_even(x, df):
    """Pr(chi2(df) > x), exact for an even number of degrees of freedom df."""
    if df < 2 or df % 2:
        raise ConfigError(f"df must be an even number >= 2, got {df}")
    return math.exp(-x / 2) * sum((x / 2) ** j / math.factorial(j) for j in range(df // 2))


def hotelling(estimates, target):
    """(statistic, degrees of freedom, p) of the test "the mean of estimates (n_ep, S, A) is target"."""
    diff = np.asarray(estimates) - target                                # (n_ep, S, A)
    if np.abs(diff.sum(axis=2)).max() > 1e-9:
        raise ConfigError("the rows of estimates - target must sum to 0 over the actions (tabular scores)")
    X = diff[:, :, :-1].reshape(len(diff), -1)                           # (n_ep, S (A - 1)) free coordinates
    m, C = X.mean(axis=0), np.cov(X, rowvar=False)
    stat = len(X) * float(m @ np.linalg.solve(C, m))
    return stat, X.shape[1], chi2_tail_even(stat, X.shape[1])
