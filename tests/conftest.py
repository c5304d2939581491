"""Shared test setup: NumPy floating-point errors raise, a seeded generator per test, and the suite
runs on every core when pytest-xdist is installed."""
import rlref

rlref.one_blas_thread()           # before NumPy loads; subprocesses of the tests inherit it

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """With pytest-xdist installed (an optional extra: requirements-dev.txt, which CI installs), the
    suite spreads over one worker per core, whole files at a time (--dist loadfile: a notebook's cells
    run in order in one kernel, a module's fixtures are built once). Every test is deterministic on its
    own, so the results do not depend on the worker that runs them. An explicit -n (say -n 0) wins;
    without pytest-xdist the suite runs in one process, as the same command."""
    if config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None) is None \
            and not hasattr(config, "workerinput"):
        config.option.numprocesses = "auto"
        config.option.dist = "loadfile"
        config.option.loadscopereorder = False      # xdist would put the files with most tests first


# The files that take longest (seconds of one core, measured with --durations on the 2-core machine).
# Run first, they start while the many short files fill the other worker; run last, one of them is
# the suite's tail with the other core idle (that was 2 of the suite's 13 minutes).
# Remeasured 2026-12-07 (about, seconds of wall time per file): learning 130, redteam 65 (two grades at a
# time), 06 63, 04 60, homework 45, 05 41, site 40, autograder 36, dppo 35, 02 29, nbgrader 28.
LONGEST_FIRST = ["tests/test_learning.py", "tests/test_homework_redteam.py", "notebooks/06_dppo.ipynb",
                 "notebooks/04_trpo.ipynb", "tests/test_homework.py", "notebooks/05_ppo.ipynb", "tests/test_site.py",
                 "tests/test_homework_autograder.py", "tests/test_dppo.py", "notebooks/02_actor_critic.ipynb",
                 "tests/test_homework_nbgrader.py"]


def pytest_collection_modifyitems(config, items):
    """The longest files first (a stable sort: the order inside a file is kept, so is the order of
    everything else). Only the schedule changes: each test is deterministic on its own."""
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(autouse=True)
def raise_floating_point_errors():
    """Overflow, invalid operations (NaN) and division by zero raise instead of warning, so a
    numerically careless formula fails the test that exercises it. Underflow to 0 is allowed."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
