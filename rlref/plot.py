"""Learning curves: from run directories, return_mean against env_steps, one line per run
(plot_runs); from figures/seed_curves.json (scripts/seed_curves.py), the mean over several seeds
with a min-max band at each algorithm's default budget (load_seed_curves, plot_seed_band)."""
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
