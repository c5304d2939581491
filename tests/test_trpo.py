"""TRPO (rlref/algos/trpo.py): Fisher-vector products, conjugate gradient, the step size, the line
search and its invariants, the surrogate's gradient, bad configuration, and learning on CartPole
through the command line."""

import numpy as np
import pytest

from rlref.algos import trpo
from rlref.checks import agreement_checks, loss_checks, run_checks
from rlref.policy import matrix_free_fisher
from rlref.errors import ConfigError, NonFiniteError
from rlref.gradcheck import check_grad, numerical_grad
from rlref.nn import flatten, unflatten
from rlref.policy import init_policy, policy_forward
from rlref.rollout import collect, make_envs, start

from helpers import cli  # noqa: E402


def problem(rng, gaussian, N=64, sizes=(3, 5, 2), spread=0.5):
    """A small random policy (perturbed so that nothing is at its initial symmetry), a batch of
    observations, actions sampled from the policy, and advantages."""
    policy = init_policy(list(sizes), rng, gaussian=gaussian, out_gain=1.0)
    for k in policy:
        policy[k] = policy[k] + spread * rng.standard_normal(policy[k].shape)
    obs = rng.standard_normal((N, sizes[0]))
    actions = policy_forward(policy, obs)[0].sample(rng)
    return policy, obs, actions, rng.standard_normal(N)


def mean_kl(policy_old, policy_new, obs):
    """KLbar(old || new), computed here from the distributions' own kl (TRPO.3)."""
    return float(policy_forward(policy_old, obs)[0].kl(policy_forward(policy_new, obs)[0]).mean())


# ------------------------------------------------------------------------------ Fisher products

@pytest.mark.parametrize("gaussian", [False, True])
def test_three_fisher_products_agree(rng, gaussian):
    policy, obs, _, _ = problem(rng, gaussian, N=16)
    F = matrix_free_fisher(policy, obs)                                          # explicit (P, P)
    assert np.allclose(F, F.T, rtol=0, atol=1e-14) and np.linalg.eigvalsh(F).min() > -1e-12
    for _ in range(3):
        v = rng.standard_normal(F.shape[0])
        explicit = F @ v
        scale = np.abs(explicit).max()
        matrix_free = trpo.fisher_vector_product(policy, obs, 0.0)(v)      # (TRPO.6)
        fd = trpo.fisher_vector_product_fd(policy, obs, 0.0)(v)            # (TRPO.7)
        assert np.abs(matrix_free - explicit).max() <= 1e-12 * scale
        assert np.abs(fd - explicit).max() <= 1e-7 * scale                 # O(h^2) + O(u / h)
        damped = trpo.fisher_vector_product(policy, obs, 0.3)(v)
        assert np.abs(damped - (explicit + 0.3 * v)).max() <= 1e-12 * (scale + np.abs(v).max())


def test_fisher_product_on_a_subsample_is_the_subsample_fisher(rng):
    policy, obs, actions, A_hat = problem(rng, False, N=40)
    config = trpo.Config(fisher_frac=0.25, damping=0.05, cg_iters=60, cg_tol=1e-13)
    _, info = trpo.trpo_step(policy, obs, actions, A_hat, config, np.random.default_rng(7))
    sub = trpo.fisher_subsample(40, 0.25, np.random.default_rng(7))
    assert len(sub) == 10 and len(set(sub.tolist())) == 10
    F_sub = matrix_free_fisher(policy, obs[sub]) + 0.05 * np.eye(info["g"].size)
    assert np.allclose(info["x"], np.linalg.solve(F_sub, info["g"]), rtol=1e-8, atol=1e-10)


# ------------------------------------------------------------------------------ conjugate gradient

def spd(rng, n, cond):
    Q, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return (Q * np.logspace(0, -np.log10(cond), n)) @ Q.T


@pytest.mark.parametrize("cond", [1.0, 1e2, 1e4])
def test_cg_matches_direct_solve(rng, cond):
    n = 30
    A, b = spd(rng, n, cond), rng.standard_normal(n)
    x, residual, iters = trpo.conjugate_gradient(lambda p: A @ p, b, max_iters=5 * n, tol=1e-13)
    exact = np.linalg.solve(A, b)
    assert np.linalg.norm(x - exact) <= 1e-9 * np.linalg.norm(exact)
    assert residual <= 1e-13 and np.linalg.norm(b - A @ x) <= 1e-11 * np.linalg.norm(b)
    if cond == 1.0:
        assert iters == 1                                                  # A = I: one step


def test_cg_iteration_cap_and_residual(rng):
    A, b = spd(rng, 30, 1e4), rng.standard_normal(30)
    x, residual, iters = trpo.conjugate_gradient(lambda p: A @ p, b, max_iters=3, tol=1e-13)
    assert iters == 3 and residual > 1e-3
    assert abs(residual - np.linalg.norm(b - A @ x) / np.linalg.norm(b)) <= 1e-10
    x0, r0, k0 = trpo.conjugate_gradient(lambda p: A @ p, np.zeros(30))
    assert k0 == 0 and r0 == 0.0 and not np.any(x0)


def test_cg_raises_on_non_positive_curvature(rng):
    Q, _ = np.linalg.qr(rng.standard_normal((10, 10)))
    eig = np.linspace(1.0, 2.0, 10)
    eig[3] = -0.5
    A = (Q * eig) @ Q.T                                                    # indefinite
    with pytest.raises(np.linalg.LinAlgError, match="non-positive curvature p\\^T A p = -5.000e-01 at iteration 1"):
        trpo.conjugate_gradient(lambda p: A @ p, Q[:, 3])
    with pytest.raises(np.linalg.LinAlgError, match="non-positive curvature"):
        trpo.conjugate_gradient(lambda p: A @ p, Q[:, 3] + 0.1 * Q[:, 0], max_iters=20)
    # a singular Fisher (one sample: rank <= A - 1 = 1) without damping, along its null space
    policy, obs, _, _ = problem(rng, False, N=1)
    F = matrix_free_fisher(policy, obs)
    null = np.linalg.eigh(F)[1][:, 0]
    with pytest.raises(np.linalg.LinAlgError, match="use damping > 0"):
        trpo.conjugate_gradient(trpo.fisher_vector_product(policy, obs, 0.0), null)
    x, _, _ = trpo.conjugate_gradient(trpo.fisher_vector_product(policy, obs, 0.1), null)
    assert np.allclose(x, null / 0.1)                                      # damping makes it solvable
    with pytest.raises(NonFiniteError):
        trpo.conjugate_gradient(lambda p: np.full_like(p, np.nan), np.ones(3))


# ------------------------------------------------------------------------------ the step

@pytest.mark.parametrize("gaussian", [False, True])
def test_step_scaling_quadratic_model_equals_max_kl(rng, gaussian):
    policy, obs, actions, A_hat = problem(rng, gaussian)
    damping = 1e-3
    F = matrix_free_fisher(policy, obs)                                          # undamped (P, P)
    F_damped = F + damping * np.eye(F.shape[0])
    errors = []
    for max_kl in (1e-2, 1e-6, 1e-8, 1e-10):
        config = trpo.Config(max_kl=max_kl, damping=damping, cg_iters=200, cg_tol=1e-12, fisher_frac=1.0)
        new, info = trpo.trpo_step(policy, obs, actions, A_hat, config, rng)
        s = info["full_step"]
        assert abs(0.5 * s @ F_damped @ s - max_kl) <= 1e-10 * max_kl      # (TRPO.5)
        assert abs(info["kl_model"] - max_kl) <= 1e-12 * max_kl
        assert np.linalg.norm(F_damped @ info["x"] - info["g"]) <= 1e-9 * np.linalg.norm(info["g"])
        kl_full = mean_kl(policy, unflatten(flatten(policy) + s, policy), obs)
        assert info["kl_full"] == kl_full
        errors.append(kl_full / (0.5 * s @ F @ s) - 1.0)
    # KLbar(theta_old + s) = 1/2 s^T F s + O(|s|^3) and |s| ~ sqrt(max_kl): the relative error of the
    # quadratic model falls like sqrt(max_kl), tenfold per factor 100 in max_kl
    assert abs(errors[3]) < 1e-3 and 7 < errors[2] / errors[3] < 14 and 7 < errors[1] / errors[2] < 14


def step_cases(rng):
    """trpo_step on random problems, with trust regions from small to far too large."""
    for gaussian in (False, True):
        for max_kl in (1e-3, 0.05, 0.5, 2.0):
            policy, obs, actions, A_hat = problem(rng, gaussian)
            config = trpo.Config(max_kl=max_kl, damping=0.01)
            new, info = trpo.trpo_step(policy, obs, actions, A_hat, config, rng)
            yield policy, obs, actions, A_hat, config, new, info


def test_accepted_step_is_the_applied_step_and_respects_the_trust_region(rng):
    fractions = []
    for policy, obs, actions, A_hat, config, new, info in step_cases(rng):
        assert info["line_search_failed"] == 0.0
        theta_old = flatten(policy)
        assert np.array_equal(flatten(new), theta_old + info["step_frac"] * info["full_step"])
        kl = mean_kl(policy, new, obs)
        assert info["kl"] == kl and kl <= config.max_kl
        L_old = float(np.mean(A_hat))                                      # ratio = 1 at theta_old
        L_new = float(np.mean(np.exp(policy_forward(new, obs)[0].logp(actions)
                                     - policy_forward(policy, obs)[0].logp(actions)) * A_hat))
        assert L_new > L_old and abs(info["surrogate_gain"] - (L_new - L_old)) <= 1e-12
        assert info["expected_gain"] == info["step_frac"] * float(info["g"] @ info["full_step"])
        fractions.append(info["step_frac"])
    assert min(fractions) < 1.0 and max(fractions) == 1.0                  # backtracking was exercised


def test_line_search_rejects_and_restores_theta_old():
    theta_old = np.array([0.1, -0.2, 0.3])
    step = np.array([1.0, 1.0, 1.0])
    for evaluate in (lambda th: (0.0, 0.0),            # never improves
                     lambda th: (1.0, 0.0),            # equal is not an improvement
                     lambda th: (5.0, 1.0)):           # improves but always breaks the KL bound
        theta, frac, trials, L, kl = trpo.line_search(theta_old, step, 1.0, evaluate, max_kl=0.01,
                                                      backtrack_coef=0.5, max_backtracks=4)
        assert theta is theta_old and frac == 0.0 and L == 1.0 and kl == 0.0
        assert [t[0] for t in trials] == [1.0, 0.5, 0.25, 0.125]
    # the first fraction that satisfies both conditions is accepted, the KL is measured there
    evaluate = lambda th: (2.0, float(th[0] - 0.1))   # KL grows with the step
    theta, frac, trials, L, kl = trpo.line_search(theta_old, step, 1.0, evaluate, max_kl=0.3)
    assert frac == 0.25 and len(trials) == 3 and np.array_equal(theta, theta_old + 0.25 * step)
    # the variants of notebook 04
    assert trpo.line_search(theta_old, step, 1.0, lambda th: (2.0, 9.0), 0.3, rule="improve_only")[1] == 1.0
    assert trpo.line_search(theta_old, step, 1.0, lambda th: (0.0, 9.0), 0.3, rule="none")[1] == 1.0


def test_forced_line_search_failure_leaves_parameters_bitwise_unchanged(rng, monkeypatch):
    """A solver that returns -x (the wrong sign) proposes a descent direction of the surrogate:
    no fraction improves it, so the update must keep theta_old and say so."""
    real_cg = trpo.conjugate_gradient
    monkeypatch.setattr(trpo, "conjugate_gradient", lambda *a, **k: (-real_cg(*a, **k)[0], 0.0, 1))
    agent, batch = cartpole_batch(rng)
    before = {part: {k: np.copy(v) for k, v in entries.items()} for part, entries in agent.items()}
    new_agent, diag = trpo.update(agent, batch, trpo.Config(), np.random.default_rng(0))
    assert diag["line_search_failed"] == 1.0 and diag["step_frac"] == 0.0
    assert diag["kl"] == 0.0 and diag["surrogate_gain"] == 0.0 and diag["backtracks"] == 10.0
    for k in before["policy"]:
        assert np.array_equal(new_agent["policy"][k], before["policy"][k])
        assert new_agent["policy"][k].tobytes() == before["policy"][k].tobytes()
    assert not np.array_equal(new_agent["value"]["W1"], before["value"]["W1"])   # V is still fitted


def test_non_finite_advantages_raise_before_anything_changes(rng):
    policy, obs, actions, A_hat = problem(rng, False)
    A_hat[3] = np.nan
    before = flatten(policy).copy()
    with pytest.raises(NonFiniteError, match=r"A_hat must be finite, but A_hat\[3\] = nan"):
        trpo.trpo_step(policy, obs, actions, A_hat, trpo.Config(), rng)
    assert np.array_equal(flatten(policy), before)


# ------------------------------------------------------------------------------ surrogate gradient

@pytest.mark.parametrize("gaussian", [False, True])
def test_surrogate_gradient_against_finite_differences(rng, gaussian):
    policy, obs, actions, A_hat = problem(rng, gaussian, N=12)
    old = unflatten(flatten(policy) + 0.2 * rng.standard_normal(flatten(policy).size), policy)
    logp_old = policy_forward(old, obs)[0].logp(actions)                   # ratio != 1
    L = lambda p: trpo.surrogate(p, obs, actions, A_hat, logp_old)[0]
    g = lambda p: trpo.surrogate_and_grad(p, obs, actions, A_hat, logp_old)[1]
    assert check_grad(L, g, policy) < 1e-8
    # at theta_old the surrogate's gradient is the policy gradient (1/N) sum_i score_i A_hat_i
    dist = policy_forward(policy, obs)[0]
    L0, g0, _ = trpo.surrogate_and_grad(policy, obs, actions, A_hat, dist.logp(actions))
    g0 = flatten(g0)
    assert L0 == pytest.approx(np.mean(A_hat), abs=1e-15)
    reinforce = lambda p: np.mean(policy_forward(p, obs)[0].logp(actions) * A_hat)
    assert np.allclose(g0, flatten(numerical_grad(reinforce, policy)), atol=1e-8)


def test_gradcheck_catalogue_has_trpo_rows():
    rows = [r for r in run_checks(checks=[loss_checks, agreement_checks]) if r[0].startswith("TRPO")]
    assert len(rows) == 6 and all(passed for *_, passed in rows)
    assert all(error < 1e-12 for name, _, error, _ in rows if "matrix-free" in name)


# ------------------------------------------------------------------------------ update, variants

def cartpole_batch(rng, T=32, E=8):
    config = trpo.Config(num_envs=E, n_steps=T, hidden=(16,))
    envs = make_envs("CartPole-v1", E)
    agent = trpo.init_agent(config, 4, 2, False, rng)
    batch = collect(start(envs, 3), agent["policy"], T, rng)
    envs.close()
    return agent, batch


def test_update_on_a_cartpole_batch(rng):
    agent, batch = cartpole_batch(rng)
    config = trpo.Config(max_kl=0.01)
    new_agent, diag = trpo.update(agent, batch, config, np.random.default_rng(1))
    for key in ("kl", "surrogate_gain", "expected_gain", "step_frac", "line_search_failed", "cg_residual",
                "loss_v", "entropy"):
        assert isinstance(diag[key], float), key
    obs = batch.flat(batch.obs[:-1])
    assert diag["kl"] == mean_kl(agent["policy"], new_agent["policy"], obs) and 0 < diag["kl"] <= 0.01
    assert diag["surrogate_gain"] > 0 and diag["cg_residual"] < 1.0
    assert new_agent["opt_v"]["t"] == config.v_epochs * -(-len(obs) // config.v_minibatch)
    # the same update with the same generator is bitwise the same
    again, diag2 = trpo.update(agent, batch, config, np.random.default_rng(1))
    assert diag2 == diag and all(np.array_equal(again["policy"][k], new_agent["policy"][k]) for k in again["policy"])


def test_annealed_radius(rng):
    agent, batch = cartpole_batch(rng)
    config = trpo.Config(max_kl=0.04)
    _, diag = trpo.update(agent, batch, config, np.random.default_rng(1), progress=0.75)
    assert diag["max_kl"] == 0.01 and diag["kl"] <= 0.01
    assert diag["kl_model"] == pytest.approx(0.01, rel=1e-12)                   # (TRPO.5) with the annealed radius
    _, fixed = trpo.update(agent, batch, trpo.Config(max_kl=0.04, anneal_kl=False), np.random.default_rng(1),
                           progress=0.75)
    assert fixed["max_kl"] == 0.04 and fixed["kl_model"] == pytest.approx(0.04, rel=1e-12)


def test_gaussian_update_on_pendulum(rng):
    config = trpo.Config(env="Pendulum-v1", num_envs=4, n_steps=50, hidden=(16,), max_kl=0.02)
    envs = make_envs("Pendulum-v1", 4)
    agent = trpo.init_agent(config, 3, 1, True, rng)
    batch = collect(start(envs, 5), agent["policy"], 50, rng)
    envs.close()
    new_agent, diag = trpo.update(agent, batch, config, rng)
    assert set(new_agent["policy"]) == {"W1", "b1", "W2", "b2", "log_std"}
    assert 0 < diag["kl"] <= 0.02 and diag["line_search_failed"] == 0.0
    assert not np.array_equal(new_agent["policy"]["log_std"], agent["policy"]["log_std"])


def test_variants_for_notebook_03(rng):
    policy, obs, actions, A_hat = problem(rng, False)
    base = dict(max_kl=2.0, damping=0.01, fisher_frac=1.0)
    _, full = trpo.trpo_step(policy, obs, actions, A_hat, trpo.Config(**base, line_search="none"), rng)
    assert full["step_frac"] == 1.0 and full["kl"] == full["kl_full"] > 2.0     # the model is far off
    new, plain = trpo.trpo_step(policy, obs, actions, A_hat,
                                trpo.Config(**base, direction="vanilla", lr=0.5, line_search="none"), rng)
    assert np.array_equal(plain["full_step"], 0.5 * plain["g"]) and np.array_equal(plain["x"], plain["g"])
    F = matrix_free_fisher(policy, obs) + 0.01 * np.eye(plain["g"].size)
    assert plain["kl_model"] == pytest.approx(0.5 * plain["full_step"] @ F @ plain["full_step"], rel=1e-12)
    # the finite-difference product (TRPO.7) gives the same step to its own accuracy
    config = dict(max_kl=0.01, damping=0.1, cg_iters=50, cg_tol=1e-12, fisher_frac=1.0)
    _, fd = trpo.trpo_step(policy, obs, actions, A_hat, trpo.Config(**config, fvp="fd"), rng)
    _, ex = trpo.trpo_step(policy, obs, actions, A_hat, trpo.Config(**config), rng)
    assert np.abs(fd["full_step"] - ex["full_step"]).max() <= 1e-6 * np.abs(ex["full_step"]).max()


# ------------------------------------------------------------------------------ bad configuration

@pytest.mark.parametrize("setting, match", [
    (dict(max_kl=0.0), r"max_kl must be in \(0.0, inf\), got 0.0"), (dict(max_kl=-0.01), "max_kl"),
    (dict(max_kl=float("nan")), "max_kl must be a finite real number"),
    (dict(damping=-1e-3), r"damping must be in \[0.0, inf\)"),
    (dict(cg_iters=True), "cg_iters must be an integer, got True of type bool"),
    (dict(cg_iters=0), r"cg_iters must be an integer in \[1, inf\], got 0"), (dict(cg_iters=2.0), "cg_iters"),
    (dict(backtrack_coef=0.0), r"backtrack_coef must be in \(0.0, 1.0\)"),
    (dict(backtrack_coef=1.0), "backtrack_coef"), (dict(backtrack_coef=1.5), "backtrack_coef"),
    (dict(backtrack_ratio=0.5), "'backtrack_ratio' was renamed: use 'backtrack_coef'"),
    (dict(vf_lr=0.1), "'vf_lr' was renamed: use 'lr_v'"),
    (dict(max_backtracks=0), "max_backtracks"), (dict(fisher_frac=0.0), "fisher_frac"),
    (dict(fisher_frac=1.5), "fisher_frac"), (dict(line_search="kl_only"), "line_search must be one of"),
    (dict(direction="newton"), "direction must be one of"), (dict(fvp="autodiff"), "fvp must be one of"),
    (dict(lr=0.0), "lr"), (dict(v_epochs=0), "v_epochs"), (dict(cg_tol=-1.0), "cg_tol"),
    (dict(gamma=1.1), "gamma"), (dict(lam=-0.5), "lam")])
def test_bad_config_raises_at_construction(setting, match):
    with pytest.raises(ConfigError, match=match):
        trpo.Config(**setting)


def test_presets_are_valid_configs():
    for env, settings in trpo.PRESETS.items():
        assert trpo.Config(env=env, **settings).env == env


def test_bad_setting_on_the_command_line_fails_before_any_env_step(tmp_path):
    done = cli("train", "trpo", "--set", "max_kl=0", "--out", str(tmp_path / "run"))
    assert done.returncode == 2 and "max_kl must be in" in done.stderr and not (tmp_path / "run").exists()


