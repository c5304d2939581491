"""A training run's state, its one owner, and the checkpoint format.

A Run holds everything that changes while an algorithm trains: the agent (parameters, optimizer
state, beta, ...), the Collector (current observations, unfinished episodes, normalization
statistics), the named generators (rlref/seeding.py), the counters (iteration, env steps,
episodes), the window of the last 20 finished episodes behind return_mean, the moment the run was
solved, and the wall clock. rlref/train.py's loop makes one (``Run.new``) or continues one
(``Run.resume``), and per iteration asks it to ``count`` the batch, to take the update's agent
(``advance``), for the progress.csv ``row``, and to ``save`` itself.

A checkpoint is taken only between iterations, so it is one consistent moment of the run. It is
the only thing that reads or writes what a checkpoint holds (rlref/checkpoint.py writes it
atomically):

    params.npz  the agent's parts ("policy/W1", "opt/m", ...), the normalization statistics
                ("obs_rms/mean", ...) and each worker's collector arrays ("collector/obs" for
                worker 0, "collector.1/obs", ... for the others of a distributed run)
    meta.json   algorithm, config, versions, workers, counters, window, solved, wall_s, and worker
                0's generator states ("rng_states"), collector counters and envs' state ("envs",
                rlref/envstate.py; null where it cannot be captured); the other workers' in "ranks"

Resuming a classic-control run therefore continues bitwise as if it had never stopped (a
distributed one with the same number of workers); other envs are restarted with seeds from the
saved "env" generator, which is deterministic but not the same run.
"""
import platform
import time
from collections import deque

import gymnasium as gym
import numpy as np

from rlref import __version__, checkpoint, envstate, seeding
from rlref.algos import algo_module
from rlref.envs import episode_limit, make_envs, solved_threshold, spaces_of
from rlref.errors import CheckpointError, NonFiniteError, RunDirectoryError
from rlref.normalize import rms_init
from rlref.rollout import restore, start
from rlref.rundir import new_run_dir, write_json

WINDOW = 20                               # return_mean: mean of the last 20 finished episodes


class Run:
    """The state of one training run (see the module's docstring). Made by Run.new or Run.resume."""

    def __init__(self, algo, config, envs, workers):
        """A new run's state, nothing written: generators, the initial agent (rank 0's, on every
        worker), a collector on freshly reset envs, zero counters, the clock started."""
        self.algo, self.module, self.config, self.envs, self.workers = algo, algo_module(algo), config, envs, workers
        self.spaces = spaces_of(envs)
        self.rngs = workers.generators(config.seed)
        self.agent = workers.broadcast(self.module.init_agent(config, *self.spaces[:3], self.rngs["init"]))
        self.collector = start(envs, seeding.seed_from(self.rngs["env"]), config)
        self.episodic = self.module.ROLLOUT == "episodes"                  # E whole episodes per iteration
        self.T = episode_limit(config.env) if self.episodic else config.n_steps
        self.iteration = self.env_steps = self.episodes = 0
        self.window, self.lengths, self.solved = deque(maxlen=WINDOW), [], None
        self.threshold, self.note = solved_threshold(config.env), None
        self._wall0, self._t0 = 0.0, time.perf_counter()

    @classmethod
    def new(cls, algo, config, envs, workers, run_dir, overwrite=False):
        """A new run of algo in run_dir: rank 0 makes the directory (RunDirectoryError if it holds
        a run, unless overwrite) and writes config.json."""
        if workers.rank == 0:
            spaces_of(envs)                       # an env rlref cannot train is refused before anything is written
            new_run_dir(run_dir, overwrite)
            write_json(run_dir, "config.json", {"algorithm": algo, **config.to_dict()})
        return cls(algo, config, envs, workers)

    @staticmethod
    def config_to_resume(meta, run_dir, workers):
        """The Config of the checkpointed run, after checking it can continue here: a checkpoint
        with the run's state, a budget not yet spent, and this job's number of workers."""
        if "window" not in meta:
            raise CheckpointError(f"{run_dir}/checkpoint was written by an rlref that did not save the run's "
                                  f"state (counters, collector, window); it can be evaluated but not resumed")
        had = meta.get("workers", 1)
        if had != workers.size:
            raise RunDirectoryError(f"{run_dir} was trained by {had} workers and this job has {workers.size}: a "
                                    f"run continues with the workers it had (mpiexec -n {had} python -m rlref "
                                    f"train --resume {run_dir})" if had > 1 else
                                    f"{run_dir} was trained by 1 worker and this job has {workers.size}: "
                                    f"continue it without mpiexec (python -m rlref train --resume {run_dir})")
        config = algo_module(meta["algorithm"]).Config(**meta["config"])
        if meta["counters"]["env_steps"] >= config.total_steps:
            raise RunDirectoryError(f"{run_dir} is finished ({meta['counters']['env_steps']} of "
                                    f"{config.total_steps} steps): nothing to resume")
        return config

    @classmethod
    def resume(cls, run_dir, meta, config, envs, workers):
        """The run checkpointed in run_dir as it was (meta: its meta.json, config: what
        config_to_resume returned). Every worker reads the checkpoint and takes its own part."""
        run = cls(meta["algorithm"], config, envs, workers)
        fresh = [run.collector.carried()] * workers.size                     # the template's shapes
        saved = checkpoint.load(run_dir, _parts(run.agent, run.collector.stats(), fresh))
        own = meta if workers.rank == 0 else meta["ranks"][workers.rank - 1]
        for name, g in run.rngs.items():
            g.bit_generator.state = own["rng_states"][name]
        stats = {k: saved[k] for k in ("obs_rms", "ret_rms") if k in saved}
        if own["envs"] is None:                          # not capturable: restart them, deterministically
            run.collector = start(envs, seeding.seed_from(run.rngs["env"]), config, stats)
        else:
            envstate.restore(envs, own["envs"])
            run.collector = restore(envs, config, stats, saved[_collector_part(workers.rank)],
                                    own["counters"]["collector_steps"], own["counters"]["collector_calls"])
        workers.after_resume(run.collector)
        run.agent = {k: saved[k] for k in run.agent}
        counters = meta["counters"]
        run.iteration, run.env_steps, run.episodes = counters["iteration"], counters["env_steps"], counters["episodes"]
        run.window.extend(meta["window"])
        run.solved, run._wall0 = tuple(meta["solved"]) if meta["solved"] else None, float(meta["wall_s"])
        run.note = (f"resuming {run_dir} after iteration {run.iteration} ({run.env_steps} steps)"
                    + (f"; {config.env}'s state cannot be saved, so its envs were restarted (deterministically, "
                       f"from the saved generators)" if own["envs"] is None else ""))
        return run

    @property
    def finished(self):
        return self.env_steps >= self.config.total_steps

    @property
    def budget_used(self):
        """The fraction of the step budget spent so far: the clock of the annealed settings."""
        return self.env_steps / self.config.total_steps

    def n_iterations(self):
        """The number of iterations the budget takes (an estimate for episodes: for the bar)."""
        return -(-self.config.total_steps // (self.config.num_envs * self.T))

    def wall_s(self):
        return self._wall0 + time.perf_counter() - self._t0

    def restart_envs(self):
        """Reset the envs (seeded from "env") for a new set of whole episodes; statistics continue."""
        self.collector = start(self.envs, seeding.seed_from(self.rngs["env"]), self.config, self.collector.stats())

    def count(self, batch):
        """Count a batch over every worker: env steps (valid transitions), finished episodes, the
        window behind return_mean, and the first moment it reached the threshold (solved, as the
        peer measures it)."""
        steps, returns, self.lengths = self.workers.collected(int(batch.valid.sum()), batch.episode_returns,
                                                              batch.episode_lengths)
        self.env_steps, self.episodes = self.env_steps + steps, self.episodes + len(returns)
        for ret in returns:
            self.window.append(ret)
            if self.solved is None and self.threshold is not None and len(self.window) == WINDOW \
                    and np.mean(self.window) >= self.threshold:
                self.solved = (self.env_steps, self.wall_s())

    def advance(self, agent):
        """Take the update's new agent and close the iteration; NonFiniteError (keeping the agent
        from before the update) if it holds NaN or inf."""
        bad = checkpoint.first_non_finite(agent)
        if bad is not None:
            raise NonFiniteError(f"the update produced non-finite values in {bad}; the parameters before "
                                 f"the update were kept")
        self.agent, self.iteration = agent, self.iteration + 1

    def row(self, diagnostics):
        """This iteration's row of progress.csv (docs/run_directories.md)."""
        nan, window, lengths = float("nan"), self.window, self.lengths
        return {"iteration": self.iteration, "env_steps": self.env_steps, "wall_s": round(self.wall_s(), 4),
                "episodes": self.episodes, "return_mean": float(np.mean(window)) if window else nan,
                "return_std": float(np.std(window)) if window else nan,
                "length_mean": float(np.mean(lengths)) if lengths else nan, **diagnostics}

    def save(self, run_dir):
        """Write the checkpoint: every worker's state is gathered on rank 0, which alone writes; the
        others wait until it is on disk (an error elsewhere cannot abort the job in mid-write)."""
        states = self.workers.gather_on_root(self._worker_state())
        if states is not None:
            carried = [state.pop("carried") for state in states]
            counters = {"iteration": self.iteration, "env_steps": self.env_steps, "episodes": self.episodes}
            meta = {"algorithm": self.algo, "config": self.config.to_dict(), "versions": versions(),
                    "workers": self.workers.size, **states[0], "counters": {**counters, **states[0]["counters"]},
                    "window": list(self.window), "solved": list(self.solved) if self.solved else None,
                    "wall_s": self.wall_s(), **({"ranks": states[1:]} if len(states) > 1 else {})}
            checkpoint.save(run_dir, _parts(self.agent, self.collector.stats(), carried), meta)
        self.workers.barrier()

    def _worker_state(self):
        """This worker's own part of a checkpoint: collector arrays and counters, generators, envs."""
        c = self.collector
        return {"carried": c.carried(), "rng_states": {k: g.bit_generator.state for k, g in self.rngs.items()},
                "counters": {"collector_steps": c.transitions, "collector_calls": c.calls},
                "envs": envstate.capture(c.envs)}

    def summary(self, eval_returns=None, stopped_by=None):
        """summary.json's contents after the evaluation (docs/run_directories.md), or the
        shorter record of a run stopped by a signal (no evaluation)."""
        base = {"algorithm": self.algo, "env": self.config.env, "seed": self.config.seed,
                "total_steps": self.env_steps, "iterations": self.iteration, "wall_s": self.wall_s()}
        if stopped_by is not None:
            return {**base, "stopped_by": stopped_by}
        solved = self.solved or (None, None)
        return {**base, "config": self.config.to_dict(), "versions": versions(),
                "steps_per_s": self.env_steps / base["wall_s"], "eval_return_mean": float(eval_returns.mean()),
                "eval_return_std": float(eval_returns.std()), "eval_episodes": len(eval_returns),
                "threshold": self.threshold, "solved_at_steps": solved[0], "solved_at_wall_s": solved[1],
                **({"workers": self.workers.size} if hasattr(self.module, "workers") else {})}


def _collector_part(rank):
    return "collector" if rank == 0 else f"collector.{rank}"


def _parts(agent, stats, carried):
    """The arrays of a checkpoint, part by part: the agent's, the statistics every worker shares,
    and each worker's collector arrays. The one template: for saving, and (from a fresh run's
    state) for loading."""
    return {**agent, **stats, **{_collector_part(rank): arrays for rank, arrays in enumerate(carried)}}


def saved_policy(run_dir):
    """(config, policy, obs_rms or None, spaces) of the run checkpointed in run_dir: what acting
    with its policy needs (rlref.load)."""
    meta = checkpoint.load_meta(run_dir)
    module = algo_module(meta["algorithm"])
    config = module.Config(**meta["config"])
    envs = make_envs(config.env, 1)
    spaces = spaces_of(envs)
    envs.close()
    policy = module.init_agent(config, *spaces[:3], seeding.generators(0)["init"])["policy"]
    stats = {"obs_rms": rms_init(spaces.obs_dim)} if config.normalize_obs else {}
    saved = checkpoint.load(run_dir, _parts({"policy": policy}, stats, carried=[]), strict=False)   # those parts only
    return config, saved["policy"], saved.get("obs_rms"), spaces


def versions():
    return {"rlref": __version__, "numpy": np.__version__, "gymnasium": gym.__version__,
            "python": platform.python_version()}
