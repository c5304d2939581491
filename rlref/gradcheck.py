"""Checking hand-derived gradients against finite differences.

Taught in ``notebooks/00_backprop_and_gradcheck.ipynb``. The policy (docs/conventions.md):

- float64 only: float32 has about 7 significant digits, too few for a difference quotient with
  h = 1e-6, so a float32 input raises ``TypeError``;
- central differences with a step scaled to the entry, h_i = eps * max(1, |x_i|):
      n_i = (f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i)           error O(h^2) + O(u / h)
- per-entry error |a_i - n_i| / max(1, |a_i|, |n_i|): relative for large entries, absolute for
  small ones, so entries that should be zero do not divide by zero;
- pass when the largest error is <= tol (1e-6 by default). A correct gradient of a moderate loss
  gives ~1e-9 .. 1e-11; a gradient that is 0.1 % wrong on an entry of size ~1 gives ~1e-3.

``x`` may be one array or a dict of arrays (a parameter dict); failures name the entry as
``W2[3, 1]``. The input is perturbed in place and restored bit for bit.

A table of checks (``rlref.checks`` holds rlref's) is a list of groups; a group takes a generator,
draws its random inputs and returns entries: a gradient check (quantity, shape, fn, x), fn(x)
returning (value, gradient, ...) as every loss-and-gradient function of rlref does, or an agreement
(quantity, shape, measure), measure() the error between two independent computations of one
quantity. ``run_table`` measures every entry into rows (quantity, shape, error, passed) and
``format_table`` prints them.
"""
import numpy as np

from rlref.errors import GradientCheckError


def _as_dict(x):
    """View a single array as a one-entry dict so arrays and parameter dicts share one code path."""
    return (x, False) if isinstance(x, dict) else ({"x": x}, True)


def _check_float64(arrays):
    for name, v in arrays.items():
        if not isinstance(v, np.ndarray) or v.dtype != np.float64:
            dtype = getattr(v, "dtype", type(v).__name__)
            raise TypeError(f"gradient checks need float64 arrays; {name} is {dtype}. "
                            f"Convert with np.asarray(..., dtype=np.float64).")


def numerical_grad(f, x, eps=1e-6):
    """Central-difference gradient of the scalar f at x (an array or a dict of arrays)."""
    arrays, single = _as_dict(x)
    _check_float64(arrays)
    grads = {}
    for name, v in arrays.items():
        g = np.zeros(v.shape)
        for i in np.ndindex(v.shape):                  # index v itself: reshape may copy
            old = v[i]
            h = eps * max(1.0, abs(old))
            v[i] = old + h
            f_plus = float(f(x))
            v[i] = old - h
            f_minus = float(f(x))
            v[i] = old                                                  # restore bit for bit
            g[i] = (f_plus - f_minus) / (2.0 * h)
        grads[name] = g
    return grads["x"] if single else grads


def rel_error(a, n):
    """|a - n| / max(1, |a|, |n|), entrywise."""
    return np.abs(a - n) / np.maximum(1.0, np.maximum(np.abs(a), np.abs(n)))


def check_grad(f, grad_f, x, eps=1e-6, tol=1e-6):
    """Compare grad_f(x) with numerical_grad(f, x); return the largest per-entry error.

    Raises GradientCheckError (an AssertionError) naming the worst entry, both values and the error
    when it exceeds tol.
    """
    arrays, single = _as_dict(x)
    _check_float64(arrays)
    analytic = grad_f(x)
    analytic = {"x": analytic} if single else analytic
    numeric = numerical_grad(f, x, eps)
    numeric = {"x": numeric} if single else numeric
    worst = (0.0, None, None)                                           # (error, name, index)
    for name, v in arrays.items():
        if name not in analytic:
            raise GradientCheckError(f"analytic gradient has no entry {name!r}")
        a = np.asarray(analytic[name], dtype=np.float64)
        if a.shape != v.shape:
            raise GradientCheckError(f"analytic gradient for {name} has shape {a.shape}, "
                                     f"expected {v.shape}")
        err = rel_error(a, numeric[name])
        if err.size and (not np.all(np.isfinite(err)) or err.max() > worst[0]):
            idx = np.unravel_index(np.argmax(np.where(np.isfinite(err), err, np.inf)), err.shape)
            worst = (float(err[idx]), name, idx)
    error, name, idx = worst
    if not error <= tol:
        label = f"{'x' if single else name}[{', '.join(map(str, idx))}]"
        raise GradientCheckError(
            f"gradient check failed at {label}: analytic {float(analytic[name][idx]):.12g}, "
            f"numerical {float(numeric[name][idx]):.12g}, error {error:.3e} > tol {tol:.1e}")
    return error


def check_directional(f, grad_f, x, rng, n_dirs=8, eps=1e-6, tol=1e-6):
    """Directional check for long parameter vectors: along random unit vectors u, compare
    grad_f(x) . u with (f(x + h u) - f(x - h u)) / (2 h), h = eps * max(1, max|x|).

    Costs 2 * n_dirs evaluations of f instead of 2 * size(x). x is one float64 vector; returns the
    largest error, raises GradientCheckError past tol.
    """
    _check_float64({"x": x})
    if x.ndim != 1:
        raise ValueError(f"check_directional takes a flat vector x (use rlref.nn.flatten), got shape {x.shape}")
    g = np.asarray(grad_f(x), dtype=np.float64)
    if g.shape != x.shape:
        raise GradientCheckError(f"analytic gradient has shape {g.shape}, expected {x.shape}")
    h = eps * max(1.0, float(np.abs(x).max(initial=0.0)))
    x0 = x.copy()
    worst = 0.0
    for k in range(n_dirs):
        u = rng.standard_normal(x.shape)
        u /= np.linalg.norm(u)
        x[:] = x0 + h * u
        f_plus = float(f(x))
        x[:] = x0 - h * u
        f_minus = float(f(x))
        x[:] = x0                                                       # restore bit for bit
        a, n = float(g @ u), (f_plus - f_minus) / (2.0 * h)
        err = float(rel_error(a, n))
        if not err <= tol:
            raise GradientCheckError(f"directional check failed along direction {k}: analytic "
                                     f"{a:.12g}, numerical {n:.12g}, error {err:.3e} > tol {tol:.1e}")
        worst = max(worst, err)
    return worst


def numerical_jacobian(g, x, eps=1e-6):
    """Central-difference Jacobian (M, P) of a vector function g: (P,) -> (M,) at a flat x.

    Used on an analytic gradient to get a Hessian (e.g. of the KL, to compare with the Fisher).
    """
    _check_float64({"x": x})
    if x.ndim != 1:
        raise ValueError(f"numerical_jacobian takes a flat vector x, got shape {x.shape}")
    columns = []
    for i in range(x.size):
        old = x[i]
        h = eps * max(1.0, abs(old))
        x[i] = old + h
        g_plus = np.array(g(x), dtype=np.float64).ravel()
        x[i] = old - h
        g_minus = np.array(g(x), dtype=np.float64).ravel()
        x[i] = old                                                      # restore bit for bit
        columns.append((g_plus - g_minus) / (2.0 * h))
    return np.stack(columns, axis=1)


def _gradient_error(fn, x):
    """The error of a gradient check; an analytic gradient that is identically zero is refused (inf),
    since agreeing with a zero finite difference proves nothing."""
    g = fn(x)[1]
    if all(not np.any(v) for v in (g.values() if isinstance(g, dict) else [g])):
        return np.inf
    return check_grad(lambda x_: fn(x_)[0], lambda x_: fn(x_)[1], x, tol=np.inf)   # measure, do not raise


def not_implemented(err):
    """The error column of a row whose code is a homework stub: "not implemented (Exercise TAG)"."""
    text = str(err)
    tag = text.split(":")[0].removeprefix("Exercise ").strip() if text.startswith("Exercise ") else ""
    return f"not implemented (Exercise {tag})" if tag else "not implemented"


def run_table(groups, seed=0, tol=1e-6):
    """Measure every entry of the groups with one generator; rows (quantity, shape, error, passed).

    In a student version of the package, a row (or a whole group, when building its inputs already
    needs a stub) whose code raises NotImplementedError gets the error "not implemented (Exercise
    TAG)" and fails."""
    rng = np.random.default_rng(seed)
    rows = []
    for group in groups:
        try:
            table = group(rng)
        except NotImplementedError as err:
            rows.append((f"{group.__name__} (every row)", "", not_implemented(err), False))
            continue
        for quantity, shape, *entry in table:
            try:
                error = _gradient_error(*entry) if len(entry) == 2 else entry[0]()
            except NotImplementedError as err:
                rows.append((quantity, shape, not_implemented(err), False))
                continue
            rows.append((quantity, shape, error, bool(error <= tol)))
    return rows


def format_table(rows, tol=1e-6):
    width = max(len(r[0]) for r in rows)
    lines = [f"{'quantity':<{width}}  {'shape':<12}  {'max rel error':>13}  result",
             "-" * (width + 38)]
    for quantity, shape, error, passed in rows:
        if isinstance(error, str):                                    # a homework stub
            lines.append(f"{quantity:<{width}}  {shape:<12}  {'':>13}  {error}")
            continue
        lines.append(f"{quantity:<{width}}  {shape:<12}  {error:>13.2e}  {'pass' if passed else 'FAIL'}")
    n_fail = sum(not r[3] for r in rows)
    lines.append(f"{len(rows) - n_fail} of {len(rows)} checks passed (tolerance {tol:.0e} on "
                 f"|a - n| / max(1, |a|, |n|), central differences with h = 1e-6 max(1, |x|))")
    return "\n".join(lines)
