"""Cost of TRPO's pieces, measured against one forward pass of the same batch.

    OMP_NUM_THREADS=1 python scripts/bench_trpo.py [--repeat 200]

For the CartPole (4-64-64-2, Categorical) and Pendulum (3-64-64-1, Gaussian) policies and batch sizes
N = 256 .. 4096, prints the median time of: policy_forward (the unit), the matrix-free Fisher-vector
product (TRPO.6: one forward-mode pass and one backward pass, on a cache made once per update),
the finite-difference product (TRPO.7), and the surrogate with its gradient. The issue's budget: one
Fisher-vector product costs at most about three forward passes. Not collected by pytest (no test_
prefix). Timings on shared machines are noisy: read the ratios, not the milliseconds.
"""
import argparse
import statistics
import time

import rlref  # noqa: E402  (imports no NumPy)

rlref.one_blas_thread()                   # before NumPy loads

import numpy as np  # noqa: E402

from rlref.algos import trpo  # noqa: E402
from rlref.nn import flatten  # noqa: E402
from rlref.policy import init_policy, policy_forward  # noqa: E402


def median_time(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=200)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    print(f"{'policy':<22} {'N':>5} {'forward ms':>10} {'F v':>6} {'F v (fd)':>9} {'L and g':>8}   (ratios to forward)")
    for name, gaussian, D, A in (("CartPole 4-64-64-2", False, 4, 2), ("Pendulum 3-64-64-1", True, 3, 1)):
        policy = init_policy([D, 64, 64, A], rng, gaussian)
        for N in (256, 1024, 4096):
            obs = rng.standard_normal((N, D))
            dist, _ = policy_forward(policy, obs)
            actions = dist.sample(rng)
            logp_old, A_hat = dist.logp(actions), rng.standard_normal(N)
            v = rng.standard_normal(flatten(policy).size)
            fvp = trpo.fisher_vector_product(policy, obs, 0.01)
            fvp_fd = trpo.fisher_vector_product_fd(policy, obs, 0.01)
            t_fwd = median_time(lambda: policy_forward(policy, obs), a.repeat)
            t_fvp = median_time(lambda: fvp(v), a.repeat)
            t_fd = median_time(lambda: fvp_fd(v), a.repeat)
            t_grad = median_time(lambda: trpo.surrogate_and_grad(policy, obs, actions, A_hat, logp_old), a.repeat)
            print(f"{name:<22} {N:>5} {t_fwd * 1e3:>10.3f} {t_fvp / t_fwd:>6.2f} {t_fd / t_fwd:>9.2f} "
                  f"{t_grad / t_fwd:>8.2f}", flush=True)


if __name__ == "__main__":
    main()
