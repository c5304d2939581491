"""The named errors and the validators every module uses."""
import numpy as np
import pytest

from rlref.errors import (CheckpointError, ConfigError, GradientCheckError, NonFiniteError,
                          UnsupportedSpaceError, require_array, require_float, require_int)


def test_error_hierarchy():
    assert issubclass(ConfigError, ValueError) and issubclass(CheckpointError, ValueError)
    assert issubclass(UnsupportedSpaceError, TypeError)
    assert issubclass(NonFiniteError, FloatingPointError)
    assert issubclass(GradientCheckError, AssertionError)


def test_require_int():
    assert require_int("n", np.int64(3), low=1) == 3
    with pytest.raises(ConfigError, match="n must be an integer, got True of type bool"):
        require_int("n", True)
    with pytest.raises(ConfigError, match="n must be an integer, got 2.0"):
        require_int("n", 2.0)
    with pytest.raises(ConfigError, match=r"n must be an integer in \[1, inf\], got 0"):
        require_int("n", 0, low=1)


def test_require_float():
    assert require_float("gamma", 1, low=0, high=1) == 1.0
    with pytest.raises(ConfigError, match=r"gamma must be in \[0, 1\], got 1.5"):
        require_float("gamma", 1.5, low=0, high=1)
    with pytest.raises(ConfigError, match=r"lr must be in \(0, inf\), got 0"):
        require_float("lr", 0, low=0, low_open=True)
    for bad in (float("nan"), float("inf"), "0.1", False):
        with pytest.raises(ConfigError, match="finite real number"):
            require_float("lr", bad)


def test_require_array():
    assert require_array("x", [[1, 2]], ndim=2).dtype == np.float64
    with pytest.raises(ValueError, match=r"x must be finite, but x\[0, 1\] = nan"):
        require_array("x", [[0.0, np.nan]])
    with pytest.raises(ValueError, match=r"x must have shape \(any, 3\), got \(2, 2\)"):
        require_array("x", np.zeros((2, 2)), shape=(None, 3))
    with pytest.raises(NonFiniteError, match="float64"):
        require_array("x", np.zeros(2, dtype=np.float32), error=NonFiniteError)
