"""The run directory over a run's life: made without destroying another run, progress.csv written
(appended to on resume) and read back, when to save a checkpoint, and stopping cleanly on SIGINT /
SIGTERM. What a checkpoint holds is rlref/run.py's business; how it is written, rlref/checkpoint.py's.

A run directory (docs/run_directories.md): config.json, progress.csv, summary.json (once the
run has finished), checkpoint/ (params.npz and meta.json, swapped in atomically).
"""
import csv
import json
import os
import shutil
import signal
import sys
import threading
import time

from rlref import checkpoint
from rlref.errors import RunDirectoryError, RunNotFoundError

RUN_FILES = ("config.json", "progress.csv", "summary.json", "checkpoint", "checkpoint.old", "checkpoint.new")
DRAWN_FROM_RUN = ("learning_curve.png",)  # `plot DIR`'s default figure: removed with the run it shows (--overwrite)


def new_run_dir(out_dir, overwrite=False):
    """Make out_dir for a new run. A directory that already holds a run is refused with
    RunDirectoryError, before anything is written, unless overwrite: then that run's files (and
    nothing else) are removed first."""
    found = [name for name in RUN_FILES if os.path.exists(os.path.join(out_dir, name))]
    if found and not overwrite:
        resume = (f"Continue it (--resume {out_dir}), write" if checkpoint.find(out_dir) else
                  "It stopped before its first checkpoint, so it cannot be continued: write")
        raise RunDirectoryError(f"{out_dir} already holds a run ({', '.join(found)}); nothing was changed. "
                                f"{resume} the new run elsewhere (--out DIR) or replace this one (--overwrite)")
    if found:
        found += [name for name in DRAWN_FROM_RUN if os.path.isfile(os.path.join(out_dir, name))]
    for name in found:
        path = os.path.join(out_dir, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    os.makedirs(out_dir, exist_ok=True)


def write_json(run_dir, name, data):
    """run_dir/name (config.json, summary.json) holding data, indented."""
    with open(os.path.join(run_dir, name), "w") as f:
        json.dump(data, f, indent=1)


class RunLog:
    """progress.csv, one row per iteration, and the one-line-per-iteration / tqdm display."""

    def __init__(self, out_dir, n_iters, quiet, resume_after=None):
        """resume_after: the iteration of the checkpoint a resumed run continues from; rows after
        it are cut, and new rows are appended under the existing header."""
        self.path = os.path.join(out_dir, "progress.csv")
        fields = truncate_progress(self.path, resume_after) if resume_after is not None else None
        self.file = open(self.path, "a" if fields else "w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=fields) if fields else None
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


def truncate_progress(path, iteration):
    """Cut progress.csv after the row of `iteration` (rows written after the checkpoint that is
    being resumed are dropped; the rows before it are kept as they are). Returns the header's
    fields, or None when the file has no header yet (or does not exist)."""
    if not os.path.isfile(path):
        return None
    with open(path, "rb+") as f:
        header = f.readline()
        for _ in range(iteration):
            if not f.readline():
                break
        f.truncate(f.tell())
    return header.decode().strip().split(",") if header.strip() else None


def read_progress(run_dir, last_row_only=False):
    """progress.csv as {column: [float, ...]}, one entry per iteration (an empty cell, and the
    return_mean of iterations before the first finished episode, is nan): the one reader of the
    file, for plots, bench reports and tests. last_row_only reads the header and the file's last
    4 KB only, so that polling a long run costs what polling a short one does."""
    path = os.path.join(run_dir, "progress.csv")
    if not os.path.isfile(path):
        why = ("it has no progress.csv" if os.path.isdir(run_dir) else
               "it is a file" if os.path.exists(run_dir) else "it does not exist")
        raise RunNotFoundError(f"{run_dir} is not a run directory: {why} (train writes one; "
                               f"python -m rlref train ppo --out DIR)")
    with open(path, "rb") as f:
        header = next(csv.reader([f.readline().decode()]), [])
        if last_row_only:
            f.seek(max(f.tell(), os.fstat(f.fileno()).st_size - 4096))
        rows = [row for row in csv.reader(f.read().decode(errors="replace").splitlines())
                if len(row) == len(header)]               # a row being written (or cut at the tail) is skipped
    rows = rows[-1:] if last_row_only else rows
    return {key: [float(row[i]) if row[i] else float("nan") for row in rows] for i, key in enumerate(header)}


class Checkpointer:
    """When to save: every `every` iterations, every `minutes` of wall time, and when asked to stop.

    As a context manager it turns the first SIGINT or SIGTERM into a request to stop after the
    current iteration (a second SIGINT interrupts at once). Every worker of a distributed run
    catches the signals, and `due` decides together with the others (workers.agree: one small
    collective per iteration), so that all of them stop, and save, after the same iteration."""

    def __init__(self, every, minutes, iteration, workers):
        self.every, self.seconds, self.workers = every, 60.0 * minutes, workers
        self.last, self.caught, self.stop_signal, self._previous = time.monotonic(), None, None, {}
        self.last_iteration = iteration                 # the state of this iteration is on disk

    def due(self, iteration):
        """Whether to save after `iteration`; sets stop_signal when any worker caught a signal."""
        caught, late = self.workers.agree([self.caught or 0, time.monotonic() - self.last >= self.seconds])
        self.stop_signal = int(caught) or None
        return bool(self.stop_signal or (self.every and iteration % self.every == 0) or late)

    def saved(self, iteration):
        self.last, self.last_iteration = time.monotonic(), iteration

    def _handle(self, signum, frame):
        if self.caught is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.caught = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():     # where Python delivers signals
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)
        return False


def stop_message(signum, out_dir, iteration, steps, workers=1):
    name = signal.Signals(signum).name
    mpiexec = f"mpiexec -n {workers} " if workers > 1 else ""
    return (f"stopped by {name} after iteration {iteration} ({steps} steps); checkpoint saved. "
            f"Continue with: {mpiexec}python -m rlref train --resume {os.path.normpath(out_dir)}")
