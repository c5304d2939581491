"""scripts/ablation_ppo.py draws its figures from the stored table (figures/05_ablation.json).

A full run takes half an hour, so its last step, writing the PNGs, is checked on the stored table:
`--replot` into a temporary folder draws every variant of both tasks (the first full run with the
epochs and entropy rows crashed there, after 25 minutes of training, on its 16th variant).
"""
import os
import shutil
import subprocess
import sys

from PIL import Image

from helpers import ROOT


def test_the_stored_ablation_replots_every_variant(tmp_path):
    shutil.copy(os.path.join(ROOT, "figures", "05_ablation.json"), tmp_path / "05_ablation.json")
    done = subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "ablation_ppo.py"), "--replot",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("cartpole", "pendulum"):
        with Image.open(tmp_path / f"05_ablation_{name}.png") as im:
            assert im.size[0] > 1000 and im.size[1] > 1000, im.size
    # the table it prints has a row per variant of each task and the Holm line
    assert done.stdout.count("CartPole-v1 ") == 17 and done.stdout.count("Pendulum-v1 ") == 15, done.stdout[-3000:]
    assert "Holm over all 60 comparisons" in done.stdout
