"""Randomness of a training run: one ``np.random.SeedSequence(seed)`` spawned into named generators.

    "init"    the networks' initial weights          "update"  minibatch shuffles, Fisher subsets
    "act"     the actions sampled while collecting   "env"     the seeds the training envs reset with
    "eval"    the seed of the evaluation envs (never a training episode's start)

Nothing touches NumPy's global generator, so the same seed on the same machine (single-threaded
BLAS) gives bitwise the same run. Worker w >= 1 of a distributed run (rlref/algos/dppo.py) has its
own five, spawned from child len(STREAMS) - 1 + w of the run's SeedSequence: the children 0-4 are
worker 0's streams, so worker 1 takes child 5, worker 2 child 6, and no stream is shared.
"""
import numpy as np

STREAMS = ("init", "act", "update", "env", "eval")


def generators(seed, worker=0):
    """{stream name: np.random.Generator} of worker `worker` (0: the run's own, as one process has)."""
    root = (np.random.SeedSequence(seed) if worker == 0
            else np.random.SeedSequence(seed, spawn_key=(len(STREAMS) - 1 + worker,)))
    return dict(zip(STREAMS, (np.random.default_rng(s) for s in root.spawn(len(STREAMS)))))


def seed_from(rng):
    """A seed for gymnasium's reset(seed=...), drawn from one of the run's generators."""
    return int(rng.integers(2**31 - 1))


def eval_seed(seed):
    """The seed a run of `seed` evaluates with: the first draw of its "eval" generator (training
    never draws from it, so `rlref evaluate DIR` repeats the summary's evaluation exactly)."""
    return seed_from(generators(seed)["eval"])
