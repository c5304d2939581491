"""What a training run shows while it runs, and the summary it ends with.

    header    the algorithm, env, seed, which settings run (the env's preset, or that there is none
              and the defaults, calibrated for CartPole-v1, run instead; what differs from them),
              the budget in env steps, the run directory                                  (stderr)
    bar       a tqdm bar over env steps with the latest return_mean and kl; when stderr is not a
              terminal, a plain line every PLAIN_EVERY_S seconds instead                   (stderr)
    warnings  what the health checks find (rlref/health.py), each once, above the bar      (stderr)
    --verbose one line per iteration                                                        (stdout)
    summary   solved at, the evaluation against the threshold, wall time, health, the files
              (``closing``, printed by the command line, also under --quiet)              (stdout)

With quiet the run prints nothing while it runs, but the health checks still watch it: their
findings go into summary.json ("health") and the summary. No `nan` is shown: a dash stands for a
value not defined yet (return_mean before the first finished episode).

The display costs a clock read per iteration and a few comparisons of the health rules; the bar is
redrawn at most every BAR_EVERY_S seconds (docs/command_line.md has the measurement).
"""
import dataclasses
import math
import sys
import time

from rlref.config import format_value
from rlref.health import Watch, where

PLAIN_EVERY_S = 10.0                    # a plain progress line this often when stderr is no terminal
BAR_EVERY_S = 0.5                       # the bar's redraw


def fmt(x, spec=".1f"):
    """x formatted, or a dash (as wide) when it is not a finite number (not defined yet)."""
    if x is not None and math.isfinite(x):
        return format(x, spec)
    width = spec.split(".")[0]
    return "-".rjust(int(width)) if width.isdigit() else "-"


def settings_line(module, config):
    """Which settings run: the env's preset or the defaults, and what differs from them."""
    defaults = {f.name: f.default for f in dataclasses.fields(module.Config)
                if f.default is not dataclasses.MISSING}
    home = defaults.get("env", "CartPole-v1")
    preset = getattr(module, "PRESETS", {}).get(config.env)
    if preset is not None:
        what = f"the preset for {config.env}"
    elif config.env == home:
        what = f"the defaults (calibrated for {home})"
    else:
        what = (f"no preset for {config.env}: the defaults, calibrated for {home}, run instead "
                f"(results may be poor; the PRESETS of {module.__name__.replace('.', '/')}.py list "
                f"the envs it has settings for)")
    base = {**defaults, **(preset or {})}
    changed = [f"{k}={format_value(getattr(config, k))}" for k in sorted(base)
               if k not in ("env", "seed", "total_steps") and getattr(config, k) != base[k]]
    return "settings: " + what + (f"; changed: {' '.join(changed)}" if changed else "")


class Display:
    """The screen of one run (rank 0's). ``row(row)`` per iteration, ``close()`` at the end."""

    def __init__(self, run, out_dir, quiet=False, verbose=False, earlier=None):
        """run: the rlref.run.Run; earlier: the rows a resumed run already logged (the health checks
        read them first, silently, so that nothing is said twice)."""
        config, self.total = run.config, run.config.total_steps
        self.watch = Watch(config, run.threshold, run.spaces.gaussian, run.spaces.act_dim)
        for row in earlier or ():
            self.watch.see(row)
        self.quiet, self.verbose, self.bar = quiet, verbose and not quiet, None
        self.t0 = self.last = time.monotonic()
        self.start = run.env_steps
        if quiet:
            return
        batch = (f"{config.num_envs} envs x {run.T} steps" if not run.episodic
                 else f"{config.num_envs} whole episodes") + (f" on each of {run.workers.size} workers"
                                                               if run.workers.size > 1 else "")
        n = run.n_iterations()
        _err(f"{run.algo} on {config.env}, seed {config.seed}: {self.total:,} env steps "
             f"(~{n} iteration{'s' if n != 1 else ''} of {batch}) -> {out_dir}")
        _err(settings_line(run.module, config))
        if run.note:
            _err(run.note)
        if sys.stderr.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=self.total, initial=run.env_steps, unit="step", unit_scale=True,
                            dynamic_ncols=True, file=sys.stderr, leave=True)

    def row(self, row):
        """One iteration's row of progress.csv: health checks, and the screen when it is due."""
        for finding in self.watch.see(row):
            if not self.quiet:
                self._say(f"warning: {where(finding)}: {finding.text}", sys.stderr)
        if self.quiet:
            return
        if self.verbose:
            self._say(f"it {row['iteration']:5d}  steps {row['env_steps']:9d}  return {fmt(row['return_mean'], '9.2f')}"
                      f"  len {fmt(row['length_mean'], '7.1f')}  kl {fmt(row.get('kl'), '.2e')}", sys.stdout)
        now = time.monotonic()
        if now - self.last >= (BAR_EVERY_S if self.bar is not None else PLAIN_EVERY_S):
            self.last = now
            self._show(row, now)

    def _show(self, row, now):
        latest = f"return {fmt(row['return_mean'])}  kl {fmt(row.get('kl'), '.2g')}"
        steps = row["env_steps"]
        if self.bar is not None:
            self.bar.total = max(self.bar.total, steps)      # the last batch may overshoot the budget
            self.bar.set_postfix_str(latest, refresh=False)
            self.bar.update(steps - self.bar.n)
            return
        elapsed, done = now - self.t0, steps - self.start
        left = max(self.total - steps, 0) * elapsed / done if done > 0 else float("nan")
        _err(f"{steps:,}/{self.total:,} env steps ({100 * steps / self.total:.0f}%), {elapsed:.0f} s, "
             f"about {fmt(left, '.0f')} s left; {latest}")

    def _say(self, text, file):
        if self.bar is not None:
            self.bar.write(text, file=file)
        else:
            print(text, file=file, flush=True)

    def health(self):
        """The findings as summary.json keeps them: one line each, with where they began."""
        return [f"{where(f)}: {f.text}" for f in self.watch.findings]

    def close(self, row=None):
        if self.bar is not None:
            if row is not None:
                self._show(row, time.monotonic())
            self.bar.close()


def _err(text):
    print(text, file=sys.stderr, flush=True)


def closing(summary, out):
    """The closing summary of a finished run (the command line prints it, also under --quiet)."""
    s, threshold = summary, summary["threshold"]
    thr = f" (threshold {threshold:g})" if threshold is not None else " (this env has no threshold)"
    solved = (f"solved at {s['solved_at_steps']:,} env steps, {s['solved_at_wall_s']:.1f} s "
              f"(return_mean of 20 episodes reached {threshold:g})" if s["solved_at_steps"] is not None
              else f"not solved (return_mean never reached {threshold:g})" if threshold is not None
              else "solved: not defined (this env has no threshold)")
    health = s.get("health") or []
    lines = [f"{s['algorithm']} on {s['env']}, seed {s['seed']}: {s['total_steps']:,} env steps in "
             f"{s['wall_s']:.1f} s ({s['steps_per_s']:,.0f} steps/s)",
             f"  {solved}",
             f"  evaluation: {s['eval_return_mean']:.1f} +- {s['eval_return_std']:.1f} over {s['eval_episodes']} "
             f"deterministic episodes{thr}",
             "  health: " + (f"{len(health)} warning(s), see python -m rlref explain {out}" if health
                             else "nothing looked unhealthy")]
    lines += [f"    {line}" for line in health]
    lines.append(f"  files: {out} (progress.csv, summary.json, checkpoint/); "
                 f"learning curve: python -m rlref plot {out}")
    return "\n".join(lines)
