"""What crosses from the sandbox to the judge: plain numbers and float arrays, nothing else.

A probe (the half of an exercise test that runs student code, in the sandbox) returns numbers,
arrays, and lists, tuples and dicts (string keys) of them. ``encode`` turns that into JSON-ready
data on the sandbox side; ``decode`` rebuilds it on the trusted side, where nothing from the
sandbox is believed: the text must parse as JSON (no pickle, no object arrays ever exist), every
node must be one of the forms below, every number becomes a Python float and every array a
read-only float64 ndarray of the declared shape, with limits on size, depth and element count.

    number          -> JSON number (NaN and +-Infinity allowed), decoded to float
    None            -> null
    ndarray, or anything np.asarray turns into floats  -> {"a": shape, "d": [flat values]}
    list, tuple     -> {"l": [items]}, decoded to a list
    dict, str keys  -> {"m": {key: item}}, decoded to a dict

Booleans and integers are numbers (a judge compares ``iters == 12.0``); complex values are refused.
Whatever a probe's return value claims to be (an ndarray subclass, an object whose ``__eq__``
always holds, an ``__array__`` trick), the judge only ever sees these floats.
"""
import json
import math

import numpy as np

MAX_BYTES = 8 << 20          # the largest output file the judge reads
MAX_ELEMENTS = 1 << 20       # numbers in one probe's value, all arrays together
MAX_DEPTH = 8                # nesting of lists and dicts
MAX_KEY = 200                # characters of a dict key


class WireError(ValueError):
    """A value that cannot cross (sandbox side) or a payload that is not plain data (trusted side)."""


# ------------------------------------------------------------------ sandbox side

def encode(x, depth=0):
    """The JSON-ready form of a probe's return value (see the module docstring)."""
    if depth > MAX_DEPTH:
        raise WireError(f"the value is nested more than {MAX_DEPTH} levels deep")
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return {"l": [encode(v, depth + 1) for v in x]}
    if isinstance(x, dict):
        bad = [k for k in x if not isinstance(k, str)]
        if bad:
            raise WireError(f"dict keys must be strings, got {type(bad[0]).__name__}")
        return {"m": {k: encode(v, depth + 1) for k, v in x.items()}}
    if isinstance(x, (bool, int, float, np.number, np.bool_)) and not np.iscomplexobj(x):
        return float(x)
    a = np.asarray(x)
    if np.iscomplexobj(a) or a.dtype.kind not in "biuf":
        raise WireError(f"a {type(x).__name__} of dtype {a.dtype} is not an array of real numbers")
    a = a.astype(np.float64)
    return {"a": list(a.shape), "d": a.ravel().tolist()} if a.ndim else float(a)


def dumps(x):
    return json.dumps(x, allow_nan=True, separators=(",", ":"))


# ------------------------------------------------------------------ trusted side

def _constant(name):
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


def loads(text):
    """JSON text (at most MAX_BYTES) to Python data; WireError for anything else."""
    if isinstance(text, bytes):
        if len(text) > MAX_BYTES:
            raise WireError(f"the output is {len(text)} bytes, over the limit of {MAX_BYTES}")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise WireError(f"the output is not UTF-8 text: {err}") from None
    if len(text) > MAX_BYTES:
        raise WireError(f"the output is over the limit of {MAX_BYTES} bytes")
    try:
        return json.loads(text, parse_int=float, parse_constant=_constant)
    except (ValueError, RecursionError) as err:
        raise WireError(f"the output is not valid JSON ({type(err).__name__}: {str(err)[:200]})") from None


def decode(node, depth=0, budget=None):
    """Plain data from one encoded node: floats, read-only float64 arrays, lists and dicts."""
    budget = [MAX_ELEMENTS] if budget is None else budget
    if depth > MAX_DEPTH:
        raise WireError(f"the value is nested more than {MAX_DEPTH} levels deep")
    if node is None or type(node) is float:
        return node
    keys = set(node) if type(node) is dict else None
    if keys == {"l"} and type(node["l"]) is list:
        return [decode(v, depth + 1, budget) for v in node["l"]]
    if keys == {"m"} and type(node["m"]) is dict and all(len(k) <= MAX_KEY for k in node["m"]):
        return {k: decode(v, depth + 1, budget) for k, v in node["m"].items()}
    if keys == {"a", "d"}:
        return _array(node["a"], node["d"], budget)
    raise WireError(f"a {type(node).__name__} where a number, an array, a list or a dict was expected")


def _array(shape, data, budget):
    """A read-only float64 array from a shape and a flat list of floats."""
    if type(shape) is not list or len(shape) > 8 or not all(type(s) is float and 0 <= s == int(s) for s in shape):
        raise WireError(f"an array's shape must be a list of at most 8 sizes, got {str(shape)[:80]}")
    size = math.prod(int(s) for s in shape)
    if type(data) is not list or len(data) != size:
        raise WireError(f"an array of shape {tuple(int(s) for s in shape)} must carry {size} numbers")
    budget[0] -= size
    if budget[0] < 0:
        raise WireError(f"the value holds more than {MAX_ELEMENTS} numbers")
    if not all(type(v) is float for v in data):
        raise WireError("an array may hold only numbers")
    a = np.array(data, dtype=np.float64).reshape([int(s) for s in shape])
    a.flags.writeable = False
    return a
