"""The exact off-policy and trust-region answers of rlref/offpolicy.py for notebook 04:
finite-horizon J (MDP.13), importance weights and both importance-sampling estimators (MDP.15),
the surrogate L_old of the bound (OFF.5) and the minorize-maximize lower bound (MDP.17)."""
import numpy as np
import pytest

from rlref.errors import ConfigError
from rlref.gradcheck import check_grad, numerical_grad
from rlref.mdp import (discounted_returns, exact_J, exact_grad_J, exact_values, policy_transitions, random_mdp,
                       sample_episodes, softmax_policy, two_state_mdp)
from rlref.offpolicy import (exact_J_horizon, importance_weights, is_return_estimates, max_state_kl, mm_lower_bound,
                             surrogate_exact, truncate_episodes)


@pytest.fixture
def setup():
    mdp = random_mdp(4, 3, np.random.default_rng(0), gamma=0.9, p_terminate=0.1)
    theta_old = np.random.default_rng(1).standard_normal((4, 3))
    theta = theta_old + 0.3 * np.random.default_rng(2).standard_normal((4, 3))
    return mdp, theta_old, theta


def test_horizon_limits(setup):
    mdp, theta_old, _ = setup
    _, r_pi = policy_transitions(mdp, softmax_policy(theta_old))
    assert exact_J_horizon(mdp, theta_old, 0) == 0.0
    assert abs(exact_J_horizon(mdp, theta_old, 1) - mdp.mu0 @ r_pi) < 1e-15
    assert abs(exact_J_horizon(mdp, theta_old, 2000) - exact_J(mdp, theta_old)) < 1e-12


def test_two_state_horizon_by_hand():
    # always "go" then "cash": pays 3 at t = 1 (discounted by gamma), so J_1 = 0 and J_2 = 3 gamma
    mdp = two_state_mdp(gamma=0.5)
    theta = np.array([[-50.0, 50.0], [50.0, -50.0]])
    assert abs(exact_J_horizon(mdp, theta, 1)) < 1e-12
    assert abs(exact_J_horizon(mdp, theta, 2) - 1.5) < 1e-12


def test_horizon_against_monte_carlo(setup):
    mdp, theta_old, _ = setup
    episodes = sample_episodes(mdp, theta_old, np.random.default_rng(3), 20_000)
    for H in (1, 3, 8):
        G = discounted_returns(truncate_episodes(episodes, H), mdp.gamma)
        z = (G.mean() - exact_J_horizon(mdp, theta_old, H)) / (G.std(ddof=1) / np.sqrt(len(G)))
        assert abs(z) < 4, (H, z)


def test_importance_weights_by_hand(setup):
    mdp, theta_old, theta = setup
    episodes = sample_episodes(mdp, theta_old, np.random.default_rng(4), 50)
    w = importance_weights(mdp, theta_old, theta, episodes)
    p, q = softmax_policy(theta), softmax_policy(theta_old)
    for k in range(len(episodes)):
        s, a, _ = episodes[k]
        rho = p[s, a] / q[s, a]
        steps = slice(episodes.starts[k], episodes.starts[k] + episodes.lengths[k])
        assert np.allclose(w[steps], np.cumprod(rho), rtol=1e-12, atol=0)
    assert np.array_equal(importance_weights(mdp, theta_old, theta_old, episodes), np.ones(len(w)))


@pytest.mark.parametrize("per_decision", [False, True])
def test_is_estimators_unbiased(setup, per_decision):
    mdp, theta_old, theta = setup
    episodes = sample_episodes(mdp, theta_old, np.random.default_rng(5), 40_000)
    for H in (2, 6):
        est = is_return_estimates(mdp, theta_old, theta, truncate_episodes(episodes, H), per_decision)
        z = (est.mean() - exact_J_horizon(mdp, theta, H)) / (est.std(ddof=1) / np.sqrt(len(est)))
        assert abs(z) < 4, (H, z)
    # on-policy both reduce to the plain discounted return
    same = is_return_estimates(mdp, theta_old, theta_old, episodes, per_decision)
    assert np.allclose(same, discounted_returns(episodes, mdp.gamma), rtol=1e-12, atol=1e-12)


def test_is_negative_control(setup):
    # forgetting the weights estimates J(theta_old), not J(theta): the z-test must reject
    mdp, theta_old, theta = setup
    episodes = sample_episodes(mdp, theta_old, np.random.default_rng(6), 40_000)
    G = discounted_returns(episodes, mdp.gamma)
    z = (G.mean() - exact_J(mdp, theta)) / (G.std(ddof=1) / np.sqrt(len(G)))
    assert abs(z) > 10


def test_surrogate_touches_J(setup):
    mdp, theta_old, theta = setup
    assert abs(surrogate_exact(mdp, theta_old, theta_old) - exact_J(mdp, theta_old)) < 1e-12
    # same gradient at theta_old: finite differences of L_old against the policy gradient theorem
    check_grad(lambda t: surrogate_exact(mdp, theta_old, t), lambda t: exact_grad_J(mdp, theta_old),
               theta_old.copy())
    # away from theta_old the two differ (the visitation does not follow the new policy)
    assert abs(surrogate_exact(mdp, theta_old, theta) - exact_J(mdp, theta)) > 1e-4


def test_surrogate_by_hand_two_state():
    mdp = two_state_mdp(gamma=0.5)
    theta_old, theta = np.zeros((2, 2)), np.array([[0.0, 1.0], [2.0, 0.0]])
    V, Q = exact_values(mdp, softmax_policy(theta_old))
    # by hand: state 1 is entered at t = 1 w.p. 1/2 (weight gamma = 1/2), then stays each step
    # w.p. 1/2 * 1/2 ("wait" and no exit), discounted by 1/2: d_1 = (1/4) / (1 - 1/8)
    d_old = np.array([1.0, 0.25 / (1 - 0.125)])
    p = softmax_policy(theta)
    want = V[0] + sum(d_old[s] * p[s] @ (Q[s] - V[s]) for s in range(2))
    assert abs(surrogate_exact(mdp, theta_old, theta) - want) < 1e-14


def test_lower_bound(setup):
    mdp, theta_old, _ = setup
    M0, C = mm_lower_bound(mdp, theta_old, theta_old)
    assert abs(M0 - exact_J(mdp, theta_old)) < 1e-12 and C > 0
    g = np.random.default_rng(7)
    for radius in (0.01, 0.1, 1.0, 5.0):
        for _ in range(50):
            theta = theta_old + radius * g.standard_normal(theta_old.shape)
            assert mm_lower_bound(mdp, theta_old, theta)[0] <= exact_J(mdp, theta) + 1e-12
    # max_state_kl has a vanishing gradient at theta_old, so M and J share their gradient there
    n = numerical_grad(lambda t: mm_lower_bound(mdp, theta_old, t)[0], theta_old.copy())
    assert np.abs(n - exact_grad_J(mdp, theta_old)).max() < 1e-6
    assert max_state_kl(mdp, theta_old, theta_old) == 0.0


def test_lower_bound_needs_discount():
    mdp = two_state_mdp(gamma=1.0)
    with pytest.raises(ConfigError, match="gamma < 1"):
        mm_lower_bound(mdp, np.zeros((2, 2)), np.zeros((2, 2)))


def _enumerate_cut_episodes(mdp, probs, horizon):
    """Every episode of the process cut after `horizon` steps, with its probability, as Episodes."""
    S, A = probs.shape
    found, stack = [], [((s,), (), mdp.mu0[s]) for s in range(S) if mdp.mu0[s] > 0]
    while stack:
        states, actions, prob = stack.pop()
        s = states[-1]
        for a in range(A):
            pa = prob * probs[s, a]
            acts = actions + (a,)
            if len(acts) == horizon:                       # cut: every outcome gives this episode
                found.append((states, acts, pa))
                continue
            found.append((states, acts, pa * (1.0 - mdp.P[s, a].sum())))   # terminates here
            stack += [(states + (s2,), acts, pa * mdp.P[s, a, s2]) for s2 in range(S) if mdp.P[s, a, s2] > 0]
    lengths = np.array([len(a) for _, a, _ in found])
    states = np.concatenate([s for s, _, _ in found])
    actions = np.concatenate([a for _, a, _ in found])
    from rlref.mdp import Episodes
    episodes = Episodes(states, actions, mdp.R[states, actions], np.repeat(np.arange(len(found)), lengths),
                        np.concatenate([np.arange(n) for n in lengths]), lengths)
    return episodes, np.array([p for _, _, p in found])


@pytest.mark.parametrize("per_decision", [False, True])
def test_is_estimators_exactly_unbiased_by_enumeration(per_decision):
    mdp = random_mdp(3, 2, np.random.default_rng(11), gamma=0.9, p_terminate=0.3)
    theta_old = np.random.default_rng(12).standard_normal((3, 2))
    theta = theta_old + np.random.default_rng(13).standard_normal((3, 2))
    for H in (1, 2, 4):
        episodes, prob = _enumerate_cut_episodes(mdp, softmax_policy(theta_old), H)
        assert abs(prob.sum() - 1.0) < 1e-12
        est = is_return_estimates(mdp, theta_old, theta, episodes, per_decision)
        assert abs(prob @ est - exact_J_horizon(mdp, theta, H)) < 1e-10   # rounding of the cumulative log-ratios
