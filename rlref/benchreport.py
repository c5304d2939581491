"""The report of `python -m rlref bench` (rlref/bench.py runs the grid): DIR/results.md,
DIR/results.json and DIR/figures/ALGO-ENV.png, built from the run directories in DIR/runs alone,
so `bench --report-only` rebuilds them without running anything.

Per (algorithm, env), over the seeds that finished:
- training return: the final return_mean of progress.csv (the mean of the last 20 training
  episodes), mean +- sample standard deviation (ddof = 1) over seeds;
- deterministic evaluation: summary.json's eval_return_mean, mean +- std over seeds;
- how many seeds reach the env's threshold in that evaluation, and the per-seed failure rate
  p = k / n (k seeds of n below it) with its 95 % Wilson score interval:

      (p + z^2/(2n) -+ z sqrt(p(1-p)/n + z^2/(4n^2))) / (1 + z^2/n),   z = 1.96

  unlike p -+ z sqrt(p(1-p)/n) it is not [0, 0] at k = 0: 0 failures in 30 seeds still allow a
  failure rate up to 0.114 (the k-of-n rules of tests/test_learning.py are set from this upper end);
- median wall time per run and median env steps per second;
- the published number beside it, with its source (PUBLISHED below).
"""
import csv
import json
import math
import os

import numpy as np

from rlref.errors import ConfigError, require_int

Z95 = 1.959963984540054                  # the 0.975 quantile of the standard normal

SOURCES = {
    "cleanrl": "CleanRL's documentation, benchmarks of ppo_continuous_action.py (docs.cleanrl.dev/rl-algorithms/ppo/): "
               "v4 envs, 1M steps, 3 seeds, average training episodic return, mean +- std over seeds",
    "rlzoo": "RL-Zoo's benchmark.md (github.com/DLR-RM/rl-baselines3-zoo, 'Performance of trained agents'), "
             "sb3-contrib TRPO: v3 envs, 1M steps, ONE trained agent, deterministic evaluation over about 150 "
             "episodes, mean +- std over episodes (not over seeds)",
}
# (algorithm, env without its version) -> (mean, std, source key). The envs' versions differ from
# rlref's v5 (the source says which); CleanRL's runtime table is not reproduced here.
PUBLISHED = {
    ("ppo", "HalfCheetah"): (1442.0, 46.0, "cleanrl"),
    ("ppo", "Hopper"): (2383.0, 272.0, "cleanrl"),
    ("ppo", "Walker2d"): (2288.0, 572.0, "cleanrl"),
    ("trpo", "HalfCheetah"): (1785.476, 68.672, "rlzoo"),
    ("trpo", "Hopper"): (3618.386, 356.768, "rlzoo"),
    ("trpo", "Walker2d"): (4933.148, 1452.538, "rlzoo"),
}


def wilson_interval(k, n, z=Z95):
    """The Wilson score interval (lo, hi) of a rate from k events in n trials (the module docstring)."""
    n = require_int("n", n, 1)
    k = require_int("k", k, 0, n)
    p = k / n
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def mean_std(values):
    """(mean, sample std with ddof = 1) of values; std is None for one value, both for none."""
    x = np.asarray([v for v in values if v is not None], dtype=np.float64)
    if x.size == 0:
        return None, None
    return float(x.mean()), (float(x.std(ddof=1)) if x.size > 1 else None)


def read_plan(out):
    """DIR/bench.json: the last bench command, every run it planned, and the children's outcomes."""
    try:
        with open(os.path.join(out, "bench.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}


def write_plan(out, plan):
    os.makedirs(out, exist_ok=True)
    tmp = os.path.join(out, "bench.json.new")
    with open(tmp, "w") as f:
        json.dump(plan, f, indent=1)
    os.replace(tmp, os.path.join(out, "bench.json"))


def _json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _curve(run_dir):
    """(env_steps, return_mean) of progress.csv, rows whose return_mean is not yet defined dropped."""
    try:
        with open(os.path.join(run_dir, "progress.csv"), newline="") as f:
            rows = [(float(r["env_steps"]), float(r["return_mean"])) for r in csv.DictReader(f)
                    if r.get("return_mean") not in (None, "", "nan")]
    except (FileNotFoundError, KeyError, ValueError):
        rows = []
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows])


def threshold_of(env):
    from rlref.train import solved_threshold
    try:
        return solved_threshold(env)
    except Exception:                                    # an env id gymnasium does not know
        return None


def run_record(out, name, meta, outcome):
    """What the report knows about one run, from its directory (and the bench's outcome)."""
    run_dir = os.path.join(out, "runs", name)
    config, summary = _json(os.path.join(run_dir, "config.json")), _json(os.path.join(run_dir, "summary.json"))
    steps, returns = _curve(run_dir)
    error = (outcome or {}).get("error")
    status = ("done" if summary else "stopped" if (outcome or {}).get("stopped") else "failed" if error
              else "unfinished" if config else "not run")
    threshold = summary["threshold"] if summary else threshold_of(meta["env"])
    record = {"name": name, **meta, "status": status, "error": None if summary else error,
              "action": (outcome or {}).get("action"), "budget": (config or {}).get("total_steps"),
              "final_return": float(returns[-1]) if returns.size else None, "threshold": threshold}
    for key in ("total_steps", "wall_s", "steps_per_s", "eval_return_mean", "eval_return_std", "eval_episodes",
                "solved_at_steps"):
        record[key] = summary.get(key) if summary else None
    record["reached"] = (summary["eval_return_mean"] >= threshold) if summary and threshold is not None else None
    return record


def summarize(records):
    """One row per (algo, env), in the order of first appearance."""
    groups = {}
    for r in records:
        groups.setdefault((r["algo"], r["env"]), []).append(r)
    rows = []
    for (algo, env), runs in groups.items():
        done = [r for r in runs if r["status"] == "done"]
        row = {"algo": algo, "env": env, "seeds": [r["seed"] for r in done], "planned": len(runs),
               "not_done": {r["name"]: r["status"] for r in runs if r["status"] != "done"},
               "budget": next((r["budget"] for r in runs if r["budget"]), None), "threshold": runs[0]["threshold"]}
        row["train_mean"], row["train_std"] = mean_std([r["final_return"] for r in done])
        row["eval_mean"], row["eval_std"] = mean_std([r["eval_return_mean"] for r in done])
        row["wall_s_median"] = float(np.median([r["wall_s"] for r in done])) if done else None
        row["steps_per_s_median"] = float(np.median([r["steps_per_s"] for r in done])) if done else None
        row["reached"], row["failure_rate"], row["failure_interval"] = None, None, None
        if done and row["threshold"] is not None:
            row["reached"] = sum(bool(r["reached"]) for r in done)
            failures = len(done) - row["reached"]
            row["failure_rate"], row["failure_interval"] = failures / len(done), wilson_interval(failures, len(done))
        published = PUBLISHED.get((algo, env.split("-v")[0]))
        row["published"] = dict(zip(("mean", "std", "source"), published)) if published else None
        rows.append(row)
    return rows


def _pm(mean, std, digits=1):
    if mean is None:
        return "—"
    return f"{mean:.{digits}f}" + (f" +- {std:.{digits}f}" if std is not None else "")


def _duration(seconds):
    if seconds is None:
        return "—"
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _row_line(row, refs):
    seeds = str(len(row["seeds"])) + (f" of {row['planned']}" if row["not_done"] else "")
    if row["not_done"]:
        counts = {}
        for status in row["not_done"].values():
            counts[status] = counts.get(status, 0) + 1
        seeds += " (" + ", ".join(f"{n} {s}" for s, n in counts.items()) + ")"
    if row["failure_interval"] is None:
        reach, rate = "—", "—"
    else:
        lo, hi = row["failure_interval"]
        reach = f"{row['reached']} of {len(row['seeds'])} >= {row['threshold']:g}"
        rate = f"{row['failure_rate']:.2f} [{lo:.3f}, {hi:.3f}]"
    pub = row["published"]
    published = "—" if pub is None else f"{_pm(pub['mean'], pub['std'])} [{refs.index(pub['source']) + 1}]"
    sps = "—" if row["steps_per_s_median"] is None else f"{row['steps_per_s_median']:.0f}"
    budget = "—" if row["budget"] is None else f"{row['budget']:,}"
    return (f"| {row['algo']} | {row['env']} | {budget} | {seeds} | {_pm(row['train_mean'], row['train_std'])} | "
            f"{_pm(row['eval_mean'], row['eval_std'])} | {reach} | {rate} | {_duration(row['wall_s_median'])} | "
            f"{sps} | {published} |")


def markdown(rows, records, command, runs_command=None):
    refs = sorted({row["published"]["source"] for row in rows if row["published"]})
    lines = ["# rlref bench results", "", f"Made by: `{command}`"]
    if runs_command and runs_command != command:
        lines += ["", f"from the runs of: `{runs_command}`"]
    lines += ["", "| algorithm | env | steps | seeds | training return (last 20 episodes) | deterministic evaluation | "
              "reach the threshold (evaluation) | failure rate [95 % Wilson] | wall time per run (median) | "
              "steps/s (median) | published |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [_row_line(row, refs) for row in rows]
    lines += ["", "Training return: the final `return_mean` of each run's progress.csv (the mean of its last 20 "
              "training episodes); deterministic evaluation: summary.json's `eval_return_mean`; both mean +- sample "
              "standard deviation (ddof 1) over the seeds that finished. Failure rate: the fraction of those seeds "
              "whose evaluation is below the env's threshold, with its 95 % Wilson score interval."]
    lines += [""] + [f"[{i + 1}] {SOURCES[key]}" for i, key in enumerate(refs)]
    lines += ["", "| run | status | training return | deterministic evaluation | wall time | steps/s |",
              "|---|---|---|---|---|---|"]
    for r in records:
        status = r["status"] + (f": {r['error']}" if r["error"] else "") + {"reuse": " (reused)", "resume": " (resumed)"}.get(r["action"], "")
        sps = "—" if r["steps_per_s"] is None else f"{r['steps_per_s']:.0f}"
        lines.append(f"| {r['name']} | {status.replace('|', '/')} | {_pm(r['final_return'], None)} | "
                     f"{_pm(r['eval_return_mean'], r['eval_return_std'])} | {_duration(r['wall_s'])} | {sps} |")
    return "\n".join(lines) + "\n"


def plot_curves(run_dirs, out_path, title, threshold=None, points=200):
    """The mean over runs of return_mean against env_steps, each run interpolated to a common grid
    of steps (where every run has data), with the band from the minimum to the maximum over runs.
    Returns what was drawn: {"path", "steps", "mean", "min", "max"} (None without any data)."""
    import matplotlib.pyplot as plt
    from rlref.plot import finish                    # (importing rlref.plot selects the Agg backend)
    curves = [c for c in (_curve(d) for d in run_dirs) if c[0].size]
    if not curves:
        return None
    lo, hi = max(c[0][0] for c in curves), min(c[0][-1] for c in curves)
    grid = np.linspace(lo, hi, points) if hi > lo else np.array([lo])                 # (G,)
    Y = np.stack([np.interp(grid, steps, returns) for steps, returns in curves])     # (S, G)
    fig, ax = plt.subplots(figsize=(7, 4))
    drawn = {"path": out_path, "steps": grid.tolist(), "mean": Y.mean(axis=0).tolist(),
             "min": Y.min(axis=0).tolist(), "max": Y.max(axis=0).tolist()}
    ax.plot(grid, drawn["mean"], lw=1.5, label=f"mean over {len(curves)} seed{'s' * (len(curves) > 1)}")
    ax.fill_between(grid, drawn["min"], drawn["max"], alpha=0.25, label="min to max over seeds")
    finish(fig, ax, out_path, title, "training return (mean of the last 20 episodes)", threshold, "threshold")
    return drawn


def _clean(x):                                   # JSON has no NaN: None instead
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


def write_report(out, command, names=None):
    """Write results.md, results.json and the figures of the runs `names` (default: every run of
    DIR/bench.json and DIR/runs); returns (the markdown, whether every run finished)."""
    plan = read_plan(out)
    known = dict(plan.get("runs", {}))
    runs_dir = os.path.join(out, "runs")
    for name in sorted(os.listdir(runs_dir)) if os.path.isdir(runs_dir) else []:
        config = _json(os.path.join(runs_dir, name, "config.json"))
        if config and name not in known:
            known[name] = {"algo": config["algorithm"], "env": config["env"], "seed": config["seed"]}
    names = list(known) if names is None else names
    if not names:
        raise ConfigError(f"{out} holds no bench runs (no {out}/bench.json and no run directory in {runs_dir})")
    records = [run_record(out, name, known[name], plan.get("outcomes", {}).get(name)) for name in names]
    rows = summarize(records)
    for row in rows:
        dirs = [os.path.join(runs_dir, r["name"]) for r in records if (r["algo"], r["env"]) == (row["algo"], row["env"])]
        row["curve"] = plot_curves(dirs, os.path.join(out, "figures", f"{row['algo']}-{row['env']}.png"),
                                    f"{row['algo']} on {row['env']}", row["threshold"])
    text = markdown(rows, records, command, plan.get("command"))
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(_clean({"command": command, "runs_command": plan.get("command"), "rows": rows, "runs": records,
                          "sources": SOURCES}), f, indent=1)
    return text, all(r["status"] == "done" for r in records)
