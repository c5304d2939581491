"""Scaling of the distributed PPO on this machine, for notebooks/06_dppo.ipynb and docs/distributed.md.

    python scripts/bench_dppo.py [--workers 1 2 4] [--seeds 1 2 3] [--repeats 2] [--total-steps 100000]
                                 [--out figures/06_scaling.json]

For each repeat and seed it runs `mpiexec -n W python -m rlref train dppo --env CartPole-v1` for
every W in turn (rlref/bench.py runs them, one at a time; the order alternates, so that the
machine's other load falls on all of them alike) and
records env steps per second of the training loop (summary.json's steps_per_s: all workers' steps
over the loop's wall time, start-up excluded) and the wall time to solve. It also measures one
Allreduce of n float64 for a range of n (W = 2 and 4) and the compute of one minibatch step, the
two numbers the notebook's latency/bandwidth argument needs. W larger than the number of cores
is oversubscribed and marked as such in the JSON.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import rlref
from rlref.bench import MPIEXEC, plan_run, summaries

ENV = rlref.one_blas_thread(dict(os.environ))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ALLREDUCE = r"""
import sys, time, json
import numpy as np
from mpi4py import MPI
comm = MPI.COMM_WORLD
out = {}
for n in [1, 10, 100, 1000, 10000, 100000, 1000000]:
    x, y = np.ones(n), np.empty(n)
    reps = 300 if n <= 10000 else 30
    times = []
    for _ in range(3):
        comm.Barrier()
        t = time.perf_counter()
        for _ in range(reps):
            comm.Allreduce(x, y, op=MPI.SUM)
        times.append((time.perf_counter() - t) / reps)
    out[n] = min(times)
if comm.Get_rank() == 0:
    print(json.dumps(out))
"""


def train_runs(grid_spec, steps):
    """One `mpiexec -n W python -m rlref train dppo` per (repeat, seed, W), one at a time in the given
    order (rlref/bench.py runs them); the summaries' numbers this script reports."""
    out = tempfile.mkdtemp(prefix="rlref-bench-dppo-")
    grid = [plan_run("dppo", "CartPole-v1", seed, os.path.join(out, "runs", f"W{W}-r{r}-s{seed}"), steps, workers=W)
            for r, seed, W in grid_spec]
    keys = ("workers", "seed", "total_steps", "wall_s", "steps_per_s", "solved_at_steps", "solved_at_wall_s",
            "eval_return_mean")
    return [{**{k: s[k] for k in keys}, "repeat": r} for (r, _, _), s in zip(grid_spec, summaries(grid, 1, out))]


def allreduce_times(W):
    done = subprocess.run([MPIEXEC, "-n", str(W), sys.executable, "-c", ALLREDUCE], check=True, env=ENV,
                          capture_output=True, text=True)
    return {int(k): v for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}


def minibatch_step_time():
    """Seconds of one minibatch step of the default config (gradient of (PPO.6), clip, Adam)."""
    import numpy as np
    from rlref.algos import dppo, ppo
    from rlref.nn import flatten, splitter
    from rlref.optim import adam_step, clip_grad_norm
    from rlref.policy import policy_forward
    config = dppo.Config()
    rng = np.random.default_rng(0)
    agent = dppo.init_agent(config, 4, 2, False, rng)
    N = config.minibatch_size
    obs = rng.normal(size=(N, 4))
    dist, _ = policy_forward(agent["policy"], obs)
    actions = dist.sample(rng)
    mb = {"obs": obs, "actions": actions, "logp_old": dist.logp(actions), "A_hat": rng.normal(size=N),
          "R_hat": rng.normal(size=N), "V_old": rng.normal(size=N), "dist_old": dist}
    theta = np.concatenate([flatten(agent["policy"]), flatten(agent["value"])])
    split, opt = splitter(agent["policy"], agent["value"]), agent["opt"]
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(200):
            _, grad, _ = ppo.minibatch_loss_and_grad(theta, split, mb, config, 1.0)
            grad, _ = clip_grad_norm(grad, config.max_grad_norm, check=False)
            theta, opt = adam_step(theta, grad, opt, 1e-9, eps=config.adam_eps, check=False)
        best = min(best, (time.perf_counter() - t) / 200)
    return best, int(theta.size)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--total-steps", type=int, default=100_000)
    ap.add_argument("--out", default=os.path.join(ROOT, "figures", "06_scaling.json"))
    a = ap.parse_args()
    cores = os.cpu_count()
    load_before = os.getloadavg()
    order = [(r, seed, W) for r in range(a.repeats) for seed in a.seeds
             for W in (a.workers if (r + seed) % 2 == 0 else a.workers[::-1])]   # alternate the order too
    runs = train_runs(order, a.total_steps)
    for run in runs:
        print(f"W={run['workers']} seed={run['seed']} repeat={run['repeat']}: {run['steps_per_s']:.0f} steps/s, "
              f"solved at {run['solved_at_wall_s']} s", flush=True)
    step_s, P = minibatch_step_time()
    result = {"command": " ".join(sys.argv), "cores": cores, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "total_steps": a.total_steps,
              "oversubscribed": [W for W in a.workers if W > cores], "runs": runs,
              "allreduce_s": {W: allreduce_times(W) for W in sorted({2, *[w for w in a.workers if w > 1]})},
              "minibatch_step_s": step_s, "gradient_size": P}
    med = {W: statistics.median(x["steps_per_s"] for x in runs if x["workers"] == W) for W in a.workers}
    result["median_steps_per_s"] = med
    by = {(x["repeat"], x["seed"], x["workers"]): x for x in runs}
    for W in a.workers:                       # side-by-side ratios: the same seed and repeat
        if W == 1 or 1 not in a.workers:
            continue
        pairs = [(by[r, s, W], by[r, s, 1]) for r in range(a.repeats) for s in a.seeds]
        result[f"ratio_steps_per_s_{W}_vs_1"] = sorted(w["steps_per_s"] / o["steps_per_s"] for w, o in pairs)
        solve = [o["solved_at_wall_s"] / w["solved_at_wall_s"] for w, o in pairs
                 if w["solved_at_wall_s"] and o["solved_at_wall_s"]]
        result[f"ratio_time_to_solve_1_vs_{W}"] = sorted(solve)
    print(json.dumps({k: v for k, v in result.items() if k.startswith(("median", "ratio"))}))
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
