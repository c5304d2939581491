"""Hidden tests of the notebook exercises: their answers by formula. Instructor only."""
import numpy as np

from rlref.homework import expect
from rlref.homework.testing import exercise
from test_exercises_notebooks import (clip_case, clip_term_runs, kl_case, max_step_case, my_gae_runs, my_max_step_runs,
                                      reverse_kl_runs, softplus_case, softplus_runs)


@exercise("00.1", softplus_runs)
def test_hidden_softplus_forward_formula(out):
    p, x, _ = softplus_case()
    expect.close("out", out["out"], np.log1p(np.exp(x @ p["W1"] + p["b1"])) @ p["W2"] + p["b2"], atol=1e-12, rtol=1e-12)


@exercise("00.3", reverse_kl_runs)
def test_hidden_reverse_kl_gradient_formula(out):
    z, z_old = kl_case()
    lp = lambda z_: z_ - z_.max(axis=1, keepdims=True) - np.log(np.exp(z_ - z_.max(axis=1, keepdims=True)).sum(
        axis=1, keepdims=True))
    p, ell = np.exp(lp(z)), lp(z) - lp(z_old)
    expect.close("p (ell - sum p ell)", out["grad"], p * (ell - (p * ell).sum(axis=1, keepdims=True)), atol=1e-12)


@exercise("02.1", my_gae_runs)
def test_hidden_my_gae_is_the_discounted_sum_of_td_residuals(out):
    rng = np.random.default_rng(112)
    r, v, v2 = (rng.standard_normal((10, 2)) for _ in range(3))
    dones = (rng.random((10, 2)) < 0.2).astype(float)
    delta = r + 0.9 * (1 - dones) * v2 - v
    A = np.zeros_like(delta)
    for t in range(len(delta)):
        weight = np.ones(2)
        for k in range(t, len(delta)):
            A[t] += weight * delta[k]
            weight = weight * 0.9 * 0.8 * (1 - dones[k])
    expect.close("A", out["rollout"], A, atol=1e-12)


@exercise("04.3", my_max_step_runs)
def test_hidden_max_step_formula(out):
    F, x = max_step_case()
    for delta, s in zip((1e-3, 0.05), out):
        expect.close(f"s at max_kl = {delta}", s, np.sqrt(2 * delta / (x @ F @ x)) * x, rtol=1e-12, atol=1e-15)


@exercise("05.1", clip_term_runs)
def test_hidden_clip_term_formulas(out):
    log_r, A = clip_case()
    ratio = np.exp(log_r)
    binds = ((A > 0) & (ratio > 1.2)) | ((A < 0) & (ratio < 0.8))
    expect.close("d/d log r of the clipped term", out["dlogp"], np.where(binds, 0.0, ratio * A), atol=1e-12)
