"""Public tests of the notebook exercises: shipped with every student version.

A notebook exercise's probe receives ``nb``, the names its solution cells defined, run after the
notebook's imports (rlref/homework/notebooks.py), and calls them on fixed inputs; the judge
checks the outputs as in test_exercises_core.py. These tests restate what each exercise's check
cell checks, in the form the grader can trust: a check cell runs next to the student's code, a
judge does not. Checks against a formula for the answer are hidden tests (tests/hidden/).

Under pytest the probes run this folder's notebook's own solution cells: ``python -m pytest
tests/test_exercises_notebooks.py`` checks the notebooks without starting a kernel.
"""
import numpy as np

from rlref.advantages import n_step_returns
from rlref.distributions import Categorical
from rlref.gradcheck import numerical_grad
from rlref.nn import init_mlp, mlp_forward
from rlref.homework import expect
from rlref.mdp import exact_J, exact_values, random_mdp, sample_episodes, softmax_policy, two_state_mdp
from rlref.homework.testing import exercise, values_around


# ------------------------------------------------------------------ 00.1: a softplus MLP, forward and backward

def softplus_case(seed=101):
    rng = np.random.default_rng(seed)
    p = {"W1": rng.standard_normal((3, 6)), "b1": rng.standard_normal(6), "W2": rng.standard_normal((6, 2)),
         "b2": rng.standard_normal(2)}
    return p, rng.standard_normal((5, 3)), rng.standard_normal((5, 2))


# W1 = 0 makes z1 = b1: softplus(-50) is about 2e-22, softplus(0) = log 2, softplus(50) = 50 (to double
# precision); W2 = the 3 x 3 identity and b2 = (1, 2, 3) make out = h1 + b2 for each of two inputs
LIMITS = {"W1": np.zeros((2, 3)), "b1": np.array([-50.0, 0.0, 50.0]), "W2": np.eye(3), "b2": np.array([1.0, 2.0, 3.0])}


def softplus_runs(nb):
    p, x, R = softplus_case()
    out, cache = nb.softplus_forward(p, x)
    forward_sum = lambda q: np.sum(nb.softplus_forward(q, x)[0] * R)
    return {"out": out, "grads": nb.softplus_backward(R, cache), "around": values_around(forward_sum, p),
            "limits": nb.softplus_forward(LIMITS, np.ones((2, 2)))[0]}


@exercise("00.1", softplus_runs)
def test_softplus_backward_matches_finite_differences_of_the_forward_pass(out):
    p, x, R = softplus_case()
    expect.as_array("out", out["out"], (5, 2))
    expect.gradient("softplus_backward", out["grads"], expect.differences(out["around"], p))


@exercise("00.1", softplus_runs)
def test_softplus_forward_at_its_limits(out):
    expect.close("out for z1 = (-50, 0, 50)", out["limits"], [[1.0, 2.0 + np.log(2.0), 53.0]] * 2, atol=1e-12)


# ------------------------------------------------------------------ 00.2: a dead relu unit

def dead_unit_runs(nb):
    return {"params": nb.dead_params, "grads": nb.grads_dead, "x": nb.x_kink, "R": nb.R_kink}


@exercise("00.2", dead_unit_runs)
def test_dead_unit_is_off_and_passes_no_gradient(out):
    ref = init_mlp([3, 5, 4, 2], np.random.default_rng(102), activation="relu")
    p, g, x = out["params"], out["grads"], np.asarray(out["x"])
    for k in ref:
        if k != "b1":
            expect.close(f"{k} (only b1 may change)", p[k], ref[k], atol=0.0)
    expect.close("b1[1:] (only b1[0] may change)", np.asarray(p["b1"])[1:], ref["b1"][1:], atol=0.0)
    z1 = x @ np.asarray(p["W1"]) + np.asarray(p["b1"])
    expect.true((z1[:, 0] < 0).all(), "unit 0 must be off for every sample")
    expect.true(np.all(np.asarray(g["W1"])[:, 0] == 0.0) and np.asarray(g["b1"])[0] == 0.0,
                "the gradient of the dead unit's weights and bias must be exactly zero")
    expect.true(np.abs(np.asarray(g["W1"])[:, 1:]).max() > 0, "the network must stay alive")
    net = init_mlp([3, 5, 4, 2], np.random.default_rng(102), activation="relu")     # the student's values, a relu MLP
    for k in net:
        net[k] = np.asarray(p[k], dtype=float)

    def loss_w2(w):
        net["W2"] = w
        return np.sum(mlp_forward(net, x)[0] * np.asarray(out["R"]))

    numeric = numerical_grad(loss_w2, np.asarray(p["W2"], dtype=float).copy())
    expect.gradient("grads_dead['W2']", np.asarray(g["W2"]), numeric)


# ------------------------------------------------------------------ 00.3: the reverse KL and its gradient

def kl_case(seed=103):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((6, 4)), rng.standard_normal((6, 4))


def reverse_kl_runs(nb):
    z, z_old = kl_case()
    at_old = lambda zz: nb.reverse_kl_grad(zz.reshape(1, -1), z_old[:1]).ravel()
    return {"kl": nb.reverse_kl(z, z_old), "grad": nb.reverse_kl_grad(z, z_old),
            "grad_around_old": [values_around(lambda zz: at_old(zz)[k], z_old[0].copy()) for k in range(4)]}


@exercise("00.3", reverse_kl_runs)
def test_reverse_kl_value_and_gradient(out):
    z, z_old = kl_case()
    expect.close("KL(pi_z || pi_z_old)", out["kl"], Categorical(z).kl(Categorical(z_old)), rtol=1e-10, atol=1e-12)
    numeric = np.stack([numerical_grad(lambda zi: Categorical(zi[None]).kl(Categorical(z_old[i:i + 1]))[0], z[i].copy())
                        for i in range(len(z))])
    expect.gradient("d KL / d z", out["grad"], numeric)


@exercise("00.3", reverse_kl_runs)
def test_reverse_kl_hessian_at_z_old_is_the_fisher(out):
    z_old = kl_case()[1]
    rows = [expect.differences(v, z_old[0]) for v in out["grad_around_old"]]      # d grad_k / d z_j
    expect.close("the Hessian of the KL at z = z_old", np.stack(rows), Categorical(z_old[:1]).fisher()[0], atol=1e-6)


# ------------------------------------------------------------------ 00.4: the complex-step derivative

POINTS = (1.0, -0.3, 2.5)


def complex_step_runs(nb):
    f = lambda x: np.exp(np.sin(x))
    return {"tiny_h": [nb.complex_step(f, x, 1e-20) for x in POINTS], "h_1e-3": nb.complex_step(f, 1.0, 1e-3)}


@exercise("00.4", complex_step_runs)
def test_complex_step_is_exact_to_rounding_at_tiny_h(out):
    for x, got in zip(POINTS, out["tiny_h"]):
        expect.close(f"d/dx exp(sin x) at x = {x} (h = 1e-20)", got, np.cos(x) * np.exp(np.sin(x)), atol=1e-14)
    err = abs(out["h_1e-3"] - np.cos(1.0) * np.exp(np.sin(1.0)))
    expect.true(1e-10 < err < 1e-5, f"at h = 1e-3 the error is O(h^2) (about 1e-7), got {err:.3g}")


# ------------------------------------------------------------------ 00.5: the empirical Fisher's error against m

Z_F, MS = np.array([[0.5, -1.0, 0.2, 1.5]]), np.array([10, 30, 100, 300, 1000, 3000])


def fisher_errors_runs(nb):
    return {"errs": nb.fisher_errors(Z_F, MS, 200, 7), "other_seeds": [nb.fisher_errors(Z_F, MS[:2], 20, s) for s in (1, 2)]}


@exercise("00.5", fisher_errors_runs)
def test_fisher_errors_fall_like_one_over_root_m(out):
    e = expect.as_array("errors", out["errs"], MS.shape)
    expect.true(np.all(np.diff(e) < 0), "the error must fall as m grows")
    slope = np.polyfit(np.log(MS), np.log(e), 1)[0]
    expect.true(abs(slope + 0.5) < 0.08, f"slope of log error against log m {slope:.3f}; the CLT says -1/2")
    p = Categorical(Z_F).probs[0]
    outer = np.stack([np.outer(np.eye(4)[a] - p, np.eye(4)[a] - p) for a in range(4)])
    spread = np.sqrt(np.einsum("a,aij->", p, (outer - Categorical(Z_F).fisher()[0]) ** 2))
    ratio = e[-1] * np.sqrt(MS[-1]) / spread
    expect.true(0.8 < ratio <= 1.05,
                f"error x sqrt(m) / sd of one outer product is {ratio:.3f} at m = 3000; about 1 expected")
    expect.true(not np.allclose(*out["other_seeds"]), "different seeds must give different runs")


# ------------------------------------------------------------------ 01.1: J of the two-state MDP

def j_two_state_runs(nb):
    rng = np.random.default_rng(111)
    cases = [(2 * rng.standard_normal((2, 2)), rng.uniform(0.1, 1.0)) for _ in range(6)]
    return {"cases": cases, "J": [nb.J_two_state(th, gm) for th, gm in cases]}


@exercise("01.1", j_two_state_runs)
def test_j_two_state_is_the_exact_objective(out):
    for (th, gm), got in zip(out["cases"], out["J"]):
        expect.close(f"J at gamma = {gm:.3f}", got, exact_J(two_state_mdp(gm), th), atol=1e-12)


# ------------------------------------------------------------------ 01.2: the optimal constant baseline

def baseline_case(seed=112):
    rng = np.random.default_rng(seed)
    Y = rng.standard_normal((400, 3, 2))
    return 2.0 * Y + Y ** 2 * rng.standard_normal((400, 3, 2)) + 0.5, Y


def rtg_baseline_runs(nb):
    X, Y = baseline_case()
    return nb.optimal_rtg_baseline(X, Y)


@exercise("01.2", rtg_baseline_runs)
def test_optimal_rtg_baseline_minimizes_the_second_moment(out):
    X, Y = baseline_case()
    b = expect.as_array("b", out, (3, 2))
    second = lambda b_: ((X - b_ * Y) ** 2).mean(axis=0)
    for h in (1e-3, -1e-3):
        expect.true((second(b + h) > second(b)).all(), f"moving b by {h} must raise the second moment in every coordinate")


# ------------------------------------------------------------------ 01.3: REINFORCE on the tabular MDP

def tabular_mdp():
    return random_mdp(4, 3, np.random.default_rng(1), gamma=0.8, p_terminate=0.1)


def tabular_reinforce_runs(nb):
    mdp = tabular_mdp()
    return {"curves": [nb.tabular_reinforce(mdp, 50, 20, 1.0, seed) for seed in range(8)],
            "still": nb.tabular_reinforce(mdp, 3, 5, 0.0, 0)}


def optimal_J(mdp):
    V = np.zeros(mdp.n_states)
    for _ in range(3000):
        V = (mdp.R + mdp.gamma * mdp.P @ V).max(axis=1)
    return mdp.mu0 @ V


@exercise("01.3", tabular_reinforce_runs)
def test_tabular_reinforce_runs_learn(out):
    mdp = tabular_mdp()
    J0 = exact_J(mdp, np.zeros((4, 3)))
    curves = np.array([expect.as_array(f"curve of seed {k}", c, (51,)) for k, c in enumerate(out["curves"])])
    expect.close("J before the first update", curves[:, 0], np.full(8, J0), atol=1e-12)
    expect.true(len(np.unique(np.round(curves[:, -1], 12))) == 8, "the eight seeds must give eight different runs")
    expect.close("J at lr = 0", expect.as_array("curve at lr = 0", out["still"], (4,)), np.full(4, J0), atol=1e-12)
    closed = (curves[:, -1].mean() - J0) / (optimal_J(mdp) - J0)
    expect.true(closed > 0.7, f"the runs close {closed:.0%} of the gap to J* on average; at least 70 % expected")


# ------------------------------------------------------------------ 02.1: GAE by the backward recursion

# the hand-worked case of test_exercises_returns.py (GAE.2): gamma = lam = 0.5, one env, T = 3
HAND = [np.array([[1.0], [0.0], [2.0]]), np.array([[0.5], [0.2], [0.1]]), np.array([[0.2], [0.1], [0.3]])]
HAND_TERM = np.array([[0.0], [1.0], [0.0]])


def my_gae_runs(nb):
    rng = np.random.default_rng(112)
    r, v, v2 = (rng.standard_normal((10, 2)) for _ in range(3))
    dones = (rng.random((10, 2)) < 0.2).astype(float)
    later = r + 5.0 * (np.cumsum(dones, axis=0) - dones > 0)
    return {"hand": nb.my_gae(*HAND, np.zeros((3, 1)), np.zeros((3, 1)), 0.5, 0.5),
            "hand_terminated": nb.my_gae(*HAND, HAND_TERM, HAND_TERM, 0.5, 0.5),
            "rollout": nb.my_gae(r, v, v2, dones, dones, 0.9, 0.8),
            "later_rewards_changed": nb.my_gae(later, v, v2, dones, dones, 0.9, 0.8), "dones": dones}


@exercise("02.1", my_gae_runs)
def test_my_gae_on_cases_worked_by_hand(out):
    expect.close("A (running on)", out["hand"], [[0.690625], [0.3625], [2.05]], atol=1e-12)
    expect.close("A (terminated at t = 1)", out["hand_terminated"], [[0.55], [-0.2], [2.05]], atol=1e-12)


@exercise("02.1", my_gae_runs)
def test_my_gae_ends_each_episode(out):
    dones = np.asarray(out["dones"])
    first = np.cumsum(dones, axis=0) - dones == 0
    expect.close("A of each env's first episode when only later rewards change",
                 expect.as_array("A", out["later_rewards_changed"], dones.shape)[first],
                 expect.as_array("A", out["rollout"], dones.shape)[first], atol=1e-12)


# ------------------------------------------------------------------ 02.2: E[A_hat | s, a] of the n-step advantage

def nstep_runs(nb):
    mdp = tabular_mdp()
    theta = np.random.default_rng(5).standard_normal((4, 3))
    probs = softmax_policy(theta)
    V, _ = exact_values(mdp, probs)
    return {"exact": [nb.expected_nstep_advantage(mdp, probs, V, n) for n in (1, 3, 7)],
            "long": nb.expected_nstep_advantage(mdp, probs, 0.6 * V, 400),
            "three": nb.expected_nstep_advantage(mdp, probs, 0.6 * V, 3)}


@exercise("02.2", nstep_runs)
def test_expected_nstep_advantage_limits(out):
    mdp = tabular_mdp()
    probs = softmax_policy(np.random.default_rng(5).standard_normal((4, 3)))
    V, Q = exact_values(mdp, probs)
    for n, got in zip((1, 3, 7), out["exact"]):
        expect.close(f"exact critic, n = {n}: Q - V", got, Q - V[:, None], atol=1e-10)
    expect.close("n = 400 with the critic 0.6 V: Q - 0.6 V", out["long"], Q - 0.6 * V[:, None], atol=1e-10)


@exercise("02.2", nstep_runs)
def test_expected_nstep_advantage_matches_sampled_advantages(out):
    mdp = tabular_mdp()
    theta = np.random.default_rng(5).standard_normal((4, 3))
    V_c = 0.6 * exact_values(mdp, softmax_policy(theta))[0]
    eps = sample_episodes(mdp, theta, np.random.default_rng(6), 20_000)
    last = eps.t == eps.lengths[eps.episode] - 1
    nxt = np.where(last, 0.0, V_c[np.where(last, 0, np.roll(eps.states, -1))])
    T, K = eps.lengths.max(), len(eps)
    pad = lambda x, fill=0.0: _pad(x, eps, T, K, fill)
    ends = pad(last.astype(float), 1.0)
    R3 = n_step_returns(pad(eps.rewards), pad(nxt), ends, ends, mdp.gamma, 3)[eps.t, eps.episode]
    A3, pair = R3 - V_c[eps.states], eps.states * 3 + eps.actions
    want = expect.as_array("E[A_hat | s, a]", out["three"], (4, 3)).ravel()
    z = [(A3[pair == k].mean() - want[k]) / (A3[pair == k].std(ddof=1) / np.sqrt((pair == k).sum())) for k in range(12)]
    expect.true(np.max(np.abs(z)) < 4.5,
                f"sampled 3-step advantages disagree with the expectation: max |z| {np.max(np.abs(z)):.1f}")


def _pad(x, eps, T, K, fill):
    out = np.full((T, K), fill)
    out[eps.t, eps.episode] = x
    return out


# ------------------------------------------------------------------ 02.3: online actor-critic on the tabular MDP

def online_ac_runs(nb):
    mdp = tabular_mdp()
    rng = np.random.default_rng(114)
    steps = []
    for _ in range(6):
        th, V = rng.standard_normal((4, 3)), rng.standard_normal(4)
        s, a, s2, end = int(rng.integers(4)), int(rng.integers(3)), int(rng.integers(4)), bool(rng.integers(2))
        steps.append(((th, V, s, a, s2, end), nb.tabular_online_step(th, V, s, a, 0.7, s2, end, 0.9, 0.1, 0.2)))
    return {"steps": steps, "curves": [nb.run_online_ac(mdp, 640, 0.3, 0.1, seed) for seed in range(12)],
            "still": nb.run_online_ac(mdp, 64, 0.0, 0.1, 0)}


@exercise("02.3", online_ac_runs)
def test_tabular_online_step_follows_the_td_error(out):
    for (th, V, s, a, s2, end), got in out["steps"]:
        th, V, s, a, s2, end = np.asarray(th), np.asarray(V), int(s), int(a), int(s2), bool(end)
        th_new, V_new, delta = got
        target = 0.7 + (0.0 if end else 0.9 * V[s2])
        expect.close("delta", delta, target - V[s], atol=1e-12)
        # the critic moves V(s) towards the fixed target: (1 - lr_v) V(s) + lr_v target, other states unchanged
        want_V = V.copy()
        want_V[s] = (1 - 0.2) * V[s] + 0.2 * target
        expect.close("V after the step", V_new, want_V, atol=1e-12)
        # the actor's change, divided by lr_pi delta, is the gradient of log pi(a|s) (finite differences)
        logp = lambda row: row[a] - np.log(np.exp(row).sum())
        numeric = np.zeros_like(th)
        numeric[s] = numerical_grad(logp, th[s].copy())
        expect.close("(theta_new - theta) / (lr_pi delta)", (np.asarray(th_new) - th) / (0.1 * delta), numeric, atol=1e-6)


@exercise("02.3", online_ac_runs)
def test_online_ac_runs_learn(out):
    mdp = tabular_mdp()
    J0 = exact_J(mdp, np.zeros((4, 3)))
    curves = np.array([expect.as_array(f"curve of seed {k}", c, (20,)) for k, c in enumerate(out["curves"])])
    expect.true(len(np.unique(np.round(curves[:, -1], 12))) == 12, "the twelve seeds must give twelve different runs")
    expect.close("J at lr_pi = 0", expect.as_array("curve at lr_pi = 0", out["still"], (2,)), np.full(2, J0), atol=1e-12)
    gain = curves[:, -1] - J0
    expect.true(gain.mean() > 3 * gain.std(ddof=1) / np.sqrt(12), "the runs do not clearly improve on J(theta = 0)")


# ------------------------------------------------------------------ 03.1: the natural gradient of a 1-D Gaussian

GAUSS_CASES = ((0.3, np.array([1.0, -2.0])), (-1.2, np.array([0.5, 0.7])), (0.8, np.array([-1.5, 0.1])))


def gaussian_natural_runs(nb):
    return [nb.gaussian_natural(g, ls) for ls, g in GAUSS_CASES]


@exercise("03.1", gaussian_natural_runs)
def test_gaussian_natural_solves_the_fisher_system(out):
    for (ls, g), got in zip(GAUSS_CASES, out):
        x = expect.as_array(f"F^-1 g at log_std = {ls}", got, (2,))
        # the Fisher as the covariance of the score, by quadrature over a = mu + sigma eps (Gauss-Hermite)
        eps, w = np.polynomial.hermite_e.hermegauss(40)
        w = w / w.sum()
        score = np.stack([eps / np.exp(ls), eps ** 2 - 1.0])                 # (2, 40) d log p / d(mu, log sigma)
        F = (score * w) @ score.T
        expect.close(f"F x at log_std = {ls}", F @ x, g, atol=1e-9)


# ------------------------------------------------------------------ 03.2: the empirical Fisher's error, through a network

def empirical_fisher_runs(nb):
    from rlref.algos import npg
    from rlref.policy import init_policy
    rng = np.random.default_rng(120)
    policy, obs = init_policy([3, 6, 3], rng, out_gain=1.0), rng.standard_normal((200, 3))
    F = npg.fisher_matrix(npg.fisher_factor(policy, obs, "exact"))
    return {"errs": nb.empirical_fisher_errors(policy, obs, F, (1, 4, 16, 64), 5),
            "seeds": [nb.empirical_fisher_errors(policy, obs, F, (1,), s) for s in (1, 2)]}


@exercise("03.2", empirical_fisher_runs)
def test_empirical_fisher_error_falls_like_one_over_root_k(out):
    e = expect.as_array("errors", out["errs"], (4,))
    expect.true(np.all(np.diff(e) < 0), "the error must fall as k grows")
    slope = np.polyfit(np.log([1, 4, 16, 64]), np.log(e), 1)[0]
    expect.true(abs(slope + 0.5) < 0.1, f"slope of log error against log k {slope:.3f}; the CLT says -1/2")
    expect.true(not np.allclose(*out["seeds"]), "different seeds must give different runs")


# ------------------------------------------------------------------ 03.3: the Woodbury solve

def woodbury_case(seed=125):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((20, 60)), rng.standard_normal(60)


def woodbury_runs(nb):
    Z, g = woodbury_case()
    return [nb.woodbury_solve(Z, g, lam) for lam in (1e-2, 1.0)]


@exercise("03.3", woodbury_runs)
def test_woodbury_solve_against_a_dense_solve(out):
    Z, g = woodbury_case()
    for lam, got in zip((1e-2, 1.0), out):
        want = np.linalg.solve(Z.T @ Z + lam * np.eye(60), g)
        expect.close(f"x at lam = {lam}", got, want, atol=1e-8 * np.abs(want).max())


# ------------------------------------------------------------------ 04.3: the maximal step

def max_step_case(seed=303):
    rng = np.random.default_rng(seed)
    B = rng.standard_normal((5, 5))
    return B @ B.T + 0.1 * np.eye(5), rng.standard_normal(5)


def my_max_step_runs(nb):
    F, x = max_step_case()
    return [nb.my_max_step(x, lambda v: F @ v, delta) for delta in (1e-3, 0.05)]


@exercise("04.3", my_max_step_runs)
def test_my_max_step_puts_the_model_kl_on_the_budget(out):
    F, x = max_step_case()
    for delta, s in zip((1e-3, 0.05), out):
        s = expect.as_array(f"s (max_kl = {delta})", s, x.shape)
        expect.close(f"1/2 s^T F s / max_kl (max_kl = {delta})", 0.5 * s @ F @ s / delta, 1.0, atol=1e-10)
        expect.true(s @ x > 0, f"s must point along x (max_kl = {delta})")
        expect.close(f"s / |s| against x / |x| (max_kl = {delta})", s / np.linalg.norm(s), x / np.linalg.norm(x), atol=1e-12)


# ------------------------------------------------------------------ 05.1, 05.2: PPO's clipped term and the beta rule

# worked by hand with eps = 0.2: (ratio, A) -> (min(r A, clip(r) A), its derivative in log r)
CLIP_CASES = (((1.5, 1.0), (1.2, 0.0)), ((0.5, 1.0), (0.5, 0.5)), ((0.5, -1.0), (-0.8, 0.0)),
              ((1.5, -1.0), (-1.5, -1.5)), ((1.0, 2.0), (2.0, 2.0)))


def clip_case(seed=141):
    rng = np.random.default_rng(seed)
    log_r = rng.uniform(-0.6, 0.6, 400)
    log_r = log_r[(np.abs(np.exp(log_r) - 1.2) > 1e-3) & (np.abs(np.exp(log_r) - 0.8) > 1e-3)]   # away from the kinks
    return log_r, np.where(rng.random(len(log_r)) < 0.5, -1.0, 1.0) * rng.uniform(0.1, 2.0, len(log_r))


def clip_term_runs(nb):
    log_r, A = clip_case()
    h = 1e-6
    ratio, As = np.array([c[0][0] for c in CLIP_CASES]), np.array([c[0][1] for c in CLIP_CASES])
    return {"hand": [nb.clip_term(ratio, As, 0.2), nb.clip_term_dlogp(ratio, As, 0.2)],
            "dlogp": nb.clip_term_dlogp(np.exp(log_r), A, 0.2),
            "plus": nb.clip_term(np.exp(log_r + h), A, 0.2), "minus": nb.clip_term(np.exp(log_r - h), A, 0.2)}


@exercise("05.1", clip_term_runs)
def test_clip_term_on_cases_worked_by_hand(out):
    value, dlogp = out["hand"]
    expect.close("the clipped term (PPO.1)", value, [c[1][0] for c in CLIP_CASES], atol=1e-12)
    expect.close("its derivative in log r (PPO.2)", dlogp, [c[1][1] for c in CLIP_CASES], atol=1e-12)


@exercise("05.1", clip_term_runs)
def test_clip_term_derivative_matches_central_differences(out):
    numeric = (np.asarray(out["plus"]) - np.asarray(out["minus"])) / 2e-6
    expect.close("d/d log r of the clipped term", out["dlogp"], numeric, atol=1e-6)


BETA_CASES = ((1.0, 0.01 / 1.5, 1.0), (1.0, np.nextafter(0.01 / 1.5, 0), 0.5), (1.0, 1.5 * 0.01, 1.0),
              (1.0, np.nextafter(1.5 * 0.01, 1), 2.0), (1.5e-3, 0.0, 1e-3), (800.0, 1.0, 1e3), (1e-3, 0.0, 1e-3))


def banded_beta_runs(nb):
    return [nb.banded_beta(beta, d, 0.01, 1e-3, 1e3) for beta, d, _ in BETA_CASES]


@exercise("05.2", banded_beta_runs)
def test_banded_beta_at_its_boundaries(out):
    for (beta, d, want), got in zip(BETA_CASES, out):
        expect.equal(f"beta after beta = {beta}, d = {d!r} (kl_target 0.01, band [1e-3, 1e3])", got, want)


# ------------------------------------------------------------------ 04.1: per-decision importance sampling

def per_decision_case(seed=301):
    from rlref.mdp import random_mdp, sample_episodes
    mdp = random_mdp(4, 3, np.random.default_rng(seed), gamma=0.9, p_terminate=0.05)
    theta_b = np.random.default_rng(seed + 1).standard_normal((4, 3))
    theta = theta_b + 0.5 * np.random.default_rng(seed + 2).standard_normal((4, 3))
    return mdp, theta_b, theta, sample_episodes(mdp, theta_b, np.random.default_rng(seed + 3), 200)


def per_decision_runs(nb):
    from rlref.offpolicy import truncate_episodes
    mdp, theta_b, theta, episodes = per_decision_case()
    return {"full": nb.per_decision_estimate(episodes, theta, theta_b, mdp.gamma),
            "cut": nb.per_decision_estimate(truncate_episodes(episodes, 5), theta, theta_b, mdp.gamma),
            "same_policy": nb.per_decision_estimate(episodes, theta_b, theta_b, 0.5)}


@exercise("04.1", per_decision_runs)
def test_per_decision_estimates_match_the_package(out):
    from rlref.offpolicy import is_return_estimates, truncate_episodes
    mdp, theta_b, theta, episodes = per_decision_case()
    for key, eps in (("full", episodes), ("cut", truncate_episodes(episodes, 5))):
        want = is_return_estimates(mdp, theta_b, theta, eps, per_decision=True)
        expect.close(f"per-decision estimates ({key} episodes)", out[key], want, rtol=1e-10, atol=1e-12)


@exercise("04.1", per_decision_runs)
def test_per_decision_weights_are_one_on_policy(out):
    mdp, theta_b, theta, episodes = per_decision_case()
    G = np.bincount(episodes.episode, weights=0.5 ** episodes.t * episodes.rewards, minlength=len(episodes))
    expect.close("on-policy estimates = discounted returns (gamma 0.5)", out["same_policy"], G, atol=1e-12)


# ------------------------------------------------------------------ 04.2: the coupling bound, summed

COUPLING_GRID = ((0.3, 2.0, 0.9), (0.01, 1.0, 0.99), (0.9, 0.5, 0.5), (1e-6, 1.0, 0.9))


def coupling_runs(nb):
    from rlref.mdp import exact_J, exact_values, random_mdp, softmax_policy
    from rlref.offpolicy import surrogate_exact
    mdp = random_mdp(4, 3, np.random.default_rng(180), gamma=0.9, p_terminate=0.05)
    theta_old = np.random.default_rng(181).standard_normal((4, 3))
    p_old = softmax_policy(theta_old)
    V, Q = exact_values(mdp, p_old)
    eps = float(np.abs(Q - V[:, None]).max())
    rng, points = np.random.default_rng(402), []
    for _ in range(300):
        theta = theta_old + rng.choice([0.03, 0.3, 3.0]) * rng.standard_normal((4, 3))
        alpha = 0.5 * np.abs(softmax_policy(theta) - p_old).sum(axis=1).max()
        gap = abs(exact_J(mdp, theta) - surrogate_exact(mdp, theta_old, theta))
        points.append((alpha, eps, gap, float(nb.coupling_gap_bound(alpha, eps, mdp.gamma))))
    return {"grid": [float(nb.coupling_gap_bound(*c)) for c in COUPLING_GRID], "mdp": points, "gamma": mdp.gamma}


@exercise("04.2", coupling_runs)
def test_coupling_bound_sums_the_series(out):
    for (alpha, eps, gamma), got in zip(COUPLING_GRID, out["grid"]):
        series = sum(gamma ** t * 4 * alpha * eps * (1 - (1 - alpha) ** t) for t in range(20_000))
        expect.close(f"bound / sum of the series at alpha {alpha}, eps {eps}, gamma {gamma}", got / series, 1.0, atol=1e-8)


@exercise("04.2", coupling_runs)
def test_coupling_bound_holds_on_the_tabular_mdp_and_below_the_papers(out):
    gamma = out["gamma"]
    for alpha, eps, gap, bound in out["mdp"]:
        expect.true(gap <= bound, f"|J - L_old| = {gap:.3g} above the bound {bound:.3g} (alpha {alpha:.3g})")
        expect.true(bound <= 4 * eps * gamma * alpha ** 2 / (1 - gamma) ** 2 * (1 + 1e-12),
                    f"the bound {bound:.3g} must not exceed 4 eps gamma alpha^2 / (1 - gamma)^2")


# ------------------------------------------------------------------ 04.4: conjugate gradient

def spd_case(n, cond, seed):
    Q, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((n, n)))
    return (Q * np.logspace(0, -np.log10(cond), n)) @ Q.T


def my_cg_runs(nb):
    b = np.random.default_rng(402).standard_normal(30)
    good, bad = spd_case(30, 10.0, 401), spd_case(30, 1e4, 403)
    return {"solve": nb.my_cg(lambda v: good @ v, b, 30), "k3": nb.my_cg(lambda v: bad @ v, b, 3),
            "k1": nb.my_cg(lambda v: bad @ v, b, 1)}


@exercise("04.4", my_cg_runs)
def test_my_cg_solves_in_n_steps_and_minimizes_over_the_krylov_space(out):
    b = np.random.default_rng(402).standard_normal(30)
    good, bad = spd_case(30, 10.0, 401), spd_case(30, 1e4, 403)
    expect.close("30 iterations on a 30 x 30 system", out["solve"], np.linalg.solve(good, b), atol=1e-8)
    for k in (1, 3):
        # x_k minimizes 1/2 x^T A x - b^T x over span{b, A b, ..., A^(k-1) b}: solve that projected problem
        V = np.linalg.qr(np.stack([np.linalg.matrix_power(bad, j) @ b for j in range(k)], axis=1))[0]
        want = V @ np.linalg.solve(V.T @ bad @ V, V.T @ b)
        expect.close(f"the iterate after {k} products", out[f"k{k}"], want, atol=1e-8 * np.abs(want).max())


# ------------------------------------------------------------------ 04.5: exact TRPO at two radii (an experiment)

def radius_runs_of(nb):
    return {str(d): {k: np.asarray(v, dtype=float) for k, v in run.items()} for d, run in nb.radius_runs.items()}


@exercise("04.5", radius_runs_of)
def test_radius_runs_keep_the_trust_region_and_improve(out):
    from rlref.mdp import exact_J, random_mdp
    J0 = exact_J(random_mdp(4, 3, np.random.default_rng(180), gamma=0.9, p_terminate=0.05),
                 np.random.default_rng(181).standard_normal((4, 3)))
    expect.true(set(out) == {"0.003", "1.0"}, f"radius_runs must have the radii 0.003 and 1.0, got {sorted(out)}")
    for d, run in out.items():
        expect.true(len(run["kl"]) == 5 and len(run["kl_full"]) == 5 and len(run["J"]) == 6,
                    f"max_kl {d}: 5 iterations (kl, kl_full) and 6 values of J")
        expect.close(f"J(theta_0) of the run at max_kl {d}", run["J"][0], J0, atol=1e-12)
        expect.true(np.all(run["kl"] <= float(d) * (1 + 1e-12)), f"an accepted KL above max_kl = {d}")
        expect.true(np.all(np.diff(run["J"]) > 0), f"at max_kl = {d}, J should rise at every iteration")
    expect.true(out["1.0"]["J"][-1] > out["0.003"]["J"][-1], "the larger radius should get further in 5 iterations")


@exercise("04.5", radius_runs_of)
def test_radius_runs_show_the_model_failing_at_the_large_radius(out):
    err = {d: np.mean(np.abs(run["kl_full"] / float(d) - 1)) for d, run in out.items()}
    expect.true(err["1.0"] > 3 * err["0.003"], f"mean |KL_full / max_kl - 1|: {err['1.0']:.3g} at 1.0 against "
                f"{err['0.003']:.3g} at 0.003; the quadratic model should be far worse at the large radius")


# ------------------------------------------------------------------ 06.1-06.4: distributed PPO

ALPHA_CASES = ((2.0, 1), (2.0, 2), (2.0, 8), (1.5, 3), (1.5, 64))


def alpha_hat_runs(nb):
    return [float(nb.exact_alpha_hat(alpha, W)) for alpha, W in ALPHA_CASES]


@exercise("06.1", alpha_hat_runs)
def test_exact_alpha_hat_compounds_to_alpha(out):
    for (alpha, W), got in zip(ALPHA_CASES, out):
        expect.close(f"exact_alpha_hat({alpha}, {W}) ** {W}", got ** W, alpha, atol=1e-12)
        expect.true(1.0 < got <= alpha, f"exact_alpha_hat({alpha}, {W}) must lie in (1, alpha], got {got}")


SHARES = ([100, 156], [1, 1, 1], [5, 50, 500, 1])


def share_weight_runs(nb):
    return [np.asarray(nb.share_weights(n_w), dtype=float) for n_w in SHARES]


@exercise("06.2", share_weight_runs)
def test_share_weights_give_the_gradient_of_the_union(out):
    rng = np.random.default_rng(306)
    for n_w, c in zip(SHARES, out):
        per_sample = [rng.standard_normal((n, 4)) for n in n_w]            # per-sample gradients of each worker
        weighted = sum(c_w * g.mean(axis=0) for c_w, g in zip(c, per_sample))
        expect.close(f"sum_w c_w g_w for shares {n_w}", weighted, np.concatenate(per_sample).mean(axis=0), atol=1e-12)


def unmerge_case(seed=303):
    rng = np.random.default_rng(seed)
    cases = []
    for n_a, n_b in ((200, 64), (5, 1000), (1000, 3)):
        x_a, x_b = rng.normal(2.0, 3.0, (n_a, 2)), rng.normal(-1.0, 0.5, (n_b, 2))
        cases.append((x_a, x_b))
    return cases


def unmerge_runs(nb):
    stats = lambda x: {"mean": x.mean(axis=0), "var": x.var(axis=0), "count": float(len(x))}
    out = []
    for x_a, x_b in unmerge_case():
        got = nb.my_rms_unmerge(stats(np.concatenate([x_a, x_b])), stats(x_a))
        out.append({k: np.asarray(got[k], dtype=float) for k in ("mean", "var", "count")})
    return out


@exercise("06.3", unmerge_runs)
def test_unmerge_recovers_the_added_data(out):
    for (x_a, x_b), got in zip(unmerge_case(), out):
        expect.close(f"count ({len(x_a)} + {len(x_b)})", got["count"], len(x_b), atol=1e-9)
        expect.close(f"mean of the added data ({len(x_a)} + {len(x_b)})", got["mean"], x_b.mean(axis=0), atol=1e-9)
        expect.close(f"variance of the added data ({len(x_a)} + {len(x_b)})", got["var"], x_b.var(axis=0), atol=1e-7)


def stale_runs(nb):
    return {str(tau): np.asarray(J, dtype=float) for tau, J in nb.stale_J.items()}


@exercise("06.4", stale_runs)
def test_stale_exact_gradients_learn_more_slowly(out):
    from rlref.mdp import exact_J, random_mdp
    J0 = exact_J(random_mdp(4, 3, np.random.default_rng(180), gamma=0.9, p_terminate=0.05),
                 np.random.default_rng(181).standard_normal((4, 3)))
    expect.true(sorted(out, key=int) == ["0", "8", "16", "32"], f"stale_J must hold tau 0, 8, 16, 32, got {sorted(out)}")
    for tau, J in out.items():
        expect.true(len(J) == 201, f"tau = {tau}: 201 values of J (theta_0 to theta_200), got {len(J)}")
        expect.close(f"J(theta_0) of the run with tau = {tau}", J[0], J0, atol=1e-12)
        expect.true(J[-1] > J0, f"tau = {tau}: the run should end above J(theta_0)")
    means = [float(np.mean(out[t])) for t in ("0", "8", "16", "32")]
    expect.true(all(a > b for a, b in zip(means, means[1:])), f"mean J over the run against tau 0, 8, 16, 32: {means}")


# ------------------------------------------------------------------ 05.3-05.6: k2, reward scaling, the KL's curvature, false early stops

def k2_runs(nb):
    return {"bias": float(nb.k2_rel_bias), "p": np.asarray(nb.p_e3, dtype=float), "q": np.asarray(nb.q_e3, dtype=float)}


@exercise("05.3", k2_runs)
def test_k2_relative_bias_is_exact(out):
    expect.close("the logits of exercise 3", out["p"], [[1.0, 0.5, -0.5, -1.0]], atol=0)
    expect.close("the new logits of exercise 3", out["q"], [[0.6, 0.9, -0.2, -1.4]], atol=0)
    po = np.exp(out["p"][0] - np.logaddexp.reduce(out["p"][0]))
    pn = np.exp(out["q"][0] - np.logaddexp.reduce(out["q"][0]))
    log_r = np.log(pn) - np.log(po)
    kl = float(np.sum(po * np.log(po / pn)))
    expect.close("(E[k2] - KL) / KL", out["bias"], (0.5 * np.sum(po * log_r ** 2) - kl) / kl, atol=1e-9)


def reward_scaling_case(seed=144):
    rng = np.random.default_rng(seed)
    return -rng.uniform(0, 10, 300), rng.random(300) < 0.03


def reward_scaling_runs(nb):
    r, d = reward_scaling_case()
    return np.asarray(nb.my_reward_scaling(r, d, 0.9), dtype=float)


@exercise("05.4", reward_scaling_runs)
def test_my_reward_scaling_divides_by_the_std_of_all_returns_so_far(out):
    r, d = reward_scaling_case()
    R, returns, want = 0.0, [], []
    for t in range(len(r)):
        R = 0.9 * R + r[t]
        returns.append(R)
        x = np.array(returns)
        # the prior of rms_init (count 1e-4, mean 0, variance 1) merged with all R_1..R_t at once (NORM.1)
        n = 1e-4 + len(x)
        var = (1e-4 * 1.0 + len(x) * x.var() + x.mean() ** 2 * 1e-4 * len(x) / n) / n
        want.append(r[t] / np.sqrt(var + 1e-8))
        R = 0.0 if d[t] else R
    expect.close("scaled rewards", out, np.array(want), rtol=1e-8, atol=1e-10)


HESSIAN_POINTS = ((0.0, 0.0, 0.5, -0.3), (1.0, -0.5, -0.2, 0.4), (0.3, 0.2, 0.3, 0.2), (-1.0, 0.1, 2.0, -1.0))


def gaussian_hessian_runs(nb):
    return [np.asarray(nb.gaussian_kl_hessian(*pt), dtype=float) for pt in HESSIAN_POINTS]


def gaussian_kl_1d(mu0, ell0, mu, ell):
    return ell - ell0 + (np.exp(2 * ell0) + (mu - mu0) ** 2) / (2 * np.exp(2 * ell)) - 0.5


@exercise("05.5", gaussian_hessian_runs)
def test_gaussian_kl_hessian_matches_second_differences(out):
    h = 1e-4
    for (mu0, ell0, mu, ell), H in zip(HESSIAN_POINTS, out):
        f = lambda x: gaussian_kl_1d(mu0, ell0, x[0], x[1])
        x, E = np.array([mu, ell]), np.eye(2) * h
        numeric = np.array([[(f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j]) + f(x - E[i] - E[j])) / (4 * h * h)
                             for j in range(2)] for i in range(2)])
        expect.close(f"the Hessian at (mu, ell) = ({mu}, {ell}), old ({mu0}, {ell0})", H, numeric, rtol=1e-4, atol=1e-5)
    expect.close("at the old policy: the Fisher diag(1 / sigma^2, 2)", out[2], np.diag([np.exp(-0.4), 2.0]), atol=1e-12)


E6_OLD, E6_NEW = [[1.0, 0.5, -0.5, -1.0]], [[1.1, 0.4, -0.45, -1.0]]


def false_stop_runs(nb):
    return {k: np.asarray(v, dtype=float) for k, v in nb.est_e6.items()}


@exercise("05.6", false_stop_runs)
def test_false_stops_of_k1_and_k3_at_a_minibatch_of_128(out):
    po = np.exp(np.array(E6_OLD[0]) - np.logaddexp.reduce(E6_OLD[0]))
    pn = np.exp(np.array(E6_NEW[0]) - np.logaddexp.reduce(E6_NEW[0]))
    kl = float(np.sum(po * np.log(po / pn)))
    expect.true(sorted(out) == ["k1", "k3"], f"est_e6 must hold k1 and k3, got {sorted(out)}")
    for name, v in out.items():
        expect.true(v.shape == (1000,), f"{name}: 1000 minibatch means, got shape {v.shape}")
        z = (v.mean() - kl) / (v.std() / np.sqrt(len(v)))
        expect.true(abs(z) < 4.5, f"{name}: mean {v.mean():.5f} against the exact KL {kl:.5f} (z = {z:.1f})")
    rates = {name: float(np.mean(v > 2 * kl)) for name, v in out.items()}
    expect.true(rates["k1"] > 0.10 and rates["k3"] < 0.02, f"false-stop rates at twice the KL: {rates}")

