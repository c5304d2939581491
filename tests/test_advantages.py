"""Returns and advantages against brute-force sums written independently of the recursions,
with terminations and truncations inside the rollout."""
import numpy as np
import pytest

from rlref.advantages import (discount_cumsum, gae, n_step_returns, reward_to_go, standardize,
                              td_residuals, total_return)
from rlref.errors import ConfigError

T, E = 12, 3


def rollout(rng):
    """Random rewards and values; env 0 terminates at t=3 and is truncated at t=8, env 1 is
    truncated at t=5, env 2 never stops (cut by the rollout's end)."""
    rewards, values, next_values = (rng.standard_normal((T, E)) for _ in range(3))
    terminated, truncated = np.zeros((T, E)), np.zeros((T, E))
    terminated[3, 0] = truncated[8, 0] = truncated[5, 1] = 1.0
    return rewards, values, next_values, terminated, np.maximum(terminated, truncated)


def episode_end(dones, t, e):
    """The last step of the episode that step t of env e belongs to (or T - 1)."""
    j = t
    while j < T - 1 and not dones[j, e]:
        j += 1
    return j


def brute_force_gae(rewards, values, next_values, terminated, dones, gamma, lam):
    A = np.zeros((T, E))
    for e in range(E):
        for t in range(T):
            for k in range(t, episode_end(dones, t, e) + 1):
                delta = rewards[k, e] + gamma * (1 - terminated[k, e]) * next_values[k, e] - values[k, e]
                A[t, e] += (gamma * lam) ** (k - t) * delta
    return A


def brute_force_bootstrapped_return(rewards, next_values, terminated, dones, gamma):
    """sum_k gamma^k r_{t+k} to the episode's end, plus gamma^(j-t+1) V(s_{j+1}) unless terminated."""
    R = np.zeros((T, E))
    for e in range(E):
        for t in range(T):
            j = episode_end(dones, t, e)
            R[t, e] = sum(gamma ** (k - t) * rewards[k, e] for k in range(t, j + 1))
            R[t, e] += gamma ** (j - t + 1) * (1 - terminated[j, e]) * next_values[j, e]
    return R


@pytest.mark.parametrize("gamma, lam", [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0), (0.8, 0.0)])
def test_gae_matches_brute_force(gamma, lam, rng):
    r, v, nv, term, dones = rollout(rng)
    A_hat, R_hat = gae(r, v, nv, term, dones, gamma, lam)
    np.testing.assert_allclose(A_hat, brute_force_gae(r, v, nv, term, dones, gamma, lam), atol=1e-12)
    np.testing.assert_allclose(R_hat, A_hat + v, atol=1e-15)


def test_negative_control_truncation_treated_as_termination_fails(rng):
    """Dropping the bootstrap after a truncation changes the answer at the truncated steps."""
    r, v, nv, term, dones = rollout(rng)
    wrong, _ = gae(r, v, nv, dones, dones, 0.99, 0.95)                 # terminated := dones
    right = brute_force_gae(r, v, nv, term, dones, 0.99, 0.95)
    assert not np.allclose(wrong, right, atol=1e-6)
    assert not np.isclose(wrong[5, 1], right[5, 1]) and np.allclose(wrong[:, 2], right[:, 2])


def test_negative_control_recursion_across_episodes_fails(rng):
    r, v, nv, term, dones = rollout(rng)
    wrong, _ = gae(r, v, nv, term, np.zeros_like(dones), 0.99, 0.95)   # dones ignored
    assert not np.allclose(wrong, brute_force_gae(r, v, nv, term, dones, 0.99, 0.95), atol=1e-6)


def test_lambda_limits(rng):
    r, v, nv, term, dones = rollout(rng)
    # Real rollouts have V(s_{t+1}) = values[t+1] inside an episode; the lam = 1 telescoping needs it.
    nv[:-1] = np.where(dones[:-1] > 0, nv[:-1], v[1:])
    A0, _ = gae(r, v, nv, term, dones, 0.97, 0.0)
    np.testing.assert_allclose(A0, td_residuals(r, v, nv, term, 0.97), atol=1e-15)  # TD(0)
    _, R1 = gae(r, v, nv, term, dones, 0.97, 1.0)                                   # Monte Carlo
    np.testing.assert_allclose(R1, brute_force_bootstrapped_return(r, nv, term, dones, 0.97), atol=1e-12)


def test_reward_to_go_total_return_and_discount_cumsum(rng):
    r, _, _, _, dones = rollout(rng)
    G = reward_to_go(r, dones, 0.9)
    G0 = total_return(r, dones, 0.9)
    for e in range(E):
        for t in range(T):
            j = episode_end(dones, t, e)
            assert abs(G[t, e] - sum(0.9 ** (k - t) * r[k, e] for k in range(t, j + 1))) < 1e-12
            start = t
            while start > 0 and not dones[start - 1, e]:
                start -= 1
            assert G0[t, e] == G[start, e]
    y = discount_cumsum(np.ones((4, 1)), 0.5, np.zeros((4, 1)), bootstrap=np.array([8.0]))
    np.testing.assert_allclose(y[:, 0], [1 + .5 + .25 + .125 + 8 / 16, 1 + .5 + .25 + 8 / 8, 1 + .5 + 8 / 4, 1 + 8 / 2])


@pytest.mark.parametrize("n", [1, 3, 20])
def test_n_step_returns_match_brute_force(n, rng):
    r, _, nv, term, dones = rollout(rng)
    R = n_step_returns(r, nv, term, dones, 0.95, n)
    for e in range(E):
        for t in range(T):
            j = min(episode_end(dones, t, e), t + n - 1)            # last reward counted
            want = sum(0.95 ** (k - t) * r[k, e] for k in range(t, j + 1))
            want += 0.95 ** (j - t + 1) * (1 - term[j, e]) * nv[j, e]
            assert abs(R[t, e] - want) < 1e-12
    if n == 1:
        np.testing.assert_allclose(R, r + 0.95 * (1 - term) * nv, atol=1e-15)


def test_bad_input():
    z = np.zeros((3, 2))
    with pytest.raises(ConfigError, match=r"gamma must be in \[0.0, 1.0\], got 1.5"):
        gae(z, z, z, z, z, 1.5, 0.9)
    with pytest.raises(ConfigError, match="lam"):
        gae(z, z, z, z, z, 0.9, -0.1)
    with pytest.raises(ConfigError, match="gamma"):
        reward_to_go(z, z, True)
    with pytest.raises(ConfigError, match="n must be an integer"):
        n_step_returns(z, z, z, z, 0.9, True)
    with pytest.raises(ValueError, match=r"values must have the shape of rewards \(3, 2\)"):
        gae(z, np.zeros((2, 2)), z, z, z, 0.9, 0.9)


def test_standardize_gives_mean_0_std_1_and_leaves_a_constant_batch_finite(rng):
    A = 3.0 + 5.0 * rng.standard_normal(200)
    Z = standardize(A)
    assert abs(Z.mean()) < 1e-12 and abs(Z.std() - 1.0) < 1e-8
    assert np.array_equal(standardize(np.full(7, 2.5)), np.zeros(7))       # 0 / (0 + 1e-8)


def test_explained_variance_at_its_reference_points(rng):
    from rlref.value import explained_variance
    R = rng.standard_normal(50)
    assert explained_variance(R, R) == 1.0                                 # perfect fit
    assert abs(explained_variance(R, np.full(50, R.mean()))) < 1e-12       # predicting the mean
    assert explained_variance(R, -R) < 0.0                                 # worse than the mean
    assert np.isnan(explained_variance(np.ones(5), np.zeros(5)))           # undefined


def test_batch_samples_is_the_preamble_every_algorithm_shared(rng):
    """batch_samples = V on every observation, GAE (or the n-step advantage) on the (T, E) arrays,
    then the valid entries flattened: compared with those steps written out, on a real rollout
    with autoreset steps inside it."""
    from rlref.advantages import batch_samples
    from rlref.nn import init_mlp
    from rlref.policy import init_policy
    from rlref.envs import make_envs
    from rlref.rollout import collect, start
    from rlref.value import value_forward
    envs = make_envs("CartPole-v1", 4)
    policy, value = init_policy([4, 8, 2], rng), init_mlp([4, 8, 1], rng)
    batch = collect(start(envs, 3), policy, 40, rng)
    assert not batch.valid.all()                                          # autoreset steps inside
    V = value_forward(value, batch.obs)                                   # (T + 1, E)
    A, R = gae(batch.rewards, V[:-1], V[1:], batch.terminated, batch.dones, 0.97, 0.9)
    s = batch_samples(batch, value, 0.97, 0.9)
    for key, full in (("A_hat", A), ("R_hat", R), ("V_old", V[:-1]), ("obs", batch.obs[:-1]),
                      ("actions", batch.actions), ("logp_old", batch.logp)):
        assert np.array_equal(s[key], full[batch.valid]), key
    R5 = n_step_returns(batch.rewards, V[1:], batch.terminated, batch.dones, 0.97, 5)
    s5 = batch_samples(batch, value, 0.97, n=5)
    assert np.array_equal(s5["A_hat"], (R5 - V[:-1])[batch.valid]) and np.array_equal(s5["R_hat"], R5[batch.valid])
    no_critic = batch_samples(batch, None, 0.97)                          # V = 0, lam = 1: G_t
    assert np.array_equal(no_critic["A_hat"], reward_to_go(batch.rewards, batch.dones, 0.97)[batch.valid])
