"""Calibrate a learning test: run `python -m rlref train` over many seeds and tabulate the outcome.

    python scripts/calibrate.py a2c CartPole-v1 --seeds 11-40 --total-steps 200000 [--set k=v ...] [--jobs 2]
    python scripts/calibrate.py dppo CartPole-v1 --seeds 11-30 --mpi 2 --jobs 1   # mpiexec -n 2 per seed

Each seed is one `python -m rlref train` child run by rlref/bench.py (its run directories and
stderr logs stay in a temporary folder, named at the end). Prints one line per seed (solved_at_steps,
the training mean at the end, the deterministic evaluation, wall seconds) and a summary: how many
seeds reach the evaluation threshold, how many end with a training mean at the threshold (a policy
can solve in training and drift away before the end, or evaluate worse deterministically than it
trains), the worst evaluation, and the median steps to solve. Learning tests choose their seeds outside every range used here and their k-of-n rule from
these counts (see the comment above each learning test).
"""
import argparse
import csv
import json
import os
import statistics
import tempfile

from rlref.bench import plan_run, run_name, summaries


def seed_list(text):
    out = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def last_training_mean(run_dir):
    """return_mean of progress.csv's last row: the mean of the last 20 finished training episodes."""
    with open(os.path.join(run_dir, "progress.csv")) as f:
        return float(list(csv.DictReader(f))[-1]["return_mean"])


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
    out = tempfile.mkdtemp(prefix=f"rlref-cal-{a.algo}-")                 # rlref.bench runs the seeds
    grid = [plan_run(a.algo, a.env, seed, os.path.join(out, "runs", run_name(a.algo, a.env, seed)), a.total_steps,
                     a.set, workers=a.mpi) for seed in a.seeds]
    runs = summaries(grid, a.jobs, os.path.join(out, "logs"))
    threshold = a.threshold if a.threshold is not None else runs[0]["threshold"]
    finals = [last_training_mean(run["dir"]) for run in grid]
    for s, final in zip(runs, finals):
        print(f"seed {s['seed']:5d}  solved_at {str(s['solved_at_steps']):>8}  final_train {final:9.2f}"
              f"  eval {s['eval_return_mean']:9.2f}"
              f"  wall {s['wall_s']:6.1f} s  steps/s {s['steps_per_s']:8.0f}", flush=True)
    evals = [s["eval_return_mean"] for s in runs]
    solved = [s["solved_at_steps"] for s in runs if s["solved_at_steps"]]
    print(json.dumps({"algo": a.algo, "env": a.env, "seeds": f"{a.seeds[0]}..{a.seeds[-1]}", "n": len(evals),
                      "total_steps": runs[0]["config"]["total_steps"], "settings": a.set,
                      "eval_threshold": threshold, "reached": sum(e >= threshold for e in evals),
                      "final_train_reached": sum(f >= threshold for f in finals), "worst_eval": min(evals), "median_eval": statistics.median(evals),
                      "solved_seeds": len(solved), "median_solved_at": statistics.median(solved) if solved else None,
                      "median_wall_s": statistics.median(s["wall_s"] for s in runs),
                      "median_solved_at_wall_s": statistics.median(s["solved_at_wall_s"] for s in runs
                                                                   if s["solved_at_wall_s"]) if solved else None,
                      "run_directories": out}))


if __name__ == "__main__":
    main()
