"""Public tests of the homework exercises on returns, advantages, value targets and running
statistics: shipped with every student version.

As in test_exercises_core.py: a probe calls the student's code on fixed inputs, a judge checks
the outputs, here against cases worked out by hand (written in the comments), the recursions and
invariants the quantities obey, and finite differences of the student's own losses. The brute-force
sums and the formulas themselves are hidden tests.
"""
import numpy as np

from rlref.advantages import discount_cumsum, gae, td_residuals
from rlref.homework import expect
from rlref.homework.testing import exercise, values_around
from rlref.normalize import rms_merge
from rlref.value import value_loss_and_grad

GAMMA, LAMS = 0.9, (0.0, 0.7, 1.0)


# ------------------------------------------------------------------ PG.3, GAE.1, GAE.2: returns and advantages

def rollout(seed=8, T=12, E=3):
    """Rewards, values, next values, terminations and ends (terminated or truncated), (T, E)."""
    rng = np.random.default_rng(seed)
    r, v, v2 = rng.standard_normal((T, E)), rng.standard_normal((T, E)), rng.standard_normal((T, E))
    term = (rng.random((T, E)) < 0.15).astype(float)
    trunc = ((rng.random((T, E)) < 0.15) & (term == 0)).astype(float)
    return r, v, v2, term, np.maximum(term, trunc)


# A hand-worked case, one env, T = 4, gamma = 0.5: x = 1, 2, 3, 4 with an episode ending at t = 1.
#   no bootstrap:  y_3 = 4,  y_2 = 3 + 4/2 = 5,   y_1 = 2 (the episode ends), y_0 = 1 + 2/2 = 2
#   bootstrap 10:  y_3 = 4 + 10/2 = 9,  y_2 = 3 + 9/2 = 7.5,  y_1 = 2,  y_0 = 2
HAND_X, HAND_DONES = np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([[0.0], [1.0], [0.0], [0.0]])


def discount_cumsum_runs():
    r, _, _, _, dones = rollout()
    return {"hand": discount_cumsum(HAND_X, 0.5, HAND_DONES), "hand_bootstrap": discount_cumsum(HAND_X, 0.5, HAND_DONES, [10.0]),
            "gamma_0": discount_cumsum(r, 0.0, dones), "rollout": discount_cumsum(r, GAMMA, dones, r[0]),
            "rollout_no_bootstrap": discount_cumsum(r, GAMMA, dones)}


@exercise("PG.3", discount_cumsum_runs)
def test_discount_cumsum_on_a_case_worked_by_hand(out):
    expect.close("y (no bootstrap)", out["hand"], [[2.0], [2.0], [5.0], [4.0]], atol=1e-12)
    expect.close("y (bootstrap 10)", out["hand_bootstrap"], [[2.0], [2.0], [7.5], [9.0]], atol=1e-12)


@exercise("PG.3", discount_cumsum_runs)
def test_discount_cumsum_keeps_its_recursion_within_episodes(out):
    r, _, _, _, dones = rollout()
    expect.close("y at gamma = 0", out["gamma_0"], r, atol=1e-12)
    for key, boot in (("rollout", r[0]), ("rollout_no_bootstrap", np.zeros(3))):
        y = expect.as_array(key, out[key], r.shape)
        expect.close(f"y_t - gamma (1 - done_t) y_t+1 ({key}), t < T - 1", y[:-1] - GAMMA * (1 - dones[:-1]) * y[1:],
                     r[:-1], atol=1e-12)
        expect.close(f"y_T-1 - gamma (1 - done) bootstrap ({key})", y[-1] - GAMMA * (1 - dones[-1]) * boot, r[-1], atol=1e-12)


# A hand-worked case for the TD residuals and GAE, one env, T = 3, gamma = lam = 0.5:
#   r = 1, 0, 2; V(s_t) = 0.5, 0.2, 0.1; V(s_t+1) = 0.2, 0.1, 0.3
#   running on:           delta = 0.6, -0.15, 2.05;  A_hat = 0.690625, 0.3625, 2.05
#   terminated at t = 1:  delta = 0.6, -0.2,  2.05;  A_hat = 0.55,    -0.2,   2.05
HAND = [np.array([[1.0], [0.0], [2.0]]), np.array([[0.5], [0.2], [0.1]]), np.array([[0.2], [0.1], [0.3]])]
HAND_TERM = np.array([[0.0], [1.0], [0.0]])


def td_residuals_runs():
    r, v, v2, term, _ = rollout()
    return {"hand": td_residuals(*HAND, np.zeros((3, 1)), 0.5), "hand_terminated": td_residuals(*HAND, HAND_TERM, 0.5),
            "gamma_0": td_residuals(r, v, v2, term, 0.0), "rollout": td_residuals(r, v, v2, term, GAMMA),
            "other_next_values": td_residuals(r, v, v2 + 1.0, term, GAMMA)}


@exercise("GAE.1", td_residuals_runs)
def test_td_residuals_on_a_case_worked_by_hand(out):
    expect.close("delta", out["hand"], [[0.6], [-0.15], [2.05]], atol=1e-12)
    expect.close("delta (terminated at t = 1)", out["hand_terminated"], [[0.6], [-0.2], [2.05]], atol=1e-12)


@exercise("GAE.1", td_residuals_runs)
def test_td_residuals_ignore_the_next_value_after_a_termination(out):
    r, v, _, term, _ = rollout()
    expect.close("delta at gamma = 0", out["gamma_0"], r - v, atol=1e-12)
    change = expect.as_array("delta", out["other_next_values"], r.shape) - expect.as_array("delta", out["rollout"], r.shape)
    expect.close("the change of delta when every V(s_t+1) grows by 1", change, GAMMA * (1 - term), atol=1e-12)


def gae_runs():
    r, v, v2, term, dones = rollout()
    later = r + 5.0 * (np.cumsum(dones, axis=0) - dones > 0)          # rewards changed after each first end
    return {"hand": gae(*HAND, np.zeros((3, 1)), np.zeros((3, 1)), 0.5, 0.5),
            "hand_terminated": gae(*HAND, HAND_TERM, HAND_TERM, 0.5, 0.5),
            "rollout": [gae(r, v, v2, term, dones, GAMMA, lam) for lam in LAMS],
            "later_rewards_changed": gae(later, v, v2, term, dones, GAMMA, 0.7),
            "delta": td_residuals(r, v, v2, term, GAMMA)}


@exercise("GAE.2", gae_runs)
def test_gae_on_a_case_worked_by_hand(out):
    for key, want in (("hand", [0.690625, 0.3625, 2.05]), ("hand_terminated", [0.55, -0.2, 2.05])):
        A_hat, R_hat = out[key]
        expect.close(f"A_hat ({key})", A_hat, np.array(want)[:, None], atol=1e-12)
        expect.close(f"R_hat ({key})", R_hat, np.array(want)[:, None] + HAND[1], atol=1e-12)


@exercise("GAE.2", gae_runs)
def test_gae_invariants(out):
    r, v, _, _, dones = rollout()
    for lam, (A_hat, R_hat) in zip(LAMS, out["rollout"]):
        expect.close(f"R_hat - A_hat at lam = {lam}", np.asarray(R_hat) - np.asarray(A_hat), v, atol=1e-12)
    expect.close("A_hat at lam = 0 (the TD residuals of your td_residuals)", out["rollout"][0][0], out["delta"], atol=1e-12)
    first_episode = np.cumsum(dones, axis=0) - dones == 0                # up to and including each env's first end
    A_changed = expect.as_array("A_hat", out["later_rewards_changed"][0], r.shape)
    expect.close("A_hat of each env's first episode when only later rewards change", A_changed[first_episode],
                 expect.as_array("A_hat", out["rollout"][1][0], r.shape)[first_episode], atol=1e-12)


# ------------------------------------------------------------------ NORM.1, PPO.5, PPO.4

def _two_batches(seed=9):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((7, 3)) + 2.0, 3.0 * rng.standard_normal((11, 3))


def rms_merge_runs():
    stats = lambda d: {"mean": d.mean(axis=0), "var": d.var(axis=0), "count": len(d)}
    return rms_merge(*[stats(d) for d in _two_batches()])


@exercise("NORM.1", rms_merge_runs)
def test_rms_merge_equals_the_statistics_of_the_union(out):
    both = np.concatenate(_two_batches())
    expect.close("count", out["count"], 18.0)
    expect.close("mean of the union", out["mean"], both.mean(axis=0), rtol=1e-12, atol=1e-12)
    expect.close("variance of the union (NORM.1)", out["var"], both.var(axis=0), rtol=1e-12, atol=1e-12)


def _value_case(seed=10):
    rng = np.random.default_rng(seed)
    R_hat, V_old = rng.standard_normal(10), rng.standard_normal(10)
    v = V_old + np.where(rng.random(10) < 0.5, 1, -1) * rng.uniform(0.05, 0.5, 10)
    return np.where(np.abs(np.abs(v - V_old) - 0.2) < 1e-3, v + 0.01, v), R_hat, V_old   # away from the kinks


# Worked by hand, N = 1, V_old = 0, clip 0.2: v = 1 clips to 0.2.
#   R_hat = 0.5: (1 - 0.5)^2 = 0.25 beats (0.2 - 0.5)^2 = 0.09: L = 0.25, dL/dv = 2 (1 - 0.5) = 1
#   R_hat = 1.5: (0.2 - 1.5)^2 = 1.69 beats 0.25: L = 1.69, and the clipped term is flat in v: dL/dv = 0
def value_loss_runs():
    v, R_hat, V_old = _value_case()
    loss = lambda u: value_loss_and_grad(u, R_hat)[0]
    clipped = lambda u: value_loss_and_grad(u, R_hat, V_old, 0.2)[0]
    return {"hand": value_loss_and_grad(np.array([1.0, 2.0]), np.zeros(2))[:2],
            "hand_clip_low": value_loss_and_grad(np.ones(1), np.array([0.5]), np.zeros(1), 0.2)[:2],
            "hand_clip_high": value_loss_and_grad(np.ones(1), np.array([1.5]), np.zeros(1), 0.2)[:2],
            "plain": value_loss_and_grad(v, R_hat)[:2], "plain_around": values_around(loss, v.copy()),
            "clipped": value_loss_and_grad(v, R_hat, V_old, 0.2)[:2], "clipped_around": values_around(clipped, v.copy()),
            "clip_inactive": value_loss_and_grad(v, R_hat, v - 0.01, 0.2)[:2]}


@exercise("PPO.5", value_loss_runs)
def test_value_losses_on_cases_worked_by_hand(out):
    for key, (L, dv) in (("hand", (2.5, [1.0, 2.0])), ("hand_clip_low", (0.25, [1.0])), ("hand_clip_high", (1.69, [0.0]))):
        expect.close(f"L_v ({key})", out[key][0], L, atol=1e-12)
        expect.close(f"dL_v/dv ({key})", out[key][1], dv, atol=1e-12)


@exercise("PPO.5", value_loss_runs)
def test_value_loss_derivatives_match_finite_differences_of_the_losses(out):
    v = _value_case()[0]
    for key in ("plain", "clipped"):
        expect.gradient(f"dL_v/dv ({key})", out[key][1], expect.differences(out[key + "_around"], v))


@exercise("PPO.5", value_loss_runs)
def test_clipped_value_loss_bounds_the_plain_one(out):
    expect.true(out["clipped"][0] >= out["plain"][0] - 1e-12,
                f"the clipped L_v ({out['clipped'][0]:.6g}) is the mean of a max, so at least the plain one "
                f"({out['plain'][0]:.6g})")
    expect.close("clipped L_v when no value moved by clip_eps (it equals the plain one)", out["clip_inactive"][0],
                 out["plain"][0], atol=1e-12)
    expect.close("dL_v/dv when no value moved by clip_eps", out["clip_inactive"][1], out["plain"][1], atol=1e-12)
