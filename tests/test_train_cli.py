"""Training through the command line: run directory, determinism across processes, checkpoints,
evaluation, bad configuration, plots."""
import json
import os

import numpy as np
import pytest

from rlref import checkpoint
from rlref.algos import a2c, reinforce
from rlref.cli import main
from rlref.envs import make_envs
from rlref.errors import CheckpointError, ConfigError, RunDirectoryError
from rlref.rollout import start
from rlref.train import train

from helpers import cli as rlref
from helpers import read_progress, same_progress

rlref_cli = rlref                 # for the tests that also import the package rlref


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """The same A2C run twice, each in its own process, and one with another seed."""
    base = tmp_path_factory.mktemp("runs")
    dirs = [str(base / name) for name in ("a", "b", "other")]
    for d, seed in zip(dirs, (3, 3, 4)):
        done = rlref("train", "a2c", "--seed", str(seed), "--total-steps", "4000", "--out", d, "--quiet")
        assert done.returncode == 0, done.stderr
    return dirs


def test_run_directory_contents(two_runs):
    d = two_runs[0]
    assert sorted(os.listdir(d)) == ["checkpoint", "config.json", "progress.csv", "summary.json"]
    assert sorted(os.listdir(os.path.join(d, "checkpoint"))) == ["meta.json", "params.npz"]
    with open(os.path.join(d, "summary.json")) as f:
        s = json.load(f)
    for key in ("algorithm", "env", "seed", "config", "versions", "total_steps", "wall_s", "eval_return_mean",
                "eval_return_std", "eval_episodes", "threshold", "solved_at_steps", "solved_at_wall_s"):
        assert key in s
    assert s["threshold"] == 475.0 and s["eval_episodes"] == 20 and s["total_steps"] >= 4000
    columns = read_progress(d)
    assert list(columns)[:7] == ["iteration", "env_steps", "wall_s", "episodes", "return_mean", "return_std",
                                 "length_mean"]
    assert "kl" in columns and "loss_pi" in columns and "entropy" in columns
    assert columns["iteration"] == list(range(1, len(columns["iteration"]) + 1))


def test_progress_csv_is_read_back_as_written(tmp_path):
    """The one reader of progress.csv: float columns, "nan" and empty cells as NaN, a row cut short
    at the end (being written) skipped; last_row_only reads the end of a long file only."""
    (tmp_path / "progress.csv").write_text("iteration,env_steps,return_mean,kl\n1,128,nan,0.5\n2,256,12.5,\n"
                                           "3,384,13.25,1e-3\n4,51")
    p = read_progress(tmp_path)
    assert p["iteration"] == [1.0, 2.0, 3.0] and p["env_steps"] == [128.0, 256.0, 384.0]
    assert np.isnan(p["return_mean"][0]) and p["return_mean"][1:] == [12.5, 13.25]
    assert np.isnan(p["kl"][1]) and p["kl"][2] == 1e-3
    assert read_progress(tmp_path, last_row_only=True) == {"iteration": [3.0], "env_steps": [384.0],
                                                          "return_mean": [13.25], "kl": [1e-3]}
    rows = "".join(f"{i},{128 * i},{i / 7!r},0.25\n" for i in range(1, 3001))       # ~70 kB
    (tmp_path / "progress.csv").write_text("iteration,env_steps,return_mean,kl\n" + rows)
    assert read_progress(tmp_path, last_row_only=True) == {"iteration": [3000.0], "env_steps": [384000.0],
                                                          "return_mean": [3000 / 7], "kl": [0.25]}
    assert len(read_progress(tmp_path)["iteration"]) == 3000
    with pytest.raises(FileNotFoundError, match="is not a run directory"):
        read_progress(tmp_path / "nothing")


def test_same_seed_two_processes_bitwise_identical(two_runs):
    a, b, other = two_runs
    assert same_progress(a, b)
    pa, pb = (np.load(os.path.join(d, "checkpoint", "params.npz")) for d in (a, b))
    assert all(np.array_equal(pa[k], pb[k]) for k in pa.files)
    assert not same_progress(a, other)


def test_global_seeding_changes_nothing(tmp_path):
    config = reinforce.Config(seed=5, total_steps=600, num_envs=4, hidden=(8,))
    np.random.seed(0)
    train("reinforce", config, str(tmp_path / "x"), quiet=True)
    np.random.seed(123)
    train("reinforce", config, str(tmp_path / "y"), quiet=True)
    assert same_progress(str(tmp_path / "x"), str(tmp_path / "y"))


def test_save_load_evaluate_gives_the_summary_returns(two_runs):
    d = two_runs[0]
    done = rlref("evaluate", d, "--json")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(d, "summary.json")) as f:
        summary = json.load(f)
    assert json.loads(done.stdout)["eval_return_mean"] == summary["eval_return_mean"]


def _like(config):
    """What an a2c checkpoint holds: the agent and the collector's arrays (for --resume)."""
    return {**a2c.init_agent(config, 4, 2, False, np.random.default_rng(0)),
            "collector": start(make_envs(config.env, config.num_envs), 0, config).carried()}


def test_checkpoint_round_trip_and_corruption(two_runs, tmp_path):
    d = two_runs[0]
    agent = checkpoint.load(d, _like(a2c.Config(**checkpoint.load_meta(d)["config"])))
    assert agent["policy"].activation == "tanh" and isinstance(agent["opt"]["t"], int)
    copy = str(tmp_path / "copy")
    checkpoint.save(copy, agent, {"note": "resaved"})
    again = checkpoint.load(copy, agent)
    for part in agent:
        for k in agent[part]:
            assert np.array_equal(agent[part][k], again[part][k])
    # a crash between the two renames of a later save leaves only checkpoint.old: still loadable
    os.rename(os.path.join(copy, "checkpoint"), os.path.join(copy, "checkpoint.old"))
    assert np.array_equal(checkpoint.load(copy, agent)["policy"]["W1"], agent["policy"]["W1"])
    # corrupt file
    with open(os.path.join(copy, "checkpoint.old", "params.npz"), "wb") as f:
        f.write(b"not a zip")
    with pytest.raises(CheckpointError, match=r"params.npz is not a readable .npz"):
        checkpoint.load(copy, agent)
    # mismatched shapes: a checkpoint of a (32,) network loaded into a (64, 64) one
    small = a2c.init_agent(a2c.Config(hidden=(32,)), 4, 2, False, np.random.default_rng(0))
    checkpoint.save(str(tmp_path / "small"), small, {})
    with pytest.raises(CheckpointError, match="keys do not match"):
        checkpoint.load(str(tmp_path / "small"), agent)
    other = _like(a2c.Config(hidden=(32, 32)))
    with pytest.raises(CheckpointError, match=r"policy/W1 has shape \(4, 64\), expected \(4, 32\)"):
        checkpoint.load(d, other)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        checkpoint.load(str(tmp_path), agent)


def test_non_finite_parameters_are_never_saved(tmp_path):
    agent = {"policy": {"W1": np.array([[np.nan]])}}
    with pytest.raises(CheckpointError, match="non-finite values in policy/W1"):
        checkpoint.save(str(tmp_path), agent, {})
    assert not os.path.exists(tmp_path / "checkpoint")


@pytest.mark.parametrize("setting, match", [("gamma=1.5", r"gamma must be in \[0.0, 1.0\], got 1.5"),
                                            ("lam=-0.1", "lam"), ("lr=0", "lr must be in"),
                                            ("n_steps=0", "n_steps"), ("n_steps=2.5", "n_steps must be a whole number"),
                                            ("nonsense=1", "unknown setting 'nonsense'")])
def test_bad_settings_fail_before_any_env_step(setting, match, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "a2c", "--set", setting, "--out", out]) == 2
    key, _, value = setting.partition("=")
    err = capsys.readouterr().err
    assert err.startswith("error: ") and key in err
    assert not os.path.exists(out)
    with pytest.raises(ConfigError, match=match):
        from rlref.config import parse_value
        a2c.Config(**{key: parse_value(a2c.Config, key, value)})


def test_bool_where_an_int_is_expected():
    with pytest.raises(ConfigError, match="n_steps must be an integer, got True of type bool"):
        a2c.Config(n_steps=True)
    with pytest.raises(ConfigError, match="total_steps"):
        reinforce.Config(total_steps=0)
    with pytest.raises(ConfigError, match="baseline must be"):
        reinforce.Config(baseline="learned")


@pytest.mark.parametrize("algo", ["reinforce", "a2c", "npg", "trpo", "ppo"])
def test_presets_are_valid_and_the_command_line_applies_them_under_set(algo, tmp_path):
    from rlref.train import algo_module
    module = algo_module(algo)
    presets = getattr(module, "PRESETS", {})
    for env, settings in presets.items():
        assert module.Config(env=env, **settings).to_dict().items() >= settings.items()
    if "Pendulum-v1" not in presets:
        return
    out = str(tmp_path / "run")                   # a tiny run: the preset, one --set, --total-steps
    preset = presets["Pendulum-v1"]
    key = "gamma" if preset.get("gamma") != 0.9 else "lam"
    done = rlref("train", algo, "--env", "Pendulum-v1", "--total-steps", "400", "--set", f"{key}=0.9",
                 "--set", "eval_episodes=1", "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "config.json")) as f:
        ran = json.load(f)
    assert ran[key] == 0.9 and ran["total_steps"] == 400
    assert all(ran[k] == (list(v) if isinstance(v, tuple) else v)
               for k, v in preset.items() if k not in (key, "total_steps", "eval_episodes"))   # the three set here
    assert ran["eval_episodes"] == 1


def test_plot_writes_a_png(two_runs, tmp_path):
    out = str(tmp_path / "curve.png")
    done = rlref("plot", two_runs[0], two_runs[2], "-o", out)
    assert done.returncode == 0, done.stderr
    with open(out, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_presets_follow_the_env_given_by_set(tmp_path):
    """--set env=Pendulum-v1 picks Pendulum's preset, as --env Pendulum-v1 does."""
    out = str(tmp_path / "run")
    done = rlref("train", "ppo", "--set", "env=Pendulum-v1", "--total-steps", "2048", "--set", "eval_episodes=1",
                 "--out", out, "--quiet")
    assert done.returncode == 0, done.stderr
    with open(os.path.join(out, "config.json")) as f:
        ran = json.load(f)
    from rlref.algos import ppo
    assert ran["env"] == "Pendulum-v1" and ran["n_steps"] == ppo.PRESETS["Pendulum-v1"]["n_steps"] != ppo.Config.n_steps


@pytest.mark.parametrize("args, line", [
    (["train", "ppo", "--set", "gamma=1.5"], "error: ConfigError: gamma must be in [0.0, 1.0], got 1.5"),
    (["train", "ppo", "--set", "target_kl=0.01"], "error: ConfigError: the setting 'target_kl' was renamed: use 'early_stop_kl'"),
    (["train", "trpo", "--set", "vf_lr=0.01"], "error: ConfigError: the setting 'vf_lr' was renamed: use 'lr_v'"),
    (["train", "ppo", "--env", "Blackjack-v1", "--total-steps", "64"],
     "error: UnsupportedSpaceError: observation space must be a 1-D Box"),
    (["evaluate", "no-such-run"], "error: CheckpointError: no checkpoint in no-such-run")])
def test_named_errors_reach_the_user_as_one_line(args, line, tmp_path):
    out = ["--out", str(tmp_path / "run")] if args[0] == "train" else []
    done = rlref(*args, *out)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(line) and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr
    debug = rlref(*args, *out, "--debug")               # the traceback, on request
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_unknown_algorithm_is_refused_by_the_parser():
    done = rlref("train", "dqn")
    assert done.returncode == 2 and "'dqn' is not one of reinforce, a2c, npg, trpo, ppo, dppo" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_no_run_destroys_another(tmp_path):
    """Training into a directory that holds a run is refused before anything is written; an empty
    directory is fine; --overwrite replaces the run."""
    out = str(tmp_path / "run")
    os.makedirs(out)                                           # empty: accepted (e.g. from mkdtemp)
    assert rlref("train", "a2c", "--total-steps", "500", "--set", "eval_episodes=1", "--out", out, "--quiet").returncode == 0
    before = {name: open(os.path.join(out, name), "rb").read() for name in ("config.json", "progress.csv", "summary.json")}
    again = rlref("train", "a2c", "--seed", "5", "--total-steps", "500", "--out", out, "--quiet")
    assert again.returncode == 2 and again.stderr.startswith("error: RunDirectoryError: ") and "--overwrite" in again.stderr
    assert all(open(os.path.join(out, name), "rb").read() == data for name, data in before.items())
    with pytest.raises(RunDirectoryError, match="already holds a run"):
        train("a2c", a2c.Config(seed=5, total_steps=500), out, quiet=True)
    assert all(open(os.path.join(out, name), "rb").read() == data for name, data in before.items())
    replaced = rlref("train", "a2c", "--seed", "5", "--total-steps", "500", "--set", "eval_episodes=1", "--out", out,
                     "--quiet", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["seed"] == 5


@pytest.mark.parametrize("env, algo", [("CartPole-v1", "a2c"), ("Pendulum-v1", "ppo")])
def test_load_act_matches_evaluate(env, algo, tmp_path):
    """rlref.load(dir).act in a plain gymnasium loop gives the returns of rlref's own evaluation
    (frozen normalization, clipped Box actions), for single and batched observations."""
    import gymnasium as gym

    import rlref
    from rlref.train import evaluate
    out = str(tmp_path / "run")
    settings = ["--set", "normalize_obs=true"] if algo == "ppo" else []
    done = rlref_cli("train", algo, "--env", env, "--total-steps", "4096", "--out", out, "--quiet", *settings)
    assert done.returncode == 0, done.stderr
    policy = rlref.load(out)
    assert (policy.obs_rms is not None) == (algo == "ppo")
    want = evaluate(policy, env, 3, 77)
    envs = make_envs(env, 3)                          # the same vector env (CartPole's seeds its own way)
    obs, _ = envs.reset(seed=77)
    got, finished = np.zeros(3), np.zeros(3, bool)
    while not finished.all():
        obs, r, term, trunc, _ = envs.step(policy.act(obs))
        got += np.where(finished, 0.0, r)
        finished |= term | trunc
    assert np.allclose(got, want, rtol=0, atol=1e-9), (got, want)
    from rlref.normalize import rms_normalize
    from rlref.policy import policy_forward
    x = np.asarray(obs, dtype=np.float64)                              # what act must compute, by hand
    if policy.obs_rms is not None:
        x = rms_normalize(policy.obs_rms, x, policy.config.obs_clip)
    want_a = policy_forward(policy.policy, x)[0].mode()
    if policy.bounds is not None:
        want_a = np.clip(want_a, *policy.bounds)
    assert np.array_equal(policy.act(obs), want_a)
    single = gym.make(env)                                             # one env, one observation at a time
    o, _ = single.reset(seed=5)
    a = policy.act(o)
    assert np.array_equal(np.asarray(a), policy.act(o[None])[0])
    assert single.action_space.contains(a if algo == "a2c" else np.asarray(a, dtype=np.float32))
