"""The distributed checks of tests/test_dppo.py, run as `mpiexec -n 2 python tests/mpi_dppo.py`
(not collected by pytest: the file name has no test_ prefix). Rank 0 prints one JSON line with
one entry per check; a planted bug can be switched on with `--plant NAME` to see a check fail.
"""
import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from types import SimpleNamespace

import rlref

rlref.one_blas_thread()

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

from rlref import train as train_mod  # noqa: E402
from rlref.advantages import standardize  # noqa: E402
from rlref.algos import dppo  # noqa: E402
from rlref.errors import SyncError  # noqa: E402
from rlref.nn import flatten  # noqa: E402
from rlref.normalize import rms_init, rms_update  # noqa: E402
from rlref.policy import policy_forward  # noqa: E402
from rlref.rollout import Batch  # noqa: E402

COMM = MPI.COMM_WORLD
W, RANK = COMM.Get_size(), COMM.Get_rank()


class Perms:
    """A stand-in generator whose permutation() returns prescribed index arrays in turn."""

    def __init__(self, perms):
        self.perms = iter(perms)

    def permutation(self, N):
        p = next(self.perms)
        if len(p) != N:
            raise ValueError(f"prescribed permutation of {len(p)}, asked for {N}")
        return p


def synthetic_batch(policy, T, E, rng):
    """T steps of E envs of made-up CartPole-shaped data, every step valid, with terminations and
    truncations inside; logp_old from the policy itself."""
    obs = rng.normal(size=(T + 1, E, 4))
    dist, _ = policy_forward(policy, obs[:-1].reshape(T * E, 4))
    actions = dist.sample(rng).reshape(T, E)
    logp = dist.logp(actions.reshape(-1)).reshape(T, E)
    term = (rng.random((T, E)) < 0.05).astype(float)
    trunc = ((rng.random((T, E)) < 0.03) & (term == 0)).astype(float)
    return Batch(obs, actions, logp, rng.normal(size=(T, E)), term, trunc, np.ones((T, E), bool))


def columns(batch, lo, hi):
    """Envs lo..hi-1 of a batch: one worker's share of the global batch."""
    return Batch(batch.obs[:, lo:hi], batch.actions[:, lo:hi], batch.logp[:, lo:hi], batch.rewards[:, lo:hi],
                 batch.terminated[:, lo:hi], batch.truncated[:, lo:hi], batch.valid[:, lo:hi])


def theta_of(agent):
    return np.concatenate([flatten(agent["policy"]), flatten(agent["value"])])


def check_equivalence(plant):
    """W workers with B samples each == one process with the W B samples, to 1e-12."""
    T, E, mb, epochs = 16, 4, 32, 3
    results = {}
    for objective in ("clip", "penalty"):
        local_cfg = dppo.Config(num_envs=E, n_steps=T, minibatch_size=mb, epochs=epochs, objective=objective,
                                hinge_coef=0.0, anneal_lr=False, sync_every=1000)
        global_cfg = dppo.Config(num_envs=W * E, n_steps=T, minibatch_size=W * mb, epochs=epochs,
                                 objective=objective, hinge_coef=0.0, anneal_lr=False, sync_every=1000)
        agent = dppo.init_agent(local_cfg, 4, 2, False, np.random.default_rng(7))        # same on every rank
        big = synthetic_batch(agent["policy"], T, W * E, np.random.default_rng(8))
        N = T * E
        n_mb = N // mb
        perms = [[np.random.default_rng(100 + w).permutation(N) for _ in range(epochs)] for w in range(W)]
        workers = dppo.Workers(COMM, MPI)
        if plant == "local":                           # planted: each rank keeps its own gradient
            real_mean = workers.mean                   # (the Allreduce still runs, or rank 0 would wait)
            workers.mean = lambda x: (real_mean(x), x)[1]
        mine = columns(big, RANK * E, (RANK + 1) * E)
        new_w, diag_w = dppo.update(agent, mine, local_cfg, Perms(perms[RANK]), workers=workers)
        # The global flat index of worker w's local sample (t, e) is t (W E) + w E + e.
        where = [(np.arange(T)[:, None] * (W * E) + w * E + np.arange(E)[None, :]).reshape(-1) for w in range(W)]
        global_perms = [np.concatenate([where[w][chunk] for j in range(n_mb) for w in range(W)
                                        for chunk in [np.array_split(perms[w][e], n_mb)[j]]])
                        for e in range(epochs)]
        new_1, diag_1 = dppo.update(agent, big, global_cfg, Perms(global_perms), workers=dppo.Workers())
        diff = float(np.max(np.abs(theta_of(new_w) - theta_of(new_1))) / np.max(np.abs(theta_of(new_1))))
        results[objective] = {"max_rel_diff": diff, "bitwise": bool(np.array_equal(theta_of(new_w), theta_of(new_1))),
                              "kl_diff": abs(diag_w["kl"] - diag_1["kl"]), "steps": diag_w["minibatch_steps"]}
    # the global standardization (DPPO.2) against standardize() of the concatenated advantages
    A = np.random.default_rng(9).normal(3.0, 2.0, size=(W, 50))
    mine = dppo.standardize_global(A[RANK], dppo.Workers(COMM, MPI))
    results["standardize_diff"] = float(np.max(np.abs(mine - standardize(A.reshape(-1))[RANK * 50:(RANK + 1) * 50])))
    return results


def check_merged_stats(plant):
    """Each rank updates its copy of the statistics row by row; after the merge every rank holds the
    statistics of all the data (the shared start plus every rank's rows), over two iterations."""
    data = np.random.default_rng(11).normal([1.0, -2.0, 50.0], [1.0, 3.0, 0.1], size=(3, W, 40, 3))
    start = rms_update(rms_init(3), data[0].reshape(-1, 3)[:10])           # the same on every rank
    workers = dppo.Workers(COMM, MPI)
    workers.shared["obs_rms"] = start
    collector = SimpleNamespace(obs_rms=start, ret_rms=None)
    seen = [data[0].reshape(-1, 3)[:10]]
    errors = []
    for it in (1, 2):
        local = collector.obs_rms
        for row in data[it, RANK]:                                           # one env step at a time
            local = rms_update(local, row[None])
        collector.obs_rms = local
        if plant == "stats":                                                 # planted: keep local stats
            workers.after_collect = lambda c: None
        workers.after_collect(collector)
        seen.append(data[it].reshape(-1, 3))
        m, ref = collector.obs_rms, rms_update(rms_init(3), np.concatenate(seen))   # all the data at once
        errors.append(max(float(np.max(np.abs(m["mean"] - ref["mean"]) / np.abs(ref["mean"]))),
                          float(np.max(np.abs(m["var"] - ref["var"]) / ref["var"])),
                          abs(m["count"] - ref["count"]) / ref["count"]))
    same = len({hashlib.sha256(np.concatenate([m["mean"], m["var"]]).tobytes()).hexdigest()
                for m in COMM.allgather(collector.obs_rms)}) == 1
    return {"max_rel_error": max(errors), "identical_on_ranks": same}


def check_training(plant):
    """The real training loop on every rank: parameters, optimizer state, beta and the merged
    statistics identical on all ranks after every update; counts are totals over ranks."""
    out = COMM.bcast(tempfile.mkdtemp(prefix="rlref-mpi-") if RANK == 0 else None, root=0)
    record = {"hashes": [], "valid": 0, "episodes": 0}
    real_update = dppo.update

    def update(agent, batch, config, rng, budget_used=0.0, workers=None):
        record.setdefault("first_batch", hashlib.sha256(batch.obs.tobytes()).hexdigest())
        record["valid"] += int(batch.valid.sum())
        record["episodes"] += len(batch.episode_returns)
        new, diag = real_update(agent, batch, config, rng, budget_used, workers)
        parts = [theta_of(new), new["opt"]["m"], new["opt"]["v"], np.atleast_1d(new["state"]["beta"]),
                 workers.shared["obs_rms"]["mean"], workers.shared["obs_rms"]["var"], workers.shared["ret_rms"]["var"]]
        record["hashes"].append(hashlib.sha256(b"".join(np.asarray(p, float).tobytes() for p in parts)).hexdigest())
        return new, diag

    dppo.update = update
    if plant == "broadcast":                           # planted: every rank keeps its own initial agent
        dppo.Workers.broadcast = lambda self, agent: agent
    config = dppo.Config(total_steps=3000, num_envs=4, minibatch_size=128, normalize_obs=True, scale_reward=True,
                         sync_every=1000, seed=5)
    summary = train_mod.train("dppo", config, out, quiet=True)
    dppo.update = real_update
    everyone = COMM.allgather(record)
    result = {"updates": len(record["hashes"]),
              "identical_every_update": all(r["hashes"] == everyone[0]["hashes"] for r in everyone),
              "ranks_see_different_data": len({r["first_batch"] for r in everyone}) == W}
    if RANK == 0:
        result.update(workers=summary["workers"], total_steps_ok=summary["total_steps"] == sum(r["valid"] for r in everyone),
                      episodes_ok=int(train_mod.checkpoint.load_meta(out)["counters"]["episodes"])
                      == sum(r["episodes"] for r in everyone),
                      only_rank0_wrote=sorted(os.listdir(out)) == ["checkpoint", "config.json", "progress.csv",
                                                                   "summary.json"])
        shutil.rmtree(out, ignore_errors=True)
    return result


def check_sync_error(plant):
    """A rank that averages wrongly is caught by the checksum comparison: SyncError on every rank."""
    config = dppo.Config(num_envs=2, n_steps=16, minibatch_size=16, epochs=1, sync_every=1)
    agent = dppo.init_agent(config, 4, 2, False, np.random.default_rng(7))
    batch = synthetic_batch(agent["policy"], 16, 2, np.random.default_rng(20 + RANK))
    workers = dppo.Workers(COMM, MPI)
    if RANK == 1 and plant != "no_desync":
        real_mean = workers.mean                           # rank 1 scales its average by 1 + 1e-3
        workers.mean = lambda x: real_mean(x) * 1.001
    try:
        dppo.update(agent, batch, config, np.random.default_rng(RANK), workers=workers)
    except SyncError as err:
        return {"raised": True, "message": str(err)[:80]}
    return {"raised": False}


def fail_on_rank_1():
    """Not a check that returns: rank 1 raises in its 6th update; the whole job must end (MPI_Abort)
    instead of leaving rank 0 waiting in the next Allreduce."""
    from rlref.errors import NonFiniteError
    real_update = dppo.update

    def update(agent, batch, config, rng, budget_used=0.0, workers=None):
        if workers.rank == 1 and int(agent["state"]["updates"]) == 5:
            raise NonFiniteError("planted on rank 1")
        return real_update(agent, batch, config, rng, budget_used, workers)

    dppo.update = update
    out = COMM.bcast(tempfile.mkdtemp(prefix="rlref-mpi-abort-") if RANK == 0 else None, root=0)
    train_mod.train("dppo", dppo.Config(total_steps=20_000), out, quiet=True)


def check_collectives(plant):
    """The Workers' collectives against values computed here by formula: rank r contributes
    (r + 1) x to the average (DPPO.1), whose value is then (W + 1) / 2 x; the sums, the maxima
    (stop / save decisions) and what rank 0 gathers (a checkpoint's parts)."""
    workers = dppo.Workers(COMM, MPI)
    if plant == "mean_sums":                           # planted: the Allreduce sum, not divided by W
        workers.mean = lambda v: workers._allreduce(np.asarray(v, dtype=np.float64), MPI.SUM)
    x = np.array([1.0, -2.0, 0.5, 3.0])
    mean = workers.mean((RANK + 1) * x)
    return {"mean_error": float(np.max(np.abs(mean - (W + 1) / 2 * x))),
            "total": list(workers.total((RANK + 1, 0.5 * (RANK + 1)))), "total_expected": [W * (W + 1) / 2,
                                                                                         W * (W + 1) / 4],
            "agree": workers.agree([RANK, 0, W - 1 - RANK]), "agree_expected": [W - 1, 0, W - 1],
            "gathered": workers.gather_on_root({"rank": RANK}), "gathered_expected": [{"rank": r} for r in range(W)]}


CHECKS = {"equivalence": check_equivalence, "merged_stats": check_merged_stats, "training": check_training,
          "sync_error": check_sync_error, "collectives": check_collectives}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checks", nargs="*", default=list(CHECKS))
    ap.add_argument("--plant", default=None)
    args = ap.parse_args()
    if args.checks == ["abort"]:
        return fail_on_rank_1()
    results = {name: CHECKS[name](args.plant) for name in args.checks}
    if RANK == 0:
        print(json.dumps(results), flush=True)


if __name__ == "__main__":
    sys.exit(main())
