"""Ablation of PPO's implementation details: switch one detail at a time, measure over seeds.

    OMP_NUM_THREADS=1 python scripts/ablation_ppo.py --jobs 2   # full: ~30 min on two idle cores
    OMP_NUM_THREADS=1 python scripts/ablation_ppo.py --quick    # 2 seeds, 20k steps, into a temp dir
    python scripts/ablation_ppo.py --replot                     # redraw the PNGs from figures/05_ablation.json
    OMP_NUM_THREADS=1 python scripts/ablation_ppo.py --only epochs_30,ent_0.01   # add or redo some rows

Each env has a baseline: CartPole-v1 trains with ``ppo.Config()`` (100k steps), Pendulum-v1 with
``ppo.PRESETS["Pendulum-v1"]`` (200k steps), exactly what ``python -m rlref train ppo --env ...``
runs. Every variant changes ONE detail relative to that baseline (a detail that is off in the
baseline is turned on):

    observation normalization (NORM.2)   on <-> off
    reward scaling (NORM.3)              on <-> off
    advantage normalization              batch -> minibatch, batch -> none
    value clipping (PPO.5)               off -> on
    orthogonal init gains                (hidden sqrt 2, policy out 0.01, value out 1) -> 1 everywhere
    activation                           tanh -> relu
    objective                            clip (PPO.1) -> adaptive KL penalty (PPO.3-4)
    initialization                       orthogonal with gains -> Xavier (Glorot uniform), gain 1

and two variants after Engstrom et al. (2020), "Implementation Matters in Deep Policy Gradients":
PPO-NoClip (clip_eps = 1e9: the plain ratio surrogate, every other detail on) and "clip, no
details" (PPO-M: the clip on, but no observation normalization, reward scaling or advantage
normalization, Xavier init with gain 1, no learning-rate annealing, no gradient clipping, no
entropy bonus). Last, the two knobs of the update itself: the number of epochs (4, 10 and 30, those
that differ from the baseline's) and the entropy bonus (0 and 0.01, those that differ).

Each run is one ``python -m rlref train ppo --env ENV --set ...`` child, run by rlref/bench.py as
the bench command runs its grids, on seeds 201-205, which were used for no tuning. Per run we keep the deterministic evaluation (summary
``eval_return_mean``: 20 episodes, argmax / mean action), ``solved_at_steps`` (first time the mean
of the last 20 training episodes reached the threshold: 475 on CartPole, -200 on Pendulum via
``rlref.envs.solved_threshold``), the mean training return over the run (``return_auc``: the
average of ``return_mean`` over env steps, a measure of learning speed that does not saturate at
the end), the mean of a few diagnostics, and the learning curve subsampled to about 60 rows
(env_steps, return_mean, and the logged kl, kl_k1, kl_k3, clip_frac, explained_var, beta).

Per variant and metric, the difference of the seed means from the baseline's comes with an exact
two-sided permutation p-value (all C(2n, n) splits of the 2n runs); with 5 seeds the smallest
possible p is 2/252 = 0.008. Every variant is compared on two metrics in two envs, several dozen
comparisons in all, so one standard applies to every claim: Holm's step-down correction over all
the comparisons of the ablation (the family-wise error rate at 0.05). The table prints each
p-value and its Holm-adjusted value (``p_holm``), and the summary line says how many survive; a
difference that does not survive is a lead to retest with more seeds, not a finding. (With 5 seeds
no difference can survive more than 6 comparisons: 6 x 2/252 < 0.05 < 7 x 2/252.)

``--only NAME,...`` reruns the baseline and the named variants only, refuses to go on unless the
baseline reproduces the stored baseline runs exactly (same code, same machine class), and merges
the named variants into the existing ``05_ablation.json`` (recorded under ``additions``).

Writes ``figures/05_ablation.json``, ``figures/05_ablation_cartpole.png`` and
``figures/05_ablation_pendulum.png`` (or into --out), and prints a table. Not collected by pytest
(no test_ prefix). Runs are bitwise deterministic on one machine (single-threaded BLAS), so only
the wall times change from one rerun to the next. At most 2 processes (--jobs), default 1.
"""
import argparse
import hashlib
import io
import itertools
import json
import os
import pathlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

import rlref  # noqa: E402  (imports no NumPy)

rlref.one_blas_thread()                   # before NumPy loads

import numpy as np  # noqa: E402

from rlref.algos import ppo  # noqa: E402
from rlref.bench import plan_run, summaries  # noqa: E402
from rlref.envs import solved_threshold  # noqa: E402
from rlref.rundir import read_progress  # noqa: E402

ROOT = pathlib.Path(rlref.__file__).resolve().parent.parent
ENVS = ("CartPole-v1", "Pendulum-v1")
SEEDS = (201, 202, 203, 204, 205)
CURVE_POINTS = 60                 # learning-curve points kept per run
COLORS = ("C0", "C1", "C2", "C3", "C4", "C5", "C6", "C9", "C8", "m", "teal", "olive", "navy", "crimson", "goldenrod",
          "slateblue")                                           # per variant (cycled); baseline dark gray
CURVES = ("kl", "kl_k1", "kl_k3", "clip_frac", "explained_var", "beta")   # kept per row, besides return_mean
DIAGNOSTICS = ("kl", "kl_k1", "kl_k3", "clip_frac", "explained_var", "entropy", "beta")


def baseline(env):
    """The baseline settings of an env: what the command line runs (Config defaults + PRESETS)."""
    return {**ppo.PRESETS.get(env, {}), "env": env}


def variants(base):
    """[(name, label, switches)]: the baseline, then one changed detail per variant. `base` is
    the env's full baseline Config as a dict; a detail that is off there is turned on."""
    obs, rew = base["normalize_obs"], base["scale_reward"]
    assert base["normalize_adv"] == "batch" and not base["clip_value"] and base["activation"] == "tanh"
    assert base["objective"] == "clip"
    return [
        ("baseline", "baseline", {}),
        ("obs_norm", f"obs normalization {'off' if obs else 'on'}", {"normalize_obs": not obs}),
        ("reward_scale", f"reward scaling {'off' if rew else 'on'}", {"scale_reward": not rew}),
        ("adv_minibatch", "advantage norm per minibatch", {"normalize_adv": "minibatch"}),
        ("adv_none", "advantage norm off", {"normalize_adv": "none"}),
        ("value_clip", "value clipping on", {"clip_value": True}),
        ("gain_1", "init gains 1 everywhere", {"hidden_gain": 1.0, "pi_out_gain": 1.0, "v_out_gain": 1.0}),
        ("relu", "ReLU instead of tanh", {"activation": "relu"}),
        ("penalty", "KL penalty instead of clip", {"objective": "penalty"}),
        ("xavier", "Xavier init (gain 1)", {"init": "xavier", "hidden_gain": 1.0, "pi_out_gain": 1.0,
                                            "v_out_gain": 1.0}),
        # Engstrom et al. (2020): are PPO's gains the clip's or its implementation details'?
        ("no_clip", "PPO-NoClip (no clip)", {"clip_eps": 1e9}),
        ("clip_only", "clip, no details (PPO-M)", {"normalize_obs": False, "scale_reward": False,
                                                   "normalize_adv": "none", "init": "xavier", "hidden_gain": 1.0,
                                                   "pi_out_gain": 1.0, "v_out_gain": 1.0, "anneal_lr": False,
                                                   "max_grad_norm": 1e9, "ent_coef": 0.0}),
    ] + [(f"epochs_{e}", f"{e} epochs instead of {base['epochs']}", {"epochs": e})
         for e in (4, 10, 30) if e != base["epochs"]] + [
        (f"ent_{c:g}", f"entropy bonus {c:g} instead of {base['ent_coef']:g}", {"ent_coef": c})
        for c in (0.0, 0.01) if c != base["ent_coef"]]


def jsonable(config_dict):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in config_dict.items()}


def subsample_rows(n_rows, n):
    """About n evenly spaced row indices of a curve, always keeping the last."""
    return np.unique(np.append(np.linspace(0, n_rows - 1, n).round().astype(int), n_rows - 1))


def as_sets(switches):
    """A variant's switches as `--set key=value` strings (bools as true/false, floats exactly)."""
    def text(v):
        return str(v).lower() if isinstance(v, bool) else repr(v) if isinstance(v, float) else str(v)
    return [f"{key}={text(value)}" for key, value in switches.items()]


def record_of(run_dir, summary):
    """What the ablation keeps of one finished run (its progress.csv and summary.json)."""
    p = {k: np.asarray(v) for k, v in read_progress(run_dir).items()}
    steps, ret = p["env_steps"], p["return_mean"]
    ok = np.isfinite(ret)
    # average of return_mean over env steps (trapezoid), from the first finite point to the end
    trapezoid = getattr(np, "trapezoid", None) or np.trapz                 # numpy < 2 has only trapz
    auc = float(trapezoid(ret[ok], steps[ok]) / (steps[ok][-1] - steps[ok][0]))
    rows = np.flatnonzero(ok)[subsample_rows(int(ok.sum()), CURVE_POINTS)]
    curve = {"env_steps": [int(x) for x in steps[rows]], "return_mean": [round(float(x), 3) for x in ret[rows]]}
    for k in CURVES:                                  # diagnostics at the same rows
        curve[k] = [float(f"{x:.4g}") if np.isfinite(x) else None for x in p[k][rows]]
    return {"seed": summary["seed"], "eval_return_mean": summary["eval_return_mean"],
            "eval_return_std": summary["eval_return_std"], "solved_at_steps": summary["solved_at_steps"],
            "final_return_mean": float(ret[ok][-1]), "return_auc": auc, "total_steps": summary["total_steps"],
            "wall_s": round(summary["wall_s"], 2),
            "diagnostics_mean": {k: float(np.mean(p[k][np.isfinite(p[k])])) for k in DIAGNOSTICS},
            "curve": curve}


def permutation_p(a, b):
    """Exact two-sided permutation p-value of mean(a) - mean(b) over all splits of a + b."""
    x = np.concatenate([a, b])
    observed = abs(np.mean(a) - np.mean(b))
    diffs = []
    for idx in itertools.combinations(range(len(x)), len(a)):
        mask = np.zeros(len(x), bool)
        mask[list(idx)] = True
        diffs.append(abs(x[mask].mean() - x[~mask].mean()))
    return float(np.mean(np.array(diffs) >= observed - 1e-9 * max(1.0, observed)))


def compare(runs, base_runs):
    """Per metric: variant mean, baseline mean, difference and permutation p-value."""
    out = {}
    for metric in ("eval_return_mean", "return_auc"):
        a = np.array([r[metric] for r in runs])
        b = np.array([r[metric] for r in base_runs])
        out[metric] = {"mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
                       "diff_vs_baseline": float(a.mean() - b.mean()), "p_vs_baseline": permutation_p(a, b)}
    solved = [r["solved_at_steps"] for r in runs]
    hit = [s for s in solved if s is not None]
    out["solved"] = {"count": len(hit), "of": len(solved), "median_steps": float(np.median(hit)) if hit else None}
    return out


def holm(pvalues):
    """Holm's step-down adjusted p-values (same order as given): the k-th smallest of m is
    multiplied by m - k + 1, then made monotone and capped at 1. Rejecting where the adjusted
    value is <= alpha keeps the family-wise error rate at alpha."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out


def add_holm(results, alpha=0.05):
    """Set p_holm on every comparison of the ablation (every env, non-baseline variant and metric,
    one family) and return (number of comparisons, [(env, variant, metric)] that survive)."""
    keys = [(env, v, metric) for env, res in results.items() for v in res["variants"][1:]
            for metric in ("eval_return_mean", "return_auc")]
    adjusted = holm([v["compare"][metric]["p_vs_baseline"] for _, v, metric in keys])
    for (_, v, metric), q in zip(keys, adjusted):
        v["compare"][metric]["p_holm"] = float(q)
    for res in results.values():                                      # the baseline against itself
        for metric in ("eval_return_mean", "return_auc"):
            res["variants"][0]["compare"][metric]["p_holm"] = 1.0
    return len(keys), [(env, v["name"], metric) for (env, v, metric), q in zip(keys, adjusted) if q <= alpha]


def file_sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def git_state():
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "rlref"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
        return {"commit": commit, "rlref_modified": bool(dirty)}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "rlref_modified": None}


def print_table(results):
    m, survivors = add_holm(results)
    print(f"\n{'env':<12} {'variant':<34} {'eval mean':>9} {'[min, max]':>18} {'d eval':>8} {'p':>6} {'p Holm':>6} "
          f"{'auc':>8} {'d auc':>8} {'p':>6} {'p Holm':>6} {'solved':>7} {'median solve':>12}")
    for env, res in results.items():
        for v in res["variants"]:
            c = v["compare"]
            e, a, s = c["eval_return_mean"], c["return_auc"], c["solved"]
            med = f"{s['median_steps']:.0f}" if s["median_steps"] is not None else "-"
            print(f"{env:<12} {v['label']:<34} {e['mean']:9.1f} {'[%.1f, %.1f]' % (e['min'], e['max']):>18} "
                  f"{e['diff_vs_baseline']:+8.1f} {e['p_vs_baseline']:6.3f} {e['p_holm']:6.3f} {a['mean']:8.1f} "
                  f"{a['diff_vs_baseline']:+8.1f} {a['p_vs_baseline']:6.3f} {a['p_holm']:6.3f} "
                  f"{s['count']:>3}/{s['of']:<3} {med:>12}")
    n_seeds = len(next(iter(results.values()))["seeds"])
    print(f"\nHolm over all {m} comparisons (family-wise error 0.05): {len(survivors)} survive"
          + (": " + ", ".join(f"{e} {n} ({k})" for e, n, k in survivors) if survivors else "")
          + f". The smallest exact p with {n_seeds} seeds per group is 2/C({2 * n_seeds},{n_seeds}) = "
          f"{2 / len(list(itertools.combinations(range(2 * n_seeds), n_seeds))):.4f}; what does not survive is a lead, not a finding.")


def common_grid(runs, n=100):
    """Each run's return_mean interpolated on a shared grid of env steps: (grid (n,), Y (seeds, n))."""
    end = min(r["curve"]["env_steps"][-1] for r in runs)
    start = max(r["curve"]["env_steps"][0] for r in runs)
    grid = np.linspace(start, end, n)
    return grid, np.array([np.interp(grid, r["curve"]["env_steps"], r["curve"]["return_mean"]) for r in runs])


def plot_env(env, res, path):
    """Small multiples (baseline vs each variant: seed mean and min-max band), then the final
    evaluation per variant (bar: mean; dots: seeds) and steps to solve."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter
    kilo = FuncFormatter(lambda x, _: f"{x / 1000:g}k")
    vs = res["variants"]
    color = ["0.25"] + [COLORS[i % len(COLORS)] for i in range(len(res["variants"]) - 1)]
    base = vs[0]
    threshold = res["threshold"]
    rows = -(-(len(vs) - 1) // 4)                                      # rows of per-variant curves
    fig = plt.figure(figsize=(16, 3.5 * rows + 3.5))
    gs = fig.add_gridspec(rows + 1, 4, height_ratios=[1] * rows + [1.1])
    gb, Yb = common_grid(base["runs"])
    for k, v in enumerate(vs[1:]):
        ax = fig.add_subplot(gs[k // 4, k % 4])
        g, Y = common_grid(v["runs"])
        ax.plot(gb, Yb.mean(axis=0), color=color[0], lw=1.5, label="baseline")
        ax.fill_between(gb, Yb.min(axis=0), Yb.max(axis=0), color=color[0], alpha=0.15)
        ax.plot(g, Y.mean(axis=0), color=color[k + 1], lw=1.5, label=v["label"])
        ax.fill_between(g, Y.min(axis=0), Y.max(axis=0), color=color[k + 1], alpha=0.2)
        ax.xaxis.set_major_formatter(kilo)
        ax.axhline(threshold, color="k", ls=":", lw=0.8)
        ax.set_title(v["label"], fontsize=10)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
        if k % 4 == 0:
            ax.set_ylabel("return_mean (last 20 episodes)", fontsize=8)
        if k >= len(vs) - 5:
            ax.set_xlabel("env steps", fontsize=8)
        ax.legend(fontsize=7, loc="lower right")
    ax = fig.add_subplot(gs[rows, :2])
    x = np.arange(len(vs))
    rng = np.random.default_rng(0)                                     # horizontal jitter of the dots only
    for i, v in enumerate(vs):
        ev = np.array([r["eval_return_mean"] for r in v["runs"]])
        ax.bar(i, ev.mean(), color=color[i], alpha=0.35, width=0.7)
        ax.plot(i + rng.uniform(-0.2, 0.2, len(ev)), ev, "o", ms=4, color="k")
    ax.axhline(threshold, color="k", ls=":", lw=0.8, label=f"solved ({threshold:g})")
    ax.set_xticks(x, [v["label"] for v in vs], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("deterministic evaluation (20 episodes)", fontsize=8)
    ax.set_title(f"final evaluation: bar = mean over {len(base['runs'])} seeds, dots = seeds", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    ax = fig.add_subplot(gs[rows, 2:])
    for i, v in enumerate(vs):
        total = v["runs"][0]["total_steps"]
        for r in v["runs"]:
            s = r["solved_at_steps"]
            ax.plot(i + rng.uniform(-0.2, 0.2), s if s is not None else total * 1.05,
                    "o" if s is not None else "x", ms=5, color=color[i])
    ax.axhline(total, color="k", ls=":", lw=0.8, label="budget (x: never solved)")
    ax.set_ylim(0, total * 1.12)
    ax.yaxis.set_major_formatter(kilo)
    ax.set_xticks(x, [v["label"] for v in vs], rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("env steps to solve (training mean)", fontsize=8)
    ax.set_title("steps until return_mean first reached the threshold", fontsize=10)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    fig.suptitle(f"PPO ablation on {env}: one detail changed at a time, seeds {res['seeds'][0]}-{res['seeds'][-1]}",
                 fontsize=12)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.3 / fig.get_figheight()))       # room for the title
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80)
    plt.close(fig)
    # a 256-colour palette keeps the file about three times smaller, with no visible change
    from PIL import Image                                              # installed with matplotlib
    Image.open(buffer).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)


def run_variants(env, names, seeds, total_steps, jobs, run_root):
    """Train the named variants of env (in variants() order) on the seeds: {name: [record]}."""
    base = ppo.Config(**baseline(env)).to_dict()
    chosen = [(name, switches) for name, _, switches in variants(base) if name in names]
    grid = [(name, plan_run("ppo", env, seed, os.path.join(run_root, f"{env}-{name}-s{seed}"), total_steps,
                            as_sets(switches)))                # the baseline is what --env ENV runs (PRESETS)
            for name, switches in chosen for seed in seeds]
    done = summaries([run for _, run in grid], jobs, os.path.join(run_root, "logs"))
    by_name = {}
    for (name, run), summary in zip(grid, done):
        by_name.setdefault(name, []).append(record_of(run["dir"], summary))
    return by_name


def write_outputs(doc, out_dir):
    add_holm(doc["results"])
    text = json.dumps(doc, indent=1)
    # one line per list of numbers (the curves), to keep the file short and still readable
    text = re.sub(r"\[\s+([^\[\]{}\"]*?)\s+\]", lambda m: "[" + re.sub(r"\s+", " ", m.group(1)) + "]", text)
    with open(out_dir / "05_ablation.json", "w") as f:
        f.write(text + "\n")
    for env in ENVS:
        plot_env(env, doc["results"][env], out_dir / f"05_ablation_{env.split('-')[0].lower()}.png")
    print_table(doc["results"])


REPRODUCED = ("eval_return_mean", "solved_at_steps", "return_auc", "final_return_mean")


def add_rows(a, names, out_dir, run_root, hashed):
    """--only: rerun the baseline and the named variants, merge them into the stored ablation."""
    with open(out_dir / "05_ablation.json") as f:
        doc = json.load(f)
    known = {name for env in ENVS for name, _, _ in variants(ppo.Config(**baseline(env)).to_dict())}
    if not names or not set(names) <= known - {"baseline"}:
        print(f"error: --only takes variant names other than the baseline, from {sorted(known - {'baseline'})}; "
              f"got {sorted(names)}", file=sys.stderr)
        return 2
    t0, code = time.perf_counter(), {"git": git_state(), "sha256": {p: file_sha256(ROOT / p) for p in hashed}}
    for env in ENVS:
        res = doc["results"][env]
        base = ppo.Config(**baseline(env)).to_dict()
        order = [name for name, _, _ in variants(base)]
        wanted = [n for n in names if n in order]
        if not wanted:
            continue
        fresh = run_variants(env, {"baseline", *wanted}, res["seeds"], None, a.jobs, run_root)
        stored = res["variants"][0]["runs"]
        same = all(new[k] == old[k] for new, old in zip(fresh["baseline"], stored) for k in REPRODUCED)
        if not same:
            differ = sorted({k for new, old in zip(fresh["baseline"], stored) for k in REPRODUCED if new[k] != old[k]})
            print(f"error: {env}'s baseline no longer reproduces the stored runs (they differ in {differ}): the code "
                  f"or the machine differs from the recording; rerun the whole ablation instead of merging rows. "
                  f"Nothing written.", file=sys.stderr)
            return 2
        labels = {name: (label, switches) for name, label, switches in variants(base)}
        kept = {v["name"]: v for v in res["variants"] if v["name"] not in wanted}
        for name in wanted:
            kept[name] = {"name": name, "label": labels[name][0], "switches": labels[name][1], "runs": fresh[name]}
        res["variants"] = [kept[n] for n in order if n in kept]
        for v in res["variants"]:
            v["compare"] = compare(v["runs"], res["variants"][0]["runs"])
        print(f"{env}: baseline reproduced bitwise on {len(stored)} seeds; merged {wanted}", flush=True)
    doc.setdefault("additions", []).append({
        "command": "python scripts/ablation_ppo.py --only " + ",".join(names) + (f" --jobs {a.jobs}" if a.jobs > 1 else ""),
        "variants": list(names), "date": time.strftime("%Y-%m-%d %H:%M:%S"), **code,
        "wall_s": round(time.perf_counter() - t0, 1), "baseline_reproduced": True})
    write_outputs(doc, out_dir)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, 20k steps per run, output to a temp dir")
    ap.add_argument("--jobs", type=int, default=1, choices=(1, 2), help="parallel runs (at most 2)")
    ap.add_argument("--replot", action="store_true", help="only redraw the PNGs from an existing 05_ablation.json")
    ap.add_argument("--only", default=None, help="comma-separated variant names: rerun the baseline and these, "
                    "and merge them into the existing 05_ablation.json")
    ap.add_argument("--keep-runs", action="store_true", help="keep the run directories (default: deleted)")
    ap.add_argument("--out", default=None, help="directory for 05_ablation.json and the PNGs "
                    "(default: figures/, or a temp dir with --quick)")
    a = ap.parse_args()
    seeds = SEEDS[:2] if a.quick else SEEDS
    total_steps = 20_000 if a.quick else None
    out_dir = pathlib.Path(a.out or (tempfile.mkdtemp(prefix="rlref-ablation-quick-") if a.quick else ROOT / "figures"))
    out_dir.mkdir(parents=True, exist_ok=True)
    if a.replot:
        with open(out_dir / "05_ablation.json") as f:
            results = json.load(f)["results"]
        for env in ENVS:
            plot_env(env, results[env], out_dir / f"05_ablation_{env.split('-')[0].lower()}.png")
        print_table(results)
        return 0
    run_root = tempfile.mkdtemp(prefix="rlref-ablation-runs-")
    hashed = ("rlref/algos/ppo.py", "rlref/normalize.py", "rlref/train.py", "rlref/run.py", "rlref/rollout.py",
              "rlref/config.py")
    if a.only is not None:
        status = add_rows(a, [n for n in a.only.split(",") if n], out_dir, run_root, hashed)
        shutil.rmtree(run_root, ignore_errors=True)
        return status
    code_at_start = {"git": git_state(), "sha256": {p: file_sha256(ROOT / p) for p in hashed}}
    t0 = time.perf_counter()
    results = {}
    for env in ENVS:
        base = ppo.Config(**baseline(env)).to_dict()
        t_env = time.perf_counter()
        by_name = run_variants(env, {name for name, _, _ in variants(base)}, seeds, total_steps, a.jobs, run_root)
        vs = [{"name": name, "label": label, "switches": switches, "runs": by_name[name]}
              for name, label, switches in variants(base)]
        for v in vs:
            v["compare"] = compare(v["runs"], vs[0]["runs"])
        results[env] = {"baseline_config": jsonable(ppo.Config(**{**baseline(env), "total_steps": total_steps
                                                                  or base["total_steps"]}).to_dict()),
                        "threshold": solved_threshold(env), "seeds": list(seeds), "variants": vs,
                        "wall_s": round(time.perf_counter() - t_env, 1)}
        print(f"{env}: {sum(len(r) for r in by_name.values())} runs in {results[env]['wall_s']:.0f} s", flush=True)
    total = time.perf_counter() - t0
    doc = {"command": "python scripts/ablation_ppo.py" + (" --quick" if a.quick else "") +
                      (f" --jobs {a.jobs}" if a.jobs > 1 else ""),
           "quick": a.quick, "jobs": a.jobs, "total_wall_s": round(total, 1),
           "date": time.strftime("%Y-%m-%d %H:%M:%S"), **code_at_start,      # the code the runs imported
           "changed_during_run": [p for p in hashed if file_sha256(ROOT / p) != code_at_start["sha256"][p]],
           "versions": {"python": platform.python_version(), "numpy": np.__version__},
           "metrics": {"eval_return_mean": "deterministic evaluation after training, 20 episodes",
                       "return_auc": "mean of return_mean (last 20 training episodes) over the run's env steps",
                       "solved_at_steps": "first env step at which return_mean >= threshold (null: never)",
                       "p_vs_baseline": "exact two-sided permutation p-value of the difference of seed means",
                       "p_holm": "p_vs_baseline adjusted by Holm's step-down method over every comparison"},
           "results": results}
    if doc["changed_during_run"]:
        print(f"WARNING: {doc['changed_during_run']} changed while the ablation ran", file=sys.stderr)
    write_outputs(doc, out_dir)
    if a.keep_runs:
        print(f"run directories kept in {run_root}")
    else:
        shutil.rmtree(run_root)
    print(f"\nwrote {out_dir / '05_ablation.json'} and the PNGs; total {total / 60:.1f} min "
          f"({'quick' if a.quick else 'full'} run, {len(seeds)} seeds, jobs={a.jobs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
