"""Learning, measured: the real command line on real environments, seeds never used in tuning,
against the env's definition of solved (a deterministic 20-episode evaluation mean: >= 475 on
CartPole-v1, >= -100 on Acrobot-v1) or, for Pendulum-v1, which has none, the level named above each
test (-250 for PPO, -400 for TRPO and NPG, -600 for "improves clearly").

Each rule "at least k of n seeds" comes from a calibration with scripts/calibrate.py over many other
seeds (the comment above each test gives the command and the count) and is chosen so that a
correct implementation fails it with probability below about 1e-3 (binomial tail at the
calibrated per-seed failure rate). Runs are bitwise deterministic on one machine, so the risk is
only that another machine's floating point takes a seed down a different path. A rule stops running
seeds as soon as its verdict is known (k_of_n): the same verdict as running all n, for the CPU of
the seeds it needs, which for a rule "1 of n" met by its first seed is one run.
"""
from concurrent.futures import ThreadPoolExecutor
from math import comb

import pytest

from helpers import LONG, LONG_REASON, decide, read_progress, train_summary


def summaries(algo, seeds, *args, env="CartPole-v1"):
    with ThreadPoolExecutor(2) as pool:                      # two cores: two runs at a time
        return list(pool.map(lambda s: train_summary(algo, s, *args, env=env), seeds))


def k_of_n(algo, seeds, k, threshold, *args, env="CartPole-v1"):
    """decide() on the deterministic evaluation reaching threshold; the runs' summaries, and the
    evaluations as the message of a failed rule."""
    verdict, runs = decide(seeds, k, lambda s: s["eval_return_mean"] >= threshold,
                           lambda wave: summaries(algo, wave, *args, env=env))
    return verdict, runs, [s["eval_return_mean"] for s in runs]


@pytest.mark.parametrize("n", range(1, 7))
def test_a_rule_decided_early_gives_the_verdict_of_all_seeds(n):
    for k in range(1, n + 1):
        for pattern in range(2 ** n):
            ok = [bool(pattern >> i & 1) for i in range(n)]                     # seed i passes
            waves = []
            verdict, done = decide(list(range(n)), k, lambda i: ok[i], lambda wave: waves.append(wave) or wave)
            assert verdict == (sum(ok) >= k) and done == list(range(len(done)))   # a prefix, in order
            assert all(1 <= len(w) <= 2 for w in waves)
            before = done[:len(done) - len(waves[-1])] if waves else []           # undecided before the last wave
            assert sum(ok[i] for i in before) < k and len(before) - sum(ok[i] for i in before) <= n - k
    verdict, done = decide([7, 8, 9, 10], 1, lambda i: True, lambda wave: wave)
    assert verdict and done == [7]                                                # 1 of 4: one run
    assert decide([7, 8, 9], 3, lambda i: i != 7, lambda wave: wave) == (False, [7, 8])   # 3 of 3: 9 never runs


def tail(n, k, p_fail):
    """P(fewer than k of n seeds pass) when each fails independently with probability p_fail."""
    return sum(comb(n, j) * (1 - p_fail) ** j * p_fail ** (n - j) for j in range(k))


def test_binomial_tail_of_the_rules():
    assert tail(5, 4, 0.0) == 0.0 and abs(tail(1, 1, 0.25) - 0.25) < 1e-15
    assert tail(6, 3, 0.10) < 2e-3 and tail(5, 4, 0.02) < 1e-2
    assert tail(5, 3, 0.05) < 2e-3 and tail(2, 1, 0.03) < 1e-3
    assert tail(10, 5, 0.114) < 1e-3 and tail(5, 4, 0.114) > 0.1          # PPO CartPole's rule and why
    assert tail(5, 1, 0.236) < 1e-3 and tail(4, 1, 0.167) < 1e-3           # PPO Acrobot's, TRPO Pendulum's
    assert tail(6, 2, 0.185) < 1.2e-3 and tail(6, 3, 0.185) > 1e-2        # A2C CartPole's rule and why
    assert tail(6, 1, 0.278) < 5e-4 < 1e-3 < tail(5, 1, 0.278)            # 0 misses in 10: 1 of 6, not of 5
    assert tail(3, 1, 0.129) < 2.2e-3 < 1.6e-2 < tail(5, 3, 0.129)        # PPO Pendulum's rule and the one before
    assert tail(3, 2, 0.071) < 1.5e-2 < 3e-2 < tail(5, 4, 0.071)          # TRPO CartPole's rule and the one before
    assert tail(3, 1, 0.24) < 1.4e-2 < 0.3 < tail(5, 4, 0.24)             # DPPO CartPole's (tests/test_dppo.py), same


# Calibration: python scripts/calibrate.py a2c CartPole-v1 --seeds 11-70 (default config, 200k
# steps): 55 of 60 seeds evaluate >= 475, and all 60 reach a training mean of 475; then --seeds 71-80
# --jobs 1: 10 of 10 evaluate at 500, every training mean at the end >= 475; the notebooks' seed curves
# (seeds 301-305, figures/seed_curves.json): 4 of 5, the miss (304) solved at 33k steps and drifted
# to a training mean of 116 and an evaluation of 119 by the end. On another machine 5 unseen seeds
# all reached a training mean of 475 but 2 evaluated at 118 and 273 (issue 22). Pooled: 8 evaluation
# misses in 80, 95 % Wilson interval [0.052, 0.185]. Rule 2 of 6: P(fail) 1.1e-3 at the upper end
# (3 of 6, the rule before, 1.3e-2 there).
@pytest.mark.slow
def test_a2c_solves_cartpole():
    verdict, _, evals = k_of_n("a2c", [2001, 2002, 2003, 2004, 2005, 2006], 2, 475)
    assert verdict, evals


# Calibration: python scripts/calibrate.py ppo CartPole-v1 --seeds 81-110 (default config: one hidden
# layer of 32, 16 envs x 8 steps, lr 2e-2, 100k steps; seeds 11-50 chose those defaults): all 30
# evaluate at 500 and reach a training mean of 475 (median 32.3k steps). Failure rate 0 of 30, 95 %
# Wilson interval [0, 0.114]. CI asks 5 of 10 (about a second a seed): P(fail) ~3e-4 at the
# interval's upper end. (The previous defaults, two layers of 32 and 16 x 16 at lr 1e-2: 28 of 30
# on seeds 51-80; the 8 x 32 / 5e-3 defaults before them: 26 of 30 on seeds 11-40.)
@pytest.mark.slow
def test_ppo_solves_cartpole():
    verdict, _, evals = k_of_n("ppo", list(range(3001, 3011)), 5, 475)
    assert verdict, evals


# Calibration: the Pendulum-v1 presets of REINFORCE and A2C (1.5M steps), tuned on seeds 901-910,
# then python scripts/calibrate.py reinforce|a2c Pendulum-v1 --seeds 11-16 and seeds 951-953: every
# one of the 19 runs per algorithm rose from about -1200 to a training mean of -200; on the 9
# unseen seeds the evaluation was at worst -230 (REINFORCE) and -433 (A2C). "Improves clearly" is
# asked as an evaluation >= -600 in at least 1 of 2 seeds (a random policy scores about -1200).
# On request only (RLREF_LONG_TESTS=1, tests/helpers.py): one 1.5M-step run each is 100-120 s of
# CPU. The budget cannot simply shrink: at 800k steps these seeds evaluated at -912 (REINFORCE
# 1201) and -696 (A2C 2201).
@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason=LONG_REASON)
@pytest.mark.parametrize("algo, seeds", [("reinforce", [1201, 1202]), ("a2c", [2201, 2202])])
def test_reinforce_and_a2c_improve_pendulum_clearly(algo, seeds):
    verdict, _, evals = k_of_n(algo, seeds, 1, -600, env="Pendulum-v1")
    assert verdict, evals


# Calibration: python scripts/calibrate.py ppo Pendulum-v1 --seeds 11-20,3101-3111 --threshold -250
# (preset, 200k steps, within the 300k): 21 of 21 evaluate >= -250 (median -152, worst
# -203), and the 5 ablation seeds 201-205 all >= -166 (an earlier commit's run: 20 of 21, one miss
# at -251.5). 0 misses in 26: per-seed failure rate below 0.129 at 95 % (Wilson). CI asks 1 of 3:
# a false alarm needs all three to fail, 2.1e-3 at that upper end (the rule before, 3 of 5, 1.7e-2
# there), and a passing run costs one 200k-step run instead of three (70 s of CI's CPU). What it
# gives up is power against a partial regression (a failure rate of 1/2 shows with probability 1/8):
# this test guards against PPO no longer learning a continuous task; rates are the calibration's job.
@pytest.mark.slow
def test_ppo_learns_pendulum():
    verdict, _, evals = k_of_n("ppo", [3301, 3302, 3303], 1, -250, env="Pendulum-v1")
    assert verdict, evals


# Calibration of the Acrobot-v1 preset (200k steps, scaled rewards, entropy bonus 0.01):
# python scripts/calibrate.py ppo Acrobot-v1 --seeds 1341-1350 --jobs 1 (then --seeds 1351-1360):
# 19 of 20 evaluate >= -100 (median -83; the miss, seed 1353, at -101.9), every run reached a
# training mean of -100 (median at 26k steps), none ended at -500. 1 miss in 20: 95 % Wilson
# interval [0.009, 0.236]; rule 1 of 5 fails with probability p^5, 7e-4 at the upper end. The
# preset before (no reward scaling, no entropy bonus): 39 of 41 here (two runs stuck at -500 once
# the policy turned deterministic before finding the goal: seeds 1320 and 1322, which the new preset
# solves), but 6 of 9 on unseen seeds on two other machines (issue 22): a rate measured here may
# be lower elsewhere.
@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason=LONG_REASON)
def test_ppo_solves_acrobot():
    verdict, _, evals = k_of_n("ppo", [3401, 3402, 3403, 3404, 3405], 1, -100, env="Acrobot-v1")
    assert verdict, evals


# Calibration: the TRPO Pendulum-v1 preset (200k steps, gamma 0.9, 100 evaluation episodes), chosen on
# seeds 1701-1730 (gamma 0.95: 26 of 30 >= -400; 0.9: 29; 0.9 with normalized observations: 11), then
# python scripts/calibrate.py trpo Pendulum-v1 --seeds 1801-1830 --jobs 1: 29 of 30 >= -400 (the miss:
# -685, a policy that swings up from some starts only), 28 >= -250, 22 >= -200; every run reached a
# training mean of -200. Failure rate (-400) 1 of 30, 95 % Wilson interval [0.006, 0.167]: rule 1 of
# 4 fails with probability p^4, 8e-4 at the upper end.
@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason=LONG_REASON)
def test_trpo_learns_pendulum():
    verdict, _, evals = k_of_n("trpo", [3501, 3502, 3503, 3504], 1, -400, env="Pendulum-v1")
    assert verdict, evals


# Calibration: the NPG Pendulum-v1 preset (TRPO's: 200k steps, gamma 0.9, 100 evaluation episodes),
# tuned on seeds 901-905, then python scripts/calibrate.py npg Pendulum-v1 --seeds 1901-1910 --jobs 1:
# 10 of 10 >= -250 (median -221, worst -245), 1 >= -200; every run reached a training mean of -200
# (median at 156k steps). As TRPO's test, asked at -400: 0 misses in 10, 95 % Wilson interval
# [0, 0.278]; rule 1 of 6 fails with probability p^6, 5e-4 at the upper end (one run when it passes).
@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason=LONG_REASON)
def test_npg_learns_pendulum():
    verdict, runs, evals = k_of_n("npg", [3601, 3602, 3603, 3604, 3605, 3606], 1, -400, env="Pendulum-v1")
    assert all(s["config"]["gamma"] == 0.9 and s["eval_episodes"] == 100 for s in runs)   # the preset ran
    assert verdict, evals


# Calibration (the defaults of npg.Config but 100k steps, a third of the default budget):
#   python scripts/calibrate.py npg CartPole-v1 --seeds 11-30 --total-steps 100000 --jobs 1
#   python scripts/calibrate.py npg CartPole-v1 --seeds 31-70 --total-steps 100000 --jobs 1
#       -> 60 of 60 seeds reach eval >= 475 (every one 500.0); median solved_at 52k steps.
# (300k steps, seeds 11-30: 20 of 20.) The defaults were tuned on seeds 101-110 only. With 0
# failures in 60 runs, the uniform-prior posterior for the per-seed failure rate (Beta(1, 61))
# gives P(2 or more of 5 fail) = 0.5 %, and every calibration run ended at 500, far from 475.
@pytest.mark.slow
def test_npg_solves_cartpole():
    verdict, runs, evals = k_of_n("npg", [1001, 1002, 1003, 1004, 1005], 4, 475, "--total-steps", "100000")
    assert all(s["algorithm"] == "npg" and s["config"]["hidden"] == [32] for s in runs)
    assert verdict, evals


# Calibration: python scripts/calibrate.py trpo CartPole-v1 --seeds 11-30 --total-steps 150000 --jobs 1
# (and --seeds 31-60), default Config but 150k steps (the default is 100k: docs/results.md has both):
# the deterministic evaluation reached 475 in 50 of 50 seeds, every one at 500.0; solved in training
# after 26k-59k steps (median 32k). ">= 2 of 3" fails only if 2 of 3 seeds fail, with
# probability ~3 p^2: < 1.5 % at the 95 % upper bound p = 0.071 (Wilson, 0 of 50), where the rule
# before, 4 of 5, failed with 4 %; a passing test costs two runs instead of four.
@pytest.mark.slow
def test_trpo_solves_cartpole_inside_its_trust_region():
    verdict, runs, evals = k_of_n("trpo", [901, 902, 903], 2, 475, "--total-steps", "150000")
    for s in runs:     # never past the trust region: neither the configured nor the annealed radius
        p = read_progress(s["run_dir"])
        assert all(kl <= max_kl <= s["config"]["max_kl"] for kl, max_kl in zip(p["kl"], p["max_kl"]))
    assert verdict, evals
