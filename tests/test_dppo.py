"""Distributed PPO (rlref/algos/dppo.py).

The distributed checks run in one `mpiexec -n 2 python tests/mpi_dppo.py` subprocess (a process
boundary is the point) and skip, with the reason, when mpi4py or mpiexec is missing. The rest
runs in this process: the beta rule, K-step advantages, the statistics merge, and one worker = PPO.
"""
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from helpers import ENV, LONG, LONG_REASON, ROOT, decide, n_rows, same_progress
import rlref
from rlref import checkpoint
from rlref.algos import dppo, ppo
from rlref.config import parse_value
from rlref.errors import ConfigError
from rlref.normalize import rms_init, rms_merge, rms_update
from rlref.envs import make_envs
from rlref.rollout import Batch, collect, start
from rlref.value import value_forward

MPIEXEC = os.path.join(os.path.dirname(sys.executable), "mpiexec")
MPIEXEC = MPIEXEC if os.path.exists(MPIEXEC) else shutil.which("mpiexec")
NO_MPI = ("mpi4py is not installed (pip install -r requirements-mpi.txt)"
          if importlib.util.find_spec("mpi4py") is None else
          "mpiexec was not found (pip install mpich)" if MPIEXEC is None else None)
needs_mpi = pytest.mark.skipif(NO_MPI is not None, reason=NO_MPI or "")


def mpiexec(*args, n=2, timeout=120):
    return subprocess.run([MPIEXEC, "-n", str(n), *args], capture_output=True, text=True, env=ENV,
                          timeout=timeout, cwd=ROOT)


@pytest.fixture(scope="module")
def mpi_results():
    done = mpiexec(sys.executable, os.path.join(ROOT, "tests", "mpi_dppo.py"))
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# W workers with B samples each against one process with the W B samples, given the same data and
# minibatches (tests/mpi_dppo.py builds the one permutation from the workers' permutations). The
# agreement is to 1e-12, not bitwise: the Allreduce averages the workers' minibatch means,
# (m_0 + m_1) / 2, while the one process sums the concatenated minibatch in numpy's pairwise
# order, so the last bits of every gradient differ (measured: 2e-16 relative after 6 Adam steps).
@needs_mpi
@pytest.mark.parametrize("objective", ["clip", "penalty"])
def test_W_workers_with_batch_B_make_the_update_of_one_process_with_batch_WB(mpi_results, objective):
    got = mpi_results["equivalence"][objective]
    assert got["steps"] == 6
    assert got["max_rel_diff"] <= 1e-12 and got["kl_diff"] <= 1e-12, got
    assert mpi_results["equivalence"]["standardize_diff"] <= 1e-12     # (DPPO.2) over the global batch


@needs_mpi
def test_merged_statistics_equal_the_statistics_of_all_the_data(mpi_results):
    got = mpi_results["merged_stats"]
    assert got["identical_on_ranks"] and got["max_rel_error"] <= 1e-12, got


@needs_mpi
def test_every_rank_holds_identical_parameters_after_every_update(mpi_results):
    got = mpi_results["training"]
    assert got["updates"] >= 10 and got["identical_every_update"], got
    assert got["ranks_see_different_data"], got
    assert got["workers"] == 2 and got["total_steps_ok"] and got["episodes_ok"] and got["only_rank0_wrote"], got


@needs_mpi
def test_the_workers_average_is_an_average_and_sums_are_sums(mpi_results):
    """Adam and the gradient-norm clip absorb a factor W in the gradient, so the W x B = WB
    equivalence above would still hold if Workers.mean summed: the average is tested itself."""
    got = mpi_results["collectives"]
    assert got["mean_error"] <= 1e-12, got
    assert got["total"] == got["total_expected"] and got["agree"] == got["agree_expected"], got
    assert got["gathered"] == got["gathered_expected"], got


@needs_mpi
def test_a_rank_that_steps_differently_raises_sync_error(mpi_results):
    got = mpi_results["sync_error"]
    assert got["raised"] and "differ after update 1" in got["message"], got


@needs_mpi
def test_two_worker_runs_are_reproducible_and_the_workers_see_different_episodes():
    out = tempfile.mkdtemp(prefix="rlref-dppo-repro-")
    for name in ("a", "b"):
        done = mpiexec(sys.executable, "-m", "rlref", "train", "dppo", "--seed", "9", "--total-steps", "3000",
                       "--quiet", "--out", os.path.join(out, name))
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.count("dppo on CartPole-v1, seed 9:") == 1, done.stdout    # rank 0 alone prints
    assert same_progress(os.path.join(out, "a"), os.path.join(out, "b")) and n_rows(os.path.join(out, "a")) >= 5
    # rank r's generators are its own (child 4 + r of the run's SeedSequence), the same in every run
    first = {}
    for rank in (0, 1, 2):
        w = dppo.Workers()
        w.rank = rank
        first[rank] = [g.integers(2**62) for g in w.generators(9).values()]
    assert len({x for v in first.values() for x in v}) == 15
    w = dppo.Workers()
    w.rank = 1
    assert [g.integers(2**62) for g in w.generators(9).values()] == first[1]
    shutil.rmtree(out, ignore_errors=True)


@needs_mpi
def test_sigint_stops_every_rank_after_the_same_iteration_and_resume_continues_bitwise(tmp_path):
    """Ctrl-C to mpiexec: every rank finishes the iteration, rank 0 saves, one line, exit 130; the
    checkpoint holds every rank's state, so --resume under the same W is the straight run; another
    W is refused by name (rank 0 alone says so)."""
    args = [sys.executable, "-m", "rlref", "train", "dppo", "--seed", "12", "--total-steps", "40000", "--quiet"]
    straight, out = str(tmp_path / "straight"), str(tmp_path / "stopped")
    assert mpiexec(*args, "--out", straight).returncode == 0
    proc = subprocess.Popen([MPIEXEC, "-n", "2", *args, "--out", out], env=ENV, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(os.path.join(out, "progress.csv")) and n_rows(out) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    ours = [line for line in err.splitlines() if line.strip() and not line.startswith("[mpiexec@")]   # its notice
    assert proc.returncode == 130 and len(ours) == 1, err
    assert ours[0].startswith("stopped by SIGINT after iteration ") and \
        ours[0].endswith(f"Continue with: mpiexec -n 2 python -m rlref train --resume {out}"), err
    meta = checkpoint.load_meta(out)
    assert meta["workers"] == 2 and meta["counters"]["iteration"] == n_rows(out) >= 3
    assert meta["counters"]["env_steps"] < 40000 and not os.path.exists(os.path.join(out, "summary.json"))
    assert rlref.load(out).act(np.zeros(4)) in (0, 1)                              # loadable as it is
    for n in (1, 3):
        other = (subprocess.run(args[:3] + ["train", "--resume", out], capture_output=True, text=True, env=ENV, cwd=ROOT)
                 if n == 1 else mpiexec(*args[:3], "train", "--resume", out, n=3))
        assert other.returncode == 2 and other.stderr.strip().splitlines()[-1] == (
            f"error: RunDirectoryError: {out} was trained by 2 workers and this job has {n}: a run continues with "
            f"the workers it had (mpiexec -n 2 python -m rlref train --resume {out})"), other.stderr
        assert other.stderr.count("error:") == 1
    done = mpiexec(*args[:3], "train", "--resume", out, "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    assert same_progress(straight, out)
    with np.load(os.path.join(straight, "checkpoint", "params.npz")) as a, \
            np.load(os.path.join(out, "checkpoint", "params.npz")) as b:
        assert a.files == b.files and "collector.1/obs" in a.files
        assert all(np.array_equal(a[k], b[k]) for k in a.files)
    summaries = [json.load(open(os.path.join(d, "summary.json"))) for d in (straight, out)]
    assert [(s["eval_return_mean"], s["solved_at_steps"], s["total_steps"]) for s in summaries][0] == \
        [(s["eval_return_mean"], s["solved_at_steps"], s["total_steps"]) for s in summaries][1]


@needs_mpi
def test_an_error_on_one_rank_ends_the_whole_job():
    done = mpiexec(sys.executable, os.path.join(ROOT, "tests", "mpi_dppo.py"), "abort", timeout=60)
    assert done.returncode != 0
    # an error raised in an update carries the setting to lower (rlref/health.py) before "; aborting"
    assert "error on rank 1 of 2: NonFiniteError: planted on rank 1. Likely cause: updates too large" in done.stderr
    assert "e.g. --set lr=0.0005; aborting the MPI job" in done.stderr


def test_the_beta_vote_at_its_boundaries():
    config = dppo.Config()
    low, high = config.kl_target / 1.5, 1.5 * config.kl_target
    assert ppo.kl_verdict(low, config) == 0 and ppo.kl_verdict(high, config) == 0      # boundaries keep beta
    assert ppo.kl_verdict(np.nextafter(low, 0), config) == -1
    assert ppo.kl_verdict(np.nextafter(high, 1), config) == 1
    # two workers, alpha = 2: alpha_hat = 1.5 per worker; opposite votes cancel
    assert dppo.shared_beta(1.0, [2 * high, 2 * high], config) == 1.5 ** 2
    assert dppo.shared_beta(1.0, [2 * high, low / 2], config) == 1.0
    assert dppo.shared_beta(1.0, [low / 2, config.kl_target], config) == 1.0 / 1.5
    # the band [beta_min, beta_max] holds
    assert dppo.shared_beta(config.beta_max, [1.0] * 4, config) == config.beta_max
    assert dppo.shared_beta(config.beta_min, [0.0] * 4, config) == config.beta_min
    # alpha_hat^W is alpha to first order in alpha - 1
    near = dppo.Config(alpha=1.01)
    assert abs(dppo.shared_beta(1.0, [1.0] * 8, near) - 1.01) < 1e-4


def test_one_worker_applies_ppos_beta_rule_exactly():
    config = dppo.Config()
    low, high = config.kl_target / 1.5, 1.5 * config.kl_target
    for beta in (config.beta_min, 0.3, 1.0, config.beta_max):
        for kl in (0.0, np.nextafter(low, 0), low, config.kl_target, high, np.nextafter(high, 1), 1.0):
            assert dppo.shared_beta(beta, [kl], config) == ppo.adapt_beta(beta, kl, config)


def test_k_step_advantages_match_brute_force_with_terminations_and_truncations(rng):
    T, E, K, gamma = 12, 3, 4, 0.9
    config = dppo.Config(k_steps=K, gamma=gamma, num_envs=E, n_steps=T, minibatch_size=8)
    value = ppo.init_agent(config, 4, 2, False, rng)["value"]
    term = np.zeros((T, E))
    trunc = np.zeros((T, E))
    term[[2, 9], [0, 1]] = 1.0                       # episodes that end in a terminal state
    trunc[[5, 11], [0, 2]] = 1.0                     # ... and by a time limit (bootstrap from obs[t + 1])
    batch = Batch(rng.normal(size=(T + 1, E, 4)), np.zeros((T, E), int), np.zeros((T, E)),
                  rng.normal(size=(T, E)), term, trunc, np.ones((T, E), bool))
    V = value_forward(value, batch.obs)              # (T + 1, E)
    A = dppo.estimate_advantages(batch, value, config)["A_hat"].reshape(T, E)

    def brute(t, e, exponent_shift=0):
        G = 0.0
        for k in range(K):
            G += gamma ** k * batch.rewards[t + k, e]
            if term[t + k, e]:
                break
            if trunc[t + k, e] or k == K - 1 or t + k == T - 1:
                G += gamma ** (k + 1 - exponent_shift) * V[t + k + 1, e]
                break
        return G - V[t, e]

    for t in range(T):
        for e in range(E):
            assert abs(A[t, e] - brute(t, e)) < 1e-12, (t, e)
    # The notes' formula, gamma^(K-1) on the bootstrap, is a different (wrong) estimator.
    notes = np.array([[brute(t, e, exponent_shift=1) for e in range(E)] for t in range(T)])
    assert np.max(np.abs(notes - A)) > 1e-2
    # K = T: every step sums to the end of its rollout window (the notes' fixed windows).
    window_config = dppo.Config(k_steps=T, gamma=gamma, num_envs=E, n_steps=T, minibatch_size=8)
    window = dppo.estimate_advantages(batch, value, window_config)["A_hat"].reshape(T, E)
    assert abs(window[0, 2] - (sum(gamma ** k * batch.rewards[k, 2] for k in range(T))
                               + gamma ** T * V[T, 2] - V[0, 2])) < 1e-12


def test_unmerge_recovers_a_workers_local_change(rng):
    shared = rms_update(rms_init(3), rng.normal(5.0, 2.0, size=(500, 3)))
    rows = rng.normal(4.0, 1.0, size=(64, 3))
    local = shared
    for row in rows:                                 # as the collector does, one step at a time
        local = rms_update(local, row[None])
    change = dppo.rms_unmerge(local, shared)
    assert change["count"] == pytest.approx(64, rel=1e-12)
    np.testing.assert_allclose(change["mean"], rows.mean(0), rtol=1e-11)
    np.testing.assert_allclose(change["var"], rows.var(0), rtol=1e-10)
    both = dppo.merge_shared(shared, [change])
    np.testing.assert_allclose(both["var"], rms_merge(shared, {"mean": rows.mean(0), "var": rows.var(0),
                                                               "count": 64})["var"], rtol=1e-12)
    with pytest.raises(ConfigError, match="count"):
        dppo.rms_unmerge(shared, shared)


def test_one_worker_update_is_ppos_bitwise(rng):
    fields = dict(num_envs=4, n_steps=32, minibatch_size=64, epochs=2, objective="penalty", lr=5e-3,
                  max_grad_norm=0.5)
    d_cfg, p_cfg = dppo.Config(**fields), ppo.Config(**fields)
    agent = dppo.init_agent(d_cfg, 4, 2, False, rng)
    batch = collect(start(make_envs("CartPole-v1", 4), 0), agent["policy"], 32, rng)
    new_d, diag_d = dppo.update(agent, batch, d_cfg, np.random.default_rng(1))
    p_agent = {k: v for k, v in agent.items() if k != "state"} | {"state": {"beta": agent["state"]["beta"]}}
    new_p, diag_p = ppo.update(p_agent, batch, p_cfg, np.random.default_rng(1))
    for part in ("policy", "value"):
        for name in new_p[part]:
            assert np.array_equal(new_d[part][name], new_p[part][name]), (part, name)
    assert diag_d == diag_p or all(diag_d[k] == diag_p[k] or (np.isnan(diag_d[k]) and np.isnan(diag_p[k]))
                                   for k in diag_p)


@pytest.mark.parametrize("mpi", ["missing", "no mpiexec"])
def test_without_mpiexec_it_trains_as_one_worker_and_says_how_to_run_more(mpi):
    if mpi == "no mpiexec" and importlib.util.find_spec("mpi4py") is None:
        pytest.skip("mpi4py is not installed (pip install -r requirements-mpi.txt)")
    out = tempfile.mkdtemp(prefix="rlref-dppo-solo-")
    block = "sys.modules['mpi4py'] = None; " if mpi == "missing" else ""
    code = f"import sys; {block}from rlref.cli import main; sys.exit(main())"
    args = ["--seed", "3", "--total-steps", "3000", "--quiet"]
    done = subprocess.run([sys.executable, "-c", code, "train", "dppo", *args, "--out", os.path.join(out, "d")],
                          capture_output=True, text=True, env=ENV)
    assert done.returncode == 0, done.stderr
    assert "running as one worker" in done.stderr and "mpiexec -n W python -m rlref train dppo" in done.stderr
    assert ("mpi4py is not installed" in done.stderr) == (mpi == "missing")
    with open(os.path.join(out, "d", "summary.json")) as f:
        assert json.load(f)["workers"] == 1
    # ... and one worker is PPO with the same settings (every logged number, bitwise)
    sets = [f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}" for k, v in dppo.Config().to_dict().items()
            if k in ppo.Config().to_dict() and v != getattr(ppo.Config(), k)]     # where DPPO's defaults differ
    assert "objective=penalty" in sets and "hidden=32,32" in sets
    ppo_run = subprocess.run([sys.executable, "-m", "rlref", "train", "ppo", *args, "--out", os.path.join(out, "p"),
                              *[x for kv in sets for x in ("--set", kv)]], capture_output=True, text=True, env=ENV)
    ppo_run.check_returncode()
    assert n_rows(os.path.join(out, "d")) > 5
    assert same_progress(os.path.join(out, "d"), os.path.join(out, "p"))
    shutil.rmtree(out, ignore_errors=True)


def test_bad_settings_raise_config_error():
    with pytest.raises(ConfigError, match="alpha"):
        dppo.Config(alpha=1.0)
    with pytest.raises(ConfigError, match="k_steps"):
        dppo.Config(k_steps=0)
    with pytest.raises(ConfigError, match="sync_every"):
        dppo.Config(sync_every=True)


def test_an_optional_setting_parses_to_its_annotated_type():
    """`--set k_steps=5` (notebook 06's switch to K-step returns) is the integer 5, not 5.0."""
    k = parse_value(dppo.Config, "k_steps", "5")
    assert k == 5 and isinstance(k, int) and dppo.Config(k_steps=k).k_steps == 5
    assert parse_value(dppo.Config, "k_steps", "None") is None
    assert parse_value(dppo.Config, "early_stop_kl", "0.01") == 0.01
    with pytest.raises(ConfigError, match="k_steps must be a whole number or none"):
        parse_value(dppo.Config, "k_steps", "five")


def train_mpi(seed, env, *args):
    out = tempfile.mkdtemp(prefix=f"rlref-dppo-learn-{env}-{seed}-")
    done = mpiexec(sys.executable, "-m", "rlref", "train", "dppo", "--env", env, "--seed", str(seed),
                   "--out", out, "--quiet", *args, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(os.path.join(out, "summary.json")) as f:
        summary = json.load(f)
    shutil.rmtree(out, ignore_errors=True)
    assert summary["workers"] == 2 and summary["total_steps"] >= summary["config"]["total_steps"]
    return summary["eval_return_mean"]


# Calibration (mpiexec -n 2, default Config, 100k env steps in total):
#   python scripts/calibrate.py dppo CartPole-v1 --seeds 11-30 --mpi 2 --jobs 1
#       -> 19 of 20 evaluate >= 475 (the miss: seed 25 at 401); all 20 reach a training mean of 475
#          (median at 57k steps). Per-seed failure rate ~0.05, below 0.24 at 95 % (Wilson). "1 of 3"
#          fails only if all three fail: 1.4e-2 at that upper end, 1.3e-4 at the point estimate (the
#          rule before, 4 of 5, 2 % at the point estimate and a third at the upper end), and a passing
#          test costs one two-worker run instead of four. It guards against DPPO no longer learning;
#          a partial regression is the calibration's to see.
#   python scripts/calibrate.py dppo Pendulum-v1 --seeds 11-22 --mpi 2 --jobs 1   (preset, 300k)
#       -> 12 of 12 evaluate >= -250 (median -153, worst -204), and unseen seeds 4101-4105 5 of 5
#          (worst -176): 0 misses in 17, so "1 of 2" fails with p^2 < 0.03 even at the 95 % upper
#          bound p = 0.16, and ~0 at the point estimate. (At 150k steps it was 9 of 10: not cheaper
#          safely, so the test keeps the preset's budget.) The test's Pendulum seeds are 4106-4107,
#          outside that calibration (they were 4101-4102, two of its seeds).
# Two workers run on two cores, one seed at a time, and each rule stops once decided (helpers.decide:
# the verdict of all its seeds): 1 CartPole run and 1 Pendulum run when all pass.
def two_worker_rule(seeds, k, threshold, env):
    verdict, evals = decide(seeds, k, lambda e: e >= threshold, lambda wave: [train_mpi(s, env) for s in wave])
    assert verdict, (env, evals)


@needs_mpi
@pytest.mark.slow
def test_two_workers_solve_cartpole():
    two_worker_rule([4001, 4002, 4003], 1, 475, "CartPole-v1")


@needs_mpi
@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason=LONG_REASON)
def test_two_workers_learn_pendulum():
    two_worker_rule([4106, 4107], 1, -250, "Pendulum-v1")
