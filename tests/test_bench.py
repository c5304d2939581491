"""`python -m rlref bench`: a tiny grid through the command line (table, figures, JSON), reuse of
finished runs, refusal of runs made with other settings, a failing child, --report-only, and the
Wilson interval the calibrations of issue 14 item 8 rely on."""
import json
import math
import os
import re
import shutil
import sys

import numpy as np
import pytest

from rlref.algos import ppo
from rlref.bench import child_command, existing_run, plan_run, planned_config, summaries
from rlref.benchreport import wilson_interval
from rlref.errors import ConfigError

from helpers import cli, read_progress

GRID = ("bench", "--algos", "ppo", "a2c", "--envs", "CartPole-v1", "--seeds", "2", "--steps", "2000", "--jobs", "2")
NAMES = [f"{a}-CartPole-v1-s{s}" for a in ("ppo", "a2c") for s in (1, 2)]


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("bench") / "grid")
    done = cli(*GRID, "--out", out)
    assert done.returncode == 0, done.stderr
    return out, done


def run_files(out):
    """{path: mtime_ns} of every file under out/runs (what a rerun must leave alone)."""
    found = {}
    for root, _, files in os.walk(os.path.join(out, "runs")):
        for name in files:
            path = os.path.join(root, name)
            found[path] = os.stat(path).st_mtime_ns
    return found


def table_row(markdown, algo, env):
    line = next(line for line in markdown.splitlines() if line.startswith(f"| {algo} | {env} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_grid_writes_the_table_figures_and_json(grid):
    out, done = grid
    with open(os.path.join(out, "results.md")) as f:
        md = f.read()
    assert md.strip() in done.stdout                                       # printed at the end too
    assert f"Made by: `python -m rlref {' '.join(GRID[:8])} --first-seed 1 {' '.join(GRID[8:])} --out {out}`" in md
    with open(os.path.join(out, "results.json")) as f:
        results = json.load(f)
    for algo in ("ppo", "a2c"):
        # the numbers recomputed here from the run directories themselves
        final, evals = [], []
        for seed in (1, 2):
            run_dir = os.path.join(out, "runs", f"{algo}-CartPole-v1-s{seed}")
            with open(os.path.join(run_dir, "config.json")) as f:
                config = json.load(f)
            assert (config["algorithm"], config["seed"], config["total_steps"]) == (algo, seed, 2000)
            final.append(read_progress(run_dir)["return_mean"][-1])
            with open(os.path.join(run_dir, "summary.json")) as f:
                evals.append(json.load(f)["eval_return_mean"])
        mean, std = sum(final) / 2, math.sqrt(sum((x - sum(final) / 2) ** 2 for x in final) / 1)  # ddof 1
        cells = table_row(md, algo, "CartPole-v1")
        assert cells[2:4] == ["2,000", "2"]
        assert cells[4] == f"{mean:.1f} +- {std:.1f}"
        assert cells[5].startswith(f"{np.mean(evals):.1f} +- ")
        reached = sum(e >= 475 for e in evals)
        assert cells[6] == f"{reached} of 2 >= 475"
        row = next(r for r in results["rows"] if r["algo"] == algo)
        assert row["train_mean"] == pytest.approx(mean, rel=1e-12) and row["train_std"] == pytest.approx(std, rel=1e-12)
        assert row["failure_interval"] == pytest.approx(list(wilson_interval(2 - reached, 2)))
        with open(os.path.join(out, "figures", f"{algo}-CartPole-v1.png"), "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
        # the figure's curve: both seeds' return_mean on the steps where both have it
        curves = []
        for seed in (1, 2):
            p = read_progress(os.path.join(out, "runs", f"{algo}-CartPole-v1-s{seed}"))
            rows = [(x, y) for x, y in zip(p["env_steps"], p["return_mean"]) if not math.isnan(y)]   # episodes ended
            curves.append(([x for x, _ in rows], [y for _, y in rows]))
        steps = np.array(row["curve"]["steps"])
        assert steps[0] == max(c[0][0] for c in curves) and steps[-1] == min(c[0][-1] for c in curves)
        Y = np.array([np.interp(steps, *c) for c in curves])
        assert np.allclose(row["curve"]["mean"], Y.mean(axis=0)) and np.allclose(row["curve"]["min"], Y.min(axis=0))
        assert np.allclose(row["curve"]["max"], Y.max(axis=0)) and row["curve"]["path"].endswith(f"{algo}-CartPole-v1.png")
    assert sorted(r["name"] for r in results["runs"]) == sorted(NAMES)
    assert all(r["status"] == "done" for r in results["runs"])


def test_rerun_reuses_finished_runs(grid):
    out, _ = grid
    before = run_files(out)
    done = cli(*GRID, "--out", out)
    assert done.returncode == 0, done.stderr
    assert run_files(out) == before                      # no run was written again
    assert done.stdout.count("(reused)") == 4


def test_run_with_other_settings_is_refused(grid):
    out, _ = grid
    before = run_files(out)
    done = cli(*GRID[:-4], "--steps", "3000", "--jobs", "2", "--out", out)
    assert done.returncode == 2
    assert "BenchMismatchError" in done.stderr and "total_steps: 2000 there, 3000 here" in done.stderr
    assert "nothing was run" in done.stderr
    assert run_files(out) == before


def test_failing_child_is_reported_and_the_grid_goes_on(tmp_path):
    out = str(tmp_path / "mixed")
    # FrozenLake is a known id (an unknown one is refused before anything runs) whose observations
    # rlref cannot take: its child fails
    done = cli("bench", "--algos", "ppo", "--envs", "FrozenLake-v1", "CartPole-v1", "--seeds", "1", "--steps", "2000",
               "--jobs", "1", "--out", out)                      # one at a time: the failure comes first
    assert done.returncode == 1, done.stderr
    assert re.search(r"ppo-FrozenLake-v1-s1 failed: .*UnsupportedSpaceError", done.stderr)
    assert table_row(done.stdout, "ppo", "FrozenLake-v1")[3] == "0 of 1 (1 failed)"
    assert table_row(done.stdout, "ppo", "CartPole-v1")[3] == "1"
    assert os.path.isfile(os.path.join(out, "runs", "ppo-CartPole-v1-s1", "summary.json"))


def test_scripts_get_every_summary_or_the_names_of_the_runs_that_failed(tmp_path):
    """bench.summaries: what scripts/calibrate.py and the other many-seed scripts read."""
    good = [plan_run("ppo", "CartPole-v1", seed, str(tmp_path / f"s{seed}"), 600, ["eval_episodes=2"]) for seed in (1, 2)]
    got = summaries(good, 2, str(tmp_path / "logs"))
    assert [(s["seed"], s["config"]["total_steps"], s["eval_episodes"]) for s in got] == [(1, 600, 2), (2, 600, 2)]
    again = plan_run("ppo", "CartPole-v1", 1, str(tmp_path / "s1"), 600, ["eval_episodes=2"])      # finished: reused
    bad = plan_run("ppo", "FrozenLake-v1", 1, str(tmp_path / "bad"), 600)          # its child fails
    assert again["action"] == "reuse"
    with pytest.raises(RuntimeError, match=r"1 of 2 runs did not finish .*: bad: .*UnsupportedSpaceError"):
        summaries([again, bad], 2, str(tmp_path / "logs"))


def test_report_only_rebuilds_without_running(grid, tmp_path):
    out = str(tmp_path / "copy")
    shutil.copytree(grid[0], out)
    with open(os.path.join(out, "results.md")) as f:
        original = f.read()
    for name in ("results.md", "results.json"):
        os.remove(os.path.join(out, name))
    shutil.rmtree(os.path.join(out, "figures"))
    before = run_files(out)
    done = cli("bench", "--out", out, "--report-only")
    assert done.returncode == 0, done.stderr
    assert run_files(out) == before
    with open(os.path.join(out, "results.md")) as f:
        rebuilt = f.read()
    assert "--report-only`" in rebuilt and "from the runs of: `python -m rlref bench --algos ppo a2c" in rebuilt
    tables = [[line for line in text.splitlines() if line.startswith("| ")] for text in (original, rebuilt)]
    assert tables[0] == tables[1]
    assert sorted(os.listdir(os.path.join(out, "figures"))) == ["a2c-CartPole-v1.png", "ppo-CartPole-v1.png"]


def test_what_an_existing_run_directory_gets(tmp_path):
    """Finished: reused; checkpoint without summary: train --resume; config.json alone (died before
    its first checkpoint): started again with --overwrite; other settings: the differences."""
    expected = planned_config("ppo", "CartPole-v1", 3, 2000, ["lr=0.001"])
    assert expected["lr"] == 0.001 and expected["total_steps"] == 2000
    assert expected["hidden"] == list(ppo.Config().hidden)          # the default tuple, as JSON stores it
    run_dir = str(tmp_path / "run")
    assert existing_run(run_dir, expected) == ("new", [])
    os.makedirs(os.path.join(run_dir, "checkpoint"))
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        json.dump(expected, f)
    run = plan_run("ppo", "CartPole-v1", 3, run_dir, 2000, ["lr=0.001"])
    assert (run["action"], run["differences"], run["config"]) == ("resume", [], expected)
    assert child_command(run)[1:] == ["-m", "rlref", "train", "--resume", run_dir, "--quiet"]
    os.rmdir(os.path.join(run_dir, "checkpoint"))
    assert existing_run(run_dir, expected) == ("restart", [])
    assert child_command({**run, "action": "restart"})[1:] == [
        "-m", "rlref", "train", "ppo", "--env", "CartPole-v1", "--seed", "3", "--total-steps", "2000",
        "--set", "lr=0.001", "--out", run_dir, "--quiet", "--overwrite"]
    two = plan_run("dppo", "CartPole-v1", 3, str(tmp_path / "d"), workers=2)      # under mpiexec -n 2
    assert child_command(two)[1:3] == ["-n", "2"] and child_command(two)[3:6] == [sys.executable, "-m", "rlref"]
    open(os.path.join(run_dir, "summary.json"), "w").close()
    assert existing_run(run_dir, expected) == ("reuse", [])
    assert existing_run(run_dir, {**expected, "lr": 0.01})[1] == ["lr: 0.001 there, 0.01 here"]


def wilson_by_roots(k, n, z=1.959963984540054):
    """The Wilson interval as the two roots p of (k/n - p)^2 = z^2 p (1 - p) / n, the set of rates
    p whose score test at level 5 % does not reject k of n."""
    p_hat = k / n
    roots = np.roots([1 + z * z / n, -(2 * p_hat + z * z / n), p_hat * p_hat])
    return tuple(sorted(float(r.real) for r in roots))


@pytest.mark.parametrize("k, n", [(0, 30), (1, 30), (3, 30), (15, 30), (30, 30), (1, 10), (7, 11), (2, 3)])
def test_wilson_interval_matches_the_roots_of_the_score_test(k, n):
    assert wilson_interval(k, n) == pytest.approx(wilson_by_roots(k, n), abs=1e-9)


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(0, 30)
    assert lo == 0.0 and hi == pytest.approx(0.1135, abs=1e-4)       # 0 failures of 30: still up to 11 %
    assert wilson_interval(1, 10) == pytest.approx((0.0179, 0.4042), abs=1e-4)   # Newcombe (1998), table I
    assert wilson_interval(10, 10)[0] == pytest.approx(10 / (10 + 1.959963984540054 ** 2))
    for k, n in ((3, 7), (0, 1)):
        lo, hi = wilson_interval(k, n)
        assert 0 <= lo <= k / n <= hi <= 1
    with pytest.raises(ConfigError, match="k must be an integer in"):
        wilson_interval(4, 3)
    with pytest.raises(ConfigError, match="n must be an integer in"):
        wilson_interval(0, 0)


def test_run_names_are_one_portable_folder_name():
    from rlref.bench import run_name
    assert run_name("ppo", "CartPole-v1", 3) == "ppo-CartPole-v1-s3"
    assert run_name("ppo", "tests.tiny_env:Tiny-v0", 1) == "ppo-tests.tiny_env_Tiny-v0-s1"     # no ':' (Windows)
    assert run_name("ppo", "ALE/Pong-v5", 1) == "ppo-ALE_Pong-v5-s1"                         # one folder, not two
