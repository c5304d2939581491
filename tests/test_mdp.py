"""Tabular MDPs with exact answers: J, V, Q and the visitation against hand derivations and
independent identities, grad J against finite differences, J against Monte Carlo, and the mean of
every REINFORCE estimator against grad J with a chi-square test (plus the negative control: the
practical estimator without gamma^t fails it)."""
import math

import numpy as np
import pytest

from rlref.errors import ConfigError
from rlref.gradcheck import check_grad
from rlref.mdp import (TabularMDP, discounted_returns, discounted_visitation, exact_J, exact_grad_J,
                       exact_values, policy_transitions, random_mdp, reinforce_estimates,
                       rewards_to_go, sample_episodes, softmax_policy, two_state_mdp)

Z_999 = 3.0902        # standard normal 0.999 quantile: the one-sided alpha = 1e-3 point


def chi2_critical(df, z=Z_999):
    """Upper 1e-3 point of chi-square(df) by Wilson-Hilferty: (X / df)^(1/3) is nearly normal with
    mean 1 - 2 / (9 df) and variance 2 / (9 df), so the quantile is df (1 - c + z sqrt(c))^3 with
    c = 2 / (9 df). It lies 0.2 % .. 3 % above the exact quantile for df = 30 .. 1 (checked below),
    so the tests are slightly conservative: their false-alarm rate is a little under 1e-3."""
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def chi2_survival_even_df(x, df):
    """Exact Pr(chi-square(df) > x) for even df = 2k: exp(-x/2) sum_{j<k} (x/2)^j / j!."""
    return math.exp(-x / 2) * sum((x / 2) ** j / math.factorial(j) for j in range(df // 2))


def chi2_statistic(estimates, g):
    """Hotelling-style n (m - g)^T C^+ (m - g) of n i.i.d. estimates (n, S, A) with mean m against
    g (S, A); returns (statistic, degrees of freedom = rank of C, size of m - g in C's null space).

    Per state the softmax score sums to 0 over actions (MDP.7), so C is singular (rank S (A - 1)):
    the pseudo-inverse keeps the eigen-directions above 1e-9 of the largest. Any part of m - g in
    the null space is invisible to the statistic, so it is returned to be asserted ~0 separately.
    """
    X = estimates.reshape(len(estimates), -1)                      # (n, S*A)
    diff = X.mean(axis=0) - g.ravel()
    eigval, eigvec = np.linalg.eigh(np.cov(X, rowvar=False))
    keep = eigval > 1e-9 * eigval.max()
    z = eigvec.T @ diff                                            # diff in C's eigenbasis
    stat = len(X) * float(np.sum(z[keep] ** 2 / eigval[keep]))
    return stat, int(keep.sum()), float(np.linalg.norm(z[~keep]))


def test_chi2_critical_value_against_exact_tail():
    for df in (2, 4, 8, 12, 20, 30):
        tail = chi2_survival_even_df(chi2_critical(df), df)
        assert 0.6e-3 < tail <= 1e-3, (df, tail)
    assert -2 * math.log(1e-3) < chi2_critical(2) < 1.03 * -2 * math.log(1e-3)   # chi2(2) is Exp(1/2)


# ----------------------------------------------------------------------------- exact answers

def test_two_state_mdp_J_by_hand():
    # Uniform policy (theta = 0), gamma = 1/2. State 1: cash pays 3, wait pays 0 then stays w.p. 1/2:
    #   V1 = 1/2 * 3 + 1/2 * gamma * 1/2 * V1 = 3/2 + V1/8      =>  V1 = 12/7.
    # State 0: safe pays 1 and ends, go pays 0 then moves to state 1:
    #   J = V0 = 1/2 * 1 + 1/2 * gamma * V1 = 1/2 + 3/7 = 13/14.
    assert exact_J(two_state_mdp(0.5), np.zeros((2, 2))) == pytest.approx(13 / 14, rel=1e-14)
    # gamma = 1: V1 = 3/2 + V1/4 => V1 = 2;  J = 1/2 + 1/2 * 2 = 3/2.
    assert exact_J(two_state_mdp(1.0), np.zeros((2, 2))) == pytest.approx(3 / 2, rel=1e-14)
    # gamma = 1/2, pi(go | 0) = 3/4 from theta[0] = (0, log 3); state 1 uniform so V1 = 12/7:
    #   J = 1/4 * 1 + 3/4 * 1/2 * 12/7 = 1/4 + 9/14 = 25/28.
    theta = np.array([[0.0, math.log(3.0)], [0.0, 0.0]])
    assert exact_J(two_state_mdp(0.5), theta) == pytest.approx(25 / 28, rel=1e-14)


def test_softmax_policy_is_stable():
    theta = np.array([[1e3, -1e3, 0.0], [0.1, 0.2, 0.3]])
    probs = softmax_policy(theta)
    np.testing.assert_allclose(probs[0], [1.0, 0.0, 0.0], atol=1e-300)
    np.testing.assert_allclose(probs[1], np.exp(theta[1]) / np.exp(theta[1]).sum(), rtol=1e-14)


@pytest.mark.parametrize("gamma", [0.0, 0.8, 1.0])
def test_bellman_consistency(gamma, rng):
    mdp = random_mdp(5, 3, rng, gamma=gamma, p_terminate=0.2)
    probs = softmax_policy(rng.standard_normal((5, 3)))
    V, Q = exact_values(mdp, probs)
    np.testing.assert_allclose(V, (probs * Q).sum(axis=1), rtol=1e-12)            # V = sum_a pi Q
    np.testing.assert_allclose(Q, mdp.R + gamma * np.einsum("sat,t->sa", mdp.P, V), rtol=1e-12)
    V_iter = np.zeros(5)                          # policy evaluation by iterating the Bellman operator
    for _ in range(400):                          # contraction factor <= 0.8 (termination 0.2)
        V_iter = (probs * (mdp.R + gamma * np.einsum("sat,t->sa", mdp.P, V_iter))).sum(axis=1)
    np.testing.assert_allclose(V, V_iter, rtol=1e-12)


@pytest.mark.parametrize("gamma, q", [(0.9, 0.1), (1.0, 0.3), (0.5, 1.0)])
def test_visitation_identities(gamma, q, rng):
    mdp = random_mdp(4, 3, rng, gamma=gamma, p_terminate=q)
    theta = rng.standard_normal((4, 3))
    probs = softmax_policy(theta)
    d = discounted_visitation(mdp, probs)
    P_pi, r_pi = policy_transitions(mdp, probs)
    assert d @ r_pi == pytest.approx(exact_J(mdp, theta), rel=1e-12)           # J = sum_s d r_pi
    # Every step survives w.p. 1 - q, so sum_s d = sum_t gamma^t (1 - q)^t = 1 / (1 - gamma (1 - q)).
    assert d.sum() == pytest.approx(1.0 / (1.0 - gamma * (1.0 - q)), rel=1e-12)
    series, dist_t = np.zeros(4), mdp.mu0.copy()              # sum_t gamma^t Pr(s_t = .) directly
    for _ in range(300):                                      # (gamma (1 - q))^300 < 1e-13
        series, dist_t = series + dist_t, gamma * dist_t @ P_pi
    np.testing.assert_allclose(d, series, rtol=1e-12)


@pytest.mark.parametrize("make", [lambda rng: two_state_mdp(0.5),
                                  lambda rng: random_mdp(4, 3, rng, gamma=0.8, p_terminate=0.2),
                                  lambda rng: random_mdp(3, 5, rng, gamma=1.0, p_terminate=0.3)])
def test_exact_grad_J_against_finite_differences(make, rng):
    mdp = make(rng)
    theta = rng.standard_normal((mdp.n_states, mdp.n_actions))
    error = check_grad(lambda th: exact_J(mdp, th), lambda th: exact_grad_J(mdp, th), theta)
    assert error < 1e-8                                       # typically ~1e-10


# ----------------------------------------------------------------------------- sampling

def test_episodes_layout_and_determinism():
    mdp = two_state_mdp(0.5)
    theta = np.array([[0.0, 1.0], [0.5, 0.0]])
    episodes = sample_episodes(mdp, theta, np.random.default_rng(3), 2000)
    assert len(episodes) == 2000 and episodes.lengths.sum() == len(episodes.states)
    for k in range(50):
        states, actions, rewards = episodes[k]
        assert states[0] == 0                                 # mu0 = (1, 0)
        np.testing.assert_array_equal(rewards, mdp.R[states, actions])
        assert (actions[0] == 0) == (len(states) == 1)        # "safe" ends at once, "go" never does
        assert np.all(states[1:] == 1) and np.all(actions[1:-1] == 1)   # in state 1 only "wait" goes on
    again = sample_episodes(mdp, theta, np.random.default_rng(3), 2000)
    assert all(np.array_equal(getattr(episodes, n), getattr(again, n))
               for n in ("states", "actions", "rewards", "t", "episode", "lengths"))
    with pytest.raises(ValueError, match="read-only"):
        mdp.P[0, 0, 0] = 0.5


def test_exact_J_and_visitation_against_monte_carlo():
    rng = np.random.default_rng(20240601)
    mdp = random_mdp(4, 3, rng, gamma=0.8, p_terminate=0.2)
    theta = rng.standard_normal((4, 3))
    episodes = sample_episodes(mdp, theta, rng, 40_000)
    G0 = discounted_returns(episodes, mdp.gamma)                                 # (K,)
    assert abs(G0.mean() - exact_J(mdp, theta)) < 4 * G0.std(ddof=1) / math.sqrt(len(G0))
    visits = np.zeros((len(episodes), 4))                    # sum_t gamma^t 1[s_t = s] per episode
    np.add.at(visits, (episodes.episode, episodes.states), mdp.gamma ** episodes.t)
    d = discounted_visitation(mdp, softmax_policy(theta))
    se = visits.std(axis=0, ddof=1) / math.sqrt(len(episodes))
    assert np.all(np.abs(visits.mean(axis=0) - d) < 4 * se), (visits.mean(axis=0), d, se)


def test_episode_cap_raises():
    mdp = random_mdp(3, 2, np.random.default_rng(0), p_terminate=1e-3)
    with pytest.raises(ConfigError, match="still running after max_steps=5"):
        sample_episodes(mdp, np.zeros((3, 2)), np.random.default_rng(1), 100, max_steps=5)


# ----------------------------------------------------------------------------- REINFORCE

def direct_returns(rewards, gamma):
    """G_t = sum_{u >= t} gamma^(u - t) r_u for every t of one episode, from the definition."""
    T = len(rewards)
    return [sum(gamma ** (u - t) * rewards[u] for u in range(t, T)) for t in range(T)]


def loop_estimate(probs, states, actions, psi, b, weights):
    """sum_t weights_t score_t (psi_t - b_t) for one episode, score_t built entry by entry (MDP.7)."""
    g = np.zeros(probs.shape)
    for t in range(len(states)):
        score = np.zeros(probs.shape)
        score[states[t]] = -probs[states[t]]
        score[states[t], actions[t]] += 1.0
        g += weights[t] * score * (psi[t] - b[t])
    return g


@pytest.mark.parametrize("variant, discount_weights, baseline", [
    ("total", True, "none"), ("total", True, "mean"), ("total", True, "value"),
    ("reward_to_go", True, "none"), ("reward_to_go", False, "none"), ("reward_to_go", True, "mean"),
    ("reward_to_go", True, "value"), ("reward_to_go", False, "value")])
def test_estimates_against_loops(variant, discount_weights, baseline, rng):
    mdp = random_mdp(3, 3, rng, gamma=0.7, p_terminate=0.25)
    theta = rng.standard_normal((3, 3))
    probs = softmax_policy(theta)
    episodes = sample_episodes(mdp, theta, rng, 12)
    V, _ = exact_values(mdp, probs)
    psi = []                                                     # the returns the scores multiply
    for k in range(12):
        G = direct_returns(episodes[k][2], mdp.gamma)
        psi.append([G[0]] * len(G) if variant == "total" else G)    # (MDP.9) or (MDP.10)
    got = reinforce_estimates(mdp, theta, episodes, variant, discount_weights, baseline)
    for k in range(12):
        states, actions, _ = episodes[k]
        T = len(states)
        if baseline == "mean":                                   # leave-one-out, over steps
            others = [x for j in range(12) if j != k for x in psi[j]]
            b = [sum(others) / len(others)] * T
        else:
            b = V[states] if baseline == "value" else [0.0] * T
        exact = variant == "reward_to_go" and discount_weights
        weights = [mdp.gamma ** t if exact else 1.0 for t in range(T)]
        want = loop_estimate(probs, states, actions, psi[k], b, weights)
        np.testing.assert_allclose(got[k], want, rtol=1e-11, atol=1e-13)


def test_returns_against_direct_sums(rng):
    mdp = random_mdp(3, 2, rng, gamma=0.9, p_terminate=0.1)
    episodes = sample_episodes(mdp, np.zeros((3, 2)), rng, 20)
    G_all, G0 = rewards_to_go(episodes, mdp.gamma), discounted_returns(episodes, mdp.gamma)
    for k in range(20):
        G = direct_returns(episodes[k][2], mdp.gamma)
        np.testing.assert_allclose(G_all[episodes.starts[k]:episodes.starts[k] + len(G)], G, rtol=1e-12)
        assert G0[k] == pytest.approx(G[0], rel=1e-12)


@pytest.fixture(scope="module")
def batch():
    """A gamma = 0.8 MDP with episodes of mean length 10, a policy, and 40 000 episodes, shared by
    the statistical tests."""
    rng = np.random.default_rng(777)
    mdp = random_mdp(4, 3, rng, gamma=0.8, p_terminate=0.1)
    theta = rng.standard_normal((4, 3))
    return mdp, theta, sample_episodes(mdp, theta, rng, 40_000)


@pytest.mark.parametrize("variant, baseline", [
    ("total", "none"), ("total", "mean"), ("total", "value"),
    ("reward_to_go", "none"), ("reward_to_go", "mean"), ("reward_to_go", "value")])
def test_reinforce_mean_matches_exact_gradient(variant, baseline, batch):
    mdp, theta, episodes = batch
    g = exact_grad_J(mdp, theta)
    stat, df, null_part = chi2_statistic(reinforce_estimates(mdp, theta, episodes, variant,
                                                             baseline=baseline), g)
    assert df == 4 * (3 - 1)                                 # rank S (A - 1): rows of scores sum to 0
    assert null_part < 1e-10 * max(1.0, np.abs(g).max())
    assert stat < chi2_critical(df), (stat, chi2_critical(df))


def test_negative_control_practical_estimator_fails(batch):
    """Without gamma^t (MDP.12) the mean misses grad J of the discounted objective (gamma = 0.8)."""
    mdp, theta, episodes = batch
    for baseline in ("none", "value"):
        estimates = reinforce_estimates(mdp, theta, episodes, "reward_to_go", discount_weights=False,
                                        baseline=baseline)
        stat, df, _ = chi2_statistic(estimates, exact_grad_J(mdp, theta))
        assert stat > 10 * chi2_critical(df), stat                         # measured 455 and 2126


def test_baselines_lower_the_variance(batch):
    mdp, theta, episodes = batch
    trace = {name: np.cov(reinforce_estimates(mdp, theta, episodes, v, baseline=b)
                          .reshape(len(episodes), -1), rowvar=False).trace()
             for name, v, b in [("total", "total", "none"), ("reward_to_go", "reward_to_go", "none"),
                                ("value", "reward_to_go", "value")]}
    assert trace["reward_to_go"] < 0.5 * trace["total"], trace            # measured ~0.17
    assert trace["value"] < 0.5 * trace["reward_to_go"], trace            # measured ~0.13


# ----------------------------------------------------------------------------- bad input

def _mdp_args(**change):
    args = dict(P=np.full((2, 2, 2), 0.25), R=np.zeros((2, 2)), mu0=np.array([0.5, 0.5]), gamma=0.9)
    args.update(change)
    return args


@pytest.mark.parametrize("change, message", [
    (dict(P=np.full((2, 2, 3), 0.25)), r"P must have shape \(S, A, S\)"),
    (dict(P=np.full((2, 2), 0.25)), "P must have 3 dimension"),
    (dict(R=np.zeros((2, 3))), r"R must have shape \(2, 2\)"),
    (dict(mu0=np.ones(3) / 3), r"mu0 must have shape"),
    (dict(gamma=1.5), r"gamma must be in \[0.0, 1.0\]"),
    (dict(gamma=-0.1), r"gamma must be in \[0.0, 1.0\]"),
    (dict(P=np.where(np.arange(8).reshape(2, 2, 2) == 3, 1.5, 0.0)),
     r"P must hold probabilities in \[0, 1\], got P\[0, 1, 1\] = 1.5"),
    (dict(mu0=np.array([-0.5, 1.5])), r"mu0 must hold probabilities in \[0, 1\], got mu0\[0\] = -0.5"),
    (dict(R=np.array([[0.0, np.inf], [0.0, 0.0]])), r"R must be finite, but R\[0, 1\] = inf"),
    (dict(P=np.full((2, 2, 2), 0.6)), r"sum to at most 1 .* got sum\(P\[0, 0, :\]\) = 1.2"),
    (dict(mu0=np.array([0.5, 0.6])), "mu0 must be a probability distribution"),
    (dict(P=np.array([[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]])),
     r"need not terminate: in states \[1\] the actions \[1\]"),
    (dict(P=np.array([[[0.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 0.0]]])),
     r"need not terminate: in states \[0, 1\] the actions \[0, 0\]"),
])
def test_bad_mdp_raises(change, message):
    with pytest.raises(ConfigError, match=message):
        TabularMDP(**_mdp_args(**change))


def test_bad_arguments_raise(rng):
    mdp = two_state_mdp()
    episodes = sample_episodes(mdp, np.zeros((2, 2)), rng, 5)
    with pytest.raises(ConfigError, match="n_states must be an integer, got True"):
        random_mdp(True, 2, rng)
    with pytest.raises(ConfigError, match=r"p_terminate must be in \(0.0, 1.0\]"):
        random_mdp(2, 2, rng, p_terminate=0.0)
    with pytest.raises(ConfigError, match=r"theta must have shape \(2, 2\)"):
        exact_grad_J(mdp, np.zeros((2, 3)))
    with pytest.raises(ConfigError, match="probs.* must sum to 1"):
        exact_values(mdp, np.full((2, 2), 0.4))
    with pytest.raises(ConfigError, match="n_episodes must be an integer"):
        sample_episodes(mdp, np.zeros((2, 2)), rng, 10.0)
    with pytest.raises(ConfigError, match="variant must be one of"):
        reinforce_estimates(mdp, np.zeros((2, 2)), episodes, "rtg")
    with pytest.raises(ConfigError, match="baseline one of"):
        reinforce_estimates(mdp, np.zeros((2, 2)), episodes, "total", baseline="median")
    with pytest.raises(ConfigError, match="True for variant 'total'"):
        reinforce_estimates(mdp, np.zeros((2, 2)), episodes, "total", discount_weights=False)
    with pytest.raises(ConfigError, match="needs at least 2 episodes"):
        reinforce_estimates(mdp, np.zeros((2, 2)), sample_episodes(mdp, np.zeros((2, 2)), rng, 1),
                            "total", baseline="mean")
