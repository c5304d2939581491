"""Shared test setup: NumPy floating-point errors raise, and a seeded generator per test."""
import rlref

rlref.one_blas_thread()           # before NumPy loads; subprocesses of the tests inherit it

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def raise_floating_point_errors():
    """Overflow, invalid operations (NaN) and division by zero raise instead of warning, so a
    numerically careless formula fails the test that exercises it. Underflow to 0 is allowed."""
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        yield


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
