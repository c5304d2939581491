"""PPO: loss derivatives against finite differences away from kinks, exact zeros where the clip
binds, the clip gradient at theta_old, L_clip <= L, the beta rule, value clipping against the
values stored at collection, advantage normalization done once, bad configuration."""
import numpy as np
import pytest

from rlref.algos import ppo
from rlref.errors import ConfigError
from rlref.gradcheck import check_grad
from rlref.nn import flatten, unflatten
from rlref.policy import init_policy, policy_backward, policy_forward
from rlref.value import value_loss_and_grad

EPS = 0.2


def setup(rng, gaussian, N=40, spread=0.4):
    """theta_old, a perturbed theta whose ratios are all >= 1e-3 away from 1 +- eps, actions, A."""
    sizes = [3, 6, 2]
    old = init_policy(sizes, rng, gaussian, out_gain=1.0)
    obs = rng.standard_normal((N, 3))
    dist_old, _ = policy_forward(old, obs)
    actions = dist_old.sample(rng)
    A = rng.standard_normal(N)
    for _ in range(200):
        theta = unflatten(flatten(old) + spread * rng.standard_normal(flatten(old).size), old)
        ratio = np.exp(policy_forward(theta, obs)[0].logp(actions) - dist_old.logp(actions))
        if np.min(np.abs(ratio[:, None] - np.array([1 - EPS, 1 + EPS]))) > 1e-3:
            return old, theta, obs, actions, A, dist_old, ratio
    raise RuntimeError("no perturbation away from the kinks")


def loss_fn(config, obs, actions, A, dist_old, beta=1.0):
    logp_old = dist_old.logp(actions)

    def f(p):
        return ppo.policy_loss_and_grad(policy_forward(p, obs)[0], dist_old, actions, logp_old, A, config, beta)[0]

    def g(p):
        dist, cache = policy_forward(p, obs)
        return policy_backward(ppo.policy_loss_and_grad(dist, dist_old, actions, logp_old, A, config, beta)[1], cache)
    return f, g


@pytest.mark.parametrize("gaussian", [False, True])
@pytest.mark.parametrize("objective, ent_coef, kl_target", [("clip", 0.0, 0.01), ("clip", 0.05, 0.01),
                                                            ("penalty", 0.05, 1e-4), ("penalty", 0.0, 10.0)])
def test_policy_loss_gradients_away_from_kinks(gaussian, objective, ent_coef, kl_target, rng):
    old, theta, obs, actions, A, dist_old, ratio = setup(rng, gaussian)
    assert (ratio > 1 + EPS).any() and (ratio < 1 - EPS).any() and ((ratio > 1 - EPS) & (ratio < 1 + EPS)).any()
    config = ppo.Config(objective=objective, ent_coef=ent_coef, kl_target=kl_target, clip_eps=EPS)
    if objective == "penalty":                 # kl_target 1e-4: the hinge is active; 10: it is not
        kl = dist_old.kl(policy_forward(theta, obs)[0]).mean()
        assert (kl > 2 * kl_target) == (kl_target == 1e-4)
    f, g = loss_fn(config, obs, actions, A, dist_old, beta=0.7)
    assert check_grad(f, g, theta) < 1e-7


@pytest.mark.parametrize("gaussian", [False, True])
def test_clipped_samples_have_exactly_zero_gradient(gaussian, rng):
    old, theta, obs, actions, A, dist_old, ratio = setup(rng, gaussian)
    config = ppo.Config(clip_eps=EPS, ent_coef=0.0)          # the clip alone: no entropy bonus
    binds = ((ratio > 1 + EPS) & (A > 0)) | ((ratio < 1 - EPS) & (A < 0))
    assert binds.sum() >= 3 and (~binds).sum() >= 3
    for i in np.flatnonzero(binds):
        f, g = loss_fn(config, obs[i:i + 1], actions[i:i + 1], A[i:i + 1], dist_old.take([i]))
        assert all(not np.any(v) for v in g(theta).values())
    for i in np.flatnonzero(~binds)[:3]:
        f, g = loss_fn(config, obs[i:i + 1], actions[i:i + 1], A[i:i + 1], dist_old.take([i]))
        assert any(np.any(v) for v in g(theta).values())


@pytest.mark.parametrize("gaussian", [False, True])
def test_at_theta_old_the_clip_gradient_is_the_vanilla_surrogate_gradient(gaussian, rng):
    old, _, obs, actions, A, dist_old, _ = setup(rng, gaussian)
    _, g = loss_fn(ppo.Config(clip_eps=EPS, ent_coef=0.0), obs, actions, A, dist_old)
    dist, cache = policy_forward(old, obs)
    vanilla = policy_backward(tuple(d * (-A / len(A))[:, None] for d in dist.dlogp(actions)) if gaussian
                              else dist.dlogp(actions) * (-A / len(A))[:, None], cache)
    np.testing.assert_allclose(flatten(g(old)), flatten(vanilla), rtol=1e-13, atol=1e-15)


def test_clipped_objective_is_a_lower_bound(rng):
    for _ in range(20):
        ratio, A = np.exp(rng.standard_normal(100)), rng.standard_normal(100)
        L_clip = np.minimum(ratio * A, np.clip(ratio, 1 - EPS, 1 + EPS) * A)
        assert np.all(L_clip <= ratio * A)
    old, theta, obs, actions, A, dist_old, ratio = setup(rng, False)
    f, _ = loss_fn(ppo.Config(clip_eps=EPS), obs, actions, A, dist_old)
    assert -f(theta) <= np.mean(ratio * A)


def test_beta_rule_at_its_boundaries():
    config = ppo.Config(kl_target=0.01)
    t = config.kl_target
    assert ppo.adapt_beta(1.0, t / 1.5, config) == 1.0 and ppo.adapt_beta(1.0, 1.5 * t, config) == 1.0
    assert ppo.adapt_beta(1.0, np.nextafter(t / 1.5, 0), config) == 0.5
    assert ppo.adapt_beta(1.0, np.nextafter(1.5 * t, 1), config) == 2.0
    assert ppo.adapt_beta(3.0, t, config) == 3.0


def test_beta_stays_in_its_band():
    config = ppo.Config(kl_target=0.01, beta_min=1e-3, beta_max=10.0)
    beta = 1.0
    for _ in range(40):                                  # the KL far below target, again and again
        beta = ppo.adapt_beta(beta, 0.0, config)
    assert beta == 1e-3
    assert ppo.adapt_beta(1.5e-3, 0.0, config) == 1e-3 and ppo.adapt_beta(8.0, 1.0, config) == 10.0
    beta = ppo.adapt_beta(beta, 1.0, config)             # one doubling from the floor
    assert beta == 2e-3
    with pytest.raises(ConfigError, match="beta must be in"):
        ppo.Config(beta=1e-5)
    with pytest.raises(ConfigError, match="beta_max must be in"):
        ppo.Config(beta_min=1.0, beta_max=0.5)


def test_value_loss_clipped_and_unclipped(rng):
    N = 50
    V_old, R = rng.standard_normal(N), rng.standard_normal(N)
    v = V_old + 0.6 * rng.standard_normal(N)
    v = np.where(np.abs(np.abs(v - V_old) - EPS) < 1e-3, v + 0.01, v)     # away from the kink
    loss, dv, _ = value_loss_and_grad(v, R, V_old, EPS)
    by_hand = np.mean([max((vi - ri) ** 2, (vo + min(max(vi - vo, -EPS), EPS) - ri) ** 2)
                       for vi, vo, ri in zip(v, V_old, R)])
    assert abs(loss - by_hand) < 1e-14
    assert check_grad(lambda x: value_loss_and_grad(x, R, V_old, EPS)[0],
                      lambda x: value_loss_and_grad(x, R, V_old, EPS)[1], v) < 1e-7
    flat = (np.abs(v - V_old) > EPS) & ((V_old + np.clip(v - V_old, -EPS, EPS) - R) ** 2 > (v - R) ** 2)
    assert flat.any() and np.all(dv[flat] == 0.0)
    plain, dplain, _ = value_loss_and_grad(v, R)
    assert plain == np.mean((v - R) ** 2) and np.allclose(dplain, 2 * (v - R) / N)


def _batch_and_agent(rng, config):
    from rlref.envs import make_envs
    from rlref.rollout import collect, start
    envs = make_envs("CartPole-v1", config.num_envs)
    agent = ppo.init_agent(config, 4, 2, False, rng)
    batch = collect(start(envs, 0), agent["policy"], config.n_steps, rng)
    return agent, batch


def test_value_clipping_compares_with_values_stored_at_collection(rng, monkeypatch):
    config = ppo.Config(num_envs=4, n_steps=32, minibatch_size=32, epochs=3, clip_value=True)
    agent, batch = _batch_and_agent(rng, config)
    from rlref.value import value_forward
    V_collect = batch.samples_of(value_forward(agent["value"], batch.obs)[:-1])
    seen = []
    original = ppo.value_loss_and_grad
    monkeypatch.setattr(ppo, "value_loss_and_grad", lambda v, R, V_old, eps: (seen.append(V_old), original(v, R, V_old, eps))[1])
    ppo.update(agent, batch, config, np.random.default_rng(0))
    assert len(seen) == 3 * (len(V_collect) // 32)
    per_epoch = np.array_split(np.array(seen, dtype=object), 3)
    for epoch in per_epoch:                       # each epoch covers the batch's stored V_old exactly
        assert np.allclose(np.sort(np.concatenate(list(epoch))), np.sort(V_collect), rtol=0, atol=0)


@pytest.mark.parametrize("mode", ["batch", "minibatch"])
def test_advantage_normalization_happens_once(mode, rng, monkeypatch):
    config = ppo.Config(num_envs=4, n_steps=32, minibatch_size=32, epochs=1, normalize_adv=mode)
    agent, batch = _batch_and_agent(rng, config)
    seen = []                                    # the advantages the policy loss actually uses
    original = ppo.policy_loss_and_grad
    monkeypatch.setattr(ppo, "policy_loss_and_grad",
                        lambda d, d_old, a, lp, A, c, b: (seen.append(A), original(d, d_old, a, lp, A, c, b))[1])
    ppo.update(agent, batch, config, np.random.default_rng(0))
    from rlref.advantages import gae
    from rlref.value import value_forward
    values = value_forward(agent["value"], batch.obs)
    raw = batch.samples_of(gae(batch.rewards, values[:-1], values[1:], batch.terminated, batch.dones,
                               config.gamma, config.lam)[0])
    A = np.concatenate(seen)
    if mode == "batch":      # standardized once over the batch, then passed through untouched
        np.testing.assert_allclose(np.sort(A), np.sort((raw - raw.mean()) / (raw.std() + 1e-8)), atol=1e-13)
        assert max(abs(a.mean()) for a in seen) > 1e-3
    else:                    # each minibatch standardized on its own, from the raw advantages
        assert all(abs(a.mean()) < 1e-12 and abs(a.std() - 1) < 1e-7 for a in seen)
        assert not np.allclose(np.sort(A), np.sort((raw - raw.mean()) / (raw.std() + 1e-8)), atol=1e-6)


def test_update_diagnostics_and_beta_state(rng):
    config = ppo.Config(num_envs=4, n_steps=32, minibatch_size=64, epochs=2, objective="penalty", beta=1.0)
    agent, batch = _batch_and_agent(rng, config)
    new, diag = ppo.update(agent, batch, config, np.random.default_rng(0))
    for key in ("kl", "kl_k1", "kl_k3", "clip_frac", "entropy", "explained_var", "beta"):
        assert np.isfinite(diag[key])
    assert diag["kl"] >= 0 and diag["kl_k3"] >= 0
    assert float(new["state"]["beta"]) == ppo.adapt_beta(1.0, diag["kl"], config)


@pytest.mark.parametrize("kwargs, match", [
    (dict(clip_eps=0.0), "clip_eps"), (dict(minibatch_size=10_000), "minibatch_size must be at most"),
    (dict(epochs=True), "epochs must be an integer"), (dict(objective="trust"), "objective"),
    (dict(normalize_adv="epoch"), "normalize_adv"), (dict(early_stop_kl=-1.0), "early_stop_kl"),
    (dict(target_kl=0.01), "'target_kl' was renamed: use 'early_stop_kl'"),
    (dict(kl_target=0.0), "kl_target"), (dict(lr=0.0), "lr"), (dict(gamma=1.01), "gamma")])
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ppo.Config(**kwargs)
