"""The judge's comparisons: every failure says where and by how much.

A judge (the half of an exercise test that runs on the trusted side) receives the student's
outputs as plain floats and float64 arrays (rlref/homework/wire.py) and compares them with values
it computes itself. These helpers raise ``Mismatch`` with a message a student can act on:

    A_hat at lam = 0.7: element [4, 2] is 0.3112 where 0.2904 is expected (off by 2.08e-02,
    allowed 1e-12); 17 of 36 elements are off

Shapes are checked before values (``got`` is coerced to float64 first), a NaN where a number is
expected is reported as such, and gradients use rlref's gradient-check error (docs/conventions.md):
|a - n| / max(1, |a|, |n|), worst entry first.
"""
import numpy as np


class Mismatch(AssertionError):
    """A student's output that is not what the test expects; the message says where and by how much,
    ``where`` only where (no value of the student's: what a run holding a reference may show)."""

    def __init__(self, message, where=None):
        super().__init__(message)
        self.where = where


def _index(idx):
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _num(x):
    return f"{float(x):.10g}"


def as_array(what, got, shape=None):
    """got as a float64 array (of `shape`, when given); Mismatch if it is no array of numbers."""
    try:
        a = np.asarray(got, dtype=np.float64)
    except (TypeError, ValueError):
        raise Mismatch(f"{what}: expected numbers, got {type(got).__name__} {str(got)[:80]}") from None
    if shape is not None and a.shape != tuple(shape):
        raise Mismatch(f"{what}: expected shape {tuple(shape)}, got {a.shape}", f"{what}: the shape")
    return a


def close(what, got, want, atol=0.0, rtol=0.0):
    """Every element of got within atol + rtol |want| of want (same shape)."""
    want = np.asarray(want, dtype=np.float64)
    got = as_array(what, got, want.shape)
    diff = np.abs(got - want)
    allowed = atol + rtol * np.abs(want)
    bad = ~(diff <= allowed)                            # NaN counts as off
    if not bad.any():
        return
    worst = np.unravel_index(np.argmax(np.where(bad, np.nan_to_num(diff - allowed, nan=np.inf), -np.inf)), bad.shape)
    where = f" element {_index(worst)}" if got.ndim else ""
    off = "not a number" if not np.isfinite(got[worst]) else f"off by {diff[worst]:.3g}"
    count = f"; {int(bad.sum())} of {bad.size} elements are off" if got.ndim else ""
    raise Mismatch(f"{what}:{where} is {_num(got[worst])} where {_num(want[worst])} is expected "
                   f"({off}, allowed {allowed[worst]:.3g}){count}", f"{what}:{where}")


def equal(what, got, want):
    """got equals want exactly (numbers and arrays; same shape)."""
    close(what, got, want, atol=0.0)


def gradient(what, got, numeric, tol=1e-6):
    """An analytic gradient against finite differences: max |a - n| / max(1, |a|, |n|) <= tol.

    got and numeric are arrays of one shape, or dicts of them with the same keys (a parameter dict)."""
    if isinstance(numeric, dict):
        if not isinstance(got, dict) or set(got) != set(numeric):
            raise Mismatch(f"{what}: expected a dict with keys {sorted(numeric)}, got "
                           f"{sorted(got) if isinstance(got, dict) else type(got).__name__}", f"{what}: the keys")
        for key in numeric:
            gradient(f"{what}[{key!r}]", got[key], numeric[key], tol)
        return
    numeric = np.asarray(numeric, dtype=np.float64)
    a = as_array(what, got, numeric.shape)
    err = np.abs(a - numeric) / np.maximum(1.0, np.maximum(np.abs(a), np.abs(numeric)))
    err = np.where(np.isfinite(err), err, np.inf)
    if err.size == 0 or err.max() <= tol:
        return
    i = np.unravel_index(np.argmax(err), err.shape)
    where = f" element {_index(i)}" if a.ndim else ""
    raise Mismatch(f"{what}:{where} is {_num(a[i])} where finite differences give {_num(numeric[i])} "
                   f"(error {err[i]:.2e} > {tol:g}); {int((err > tol).sum())} of {err.size} entries are off", f"{what}:{where}")


def differences(values, x, eps=1e-6):
    """Judge side of a finite-difference check: the central differences (f(x + h e_i) -
    f(x - h e_i)) / (2 h_i) from the values a probe sent (rlref.homework.testing.values_around),
    with h_i = eps max(1, |x_i|) computed here from the judge's own x."""
    if isinstance(x, dict):
        return {k: differences({"plus": values["plus"][k], "minus": values["minus"][k]}, x[k], eps) for k in x}
    x = np.asarray(x, dtype=np.float64)
    h = eps * np.maximum(1.0, np.abs(x))
    plus = as_array("f(x + h)", values["plus"], x.shape)
    minus = as_array("f(x - h)", values["minus"], x.shape)
    return (plus - minus) / (2.0 * h)


def true(condition, statement):
    """Mismatch(statement) unless condition holds: say what should hold, with the numbers."""
    if not bool(condition):
        raise Mismatch(statement)
