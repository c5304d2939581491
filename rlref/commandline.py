"""The command line's pieces around its commands (rlref/cli.py): the settings a `train` command
resolves to and `--show-config`'s table of them, the checks that refuse a slip in one line before
anything runs, and argparse made to say a mistake in one line.
"""
import argparse
import difflib
import json
import os
import re

import numpy as np

from rlref.algos import algo_module
from rlref.errors import ConfigError, RunDirectoryError


def nearest(word, names, n=1):
    """The names closest to word, case aside (PPO -> ppo): for a "did you mean"."""
    lower = {name.lower(): name for name in names}
    return [lower[m] for m in difflib.get_close_matches(word.lower(), list(lower), n=n)]


def resolve_settings(algo, env=None, seed=None, total_steps=None, sets=()):
    """(config, sources, preset): resolve_config's Config, where each setting came from ("default",
    "preset", "--set", "--env", "--seed" or "--total-steps") and the env whose preset applied (None).
    A flag and a --set of the same setting that disagree are refused."""
    from rlref.config import format_value, parse_value
    from rlref.envs import env_spec
    module = algo_module(algo)
    settings, sources = {}, {}
    for item in sets:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value (like --set lr=0.01), got {item!r}")
        key, value = key.strip(), parse_value(module.Config, key.strip(), text.strip())
        if key in settings and settings[key] != value:
            raise ConfigError(f"--set {key} is given twice, as {format_value(settings[key])} and "
                              f"{format_value(value)}; give it once")
        settings[key], sources[key] = value, "--set"
    for key, value in (("env", env), ("seed", seed), ("total_steps", total_steps)):
        flag = "--" + key.replace("_", "-")
        if value is not None and key in settings and settings[key] != value:
            raise ConfigError(f"{flag} {format_value(value)} and --set {key}={format_value(settings[key])} "
                              f"disagree; give the {key.replace('_', ' ')} once")
        if value is not None:
            settings[key], sources[key] = value, flag
    env = settings.get("env", module.Config.env)
    env_spec(env)                                               # an unknown env id: one line, before anything
    preset = getattr(module, "PRESETS", {}).get(env)
    config = module.Config(**{**(preset or {}), **settings})   # validates
    for key in (preset or {}):
        sources.setdefault(key, "preset")
    return config, {key: sources.get(key, "default") for key in config.to_dict()}, (env if preset else None)


def show_config(algo, env=None, seed=None, total_steps=None, sets=()):
    """The lines of `train ... --show-config`: every setting with its value as --set takes it, where
    it came from and what it means (the Config's field comments: rlref/config.py's meanings)."""
    from rlref.config import format_value, meanings
    config, sources, preset = resolve_settings(algo, env, seed, total_steps, sets)
    about = meanings(type(config))
    rows = [(key, format_value(value), sources[key], about[key]) for key, value in config.to_dict().items()]
    widths = [max(len(row[i]) for row in rows + [("setting", "value", "from", "")]) for i in range(3)]
    made_for = type(config).env                          # the Config defaults are calibrated on its default env
    head = (f"{algo} on {config.env}: " + (
        f"{algo}'s defaults under its {preset} preset (PRESETS in rlref/algos/{algo}.py)" if preset else
        f"{algo}'s defaults, made for {made_for}" if config.env == made_for else
        f"{algo} has no preset for {config.env}, so its defaults, made for {made_for}, run")
        + "; then --set and the flags. Change any with --set KEY=VALUE")
    table = [f"  {k:<{widths[0]}}  {v:<{widths[1]}}  {src:<{widths[2]}}  {m}".rstrip()
             for k, v, src, m in [("setting", "value", "from", "meaning")] + rows]
    return [head] + table


def default_out(algo, config):
    """runs/ALGO-ENV-sSEED, ENV without a custom env's module: and with / (a namespace) as _."""
    env = config.env.rpartition(":")[2].replace("/", "_")
    return os.path.join("runs", f"{algo}-{env}-s{config.seed}")


def check_out_dir(out, flag="--out"):
    """Refuse an output folder that is empty text (it would mean the current folder), a file, or
    lies under one, before anything runs."""
    if not out.strip():
        raise RunDirectoryError(f"{flag} is empty: give a folder, or omit {flag} for the default; "
                                f"nothing was written")
    path = os.path.abspath(out)
    while not os.path.exists(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise RunDirectoryError(f"{flag} {out} must be a folder, but {path} is a file; nothing was written. "
                                f"Choose another {flag} DIR")


def check_evaluate_flags(args):
    """--json and --episodes belong to an evaluation, --video-episodes to a video: refuse a mix."""
    if args.video and (args.json or args.episodes):
        raise ConfigError(f"--video draws episodes instead of evaluating, so it takes no "
                          f"{'--json' if args.json else '--episodes'}; its count is --video-episodes")
    if not args.video and args.video_episodes != 1:
        raise ConfigError("--video-episodes counts the episodes of a video: it needs --video FILE.gif")


def evaluation_report(env, returns, threshold, as_json=False):
    """What `evaluate` prints of the returns (an array) of its deterministic episodes: one line of
    mean +- std (over episodes), min, max and whether the mean reaches the env's solved threshold
    (None: it has none), or as_json that and every return as one JSON line."""
    mean, std, low, high = (float(f(returns)) for f in (np.mean, np.std, np.min, np.max))
    if as_json:
        return json.dumps({"env": env, "eval_return_mean": mean, "eval_return_std": std, "eval_return_min": low,
                           "eval_return_max": high, "eval_episodes": len(returns), "threshold": threshold,
                           "returns": [float(r) for r in returns]})
    verdict = ("the env has no solved threshold" if threshold is None else
               f"the env's solved threshold {threshold:g}: {'reached' if mean >= threshold else 'not reached'}")
    return (f"{env}, {len(returns)} deterministic episodes: return {mean:.1f} +- {std:.1f} "
            f"(min {low:.1f}, max {high:.1f}); {verdict}")


def whole(low):
    """An argparse type: a whole number >= low, also written 1e6 or 1_000_000 (a 1.5 is refused)."""
    from rlref.config import whole_number

    def parse(text):
        try:
            value = whole_number(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"must be a whole number >= {low}, got {text}")
        return value
    return parse



class OneLineParser(argparse.ArgumentParser):
    """argparse that reports a mistake as one line, "error: ...", with exit 2, and a "did you mean"
    for a mistyped choice; the usage stays on --help."""

    def error(self, message):
        found = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message)
        if found:
            choices = re.findall(r"'([^']*)'", found.group(3))
            close = nearest(found.group(2), choices)
            message = (f"argument {found.group(1)}: {found.group(2)!r} is not one of {', '.join(choices)}"
                       + (f"; did you mean {close[0]}?" if close else ""))
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")
