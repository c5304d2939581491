"""What an explicit-Fisher natural gradient costs: the speed report and figures/03_fisher_cost.png.

    OMP_NUM_THREADS=1 python scripts/bench_npg_cost.py            # report + figure (1-2 minutes)
    OMP_NUM_THREADS=1 python scripts/bench_npg_cost.py --quick    # small sizes only, no figure

Part 1, the speed report. For the 4-64-64-2 policy (P = 4610 parameters) and N = 2000 samples it
times the dense product that forms the empirical Fisher, F = Z^T Z with Z = score / sqrt(N)
(N P^2 flops as a symmetric product), and one whole NPG update, ``npg.natural_step``: scores,
Fisher factor, damping, Cholesky solve, step size, step and the exact KL. Here N < P, so the update
takes the N x N route (NPG.7) and never forms F; the P x P route (NPG.6) is timed for comparison.

Part 2, the figure. For policies 4-H-H-2 of growing width and N fixed, the time of forming F
(~ N P^2), of its Cholesky factorization and solve (~ P^3 / 3), and the memory of F (8 P^2 bytes),
against P, with P^2 and P^3 guides. Times are the best of a few repeats on one core.
Not collected by pytest (no test_ prefix); no timing is ever asserted.
"""
import argparse
import os
import pathlib
import time
import tracemalloc

import rlref  # noqa: E402  (imports no NumPy)

rlref.one_blas_thread()                   # before NumPy loads

import numpy as np  # noqa: E402

from rlref.algos import npg  # noqa: E402
from rlref.nn import flatten  # noqa: E402
from rlref.policy import init_policy, policy_forward  # noqa: E402

FIG = pathlib.Path(__file__).resolve().parent.parent / "figures"


def best_time(f, repeats=3):
    """The smallest wall time of `repeats` calls (the least disturbed by other processes)."""
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def problem(hidden, N, seed=0, obs_dim=4, n_actions=2):
    """A CartPole-shaped categorical policy, N states, sampled actions and random advantages."""
    rng = np.random.default_rng(seed)
    policy = init_policy([obs_dim, *hidden, n_actions], rng, out_gain=1.0)
    obs = rng.standard_normal((N, obs_dim))                              # (N, D)
    actions = policy_forward(policy, obs)[0].sample(rng)                 # (N,)
    return policy, obs, actions, rng.standard_normal(N)


def speed_report(N=2000, hidden=(64, 64), repeats=3):
    policy, obs, actions, A_hat = problem(hidden, N)
    P = flatten(policy).size
    Z = npg.fisher_factor(policy, obs, "empirical", actions)            # (N, P) = score / sqrt(N)
    Zc = Z.copy()
    F_damped = Z.T @ Z + 1e-3 * np.eye(P)                               # (P, P)
    config = npg.Config(fisher="empirical", damping=1e-3, max_kl=0.01)
    rows = {
        "F = Z.T @ Z (symmetric product: BLAS syrk)": lambda: Z.T @ Z,
        "F = np.dot(Z.T, Z)": lambda: np.dot(Z.T, Z),
        "F = Z.T @ Zc (Zc a copy: general gemm, 2 N P^2)": lambda: Z.T @ Zc,
        "score matrix, per-sample backprop (NPG.4)": lambda: npg.score_matrix(policy, obs, actions),
        "K = Z @ Z.T (N x N)": lambda: Z @ Z.T,
        "Cholesky of F + lambda I (P x P), F already formed": lambda: np.linalg.cholesky(F_damped),
        "whole update, empirical F, auto route (N x N, NPG.7)":
            lambda: npg.natural_step(policy, obs, actions, A_hat, config),
        "whole update, empirical F, P x P route (NPG.6)":
            lambda: npg.natural_step(policy, obs, actions, A_hat, config, route="fisher"),
        "whole update, exact F (NPG.3), auto route":
            lambda: npg.natural_step(policy, obs, actions, A_hat, npg.Config(fisher="exact")),
    }
    times = {name: best_time(f, repeats) for name, f in rows.items()}
    print(f"4-{'-'.join(map(str, hidden))}-2 policy, P = {P} parameters, N = {N} samples, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, best of {repeats}")
    for name, t in times.items():
        print(f"  {name:<58} {t * 1e3:9.1f} ms")
    reference = times["F = Z.T @ Z (symmetric product: BLAS syrk)"]
    for name in [n for n in times if n.startswith("whole update")]:
        print(f"  ratio  {name:<51} {times[name] / reference:9.2f} x the F product")
    return P, times


def cost_curve(widths, N, repeats=2):
    """Per width: P, time to form F, time to factor and solve, peak memory of F and its factor."""
    out = []
    for H in widths:
        policy, obs, actions, _ = problem((H, H), N)
        Z = npg.fisher_factor(policy, obs, "empirical", actions)        # (N, P)
        P = Z.shape[1]
        g = np.random.default_rng(1).standard_normal(P)
        t_form = best_time(lambda: Z.T @ Z, repeats)
        F = Z.T @ Z
        F[np.diag_indices(P)] += 1e-3

        t_solve = best_time(lambda: npg.cho_solve(np.linalg.cholesky(F), g), repeats)
        t_woodbury = best_time(lambda: npg.natural_direction(Z, g, 1e-3, "woodbury"), repeats)
        del F
        tracemalloc.start()                                             # NumPy reports its buffers
        x, _ = npg.natural_direction(Z, g, 1e-3, "fisher")
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out.append((H, P, t_form, t_solve, t_woodbury, peak))
        print(f"  H = {H:3d}  P = {P:6d}  form F {t_form * 1e3:9.1f} ms   Cholesky + solve "
              f"{t_solve * 1e3:9.1f} ms   N x N route {t_woodbury * 1e3:8.1f} ms   "
              f"peak memory {peak / 2**20:8.1f} MiB (8 P^2 = {8 * P * P / 2**20:.1f} MiB)", flush=True)
    return out


def plot(curve, N, path):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    H, P, t_form, t_solve, t_wood, peak = (np.array(c, dtype=float) for c in zip(*curve))
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4.3))
    ax.loglog(P, t_form, "o-", label=r"form $F = Z^\top Z$ ($\approx N P^2$)")
    ax.loglog(P, t_solve, "s-", label=r"Cholesky of $F + \lambda I$ and solve ($\approx P^3/3$)")
    ax.loglog(P, t_wood, "^--", label=r"$N\times N$ route (NPG.7), never forms $F$")
    ax.loglog(P, t_form[-1] * (P / P[-1]) ** 2, "k:", lw=1, label=r"$\propto P^2$")
    ax.loglog(P, t_solve[-1] * (P / P[-1]) ** 3, "k-.", lw=1, label=r"$\propto P^3$")
    ax.set_xlabel("number of policy parameters P")
    ax.set_ylabel("seconds (one core)")
    ax.set_title(f"Time, N = {N} samples", fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(which="both", alpha=0.3)
    ax2.loglog(P, peak / 2**20, "o-", label="peak memory of the P x P route (measured)")
    ax2.loglog(P, 16 * P ** 2 / 2**20, "k:", lw=1, label=r"$F$ and its factor $L$: $2 \times 8P^2$ bytes")
    ax2.set_xlabel("number of policy parameters P")
    ax2.set_ylabel("MiB")
    ax2.set_title("Memory", fontsize=10)
    ax2.legend(fontsize=8)
    ax2.grid(which="both", alpha=0.3)
    for a in (ax, ax2):
        a.set_xticks([100, 300, 1000, 3000, 10000], ["100", "300", "1000", "3000", "10000"])
        a.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())   # no crowded minor labels
        a.set_xlim(P[0] / 1.3, P[-1] * 1.3)
    fig.suptitle(r"Explicit Fisher: forming $F$ costs $\propto P^2$ (time and memory), factoring it $\propto P^3$",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, no figure")
    ap.add_argument("--N", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(FIG / "03_fisher_cost.png"))
    a = ap.parse_args()
    if a.quick:
        speed_report(N=500, hidden=(16, 16), repeats=a.repeats)
        cost_curve((4, 8, 16, 32), N=500)
        return
    speed_report(N=a.N, repeats=a.repeats)
    print(f"cost of the P x P route against P (N = {a.N}):")
    curve = cost_curve((8, 12, 16, 24, 32, 48, 64, 80), N=a.N)
    print("wrote", plot(curve, a.N, a.out))


if __name__ == "__main__":
    main()
