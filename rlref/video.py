"""Watching a trained agent: deterministic episodes drawn with the env's ``rgb_array`` mode, written
as a GIF (Pillow, which matplotlib installs) or an MP4 (matplotlib's FFMpegWriter, where ffmpeg is
present). ``python -m rlref evaluate DIR --video FILE.gif`` calls ``record``.
"""
import io
import os

import gymnasium as gym
import numpy as np

from rlref.errors import ConfigError, MissingDependencyError
from rlref.envs import missing_dependency

FORMATS = (".gif", ".mp4")


def episode_frames(trained, env_id, seed, episodes=1, every=1, shrink=1):
    """Frames (uint8 (H, W, 3)) of `episodes` deterministic episodes of the TrainedPolicy `trained`
    on env_id, the first reset with `seed`; every `every`-th step, each frame shrunk by an integer
    factor (keeping every shrink-th pixel). Returns (frames, returns of the episodes, the env's
    render_fps)."""
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")   # pygame draws off screen; no display needed
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        obs, _ = env.reset(seed=int(seed))
        frames, returns = [env.render()], []
    except gym.error.DependencyNotInstalled as err:
        raise missing_dependency(env_id, err) from None
    for episode in range(episodes):
        if episode:
            obs, _ = env.reset()
            frames.append(env.render())
        done, total, t = False, 0.0, 0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(trained.act(obs))
            total, t, done = total + float(reward), t + 1, terminated or truncated
            if t % every == 0 or done:
                frames.append(env.render())
        returns.append(total)
    env.close()
    return ([np.ascontiguousarray(f[::shrink, ::shrink]) for f in frames], returns,
            env.metadata.get("render_fps", 30))


def gif_bytes(frames, fps):
    """An animated GIF (looping) of the frames at fps frames per second."""
    from PIL import Image
    images = [Image.fromarray(f).convert("P", palette=Image.Palette.ADAPTIVE, colors=64) for f in frames]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(20, round(1000 / fps)), optimize=True)
    return buffer.getvalue()


def _require_rgb_array(env_id):
    """ConfigError when env_id's class declares no "rgb_array" render mode (it cannot be drawn)."""
    from gymnasium.envs.registration import load_env_creator
    from rlref.envs import env_spec
    spec = env_spec(env_id)
    creator = load_env_creator(spec.entry_point) if isinstance(spec.entry_point, str) else spec.entry_point
    modes = getattr(creator, "metadata", {}).get("render_modes", [])
    if "rgb_array" not in modes:
        raise ConfigError(f"{env_id} cannot be drawn: its render_modes are {list(modes)}, and a video needs "
                          f"rgb_array; evaluate without --video")


def _require_ffmpeg(path):
    from matplotlib import animation
    if not animation.writers.is_available("ffmpeg"):
        raise MissingDependencyError(f"writing {path} needs ffmpeg, which is not on the PATH; write a .gif "
                                     f"instead (Pillow, always present) or install ffmpeg")


def write_mp4(frames, fps, path):
    """An MP4 of the frames through matplotlib's FFMpegWriter (record checks that ffmpeg exists)."""
    from matplotlib import animation
    import matplotlib.pyplot as plt
    h, w = frames[0].shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.axis("off")
    image = ax.imshow(frames[0])
    writer = animation.FFMpegWriter(fps=fps)
    with writer.saving(fig, path, dpi=100):
        for f in frames:
            image.set_data(f)
            writer.grab_frame()
    plt.close(fig)


def record(trained, env_id, path, seed, episodes=1, every=1, shrink=1):
    """Write the episodes to path (.gif or .mp4) at the env's own speed (its render_fps divided
    by `every`). Returns the episodes' returns."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise ConfigError(f"the video file must end in one of {', '.join(FORMATS)}, got {path!r}")
    _require_rgb_array(env_id)                               # before any episode is drawn
    if ext == ".mp4":
        _require_ffmpeg(path)
    frames, returns, fps = episode_frames(trained, env_id, seed, episodes, every, shrink)
    fps = max(1.0, fps / every)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if ext == ".gif":
        with open(path, "wb") as f:
            f.write(gif_bytes(frames, fps))
    else:
        write_mp4(frames, fps, path)
    return returns
