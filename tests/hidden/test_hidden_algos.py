"""Hidden tests of the algorithm exercises: the losses by their formulas at random parameters,
with finite differences of those formulas, and the Fisher matrix as J^T M J. Instructor only."""
import numpy as np

from rlref.gradcheck import numerical_grad, numerical_jacobian
from rlref.homework import expect
from rlref.homework.testing import exercise
from rlref.nn import flatten, mlp_forward, unflatten
from test_exercises_algos import (A2C_CONFIG, KINDS, a2c_case, a2c_runs, expect_fisher_products, fisher_factor_runs,
                                  fisher_vector_product_runs, policy_case, ppo_case, ppo_runs, reinforce_runs)


def logp_by_hand(params, obs, actions):
    """log pi(a|s) per sample, from the network's output (no rlref distribution)."""
    out = mlp_forward(params, obs)[0]
    if "log_std" in params:
        s = params["log_std"]
        return np.sum(-0.5 * ((actions - out) / np.exp(s)) ** 2 - s - 0.5 * np.log(2 * np.pi), axis=1)
    z = out - out.max(axis=1, keepdims=True)
    return (z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(len(actions)), actions]


@exercise("PG.4", reinforce_runs)
def test_hidden_reinforce_loss_formula_and_its_gradient(out):
    for kind in KINDS:
        policy, obs, actions, w = policy_case(14, kind == "gaussian")
        loss = lambda p: -np.mean(logp_by_hand(p, obs, actions) * w)
        L, grads = out[kind]["loss_and_grad"]
        expect.close(f"L (PG.4, {kind})", L, loss(policy), atol=1e-12)
        expect.gradient(f"dL/dtheta ({kind})", grads, numerical_grad(loss, policy))


@exercise("AC.3", a2c_runs)
def test_hidden_a2c_loss_formula_and_its_gradients(out):
    policy, value, obs, actions, A_hat, R_hat = a2c_case()

    def loss(p, v):
        z = mlp_forward(p, obs)[0]
        lp = z - z.max(axis=1, keepdims=True)
        lp = lp - np.log(np.exp(lp).sum(axis=1, keepdims=True))
        H = -np.sum(np.exp(lp) * lp, axis=1)
        V = mlp_forward(v, obs)[0][:, 0]
        return (-np.mean(lp[np.arange(len(actions)), actions] * A_hat) - A2C_CONFIG["ent_coef"] * H.mean()
                + A2C_CONFIG["vf_coef"] * np.mean((V - R_hat) ** 2))
    expect.close("L (AC.3)", out["loss"], loss(policy, value), atol=1e-12)
    expect.gradient("dL/dtheta", out["grads"][0], numerical_grad(lambda p: loss(p, value), policy))
    expect.gradient("dL/dphi", out["grads"][1], numerical_grad(lambda v: loss(policy, v), value))


def fisher_by_hand(policy, obs):
    """F = (1/N) sum_i J_i^T M_i J_i: J_i by central differences of the network's output, M_i from
    the distribution's formula (diag(p) - p p^T, or diag(1/sigma^2, 2) in (mean, log_std))."""
    theta, N = flatten(policy), obs.shape[0]
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
    for i in range(N):
        F += J[i].T @ np.diag(1 / sigma2) @ J[i] / N
    F[theta.size - A:, theta.size - A:] += 2.0 * np.eye(A)                      # log_std is last in flatten
    return F


@exercise("NPG.3", fisher_factor_runs)
def test_hidden_fisher_factor_against_J_M_J(out):
    for kind in KINDS:
        policy, obs = policy_case(16, kind == "gaussian")[:2]
        Z = np.asarray(out[kind])
        expect.close(f"Z^T Z ({kind}, against J^T M J)", Z.T @ Z, fisher_by_hand(policy, obs), atol=1e-7)


@exercise("TRPO.6", fisher_vector_product_runs)
def test_hidden_fisher_vector_product_against_J_M_J(out):
    expect_fisher_products(out, fisher_by_hand, 1e-7, "J^T M J")


def ppo_loss_by_hand(z, z_old, actions, A_hat, config, beta):
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


@exercise("PPO.2", ppo_runs)
def test_hidden_ppo_loss_formulas_and_their_derivatives(out):
    for objective in ("clip", "penalty"):
        z, z_old, actions, _, A_hat, config = ppo_case(objective)
        by_hand = lambda z_: ppo_loss_by_hand(z_, z_old, actions, A_hat, config, 0.5)
        expect.close(f"L ({objective})", out[objective]["loss"], by_hand(z), atol=1e-12)
        expect.gradient(f"dL/dlogits ({objective})", out[objective]["ddist"], numerical_grad(by_hand, z.copy()))
