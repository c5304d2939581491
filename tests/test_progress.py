"""What a run shows (rlref/progress.py): the header names the settings that run (a preset, or none
and the CartPole defaults instead), the bar or the plain lines, --verbose and --quiet, no `nan` on
screen, one window for return_mean and length_mean, the closing summary, and one clear line when
an update overflows."""
import io
import re
import sys
from types import SimpleNamespace

import numpy as np

from helpers import cli, read_progress
from test_dppo import mpiexec, needs_mpi
from rlref import progress
from rlref.algos import ppo
from rlref.progress import fmt, settings_line
from rlref.train import train


def test_the_header_says_which_settings_run():
    module = SimpleNamespace(__name__="rlref.algos.ppo", Config=ppo.Config,
                             PRESETS={"Pendulum-v1": {"lr": 1e-3, "epochs": 10}})
    assert settings_line(module, ppo.Config()) == "settings: the defaults (calibrated for CartPole-v1)"
    assert settings_line(module, ppo.Config(env="Pendulum-v1", lr=1e-3, epochs=10)) == \
        "settings: the preset for Pendulum-v1"
    line = settings_line(module, ppo.Config(env="Pendulum-v1", lr=5e-4, epochs=10, hidden=(32, 32),
                                            normalize_obs=True, seed=3, total_steps=7))
    assert line == "settings: the preset for Pendulum-v1; changed: hidden=32,32 lr=0.0005 normalize_obs=true"
    none = settings_line(module, ppo.Config(env="Acrobot-v1"))
    assert none.startswith("settings: no preset for Acrobot-v1: the defaults, calibrated for CartPole-v1, run instead")
    assert "the PRESETS of rlref/algos/ppo.py list the envs it has settings for" in none


def test_a_value_not_defined_yet_is_a_dash_as_wide_as_a_number():
    assert fmt(float("nan"), "9.2f") == " " * 8 + "-" and fmt(None) == "-" and fmt(12.345, "9.2f") == "    12.35"


def test_return_and_length_average_the_same_episodes(tmp_path):
    """On CartPole every step pays 1, so an episode's return is its length: the two columns agree on
    every row when they average the same 20 episodes (they did not when length_mean averaged the
    last batch's episodes only)."""
    train("ppo", ppo.Config(total_steps=6000, eval_episodes=1), str(tmp_path), quiet=True)
    p = read_progress(tmp_path)
    assert np.isnan(p["return_mean"][0]) and np.isnan(p["length_mean"][0])
    assert np.allclose(p["return_mean"][1:], p["length_mean"][1:], rtol=1e-12)


def test_verbose_prints_a_line_per_iteration_and_no_nan(tmp_path):
    done = cli("train", "ppo", "--total-steps", "1536", "--set", "eval_episodes=2", "--out", str(tmp_path), "--verbose")
    assert done.returncode == 0, done.stderr
    rows = len(read_progress(tmp_path)["iteration"])
    lines = [line for line in done.stdout.splitlines() if line.startswith("it ")]
    assert len(lines) == rows and "return         -" in lines[0]
    assert "nan" not in (done.stdout + done.stderr).lower()
    header = done.stderr.splitlines()
    assert header[0].startswith("ppo on CartPole-v1, seed 0: 1,536 env steps") and str(tmp_path) in header[0]
    assert header[1] == "settings: the defaults (calibrated for CartPole-v1); changed: eval_episodes=2"


def test_quiet_prints_only_the_summary_and_the_summary_says_it_all(tmp_path):
    done = cli("train", "ppo", "--total-steps", "1536", "--set", "eval_episodes=2", "--out", str(tmp_path), "--quiet")
    assert done.returncode == 0 and done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("ppo on CartPole-v1, seed 0: ") and " env steps in " in lines[0]
    assert lines[1].strip().startswith(("solved at", "not solved (return_mean never reached 475)"))
    assert lines[2].strip().startswith("evaluation: ") and "over 2 deterministic episodes (threshold 475)" in lines[2]
    assert lines[3].strip() == "health: nothing looked unhealthy" and str(tmp_path) in lines[4]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_terminal_gets_a_bar_over_env_steps_and_a_pipe_gets_a_plain_line(tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "BAR_EVERY_S", 0.0)
    monkeypatch.setattr(sys, "stderr", Terminal())
    train("ppo", ppo.Config(total_steps=1536, eval_episodes=1), str(tmp_path / "tty"))
    shown = sys.stderr.getvalue()
    assert "/1.54k [" in shown and "return" in shown and " kl " in shown and "nan" not in shown
    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.0)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    train("ppo", ppo.Config(total_steps=1536, eval_episodes=1), str(tmp_path / "pipe"))
    plain = re.compile(r"[\d,]+/1,536 env steps \(\d+%\), \d+ s, about (\d+|-) s left; return +(-|[\d.]+)  kl ")
    lines = [line for line in sys.stderr.getvalue().splitlines() if plain.match(line)]
    assert len(lines) == len(read_progress(tmp_path / "pipe")["iteration"]) and "nan" not in sys.stderr.getvalue()


def test_an_overflowing_update_ends_in_one_line_that_names_the_setting(tmp_path):
    done = cli("train", "ppo", "--env", "Pendulum-v1", "--set", "lr=1e6", "--total-steps", "5000", "--quiet",
               "--out", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "RuntimeWarning" not in done.stderr, done.stderr
    assert done.stderr.startswith("error: NonFiniteError: ")
    assert "lower lr (now 1e+06), e.g. --set lr=100000" in done.stderr


def test_a_resumed_run_does_not_repeat_what_its_health_checks_already_said(tmp_path, capsys):
    """Display reads the rows a resumed run had logged first, silently: a warning said before the
    stop is not said again, and it is still in the findings summary.json keeps."""
    run = SimpleNamespace(config=ppo.Config(lr=1e6), threshold=475.0,
                          spaces=SimpleNamespace(gaussian=False, act_dim=2), env_steps=1280, note="resuming", algo="ppo", module=ppo, T=8, episodic=False,
                          workers=SimpleNamespace(size=1), n_iterations=lambda: 100)
    sick = [{"iteration": i, "env_steps": 128 * i, "return_mean": 9.0, "entropy": 0.0, "kl": 0.0}
            for i in range(1, 12)]
    screen = progress.Display(run, str(tmp_path), earlier=sick[:10])
    screen.row(sick[10])
    screen.close(sick[10])
    assert "warning:" not in capsys.readouterr().err
    assert [line.split(":")[0] for line in screen.health()] == ["from iteration 1 (128 env steps)"]
    fresh = progress.Display(run, str(tmp_path))                    # the same rows, seen live, are said
    for row in sick:
        fresh.row(row)
    assert capsys.readouterr().err.count("warning: from iteration 1 (128 env steps): entropy collapsed") == 1


@needs_mpi
def test_a_distributed_run_shows_one_display_rank_0s(tmp_path):
    done = mpiexec(sys.executable, "-m", "rlref", "train", "dppo", "--total-steps", "3000", "--set", "lr=1e6",
                   "--set", "eval_episodes=2", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.count("dppo on CartPole-v1, seed 0: 3,000 env steps (~6 iterations of 8 envs x 32 steps "
                             "on each of 2 workers)") == 1
    assert done.stderr.count("warning: from iteration 1 ") == 1 and done.stdout.count("dppo on CartPole-v1") == 1
