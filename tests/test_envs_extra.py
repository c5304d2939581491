"""The optional envs (requirements-envs.txt): a short smoke run of each preset through the command
line (a few thousand steps: the code path works, nothing is learned), and the error without them."""
import json
import os

import gymnasium as gym
import numpy as np
import pytest

from helpers import read_progress
from rlref import cli
from rlref.errors import MissingDependencyError
from rlref.envs import make_envs

SMOKE = [("ppo", "Hopper-v5", "mujoco"), ("ppo", "HalfCheetah-v5", "mujoco"), ("ppo", "Walker2d-v5", "mujoco"),
         ("trpo", "Hopper-v5", "mujoco"), ("ppo", "LunarLander-v3", "Box2D"),
         ("ppo", "LunarLanderContinuous-v3", "Box2D")]


@pytest.mark.parametrize("algo, env, package", SMOKE)
def test_preset_runs_on_the_optional_env(algo, env, package, tmp_path, monkeypatch):
    pytest.importorskip(package, reason=f"{env} needs {package}: pip install -r requirements-envs.txt")
    monkeypatch.chdir(tmp_path)                         # MuJoCo writes MUJOCO_LOG.TXT into the working folder
    out = tmp_path / "run"
    assert cli.main(["train", algo, "--env", env, "--total-steps", "4096", "--set", "eval_episodes=2",
                     "--out", str(out), "--quiet"]) == 0
    steps = read_progress(out)["env_steps"]
    assert steps and steps[-1] >= 4096
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert np.isfinite(summary["eval_return_mean"]) and summary["config"]["total_steps"] == 4096
    assert os.path.isfile(out / "checkpoint" / "params.npz")


def test_a_missing_optional_package_is_named_with_the_install_line(monkeypatch, tmp_path, capsys):
    def no_mujoco(*args, **kwargs):
        raise gym.error.DependencyNotInstalled('MuJoCo is not installed, run `pip install "gymnasium[mujoco]"`')
    monkeypatch.setattr(gym, "make_vec", no_mujoco)
    with pytest.raises(MissingDependencyError, match=r"Hopper-v5 needs MuJoCo \(gymnasium\[mujoco\]\), which is "
                                                     r"not installed: pip install -r requirements-envs.txt"):
        make_envs("Hopper-v5", 1)
    assert cli.main(["train", "ppo", "--env", "LunarLander-v3", "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "error: MissingDependencyError: LunarLander-v3 needs Box2D (gymnasium[box2d])" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r")                  # nothing written: the same command works later
