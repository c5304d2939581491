"""evaluate --video: deterministic episodes of a trained agent drawn into a GIF (or MP4)."""
import gymnasium as gym
import pytest

import rlref
from rlref import cli
from rlref.errors import ConfigError, MissingDependencyError
from rlref.seeding import eval_seed
from rlref.train import train
from rlref.algos import ppo

PIL = pytest.importorskip("PIL.Image", reason="Pillow comes with matplotlib")
pytest.importorskip("pygame", reason="drawing classic-control envs needs pygame: pip install -r requirements-envs.txt")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("video") / "run"
    train("ppo", ppo.Config(seed=3, total_steps=6_000), out, quiet=True)
    return out


def test_the_gif_shows_the_policy_s_own_episode(run, tmp_path, capsys):
    path = tmp_path / "cartpole.gif"
    assert cli.main(["evaluate", str(run), "--video", str(path)]) == 0
    printed = capsys.readouterr().out
    # the same episode by hand: the loaded policy in a plain gymnasium loop, from the evaluation seed
    policy, env = rlref.load(run), gym.make("CartPole-v1")
    obs, _ = env.reset(seed=eval_seed(3))
    total, done, steps = 0.0, False, 0
    while not done:
        obs, r, term, trunc, _ = env.step(policy.act(obs))
        total, done, steps = total + r, term or trunc, steps + 1
    assert f"returns {total:.1f}" in printed
    with PIL.open(path) as gif:
        assert gif.size == (600, 400) and gif.n_frames > 1
        assert gif.info["loop"] == 0                                  # loops forever


def test_video_errors_say_what_is_allowed(run, tmp_path, monkeypatch):
    from rlref.video import record
    trained = rlref.load(run)
    with pytest.raises(ValueError, match=r"obs must have shape \(4,\) or \(N, 4\) for this policy \(trained on "
                                         r"CartPole-v1 observations\), got \(3,\)"):
        record(trained, "Pendulum-v1", str(tmp_path / "x.gif"), seed=0)    # another env's observations
    with pytest.raises(ConfigError, match=r"must end in one of .gif, .mp4, got '.*\.avi'"):
        record(trained, "CartPole-v1", str(tmp_path / "x.avi"), seed=0)
    from matplotlib import animation
    monkeypatch.setattr(animation.writers, "is_available", lambda name: False)
    with pytest.raises(MissingDependencyError, match="needs ffmpeg"):
        record(trained, "CartPole-v1", str(tmp_path / "x.mp4"), seed=0)

    def no_pygame(*args, **kwargs):
        raise gym.error.DependencyNotInstalled("pygame is not installed")
    monkeypatch.setattr(gym, "make", no_pygame)
    with pytest.raises(MissingDependencyError, match=r"CartPole-v1 needs pygame .* pip install -r requirements-envs.txt"):
        record(trained, "CartPole-v1", str(tmp_path / "x.gif"), seed=0)
