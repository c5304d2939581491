"""Running mean and variance, observation normalization and reward scaling.

Statistics are plain dicts {"mean", "var", "count"} (saved in the checkpoint as they are). Merging
two sets of statistics (A with n_a samples, B with n_b) is exact (Chan, Golub & LeVeque 1979):

    n = n_a + n_b,   diff = mean_b - mean_a
    mean = mean_a + diff n_b / n
    var  = (var_a n_a + var_b n_b + diff^2 n_a n_b / n) / n                            (NORM.1)

so updating with a batch is merging with that batch's own statistics, and the distributed PPO can
merge its workers' statistics into exactly the statistics of all their data. ``var`` is the
population variance (divide by n). The initial count is a tiny epsilon (1e-4, as in OpenAI
baselines) so that the first merge is well defined; its weight is negligible.

Observation normalization (PPO implementation detail; Heess et al. 2017 for DPPO):

    obs_hat = clip((obs - mean) / sqrt(var + 1e-8), -obs_clip, obs_clip)                (NORM.2)

Reward scaling: keep a running discounted return per env, R_t = gamma R_{t-1} + r_t (reset to 0
when an episode stops), and divide each reward by the running standard deviation of R:

    r_hat_t = r_t / sqrt(var_R + 1e-8)          (no mean is subtracted)               (NORM.3)

During training the statistics update with every step; at evaluation they are frozen.
"""
import numpy as np

EPS_COUNT = 1e-4
EPS_VAR = 1e-8


def rms_init(shape):
    return {"mean": np.zeros(shape), "var": np.ones(shape), "count": EPS_COUNT}


def rms_merge(a, b):
    """Statistics of the union of the data behind a and b.  (NORM.1)"""
    n_a, n_b = float(a["count"]), float(b["count"])
    n = n_a + n_b
    diff = b["mean"] - a["mean"]                                     # the difference of the two means
    mean = a["mean"] + diff * (n_b / n)
    var = (a["var"] * n_a + b["var"] * n_b + diff * diff * (n_a * n_b / n)) / n
    return {"mean": mean, "var": var, "count": n}


def rms_update(stats, x):
    """Merge the statistics of a batch x (N, ...) into stats."""
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] == 1:      # one sample (one env per step): its own mean and zero variance, exactly
        return rms_merge(stats, {"mean": x[0], "var": np.zeros_like(x[0]), "count": 1})   # what mean/var give
    return rms_merge(stats, {"mean": x.mean(axis=0), "var": x.var(axis=0), "count": x.shape[0]})


def normalize_obs(stats, obs, obs_clip):
    """(NORM.2)"""
    z = (obs - stats["mean"]) / np.sqrt(stats["var"] + EPS_VAR)
    return z.clip(-obs_clip, obs_clip)        # the method: np.clip's wrapper costs 2 us more per call


def scale_rewards(stats, disc_return, rewards, dones, gamma):
    """Update the running discounted returns and their statistics; return the scaled rewards.  (NORM.3)

    disc_return (E,) is each env's R_{t-1}; rewards and dones (E,) are this step's. Returns
    (scaled rewards, new disc_return, new stats).
    """
    disc_return = gamma * disc_return + rewards                      # R_t
    stats = rms_update(stats, disc_return[:, None])                  # statistics of R, shape (1,)
    scaled = rewards / np.sqrt(stats["var"][0] + EPS_VAR)
    return scaled, np.where(dones, 0.0, disc_return), stats
