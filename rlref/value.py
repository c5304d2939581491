"""The state-value function V_phi(s): an MLP with one output, fitted by regression.

    L_v(phi) = mean_i (V_i - R_hat_i)^2,   d L_v / dV_i = 2 (V_i - R_hat_i) / N               (V.1)

and PPO's clipped form, with V_old_i the value stored at collection and eps_v the clip range,

    L_v = mean_i max((V_i - R_i)^2, (V_old_i + clip(V_i - V_old_i, -eps_v, eps_v) - R_i)^2)  (PPO.5)

A loss and its gradient, here as everywhere in rlref: ``loss, grad, aux = ..._loss_and_grad(x,
...)`` with loss a float, grad the derivative of the loss in the format of x (here the values v,
(N,)), and aux a dict of by-products (empty here).
"""
import numpy as np

from rlref.nn import flatten, init_mlp, mlp_backward, mlp_forward, unflatten
from rlref.optim import adam_init, adam_step


def init_value(config, obs_dim, rng, out_gain=1.0, hidden_gain=np.sqrt(2.0), init="orthogonal"):
    """{"value": params, "opt_v": Adam state}: an MLP [D, hidden..., 1]."""
    value = init_mlp([obs_dim, *config.hidden, 1], rng, activation=config.activation, out_gain=out_gain,
                     hidden_gain=hidden_gain, init=init)
    return {"value": value, "opt_v": adam_init(flatten(value))}


def value_forward(params, obs):
    """V(s) for obs of any leading shape (..., D) -> (...)."""
    flat = obs.reshape(-1, obs.shape[-1])                          # (N, D)
    return mlp_forward(params, flat)[0][:, 0].reshape(obs.shape[:-1])


def value_loss_and_grad(v, R_hat, V_old=None, clip_eps=None):
    """L_v (V.1), or the clipped L_v (PPO.5) when clip_eps is given, and dL_v / dv, for v (N,)."""
    N = len(v)
    err = v - R_hat                                                # (N,)
    if clip_eps is None:
        return float(np.mean(err * err)), (2.0 / N) * err, {}    # (V.1)
    v_clip = V_old + np.clip(v - V_old, -clip_eps, clip_eps)       # stays within eps_v of V_old
    err_clip = v_clip - R_hat
    use_clipped = err_clip * err_clip > err * err                  # the max picks it
    inside = np.abs(v - V_old) < clip_eps                          # d v_clip / d v = 1 there
    dv = np.where(use_clipped, np.where(inside, 2.0 * err_clip, 0.0), 2.0 * err) / N
    return float(np.mean(np.maximum(err * err, err_clip * err_clip))), dv, {}   # (PPO.5)


def value_step(value, opt, obs, R_hat, lr):
    """One Adam step on L_v (V.1) over the samples (obs, R_hat). Returns (value, opt, loss)."""
    out, cache = mlp_forward(value, obs, check=False)              # (N, 1)
    loss, dv, _ = value_loss_and_grad(out[:, 0], R_hat)
    grads, _ = mlp_backward(dv[:, None], cache, need_dx=False)
    phi, opt = adam_step(flatten(value), flatten(grads), opt, lr, check=False)
    return unflatten(phi, value, copy=False), opt, loss


def fit_value(agent, obs, targets, lr, iters):
    """`iters` full-batch Adam steps on L_v; returns the new agent and the first loss."""
    value, opt = agent["value"], agent["opt_v"]
    first = None
    for _ in range(iters):
        value, opt, loss = value_step(value, opt, obs, targets, lr)
        first = loss if first is None else first
    return {**agent, "value": value, "opt_v": opt}, first


def explained_variance(targets, values):
    """1 - Var(targets - values) / Var(targets): 1 for a perfect fit, 0 for predicting the mean,
    negative for worse; NaN when the targets are constant (the ratio is undefined)."""
    var = np.var(targets)
    return float(1.0 - np.var(targets - values) / var) if var > 0 else float("nan")
