"""Learning curves from run directories: return_mean against env_steps, one line per run."""
import json
import os

import matplotlib

matplotlib.use("Agg")                     # files only; works without a display
import matplotlib.pyplot as plt  # noqa: E402

from rlref.rundir import read_progress  # noqa: E402  (the one reader of progress.csv; notebooks import it from here)


def _label(run_dir):
    try:
        with open(os.path.join(run_dir, "config.json")) as f:
            c = json.load(f)
        return f"{c['algorithm']} {c['env']} seed {c['seed']}"
    except (OSError, KeyError, ValueError):
        return os.path.basename(os.path.normpath(run_dir))


def plot_runs(run_dirs, out_path, y="return_mean", threshold=None, title=None):
    """Save a figure of y against env_steps for every run; returns out_path."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for run_dir in run_dirs:
        p = read_progress(run_dir)
        ax.plot(p["env_steps"], p[y], label=_label(run_dir), lw=1.2)
    return finish(fig, ax, out_path, title or "learning curve",
                  y.replace("_", " ") + (" (last 20 episodes)" if y == "return_mean" else ""), threshold)


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
