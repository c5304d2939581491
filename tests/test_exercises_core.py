"""Grading tests of the homework exercises in rlref's core (the marker names the exercise).

Each test checks one exercise at its own level against finite differences or a formula written
here independently of the code under test, and calls no other exercise's code unless the table
(rlref/homework/exercises.py) declares it a dependency. They run in the ordinary suite too.
"""
import numpy as np
import pytest

from rlref.advantages import discount_cumsum, gae, td_residuals
from rlref.algos.ppo import Config as PPOConfig, adapt_beta
from rlref.algos.trpo import conjugate_gradient, line_search, max_step
from rlref.distributions import Categorical, DiagGaussian
from rlref.gradcheck import check_grad, numerical_grad
from rlref.nn import flatten, init_mlp, mlp_backward, mlp_forward, mlp_jvp, unflatten
from rlref.normalize import rms_merge
from rlref.value import value_loss_and_grad

exercise = pytest.mark.exercise


def _mlp(rng, activation, batch=5, sizes=(3, 6, 4, 2)):
    params = init_mlp(list(sizes), rng, activation=activation)
    for k in params:
        params[k] = params[k] + 0.3 * rng.standard_normal(params[k].shape)
    return params, rng.standard_normal((batch, sizes[0])), rng.standard_normal((batch, sizes[-1]))


@exercise("MLP.2")
@pytest.mark.parametrize("activation", ["tanh", "identity"])
def test_mlp_backward_matches_finite_differences(rng, activation):
    params, x, R = _mlp(rng, activation)
    check_grad(lambda p: np.sum(mlp_forward(p, x)[0] * R), lambda p: mlp_backward(R, mlp_forward(p, x)[1])[0], params)
    check_grad(lambda x_: np.sum(mlp_forward(params, x_)[0] * R), lambda x_: mlp_backward(R, mlp_forward(params, x_)[1])[1], x)


@exercise("MLP.4")
def test_mlp_jvp_matches_finite_differences(rng):
    params, x, _ = _mlp(rng, "tanh")
    theta = flatten(params)
    v, dx, h = rng.standard_normal(theta.size), rng.standard_normal(x.shape), 1e-6
    out = lambda t, x_: mlp_forward(unflatten(t, params), x_)[0]
    numeric = (out(theta + h * v, x + h * dx) - out(theta - h * v, x - h * dx)) / (2 * h)
    got = mlp_jvp(unflatten(v, params), mlp_forward(params, x)[1], dx)
    assert got.shape == numeric.shape and np.abs(got - numeric).max() < 1e-7, "J v differs from central differences"
    numeric_p = (out(theta + h * v, x) - out(theta - h * v, x)) / (2 * h)
    assert np.abs(mlp_jvp(unflatten(v, params), mlp_forward(params, x)[1]) - numeric_p).max() < 1e-7, "dx=None"


def _logsoftmax(z):
    return z - np.log(np.exp(z - z.max(axis=1, keepdims=True)).sum(axis=1, keepdims=True)) - z.max(axis=1, keepdims=True)


@exercise("DIST.1")
def test_categorical_score(rng):
    z, a = rng.standard_normal((6, 4)), rng.integers(4, size=6)
    got = Categorical(z).dlogp(a)
    for i in range(6):                                     # d log softmax(z_i)[a_i] / d z_i by differences
        want = numerical_grad(lambda zi: _logsoftmax(zi[None])[0, a[i]], z[i].copy())
        assert np.abs(got[i] - want).max() < 1e-8, f"score of sample {i}"


@exercise("DIST.2")
def test_categorical_entropy_gradient(rng):
    z = rng.standard_normal((5, 3))
    H = lambda zi: -np.sum(np.exp(_logsoftmax(zi[None])) * _logsoftmax(zi[None]))
    got = Categorical(z).dentropy()
    for i in range(5):
        assert np.abs(got[i] - numerical_grad(H, z[i].copy())).max() < 1e-8, f"dH/dz of sample {i}"


@exercise("DIST.3")
def test_categorical_kl_gradient(rng):
    zp, zq = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    lp = _logsoftmax(zp)
    got = Categorical(zp).dkl(Categorical(zq))
    for i in range(5):
        kl = lambda q: np.sum(np.exp(lp[i]) * (lp[i] - _logsoftmax(q[None])[0]))
        assert np.abs(got[i] - numerical_grad(kl, zq[i].copy())).max() < 1e-8, f"dKL/dz_q of sample {i}"
    assert np.abs(Categorical(zp).dkl(Categorical(zp))).max() < 1e-15, "KL(p || p) has zero gradient"


def _gauss_logp(a, m, s):
    return np.sum(-0.5 * ((a - m) / np.exp(s)) ** 2 - s - 0.5 * np.log(2 * np.pi))


@exercise("DIST.5")
def test_gaussian_score(rng):
    m, s, a = rng.standard_normal((4, 2)), 0.3 * rng.standard_normal((4, 2)), rng.standard_normal((4, 2))
    dm, ds = DiagGaussian(m, s).dlogp(a)
    for i in range(4):
        assert np.abs(dm[i] - numerical_grad(lambda m_: _gauss_logp(a[i], m_, s[i]), m[i].copy())).max() < 1e-8, "dmean"
        assert np.abs(ds[i] - numerical_grad(lambda s_: _gauss_logp(a[i], m[i], s_), s[i].copy())).max() < 1e-8, "dlog_std"


@exercise("DIST.7")
def test_gaussian_kl_gradient(rng):
    mp, sp = rng.standard_normal((4, 2)), 0.3 * rng.standard_normal((4, 2))
    mq, sq = rng.standard_normal((4, 2)), 0.3 * rng.standard_normal((4, 2))
    kl = lambda i, m, s: np.sum(s - sp[i] + (np.exp(2 * sp[i]) + (mp[i] - m) ** 2) / (2 * np.exp(2 * s)) - 0.5)
    dm, ds = DiagGaussian(mp, sp).dkl(DiagGaussian(mq, sq))
    for i in range(4):
        assert np.abs(dm[i] - numerical_grad(lambda m: kl(i, m, sq[i]), mq[i].copy())).max() < 1e-8, "dKL/dmean_q"
        assert np.abs(ds[i] - numerical_grad(lambda s: kl(i, mq[i], s), sq[i].copy())).max() < 1e-8, "dKL/dlog_std_q"


def _rollout(rng, T=12, E=3):
    r, v, v2 = rng.standard_normal((T, E)), rng.standard_normal((T, E)), rng.standard_normal((T, E))
    term = (rng.random((T, E)) < 0.15).astype(float)
    trunc = ((rng.random((T, E)) < 0.15) & (term == 0)).astype(float)
    return r, v, v2, term, np.maximum(term, trunc)


def _episode_sum(x, c, dones, bootstrap=None):
    """sum_k c^k x_{t+k} over the rest of the episode, by brute force (plus c^(T-t) bootstrap at the end)."""
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


@exercise("PG.3")
def test_discount_cumsum_is_the_sum_within_episodes(rng):
    r, _, _, _, dones = _rollout(rng)
    b = rng.standard_normal(3)
    assert np.allclose(discount_cumsum(r, 0.9, dones), _episode_sum(r, 0.9, dones), rtol=0, atol=1e-12), "no bootstrap"
    assert np.allclose(discount_cumsum(r, 0.9, dones, b), _episode_sum(r, 0.9, dones, b), rtol=0, atol=1e-12), "bootstrap"


@exercise("GAE.1")
def test_td_residuals(rng):
    r, v, v2, term, _ = _rollout(rng)
    want = np.where(term > 0, r - v, r + 0.95 * v2 - v)
    assert np.allclose(td_residuals(r, v, v2, term, 0.95), want, rtol=0, atol=1e-12), "delta_t (GAE.1)"


@exercise("GAE.2")
@pytest.mark.parametrize("lam", [0.0, 0.7, 1.0])
def test_gae_is_the_discounted_sum_of_td_residuals(rng, lam):
    r, v, v2, term, dones = _rollout(rng)
    gamma = 0.9
    delta = r + gamma * (1 - term) * v2 - v                # written here, not td_residuals
    A_hat, R_hat = gae(r, v, v2, term, dones, gamma, lam)
    assert np.allclose(A_hat, _episode_sum(delta, gamma * lam, dones), rtol=0, atol=1e-12), f"A_hat at lam = {lam}"
    assert np.allclose(R_hat, A_hat + v, rtol=0, atol=1e-12), "R_hat = A_hat + values"


@exercise("NORM.1")
def test_rms_merge_equals_the_statistics_of_the_union(rng):
    x, y = rng.standard_normal((7, 3)) + 2.0, 3.0 * rng.standard_normal((11, 3))
    stats = lambda d: {"mean": d.mean(axis=0), "var": d.var(axis=0), "count": len(d)}
    m = rms_merge(stats(x), stats(y))
    both = np.concatenate([x, y])
    assert m["count"] == 18, "count"
    assert np.allclose(m["mean"], both.mean(axis=0), rtol=1e-12, atol=1e-12), "mean of the union"
    assert np.allclose(m["var"], both.var(axis=0), rtol=1e-12, atol=1e-12), "variance of the union (NORM.1)"


@exercise("PPO.5")
def test_value_losses_and_their_derivatives(rng):
    R_hat, V_old = rng.standard_normal(10), rng.standard_normal(10)
    v = V_old + np.where(rng.random(10) < 0.5, 1, -1) * rng.uniform(0.05, 0.5, 10)
    v = np.where(np.abs(np.abs(v - V_old) - 0.2) < 1e-3, v + 0.01, v)   # away from the clip's kinks
    assert abs(value_loss_and_grad(v, R_hat)[0] - np.mean((v - R_hat) ** 2)) < 1e-12, "L_v (V.1)"
    clipped = lambda u: np.mean(np.maximum((u - R_hat) ** 2, (V_old + np.clip(u - V_old, -0.2, 0.2) - R_hat) ** 2))
    assert abs(value_loss_and_grad(v, R_hat, V_old, 0.2)[0] - clipped(v)) < 1e-12, "clipped L_v (PPO.5)"
    check_grad(lambda u: value_loss_and_grad(u, R_hat)[0], lambda u: value_loss_and_grad(u, R_hat)[1], v.copy())
    check_grad(clipped, lambda u: value_loss_and_grad(u, R_hat, V_old, 0.2)[1], v.copy())


@exercise("PPO.4")
def test_beta_rule_at_its_boundaries():
    c = PPOConfig(kl_target=0.01, beta_min=1e-3, beta_max=1e3)
    lo, hi = 0.01 / 1.5, 1.5 * 0.01
    for beta, kl, want in [(1.0, lo, 1.0), (1.0, np.nextafter(lo, 0), 0.5), (1.0, hi, 1.0),
                           (1.0, np.nextafter(hi, 1), 2.0), (1.5e-3, 0.0, 1e-3), (800.0, 1.0, 1e3)]:
        assert adapt_beta(beta, kl, c) == want, f"beta = {beta}, kl = {kl}: want {want}"


def _spd(rng, n, cond):
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return Q @ np.diag(np.geomspace(1.0, cond, n)) @ Q.T


@exercise("TRPO.8")
def test_conjugate_gradient(rng):
    A, b = _spd(rng, 12, 50.0), rng.standard_normal(12)
    x, res, iters = conjugate_gradient(lambda p: A @ p, b, max_iters=40, tol=1e-12)
    assert np.abs(x - np.linalg.solve(A, b)).max() < 1e-8 * np.abs(x).max(), "x differs from np.linalg.solve"
    assert res <= 1e-10 and iters <= 40, "residual and iterations"
    # after k steps, CG's x minimizes the A-norm error over the Krylov space span(b, A b, ..., A^(k-1) b)
    K = np.linalg.qr(np.stack([np.linalg.matrix_power(A, j) @ b for j in range(3)], axis=1))[0]
    want3 = K @ np.linalg.solve(K.T @ A @ K, K.T @ b)
    got3 = conjugate_gradient(lambda p: A @ p, b, max_iters=3, tol=0.0)[0]
    assert np.abs(got3 - want3).max() < 1e-9 * np.abs(want3).max(), "the iterate after 3 steps (the Krylov minimizer)"


@exercise("TRPO.5")
def test_max_step_puts_the_model_kl_on_the_budget(rng):
    F, x = _spd(rng, 6, 10.0), rng.standard_normal(6)
    s, kl_model = max_step(x, lambda v: F @ v, 0.02)
    assert abs(0.5 * s @ F @ s - 0.02) < 1e-12 and abs(kl_model - 0.02) < 1e-12, "1/2 s^T F s = max_kl"
    assert s @ x > 0 and np.allclose(s, (s @ x) / (x @ x) * x, rtol=1e-12, atol=1e-14), "s is a positive multiple of x"


@exercise("TRPO.9")
def test_line_search_takes_the_first_accepted_fraction(rng):
    theta_old, step = rng.standard_normal(4), rng.standard_normal(4)
    frac_of = lambda t: float(np.dot(t - theta_old, step) / np.dot(step, step))
    evaluate = lambda t: (1.0 - (frac_of(t) - 0.3) ** 2, frac_of(t) ** 2)   # L peaks at 0.3, KL = frac^2
    theta, frac, trials, L, kl = line_search(theta_old, step, 0.9, evaluate, 0.01, 0.5, 10)
    assert frac == 0.0625 and np.array_equal(theta, theta_old + 0.0625 * step), "first fraction with kl <= 0.01 and L > L_old"
    assert [t[0] for t in trials] == [1.0, 0.5, 0.25, 0.125, 0.0625] and abs(kl - 0.0625 ** 2) < 1e-15
    theta, frac, trials, L, kl = line_search(theta_old, step, 2.0, evaluate, 0.01, 0.5, 4)
    assert theta is theta_old and (frac, L, kl) == (0.0, 2.0, 0.0) and len(trials) == 4, "no fraction accepted"
    assert line_search(theta_old, step, 0.9, evaluate, 0.01, 0.5, 10, rule="none")[1] == 1.0, "rule none"
    assert line_search(theta_old, step, 0.9, evaluate, 0.01, 0.5, 10, rule="improve_only")[1] == 0.5, "improve_only"
