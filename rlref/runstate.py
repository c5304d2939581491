"""The run directory over a run's life: made without destroying another run, progress.csv written
(and appended to on resume), what a checkpoint holds beyond the agent, periodic saving, stopping
cleanly on SIGINT / SIGTERM, and reading it all back for ``--resume``.

A checkpoint is taken only between iterations, so it is one consistent moment of the run: the
agent (parameters, optimizer, beta, ...), the normalization statistics, the Collector (current
observations, unfinished episodes' returns, the running discounted return, autoreset flags), the
generators, the counters, the 20-episode window behind ``return_mean``, the solved point, the
wall time so far, and the envs' own state where rlref can capture it (rlref/envstate.py). Resuming
a classic-control run therefore continues bitwise as if it had never stopped; other envs are
restarted with seeds from the saved "env" generator, which is deterministic but not the same run.
"""
import csv
import os
import shutil
import signal
import sys
import time
from collections import deque

import numpy as np

from rlref import envstate
from rlref.errors import RunDirectoryError
from rlref.rollout import Collector, check_spaces, start_collector

RUN_FILES = ("config.json", "progress.csv", "summary.json", "checkpoint", "checkpoint.old")


def new_run_dir(out_dir, overwrite=False):
    """Make out_dir for a new run. A directory that already holds a run is refused with
    RunDirectoryError, before anything is written, unless overwrite: then that run's files (and
    nothing else) are removed first."""
    found = [name for name in RUN_FILES if os.path.exists(os.path.join(out_dir, name))]
    if found and not overwrite:
        raise RunDirectoryError(f"{out_dir} already holds a run ({', '.join(found)}); nothing was changed. "
                                f"Continue it (--resume {out_dir}), write the new run elsewhere (--out DIR) or "
                                f"replace this one (--overwrite)")
    for name in found:
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(out_dir, exist_ok=True)


class RunLog:
    """progress.csv, one row per iteration, and the one-line-per-iteration / tqdm display."""

    def __init__(self, out_dir, n_iters, quiet, resume_after=None):
        """resume_after: the iteration of the checkpoint a resumed run continues from; rows after
        it are cut, and new rows are appended under the existing header."""
        self.path = os.path.join(out_dir, "progress.csv")
        if resume_after is None:
            self.file, self.writer = open(self.path, "w", newline=""), None
        else:
            fields = truncate_progress(self.path, resume_after)
            self.file = open(self.path, "a", newline="")
            self.writer = csv.DictWriter(self.file, fieldnames=fields)
        self.quiet, self.bar = quiet, None
        if not quiet and sys.stderr.isatty() and n_iters > 50:
            from tqdm import tqdm
            self.bar = tqdm(total=n_iters, unit="it", dynamic_ncols=True)

    def write(self, row):
        if self.writer is None:
            self.writer = csv.DictWriter(self.file, fieldnames=list(row))
            self.writer.writeheader()
        self.writer.writerow(row)
        self.file.flush()
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(steps=row["env_steps"], ret=f"{row['return_mean']:.1f}", refresh=False)
        elif not self.quiet:
            print(f"it {row['iteration']:5d}  steps {row['env_steps']:8d}  return {row['return_mean']:9.2f}  "
                  f"len {row['length_mean']:7.1f}  kl {row.get('kl', float('nan')):.2e}", flush=True)

    def close(self):
        self.file.close()
        if self.bar is not None:
            self.bar.close()


COLLECTOR_ARRAYS = ("obs", "autoreset", "ep_return", "ep_length", "disc_return")


def collector_parts(collector):
    """The Collector's arrays as one checkpoint part (the envs and statistics are saved apart)."""
    return {"collector": {k: getattr(collector, k) for k in COLLECTOR_ARRAYS if getattr(collector, k) is not None}}


def collector_like(config, obs_dim):
    """A template of collector_parts for checkpoint.load (shapes and kinds only)."""
    E = config.num_envs
    like = {"obs": np.zeros((E, obs_dim)), "autoreset": np.zeros(E, bool), "ep_return": np.zeros(E),
            "ep_length": np.zeros(E, np.int64)}
    if config.scale_reward:
        like["disc_return"] = np.zeros(E)
    return {"collector": like}


def progress_state(collector, iteration, steps, episodes, window, solved, wall_s):
    """The meta.json entries of a resumable checkpoint (JSON: floats round-trip exactly)."""
    return {"counters": {"iteration": iteration, "env_steps": steps, "episodes": episodes,
                         "collector_steps": collector.total_steps, "collector_calls": collector.calls},
            "window": list(window), "solved": list(solved) if solved else None, "wall_s": wall_s,
            "envs": envstate.capture(collector.envs)}


def restore(meta, saved, envs, config, rngs, window_size, seed_from):
    """(collector, counters, window, solved, wall_s, restarted) from a checkpoint's meta and arrays.

    restarted is True when the envs' state was not saved: they are then reset with the seed
    seed_from(rngs["env"]) (as a fresh run's are), their unfinished episodes are lost, and the
    statistics continue."""
    for name, g in rngs.items():
        g.bit_generator.state = meta["rng_states"][name]
    stats = {k: saved[k] for k in ("obs_rms", "ret_rms") if k in saved}
    if meta.get("envs") is None:
        collector = start_collector(envs, config, seed_from(rngs["env"]), stats=stats)
        restarted = True
    else:
        envs.reset(seed=0)                                        # then overwritten with the saved state
        envstate.restore(envs, meta["envs"])
        parts = saved["collector"]
        collector = Collector(envs, *(np.array(parts[k]) for k in ("obs", "autoreset", "ep_return", "ep_length")),
                              bounds=check_spaces(envs)[3], obs_rms=stats.get("obs_rms"), obs_clip=config.obs_clip,
                              ret_rms=stats.get("ret_rms"), gamma=config.gamma,
                              disc_return=np.array(parts["disc_return"]) if "disc_return" in parts else None)
        collector.total_steps = meta["counters"]["collector_steps"]
        collector.calls = meta["counters"]["collector_calls"]
        restarted = False
    solved = tuple(meta["solved"]) if meta["solved"] else None
    return (collector, meta["counters"], deque(meta["window"], maxlen=window_size), solved,
            float(meta["wall_s"]), restarted)


class Checkpointer:
    """When to save: every `every` iterations, every `minutes` of wall time, and when asked to stop.

    As a context manager it turns the first SIGINT or SIGTERM into a request to stop after the
    current iteration (a second SIGINT interrupts at once). Signals are only caught in the main
    thread of a one-process run; a distributed run keeps the default behaviour."""

    def __init__(self, every, minutes, iteration=0, catch_signals=True):
        self.every, self.seconds, self.catch = every, 60.0 * minutes, catch_signals
        self.last, self.stop_signal, self._previous = time.monotonic(), None, {}
        self.last_iteration = iteration                 # the state of this iteration is on disk

    def due(self, iteration):
        return (self.stop_signal is not None or (self.every and iteration % self.every == 0)
                or time.monotonic() - self.last >= self.seconds)

    def saved(self, iteration):
        self.last, self.last_iteration = time.monotonic(), iteration

    def _handle(self, signum, frame):
        if self.stop_signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.stop_signal = signum

    def __enter__(self):
        if self.catch:
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


def truncate_progress(path, iteration):
    """Cut progress.csv after the row of `iteration` (rows written after the checkpoint that is
    being resumed are dropped; the rows before it are kept as they are)."""
    with open(path, "rb+") as f:
        header = f.readline()
        for _ in range(iteration):
            if not f.readline():
                break
        f.truncate(f.tell())
    return header.decode().strip().split(",")


def stop_message(signum, out_dir, iteration, steps):
    name = signal.Signals(signum).name
    return (f"stopped by {name} after iteration {iteration} ({steps} steps); checkpoint saved. "
            f"Continue with: python -m rlref train --resume {os.path.normpath(out_dir)}")
