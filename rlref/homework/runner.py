"""The sandbox side of a grading run: call the probes, write their values as plain data.

Started by rlref/homework/sandbox.py as ``python -I -S -B -c BOOT BOX SITE JOB RESULT`` inside the
sandbox, with ``sys.path`` = the run's tree (BOX: the instructor's rlref with the student's defs
spliced in, and the public test modules) and SITE (NumPy). JOB names the probes to call; for a
notebook exercise it also holds the notebook's setup code (the instructor's) and the student's
solution cells, which run first. Each probe's value is encoded by rlref.homework.wire; an exception
is recorded as its type, a message and where it happened in the run's files. RESULT gets one
JSON object: {"probes": {"module:function": {"ok": value} | {"error": {...}}}}.

Everything here runs next to student code and is believed by nobody: the judge decodes RESULT as
untrusted data (rlref/homework/judge.py).
"""
import importlib
import json
import os
import sys
import traceback


def describe(err, box):
    """{"type", "message", "where": [[file, line, function], ...]} of an exception: the frames in
    the run's tree (file relative to it) or in a notebook cell."""
    try:
        message = str(err)[:1000]
    except Exception:                        # a __str__ that raises
        message = "(its message could not be read)"
    where = []
    for frame in traceback.extract_tb(err.__traceback__)[-20:]:
        name = frame.filename
        if name.startswith(box + os.sep):
            where.append([os.path.relpath(name, box), frame.lineno, frame.name])
        elif name.startswith("<solution cell"):
            where.append([name, frame.lineno, frame.name])
    return {"type": type(err).__name__, "message": message, "where": where}


def call_probes(job, box):
    from rlref.homework import wire
    results, nb = {}, None
    if job["kind"] == "notebook":
        from rlref.homework.notebooks import Namespace, run_code
        try:
            ns = run_code(job["setup"], [tuple(c) for c in job["cells"]])
            nb = Namespace(**{k: v for k, v in ns.items() if not k.startswith("__")})
        except BaseException as err:        # the solution cells raised: every probe fails with it
            error = describe(err, box)
            return {f"{m}:{f}": {"error": error} for m, f in job["probes"]}
    for module_name, name in job["probes"]:
        key = f"{module_name}:{name}"
        try:
            probe = getattr(importlib.import_module(module_name), name)
            value = probe(nb) if nb is not None else probe()
            results[key] = {"ok": wire.encode(value)}
        except BaseException as err:        # SystemExit and KeyboardInterrupt too
            results[key] = {"error": describe(err, box)}
    return results


def main(job_path, result_path):
    box = os.path.dirname(os.path.abspath(job_path))
    with open(job_path) as f:
        job = json.load(f)
    from rlref.homework import wire
    text = wire.dumps({"probes": call_probes(job, box)})
    with open(result_path + ".part", "w") as f:
        f.write(text)
    os.replace(result_path + ".part", result_path)
    sys.stdout.flush()
    os._exit(0)                              # no atexit hook, no finalizer of the student's runs after this
