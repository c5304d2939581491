"""Grading tests of the homework exercises in the algorithms (the marker names the exercise).

As in test_exercises_core.py: each exercise at its own level where it can be (the PPO loss's
derivative in the logits, without backprop), against finite differences or formulas written here;
the Fisher tests build J^T M J from a finite-difference Jacobian of the network's output, so they
use no exercise's code besides the one graded and its declared dependencies.
"""
import numpy as np
import pytest

from rlref.algos import a2c, npg, ppo, reinforce
from rlref.distributions import Categorical
from rlref.gradcheck import check_grad, numerical_grad, numerical_jacobian
from rlref.nn import flatten, init_mlp, mlp_forward, unflatten
from rlref.policy import fisher_vector_product, init_policy

exercise = pytest.mark.exercise


def _policy(rng, gaussian, N=6, sizes=(3, 4, 2)):
    params = init_policy(list(sizes), rng, gaussian=gaussian, out_gain=1.0)
    if gaussian:
        params["log_std"] = 0.3 * rng.standard_normal(sizes[-1])
    obs = rng.standard_normal((N, sizes[0]))
    actions = rng.standard_normal((N, sizes[-1])) if gaussian else rng.integers(sizes[-1], size=N)
    return params, obs, actions


def _logp(params, obs, actions):
    """log pi(a|s) per sample, written here from the network's output (no rlref distribution)."""
    out = mlp_forward(params, obs)[0]
    if "log_std" in params:
        s = params["log_std"]
        return np.sum(-0.5 * ((actions - out) / np.exp(s)) ** 2 - s - 0.5 * np.log(2 * np.pi), axis=1)
    z = out - out.max(axis=1, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(len(actions)), actions]


@exercise("PG.4")
@pytest.mark.parametrize("gaussian", [False, True])
def test_reinforce_loss_and_gradient(rng, gaussian):
    policy, obs, actions = _policy(rng, gaussian)
    w = rng.standard_normal(len(obs))
    loss = lambda p: -np.mean(_logp(p, obs, actions) * w)
    assert abs(reinforce.loss_and_grad(policy, obs, actions, w)[0] - loss(policy)) < 1e-12, "the value of L (PG.4)"
    check_grad(loss, lambda p: reinforce.loss_and_grad(p, obs, actions, w)[1], policy)


@exercise("AC.3")
def test_a2c_loss_and_gradients(rng):
    policy, obs, actions = _policy(rng, False)
    value = init_mlp([3, 4, 1], rng)
    A_hat, R_hat = rng.standard_normal(len(obs)), rng.standard_normal(len(obs))
    config = a2c.Config(ent_coef=0.3, vf_coef=0.7)

    def loss(p, v):
        z = mlp_forward(p, obs)[0]
        logp_all = z - z.max(axis=1, keepdims=True)
        logp_all = logp_all - np.log(np.exp(logp_all).sum(axis=1, keepdims=True))
        H = -np.sum(np.exp(logp_all) * logp_all, axis=1)
        V = mlp_forward(v, obs)[0][:, 0]
        return (-np.mean(logp_all[np.arange(len(actions)), actions] * A_hat) - 0.3 * H.mean()
                + 0.7 * np.mean((V - R_hat) ** 2))
    got = a2c.loss_and_grad(policy, value, obs, actions, A_hat, R_hat, config)
    assert abs(got[0] - loss(policy, value)) < 1e-12, "the value of L (AC.3)"
    check_grad(lambda p: loss(p, value), lambda p: a2c.loss_and_grad(p, value, obs, actions, A_hat, R_hat, config)[1][0],
               policy)
    check_grad(lambda v: loss(policy, v), lambda v: a2c.loss_and_grad(policy, v, obs, actions, A_hat, R_hat, config)[1][1],
               value)


def _fisher_by_hand(policy, obs):
    """F = (1/N) sum_i J_i^T M_i J_i: J_i by central differences of the network's output, M_i from
    the distribution's formula (diag(p) - p p^T, or diag(1/sigma^2, 2) in (mean, log_std))."""
    theta = flatten(policy)
    N = obs.shape[0]
    out = lambda t: mlp_forward(unflatten(t, policy), obs)[0].ravel()
    J = numerical_jacobian(out, theta.copy()).reshape(N, -1, theta.size)          # (N, A, P)
    F = np.zeros((theta.size, theta.size))
    if "log_std" not in policy:
        z = mlp_forward(policy, obs)[0]
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        for i in range(N):
            F += J[i].T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ J[i] / N
        return F
    sigma2 = np.exp(2 * policy["log_std"])
    A = len(sigma2)
    s0 = theta.size - A                                                          # log_std is last in flatten
    for i in range(N):
        F += J[i].T @ np.diag(1 / sigma2) @ J[i] / N
    F[s0:, s0:] += 2.0 * np.eye(A)
    return F


@exercise("NPG.3")
@pytest.mark.parametrize("gaussian", [False, True])
def test_exact_fisher_factor(rng, gaussian):
    policy, obs, actions = _policy(rng, gaussian)
    Z = npg.fisher_factor(policy, obs, "exact")
    assert np.abs(Z.T @ Z - _fisher_by_hand(policy, obs)).max() < 1e-7, "Z^T Z differs from J^T M J (NPG.3)"
    if not gaussian:
        Z_emp = npg.fisher_factor(policy, obs, "empirical", actions)
        rows = np.stack([numerical_grad(lambda t: _logp(unflatten(t, policy), obs[i:i + 1], actions[i:i + 1])[0],
                                        flatten(policy)) for i in range(len(obs))])
        assert np.abs(Z_emp.T @ Z_emp - rows.T @ rows / len(obs)).max() < 1e-7, "empirical Fisher (NPG.4)"


@exercise("TRPO.6")
@pytest.mark.parametrize("gaussian", [False, True])
def test_fisher_vector_product(rng, gaussian):
    policy, obs, _ = _policy(rng, gaussian)
    F = _fisher_by_hand(policy, obs)
    fvp = fisher_vector_product(policy, obs, damping=0.1)
    for _ in range(3):
        v = rng.standard_normal(F.shape[0])
        assert np.abs(fvp(v) - (F @ v + 0.1 * v)).max() < 1e-7, "F v + damping v differs from J^T M J v"


def _ppo_case(rng, objective):
    z_old = rng.standard_normal((12, 3))
    actions = rng.integers(3, size=12)
    dist_old = Categorical(z_old)
    logp_old = dist_old.logp(actions)
    for _ in range(100):                                   # ratios at least 1e-3 away from 1 +- eps
        z = z_old + 0.4 * rng.standard_normal(z_old.shape)
        ratio = np.exp(Categorical(z).logp(actions) - logp_old)
        if np.min(np.abs(ratio[:, None] - [0.8, 1.2])) > 1e-3:
            break
    A_hat = rng.standard_normal(12)
    config = ppo.Config(objective=objective, ent_coef=0.05, clip_eps=0.2, kl_target=1e-3, hinge_coef=10.0)
    return z, dist_old, actions, logp_old, A_hat, config


def _ppo_loss_by_hand(z, z_old, actions, A_hat, config, beta):
    lp = lambda z_: z_ - z_.max(axis=1, keepdims=True) - np.log(np.exp(z_ - z_.max(axis=1, keepdims=True)).sum(
        axis=1, keepdims=True))
    logp, logp_old = lp(z), lp(z_old)
    idx = (np.arange(len(actions)), actions)
    ratio = np.exp(logp[idx] - logp_old[idx])
    if config.objective == "clip":
        L = np.mean(np.minimum(ratio * A_hat, np.clip(ratio, 0.8, 1.2) * A_hat))
    else:
        kl = np.sum(np.exp(logp_old) * (logp_old - logp), axis=1).mean()
        L = np.mean(ratio * A_hat) - beta * kl - config.hinge_coef * max(0.0, kl - 2 * config.kl_target) ** 2
    H = -np.sum(np.exp(logp) * logp, axis=1).mean()
    return -(L + config.ent_coef * H)


@exercise("PPO.2")
@pytest.mark.parametrize("objective", ["clip", "penalty"])
def test_ppo_policy_loss_and_its_derivative_in_the_logits(rng, objective):
    z, dist_old, actions, logp_old, A_hat, config = _ppo_case(rng, objective)
    by_hand = lambda z_: _ppo_loss_by_hand(z_, dist_old.logits, actions, A_hat, config, 0.5)
    got = ppo.policy_loss_and_grad(Categorical(z), dist_old, actions, logp_old, A_hat, config, 0.5)
    assert abs(got[0] - by_hand(z)) < 1e-12, f"the value of the {objective} loss"
    check_grad(by_hand, lambda z_: ppo.policy_loss_and_grad(Categorical(z_), dist_old, actions, logp_old, A_hat,
                                                             config, 0.5)[1], z.copy())


@exercise("PPO.2")
def test_ppo_clip_gradient_is_exactly_zero_where_the_clip_binds(rng):
    z, dist_old, actions, logp_old, A_hat, _ = _ppo_case(rng, "clip")
    config = ppo.Config(objective="clip", ent_coef=0.0, clip_eps=0.2)
    _, ddist, aux = ppo.policy_loss_and_grad(Categorical(z), dist_old, actions, logp_old, A_hat, config, 0.5)
    ratio = aux["ratio"]
    binds = ((A_hat > 0) & (ratio > 1.2)) | ((A_hat < 0) & (ratio < 0.8))
    assert binds.any() and (~binds).any(), "the case must have clipped and unclipped samples"
    assert np.all(ddist[binds] == 0.0), "clipped samples must have exactly zero gradient (PPO.2)"
