"""Health checks of a training run: what in progress.csv looks wrong, since when, and the likely cause.

A Watch reads the rows of progress.csv one at a time, as the training loop writes them
(rlref/progress.py prints what it finds above the progress bar) or as ``diagnose`` reads them back
from a run directory (``python -m rlref explain RUN_DIR``): the same rules either way. Each rule
speaks once, the first time its condition has held for `streak` iterations in a row, and names the
iteration and env step where that streak began.

    entropy_collapse   entropy below 1% of a uniform policy's log(A) (Discrete; a Gaussian: log(100)
                       nats per action dimension below its initial entropy) for 5 iterations, while
                       return_mean stays below the env's threshold (or no episode has finished):
                       the policy became deterministic before it learned.
    kl_far_above       kl above 10 x its target for 10 iterations (kl_target for PPO and DPPO, max_kl
                       for NPG and TRPO, 0.01 for the others): every update moves the policy far more
                       than meant.
    critic_useless     explained_var below 0 for 30 iterations: the advantages are noise.
    clip_saturated     clip_frac of 0.8 or more for 5 iterations: PPO's ratio left the clip range on
                       almost every sample.
    non_finite         a NaN or inf in a column that is never empty.

The thresholds were set on healthy runs, which they leave silent (PPO on CartPole-v1 with the
defaults reaches clip_frac 0.97 once and kl 30 x its target for at most 3 iterations in a row;
tests/test_explain.py), and on collapsed ones (--set lr=1e6), which they flag.
"""
import json
import math
import os
from collections import namedtuple
from contextlib import contextmanager

import numpy as np

from rlref.algos import algo_module
from rlref.errors import ConfigError, NonFiniteError
from rlref.rundir import read_progress

Finding = namedtuple("Finding", "rule iteration env_steps text")

MAY_BE_EMPTY = ("return_mean", "return_std", "length_mean", "explained_var")   # rlref/columns.py says when
KL_TIMES, CLIP_HIGH, ENTROPY_SHRINK = 10.0, 0.8, 100.0


def step_setting(config):
    """(name, value) of the Config field that sets how far one update moves the policy."""
    for name in ("lr", "lr_pi", "max_kl"):
        value = getattr(config, name, None)
        if value is not None:
            return name, value
    return None, None


def lower_hint(config):
    """'lower lr (now 1e+06), e.g. --set lr=1e+05': the setting to lower, in the command line's syntax."""
    name, value = step_setting(config)
    return f"lower {name} (now {value:g}), e.g. --set {name}={value / 10:g}" if name else "lower the step size"


def non_finite_hint(config):
    """What NonFiniteError adds when an update overflowed."""
    return f". Likely cause: updates too large for this env; {lower_hint(config)}"


@contextmanager
def overflow_said_once(config, blame_steps=True):
    """numpy's overflow warnings silenced inside; a NonFiniteError raised there (when blame_steps)
    says, in its one line, that updates too large are the likely cause and which setting to lower."""
    with np.errstate(all="ignore"):
        try:
            yield
        except NonFiniteError as err:
            if not blame_steps:
                raise
            raise NonFiniteError(f"{err}{non_finite_hint(config)}") from None


def kl_target(config):
    for name in ("kl_target", "max_kl"):
        if getattr(config, name, None):
            return float(getattr(config, name))
    return 0.01


class Watch:
    """The health rules over the rows of one run (see the module's docstring). ``see(row)`` returns
    the findings this row completes (each rule at most once per Watch); ``findings`` keeps them all.
    gaussian, act_dim: the policy's kind (the entropy rule's scale); threshold: the env's solved
    return, or None (then the entropy rule cannot tell a low return and stays silent)."""

    def __init__(self, config, threshold, gaussian=False, act_dim=2):
        self.config, self.threshold, self.gaussian, self.act_dim = config, threshold, gaussian, act_dim
        self.kl_target = kl_target(config)
        self.findings, self.said = [], set()
        self.first_entropy = (act_dim * (getattr(config, "log_std_init", 0.0) + 0.5 * math.log(2 * math.pi * math.e))
                              if gaussian else math.log(act_dim))     # the initial policy's (DIST.6, DIST.2)
        self.rules = [("entropy_collapse", 5, self._collapsed), ("kl_far_above", 10, self._kl_high),
                      ("critic_useless", 30, self._critic_bad), ("clip_saturated", 5, self._clip_high),
                      ("non_finite", 1, self._non_finite)]
        self.streaks = {name: (0, None) for name, _, _ in self.rules}     # (length, first row of it)

    def see(self, row):
        new = []
        for name, streak, holds in self.rules:
            if name in self.said:
                continue
            length, start = self.streaks[name]
            length, start = (length + 1, start or row) if holds(row) else (0, None)
            self.streaks[name] = (length, start)
            if length >= streak:
                self.said.add(name)
                new.append(Finding(name, int(start["iteration"]), int(start["env_steps"]),
                                   getattr(self, "_say_" + name)(start, row)))
        self.findings += new
        return new

    # ---- the conditions
    def _collapsed(self, row):
        e, r = row.get("entropy"), row.get("return_mean")
        if not _finite(e) or self.threshold is None:
            return False
        low = not _finite(r) or r < self.threshold
        if self.gaussian:
            return low and e < self.first_entropy - self.act_dim * math.log(ENTROPY_SHRINK)
        return low and e < self.first_entropy / ENTROPY_SHRINK

    def _kl_high(self, row):
        kl = row.get("kl")
        return _finite(kl) and kl > KL_TIMES * self.kl_target

    def _critic_bad(self, row):
        ev = row.get("explained_var")
        return _finite(ev) and ev < 0.0

    def _clip_high(self, row):
        c = row.get("clip_frac")
        return _finite(c) and c >= CLIP_HIGH

    def _non_finite(self, row):
        if math.isfinite(sum(row.values())):              # one C loop: the common case, every value finite
            return False
        return any(not _finite(v) for k, v in row.items() if k not in MAY_BE_EMPTY)

    # ---- what each says
    def _say_entropy_collapse(self, start, row):
        r = row.get("return_mean")
        ret = f"return_mean is {r:.1f}" if _finite(r) else "no episode has finished"
        return (f"entropy collapsed: {start['entropy']:.3g} (a uniform policy's: {self.first_entropy:.3g}), while "
                f"{ret} (threshold {self.threshold:g}). The policy became almost deterministic before it "
                f"learned, and stops exploring. Likely cause: updates too large; {lower_hint(self.config)}"
                + ("; or too little exploration (raise ent_coef)" if hasattr(self.config, "ent_coef") else ""))

    def _say_kl_far_above(self, start, row):
        return (f"kl far above its target: more than {KL_TIMES:g} x {self.kl_target:g} for 10 iterations "
                f"(now {row['kl']:.3g}). Every update moves the policy much further than intended. Likely "
                f"cause: updates too large; {lower_hint(self.config)}"
                + (" or fewer epochs" if hasattr(self.config, "epochs") else ""))

    def _say_critic_useless(self, start, row):
        knobs = [k for k in ("lr_v", "vf_coef", "v_iters", "v_epochs", "normalize_obs", "scale_reward")
                 if hasattr(self.config, k)]
        return ("explained_var below 0 for 30 iterations: the value function predicts the returns worse "
                "than their mean, so the advantages are mostly noise. Likely cause: the critic learns too "
                "slowly or too fast for the returns' scale; look at " + ", ".join(knobs))

    def _say_clip_saturated(self, start, row):
        return (f"clip_frac at {CLIP_HIGH:g} or more for 5 iterations (now {row['clip_frac']:.2f}): the "
                f"ratio left [1 - clip_eps, 1 + clip_eps] on almost every sample, which then gives no "
                f"gradient. Likely cause: updates too large; {lower_hint(self.config)} or fewer epochs")

    def _say_non_finite(self, start, row):
        bad = [k for k, v in row.items() if k not in MAY_BE_EMPTY and not _finite(v)]
        return (f"non-finite values in {', '.join(bad)}: the numbers overflowed. Likely cause: updates too "
                f"large for this env; {lower_hint(self.config)}")


def _finite(x):
    return x is not None and math.isfinite(x)


def where(finding):
    return f"from iteration {finding.iteration} ({finding.env_steps} env steps)"


def diagnose(run_dir):
    """(findings, config) of the run in run_dir, read from its progress.csv and config.json."""
    config = load_config(run_dir)
    progress = read_progress(run_dir)
    watch = Watch(config, *_env_facts(config.env))
    names = list(progress)
    for values in zip(*progress.values()):
        watch.see(dict(zip(names, values)))
    return watch.findings, config


def load_config(run_dir):
    """The Config of the run in run_dir; ConfigError if it holds no run (no config.json, progress.csv)."""
    missing = [name for name in ("config.json", "progress.csv") if not os.path.isfile(os.path.join(run_dir, name))]
    if missing:
        raise ConfigError(f"{run_dir} holds no run ({' and '.join(missing)} missing): explain takes a "
                                f"directory that train wrote, or a column of progress.csv")
    path = os.path.join(run_dir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    return algo_module(saved.pop("algorithm")).Config(**saved)


def _env_facts(env_id):
    """(threshold, gaussian, act_dim) of env_id: the entropy rule's facts (silent if unknown)."""
    from rlref.envs import make_envs, solved_threshold, spaces_of
    try:
        envs = make_envs(env_id, 1)
        spaces = spaces_of(envs)
        envs.close()
        return solved_threshold(env_id), spaces.gaussian, spaces.act_dim
    except Exception:                      # e.g. an extra not installed here: the other rules still run
        return None, False, 2


def report(run_dir):
    """What `explain RUN_DIR` prints: each finding with its start, or that nothing looks unhealthy."""
    findings, config = diagnose(run_dir)
    last = {k: v[0] for k, v in read_progress(run_dir, last_row_only=True).items()}
    with open(os.path.join(run_dir, "config.json")) as f:
        algo = json.load(f)["algorithm"]
    head = (f"{run_dir}: {algo} on {config.env}, seed {config.seed}, {int(last.get('iteration', 0))} iterations "
            f"({int(last.get('env_steps', 0))} of {config.total_steps} env steps)")
    from rlref.progress import settings_line
    head += "\n" + settings_line(algo_module(algo), config)
    if not findings:
        return head + "\nnothing looks unhealthy (python -m rlref explain lists the columns and their healthy ranges)"
    return "\n".join([head, f"{len(findings)} thing(s) look unhealthy:"]
                     + [f"- {where(f)}: {f.text}" for f in findings])
