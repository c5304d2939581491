"""Learning curves of several seeds per algorithm, at the budget each is calibrated for, stored
compactly in figures/seed_curves.json for the notebooks (rlref.plot.load_seed_curves and
plot_seed_band draw them).

    nice -n 10 python scripts/seed_curves.py            # defaults: 5 seeds from 301, --jobs 1

runs

    python -m rlref bench --algos reinforce a2c npg trpo ppo --envs CartPole-v1 --seeds 5 --first-seed 301
        --jobs 1 --out runs/seed_curves

(rlref/bench.py: one `python -m rlref train` child per seed, each at its algorithm's default
total_steps, which are calibrated for CartPole-v1; no --steps is passed), then resamples every
run's return_mean (the mean of its last 20 training episodes, progress.csv) on one grid of
POINTS env steps per algorithm, the span where every seed of that algorithm has a value, and
writes

    {env: {algo: {"budget": N, "seeds": [...], "command": "...", "steps": [grid],
                  "returns": [[one row per seed, on the grid]], "threshold": 475,
                  "eval_return_mean": [one per seed: summary.json's deterministic evaluation],
                  "solved_at_steps": [one per seed: the first training return_mean >= threshold, or null]}}}

Seeds 301-305 were used for no tuning and no calibration (scripts/calibrate.py's comments in
tests/test_learning*.py and docs/results.md name every range used: 11-110, 201-205, 901-905, ...).
The bench keeps its run directories in --runs (runs/ is not tracked) and reuses finished runs, so
running this again only rewrites the json.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)                   # this checkout's rlref, also for the bench's children

from rlref.bench import planned_config, run_name  # noqa: E402
from rlref.envs import solved_threshold  # noqa: E402
from rlref.rundir import read_progress  # noqa: E402

ALGOS = ("reinforce", "a2c", "npg", "trpo", "ppo")
POINTS = 100                               # grid points per curve: the file stays small (about 30 KB)


def resample(curves, points=POINTS):
    """curves: [(env_steps, return_mean)] of the seeds of one algorithm, NaN rows (before the
    first episode ended) dropped. Returns (grid (G,) of whole steps, Y (S, G)) on the span where
    every seed has a value, by linear interpolation between logged iterations."""
    lo, hi = max(s[0] for s, _ in curves), min(s[-1] for s, _ in curves)
    grid = np.unique(np.linspace(lo, hi, points).round().astype(np.int64))           # (G,)
    Y = np.stack([np.interp(grid, steps, returns) for steps, returns in curves])     # (S, G)
    return grid, Y


def curve(run_dir):
    p = read_progress(run_dir)
    steps, returns = np.asarray(p["env_steps"], dtype=np.float64), np.asarray(p["return_mean"], dtype=np.float64)
    keep = np.isfinite(returns)
    return steps[keep], returns[keep]


def collect(runs, env, algo, seeds, command):
    """One algorithm's entry of the json, from its run directories under runs/runs/."""
    dirs = [os.path.join(runs, "runs", run_name(algo, env, seed)) for seed in seeds]
    budgets = set()
    evals, solved = [], []
    for d in dirs:
        with open(os.path.join(d, "config.json")) as f:
            budgets.add(json.load(f)["total_steps"])
        with open(os.path.join(d, "summary.json")) as f:
            summary = json.load(f)
        evals.append(round(float(summary["eval_return_mean"]), 2))
        solved.append(summary["solved_at_steps"])
    default = planned_config(algo, env, seeds[0], None, ())["total_steps"]    # what `train ALGO` runs
    if budgets != {default}:
        raise RuntimeError(f"{algo}: the runs in {runs} have budgets {sorted(budgets)}, the default is {default}; "
                           f"remove {runs} and run again")
    grid, Y = resample([curve(d) for d in dirs])
    return {"budget": default, "seeds": list(seeds), "command": command, "steps": grid.tolist(),
            "returns": np.round(Y, 2).tolist(), "threshold": solved_threshold(env), "eval_return_mean": evals,
            "solved_at_steps": solved}


def shown(path):
    """path relative to the repository when inside it (the command stored reads as typed there)."""
    rel = os.path.relpath(os.path.abspath(path), REPO)
    return path if rel.startswith(os.pardir) else rel


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--algos", nargs="+", default=list(ALGOS))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=301)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--runs", default=os.path.join(REPO, "runs", "seed_curves"), help="the bench's folder")
    ap.add_argument("--out", default=os.path.join(REPO, "figures", "seed_curves.json"))
    a = ap.parse_args()
    bench = ["python", "-m", "rlref", "bench", "--algos", *a.algos, "--envs", a.env, "--seeds", str(a.seeds),
             "--first-seed", str(a.first_seed), "--jobs", str(a.jobs), "--out", shown(a.runs)]
    command = shlex.join(bench)
    print(f"running: {command}", flush=True)
    start = time.time()
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    done = subprocess.run([sys.executable, *bench[1:-1], a.runs], cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    if done.returncode != 0:
        sys.exit(f"the bench exited with {done.returncode}; nothing written (its report: {a.runs}/results.md)")
    seeds = list(range(a.first_seed, a.first_seed + a.seeds))
    data = {a.env: {algo: collect(a.runs, a.env, algo, seeds, command) for algo in a.algos}}
    existing = {}
    if os.path.isfile(a.out):
        with open(a.out) as f:
            existing = json.load(f)
    existing.update(data)                          # other envs' entries are kept
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with open(a.out, "w") as f:
        json.dump(existing, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {a.out} ({os.path.getsize(a.out) / 1024:.1f} KB) after {time.time() - start:.0f} s:")
    for algo, entry in data[a.env].items():
        final = np.asarray(entry["returns"])[:, -1]
        print(f"  {a.env} {algo:<9} budget {entry['budget']:>7,}  seeds {seeds[0]}-{seeds[-1]}  "
              f"{len(entry['steps'])} points  final return_mean: mean {final.mean():6.1f}, min {final.min():6.1f}  "
              f"evaluation >= {entry['threshold']:g}: {sum(e >= entry['threshold'] for e in entry['eval_return_mean'])}"
              f" of {len(seeds)}")


if __name__ == "__main__":
    main()
