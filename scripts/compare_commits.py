"""rlref against an older rlref, side by side: the same training command on the same seeds, the two
code versions alternating run by run, and the median ratios of new / old.

    python scripts/compare_commits.py 2da769c ppo CartPole-v1 --seeds 1 2 3 4 5 [--set k=v ...]

The old version is exported with `git archive REV` into a temporary folder and run from there
(PYTHONPATH and working folder); the new one is this working tree. Each run is `python -m rlref
train ALGO --env ENV --seed S --quiet` (one BLAS thread), run by rlref/bench.py one at a time, so
both sides pay the same start-up and evaluation. Printed per seed: steps and wall seconds to
solve (`solved_at_steps`, `solved_at_wall_s` of summary.json), steps per second, the final
deterministic evaluation; then the medians and the ratios new / old (below 1: the new code is
faster). --set applies to the new side
only (settings the old code may not know). Shared machines are noisy: trust the ratio of runs
that alternate, not the seconds.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from rlref.bench import plan_run, run_name, summaries  # noqa: E402


def export(rev):
    """The tree of git revision rev in a new temporary folder (code only: rlref/)."""
    out = tempfile.mkdtemp(prefix=f"rlref-{rev}-")
    archive = subprocess.run(["git", "-C", ROOT, "archive", rev, "rlref"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", out], input=archive, check=True)
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", help="the older git revision, e.g. 2da769c")
    ap.add_argument("algo")
    ap.add_argument("env")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--set", action="append", default=[], help="a setting for the new side only")
    a = ap.parse_args()
    old_tree, out = export(a.rev), tempfile.mkdtemp(prefix="rlref-cmp-")
    grid = [plan_run(a.algo, a.env, seed, os.path.join(out, side, run_name(a.algo, a.env, seed)),
                     sets=settings, tree=tree)                   # alternate: old, new, old, new, ... (one at a time)
            for seed in a.seeds for side, tree, settings in (("old", old_tree, []), ("new", None, a.set))]
    rows = {"old": [], "new": []}
    for run, s in zip(grid, summaries(grid, 1, os.path.join(out, "logs"))):
        side = "old" if run["tree"] else "new"
        rows[side].append(s)
        print(f"{side} seed {run['seed']:4d}  solved at {str(s['solved_at_steps']):>7} steps, "
              f"{s['solved_at_wall_s'] or float('nan'):6.3f} s  {s['steps_per_s']:8.0f} steps/s  "
              f"eval {s['eval_return_mean']:7.1f}", flush=True)
    med = {side: {key: median([s[key] for s in runs]) for key in ("solved_at_wall_s", "solved_at_steps", "steps_per_s")}
           for side, runs in rows.items()}
    print(json.dumps({"rev": a.rev, "algo": a.algo, "env": a.env, "seeds": a.seeds, "settings_new": a.set,
                      "all_solved": all(s["solved_at_steps"] for runs in rows.values() for s in runs),
                      "min_eval_new": min(s["eval_return_mean"] for s in rows["new"]),
                      "median_old": med["old"], "median_new": med["new"],
                      "ratio_solve_wall": med["new"]["solved_at_wall_s"] / med["old"]["solved_at_wall_s"],
                      "ratio_solve_steps": med["new"]["solved_at_steps"] / med["old"]["solved_at_steps"],
                      "ratio_steps_per_s": med["new"]["steps_per_s"] / med["old"]["steps_per_s"]}, indent=1))


if __name__ == "__main__":
    main()
