"""What several test files share: the command line run in a subprocess, with this checkout's rlref
and one BLAS thread (conftest.py set it for this process; the children inherit it), and
progress.csv compared between runs, and the early decision of a learning test's "k of n seeds" rule."""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

import rlref
from rlref.rundir import read_progress  # noqa: F401  (the one reader of progress.csv, for the tests too)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The longest learning tests run only on request, RLREF_LONG_TESTS=1: together about 40 % of the
# suite's CPU, which must fit CI's 10 minutes on 2 cores. Which ones and why: docs/results.md,
# "What the learning tests cost". Every algorithm's CartPole test, PPO's Pendulum test and DPPO's
# CartPole test always run.
LONG = os.environ.get("RLREF_LONG_TESTS") == "1"
LONG_REASON = "a long learning test: run with RLREF_LONG_TESTS=1 (docs/results.md)"
ENV = rlref.one_blas_thread(dict(os.environ, PYTHONPATH=ROOT))


def cli(*args):
    """`python -m rlref ARGS...` in a subprocess; returns the CompletedProcess (text output)."""
    return subprocess.run([sys.executable, "-m", "rlref", *args], capture_output=True, text=True, env=ENV)


def train_summary(algo, seed, *args, env="CartPole-v1", out=None):
    """Train through the command line (quiet) into `out` (default: a new temporary folder) and
    return summary.json; fails the test with the error output if the command fails."""
    out = out or tempfile.mkdtemp(prefix=f"rlref-{algo}-{env}-{seed}-")
    done = cli("train", algo, "--env", env, "--seed", str(seed), "--out", str(out), "--quiet", *args)
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "summary.json")) as f:
        return {**json.load(f), "run_dir": str(out)}


def learning_columns(run_dir):
    """progress.csv's columns as arrays, wall_s (the only one that differs between equal runs) left out."""
    return {k: np.array(v) for k, v in read_progress(run_dir).items() if k != "wall_s"}


def same_progress(a, b):
    """Whether two run directories logged bitwise the same progress.csv but for wall_s (NaN, the
    return_mean before the first finished episode, equal to NaN)."""
    ca, cb = learning_columns(a), learning_columns(b)
    return list(ca) == list(cb) and all(np.array_equal(ca[k], cb[k], equal_nan=True) for k in ca)


def n_rows(run_dir):
    """The number of iterations progress.csv has logged."""
    return len(read_progress(run_dir).get("iteration", []))


def decide(seeds, k, passes, run):
    """The rule "at least k of these seeds pass", decided as soon as it is decided: `run(wave)` trains
    the seeds of a wave and returns their summaries; the seeds run in order, in waves of at most two
    (two cores) and of no more than the passes still missing, until k passed or more than n - k
    failed. The verdict is the one of running all n. Returns (verdict, the summaries that ran)."""
    done = []
    while True:
        passed = sum(map(passes, done))
        if passed >= k or len(done) - passed > len(seeds) - k:
            return passed >= k, done
        done += run(seeds[len(done):len(done) + min(2, k - passed)])
