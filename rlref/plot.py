"""Learning curves from run directories: return_mean against env_steps, one line per run."""
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
