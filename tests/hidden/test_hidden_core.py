"""Hidden tests of the core exercises: kept by the instructor, never shipped in a student version.

These compute what an exercise asks for, by its formula or by brute force, and compare: in a
student version they would hand out the answer. Each reuses the probe of a public test (the
sandbox runs only public code); ``homework grade`` runs them from the instructor's checkout and
results.json shows them after grades are published.
"""
import numpy as np

from rlref.homework import expect
from rlref.homework.testing import exercise
from test_exercises_core import (_gaussians, _logits, _logsoftmax, _spd, categorical_entropy_gradient_runs,
                                 categorical_kl_gradient_runs, categorical_score_runs, gaussian_kl_gradient_runs,
                                 gaussian_score_runs, max_step_runs)
from test_exercises_returns import (GAMMA, LAMS, _value_case, discount_cumsum_runs, gae_runs, rollout, td_residuals_runs,
                                    value_loss_runs)


@exercise("DIST.1", categorical_score_runs)
def test_hidden_categorical_score_formula(out):
    z, _, a = _logits(3)
    expect.close("onehot(a) - p", out, np.eye(z.shape[1])[a] - np.exp(_logsoftmax(z)), atol=1e-12)


@exercise("DIST.2", categorical_entropy_gradient_runs)
def test_hidden_categorical_entropy_gradient_formula(out):
    lp = _logsoftmax(_logits(4)[0])
    H = -np.sum(np.exp(lp) * lp, axis=1, keepdims=True)
    expect.close("-p (log p + H)", out, -np.exp(lp) * (lp + H), atol=1e-12)


@exercise("DIST.3", categorical_kl_gradient_runs)
def test_hidden_categorical_kl_gradient_formula(out):
    zp, zq, _ = _logits(5)
    expect.close("q - p", out["p_q"], np.exp(_logsoftmax(zq)) - np.exp(_logsoftmax(zp)), atol=1e-12)


@exercise("DIST.5", gaussian_score_runs)
def test_hidden_gaussian_score_formula(out):
    m, s, _, _, a = _gaussians(6)
    var = np.exp(2 * s)
    expect.close("(a - mean) / sigma^2", out[0], (a - m) / var, atol=1e-12, rtol=1e-12)
    expect.close("(a - mean)^2 / sigma^2 - 1", out[1], (a - m) ** 2 / var - 1, atol=1e-12, rtol=1e-12)


@exercise("DIST.7", gaussian_kl_gradient_runs)
def test_hidden_gaussian_kl_gradient_formula(out):
    mp, sp, mq, sq, _ = _gaussians(7)
    vp, vq = np.exp(2 * sp), np.exp(2 * sq)
    expect.close("(mean_q - mean_p) / sigma_q^2", out["p_q"][0], (mq - mp) / vq, atol=1e-12, rtol=1e-12)
    expect.close("1 - (sigma_p^2 + (mean_q - mean_p)^2) / sigma_q^2", out["p_q"][1], 1 - (vp + (mq - mp) ** 2) / vq,
                 atol=1e-12, rtol=1e-12)


def episode_sums(x, c, dones, bootstrap=None):
    """sum_k c^k x_t+k over the rest of the episode, by brute force (plus c^(T-t) bootstrap at the end)."""
    T, E = x.shape
    y = np.zeros((T, E))
    for e in range(E):
        for t in range(T):
            k, total = 0, 0.0
            while True:
                total += c ** k * x[t + k, e]
                if dones[t + k, e]:
                    break
                if t + k == T - 1:
                    total += 0.0 if bootstrap is None else c ** (k + 1) * bootstrap[e]
                    break
                k += 1
            y[t, e] = total
    return y


@exercise("PG.3", discount_cumsum_runs)
def test_hidden_discount_cumsum_is_the_sum_within_episodes(out):
    r, _, _, _, dones = rollout()
    expect.close("y (bootstrap)", out["rollout"], episode_sums(r, GAMMA, dones, r[0]), atol=1e-12)
    expect.close("y (no bootstrap)", out["rollout_no_bootstrap"], episode_sums(r, GAMMA, dones), atol=1e-12)


@exercise("GAE.1", td_residuals_runs)
def test_hidden_td_residual_formula(out):
    r, v, v2, term, _ = rollout()
    expect.close("delta_t (GAE.1)", out["rollout"], r + GAMMA * (1 - term) * v2 - v, atol=1e-12)


@exercise("GAE.2", gae_runs)
def test_hidden_gae_is_the_discounted_sum_of_td_residuals(out):
    r, v, v2, term, dones = rollout()
    delta = r + GAMMA * (1 - term) * v2 - v
    for lam, (A_hat, _) in zip(LAMS, out["rollout"]):
        expect.close(f"A_hat at lam = {lam}", A_hat, episode_sums(delta, GAMMA * lam, dones), atol=1e-12)


@exercise("PPO.5", value_loss_runs)
def test_hidden_value_loss_formulas(out):
    v, R_hat, V_old = _value_case()
    expect.close("L_v (V.1)", out["plain"][0], np.mean((v - R_hat) ** 2), atol=1e-12)
    expect.close("dL_v/dv (V.1)", out["plain"][1], 2 * (v - R_hat) / len(v), atol=1e-12)
    v_clip = V_old + np.clip(v - V_old, -0.2, 0.2)
    expect.close("clipped L_v (PPO.5)", out["clipped"][0],
                 np.mean(np.maximum((v - R_hat) ** 2, (v_clip - R_hat) ** 2)), atol=1e-12)


@exercise("TRPO.5", max_step_runs)
def test_hidden_max_step_formula(out):
    F, x = _spd(12, 6, 10.0)
    expect.close("s_max = sqrt(2 max_kl / x^T F x) x", out[0], np.sqrt(2 * 0.02 / (x @ F @ x)) * x, rtol=1e-12, atol=1e-15)
