"""Learning curves: from run directories, return_mean against env_steps, one line per run and each
env's solved line (plot_runs; `python -m rlref plot DIR` writes DIR/learning_curve.png, figure_path
says where and refuses a path it cannot write, check_runs a folder without a run); from figures/seed_curves.json (scripts/seed_curves.py), the mean over several seeds
with a min-max band at each algorithm's default budget (load_seed_curves, plot_seed_band)."""
import json
import math
import os

import matplotlib

matplotlib.use("Agg")                     # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402

from rlref.errors import PlotError, RlrefError, RunNotFoundError  # noqa: E402
from rlref.rundir import DRAWN_FROM_RUN, read_progress  # noqa: E402  (the one reader of progress.csv; notebooks import it from here)

DEFAULT_NAME = DRAWN_FROM_RUN[0]          # `plot DIR` without -o writes DIR/learning_curve.png
LINE_STYLES = ("--", ":", "-.", (0, (6, 2, 1, 2, 1, 2)))     # one per env's threshold line


def _config(run_dir):
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def _label(run_dir):
    c = _config(run_dir)
    if {"algorithm", "env", "seed"} <= set(c):
        return f"{c['algorithm']} {c['env']} seed {c['seed']}"
    return os.path.basename(os.path.normpath(run_dir))


def check_runs(run_dirs):
    """RunNotFoundError, in one line, for the first of run_dirs that holds no run; for a folder of
    run directories (runs/), the command that plots them."""
    for run_dir in run_dirs:
        try:
            read_progress(run_dir, last_row_only=True)
        except RunNotFoundError as err:
            inside = sorted(name for name in os.listdir(run_dir) if os.path.isfile(
                os.path.join(run_dir, name, "progress.csv"))) if os.path.isdir(run_dir) else []
            if not inside:
                raise
            raise RunNotFoundError(f"{err}; it holds {len(inside)} run director{'y' if len(inside) == 1 else 'ies'} "
                                   f"({', '.join(inside[:3])}{', ...' if len(inside) > 3 else ''}): plot "
                                   f"{os.path.join(run_dir, inside[0])}, or several with -o FILE.png") from None


def run_thresholds(run_dirs):
    """{env: its solved threshold} over the envs of run_dirs (from their config.json), envs without
    a threshold (or not known here) left out."""
    from rlref.envs import solved_threshold
    envs = sorted({_config(d).get("env") for d in run_dirs} - {None})
    found = {}
    for env in envs:
        try:
            found[env] = solved_threshold(env)
        except RlrefError:                # an env this machine cannot look up: no line, still a figure
            continue
    return {env: t for env, t in found.items() if t is not None}


def figure_path(out, run_dirs):
    """Where `plot DIRS [-o OUT]` writes: DIR/learning_curve.png for one DIR without -o; OUT with .png
    added when it has no suffix, or OUT/learning_curve.png when OUT is a folder. PlotError, before
    anything is read or written, for several DIRs without -o, a folder that does not exist, or a
    format matplotlib cannot write."""
    if out is None:
        if len(run_dirs) != 1:
            raise PlotError(f"{len(run_dirs)} run directories: name the figure with -o FILE.png (without -o, "
                            f"one DIR's figure goes to DIR/{DEFAULT_NAME})")
        out = os.path.join(run_dirs[0], DEFAULT_NAME)
    elif os.path.isdir(out):
        out = os.path.join(out, DEFAULT_NAME)
    root, suffix = os.path.splitext(out)
    formats = plt.gcf().canvas.get_supported_filetypes()
    plt.close("all")
    if not suffix:
        out = root + ".png"
    elif suffix[1:].lower() not in formats:
        raise PlotError(f"-o {out}: matplotlib cannot write {suffix} files; use one of "
                        f"{', '.join('.' + f for f in sorted(formats))} (.png is added to a name without one)")
    folder = os.path.dirname(out) or "."
    if not os.path.isdir(folder):
        raise PlotError(f"-o {out}: the folder {folder} does not exist; nothing was written (make it first, or "
                        f"choose another -o)")
    return out


def plot_runs(run_dirs, out_path, y="return_mean", threshold=None, title=None):
    """Save a figure of y against env_steps for every run; returns out_path. threshold: a number, or
    {env: number} for a dashed line per env. PlotError when no run has a finite y yet (no finished
    episode): no empty figure is written."""
    curves = {run_dir: read_progress(run_dir) for run_dir in run_dirs}   # every DIR is a run, or nothing is drawn
    empty = [d for d, p in curves.items() if not any(math.isfinite(v) for v in p.get(y, []))]
    if len(empty) == len(run_dirs):
        raise PlotError(f"nothing to plot: {', '.join(empty)} {'has' if len(empty) == 1 else 'have'} no "
                        f"finished episode yet ({y} is empty until one ends); train longer, then plot again")
    fig, ax = plt.subplots(figsize=(7, 4))
    for run_dir, p in curves.items():
        label = _label(run_dir) + (" (no finished episode)" if run_dir in empty else "")
        ax.plot(p.get("env_steps", []), p.get(y, []), label=label, lw=1.2)
    thresholds = threshold if isinstance(threshold, dict) else {None: threshold}
    for i, (env, value) in enumerate(thresholds.items()):
        if value is not None:
            name = f"{env} solved" if len(thresholds) > 1 else "solved"
            ax.axhline(value, color="k", ls=LINE_STYLES[i % len(LINE_STYLES)], lw=0.8, label=f"{name} ({value:g})")
    return finish(fig, ax, out_path, title or "learning curve",
                  y.replace("_", " ") + (" (last 20 episodes)" if y == "return_mean" else ""))


def finish(fig, ax, out_path, title, ylabel, threshold=None, threshold_name="solved"):
    """The shared end of a learning-curve figure: threshold line, labels, grid, legend, saved
    to out_path (its folder made if needed), closed. Returns out_path."""
    if threshold is not None:
        ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"{threshold_name} ({threshold:g})")
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


# ---------------------------------------------------------------------------------------------
# Several seeds per algorithm (figures/seed_curves.json, made by scripts/seed_curves.py): the
# mean over seeds and a band from the lowest to the highest seed. With five seeds a min-max band
# shows every seed's curve inside it (an inter-quartile band of five would hide two of them), and
# it is the band of `rlref bench`'s figures and of the PPO ablation.
# ---------------------------------------------------------------------------------------------

SEED_CURVES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "figures",
                           "seed_curves.json")


def load_seed_curves(path=None):
    """{env: {algo: {"budget", "seeds", "command", "steps", "returns", "threshold", ...}}} from
    path (default: the repository's figures/seed_curves.json, beside this package).
    MissingResultError when the file is not there."""
    from rlref.errors import MissingResultError
    path = SEED_CURVES if path is None else path
    if not os.path.isfile(path):
        raise MissingResultError(f"{path} does not exist: make it with `python scripts/seed_curves.py` "
                                 f"(from the repository), or pass the path of a copy")
    with open(path) as f:
        return json.load(f)


def plot_seed_band(ax, curves, label=None, color=None):
    """Draw on ax the mean over seeds of the training return against env steps (a line) and the
    band from the lowest to the highest seed at each step (shaded). curves: one algorithm's entry
    of load_seed_curves() (a dict with "steps" (G,) and "returns" (S, G)), or a pair (steps,
    returns). Returns {"steps", "mean", "low", "high", "line", "band"}: the arrays drawn and the
    two artists."""
    import numpy as np
    from rlref.errors import ConfigError, require_array
    steps, returns = (curves["steps"], curves["returns"]) if isinstance(curves, dict) else curves
    steps = require_array("steps", steps, ndim=1, error=ConfigError)                         # (G,)
    if len({len(row) for row in returns}) > 1:
        raise ConfigError(f"returns must hold one row per seed, all of len(steps) = {steps.size}, got rows of "
                          f"lengths {[len(row) for row in returns]}")
    returns = require_array("returns", returns, ndim=2, shape=(None, steps.size), error=ConfigError)  # (S, G)
    n = returns.shape[0]
    mean, low, high = returns.mean(axis=0), returns.min(axis=0), returns.max(axis=0)     # (G,) each
    text = f"mean of {n} seed{'s' * (n > 1)}, min-max band"
    (line,) = ax.plot(steps, mean, lw=1.5, color=color, label=f"{label} ({text})" if label else text)
    band = ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, lw=0)
    return {"steps": steps, "mean": mean, "low": low, "high": high, "line": line, "band": band}
