"""Distributed PPO (Heess et al. 2017, "Emergence of Locomotion Behaviours in Rich Environments"),
synchronous, on MPI.

Derived in ``notebooks/06_dppo.ipynb`` from the course notes "DPPO" (notebooks/README.md lists
them). W workers (MPI ranks) each own E envs and collect T steps per iteration; the update is
PPO's (rlref/algos/ppo.py: the losses, minibatch gradients, clipping and Adam are imported, not
copied), with every quantity that must be global made global by MPI collectives:

    g = (1/W) sum_w g_w,  g_w the mean gradient of (PPO.6) over worker w's minibatch;
        with equal minibatch sizes this *is* the gradient of the W-times-larger minibatch   (DPPO.1)
    mu = sum_w sum_i A_wi / N,  sigma^2 = sum_w sum_i (A_wi - mu)^2 / N,  N = sum_w N_w,
        A_hat <- (A_hat - mu) / (sigma + 1e-8): one standardization over the global batch   (DPPO.2)
    obs / return statistics: each worker updates its copy during collection; afterwards the
        local changes (the data each worker added) are merged into the shared statistics,
        exactly, by (NORM.1), in rank order, identically on every rank                      (DPPO.3)
    alpha_hat = 1 + (alpha - 1) / W; each worker votes from its own mean KL d_w:
        v_w = -1 if d_w < kl_target / 1.5, +1 if d_w > 1.5 kl_target, else 0,
        beta <- clip(beta alpha_hat^(sum_w v_w), beta_min, beta_max)                        (DPPO.4)
    K-step returns (the notes' formula, with the discount of the bootstrap corrected):
        A_hat_t = sum_{i=0}^{K-1} gamma^i r_{t+i} + gamma^K V(s_{t+K}) - V(s_t)              (DPPO.5)

The notes write the bootstrap as gamma^(K-1) V(s_{t+K}); the state K steps ahead is discounted K
times (the sum's last reward, i = K - 1, already carries gamma^(K-1)). (DPPO.5) is (AC.2) of
rlref/advantages.py, cut at an episode's end and at the rollout's end: with K = T every step's
sum runs to the end of its rollout, which is the notes' fixed K-step windows.

Why W in alpha_hat. The notes (and the paper) write alpha_hat with a symbol that they also use for
the window of the K-step returns; rlref reads it as the number of workers that change the shared
beta, W: every worker applies its own change to the one shared coefficient, so when all W agree
beta moves by alpha_hat^W = (1 + (alpha - 1) / W)^W, which is alpha to first order in alpha - 1
(and never more than e^(alpha - 1)); one worker (W = 1) is PPO's rule (PPO.4) exactly. A window
length would make the speed of adaptation depend on a truncation length that has nothing to do
with how many changes compound. The hinge of (PPO.3) is per worker, as in the notes: each worker's minibatch
loss penalizes its own minibatch KL (ppo.policy_loss_and_grad does exactly that).

Why the global batch for (DPPO.2): advantages standardized per worker would give every worker's
batch mean 0 and std 1, so a worker whose envs happened to go well would push the policy as hard
as one whose envs went badly, and the averaged gradient would no longer be that of the big batch.

One iteration, on every rank:
  Step 1. Collect T steps of E envs with the shared policy, normalizing with the local copy of the
          statistics; merge the statistics (DPPO.3). Steps and episodes are counted over ranks.
  Step 2. V_old = V_phi(obs) on the local data; GAE (GAE.2) or K-step (DPPO.5) advantages; every
          rank keeps the same number of samples (min over ranks); standardize (DPPO.2).
  Step 3. ppo.run_epochs with reduce = the Allreduce mean (DPPO.1): each minibatch gradient and
          each early-stopping k3 is averaged before it is used, so every rank takes the same step.
  Step 4. The exact mean KL on each rank; beta by (DPPO.4); diagnostics averaged over ranks.
  Step 5. Every sync_every updates: a checksum of the parameters and optimizer state on each
          rank; SyncError if they differ.

Without mpiexec (or without mpi4py) it is one worker, and then exactly PPO.
"""
import sys
from dataclasses import dataclass

import numpy as np

from rlref.advantages import batch_samples
from rlref.algos import ppo
from rlref import workers as mpi
from rlref.errors import ConfigError, require_float, require_int
from rlref.normalize import rms_init, rms_merge

ROLLOUT = "steps"

# The settings are per worker, so W workers make W times the batch. On CartPole DPPO keeps the
# settings it was calibrated with (PPO's older defaults); on Pendulum each worker collects half of
# PPO's batch, so that two workers together make PPO's.
PRESETS = {
    "Pendulum-v1": dict(total_steps=300_000, hidden=(64, 64), num_envs=4, n_steps=256, epochs=10,
                        minibatch_size=128, gamma=0.95, lam=0.95, lr=1e-3, vf_coef=0.5, ent_coef=0.0,
                        normalize_obs=True, scale_reward=True),
}


@dataclass
class Config(ppo.Config):
    hidden: tuple = (32, 32)         # DPPO keeps PPO's settings of its calibration (ppo.Config's moved on)
    num_envs: int = 8                # E per worker (T = n_steps steps of each per iteration)
    n_steps: int = 32                # T: steps per env per iteration
    lr: float = 5e-3                 # Adam step size
    max_grad_norm: float = 0.5       # global-norm clip of the (averaged) gradient
    epochs: int = 10                 # passes over the batch (10 solved more calibration seeds than 5: docs/results.md)
    minibatch_size: int = 256        # samples per worker per gradient step (global: W times this)
    objective: str = "penalty"       # the notes' adaptive KL penalty with hinge (PPO.3); or "clip"
    alpha: float = 2.0               # alpha of (DPPO.4): one worker multiplies or divides beta by it
    k_steps: int = None              # K of the K-step advantages (DPPO.5); None: GAE(gamma, lam)
    sync_every: int = 10             # compare the ranks' parameter checksums every this many updates

    def __post_init__(self):
        super().__post_init__()
        require_float("alpha", self.alpha, 1.0, low_open=True)
        if self.k_steps is not None:
            require_int("k_steps", self.k_steps, 1)
        require_int("sync_every", self.sync_every, 1)


def init_agent(config, obs_dim, act_dim, gaussian, rng):
    agent = ppo.init_agent(config, obs_dim, act_dim, gaussian, rng)
    agent["state"]["updates"] = np.array(0)                 # counts updates, for the sync check
    return agent


# ---------------------------------------------------------------------------------------------
# Workers: rlref/workers.py has the MPI plumbing; DPPO adds the merge of the statistics (DPPO.3).
# ---------------------------------------------------------------------------------------------

def workers(config=None):
    """The Workers of this process's MPI job (one worker, with a notice, outside mpiexec)."""
    MPI, comm = mpi.mpi_world()
    if comm is None or comm.Get_size() == 1:
        why = " (mpi4py is not installed)" if comm is None else ""
        install = " (first: pip install -r requirements-mpi.txt)" if comm is None else ""
        print(mpi.HOW_TO_SCALE.format(why=why, install=install), file=sys.stderr, flush=True)
    return Workers(comm, MPI)


class Workers(mpi.Workers):
    """rlref.workers.Workers with DPPO's merge of the normalization statistics (DPPO.3)."""

    def after_collect(self, collector):
        """Merge each rank's local changes to the normalization statistics.  (DPPO.3)"""
        if self.comm is None:
            return
        for name in ("obs_rms", "ret_rms"):
            local = getattr(collector, name)
            if local is None:
                continue
            before = self.shared.get(name) or rms_init(np.shape(local["mean"]))
            merged = merge_shared(before, self.comm.allgather(rms_unmerge(local, before)))
            setattr(collector, name, merged)
            self.shared[name] = merged

    def after_resume(self, collector):
        """A resumed run's statistics, identical on every rank at a checkpoint, are the shared ones."""
        self.shared = collector.stats()


# ---------------------------------------------------------------------------------------------
# The pieces of the update that differ from PPO's.
# ---------------------------------------------------------------------------------------------

def rms_unmerge(ab, a):
    """The statistics of the data b that rms_merge(a, b) = ab added to a: (NORM.1) solved for b."""
    n, n_a = float(ab["count"]), float(a["count"])
    n_b = n - n_a
    if not n_b > 0:
        raise ConfigError(f"rms_unmerge needs count(ab) > count(a), got {n} and {n_a}")
    mean_b = a["mean"] + (ab["mean"] - a["mean"]) * (n / n_b)
    diff = mean_b - a["mean"]                                        # NORM.1's difference of the means
    var_b = (ab["var"] * n - a["var"] * n_a - diff * diff * (n_a * n_b / n)) / n_b
    return {"mean": mean_b, "var": np.maximum(var_b, 0.0), "count": n_b}


def merge_shared(shared, changes):
    """The shared statistics with every worker's local changes merged in, in rank order.  (DPPO.3)"""
    for change in changes:
        shared = rms_merge(shared, change)
    return shared


def standardize_global(A_hat, workers):
    """(A_hat - mu) / (sigma + 1e-8) with mu, sigma over all ranks' samples (DPPO.2); with one
    worker, bitwise advantages.standardize."""
    n, total = workers.total((len(A_hat), float(A_hat.sum())))
    mu = total / n
    dev = A_hat - mu
    sigma = np.sqrt(workers.total(float((dev * dev).sum())) / n)
    return dev / (sigma + 1e-8)


def equal_share(samples, workers, rng):
    """Every rank keeps the same number of samples, the smallest N_w (a uniformly random subset).

    NOTE (implementation detail): the autoreset step after an episode's end is not a transition,
    so ranks hold a few samples more or fewer. Synchronous Allreduce needs the same number of
    minibatch steps on every rank, and (DPPO.1) is the big-batch gradient only for equal
    minibatches; dropping the few extra samples gives both."""
    N = len(samples["A_hat"])
    N_min = workers.smallest(N)
    if N == N_min:
        return samples
    keep = np.sort(rng.choice(N, N_min, replace=False))
    return {k: v[keep] for k, v in samples.items()}


def shared_beta(beta, kls, config):
    """(DPPO.4): the shared beta after every worker (its mean KL in kls) applied its own change;
    each worker's vote is PPO's verdict on its own KL (ppo.kl_verdict)."""
    alpha_hat = 1.0 + (config.alpha - 1.0) / len(kls)
    beta = beta * alpha_hat ** sum(ppo.kl_verdict(kl, config) for kl in kls)
    return min(max(beta, config.beta_min), config.beta_max)


def estimate_advantages(batch, value, config):
    """Step 2's samples: V_old on every observation, then GAE (GAE.2), or the K-step advantages
    (DPPO.5) when config.k_steps = K is set."""
    return batch_samples(batch, value, config.gamma, config.lam, n=config.k_steps)


def _reducer(workers, config):
    """What run_epochs averages over ranks: every gradient, and the k3 KL estimate (a one-element
    array) when it decides early stopping. Without early stopping k3 is not used, and skipping its
    Allreduce halves the synchronization points of the minibatch loop."""
    if config.early_stop_kl is not None:
        return workers.mean
    return lambda x: workers.mean(x) if x.size > 1 else x


def update(agent, batch, config, rng, budget_used=0.0, workers=None):
    workers = workers or Workers()
    samples = estimate_advantages(batch, agent["value"], config)                # Step 2
    samples = equal_share(samples, workers, rng)
    if config.normalize_adv == "batch":
        samples["A_hat"] = standardize_global(samples["A_hat"], workers)        # (DPPO.2)
    new, diag = ppo.optimize(agent, samples, config, rng, budget_used,
                             reduce=_reducer(workers, config))                 # Steps 3-4 (DPPO.1)
    # diag holds this worker's log, its own exact mean KL included; the others' come next
    keys = [k for k in diag if k not in ("beta", "minibatch_steps", "early_stop")]
    everyone = workers.gather([[diag[k] for k in keys]])       # (W, keys): every rank's diagnostics
    beta = diag["beta"]
    if config.objective == "penalty":
        beta = shared_beta(beta, [row[keys.index("kl")] for row in everyone], config)   # (DPPO.4)
    updates = int(agent["state"]["updates"]) + 1
    new["state"] = {"beta": np.array(beta), "updates": np.array(updates)}
    if updates % config.sync_every == 0:
        workers.check_sync(new, updates)                                        # Step 5
    means = np.mean(everyone, axis=0) if workers.size > 1 else everyone[0]      # over workers
    return new, {**diag, **dict(zip(keys, [float(m) for m in means])), "beta": beta}
