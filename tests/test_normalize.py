"""Running statistics: the merge is exact, updates match the data, reward scaling by hand,
statistics saved in the checkpoint and used frozen at evaluation."""

import numpy as np

from rlref import checkpoint
from rlref.normalize import rms_init, rms_merge, rms_normalize, rms_update, scale_rewards


def stats_of(x):
    return {"mean": x.mean(axis=0), "var": x.var(axis=0), "count": float(len(x))}


def test_merge_equals_statistics_of_the_concatenated_data(rng):
    a, b = 3.0 + 2.0 * rng.standard_normal((57, 4)), -1.0 + 0.5 * rng.standard_normal((13, 4))
    merged = rms_merge(stats_of(a), stats_of(b))
    whole = stats_of(np.concatenate([a, b]))
    np.testing.assert_allclose(merged["mean"], whole["mean"], rtol=1e-13)
    np.testing.assert_allclose(merged["var"], whole["var"], rtol=1e-12)
    assert merged["count"] == 70.0


def test_updates_in_batches_match_the_whole_data(rng):
    x = 5.0 + 3.0 * rng.standard_normal((1000, 3))
    stats = rms_init(3)
    for chunk in np.array_split(x, 37):
        stats = rms_update(stats, chunk)
    # the initial pseudo-count of 1e-4 (mean 0, var 1) weighs 1e-7 of the total
    np.testing.assert_allclose(stats["mean"], x.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["var"], x.var(axis=0), rtol=1e-6)


def test_one_sample_update_is_bitwise_the_batch_formula(rng):
    """rms_update's fast path for a batch of one (one env per step) gives exactly the bits of the
    general path: the mean and variance of one row are the row itself and zero."""
    stats = rms_update(rms_init(3), rng.normal(size=(7, 3)))
    for x in (rng.normal(size=(1, 3)), np.array([2.5])):
        fast = rms_update(stats if x.ndim == 2 else rms_init(1), x)
        general = rms_merge(stats if x.ndim == 2 else rms_init(1),
                            {"mean": x.mean(axis=0), "var": x.var(axis=0), "count": x.shape[0]})
        for key in ("mean", "var", "count"):
            assert np.array_equal(fast[key], general[key]) and np.shape(fast[key]) == np.shape(general[key]), key


def test_rms_normalize_standardizes_and_clips():
    stats = {"mean": np.array([1.0, -2.0]), "var": np.array([4.0, 0.25]), "count": 10.0}
    out = rms_normalize(stats, np.array([[3.0, -2.5], [1.0, 100.0]]), obs_clip=5.0)
    np.testing.assert_allclose(out, [[1.0, -1.0], [0.0, 5.0]], rtol=1e-7)  # var + 1e-8


def test_reward_scaling_by_hand():
    """Two envs; env 0's episode stops after step 2. R_t = gamma R_{t-1} + r_t, reset after a done."""
    gamma, stats, R = 0.5, rms_init(1), np.zeros(2)
    seen = []
    for r, done in [([1.0, 2.0], [False, False]), ([1.0, 2.0], [True, False]), ([4.0, 2.0], [False, False])]:
        scaled, R, stats = scale_rewards(stats, R, np.array(r), np.array(done), gamma)
        seen.append(scaled)
    # running returns fed to the statistics: (1, 2), (1.5, 3), (4, 3.5): env 0 restarted from 0
    data = np.array([1.0, 2.0, 1.5, 3.0, 4.0, 3.5])
    eps = 1e-4
    mean = data.sum() / (6 + eps)
    var = (eps * (1 + mean ** 2) + ((data - mean) ** 2).sum()) / (6 + eps)   # pooled with the prior
    np.testing.assert_allclose(seen[-1], np.array([4.0, 2.0]) / np.sqrt(var + 1e-8), rtol=1e-10)
    np.testing.assert_allclose(R, [4.0, 3.5])


def test_statistics_are_checkpointed_and_used_frozen_at_evaluation(tmp_path):
    from rlref.algos import a2c
    from rlref.train import evaluate, train
    out = str(tmp_path / "run")
    summary = train("a2c", a2c.Config(seed=2, total_steps=3000, normalize_obs=True, scale_reward=True), out,
                    quiet=True)
    like = {**a2c.init_agent(a2c.Config(), 4, 2, False, np.random.default_rng(0)),
            "obs_rms": rms_init(4), "ret_rms": rms_init(1)}
    agent = checkpoint.load(out, like, strict=False)                          # the agent and the statistics
    assert agent["obs_rms"]["count"] > 3000 and np.all(agent["obs_rms"]["var"] > 0)
    assert not np.allclose(agent["obs_rms"]["mean"], 0.0)
    frozen = {k: np.copy(v) for k, v in agent["obs_rms"].items()}
    from rlref.seeding import eval_seed
    from rlref.train import TrainedPolicy
    seed = eval_seed(2)
    returns = evaluate(TrainedPolicy(agent["policy"], agent["obs_rms"]), "CartPole-v1", 20, seed)
    assert returns.mean() == summary["eval_return_mean"]                     # the summary used them
    assert all(np.array_equal(frozen[k], agent["obs_rms"][k]) for k in frozen)   # and did not update them
    raw = evaluate(TrainedPolicy(agent["policy"]), "CartPole-v1", 20, seed)
    assert not np.array_equal(raw, returns)                                   # they matter
