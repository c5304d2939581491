"""rlref.mdp_stats: the chi-square tail against closed forms worked by hand, the weighted score sums
against reinforce_estimates, and Hotelling's test accepting the exact gradient and rejecting a wrong one."""
import math

import numpy as np
import pytest

from rlref.errors import ConfigError
from rlref.mdp import exact_grad_J, random_mdp, reinforce_estimates, rewards_to_go, sample_episodes, softmax_policy
from rlref.mdp_stats import chi2_tail_even, hotelling, weighted_score_sums


def test_chi2_tail_matches_closed_forms():
    # df = 2: Pr = e^{-x/2}; df = 4: Pr = e^{-x/2} (1 + x/2); at x = 0 every tail is 1
    for x in (0.1, 1.0, 7.3):
        assert abs(chi2_tail_even(x, 2) - math.exp(-x / 2)) < 1e-15
        assert abs(chi2_tail_even(x, 4) - math.exp(-x / 2) * (1 + x / 2)) < 1e-15
    assert chi2_tail_even(0.0, 8) == 1.0
    assert abs(chi2_tail_even(15.507, 8) - 0.05) < 1e-4          # the 95 % point of chi2(8), from tables


def test_chi2_tail_rejects_odd_df():
    with pytest.raises(ConfigError, match="even"):
        chi2_tail_even(1.0, 3)


@pytest.fixture(scope="module")
def lab():
    rng = np.random.default_rng(7)
    mdp = random_mdp(3, 3, rng, gamma=0.8)
    theta = rng.standard_normal((3, 3))
    return mdp, theta, sample_episodes(mdp, theta, np.random.default_rng(8), 20_000)


def test_weighted_score_sums_reproduce_reward_to_go(lab):
    mdp, theta, episodes = lab
    c = mdp.gamma ** episodes.t * rewards_to_go(episodes, mdp.gamma)
    got = weighted_score_sums(softmax_policy(theta), episodes, c)
    assert np.abs(got - reinforce_estimates(mdp, theta, episodes, "reward_to_go")).max() < 1e-12


def test_hotelling_accepts_the_exact_gradient_and_rejects_a_scaled_one(lab):
    mdp, theta, episodes = lab
    est = reinforce_estimates(mdp, theta, episodes, "reward_to_go", baseline="value")
    g = exact_grad_J(mdp, theta)
    stat, df, p = hotelling(est, g)
    assert df == 6 and p > 1e-3
    assert hotelling(est, 1.5 * g)[2] < 1e-6


def test_hotelling_refuses_rows_that_do_not_sum_to_zero():
    with pytest.raises(ConfigError, match="sum to 0"):
        hotelling(np.ones((10, 2, 3)), 0.0)
