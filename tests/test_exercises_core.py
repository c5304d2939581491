"""Public tests of the homework exercises in rlref's core (backprop, distributions, step rules):
shipped with every student version. Returns, advantages and value targets: test_exercises_returns.py.

Each test is a probe and a judge (rlref/homework/testing.py): the probe (a plain function above
the test) calls the student's code on fixed inputs and returns numbers and arrays; the judge (the
test) checks them against finite differences of forward functions, exact answers on small cases
worked out by hand, and invariants. No test here computes what an exercise asks for by its formula:
those checks are hidden tests (tests/hidden/), kept by the instructor. A judge calls no exercise's
code; a probe calls its own exercise and the dependencies the table declares.

Under pytest each test runs its probe in this process; ``python -m rlref homework grade`` runs the
probes in a sandbox and the judges in a process that never ran student code.
"""
import numpy as np

from rlref.algos.ppo import Config as PPOConfig, adapt_beta
from rlref.algos.trpo import conjugate_gradient, line_search, max_step
from rlref.distributions import Categorical, DiagGaussian
from rlref.gradcheck import numerical_grad
from rlref.homework import expect
from rlref.homework.testing import exercise
from rlref.nn import flatten, init_mlp, mlp_backward, mlp_forward, mlp_jvp, unflatten

ACTIVATIONS = ("tanh", "identity")


def _mlp(seed, activation, batch=5, sizes=(3, 6, 4, 2)):
    rng = np.random.default_rng(seed)
    params = init_mlp(list(sizes), rng, activation=activation)
    for k in params:
        params[k] = params[k] + 0.3 * rng.standard_normal(params[k].shape)
    return params, rng.standard_normal((batch, sizes[0])), rng.standard_normal((batch, sizes[-1]))


# ------------------------------------------------------------------ MLP.2, MLP.4: backprop and forward mode

def mlp_backward_runs():
    out = {}
    for act in ACTIVATIONS:
        params, x, R = _mlp(1, act)
        cache = mlp_forward(params, x)[1]
        grads, dx = mlp_backward(R, cache)
        out[act] = {"grads": grads, "dx": dx, "without_dx": mlp_backward(R, cache, need_dx=False)}
    return out


@exercise("MLP.2", mlp_backward_runs)
def test_mlp_backward_matches_finite_differences(out):
    for act in ACTIVATIONS:
        params, x, R = _mlp(1, act)
        numeric = numerical_grad(lambda p: np.sum(mlp_forward(p, x)[0] * R), params)
        expect.gradient(f"grads ({act})", out[act]["grads"], numeric)
        expect.gradient(f"dx ({act})", out[act]["dx"], numerical_grad(lambda x_: np.sum(mlp_forward(params, x_)[0] * R), x))


@exercise("MLP.2", mlp_backward_runs)
def test_mlp_backward_without_dx_returns_the_same_grads_and_no_dx(out):
    for act in ACTIVATIONS:
        grads, dx = out[act]["without_dx"]
        expect.true(dx is None, f"mlp_backward(..., need_dx=False) must return dx = None ({act})")
        for k, g in out[act]["grads"].items():
            expect.close(f"grads[{k!r}] with need_dx=False ({act})", grads[k], g, atol=1e-12, rtol=1e-12)


def _tangent(seed):
    params, x, _ = _mlp(seed, "tanh")
    rng = np.random.default_rng(seed + 100)
    return params, x, rng.standard_normal(flatten(params).size), rng.standard_normal(x.shape)


def mlp_jvp_runs():
    params, x, v, dx = _tangent(2)
    cache = mlp_forward(params, x)[1]
    return {"with_dx": mlp_jvp(unflatten(v, params), cache, dx), "params_only": mlp_jvp(unflatten(v, params), cache)}


@exercise("MLP.4", mlp_jvp_runs)
def test_mlp_jvp_matches_central_differences(out):
    params, x, v, dx = _tangent(2)
    theta, h = flatten(params), 1e-6
    f = lambda t, x_: mlp_forward(unflatten(t, params), x_)[0]
    along_both = (f(theta + h * v, x + h * dx) - f(theta - h * v, x - h * dx)) / (2 * h)
    expect.close("J v along (dparams, dx)", out["with_dx"], along_both, atol=1e-7)
    expect.close("J v along dparams (dx=None)", out["params_only"], (f(theta + h * v, x) - f(theta - h * v, x)) / (2 * h),
                 atol=1e-7)


# ------------------------------------------------------------------ DIST.1-7: scores and derivatives

def _logsoftmax(z):
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def _logits(seed, shape=(6, 4)):
    rng = np.random.default_rng(seed)
    return rng.standard_normal(shape), rng.standard_normal(shape), rng.integers(shape[1], size=shape[0])


def _per_row(f, z):
    """Finite differences of a scalar function of one row, for every row of z."""
    return np.stack([numerical_grad(lambda zi: f(i, zi), z[i].copy()) for i in range(len(z))])


def categorical_score_runs():
    z, _, a = _logits(3)
    return Categorical(z).dlogp(a)


@exercise("DIST.1", categorical_score_runs)
def test_categorical_score_matches_finite_differences(out):
    z, _, a = _logits(3)
    expect.close("d log p(a) / d logits", out, _per_row(lambda i, zi: _logsoftmax(zi)[a[i]], z), atol=1e-8)


def categorical_entropy_gradient_runs():
    return Categorical(_logits(4)[0]).dentropy()


@exercise("DIST.2", categorical_entropy_gradient_runs)
def test_categorical_entropy_gradient_matches_finite_differences(out):
    z = _logits(4)[0]
    H = lambda i, zi: -np.sum(np.exp(_logsoftmax(zi)) * _logsoftmax(zi))
    expect.close("dH / d logits", out, _per_row(H, z), atol=1e-8)


def categorical_kl_gradient_runs():
    zp, zq, _ = _logits(5)
    return {"p_q": Categorical(zp).dkl(Categorical(zq)), "p_p": Categorical(zp).dkl(Categorical(zp))}


@exercise("DIST.3", categorical_kl_gradient_runs)
def test_categorical_kl_gradient_matches_finite_differences(out):
    zp, zq, _ = _logits(5)
    lp = _logsoftmax(zp)
    kl = lambda i, q: np.sum(np.exp(lp[i]) * (lp[i] - _logsoftmax(q)))
    expect.close("d KL(p || q) / d q.logits", out["p_q"], _per_row(kl, zq), atol=1e-8)
    expect.close("d KL(p || p) / d logits (KL has its minimum there)", out["p_p"], np.zeros(zp.shape), atol=1e-12)


def _gaussians(seed, shape=(4, 2)):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape) * s for s in (1.0, 0.3, 1.0, 0.3, 1.0)]   # mp, sp, mq, sq, a


def _gauss_logp(a, m, s):
    return np.sum(-0.5 * ((a - m) / np.exp(s)) ** 2 - s - 0.5 * np.log(2 * np.pi))


def gaussian_score_runs():
    mp, sp, _, _, a = _gaussians(6)
    return DiagGaussian(mp, sp).dlogp(a)


@exercise("DIST.5", gaussian_score_runs)
def test_gaussian_score_matches_finite_differences(out):
    m, s, _, _, a = _gaussians(6)
    dmean, dlog_std = out
    expect.close("d log p / d mean", dmean, _per_row(lambda i, mi: _gauss_logp(a[i], mi, s[i]), m), atol=1e-8)
    expect.close("d log p / d log_std", dlog_std, _per_row(lambda i, si: _gauss_logp(a[i], m[i], si), s), atol=1e-8)


def _gauss_kl(mp, sp, mq, sq):
    return np.sum(sq - sp + (np.exp(2 * sp) + (mp - mq) ** 2) / (2 * np.exp(2 * sq)) - 0.5)


def gaussian_kl_gradient_runs():
    mp, sp, mq, sq, _ = _gaussians(7)
    p, q = DiagGaussian(mp, sp), DiagGaussian(mq, sq)
    return {"p_q": p.dkl(q), "p_p": p.dkl(p)}


@exercise("DIST.7", gaussian_kl_gradient_runs)
def test_gaussian_kl_gradient_matches_finite_differences(out):
    mp, sp, mq, sq, _ = _gaussians(7)
    dmean, dlog_std = out["p_q"]
    expect.close("d KL / d q.mean", dmean, _per_row(lambda i, m: _gauss_kl(mp[i], sp[i], m, sq[i]), mq), atol=1e-8)
    expect.close("d KL / d q.log_std", dlog_std, _per_row(lambda i, s: _gauss_kl(mp[i], sp[i], mq[i], s), sq), atol=1e-8)
    for name, g in zip(("mean", "log_std"), out["p_p"]):
        expect.close(f"d KL(p || p) / d {name} (KL has its minimum there)", g, np.zeros(mp.shape), atol=1e-12)


# ------------------------------------------------------------------ PPO.4, TRPO.5, TRPO.8, TRPO.9: step rules

BETA_CASES = ((1.0, 0.01 / 1.5, 1.0), (1.0, np.nextafter(0.01 / 1.5, 0), 0.5), (1.0, 1.5 * 0.01, 1.0),
              (1.0, np.nextafter(1.5 * 0.01, 1), 2.0), (1.5e-3, 0.0, 1e-3), (800.0, 1.0, 1e3))


def adapt_beta_runs():
    c = PPOConfig(kl_target=0.01, beta_min=1e-3, beta_max=1e3)
    return [adapt_beta(beta, kl, c) for beta, kl, _ in BETA_CASES]


@exercise("PPO.4", adapt_beta_runs)
def test_beta_rule_at_its_boundaries(out):
    expect.true(len(out) == len(BETA_CASES), f"one beta per case: {len(BETA_CASES)} expected, got {len(out)}")
    for (beta, kl, want), got in zip(BETA_CASES, out):
        expect.equal(f"beta after beta = {beta}, kl = {kl!r} (kl_target 0.01, band [1e-3, 1e3])", got, want)


def _spd(seed, n, cond):
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.standard_normal((n, n)))[0]
    return Q @ np.diag(np.geomspace(1.0, cond, n)) @ Q.T, rng.standard_normal(n)


def conjugate_gradient_runs():
    A, b = _spd(11, 12, 50.0)
    return {"solve": conjugate_gradient(lambda p: A @ p, b, max_iters=40, tol=1e-12),
            "three_steps": conjugate_gradient(lambda p: A @ p, b, max_iters=3, tol=0.0)[0]}


@exercise("TRPO.8", conjugate_gradient_runs)
def test_conjugate_gradient_solves_and_its_iterates_minimize_over_krylov_spaces(out):
    A, b = _spd(11, 12, 50.0)
    x, res, iters = out["solve"]
    want = np.linalg.solve(A, b)
    expect.close("x (against np.linalg.solve)", x, want, atol=1e-8 * np.abs(want).max())
    expect.true(res <= 1e-10 and 1 <= iters <= 40, f"residual {res:.3g} <= 1e-10 after 1..40 iterations, got {iters:g}")
    # after k steps, CG's x minimizes the A-norm error over the Krylov space span(b, A b, ..., A^(k-1) b)
    K = np.linalg.qr(np.stack([np.linalg.matrix_power(A, j) @ b for j in range(3)], axis=1))[0]
    want3 = K @ np.linalg.solve(K.T @ A @ K, K.T @ b)
    expect.close("the iterate after 3 steps (the Krylov minimizer)", out["three_steps"], want3, atol=1e-9 * np.abs(want3).max())


def max_step_runs():
    F, x = _spd(12, 6, 10.0)
    return max_step(x, lambda v: F @ v, 0.02)


@exercise("TRPO.5", max_step_runs)
def test_max_step_puts_the_model_kl_on_the_budget(out):
    F, x = _spd(12, 6, 10.0)
    s, kl_model = expect.as_array("s_max", out[0], x.shape), out[1]
    expect.close("1/2 s^T F s (must equal max_kl)", 0.5 * s @ F @ s, 0.02, atol=1e-12)
    expect.close("the model's KL returned", kl_model, 0.02, atol=1e-12)
    expect.true(s @ x > 0, "s_max must point along x, not against it")
    expect.close("s_max (a multiple of x)", s, (s @ x) / (x @ x) * x, rtol=1e-12, atol=1e-14)


def _line_case(seed=13):
    rng = np.random.default_rng(seed)
    theta_old, step = rng.standard_normal(4), rng.standard_normal(4)
    frac_of = lambda t: float(np.dot(t - theta_old, step) / np.dot(step, step))
    return theta_old, step, lambda t: (1.0 - (frac_of(t) - 0.3) ** 2, frac_of(t) ** 2)   # L peaks at 0.3, KL = frac^2


def line_search_runs():
    theta_old, step, evaluate = _line_case()
    run = lambda L_old, n, rule="kl_and_improve": line_search(theta_old, step, L_old, evaluate, 0.01, 0.5, n, rule=rule)
    return {"accepts": run(0.9, 10), "none_accepted": run(2.0, 4), "rule_none": run(0.9, 10, "none"),
            "improve_only": run(0.9, 10, "improve_only")}


@exercise("TRPO.9", line_search_runs)
def test_line_search_takes_the_first_accepted_fraction(out):
    theta_old, step, _ = _line_case()
    theta, frac, trials, L, kl = out["accepts"]
    expect.equal("frac (the first of 1, 1/2, 1/4, ... with KL <= 0.01 and L > L_old)", frac, 0.0625)
    expect.close("theta = theta_old + frac full_step", theta, theta_old + 0.0625 * step, atol=1e-15)
    expect.equal("the fractions tried", [t[0] for t in trials], [1.0, 0.5, 0.25, 0.125, 0.0625])
    expect.close("the KL returned", kl, 0.0625 ** 2, atol=1e-15)
    theta, frac, trials, L, kl = out["none_accepted"]
    expect.equal("theta when no fraction is accepted (theta_old)", theta, theta_old)
    expect.equal("(frac, L, kl) when no fraction is accepted", [frac, L, kl], [0.0, 2.0, 0.0])
    expect.equal("the number of fractions tried (max_backtracks)", len(trials), 4)
    expect.equal("frac with rule 'none' (the full step)", out["rule_none"][1], 1.0)
    expect.equal("frac with rule 'improve_only' (the KL ignored)", out["improve_only"][1], 0.5)
