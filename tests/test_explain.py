"""The health checks (rlref/health.py) and the column table (rlref/columns.py) behind
`python -m rlref explain`: each rule fires on a planted pathology, once, from where it began, and
stays silent on a healthy log and just short of its streak; real runs with lr = 1e6 are flagged
during training and by explain, a default PPO run on CartPole is not."""
import json
import math
import os

import numpy as np
import pytest

from helpers import ROOT, cli
from rlref.algos import ALGOS, algo_module, ppo
from rlref.columns import BY_NAME, COLUMNS, markdown
from rlref.health import Watch, diagnose

N = 200


def healthy_rows(n=N):
    """A PPO CartPole log that learns: return and length rise to 500, entropy falls slowly from
    log 2, kl near its target, explained variance rising, a modest clip fraction."""
    t = np.linspace(0.0, 1.0, n)
    ret = 10.0 + 490.0 * t
    return [{"iteration": i + 1, "env_steps": 128 * (i + 1), "wall_s": 0.01 * i, "episodes": 5 * i,
             "return_mean": float("nan") if i == 0 else ret[i], "return_std": float("nan") if i == 0 else 5.0,
             "length_mean": float("nan") if i == 0 else ret[i], "loss_pi": -0.01, "loss_v": 3.0,
             "entropy": 0.69 - 0.5 * t[i], "kl": 0.01 + 0.005 * math.sin(i), "clip_frac": 0.15,
             "explained_var": -0.2 if i < 5 else 0.05 + 0.9 * t[i]} for i in range(n)]


def findings(rows, config=None, threshold=475.0, gaussian=False, act_dim=2):
    watch = Watch(config or ppo.Config(), threshold, gaussian, act_dim)
    for row in rows:
        watch.see(row)
    return watch.findings


def plant(rows, column, value, start, length):
    """rows with `column` set to value on iterations start .. start + length - 1 (1-based)."""
    out = [dict(r) for r in rows]
    for r in out[start - 1:start - 1 + length]:
        r[column] = value
    return out


def test_a_healthy_log_is_silent():
    assert findings(healthy_rows()) == []


@pytest.mark.parametrize("column, value, near, streak, rule", [
    ("entropy", 0.001, 0.0075, 5, "entropy_collapse"),       # 1% of log 2 = 0.00693
    ("kl", 0.2, 0.099, 10, "kl_far_above"),                  # 10 x kl_target = 0.1
    ("explained_var", -0.5, 0.001, 30, "critic_useless"),
    ("clip_frac", 0.9, 0.79, 5, "clip_saturated"),
    ("loss_v", float("inf"), 1e300, 1, "non_finite"),
])
def test_each_rule_fires_once_from_where_its_streak_began_and_not_before(column, value, near, streak, rule):
    start = 40
    assert findings(plant(healthy_rows(), column, near, start, 3 * streak)) == []      # just inside the range
    flagged = findings(plant(healthy_rows(), column, value, start, streak + 20))
    assert [(f.rule, f.iteration, f.env_steps) for f in flagged] == [(rule, start, 128 * start)]
    if streak > 1:
        assert findings(plant(healthy_rows(), column, value, start, streak - 1)) == []
    twice = plant(plant(healthy_rows(), column, value, start, streak), column, value, start + streak + 10, streak)
    assert [f.rule for f in findings(twice)] == [rule]                      # said once


def test_the_entropy_rule_needs_a_low_return_and_knows_the_gaussian_scale():
    solved_then_deterministic = plant(healthy_rows(), "entropy", 0.001, N - 9, 10)    # return above 475 there
    assert findings(solved_then_deterministic) == []
    assert findings(plant(healthy_rows(), "entropy", 0.001, 40, 20), threshold=None) == []   # low: unknown
    # a Gaussian's entropy is D (log_std + log(2 pi e) / 2): 1.42 per dimension at log_std 0; the rule
    # asks for log(100) = 4.6 nats per dimension below that, so -2 is healthy and -3.5 collapsed (D = 1)
    gaussian = [dict(r, entropy=1.4) for r in healthy_rows()]
    assert findings(plant(gaussian, "entropy", -2.0, 40, 20), gaussian=True, act_dim=1) == []
    assert [f.rule for f in findings(plant(gaussian, "entropy", -3.5, 40, 20), gaussian=True, act_dim=1)] \
        == ["entropy_collapse"]


def test_the_kl_target_is_the_algorithms_own():
    """10 x PPO's kl_target is 0.1; TRPO's radius max_kl = 0.02 moves it to 0.2."""
    from rlref.algos import trpo
    rows = plant(healthy_rows(), "kl", 0.15, 40, 30)
    assert [f.rule for f in findings(rows)] == ["kl_far_above"]
    assert findings(rows, config=trpo.Config()) == []


def test_an_empty_return_or_explained_variance_is_not_called_non_finite():
    rows = plant(plant(healthy_rows(), "return_mean", float("nan"), 1, 10), "explained_var", float("nan"), 20, 3)
    assert findings(rows) == []


def test_the_messages_say_the_cause_and_the_setting_in_command_line_syntax():
    (f,) = findings(plant(healthy_rows(), "entropy", 0.0, 3, 10), config=ppo.Config(lr=1e6))
    assert "entropy collapsed" in f.text and "--set lr=100000" in f.text and "nan" not in f.text


def write_run(tmp_path, rows, algo="ppo", env="CartPole-v1"):
    config = {"algorithm": algo, **algo_module(algo).Config(env=env).to_dict()}
    (tmp_path / "config.json").write_text(json.dumps(config))
    names = list(rows[0])
    lines = [",".join(names)] + [",".join(repr(float(r[k])) if k != "iteration" else str(r[k]) for k in names)
                                 for r in rows]
    (tmp_path / "progress.csv").write_text("\n".join(lines).replace("nan", "") + "\n")
    return str(tmp_path)


def test_explain_reads_a_run_directory(tmp_path):
    sick = write_run(tmp_path, plant(healthy_rows(), "clip_frac", 0.95, 60, 8))
    assert [(f.rule, f.iteration) for f in diagnose(sick)[0]] == [("clip_saturated", 60)]
    done = cli("explain", sick)
    assert done.returncode == 0 and "from iteration 60 (7680 env steps)" in done.stdout and "clip_frac" in done.stdout


def test_explain_prints_the_table_a_column_and_refuses_anything_else():
    table = cli("explain")
    assert table.returncode == 0 and all(f"\n{c.name} (" in "\n" + table.stdout for c in COLUMNS)
    one = cli("explain", "clip_frac")
    assert one.returncode == 0 and one.stdout.startswith("clip_frac (") and "PPO.1" in one.stdout
    assert len(one.stdout.strip().splitlines()) == 3
    bad = cli("explain", "clipfrac")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "'clipfrac'" in bad.stderr


def test_explain_on_a_folder_without_a_run_is_one_line(tmp_path):
    done = cli("explain", str(tmp_path))
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert done.stderr.startswith("error: ConfigError: ") and "config.json and progress.csv missing" in done.stderr


def test_docs_page_is_the_code_table():
    with open(os.path.join(ROOT, "docs", "run_columns.md")) as f:
        assert f.read() == markdown(), ("regenerate it: python -c 'from rlref.columns import markdown; "
                                        "print(markdown(), end=\"\")' > docs/run_columns.md")


def test_every_logged_column_is_documented(tmp_path):
    """One iteration of every algorithm (dppo as one worker) logs only columns the table has."""
    from rlref.train import train
    logged = set()
    for algo in ALGOS:
        config = algo_module(algo).Config(total_steps=1, eval_episodes=1, seed=1)
        train(algo, config, str(tmp_path / algo), quiet=True)
        with open(tmp_path / algo / "progress.csv") as f:
            logged |= set(f.readline().strip().split(","))
    assert logged - set(BY_NAME) == set()
    assert set(BY_NAME) - logged == set()                   # and the table has no column nobody logs


@pytest.mark.parametrize("algo", ["ppo", "a2c"])
def test_a_collapsed_run_is_flagged_while_it_trains_and_by_explain(tmp_path, algo):
    out = str(tmp_path / algo)
    done = cli("train", algo, "--set", "lr=1e6", "--total-steps", "3000", "--set", "eval_episodes=2", "--out", out)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning:") == 1 and "entropy collapsed" in done.stderr and "--set lr=" in done.stderr
    assert "1 warning(s)" in done.stdout
    assert "entropy collapsed" in cli("explain", out).stdout
    assert json.load(open(os.path.join(out, "summary.json")))["health"][0].startswith("from iteration ")


def test_a_default_ppo_run_on_cartpole_is_not_flagged(tmp_path):
    out = str(tmp_path / "ppo")
    done = cli("train", "ppo", "--seed", "1", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "warning:" not in done.stderr and "nothing looked unhealthy" in done.stdout
    assert "nothing looks unhealthy" in cli("explain", out).stdout
