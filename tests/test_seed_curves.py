"""Curves over several seeds (issue 23 item 5): rlref.plot.plot_seed_band draws the mean over seeds
and a band holding every seed, and the stored figures/seed_curves.json (scripts/seed_curves.py)
has the promised structure at the budgets the algorithms' defaults use today."""
import importlib.util
import json
import os

import matplotlib
import numpy as np
import pytest

from rlref.algos import algo_module
from rlref.cli import resolve_config
from rlref.envs import solved_threshold
from rlref.errors import ConfigError, MissingResultError
from rlref.plot import SEED_CURVES, load_seed_curves, plot_seed_band

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STEPS = [0, 10, 20]
RETURNS = [[1.0, 2.0, 3.0],        # three seeds on the grid of three steps
           [3.0, 6.0, 9.0],
           [5.0, 1.0, 0.0]]
MEAN = [3.0, 3.0, 4.0]             # by hand: (1+3+5)/3, (2+6+1)/3, (3+9+0)/3
LOW, HIGH = [1.0, 1.0, 0.0], [5.0, 6.0, 9.0]


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def band_limits(band, steps):
    """The lowest and highest y of the drawn band's outline at each step (from the artist itself)."""
    vertices = band.get_paths()[0].vertices                                   # (V, 2)
    low = [vertices[np.isclose(vertices[:, 0], x), 1].min() for x in steps]
    high = [vertices[np.isclose(vertices[:, 0], x), 1].max() for x in steps]
    return np.array(low), np.array(high)


def test_the_line_drawn_is_the_mean_over_seeds(ax):
    drawn = plot_seed_band(ax, {"steps": STEPS, "returns": RETURNS}, label="ppo")
    x, y = drawn["line"].get_data()
    np.testing.assert_allclose(x, STEPS)
    np.testing.assert_allclose(y, MEAN, rtol=1e-12)
    assert drawn["line"].get_label() == "ppo (mean of 3 seeds, min-max band)"


def test_the_band_drawn_holds_every_seed_and_no_more(ax):
    drawn = plot_seed_band(ax, (STEPS, RETURNS), color="C3")
    low, high = band_limits(drawn["band"], STEPS)
    for seed in np.array(RETURNS):
        assert np.all(low <= seed) and np.all(seed <= high)
    np.testing.assert_allclose(low, LOW)                  # the band is the min-max envelope, not wider
    np.testing.assert_allclose(high, HIGH)
    assert matplotlib.colors.same_color(drawn["band"].get_facecolor()[0][:3], "C3")


def test_returns_of_the_wrong_shape_are_refused_by_name(ax):
    with pytest.raises(ConfigError, match="returns must have shape"):
        plot_seed_band(ax, (STEPS, [[1.0, 2.0], [3.0, 4.0]]))
    with pytest.raises(ConfigError, match="one row per seed"):
        plot_seed_band(ax, (STEPS, [[1.0, 2.0, 3.0], [3.0, 4.0]]))


def test_a_missing_file_is_a_named_error_that_says_how_to_make_it(tmp_path):
    missing = str(tmp_path / "seed_curves.json")
    with pytest.raises(MissingResultError, match=r"does not exist: make it with `python scripts/seed_curves.py`"):
        load_seed_curves(missing)


def check_seed_curves(data):
    """Every (env, algo) entry: the promised keys, one row per seed on the shared grid, a grid
    that covers the budget, and the budget `train ALGO --env ENV` runs today (for CartPole-v1,
    the Config's default total_steps): the file cannot silently drift from the defaults."""
    for env, algos in data.items():
        for algo, entry in algos.items():
            where = f"{env} {algo}"
            assert {"budget", "seeds", "command", "steps", "returns", "threshold"} <= set(entry), where
            assert entry["budget"] == resolve_config(algo, env, entry["seeds"][0]).total_steps, where
            if env == "CartPole-v1":
                assert entry["budget"] == algo_module(algo).Config().total_steps, where
            assert len(entry["seeds"]) >= 3 and len(set(entry["seeds"])) == len(entry["seeds"]), where
            steps = np.array(entry["steps"])
            assert steps.ndim == 1 and 20 <= steps.size <= 200 and np.all(np.diff(steps) > 0), where
            assert steps[-1] >= entry["budget"] and steps[0] < 0.1 * entry["budget"], where
            returns = np.array(entry["returns"], dtype=np.float64)
            assert returns.shape == (len(entry["seeds"]), steps.size), where
            assert entry["threshold"] == solved_threshold(env), where
            assert f"--envs {env}" in entry["command"] and algo in entry["command"], where
            for key in ("eval_return_mean", "solved_at_steps"):            # optional, one per seed
                assert len(entry.get(key, entry["seeds"])) == len(entry["seeds"]), where


def test_the_stored_seed_curves_have_the_promised_structure_and_todays_budgets():
    data = load_seed_curves()
    assert set(data["CartPole-v1"]) == {"reinforce", "a2c", "npg", "trpo", "ppo"}
    assert os.path.getsize(SEED_CURVES) < 200_000
    check_seed_curves(data)


def test_the_structure_check_catches_a_budget_that_drifted():
    data = load_seed_curves()
    check_seed_curves(data)
    drifted = json.loads(json.dumps(data))
    drifted["CartPole-v1"]["ppo"]["budget"] += 1
    with pytest.raises(AssertionError, match="CartPole-v1 ppo"):
        check_seed_curves(drifted)


def test_the_script_resamples_on_the_span_every_seed_covers():
    spec = importlib.util.spec_from_file_location(
        "seed_curves", os.path.join(os.path.dirname(SEED_CURVES), os.pardir, "scripts", "seed_curves.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    curves = [(np.array([0.0, 10.0, 20.0]), np.array([0.0, 1.0, 2.0])),
              (np.array([5.0, 15.0, 25.0]), np.array([10.0, 20.0, 30.0]))]
    grid, Y = script.resample(curves, points=4)
    np.testing.assert_array_equal(grid, [5, 10, 15, 20])        # from the later start to the earlier end
    np.testing.assert_allclose(Y, [[0.5, 1.0, 1.5, 2.0],          # by hand, linear between logged rows
                                   [10.0, 15.0, 20.0, 25.0]])
