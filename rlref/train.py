"""The training loop every algorithm shares, and evaluation.

An algorithm module provides ``Config`` (a TrainConfig dataclass), ``ROLLOUT`` ("steps": T steps
of E envs per iteration; "episodes": E whole episodes), ``init_agent(config, obs_dim, act_dim,
gaussian, rng)`` and ``update(agent, batch, config, rng, budget_used) -> (agent, diagnostics)``,
where budget_used in [0, 1) is the fraction of the step budget already spent (for annealing). This file does
the rest: generators, envs, the loop, resuming, evaluation; rlref/runstate.py keeps the run
directory (README.md, "Run directories") and what a checkpoint needs for --resume.

A distributed algorithm (dppo) also provides ``workers(config)``, an object with the methods of
``Solo`` below, and takes it as ``update(..., workers=...)``: this loop then runs on every rank,
counts steps and episodes over all of them, and only rank 0 writes the run directory.

Randomness: one ``np.random.SeedSequence(seed)`` spawns named generators ("init", "act",
"update", "env", "eval"); nothing touches NumPy's global generator. Training envs are reset with
seeds drawn from "env", evaluation envs with seeds from "eval", so evaluation never replays a
training episode's start.
"""
import importlib
import json
import os
import platform
import sys
import time
from collections import deque

import gymnasium as gym
import numpy as np

from rlref import __version__, checkpoint, runstate
from rlref.algos import ALGOS
from rlref.errors import CheckpointError, NonFiniteError, RunDirectoryError, require_choice
from rlref.normalize import rms_normalize
from rlref.policy import policy_forward
from rlref.rollout import check_spaces, collect, make_envs, normalizer_parts, start_collector

SOLVED = {"Pendulum-v1": -200.0}          # envs whose spec has no reward_threshold (the peer's value)
WINDOW = 20                               # return_mean: mean of the last 20 finished episodes
STREAMS = ("init", "act", "update", "env", "eval")


def algo_module(name):
    require_choice("algorithm", name, ALGOS)
    return importlib.import_module(f"rlref.algos.{name}")


def solved_threshold(env_id):
    return SOLVED.get(env_id, gym.spec(env_id).reward_threshold)


def generators(seed):
    return dict(zip(STREAMS, (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(STREAMS)))))


def _seed_from(rng):
    return int(rng.integers(2**31 - 1))


class Solo:
    """The one-process case of the hooks a distributed algorithm replaces (rlref/algos/dppo.py)."""
    rank, size = 0, 1

    def generators(self, seed):
        return generators(seed)

    def collected(self, steps, returns, lengths):    # steps summed, episodes listed, over workers
        return steps, list(returns), list(lengths)

    def broadcast(self, agent):          # rank 0's initial agent, on every worker
        return agent

    def after_collect(self, collector):  # e.g. merge normalization statistics across workers
        pass

    def abort(self, err):                # an error on one worker must stop all of them
        pass


def evaluate(policy, env_id, episodes, seed, obs_rms=None, obs_clip=10.0):
    """Returns of `episodes` deterministic episodes (argmax / mean action), one per env, seeded.
    Observations are normalized with the frozen statistics obs_rms when given."""
    envs = make_envs(env_id, episodes)
    trained = TrainedPolicy(policy, obs_rms, obs_clip, bounds=check_spaces(envs)[3])
    obs, _ = envs.reset(seed=int(seed))
    returns, finished = np.zeros(episodes), np.zeros(episodes, bool)
    while not finished.all():
        obs, r, term, trunc, _ = envs.step(trained.act(obs))           # (E,) or (E, A) actions
        returns += np.where(finished, 0.0, r)                          # count each env's first episode
        finished |= np.asarray(term | trunc)
    envs.close()
    return returns


class TrainedPolicy:
    """A trained policy to use in your own gymnasium loop: act(obs) normalizes obs with the run's
    frozen statistics and clips Box actions to the env's bounds; evaluate acts through it too.
    load_run also keeps the run's `config` on it."""

    def __init__(self, policy, obs_rms=None, obs_clip=10.0, bounds=None, config=None):
        self.policy, self.obs_rms, self.obs_clip, self.bounds, self.config = policy, obs_rms, obs_clip, bounds, config

    def act(self, obs, deterministic=True, rng=None):
        """The action for one observation (D,) or actions for a batch (N, D): argmax / mean when
        deterministic, else a sample drawn with rng (default: a fresh generator)."""
        obs = np.asarray(obs, dtype=np.float64)
        x = obs[None] if obs.ndim == 1 else obs                        # (N, D)
        D = self.policy["W1"].shape[0]
        if x.ndim != 2 or x.shape[1] != D:
            raise ValueError(f"obs must have shape ({D},) or (N, {D}) for this policy (trained on "
                             f"{getattr(self.config, 'env', 'an env')} observations), got {obs.shape}")
        if self.obs_rms is not None:
            x = rms_normalize(self.obs_rms, x, self.obs_clip)          # frozen statistics (NORM.2)
        dist, _ = policy_forward(self.policy, x)
        a = dist.mode() if deterministic else dist.sample(rng if rng is not None else np.random.default_rng())
        if self.bounds is not None:
            a = np.clip(a, *self.bounds)                               # only what is sent to the env
        return a[0] if obs.ndim == 1 else a


def load_run(run_dir):
    """The TrainedPolicy saved in run_dir/checkpoint (rlref.load is this function)."""
    meta = checkpoint.load_meta(run_dir)
    module = algo_module(meta["algorithm"])
    config = module.Config(**meta["config"])
    envs = make_envs(config.env, 1)
    obs_dim, act_dim, gaussian, bounds = check_spaces(envs)
    envs.close()
    like = {**module.init_agent(config, obs_dim, act_dim, gaussian, generators(0)["init"]),
            **normalizer_parts(config, obs_dim), **(runstate.collector_like(config, obs_dim) if "window" in meta else {})}
    agent = checkpoint.load(run_dir, like)
    return TrainedPolicy(agent["policy"], agent.get("obs_rms"), config.obs_clip, bounds, config)


def _finite_agent(agent):
    for part, entries in agent.items():
        for name, value in entries.items():
            value = np.asarray(value)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise NonFiniteError(f"the update produced non-finite values in {part}/{name}; "
                                     f"the parameters before the update were kept")


def _meta(algo, config, counters, rngs):
    return {"algorithm": algo, "config": config.to_dict(), "counters": counters,
            "rng_states": {k: g.bit_generator.state for k, g in rngs.items()},
            "versions": {"rlref": __version__, "numpy": np.__version__, "gymnasium": gym.__version__,
                         "python": platform.python_version()}}


def train(algo, config, out_dir, quiet=False, overwrite=False):
    """Train `algo` ("a2c", ...) with `config` and write the run directory. Returns the summary
    (None on the ranks other than 0 of a distributed run). A directory that already holds a run is
    refused (RunDirectoryError) unless overwrite=True."""
    module = algo_module(algo)
    workers = module.workers(config) if hasattr(module, "workers") else Solo()
    try:
        return _train(algo, module, workers, config, out_dir, quiet, overwrite)
    except BaseException as err:         # after _train's own cleanup (rank 0 saved its checkpoint)
        workers.abort(err)
        raise


def resume(run_dir, quiet=False):
    """Continue the run in run_dir from its last checkpoint, to the budget in its config, appending
    to its progress.csv. Returns the summary like train (see rlref/runstate.py for what is saved)."""
    meta = checkpoint.load_meta(run_dir)
    module = algo_module(meta["algorithm"])
    if hasattr(module, "workers"):
        raise CheckpointError(f"{run_dir} is a distributed run ({meta['algorithm']}); resuming one is not "
                              f"supported yet: start it again with --overwrite")
    if "window" not in meta:
        raise CheckpointError(f"{run_dir}/checkpoint was written by an rlref that did not save the run's "
                              f"state (counters, collector, window); it can be evaluated but not resumed")
    config = module.Config(**meta["config"])
    if meta["counters"]["env_steps"] >= config.total_steps:
        raise RunDirectoryError(f"{run_dir} is finished ({meta['counters']['env_steps']} of "
                                f"{config.total_steps} steps): nothing to resume")
    return _train(meta["algorithm"], module, Solo(), config, run_dir, quiet, False, resumed=meta)


def _train(algo, module, workers, config, out_dir, quiet, overwrite, resumed=None):
    extra = {"workers": workers} if hasattr(module, "workers") else {}
    root, quiet = workers.rank == 0, quiet or workers.rank != 0      # rank 0 alone writes and prints
    envs = make_envs(config.env, config.num_envs)         # a missing package or space fails here, before
    obs_dim, act_dim, gaussian, _ = check_spaces(envs)    # anything is written
    if root and resumed is None:
        runstate.new_run_dir(out_dir, overwrite)
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump({"algorithm": algo, **config.to_dict()}, f, indent=1)
    rngs = workers.generators(config.seed)
    agent = workers.broadcast(module.init_agent(config, obs_dim, act_dim, gaussian, rngs["init"]))
    episode_steps = gym.spec(config.env).max_episode_steps or 1000
    T = episode_steps if module.ROLLOUT == "episodes" else config.n_steps
    n_iters = -(-config.total_steps // (config.num_envs * T))          # an estimate, for the bar
    threshold = solved_threshold(config.env)
    if resumed is None:
        collector = start_collector(envs, config, _seed_from(rngs["env"]))
        steps, episodes, iteration, solved, window, wall0 = 0, 0, 0, None, deque(maxlen=WINDOW), 0.0
    else:
        saved = checkpoint.load(out_dir, {**agent, **normalizer_parts(config, obs_dim),
                                          **runstate.collector_like(config, obs_dim)})
        agent = {k: saved[k] for k in agent}
        collector, counters, window, solved, wall0, restarted = runstate.restore(
            resumed, saved, envs, config, rngs, WINDOW, _seed_from)
        steps, episodes, iteration = counters["env_steps"], counters["episodes"], counters["iteration"]
        if not quiet:
            print(f"resuming {out_dir} after iteration {iteration} ({steps} steps)"
                  + (f"; {config.env}'s state cannot be saved, so its envs were restarted (deterministically, "
                     f"from the saved generators)" if restarted else ""), file=sys.stderr, flush=True)
    log = runstate.RunLog(out_dir, n_iters, quiet, resume_after=iteration if resumed else None) if root else None
    saver = runstate.Checkpointer(config.checkpoint_every, config.checkpoint_minutes, iteration,
                                  catch_signals=workers.size == 1)

    def save():
        state = runstate.progress_state(collector, iteration, steps, episodes, window, solved,
                                        wall0 + time.perf_counter() - t0)        # with its own "counters"
        checkpoint.save(out_dir, {**agent, **normalizer_parts(config, obs_dim, collector), **runstate.collector_parts(collector)},
                        {**_meta(algo, config, {}, rngs), **state})
        saver.saved(iteration)

    t0 = time.perf_counter()
    try:
        with saver:
            while steps < config.total_steps and saver.stop_signal is None:
                if module.ROLLOUT == "episodes" and iteration > 0:         # fresh episodes every time
                    collector = start_collector(envs, config, _seed_from(rngs["env"]),
                                                stats=normalizer_parts(config, obs_dim, collector))
                batch = collect(collector, agent["policy"], T, rngs["act"],
                                stop_when_all_done=module.ROLLOUT == "episodes")
                workers.after_collect(collector)
                progress = steps / config.total_steps                     # budget used before this batch
                new_steps, returns, lengths = workers.collected(int(batch.valid.sum()), batch.episode_returns,
                                                                batch.episode_lengths)
                steps += new_steps
                for ret in returns:                                       # solved: as the peer measures it
                    window.append(ret)
                    if solved is None and threshold is not None and len(window) == WINDOW \
                            and np.mean(window) >= threshold:
                        solved = (steps, wall0 + time.perf_counter() - t0)
                new_agent, diag = module.update(agent, batch, config, rngs["update"], budget_used=progress, **extra)
                _finite_agent(new_agent)
                agent, iteration, episodes = new_agent, iteration + 1, episodes + len(returns)
                if not root:
                    continue
                log.write({"iteration": iteration, "env_steps": steps, "wall_s": round(wall0 + time.perf_counter() - t0, 4),
                           "episodes": episodes, "return_mean": float(np.mean(window)) if window else float("nan"),
                           "return_std": float(np.std(window)) if window else float("nan"),
                           "length_mean": float(np.mean(lengths)) if lengths else float("nan"),
                           **diag})
                if saver.due(iteration):
                    save()
    finally:      # the end, a stop, or an error (then the state at that moment: see runstate.py)
        if root:
            log.close()
            if saver.last_iteration != iteration:
                save()
        norm = normalizer_parts(config, obs_dim, collector)
        envs.close()
    wall = wall0 + time.perf_counter() - t0
    if not root:
        return None
    if saver.stop_signal is not None:                                 # no evaluation, no summary.json
        print(runstate.stop_message(saver.stop_signal, out_dir, iteration, steps), file=sys.stderr, flush=True)
        return {"algorithm": algo, "env": config.env, "seed": config.seed, "total_steps": steps,
                "iterations": iteration, "wall_s": wall, "stopped_by": saver.stop_signal}
    eval_returns = evaluate(agent["policy"], config.env, config.eval_episodes, _seed_from(rngs["eval"]),
                            norm.get("obs_rms"), config.obs_clip)
    summary = {"algorithm": algo, "env": config.env, "seed": config.seed, "config": config.to_dict(),
               "versions": _meta(algo, config, {}, {})["versions"], "total_steps": steps,
               "iterations": iteration, "wall_s": wall, "steps_per_s": steps / wall,
               "eval_return_mean": float(eval_returns.mean()), "eval_return_std": float(eval_returns.std()),
               "eval_episodes": config.eval_episodes, "threshold": threshold,
               "solved_at_steps": solved[0] if solved else None,
               "solved_at_wall_s": solved[1] if solved else None, **({"workers": workers.size} if extra else {})}
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary
