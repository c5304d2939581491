"""Calibrate a learning test: run `python -m rlref train` over many seeds and tabulate the outcome.

    python scripts/calibrate.py a2c CartPole-v1 --seeds 11-40 --total-steps 200000 [--set k=v ...] [--jobs 2]
    python scripts/calibrate.py dppo CartPole-v1 --seeds 11-30 --mpi 2 --jobs 1   # mpiexec -n 2 per seed

Prints one line per seed (solved_at_steps, deterministic evaluation, wall seconds) and a summary:
how many seeds reach the evaluation threshold, the worst evaluation, and the median steps to
solve. Learning tests choose their seeds outside every range used here and their k-of-n rule from
these counts (see the comment above each learning test).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

import rlref  # noqa: E402

ENV = rlref.one_blas_thread(dict(os.environ))


def seed_list(text):
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def run(algo, env, seed, steps, settings, mpi=None):
    out = tempfile.mkdtemp(prefix=f"rlref-cal-{algo}-{seed}-")
    cmd = ["mpiexec", "-n", str(mpi)] if mpi else []
    cmd += [sys.executable, "-m", "rlref", "train", algo, "--env", env, "--seed", str(seed), "--out", out, "--quiet"]
    cmd += ["--total-steps", str(steps)] if steps else []
    for s in settings:
        cmd += ["--set", s]
    subprocess.run(cmd, check=True, env=ENV, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "summary.json")) as f:
        return json.load(f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("algo")
    ap.add_argument("env")
    ap.add_argument("--seeds", type=seed_list, default=seed_list("11-20"))
    ap.add_argument("--total-steps", type=int, default=None)
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--threshold", type=float, default=None, help="evaluation threshold (default: solved)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--mpi", type=int, default=None, help="run each seed as mpiexec -n MPI (dppo)")
    a = ap.parse_args()
    with ThreadPoolExecutor(a.jobs) as pool:
        summaries = list(pool.map(lambda s: run(a.algo, a.env, s, a.total_steps, a.set, a.mpi), a.seeds))
    threshold = a.threshold if a.threshold is not None else summaries[0]["threshold"]
    for s in summaries:
        print(f"seed {s['seed']:5d}  solved_at {str(s['solved_at_steps']):>8}  eval {s['eval_return_mean']:9.2f}"
              f"  wall {s['wall_s']:6.1f} s  steps/s {s['steps_per_s']:8.0f}", flush=True)
    evals = [s["eval_return_mean"] for s in summaries]
    solved = [s["solved_at_steps"] for s in summaries if s["solved_at_steps"]]
    print(json.dumps({"algo": a.algo, "env": a.env, "seeds": f"{a.seeds[0]}..{a.seeds[-1]}", "n": len(evals),
                      "total_steps": summaries[0]["config"]["total_steps"], "settings": a.set,
                      "eval_threshold": threshold, "reached": sum(e >= threshold for e in evals),
                      "worst_eval": min(evals), "median_eval": statistics.median(evals),
                      "solved_seeds": len(solved), "median_solved_at": statistics.median(solved) if solved else None,
                      "median_wall_s": statistics.median(s["wall_s"] for s in summaries),
                      "median_solved_at_wall_s": statistics.median(s["solved_at_wall_s"] for s in summaries
                                                                   if s["solved_at_wall_s"]) if solved else None}))


if __name__ == "__main__":
    main()
