"""Checkpoints: ``checkpoint/params.npz`` (arrays, loaded with allow_pickle=False) and
``checkpoint/meta.json`` (config, counters, generator states, versions).

The agent is a dict of named parts ("policy", "value", "opt_pi", ...), each a dict of arrays or
integers; in the npz the key is "part/name". Saving writes a complete new directory and swaps it in
with renames, so a crash at any moment leaves a complete checkpoint: ``checkpoint/`` or, between
the two renames, ``checkpoint.old/`` (which ``load`` then uses).
"""
import json
import os
import shutil

import numpy as np

from rlref.errors import CheckpointError
from rlref.nn import MLPParams


def _flat_arrays(agent):
    arrays = {}
    for part, entries in agent.items():
        for name, value in entries.items():
            arrays[f"{part}/{name}"] = np.asarray(value)
    return arrays


def first_non_finite(parts):
    """The key ("part/name") of the first float array in parts holding NaN or inf, or None: the one
    finiteness check of what an update produced, what is saved and what is loaded."""
    for key, value in _flat_arrays(parts).items():
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            return key
    return None


def save(directory, agent, meta):
    """Write agent (dict of dicts of arrays) and meta (JSON-able dict) to directory/checkpoint."""
    bad = first_non_finite(agent)
    if bad is not None:
        raise CheckpointError(f"refusing to save non-finite values in {bad}")
    arrays = _flat_arrays(agent)
    final = os.path.join(directory, "checkpoint")
    new, old = final + ".new", final + ".old"
    shutil.rmtree(new, ignore_errors=True)
    os.makedirs(new)
    for name, write in (("params.npz", lambda f: np.savez(f, **arrays)),
                        ("meta.json", lambda f: f.write(json.dumps(meta, indent=1).encode()))):
        with open(os.path.join(new, name), "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
    if os.path.isdir(final):
        shutil.rmtree(old, ignore_errors=True)
        os.rename(final, old)
    os.rename(new, final)                       # the swap: from here on the new one is found
    shutil.rmtree(old, ignore_errors=True)
    return final


def find(directory):
    """The complete checkpoint folder in directory (checkpoint/, else checkpoint.old/), or None. A
    checkpoint.new/ left by a process killed while saving is never one."""
    for name in ("checkpoint", "checkpoint.old"):
        path = os.path.join(directory, name)
        if os.path.isfile(os.path.join(path, "params.npz")) and os.path.isfile(os.path.join(path, "meta.json")):
            return path
    return None


def _checkpoint_dir(directory):
    path = find(directory)
    if path is None:
        before = (" (its config.json is there: the run stopped before its first checkpoint was complete, so "
                  "there is nothing to continue; start it again with --overwrite)"
                  if os.path.isfile(os.path.join(directory, "config.json")) else "")
        raise CheckpointError(f"no checkpoint in {directory}: expected {directory}/checkpoint/params.npz "
                              f"and meta.json{before}")
    return path


def load_meta(directory):
    path = os.path.join(_checkpoint_dir(directory), "meta.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path} is not readable JSON: {err}") from None


def load(directory, like, strict=True):
    """Fill a freshly initialized agent `like` (same structure) with the saved arrays.

    Every key of `like` must be present with the same shape; missing keys (and, when strict,
    extra ones), other shapes, non-finite values or an unreadable file raise CheckpointError naming
    the file, the key and the shapes. strict=False reads only the parts of `like` (e.g. the policy).
    """
    path = os.path.join(_checkpoint_dir(directory), "params.npz")
    try:
        with np.load(path, allow_pickle=False) as data:
            saved = {key: data[key] for key in data.files}
    except Exception as err:                     # zipfile, OSError, ValueError: all mean corrupt
        raise CheckpointError(f"{path} is not a readable .npz archive: {err}") from None
    expected = _flat_arrays(like)
    if set(saved) != set(expected) and (strict or not set(expected) <= set(saved)):
        unexpected = sorted(set(saved) - set(expected)) if strict else "(not checked)"
        raise CheckpointError(f"{path}: keys do not match; missing {sorted(set(expected) - set(saved))}, "
                              f"unexpected {unexpected}")
    agent = {}
    for part, entries in like.items():
        out = MLPParams(activation=entries.activation) if isinstance(entries, MLPParams) else {}
        for name, value in entries.items():
            key, array = f"{part}/{name}", saved[f"{part}/{name}"]
            if array.shape != np.shape(value):
                raise CheckpointError(f"{path}: {key} has shape {array.shape}, expected {np.shape(value)}")
            out[name] = int(array) if isinstance(value, (int, np.integer)) else array
        agent[part] = out
    bad = first_non_finite(agent)
    if bad is not None:
        raise CheckpointError(f"{path}: {bad} holds non-finite values")
    return agent
