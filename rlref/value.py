"""The state-value function V_phi(s): an MLP with one output, fitted by regression.

    loss_v(phi) = mean_i (V_phi(s_i) - R_hat_i)^2,   d loss_v / dV_i = 2 (V_i - R_hat_i) / N   (V.1)
"""
import numpy as np

from rlref.nn import flatten, init_mlp, mlp_backward, mlp_forward, unflatten
from rlref.optim import adam_init, adam_step


def init_value(config, obs_dim, rng):
    """{"value": params, "opt_v": Adam state}: an MLP [D, hidden..., 1] with out_gain 1."""
    value = init_mlp([obs_dim, *config.hidden, 1], rng, activation=config.activation, out_gain=1.0)
    return {"value": value, "opt_v": adam_init(flatten(value))}


def value_forward(params, obs):
    """V(s) for obs of any leading shape (..., D) -> (...)."""
    flat = obs.reshape(-1, obs.shape[-1])                          # (N, D)
    return mlp_forward(params, flat)[0][:, 0].reshape(obs.shape[:-1])


def value_loss_and_grad(params, obs, targets):
    """loss_v and its gradient (a dict like params).  (V.1)"""
    out, cache = mlp_forward(params, obs)                          # (N, 1)
    err = out[:, 0] - targets                                      # (N,)
    grads, _ = mlp_backward((2.0 / len(err)) * err[:, None], cache, need_dx=False)
    return float(np.mean(err * err)), grads


def fit_value(agent, obs, targets, lr, iters):
    """`iters` full-batch Adam steps on loss_v; returns the new agent and the first loss."""
    value, opt = agent["value"], agent["opt_v"]
    first = None
    for _ in range(iters):
        loss, grads = value_loss_and_grad(value, obs, targets)
        first = loss if first is None else first
        theta, opt = adam_step(flatten(value), flatten(grads), opt, lr)
        value = unflatten(theta, value)
    return {**agent, "value": value, "opt_v": opt}, first


def explained_variance(targets, values):
    """1 - Var(targets - values) / Var(targets): 1 for a perfect fit, 0 for predicting the mean,
    negative for worse; NaN when the targets are constant (the ratio is undefined)."""
    var = np.var(targets)
    return float(1.0 - np.var(targets - values) / var) if var > 0 else float("nan")
