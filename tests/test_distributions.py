"""Categorical and diagonal Gaussian: values against closed forms or Monte Carlo, derivatives
against finite differences, KL(p, p) = 0, the Fisher as E[score score^T] and as the KL Hessian."""
import math

import numpy as np
import pytest

from rlref.distributions import Categorical, DiagGaussian
from rlref.gradcheck import check_grad, numerical_jacobian


def gaussians(rng, N=5, D=3, shared=False):
    mean = rng.standard_normal((N, D))
    log_std = 0.4 * rng.standard_normal(D if shared else (N, D))
    return mean, log_std


# ----------------------------------------------------------------------------- categorical values

def test_categorical_values_against_naive_formulas(rng):
    z = rng.standard_normal((6, 4))
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)          # naive softmax, fine for |z| ~ 1
    a = rng.integers(4, size=6)
    d = Categorical(z)
    np.testing.assert_allclose(d.probs, p, rtol=1e-14)
    np.testing.assert_allclose(d.logp(a), np.log(p[np.arange(6), a]), rtol=1e-13)
    np.testing.assert_allclose(d.entropy(), -(p * np.log(p)).sum(axis=1), rtol=1e-13)
    q = np.exp(z[::-1]) / np.exp(z[::-1]).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(d.kl(Categorical(z[::-1])), (p * np.log(p / q)).sum(axis=1), rtol=1e-12)
    assert np.array_equal(d.mode(), p.argmax(axis=1))


def test_categorical_sampling_frequencies(rng):
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    d = Categorical(np.tile(np.log(probs), (40000, 1)))
    counts = np.bincount(d.sample(rng), minlength=4)
    chi2 = ((counts - 40000 * probs) ** 2 / (40000 * probs)).sum()
    assert chi2 < 16.27                                            # chi-square, 3 dof, alpha = 1e-3


def test_categorical_extreme_logits_are_finite():
    z = np.array([[1e3, -1e3, 0.0], [-1e3, -1e3, 1e3]])
    d, q = Categorical(z), Categorical(z[:, ::-1].copy())
    a = np.array([1, 0])
    values = [d.logp(a), d.entropy(), d.kl(q), d.dlogp(a), d.dentropy(), d.dkl(q), d.fisher()]
    assert all(np.all(np.isfinite(v)) for v in values)
    np.testing.assert_allclose(d.logp(a), [-2000.0, -2000.0])
    np.testing.assert_allclose(d.entropy(), [0.0, 0.0], atol=1e-300)


@pytest.mark.parametrize("which", ["logp", "entropy", "kl"])
def test_categorical_gradients(which, rng):
    z, zq = rng.standard_normal((5, 4)), rng.standard_normal((5, 4))
    a, w = rng.integers(4, size=5), rng.standard_normal(5)
    if which == "logp":
        f, g = (lambda x: w @ Categorical(x).logp(a)), (lambda x: w[:, None] * Categorical(x).dlogp(a))
        x = z
    elif which == "entropy":
        f, g = (lambda x: w @ Categorical(x).entropy()), (lambda x: w[:, None] * Categorical(x).dentropy())
        x = z
    else:
        p = Categorical(z)
        f, g = (lambda x: w @ p.kl(Categorical(x))), (lambda x: w[:, None] * p.dkl(Categorical(x)))
        x = zq
    assert check_grad(f, g, x) < 1e-8


def test_categorical_kl_of_itself_is_zero_with_zero_gradient(rng):
    d = Categorical(3 * rng.standard_normal((5, 4)))
    np.testing.assert_allclose(d.kl(d), 0.0, atol=1e-15)
    np.testing.assert_allclose(d.dkl(d), 0.0, atol=1e-15)


def test_categorical_fisher_is_expected_outer_score_and_kl_hessian(rng):
    z = rng.standard_normal((3, 4))
    d = Categorical(z)
    F = d.fisher()
    for i in range(3):
        scores = [d.dlogp(np.full(3, a))[i] for a in range(4)]      # score of each action
        expected = sum(d.probs[i, a] * np.outer(scores[a], scores[a]) for a in range(4))
        np.testing.assert_allclose(F[i], expected, atol=1e-15)
        # Hessian of KL(p || q) in q's logits at q = p, by differencing the analytic gradient.
        H = numerical_jacobian(lambda zq: d.dkl(Categorical(np.vstack([z[:i], zq, z[i + 1:]])))[i],
                               z[i].copy())
        np.testing.assert_allclose(F[i], H, atol=1e-9)
    v = rng.standard_normal((3, 4))
    np.testing.assert_allclose(d.fisher_product(v), np.einsum("nij,nj->ni", F, v), atol=1e-15)
    assert np.all(np.linalg.eigvalsh(F) > -1e-15)                   # PSD (singular along 1)


def test_categorical_bad_parameters_raise():
    with pytest.raises(ValueError, match="logits must be finite"):
        Categorical(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="logits must have 2 dimension"):
        Categorical(np.zeros(3))
    d = Categorical(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"actions must be in \[0, 2\]"):
        d.logp(np.array([0, 3]))
    with pytest.raises(ValueError, match=r"actions must be integers of shape \(2,\)"):
        d.logp(np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="other must be a Categorical"):
        d.kl(Categorical(np.zeros((3, 3))))


# ----------------------------------------------------------------------------- Gaussian values

def test_gaussian_values_against_the_density(rng):
    mean, log_std = gaussians(rng)
    a = rng.standard_normal(mean.shape)
    sigma = np.exp(log_std)
    density = np.prod(np.exp(-(a - mean) ** 2 / (2 * sigma ** 2)) / np.sqrt(2 * math.pi * sigma ** 2), axis=1)
    d = DiagGaussian(mean, log_std)
    np.testing.assert_allclose(d.logp(a), np.log(density), rtol=1e-12)
    np.testing.assert_allclose(d.entropy(), np.sum(0.5 * np.log(2 * math.pi * math.e * sigma ** 2), axis=1),
                               rtol=1e-13)
    assert np.array_equal(d.mode(), mean)


def test_gaussian_shared_log_std_equals_per_sample(rng):
    mean, log_std = gaussians(rng, shared=True)
    a = rng.standard_normal(mean.shape)
    d1, d2 = DiagGaussian(mean, log_std), DiagGaussian(mean, np.tile(log_std, (5, 1)))
    assert np.array_equal(d1.logp(a), d2.logp(a)) and np.array_equal(d1.entropy(), d2.entropy())


def test_gaussian_entropy_kl_and_samples_against_monte_carlo(rng):
    mean, log_std = np.array([[0.5, -1.0]]), np.array([[0.2, -0.3]])
    p, q = DiagGaussian(mean, log_std), DiagGaussian(np.array([[0.0, -0.5]]), np.array([[-0.1, 0.1]]))
    n = 200000
    a = p.mean + p.std * rng.standard_normal((n, 2))
    rep = lambda d: DiagGaussian(np.repeat(d.mean, n, axis=0), np.repeat(d.log_std, n, axis=0))
    lp, lq = rep(p).logp(a), rep(q).logp(a)
    for exact, samples in [(p.entropy()[0], -lp), (p.kl(q)[0], lp - lq)]:
        assert abs(samples.mean() - exact) < 4 * samples.std() / np.sqrt(n)
    s = DiagGaussian(np.repeat(mean, n, axis=0), log_std[0]).sample(rng)
    np.testing.assert_allclose(s.mean(axis=0), mean[0], atol=4 * np.exp(0.2) / np.sqrt(n))
    np.testing.assert_allclose(s.std(axis=0), np.exp(log_std[0]), rtol=0.01)


@pytest.mark.parametrize("which", ["logp", "entropy", "kl"])
def test_gaussian_gradients(which, rng):
    mean, log_std = gaussians(rng)
    mq, sq = gaussians(rng)
    a, w = rng.standard_normal(mean.shape), rng.standard_normal(5)
    p = DiagGaussian(mean, log_std)
    value, deriv = {
        "logp": (lambda m, s: DiagGaussian(m, s).logp(a), lambda m, s: DiagGaussian(m, s).dlogp(a)),
        "entropy": (lambda m, s: DiagGaussian(m, s).entropy(), lambda m, s: DiagGaussian(m, s).dentropy()),
        "kl": (lambda m, s: p.kl(DiagGaussian(m, s)), lambda m, s: p.dkl(DiagGaussian(m, s))),
    }[which]
    x = {"mean": mq if which == "kl" else mean.copy(), "log_std": sq if which == "kl" else log_std.copy()}
    f = lambda x_: w @ value(x_["mean"], x_["log_std"])
    g = lambda x_: {k: w[:, None] * v for k, v in zip(("mean", "log_std"), deriv(x_["mean"], x_["log_std"]))}
    assert check_grad(f, g, x) < 1e-8


def test_gaussian_kl_of_itself_is_zero_with_zero_gradient(rng):
    d = DiagGaussian(*gaussians(rng))
    np.testing.assert_allclose(d.kl(d), 0.0, atol=1e-15)
    for part in d.dkl(d):
        np.testing.assert_allclose(part, 0.0, atol=1e-15)


def test_gaussian_fisher_is_expected_outer_score_and_kl_hessian(rng):
    mean, log_std = np.array([[0.3, -0.2]]), np.array([[0.25, -0.4]])
    d = DiagGaussian(mean, log_std)
    F = d.fisher()[0]                                               # (4, 4) over (mean, log_std)
    np.testing.assert_allclose(F, np.diag(np.r_[np.exp(-2 * log_std[0]), 2.0, 2.0]), rtol=1e-14)
    # Hessian of KL(p || q) in q = (mean_q, log_std_q) at q = p, from the analytic gradient.
    H = numerical_jacobian(lambda x: np.concatenate(d.dkl(DiagGaussian(x[None, :2], x[None, 2:])), axis=1)[0],
                           np.r_[mean[0], log_std[0]])
    np.testing.assert_allclose(F, H, atol=1e-8)
    # E[score score^T] by Monte Carlo.
    n = 200000
    a = mean + np.exp(log_std) * rng.standard_normal((n, 2))
    big = DiagGaussian(np.repeat(mean, n, axis=0), log_std[0])
    score = np.concatenate(big.dlogp(a), axis=1)                    # (n, 4)
    np.testing.assert_allclose(score.T @ score / n, F, atol=0.05)
    v = (rng.standard_normal((1, 2)), rng.standard_normal((1, 2)))
    np.testing.assert_allclose(np.concatenate(d.fisher_product(v), axis=1)[0], F @ np.r_[v[0][0], v[1][0]])


def test_gaussian_bad_parameters_raise():
    with pytest.raises(ValueError, match="mean must be finite"):
        DiagGaussian(np.array([[np.inf]]), np.zeros(1))
    with pytest.raises(ValueError, match="log_std must be finite"):
        DiagGaussian(np.zeros((1, 1)), np.array([np.nan]))
    with pytest.raises(ValueError, match=r"log_std must have shape \(2,\) or \(3, 2\)"):
        DiagGaussian(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"actions must have shape \(3, 2\)"):
        DiagGaussian(np.zeros((3, 2)), np.zeros(2)).logp(np.zeros((3, 1)))
