"""One line for every slip (issue 22): a mistake on the command line ends in one line, "error: ...",
exit status 2, no traceback, and nothing written; and what the command line does instead of failing:
--show-config, plot's default output, evaluate's summary, custom `module:Env-v0` envs.

Most cases call rlref.cli.main in this process (argparse's mistakes end in SystemExit(2)); a few run
`python -m rlref` as a subprocess, where the process boundary (exit status, stderr) is the point."""
import dataclasses
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from rlref import cli
from rlref.algos import ALGOS, algo_module
from rlref.config import meanings, parse_value

from helpers import ROOT
from helpers import cli as subprocess_cli

TINY = "tests.tiny_env:TinyGuess-v0"          # tests/tiny_env.py registers it when imported


def call(args):
    """cli.main(args) -> exit status (argparse's mistakes raise SystemExit)."""
    try:
        return cli.main(args)
    except SystemExit as stop:
        return stop.code


def listing(root):
    """Every path under root with its size and mtime: what 'nothing written' compares."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            found[path] = (os.path.getsize(path), os.path.getmtime(path)) if name in files else None
    return found


def write_run(folder, env, returns):
    """A run directory by hand: config.json and a progress.csv whose return_mean is `returns` (None: empty)."""
    os.makedirs(folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump({"algorithm": "ppo", "env": env, "seed": 0}, f)
    rows = "".join(f"{i + 1},{128 * (i + 1)},{'' if r is None else r}\n" for i, r in enumerate(returns))
    with open(os.path.join(folder, "progress.csv"), "w") as f:
        f.write("iteration,env_steps,return_mean\n" + rows)
    return folder


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A trained run of the custom env (in-process: `tests` importable from the project's root), runs
    written by hand (CartPole, Acrobot, one without a finished episode), an empty folder and a file."""
    base = tmp_path_factory.mktemp("slips")
    path = list(sys.path)
    sys.path.insert(0, ROOT)                             # `import tests.tiny_env`, as from the project's root
    tiny = str(base / "tiny")
    try:
        assert call(["train", "ppo", "--env", TINY, "--total-steps", "2000", "--set", "eval_episodes=3",
                     "--out", tiny, "--quiet"]) == 0
    finally:
        sys.path[:] = path                               # the module stays imported, its env registered
    paths = {"tiny": tiny, "empty": str(base / "empty"), "file": str(base / "afile"), "parent": str(base),
             "noep": write_run(str(base / "noep"), "MountainCar-v0", [None, None]),
             "cartpole": write_run(str(base / "cartpole"), "CartPole-v1", [None, 20.0, 31.5]),
             "acrobot": write_run(str(base / "acrobot"), "Acrobot-v1", [-500.0, -300.0])}
    os.makedirs(paths["empty"])
    os.makedirs(str(base / "blank"))                     # killed before progress.csv had its header
    open(os.path.join(base, "blank", "progress.csv"), "w").close()
    paths["blank"] = str(base / "blank")
    open(paths["file"], "w").close()
    return paths


SLIPS = [  # (arguments, a piece of the one line)
    ("train ppo --env CartPol-v1", "Did you mean: `CartPole`?"),
    ("train ppo --set env=CartPol-v1", "Did you mean: `CartPole`?"),
    ("train ppo --env CartPole", "Did you mean CartPole-v1?"),
    ("train ppo --env tests.no_such_module:X-v0", "cannot be imported"),
    ("bench --algos ppo --envs CartPole-v1 CartPol-v1 --seeds 1 --out bench", "Did you mean: `CartPole`?"),
    ("bench --algos ppo pop --envs CartPole-v1 --seeds 1 --out bench", "did you mean ppo?"),
    ("bench --algos ppo --envs CartPole-v1 --seeds 1 --out {file}", "must be a folder"),
    ("bench --algos ppo a2c ppo --envs CartPole-v1 --seeds 1 --out bench", "--algos names ppo more than once"),
    ("train ppo --out {file}", "must be a folder"),
    ("train ppo --out {file}/run", "must be a folder"),
    ("train ppo2", "did you mean ppo?"),
    ("train PPO", "did you mean ppo?"),
    ("train ppo --env cartpole", "Did you mean: `CartPole`?"),
    ("train ppo --set lr=1e-3 --set lr=2e-3", "--set lr is given twice, as 0.001 and 0.002"),
    ("plot {file}", "is a file"),
    ("plot {parent}", "run directories (acrobot, blank, cartpole, ...): plot"),
    ("train ppo --env CartPole-v1 --set env=Pendulum-v1", "--env CartPole-v1 and --set env=Pendulum-v1 disagree"),
    ("train ppo --seed 3 --set seed=4", "disagree"),
    ("train ppo --set gama=0.9", "did you mean gamma?"),
    ("train reinforce --set lr=0.1", "did you mean lr_v or lr_pi?"),
    ("train ppo --set hidden=abc", "such as 64,64"),
    ("train ppo --set hidden=32.5", "such as 64,64"),
    ("train ppo --set normalize_obs=yes", "true or false"),
    ("train ppo --set num_envs=1.5", "num_envs must be a whole number"),
    ("train ppo --set seed=true", "seed must be a whole number"),
    ("train ppo --set lr", "--set takes key=value"),
    ("train ppo --set activation=relux", "activation must be one of tanh, relu or identity"),
    ("train ppo --seed -1", "--seed: must be a whole number >= 0"),
    ("train ppo --total-steps 1.5", "--total-steps: must be a whole number >= 1"),
    ("train ppo --env FrozenLake-v1", "UnsupportedSpaceError"),
    ("train --resume {empty}", "no checkpoint"),
    ("train --resume {tiny} --show-config", "takes no --show-config"),
    ("evaluate {tiny} --episodes -3", "--episodes: must be a whole number >= 1"),
    ("evaluate {tiny} --episodes 0", "--episodes: must be a whole number >= 1"),
    ("evaluate {tiny} --video-episodes 0", "--video-episodes"),
    ("evaluate {tiny} --video tiny.gif", "cannot be drawn"),
    ("evaluate {tiny} --video tiny.gif --json", "takes no --json"),
    ("evaluate {tiny} --video-episodes 3", "needs --video"),
    ("evaluate {empty}", "no checkpoint"),
    ("plot {empty}", "not a run directory"),
    ("plot {tiny} {empty} -o both.png", "not a run directory"),
    ("plot {noep}", "no finished episode"),
    ("plot {noep} {blank} -o both.png", "no finished episode"),
    ("plot {tiny} -o missing/p4", "the folder missing does not exist"),
    ("plot {tiny} -o p4.xyz", "cannot write .xyz"),
    ("plot {tiny} {cartpole}", "name the figure with -o"),
    ("gradcheck --seed x", "--seed"),
    ("", "the following arguments are required: command"),
]


@pytest.mark.parametrize("args", [["train", "ppo", "--out", ""], ["train", "ppo", "--out", "  "],
                                  ["bench", "--algos", "ppo", "--envs", "CartPole-v1", "--seeds", "1", "--out", ""]])
def test_an_empty_out_is_refused_not_taken_for_the_default_or_this_folder(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert call(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "--out is empty" in err and len(err.strip().splitlines()) == 1, err
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("args, words", SLIPS, ids=[s[0] or "(nothing)" for s in SLIPS])
def test_a_slip_is_one_line_and_writes_nothing(args, words, place, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                      # what a default output would create lands here
    before = listing(os.path.dirname(place["tiny"]))
    argv = args.format(**place).split()
    assert call(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert words in err and "Traceback" not in err, err
    assert os.listdir(tmp_path) == [] and listing(os.path.dirname(place["tiny"])) == before


@pytest.mark.parametrize("args", ["train ppo --env CartPol-v1 --out {tmp}/run", "evaluate {tiny} --episodes 0",
                                  "plot {empty}"])
def test_a_slip_across_the_process_boundary(args, place, tmp_path):
    done = subprocess_cli(*args.format(tmp=tmp_path, **place).split())
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr and os.listdir(tmp_path) == []


def show_config(argv, capsys):
    """`train ... --show-config` in this process: {setting: (value, from, meaning)} and the header."""
    assert call(argv + ["--show-config"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:4] == ["setting", "value", "from", "meaning"]
    rows = {}
    for line in lines[2:]:
        key, value, source, *meaning = line.split(None, 3)
        rows[key] = (value, source, meaning[0] if meaning else "")
    return lines[0], rows


def test_show_config_gives_values_as_the_command_line_takes_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    from rlref.algos import ppo
    head, rows = show_config(["train", "ppo", "--env", "Pendulum-v1", "--total-steps", "1e5", "--set", "hidden=32,32",
                              "--set", "anneal_lr=false"], capsys)
    assert os.listdir(tmp_path) == []                                      # nothing trained, nothing written
    assert "Pendulum-v1 preset" in head
    assert rows["env"][:2] == ("Pendulum-v1", "--env") and rows["total_steps"][:2] == ("100000", "--total-steps")
    assert rows["hidden"][:2] == ("32,32", "--set") and rows["anneal_lr"][:2] == ("false", "--set")
    assert rows["normalize_obs"][:2] == ("true", "preset") and ppo.Config.normalize_obs is False
    assert rows["early_stop_kl"][:2] == ("none", "default") and rows["clip_eps"][:2] == ("0.2", "default")
    assert rows["gamma"] == ("0.95", "preset", "discount of J = E[sum_t gamma^t r_t]")   # the base class's words
    assert rows["beta_max"][2].endswith("recover within a few iterations (about 13 doublings)")
    config = ppo.Config(**{**ppo.PRESETS["Pendulum-v1"], "env": "Pendulum-v1", "total_steps": 100_000,
                           "hidden": (32, 32), "anneal_lr": False})
    assert set(rows) == {f.name for f in dataclasses.fields(ppo.Config)}
    for key, (value, _, _) in rows.items():                             # every value reads back as --set takes it
        text = "" if value == '""' else value
        assert parse_value(ppo.Config, key, text) == getattr(config, key), key


@pytest.mark.parametrize("algo", ALGOS)
def test_every_shown_value_reads_back_as_set_takes_it(algo, capsys):
    config = algo_module(algo).Config()
    _, rows = show_config(["train", algo], capsys)
    assert set(rows) == set(config.to_dict())
    for key, (value, source, _) in rows.items():
        assert source == "default" and not re.search(r"[()\[\]]|True|False|None", value), (key, value)
        assert parse_value(type(config), key, "" if value == '""' else value) == getattr(config, key), key


def test_show_config_says_when_there_is_no_preset(capsys):
    head, rows = show_config(["train", "npg", "--env", "MountainCar-v0", "--seed", "7"], capsys)
    assert "npg has no preset for MountainCar-v0, so its defaults, made for CartPole-v1, run" in head and rows["seed"][:2] == ("7", "--seed")


@pytest.mark.parametrize("algo", ALGOS)
def test_every_setting_has_a_meaning(algo):
    """The field comments are the one source of the meanings --show-config prints: none may be missing."""
    about = meanings(algo_module(algo).Config)
    short = {key: text for key, text in about.items() if len(text.split()) < 2}
    assert not short, short


def test_meanings_follow_the_comments():
    @dataclasses.dataclass
    class Base:
        a: int = 1          # E: the first
        b: float = 2.0      # the band of something, so that it can
        c: float = 3.0      # ... recover quickly

    @dataclasses.dataclass
    class Derived(Base):
        a: int = 4          # E
        d: tuple = (1,)     # a new one
    assert meanings(Derived) == {"a": "E: the first", "b": "the band of something, so that it can recover quickly",
                                 "c": "the band of something, so that it can recover quickly", "d": "a new one"}


def test_integer_valued_floats_are_whole_numbers():
    from rlref.algos import ppo
    assert parse_value(ppo.Config, "total_steps", "1e5") == 100_000
    assert parse_value(ppo.Config, "total_steps", "100_000") == 100_000
    assert parse_value(ppo.Config, "hidden", "64,1e2") == (64, 100)
    assert parse_value(ppo.Config, "early_stop_kl", "none") is None
    assert parse_value(ppo.Config, "early_stop_kl", "0.02") == 0.02


def test_a_custom_env_trains_evaluates_and_plots(place, tmp_path, monkeypatch, capsys):
    with open(os.path.join(place["tiny"], "config.json")) as f:
        assert json.load(f)["env"] == TINY
    assert call(["evaluate", place["tiny"], "--json"]) == 0
    machine = json.loads(capsys.readouterr().out)
    returns = np.array(machine["returns"])
    assert machine["eval_episodes"] == len(returns) == 3 and machine["threshold"] == 15.0
    assert call(["evaluate", place["tiny"]]) == 0
    line = capsys.readouterr().out.strip()
    found = re.fullmatch(r"\S+, 3 deterministic episodes: return (\S+) \+- (\S+) \(min (\S+), max (\S+)\); "
                         r"the env's solved threshold 15: (reached|not reached)", line)
    assert found, line
    for text, value in zip(found.groups()[:4], (returns.mean(), returns.std(), returns.min(), returns.max())):
        assert abs(float(text) - value) <= 0.05
    assert found.group(5) == ("reached" if returns.mean() >= 15 else "not reached")
    monkeypatch.chdir(tmp_path)
    assert call(["plot", place["tiny"]]) == 0                               # no -o: DIR/learning_curve.png
    default = os.path.join(place["tiny"], "learning_curve.png")
    assert capsys.readouterr().out.strip() == default
    with open(default, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    os.remove(default)
    assert call(["plot", place["tiny"], "-o", "p4"]) == 0                    # .png added, and said
    assert capsys.readouterr().out.strip() == "p4.png" and os.listdir(tmp_path) == ["p4.png"]
    os.mkdir("figures")
    assert call(["plot", place["tiny"], "-o", "figures"]) == 0              # a folder: its learning_curve.png
    assert os.listdir("figures") == ["learning_curve.png"]


def test_mixed_envs_draw_each_threshold(place, tmp_path, monkeypatch, capsys):
    import rlref.plot
    drawn = {}

    def keep(fig, ax, out_path, *args, **kwargs):
        drawn.update(zip(*reversed(ax.get_legend_handles_labels())))
        return out_path
    monkeypatch.setattr(rlref.plot, "finish", keep)
    assert call(["plot", place["cartpole"], place["acrobot"], place["noep"], place["blank"],
                 "-o", str(tmp_path / "m.png")]) == 0
    lines = {label: handle.get_ydata() for label, handle in drawn.items()}
    assert list(lines["CartPole-v1 solved (475)"]) == [475, 475] and list(lines["Acrobot-v1 solved (-100)"]) == [-100, -100]
    assert "MountainCar-v0 solved (-110)" in lines and "ppo MountainCar-v0 seed 0 (no finished episode)" in lines


def test_help_lists_every_command_and_the_video_needs(capsys):
    assert call(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("train", "evaluate", "plot", "gradcheck", "bench", "homework", "--show-config"):
        assert command in text, command
    assert call(["evaluate", "--help"]) == 0
    assert "requirements-envs.txt" in " ".join(capsys.readouterr().out.split())


def test_overwrite_removes_the_figure_of_the_run_it_replaces(tmp_path):
    from rlref.rundir import new_run_dir
    for name in ("config.json", "learning_curve.png", "notes.txt"):
        (tmp_path / name).write_text("x")
    new_run_dir(str(tmp_path), overwrite=True)
    assert os.listdir(tmp_path) == ["notes.txt"]                 # the old run and its figure; nothing else
    (tmp_path / "learning_curve.png").write_text("x")             # a figure alone is no run: training may go here
    new_run_dir(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == ["learning_curve.png", "notes.txt"]


def test_the_evaluation_report_of_an_env_without_a_threshold():
    from rlref.commandline import evaluation_report
    returns = np.array([1.0, 2.0, 6.0])                           # mean 3, population std sqrt(14/3) = 2.16
    assert evaluation_report("X-v0", returns, None) == ("X-v0, 3 deterministic episodes: return 3.0 +- 2.2 "
                                                        "(min 1.0, max 6.0); the env has no solved threshold")
    assert evaluation_report("X-v0", returns, 3.0).endswith("the env's solved threshold 3: reached")
    assert json.loads(evaluation_report("X-v0", returns, None, as_json=True))["eval_return_std"] == pytest.approx(
        (14 / 3) ** 0.5)


def test_a_reader_that_goes_away_early_ends_the_command_quietly():
    """`python -m rlref homework list | head -1`: no BrokenPipeError traceback when the pipe closes."""
    proc = subprocess.Popen([sys.executable, "-m", "rlref", "homework", "list"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.read(10)
    proc.stdout.close()                                        # the reader is gone before the rest
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) in (0, 141) and "Traceback" not in err and "BrokenPipe" not in err, err
