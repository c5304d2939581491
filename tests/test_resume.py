"""Long runs survive: periodic checkpoints, SIGINT / SIGTERM stop cleanly, and --resume continues a
run exactly (bitwise for classic-control envs, deterministically for the others)."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np
import pytest

from helpers import ENV, n_rows, same_progress
from rlref import checkpoint, cli
from rlref import train as train_module
from rlref.errors import CheckpointError, RunDirectoryError
from rlref.train import algo_module, resume, train


def _config(algo, env, total_steps, **extra):
    module = algo_module(algo)
    return module.Config(**{**getattr(module, "PRESETS", {}).get(env, {}), "env": env, "seed": 11,
                            "total_steps": total_steps, **extra})


def _stop_during_update(monkeypatch, algo, at_call, action):
    """Make the at_call-th update of `algo` do `action()` first (send a signal, raise, ...)."""
    module, calls = algo_module(algo), [0]
    original = module.update

    def update(*args, **kwargs):
        calls[0] += 1
        if calls[0] == at_call:
            action()
        return original(*args, **kwargs)
    monkeypatch.setattr(module, "update", update)


def _params(run_dir):
    with np.load(os.path.join(run_dir, "checkpoint", "params.npz")) as data:
        return {k: data[k] for k in data.files}


def _assert_same_run(a, b):
    assert same_progress(a, b)
    pa, pb = _params(a), _params(b)
    assert pa.keys() == pb.keys()
    for key in pa:
        np.testing.assert_array_equal(pa[key], pb[key], err_msg=key)
    sa, sb = (json.load(open(os.path.join(d, "summary.json"))) for d in (a, b))
    assert (sa["eval_return_mean"], sa["solved_at_steps"]) == (sb["eval_return_mean"], sb["solved_at_steps"])


# PPO on CartPole (the vectorized env), PPO on Pendulum (a sync vector env, normalized observations,
# scaled rewards: the running discounted return is part of the state), REINFORCE (whole episodes),
# DPPO as one worker (two: tests/test_dppo.py, under mpiexec).
@pytest.mark.parametrize("algo, env, steps, at", [("ppo", "CartPole-v1", 12_000, 9),
                                                  ("ppo", "Pendulum-v1", 16_384, 4),
                                                  ("reinforce", "CartPole-v1", 6_000, 3),
                                                  ("dppo", "CartPole-v1", 6_000, 5)])
def test_stopped_and_resumed_run_is_bitwise_the_straight_run(algo, env, steps, at, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "mpi4py", None)     # dppo: one worker, and no MPI in this process
    config = _config(algo, env, steps)
    straight = train(algo, config, tmp_path / "straight", quiet=True)
    with monkeypatch.context() as patched:
        _stop_during_update(patched, algo, at, lambda: os.kill(os.getpid(), signal.SIGTERM))
        stopped = train(algo, config, tmp_path / "stopped", quiet=True)
    assert stopped["stopped_by"] == signal.SIGTERM and stopped["iterations"] == at   # the iteration finished
    assert checkpoint.load_meta(tmp_path / "stopped")["counters"]["iteration"] == at
    assert n_rows(tmp_path / "stopped") == at
    assert not os.path.exists(tmp_path / "stopped" / "summary.json")           # not a finished run
    assert "--resume" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path / "stopped"), "--quiet"]) == 0
    assert n_rows(tmp_path / "stopped") == straight["iterations"]
    _assert_same_run(tmp_path / "straight", tmp_path / "stopped")


def test_resume_after_a_hard_kill_drops_the_rows_after_the_checkpoint(tmp_path, monkeypatch):
    """A process killed between checkpoints has progress rows the checkpoint does not know: the
    resumed run cuts them and writes them again (here: checkpoints every 4 iterations, killed in
    the 11th, so the disk holds the checkpoint of iteration 8 and 10 rows)."""
    config = _config("ppo", "CartPole-v1", 8_000, checkpoint_every=4)
    train("ppo", config, tmp_path / "straight", quiet=True)
    saves, original_save = [], checkpoint.save

    def save_until_8(directory, agent, meta):
        if meta["counters"]["iteration"] <= 8:
            saves.append(meta["counters"]["iteration"])
            return original_save(directory, agent, meta)
    monkeypatch.setattr(train_module.checkpoint, "save", save_until_8)

    def kill():
        raise SystemExit("killed")
    _stop_during_update(monkeypatch, "ppo", 11, kill)
    with pytest.raises(SystemExit):
        train("ppo", config, tmp_path / "killed", quiet=True)
    monkeypatch.undo()
    assert saves == [4, 8] and n_rows(tmp_path / "killed") == 10
    resume(tmp_path / "killed", quiet=True)
    _assert_same_run(tmp_path / "straight", tmp_path / "killed")


class Drift(gym.Env):
    """An env outside gymnasium's classic control (rlref cannot capture its state): a point moved
    by a noisy action, rewarded for staying near 0."""
    observation_space = gym.spaces.Box(-np.inf, np.inf, (2,), np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.x = self.np_random.normal(size=2)
        return self.x.copy(), {}

    def step(self, action):
        self.x = self.x + (action - 0.5) * 0.1 + 0.05 * self.np_random.normal(size=2)
        return self.x.copy(), float(-np.abs(self.x).sum()), bool(np.abs(self.x).max() > 3), False, {}


gym.register("RlrefTestDrift-v0", entry_point=Drift, max_episode_steps=40)


def test_other_envs_restart_deterministically_and_the_log_says_so(tmp_path, monkeypatch, capsys):
    config = _config("ppo", "RlrefTestDrift-v0", 6_000)
    _stop_during_update(monkeypatch, "ppo", 5, lambda: os.kill(os.getpid(), signal.SIGINT))
    train("ppo", config, tmp_path / "a", quiet=True)
    monkeypatch.undo()
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    capsys.readouterr()
    resume(tmp_path / "a")
    assert "envs were restarted" in capsys.readouterr().err
    resume(tmp_path / "b", quiet=True)
    _assert_same_run(tmp_path / "a", tmp_path / "b")


def test_resume_refuses_what_it_cannot_continue(tmp_path, capsys):
    config = _config("ppo", "CartPole-v1", 2_000)
    train("ppo", config, tmp_path / "done", quiet=True)
    with pytest.raises(RunDirectoryError, match="finished .* nothing to resume"):
        resume(tmp_path / "done")
    assert cli.main(["train", "--resume", str(tmp_path / "done"), "--set", "lr=0.1"]) == 2
    assert "error: ConfigError: --resume continues a run exactly as it was configured, so it takes no --set" \
        in capsys.readouterr().err
    with pytest.raises(CheckpointError, match="no checkpoint"):
        resume(tmp_path / "nothing-here")
    meta = checkpoint.load_meta(tmp_path / "done")
    for key in ("window", "solved", "wall_s", "envs"):                      # a checkpoint of an older rlref
        meta.pop(key)
    with open(tmp_path / "done" / "checkpoint" / "meta.json", "w") as f:
        json.dump(meta, f)
    with pytest.raises(CheckpointError, match="can be evaluated but not resumed"):
        resume(tmp_path / "done")
    with pytest.raises(RunDirectoryError, match="--resume"):               # and a new run there is refused
        train("ppo", config, tmp_path / "done", quiet=True)


def test_a_run_killed_while_saving_its_first_checkpoint_says_how_to_start_again(tmp_path):
    """What a process killed during its first save leaves (config.json, progress rows, a half-written
    checkpoint.new/) is no checkpoint: training there again and --resume both say to start it again
    with --overwrite (not to resume it), which then replaces every file of it."""
    config = _config("ppo", "CartPole-v1", 2_000)
    train("ppo", config, tmp_path / "run", quiet=True)
    shutil.rmtree(tmp_path / "run" / "checkpoint")
    os.remove(tmp_path / "run" / "summary.json")
    os.makedirs(tmp_path / "run" / "checkpoint.new")
    (tmp_path / "run" / "checkpoint.new" / "params.npz").write_bytes(b"PK\x03\x04 half")
    with pytest.raises(RunDirectoryError) as refused:
        train("ppo", config, tmp_path / "run", quiet=True)
    assert "stopped before its first checkpoint" in str(refused.value) and "--resume" not in str(refused.value)
    with pytest.raises(CheckpointError, match=r"the run stopped before its first checkpoint was complete, so there "
                                              r"is nothing to continue; start it again with --overwrite"):
        resume(tmp_path / "run")
    train("ppo", config, tmp_path / "run", quiet=True, overwrite=True)
    assert sorted(os.listdir(tmp_path / "run")) == ["checkpoint", "config.json", "progress.csv", "summary.json"]


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_saves_and_exits_cleanly_from_the_command_line(signum, code, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "rlref", "train", "ppo", "--total-steps", "5000000",
                             "--out", str(out), "--quiet"], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(out / "progress.csv") and n_rows(out) >= 3):
        time.sleep(0.05)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err and f"stopped by {signal.Signals(signum).name}" in err
    assert f"--resume {out}" in err
    iterations = checkpoint.load_meta(out)["counters"]["iteration"]
    assert iterations == n_rows(out) >= 3
    assert not os.path.exists(out / "summary.json")
