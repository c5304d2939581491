"""The training loop every algorithm shares, and using what it trained (evaluation, rlref.load).

An algorithm module provides ``Config`` (a TrainConfig dataclass), ``ROLLOUT`` ("steps": T steps
of E envs per iteration; "episodes": E whole episodes), ``init_agent(config, obs_dim, act_dim,
gaussian, rng)`` and ``update(agent, batch, config, rng, budget_used) -> (agent, diagnostics)``,
where budget_used in [0, 1) is the fraction of the step budget already spent (the clock of the
annealed settings). The loop below does the rest, reading top to bottom: make the envs, start or
resume a Run (rlref/run.py: the run's whole state and its checkpoints), then per iteration collect
a Batch (rlref/rollout.py), count it, update, log a row of progress.csv, save when due; at the end
evaluate and write summary.json.

A distributed algorithm (dppo) also provides ``workers(config)``, the rlref.workers.Workers of
its MPI job (every other algorithm runs with ``Workers()``, one process), and takes it as
``update(..., workers=...)``: the loop then runs on every rank, counts steps and episodes over all of them, decides together when to save and stop, and only
rank 0 writes the run directory.

SIGINT or SIGTERM (on every rank) stops the run after the iteration in progress, with a
checkpoint; ``resume`` continues it (docs/command_line.md).
"""
import sys

import numpy as np

from rlref import checkpoint
from rlref.algos import algo_module
from rlref.envs import make_envs
from rlref.errors import RlrefError
from rlref.normalize import rms_normalize
from rlref.policy import policy_forward
from rlref.rollout import collect
from rlref.run import Run, saved_policy
from rlref.workers import Workers
from rlref.rundir import Checkpointer, RunLog, stop_message, write_json
from rlref.seeding import seed_from


def train(algo, config, out_dir, quiet=False, overwrite=False):
    """Train `algo` ("a2c", ...) with `config` and write the run directory. Returns the summary
    (None on the ranks other than 0 of a distributed run; on every rank a record with "stopped_by"
    when a signal stopped it). A directory that already holds a run is refused (RunDirectoryError)
    unless overwrite=True."""
    return _on_every_worker(algo, config, out_dir, quiet, overwrite=overwrite)


def resume(run_dir, quiet=False):
    """Continue the run in run_dir from its last checkpoint, to the budget in its config, appending
    to its progress.csv (a distributed run: under mpiexec with the workers it had, each of which
    reads run_dir). Returns what train returns."""
    meta = checkpoint.load_meta(run_dir)
    return _on_every_worker(meta["algorithm"], None, run_dir, quiet, resuming=meta)


def _on_every_worker(algo, config, out_dir, quiet, overwrite=False, resuming=None):
    module = algo_module(algo)
    workers = module.workers(config) if hasattr(module, "workers") else Workers()
    if resuming is not None:
        try:
            config = Run.config_to_resume(resuming, out_dir, workers)
        except RlrefError:                          # refused alike on every worker, before any collective:
            if workers.rank != 0:                   # rank 0 alone says why
                raise SystemExit(2) from None
            raise
    try:
        return _train(algo, config, out_dir, workers, quiet or workers.rank != 0, overwrite, resuming)
    except BaseException as err:                    # after _train's own cleanup
        workers.abort(err)
        raise


def _train(algo, config, out_dir, workers, quiet, overwrite, resuming):
    """The loop: envs, a new or resumed Run, {collect, count, update, log, save when due}, evaluate."""
    module, root = algo_module(algo), workers.rank == 0
    envs = make_envs(config.env, config.num_envs)  # a missing package fails here, before anything is written
    run = (Run.resume(out_dir, resuming, config, envs, workers) if resuming is not None
           else Run.new(algo, config, envs, workers, out_dir, overwrite))
    if run.note and not quiet:
        print(run.note, file=sys.stderr, flush=True)
    log = RunLog(out_dir, run.n_iterations(), quiet, run.iteration if resuming else None) if root else None
    saver = Checkpointer(config.checkpoint_every, config.checkpoint_minutes, run.iteration, workers)
    extra = {"workers": workers} if hasattr(module, "workers") else {}
    try:
        with saver:
            while not run.finished and saver.stop_signal is None:
                if run.episodic and run.iteration > 0:
                    run.restart_envs()                          # E fresh whole episodes every time
                batch = collect(run.collector, run.agent["policy"], run.T, run.rngs["act"],
                                stop_when_all_done=run.episodic)
                workers.after_collect(run.collector)             # e.g. merge the statistics (DPPO.3)
                budget_used = run.budget_used                    # before this batch
                run.count(batch)
                agent, diagnostics = module.update(run.agent, batch, config, run.rngs["update"],
                                                   budget_used=budget_used, **extra)
                run.advance(agent)
                if root:
                    log.write(run.row(diagnostics))
                if saver.due(run.iteration):                     # decided by every worker together
                    run.save(out_dir)
                    saver.saved(run.iteration)
        if saver.last_iteration != run.iteration:
            run.save(out_dir)
    except BaseException:      # one process keeps the state of this moment; a save of many is collective
        if workers.size == 1 and saver.last_iteration != run.iteration:
            run.save(out_dir)
        raise
    finally:
        if log is not None:
            log.close()
        envs.close()
    if saver.stop_signal is not None:                    # no evaluation, no summary.json
        if root:
            print(stop_message(saver.stop_signal, out_dir, run.iteration, run.env_steps, workers.size),
                  file=sys.stderr, flush=True)
        return run.summary(stopped_by=saver.stop_signal)
    if not root:
        return None
    trained = TrainedPolicy(run.agent["policy"], run.collector.obs_rms, config.obs_clip, run.spaces.bounds, config)
    summary = run.summary(evaluate(trained, config.env, config.eval_episodes, seed_from(run.rngs["eval"])))
    write_json(out_dir, "summary.json", summary)
    return summary


def evaluate(trained, env_id, episodes, seed):
    """Returns of `episodes` deterministic episodes (argmax / mean action) of the TrainedPolicy
    `trained`, one per env, the envs reset with `seed` (frozen statistics, clipped actions)."""
    envs = make_envs(env_id, episodes)
    obs, _ = envs.reset(seed=int(seed))
    returns, finished = np.zeros(episodes), np.zeros(episodes, bool)
    while not finished.all():
        obs, r, term, trunc, _ = envs.step(trained.act(obs))           # (E,) or (E, A) actions
        returns += np.where(finished, 0.0, r)                          # count each env's first episode
        finished |= np.asarray(term | trunc)
    envs.close()
    return returns


class TrainedPolicy:
    """A trained policy to use in your own gymnasium loop: act(obs) normalizes obs with the run's
    frozen statistics and clips Box actions to the env's bounds; evaluate acts through it too.
    load_run also keeps the run's `config` on it."""

    def __init__(self, policy, obs_rms=None, obs_clip=10.0, bounds=None, config=None):
        self.policy, self.obs_rms, self.obs_clip, self.bounds, self.config = policy, obs_rms, obs_clip, bounds, config

    def act(self, obs, deterministic=True, rng=None):
        """The action for one observation (D,) or actions for a batch (N, D): argmax / mean when
        deterministic, else a sample drawn with rng (default: a fresh generator)."""
        obs = np.asarray(obs, dtype=np.float64)
        x = obs[None] if obs.ndim == 1 else obs                        # (N, D)
        D = self.policy["W1"].shape[0]
        if x.ndim != 2 or x.shape[1] != D:
            raise ValueError(f"obs must have shape ({D},) or (N, {D}) for this policy (trained on "
                             f"{getattr(self.config, 'env', 'an env')} observations), got {obs.shape}")
        if self.obs_rms is not None:
            x = rms_normalize(self.obs_rms, x, self.obs_clip)          # frozen statistics (NORM.2)
        dist, _ = policy_forward(self.policy, x)
        a = dist.mode() if deterministic else dist.sample(rng if rng is not None else np.random.default_rng())
        if self.bounds is not None:
            a = np.clip(a, *self.bounds)                               # only what is sent to the env
        return a[0] if obs.ndim == 1 else a


def load_run(run_dir):
    """The TrainedPolicy saved in run_dir/checkpoint (rlref.load is this function)."""
    config, policy, obs_rms, spaces = saved_policy(run_dir)
    return TrainedPolicy(policy, obs_rms, config.obs_clip, spaces.bounds, config)
