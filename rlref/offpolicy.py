"""Off-policy data and trust regions on the exact tabular MDPs of rlref/mdp.py.

Used by notebooks/04_trpo.ipynb. theta_old is the policy that collected the episodes (the
behaviour policy), theta the policy being evaluated or improved.

   J_H(theta) = E[sum_{t < H} gamma^t r_t]:  V_0 = 0,  V_h = r_pi + gamma P_pi V_{h-1}      (MDP.13)
   with rho_t = pi_theta(a_t|s_t) / pi_old(a_t|s_t) and w_{0:t} = prod_{t' <= t} rho_t' (the
   trajectory ratio of (OFF.2), cut after step t), the importance-sampled returns
   whole-episode IS:  J_hat = w_{0:T-1} sum_t gamma^t r_t
   per-decision IS:   J_hat = sum_t gamma^t r_t w_{0:t}     (causality: r_t ignores rho_t', t' > t)  (MDP.15)
   L_old(theta) = J(theta_old) + sum_s d_old(s) sum_a pi_theta(a|s) A_old(s, a), the surrogate of
   the bound (OFF.5): the policy's improvement (OFF.4) with the old visitation d_old
   M(theta) = L_old(theta) - C max_s KL(pi_old(.|s) || pi_theta(.|s)),
              C = 4 eps gamma / (1 - gamma)^2,  eps = max_{s,a} |A_old(s, a)|                 (MDP.17)
Both estimators of (MDP.15) are unbiased for J_H(theta) when pi_old > 0 wherever pi_theta > 0.
(MDP.17) is the lower bound of Schulman et al. (2015), Theorem 1 with D_TV^2 <= D_KL: J >= M
everywhere, with equality at theta_old, so maximizing M never lowers J (minorize-maximize).
"""
import numpy as np

from rlref.distributions import Categorical
from rlref.errors import ConfigError, require_int
from rlref.mdp import (Episodes, _check_episodes, _check_theta, discounted_returns, discounted_visitation, exact_values,
                       policy_transitions, softmax_policy)


def exact_J_horizon(mdp, theta, horizon):
    """J_H (MDP.13): the expected discounted return of episodes cut after `horizon` steps."""
    P_pi, r_pi = policy_transitions(mdp, softmax_policy(_check_theta(mdp, theta)))
    H = require_int("horizon", horizon, low=0)
    V = np.zeros(mdp.n_states)                                            # (S,) V_0
    for _ in range(H):
        V = r_pi + mdp.gamma * P_pi @ V                                   # (MDP.13)
    return float(mdp.mu0 @ V)


def truncate_episodes(episodes, horizon):
    """The first `horizon` steps of every episode, as Episodes (a sample of the cut process)."""
    H = require_int("horizon", horizon, low=1)
    keep = episodes.t < H                                                 # (N,)
    return Episodes(episodes.states[keep], episodes.actions[keep], episodes.rewards[keep],
                    episodes.episode[keep], episodes.t[keep], np.minimum(episodes.lengths, H))


def importance_weights(mdp, theta_old, theta, episodes):
    """w_{0:t} of (MDP.15) for every step, shape (N,): the product of the ratios up to and including t."""
    _check_episodes(mdp, episodes)
    logp = np.log(softmax_policy(_check_theta(mdp, theta)))               # (S, A)
    logp_old = np.log(softmax_policy(_check_theta(mdp, theta_old)))       # (S, A)
    log_rho = (logp - logp_old)[episodes.states, episodes.actions]        # (N,) log rho_t
    cum = np.cumsum(log_rho)                                              # (N,) over all steps
    before = (cum - log_rho)[episodes.starts][episodes.episode]           # (N,) sum before episode start
    return np.exp(cum - before)                                           # (N,) w_{0:t}


def is_return_estimates(mdp, theta_old, theta, episodes, per_decision):
    """One estimate of J(theta) per episode of theta_old (MDP.15), shape (K,).

    per_decision=False weighs the whole discounted return by the whole episode's weight;
    per_decision=True weighs each reward by the weight of the actions before and at it."""
    w = importance_weights(mdp, theta_old, theta, episodes)               # (N,) w_{0:t}
    K = len(episodes)
    if per_decision:
        terms = w * mdp.gamma ** episodes.t * episodes.rewards            # (N,) gamma^t r_t w_{0:t}
        return np.bincount(episodes.episode, weights=terms, minlength=K)
    last = episodes.starts + episodes.lengths - 1                         # (K,) final step of each episode
    return w[last] * discounted_returns(episodes, mdp.gamma)              # (K,) w_{0:T-1} G_0


def surrogate_exact(mdp, theta_old, theta):
    """L_old(theta) of (OFF.5): old visitation and advantages, new action probabilities."""
    probs_old = softmax_policy(_check_theta(mdp, theta_old))              # (S, A)
    V_old, Q_old = exact_values(mdp, probs_old)
    d_old = discounted_visitation(mdp, probs_old)                         # (S,)
    probs = softmax_policy(_check_theta(mdp, theta))                      # (S, A)
    return float(mdp.mu0 @ V_old + d_old @ (probs * (Q_old - V_old[:, None])).sum(axis=1))


def max_state_kl(mdp, theta_old, theta):
    """max_s KL(pi_old(.|s) || pi_theta(.|s)), the D_KL^max of (MDP.17)."""
    old = Categorical(_check_theta(mdp, theta_old))
    return float(old.kl(Categorical(_check_theta(mdp, theta))).max())


def mm_lower_bound(mdp, theta_old, theta):
    """M(theta) and C of (MDP.17): a lower bound of J(theta) that equals J at theta_old."""
    if not mdp.gamma < 1.0:
        raise ConfigError(f"mm_lower_bound needs gamma < 1 (C grows like 1/(1 - gamma)^2), got {mdp.gamma}")
    probs_old = softmax_policy(_check_theta(mdp, theta_old))
    V_old, Q_old = exact_values(mdp, probs_old)
    eps = float(np.abs(Q_old - V_old[:, None]).max())                     # max |A_old|
    C = 4.0 * eps * mdp.gamma / (1.0 - mdp.gamma) ** 2
    return surrogate_exact(mdp, theta_old, theta) - C * max_state_kl(mdp, theta_old, theta), C
