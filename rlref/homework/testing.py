"""Exercise tests in two halves: a probe that calls the student's code, a judge that decides.

An exercise test is written as a pair::

    def gae_runs():                                  # the probe: runs in the sandbox
        r, v, v2, term, dones = rollout()
        return {f"lam={lam}": gae(r, v, v2, term, dones, 0.9, lam) for lam in LAMS}


    @exercise("GAE.2", gae_runs)
    def test_gae_keeps_R_hat_minus_A_hat_equal_to_the_values(out):   # the judge: trusted side
        ...
        expect.close("R_hat - A_hat", R_hat - A_hat, values, atol=1e-12)

The probe calls the student's function on fixed inputs and returns plain data (numbers, arrays,
lists and dicts of them). A notebook exercise's probe takes one argument,
the namespace its solution cells defined (``nb.clip_term(...)``). The judge gets the probe's
return value, decoded on the trusted side (rlref/homework/wire.py), and checks it with
rlref/homework/expect.py or its own arithmetic; it never calls an exercise's code.

``homework grade`` runs the probes in the sandbox and the judges in a process that never ran
student code (rlref/homework/grade.py). Under pytest the decorated test is an ordinary test of no
arguments: it runs the probe in this process, sends the result through the same encoding, and
judges it, so ``python -m pytest tests/test_exercises_core.py::NAME`` reruns one test on the code
of the folder it runs in. Probes live in the public test modules (tests/test_exercises_*.py), which
the sandbox may read; judges of hidden tests (tests/hidden/) import probes from there.
"""
import os

import numpy as np

from rlref.homework import wire
from rlref.homework.exercises import lookup

_suite_values = {}          # probe -> (encoded value, or the exception it raised): pytest runs only


def exercise(tag, probe):
    """Declare the decorated judge a test of exercise `tag`, fed by `probe` (see the module docstring)."""
    exercise_ = lookup([tag])[0]
    if not callable(probe):
        raise TypeError(f"exercise({tag!r}, probe): probe must be a function, got {probe!r}")

    def decorate(judge):
        def test():
            judge(wire.decode(wire.loads(wire.dumps(_run_here(probe, exercise_)))))
        test.__name__, test.__qualname__ = judge.__name__, judge.__qualname__
        test.__doc__, test.__module__ = judge.__doc__, judge.__module__
        test.exercise, test.probe, test.judge = tag, probe, judge
        return test
    return decorate


def _run_here(probe, exercise_):
    """The probe's encoded value, run in this process on this folder's code (once per pytest run)."""
    if probe not in _suite_values:
        try:
            if exercise_.is_notebook:
                from rlref.homework.make import project_root
                from rlref.homework.notebooks import namespace_of
                value = probe(namespace_of(os.path.join(project_root(), exercise_.path), exercise_.tag))
            else:
                value = probe()
            _suite_values[probe] = (wire.encode(value), None)
        except Exception as err:                     # raised again for every test of this probe
            _suite_values[probe] = (None, err)
    value, err = _suite_values[probe]
    if err is not None:
        raise err
    return value


def tests_of(module):
    """The exercise tests a module defines, in the order of its source."""
    return [obj for obj in vars(module).values() if callable(obj) and hasattr(obj, "exercise") and
            hasattr(obj, "judge") and getattr(obj, "__module__", None) == module.__name__]


def values_around(f, x, eps=1e-6):
    """Probe side of a finite-difference check: f at x + h_i e_i and x - h_i e_i for every entry i
    of x (an array or a dict of arrays), h_i = eps max(1, |x_i|); x is restored bit for bit.
    Returns {"plus": ..., "minus": ...} shaped like x; rlref.homework.expect.differences turns
    them into the central differences on the trusted side."""
    arrays = x if isinstance(x, dict) else {"x": x}
    plus, minus = {}, {}
    for name, v in arrays.items():
        plus[name], minus[name] = np.zeros(v.shape), np.zeros(v.shape)
        for i in np.ndindex(v.shape):
            old = v[i]
            h = eps * max(1.0, abs(old))
            v[i] = old + h
            plus[name][i] = float(f(x))
            v[i] = old - h
            minus[name][i] = float(f(x))
            v[i] = old
    if not isinstance(x, dict):
        plus, minus = plus["x"], minus["x"]
    return {"plus": plus, "minus": minus}
