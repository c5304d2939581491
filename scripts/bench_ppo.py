"""Where a PPO training run spends its time: the profile behind the speed figures of docs/results.md.

    python scripts/bench_ppo.py [--env CartPole-v1] [--seeds 1 2 3] [--set key=value ...]

Trains PPO exactly as `python -m rlref train ppo --env ENV` does (the same `rlref.train.train`,
one BLAS thread, the same malloc setting as the command line) and splits each run's wall time into
  env.step          the gymnasium vector env (all E envs, one call per step)
  policy + record   the rest of the collection loop: forward pass, sampling, log-probabilities, stores
  minibatch steps   Step 3 of ppo.update (ppo.run_epochs): forward, losses, backward, clipping, Adam
  rest of update    GAE, the old distribution, the diagnostics (exact KL, k1, k3, ...)
  rest              logging, the solved check
and prints steps per second, also for the bare env stepped with fixed actions (the ceiling that
no agent can pass). The timers wrap the functions, so each call costs a microsecond more than
without them. Compare the run with the peer with the yardstick shared/bench/compare.py (kept beside the repository).
Shared machines are noisy: read shares and ratios.
"""
import argparse
import tempfile
import time

import rlref  # noqa: E402  (imports no NumPy)

rlref.one_blas_thread()                   # before NumPy loads

import numpy as np  # noqa: E402

from rlref import train as train_module  # noqa: E402
from rlref.algos import ppo  # noqa: E402
from rlref.config import parse_value  # noqa: E402
from rlref.envs import make_envs  # noqa: E402

rlref.keep_freed_memory()                 # as `python -m rlref` does

PARTS = ("env.step", "collect", "minibatch steps", "update")


def timed(f, key, acc):
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return f(*args, **kwargs)
        finally:
            acc[key] += time.perf_counter() - t0
    return wrapper


def profile_run(env, seed, settings):
    """One training run with timers around its parts -> (summary, seconds per part)."""
    acc = dict.fromkeys(PARTS, 0.0)
    originals = (train_module.make_envs, train_module.collect, ppo.update, ppo.run_epochs)

    def make_timed_envs(env_id, num_envs):
        envs = make_envs(env_id, num_envs)
        envs.step = timed(envs.step, "env.step", acc)
        return envs

    train_module.make_envs = make_timed_envs
    train_module.collect = timed(originals[1], "collect", acc)
    ppo.update = timed(originals[2], "update", acc)
    ppo.run_epochs = timed(originals[3], "minibatch steps", acc)
    try:
        summary = train_module.train("ppo", ppo.Config(**{**ppo.PRESETS.get(env, {}), **settings, "env": env, "seed": seed}),
                                     tempfile.mkdtemp(prefix="rlref-bench-ppo-"), quiet=True)
    finally:
        train_module.make_envs, train_module.collect, ppo.update, ppo.run_epochs = originals
    return summary, acc


def bare_env_rate(env, num_envs, steps=20_000):
    """Transitions per second of the vector env alone, stepped with a fixed valid action."""
    envs = make_envs(env, num_envs)
    envs.reset(seed=0)
    action = np.zeros(num_envs, np.int64) if hasattr(envs.single_action_space, "n") else \
        np.zeros((num_envs,) + envs.single_action_space.shape)
    calls = steps // num_envs
    t0 = time.perf_counter()
    for _ in range(calls):
        envs.step(action)
    rate = calls * num_envs / (time.perf_counter() - t0)
    envs.close()
    return rate


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env", default="CartPole-v1")
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a setting of ppo.Config")
    a = ap.parse_args()
    settings = {k: parse_value(ppo.Config, k, v) for k, _, v in (s.partition("=") for s in a.set)}
    config = ppo.Config(**{**ppo.PRESETS.get(a.env, {}), **settings, "env": a.env})
    print(f"PPO on {a.env}: {config.num_envs} envs x {config.n_steps} steps per batch, {config.epochs} epochs of "
          f"minibatches of {config.minibatch_size}, hidden {config.hidden}, {config.total_steps} steps")
    print(f"{'seed':>4} {'wall s':>7} {'steps/s':>8} {'solved at':>10} {'(s)':>6} {'env.step':>9} {'policy+rec':>10} "
          f"{'minibatch':>9} {'upd rest':>8} {'rest':>6}   (shares of wall)")
    for seed in a.seeds:
        s, acc = profile_run(a.env, seed, settings)
        wall = s["wall_s"]
        shares = (acc["env.step"], acc["collect"] - acc["env.step"], acc["minibatch steps"],
                  acc["update"] - acc["minibatch steps"], wall - acc["collect"] - acc["update"])
        solved = (f"{s['solved_at_steps']:>10} {s['solved_at_wall_s']:>6.2f}" if s["solved_at_steps"]
                  else f"{'-':>10} {'-':>6}")
        print(f"{seed:>4} {wall:>7.2f} {s['steps_per_s']:>8.0f} {solved} "
              + " ".join(f"{x / wall:>{w}.0%}" for x, w in zip(shares, (9, 10, 9, 8, 6))), flush=True)
    rate = bare_env_rate(a.env, config.num_envs)
    print(f"bare {a.env} vector env ({config.num_envs} envs, fixed actions): {rate:.0f} transitions/s")


if __name__ == "__main__":
    main()
