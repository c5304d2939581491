"""Natural policy gradient (rlref/algos/npg.py): the Fisher, the step, invariances, learning.

Every property is a `check_*` function that raises AssertionError when it does not hold. The
test_ functions run each check on the real code; `test_each_check_catches_a_planted_bug` runs each
check once more with one bug planted (monkeypatch, undone afterwards) and requires it to fail.
"""
import re

import numpy as np
import pytest

from rlref import nn
from rlref.algos import npg
from rlref.checks import agreement_checks, run_checks
from rlref.policy import matrix_free_fisher
from rlref.policy import mean_kl_grad
from rlref.distributions import Categorical
from rlref.errors import ConfigError
from rlref.gradcheck import numerical_jacobian, rel_error
from rlref.mdp import discounted_visitation, exact_grad_J, exact_values, random_mdp, softmax_policy
from rlref.nn import flatten, unflatten
from rlref.policy import init_policy, policy_backward, policy_forward, scale_rows

KINDS = (False, True)                                  # gaussian?


def small_policy(rng, gaussian, N=7, sizes=(3, 5, 4, 3)):
    """A random tanh policy with nonzero biases, N random states and sampled actions."""
    policy = init_policy(list(sizes), rng, gaussian=gaussian, out_gain=1.0)
    for k in policy:
        policy[k] = policy[k] + 0.2 * rng.standard_normal(policy[k].shape)
    obs = rng.standard_normal((N, sizes[0]))
    return policy, obs, policy_forward(policy, obs)[0].sample(rng)


def must_raise(error, match, f, *args, **kwargs):
    """An assertion (not pytest.raises, whose failure is not an AssertionError) that f raises."""
    try:
        f(*args, **kwargs)
    except error as err:
        assert re.search(match, str(err)), str(err)
        return
    raise AssertionError(f"{getattr(f, '__name__', f)} did not raise {error.__name__}")


def vanilla_gradient(policy, obs, a, A_hat):
    """g of (NPG.1) through the surrogate's backward pass."""
    dist, cache = policy_forward(policy, obs)
    return flatten(policy_backward(scale_rows(dist.dlogp(a), A_hat / len(A_hat)), cache))


# ------------------------------------------------------------------ the score matrix and F

def check_score_rows():
    """Row i of score equals the gradient of log pi(a_i|s_i) from its own backward pass."""
    rng = np.random.default_rng(0)
    for gaussian in KINDS:
        policy, obs, a = small_policy(rng, gaussian)
        score = npg.score_matrix(policy, obs, a)                                   # (N, P)
        for i in range(obs.shape[0]):
            dist, cache = policy_forward(policy, obs[i:i + 1])
            row = flatten(policy_backward(dist.dlogp(a[i:i + 1]), cache))
            assert np.abs(score[i] - row).max() < 1e-14, (gaussian, i)


def check_fisher_is_kl_hessian():
    """The exact F = Z^T Z equals the central-difference Hessian of the mean KL at theta_old
    (the gradient-check error <= 1e-6 of README's conventions) and the forward-mode J^T M J of rlref.checks."""
    rng = np.random.default_rng(1)
    for gaussian in KINDS:
        policy, obs, _ = small_policy(rng, gaussian)
        theta_old = flatten(policy)
        F = npg.fisher_matrix(npg.fisher_factor(policy, obs, "exact"))
        old_dist = policy_forward(policy, obs)[0]
        H = numerical_jacobian(lambda t: mean_kl_grad(policy, old_dist, t, obs), theta_old.copy())
        assert rel_error(F, H).max() < 1e-6, (gaussian, rel_error(F, H).max())
        assert np.abs(F - matrix_free_fisher(policy, obs)).max() < 1e-13 * max(1.0, np.abs(F).max())


def check_fisher_symmetric_psd():
    """Both Fishers are exactly symmetric and have no eigenvalue below rounding."""
    rng = np.random.default_rng(2)
    for gaussian in KINDS:
        policy, obs, a = small_policy(rng, gaussian, N=40)
        for kind in npg.FISHERS:
            F = npg.fisher_matrix(npg.fisher_factor(policy, obs, kind, a))
            eig = np.linalg.eigvalsh(F)
            assert np.array_equal(F, F.T), (gaussian, kind)
            assert eig.min() >= -1e-12 * eig.max(), (gaussian, kind, eig.min())


def check_categorical_root():
    """R_i^T R_i of the (A - 1)-row factor equals the logit Fisher diag(p) - p p^T (DIST.4)."""
    rng = np.random.default_rng(3)
    for A in (2, 3, 6):
        logits = 3.0 * rng.standard_normal((50, A))
        logits[0] = [40.0] + [0.0] * (A - 1)                                    # nearly deterministic
        logits[1] = [0.0] * (A - 1) + [40.0]                                    # ... on the last action
        dist = Categorical(logits)
        root = npg._categorical_root(dist.probs)                                # (N, A - 1, A)
        assert root.shape == (50, A - 1, A)
        assert np.abs(np.einsum("nka,nkb->nab", root, root) - dist.fisher()).max() < 1e-15


def check_empirical_converges():
    """E[score score^T | s] is the exact per-state Fisher: entrywise z-scores of the empirical F
    against the exact one stay below the Bonferroni bound (alpha = 1e-3 over all entries), and
    the Frobenius error shrinks like 1/sqrt(N)."""
    rng = np.random.default_rng(4)
    for gaussian in KINDS:
        policy, _, _ = small_policy(rng, gaussian, sizes=(3, 4, 3))
        obs = rng.standard_normal((40_000, 3))
        dist, _ = policy_forward(policy, obs)
        a = dist.sample(rng)
        score = npg.score_matrix(policy, obs, a)                                  # (N, P)
        N, P = score.shape
        iu = np.triu_indices(P)                                                   # the distinct entries
        Z = npg.fisher_factor(policy, obs, "exact", weights=np.ones(N))           # F_i = rows of sample i
        per_sample = Z[:(Z.shape[0] // N) * N].reshape(-1, N, P)                  # (k, N, P)
        shared = Z[per_sample.shape[0] * N:]                                      # Gaussian log_std rows
        exact_i = sum(r[:, iu[0]] * r[:, iu[1]] for r in per_sample) + (shared.T @ shared)[iu] / N
        terms = score[:, iu[0]] * score[:, iu[1]] - exact_i                      # mean-zero per sample
        sd = terms.std(axis=0, ddof=1)
        z = terms.mean(axis=0)[sd > 0] / (sd[sd > 0] / np.sqrt(N))
        assert np.abs(z).max() < 5.0, (gaussian, np.abs(z).max())   # 1100 entries * 2 Phi(-5) < 1e-3
        F_exact = npg.fisher_matrix(npg.fisher_factor(policy, obs, "exact"))
        errs = [np.linalg.norm(score[:n].T @ score[:n] / n
                               - npg.fisher_matrix(npg.fisher_factor(policy, obs[:n], "exact")))
                for n in (625, 2500, 10_000, 40_000)]
        slope = np.polyfit(np.log([625, 2500, 10_000, 40_000]), np.log(errs), 1)[0]
        assert -0.75 < slope < -0.3, (gaussian, errs, slope)
        assert errs[-1] < 0.05 * np.linalg.norm(F_exact)


# ------------------------------------------------------------------ solving

def check_triangular_solves():
    rng = np.random.default_rng(5)
    for n in (1, 63, 64, 65, 200):
        L = np.tril(rng.standard_normal((n, n))) + n * np.eye(n)
        b = rng.standard_normal(n)
        assert np.abs(npg.solve_triangular(L, b) - np.linalg.solve(L, b)).max() < 1e-13
        assert np.abs(npg.solve_triangular(L, b, transpose=True) - np.linalg.solve(L.T, b)).max() < 1e-13


def check_routes_agree():
    """(NPG.7) on the R x R matrix and (NPG.6) on the P x P one give one x, equal to a dense solve."""
    rng = np.random.default_rng(6)
    for gaussian in KINDS:
        for N in (5, 60):                                                        # R < P and R > P
            policy, obs, a = small_policy(rng, gaussian, N=N)
            g = rng.standard_normal(flatten(policy).size)
            for kind in npg.FISHERS:
                Z = npg.fisher_factor(policy, obs, kind, a)
                for damping in (1e-3, 1.0):
                    xf, rf = npg.natural_direction(Z, g, damping, "fisher")
                    xw, rw = npg.natural_direction(Z, g, damping, "woodbury")
                    ref = np.linalg.solve(Z.T @ Z + damping * np.eye(Z.shape[1]), g)
                    scale = np.abs(ref).max()
                    assert (rf, rw) == ("fisher", "woodbury")
                    assert np.abs(xf - ref).max() < 1e-9 * scale and np.abs(xw - ref).max() < 1e-9 * scale, \
                        (gaussian, N, kind, damping)
                    auto = npg.natural_direction(Z, g, damping)[1]
                    assert auto == ("woodbury" if Z.shape[0] < Z.shape[1] else "fisher")


def check_singular_raises():
    """Without damping, a singular F is refused with ConfigError: by rank when R < P, by the
    Cholesky pivots when R >= P (a categorical policy's logits can shift), and a matrix NumPy would
    factor only thanks to rounding is refused too. The parameters are never touched."""
    rng = np.random.default_rng(7)
    policy, obs, a = small_policy(rng, False, N=200)
    before = flatten(policy).copy()
    config = npg.Config(damping=0.0)
    for route in ("auto", "fisher", "woodbury"):
        must_raise(ConfigError, "damping", npg.natural_step, policy, obs, a, rng.standard_normal(200),
                   config, route=route)
    Z = npg.fisher_factor(policy, obs[:3], "exact")
    must_raise(ConfigError, "rank at most", npg.natural_direction, Z, np.ones(Z.shape[1]), 0.0)
    K = np.array([[1.0, 1.0], [1.0, 1.0 + 2.0 ** -52]])                        # singular but for rounding
    np.linalg.cholesky(K)                                                       # NumPy alone factors it
    must_raise(ConfigError, "not positive definite", npg.cholesky, K, "K")
    assert np.array_equal(flatten(policy), before)


def check_config_errors():
    for bad in ({"max_kl": 0.0}, {"max_kl": -0.01}, {"max_kl": float("nan")}, {"damping": -1e-3},
                {"n_steps": True}, {"v_iters": True}, {"num_envs": True}, {"fisher": "diagonal"},
                {"lam": 1.5}, {"lr_v": 0.0}):
        must_raise(ConfigError, list(bad)[0], npg.Config, **bad)


# ------------------------------------------------------------------ the step

def check_quadratic_model():
    """1/2 s^T F s = max_kl to rounding, F = the exact Fisher of rlref.checks (built independently);
    with the exact F and no damping, x^T F x = g^T x, the notes' form of (NPG.5)."""
    rng = np.random.default_rng(8)
    for gaussian in KINDS:
        policy, obs, a = small_policy(rng, gaussian, N=60)
        A_hat = rng.standard_normal(60)
        F = matrix_free_fisher(policy, obs)
        for kind in npg.FISHERS:
            for damping in (1e-2, 0.3):
                config = npg.Config(fisher=kind, damping=damping, max_kl=0.01)
                new, diag = npg.natural_step(policy, obs, a, A_hat, config)
                s = flatten(new) - flatten(policy)
                assert abs(0.5 * s @ F @ s / 0.01 - 1) < 1e-10, (gaussian, kind, damping)
                assert abs(diag["kl_model"] / 0.01 - 1) < 1e-12
    policy, obs, a = small_policy(rng, True, N=60)                              # Gaussian: F is invertible
    config = npg.Config(fisher="exact", damping=0.0, max_kl=0.01)
    new, diag = npg.natural_step(policy, obs, a, rng.standard_normal(60), config)
    s = flatten(new) - flatten(policy)
    beta = np.sqrt(2 * 0.01 / diag["gTx"])                                     # the notes' formula
    assert abs(beta / diag["step_size"] - 1) < 1e-10


def check_kl_second_order():
    """The true mean KL(pi_old || pi_new) after the step is max_kl to second order:
    |KL / max_kl - 1| = O(|s|) = O(sqrt(max_kl)), a slope of 1/2 on a log-log plot. (Above ~1e-4
    the next orders still bend the line; below ~1e-9 rounding in the KL itself sets a floor.)"""
    rng = np.random.default_rng(9)
    max_kls = np.logspace(-4, -8, 5)
    for gaussian in KINDS:
        policy, obs, a = small_policy(rng, gaussian, N=60)
        A_hat = rng.standard_normal(60)
        old, _ = policy_forward(policy, obs)
        errs = []
        for max_kl in max_kls:
            new, _ = npg.natural_step(policy, obs, a, A_hat, npg.Config(max_kl=max_kl))
            kl = old.kl(policy_forward(new, obs)[0]).mean()
            errs.append(abs(kl / max_kl - 1))
        slope = np.polyfit(np.log(max_kls), np.log(errs), 1)[0]
        assert 0.45 < slope < 0.55 and errs[-1] < 1e-4, (gaussian, errs, slope)


def _reparameterized(policy, obs, B):
    """The same policy on features obs @ B: W1 -> B^-1 W1."""
    other = policy.copy()
    other["W1"] = np.linalg.solve(B, policy["W1"])
    return other, obs @ B


def check_reparameterization_invariance():
    """New features obs @ B (B invertible), first layer B^-1 W1: the same policy. The natural step
    gives the same new policy in both parameterizations (exactly for a Gaussian policy, whose F is
    invertible; as damping -> 0 for a categorical one); a vanilla gradient step does not."""
    rng = np.random.default_rng(10)
    B = np.array([[3.0, 0.5, 0.0], [0.0, 0.2, 0.0], [1.0, 0.0, 1.5]])
    for gaussian, dampings in ((True, (0.0,)), (False, (1e-6, 1e-9))):
        policy, obs, a = small_policy(rng, gaussian, N=200)
        A_hat = rng.standard_normal(200)
        other, obs_b = _reparameterized(policy, obs, B)
        out = lambda p, o: (policy_forward(p, o)[0].mean if gaussian else policy_forward(p, o)[0].probs)
        assert np.abs(out(policy, obs) - out(other, obs_b)).max() < 1e-13
        gaps = []
        for damping in dampings:
            for kind in npg.FISHERS:
                config = npg.Config(fisher=kind, damping=damping, max_kl=1e-3)
                new, _ = npg.natural_step(policy, obs, a, A_hat, config)
                new_b, _ = npg.natural_step(other, obs_b, a, A_hat, config)
                change = np.abs(out(new, obs) - out(policy, obs)).max()
                gaps.append(np.abs(out(new, obs) - out(new_b, obs_b)).max() / change)
        if gaussian:
            assert max(gaps) < 1e-8, gaps
        else:
            assert max(gaps[2:]) < 1e-3 and max(gaps[2:]) < 0.05 * min(gaps[:2]), gaps   # -> 0 with damping
        # vanilla: theta + alpha g in each parameterization
        v = unflatten(flatten(policy) + 0.1 * vanilla_gradient(policy, obs, a, A_hat), policy)
        v_b = unflatten(flatten(other) + 0.1 * vanilla_gradient(other, obs_b, a, A_hat), other)
        change = np.abs(out(v, obs) - out(policy, obs)).max()
        assert np.abs(out(v, obs) - out(v_b, obs_b)).max() > 0.1 * change


def check_tabular_identity():
    """On the tabular softmax, with the Fisher weighted by the discounted visitation d,
    F x = grad J is solved by x[s] = A(s, .) + c(s): the natural gradient is the advantage up to a
    constant per state (Kakade 2001). grad J itself is not (it carries d(s) pi(a|s))."""
    rng = np.random.default_rng(11)
    mdp = random_mdp(5, 3, rng, gamma=0.9)
    theta = rng.standard_normal((5, 3))
    probs = softmax_policy(theta)
    V, Q = exact_values(mdp, probs)
    advantage = Q - V[:, None]                                                  # (S, A)
    d = discounted_visitation(mdp, probs)                                       # (S,)
    tabular = init_policy([5, 3], rng, out_gain=1.0)
    tabular["W1"], tabular["b1"] = theta.copy(), np.zeros(3)                    # logits of s: theta[s]
    Z = npg.fisher_factor(tabular, np.eye(5), "exact", weights=d)[:, :15]       # the W1 columns
    g = exact_grad_J(mdp, theta).ravel()                                        # (MDP.6)
    x, _ = npg.natural_direction(Z, g, 1e-12, "fisher")
    gap = x.reshape(5, 3) - advantage                                           # (S, A)
    assert np.abs(gap - gap.mean(axis=1, keepdims=True)).max() < 1e-8 * np.abs(advantage).max()
    vanilla = g.reshape(5, 3) - advantage
    assert np.abs(vanilla - vanilla.mean(axis=1, keepdims=True)).max() > 0.1 * np.abs(advantage).max()


def check_update_logs_exact_kl():
    """One update on real batches: discrete (CartPole) and continuous (Pendulum) actions; the
    logged kl is the exact mean KL(pi_old || pi_new) on the batch, kl_model the budget."""
    from rlref.envs import make_envs, spaces_of
    from rlref.rollout import collect, start
    for env_id in ("CartPole-v1", "Pendulum-v1"):
        rng = np.random.default_rng(12)
        config = npg.Config(env=env_id, num_envs=4, n_steps=64, anneal_kl=False)
        envs = make_envs(env_id, config.num_envs)
        obs_dim, act_dim, gaussian, _ = spaces_of(envs)
        agent = npg.init_agent(config, obs_dim, act_dim, gaussian, rng)
        batch = collect(start(envs, 0), agent["policy"], config.n_steps, rng)
        envs.close()
        new, diag = npg.update(agent, batch, config, rng)
        obs = batch.samples_of(batch.obs[:-1])
        kl = policy_forward(agent["policy"], obs)[0].kl(policy_forward(new["policy"], obs)[0]).mean()
        assert diag["kl"] == kl and abs(diag["kl_model"] / config.max_kl - 1) < 1e-12
        assert 0.5 * config.max_kl < diag["kl"] < 2 * config.max_kl, (env_id, diag)
        assert not np.array_equal(flatten(new["value"]), flatten(agent["value"]))


CHECKS = {f.__name__: f for f in (
    check_score_rows, check_fisher_is_kl_hessian, check_fisher_symmetric_psd, check_categorical_root,
    check_empirical_converges, check_triangular_solves, check_routes_agree, check_singular_raises,
    check_config_errors, check_quadratic_model, check_kl_second_order, check_reparameterization_invariance,
    check_tabular_identity, check_update_logs_exact_kl)}


@pytest.mark.parametrize("name", list(CHECKS))
def test_property(name):
    CHECKS[name]()


# ------------------------------------------------------------------ each check can fail

def _wrong_act_grad(h, act):
    """tanh' = 1 - h instead of 1 - h^2, as npg's per-sample backprop sees it (rlref.nn untouched)."""
    return 1.0 - h if act == "tanh" else nn.act_grad(h, act)


def _scaled(f, factor):
    return lambda *args, **kwargs: f(*args, **kwargs) * factor


def _wrap(name, make_wrong):
    """A plant: npg.<name> replaced by make_wrong(the original)."""
    return lambda mp: mp.setattr(npg, name, make_wrong(getattr(npg, name)))


def _diag_without_outer_product(probs):
    """sqrt(p_a) e_a per action: a factor of diag(p), the logit Fisher without its - p p^T."""
    return np.sqrt(probs)[:, :, None] * np.eye(probs.shape[1])


def _pinv_direction(Z, g, damping, route="auto"):
    """A solver that never complains: the pseudo-inverse steps silently through a singular F."""
    return np.linalg.pinv(Z.T @ Z + damping * np.eye(Z.shape[1])) @ g, "fisher"


def _log_kl_zero(natural_step):
    def wrong(*args, **kwargs):
        policy, diag = natural_step(*args, **kwargs)
        return policy, {**diag, "kl": 0.0}
    return wrong


PLANTED = {      # bug: (the check that must catch it, the plant)
    "per-sample backprop with tanh' = 1 - h": (
        "check_score_rows", lambda mp: mp.setattr(npg, "act_grad", _wrong_act_grad)),
    "logit Fisher diag(p) without - p p^T": (
        "check_fisher_is_kl_hessian", _wrap("_categorical_root", lambda f: _diag_without_outer_product)),
    "the same bug, seen by the convergence test": (
        "check_empirical_converges", _wrap("_categorical_root", lambda f: _diag_without_outer_product)),
    "an indefinite 'Fisher' (F - 1e-6 I)": (
        "check_fisher_symmetric_psd",
        _wrap("fisher_matrix", lambda f: lambda Z: f(Z) - 1e-6 * np.eye(Z.shape[1]))),
    "logit-Fisher factor 0.1 % too large": (
        "check_categorical_root", _wrap("_categorical_root", lambda f: _scaled(f, 1.001))),
    "transposed substitution ignores the transpose": (
        "check_triangular_solves", _wrap("solve_triangular", lambda f: lambda L, b, transpose=False: f(L, b))),
    "back substitution with L instead of L^T": (
        "check_routes_agree",
        _wrap("cho_solve", lambda f: lambda L, b: npg.solve_triangular(L, npg.solve_triangular(L, b)))),
    "a pseudo-inverse that silently steps through a singular F": (
        "check_singular_raises", _wrap("natural_direction", lambda f: _pinv_direction)),
    "no validation in Config": (
        "check_config_errors", lambda mp: mp.setattr(npg.Config, "__post_init__", lambda self: None)),
    "step size sqrt(max_kl / x^T F x) (the 2 dropped)": (
        "check_quadratic_model", _wrap("fisher_quadratic", lambda f: _scaled(f, 2.0))),
    "x^T F x 0.1 % too large": (
        "check_kl_second_order", _wrap("fisher_quadratic", lambda f: _scaled(f, 1.001))),
    "a vanilla direction x = g": (
        "check_reparameterization_invariance",
        _wrap("natural_direction", lambda f: lambda Z, g, *a, **k: (g, "fisher"))),
    "visitation weights ignored": (
        "check_tabular_identity", _wrap("fisher_factor", lambda f: lambda *a, weights=None: f(*a))),
    "kl logged as 0 (KL(pi_old || pi_old), measured before the step)": (
        "check_update_logs_exact_kl", _wrap("natural_step", _log_kl_zero)),
}


@pytest.mark.parametrize("bug", list(PLANTED))
def test_each_check_catches_a_planted_bug(bug, monkeypatch):
    name, plant = PLANTED[bug]
    plant(monkeypatch)
    with pytest.raises(AssertionError):
        CHECKS[name]()


def test_every_check_has_a_planted_bug():
    assert {name for name, _ in PLANTED.values()} == set(CHECKS)


def test_gradcheck_catalogue_has_npg_rows_that_catch_planted_bugs(monkeypatch):
    rows = [r for r in run_checks(0, [agreement_checks]) if r[0].startswith("NPG")]
    assert len(rows) == 4 and all(passed for *_, passed in rows), rows
    for bug, caught_by in (("per-sample backprop with tanh' = 1 - h", "NPG score matrix rows"),
                           ("logit-Fisher factor 0.1 % too large", "NPG exact Fisher")):
        PLANTED[bug][1](monkeypatch)
        failed = [q for q, _, _, passed in run_checks(0, [agreement_checks]) if not passed]
        assert any(q.startswith(caught_by) for q in failed), (bug, failed)
        monkeypatch.undo()
