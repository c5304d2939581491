"""The named errors of rlref.

Every message names the parameter or array, the value received, and what is allowed. Each class
derives from the built-in error a caller would naturally catch, so ``except ValueError`` still
works for code that does not know rlref.
"""


class RlrefError(Exception):
    """The base of every named rlref error: the command line prints these as one line (the
    class name and the message, exit code 2) instead of a traceback."""


class ConfigError(RlrefError, ValueError):
    """A hyperparameter or argument is out of range or of the wrong type."""


class UnsupportedSpaceError(RlrefError, TypeError):
    """An action or observation space rlref does not handle (with a hint of what to do)."""


class NonFiniteError(RlrefError, FloatingPointError):
    """NaN or inf where only finite numbers are allowed: from an env, or produced by an update.

    When an update raises it, the parameters are left exactly as they were before the update.
    """


class CheckpointError(RlrefError, ValueError):
    """A checkpoint is missing, corrupt, or does not match what is being loaded."""


class RunDirectoryError(RlrefError, FileExistsError):
    """Training into a directory that already holds a run (which would be lost) without --overwrite."""


class RunNotFoundError(RlrefError, FileNotFoundError):
    """A folder given as a run directory holds no run (no progress.csv): plot, explain."""


class PlotError(RlrefError, ValueError):
    """A figure that cannot be drawn as asked: nothing to plot yet, or an output path that will not do."""


class BenchMismatchError(RlrefError, FileExistsError):
    """`bench --out DIR` where a run directory of the grid already holds a run made with other
    settings than the bench would use (it is never mixed into the table, nor replaced)."""


class MissingDependencyError(RlrefError, ImportError):
    """An optional package an env (MuJoCo, Box2D), rendering (pygame) or the course site (Sphinx,
    requirements-site.txt) needs is not installed."""


class MissingResultError(RlrefError, FileNotFoundError):
    """A stored result the code reads (figures/seed_curves.json) is not there; the message names
    the script that makes it."""


class SiteError(RlrefError, ValueError):
    """`site --out DIR` where DIR is not a folder the site may replace, or the site failed to build."""


class GradientCheckError(RlrefError, AssertionError):
    """An analytic gradient disagrees with finite differences beyond the tolerance."""


class SyncError(RlrefError, RuntimeError):
    """Distributed workers that must hold identical parameters do not (their checksums differ)."""


class HomeworkError(RlrefError, ValueError):
    """A homework request that cannot be met: an unknown exercise tag, a table entry whose target
    does not exist, or a folder that is not an rlref project."""


class HomeworkDirectoryError(RlrefError, FileExistsError):
    """`homework make --out DIR` into a DIR that already exists (a student version is never
    written over anything)."""


# ---------------------------------------------------------------------------------------------
# Small validators shared by every module. They raise the errors above with messages that say
# what was received and what is allowed; they never use `assert` (which `python -O` removes).
# ---------------------------------------------------------------------------------------------

import numbers

import numpy as np


def require_int(name, value, low=None, high=None):
    """An int (not a bool) in [low, high]; returns it as a Python int."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ConfigError(f"{name} must be an integer, got {value!r} of type {type(value).__name__}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} must be an integer in [{low}, {'inf' if high is None else high}], "
                          f"got {value}")
    return int(value)


def require_float(name, value, low=None, high=None, low_open=False, high_open=False):
    """A finite real number (not a bool) in the given interval; returns it as a Python float."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
        raise ConfigError(f"{name} must be a finite real number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"
        raise ConfigError(f"{name} must be in {interval}, got {value}")
    return float(value)


def require_choice(name, value, allowed):
    """One of the allowed values (compared with ==); returns it."""
    if value not in allowed:
        words = [str(a) for a in allowed]
        raise ConfigError(f"{name} must be one of {', '.join(words[:-1])} or {words[-1]}, got {value!r}"
                          if len(words) > 1 else f"{name} must be {words[0] if words else 'nothing'}, got {value!r}")
    return value


def require_array(name, x, ndim=None, shape=None, error=ValueError):
    """A finite float64 array of the given rank/shape (None entries in `shape` match anything).

    Lists and integer arrays are converted; float32 and other floats are refused so that nothing
    silently loses precision.
    """
    x = np.asarray(x)
    if x.dtype.kind in "iub":
        x = x.astype(np.float64)
    if x.dtype != np.float64:
        raise error(f"{name} must be float64 (rlref computes in float64 throughout), got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise error(f"{name} must have {ndim} dimension(s), got shape {x.shape}")
    if shape is not None and (len(shape) != x.ndim or
                              any(s is not None and s != n for s, n in zip(shape, x.shape))):
        want = "(" + ", ".join("any" if s is None else str(s) for s in shape) + ")"
        raise error(f"{name} must have shape {want}, got {x.shape}")
    if not np.isfinite(x).all():
        bad = np.argwhere(~np.isfinite(x))[0]
        raise error(f"{name} must be finite, but {name}[{', '.join(map(str, bad))}] = "
                    f"{x[tuple(bad)]}")
    return x
