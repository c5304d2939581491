"""What several test files share: the command line run in a subprocess, with this checkout's rlref
and one BLAS thread (conftest.py set it for this process; the children inherit it)."""
import csv
import json
import os
import subprocess
import sys
import tempfile

import rlref

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def read_progress(run_dir):
    with open(os.path.join(run_dir, "progress.csv"), newline="") as f:
        return list(csv.DictReader(f))
