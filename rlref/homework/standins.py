"""Stand-ins: what a function the table cuts with an exercise (``also_cut``) becomes, when it is not
simply a stub.

Some functions restate an exercise's answer and are also needed by the rest of the package: npg's
per-sample gradients run the backward recursion of (MLP.2)-(MLP.3), and the exact Fisher factor
(NPG.3) is built on them. Cutting them to a stub would leave the natural gradient, and exercise NPG.3,
unusable whenever MLP.2 is assigned. Their stand-in computes the same thing through the exercise's
own function instead, slowly, so that it holds no answer: in a student version and in the grader's
trees it replaces the whole ``def`` (rlref/homework/make.py, rlref/homework/trees.py). An exercise
whose tests reach a stand-in lists the cutting exercise in its ``deps``.

STANDINS maps a table target ``"path:qualname"`` to its stand-in; the stand-in has the same name and
signature. Stand-ins import what they use inside their body, as the module they land in may not.
"""
import inspect
import textwrap


def per_sample_grads(ddist, cache):
    """rows[..., i, :] = J_i^T ddist[..., i]: one gradient per sample (and per leading index).

    ddist: (..., N, A), or (dmean, dlog_std) each (..., N, A) for a Gaussian. Returns (..., N, P)
    in the order of flatten(params). In this version it runs mlp_backward once per sample and
    leading index (exercise MLP.2 is assigned: the reference's one vectorized recursion is its answer).
    """
    import numpy as np
    from rlref.nn import flatten, mlp_backward
    params, gaussian = cache["params"], isinstance(ddist, tuple)
    dout = ddist[0] if gaussian else ddist                           # (..., N, A) for the network
    rows = np.zeros(dout.shape[:-1] + (flatten(params).size,))       # (..., N, P)
    for idx in np.ndindex(*dout.shape[:-1]):
        i = idx[-1]                                                  # the sample
        one = {**cache, "hs": [h[i:i + 1] for h in cache["hs"]]}     # the cache of sample i alone
        grads, _ = mlp_backward(dout[idx][None], one, need_dx=False)
        if gaussian:
            grads["log_std"] = ddist[1][idx]                         # J_i is the identity there
        rows[idx] = flatten({k: grads[k] for k in params})
    return rows


STANDINS = {"rlref/algos/npg.py:per_sample_grads": per_sample_grads}


def standin_text(target):
    """The source of the stand-in of a table target, dedented, or None if it has none."""
    func = STANDINS.get(target)
    return None if func is None else textwrap.dedent(inspect.getsource(func))
