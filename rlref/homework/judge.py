"""The trusted side of a grade: decide every test from plain data, in a process that never ran student code.

rlref/homework/grade.py starts this file's ``main`` as ``python -I -S -c BOOT TREE SITE SPEC`` with
``sys.path`` = TREE (the grader's rlref with every assigned exercise replaced by a stub, its public
test modules in tests/ and its hidden ones in tests/hidden/) and SITE (NumPy). Nothing of the
student's is importable here; what the sandbox produced arrives as bytes in files and is decoded by
rlref.homework.wire, every array coerced to float64 and shape-checked by the judges.

``plan``: import the test modules, list every exercise test (id, exercise, visibility, probe). A
probe must live in a public module: probes run in the sandbox, which may read only public code.

``judge``: for each test, take its probe's value from its exercise's run, call the judge, and
record pass or fail with a message that says where and by how much (rlref.homework.expect). When
the run failed (timeout, crash, exit at import) every test of the exercise fails with that reason;
when the probe raised, with the exception, located in the student's own lines. In a run that held a
reference dependency (``restricted``), nothing the student's code produced is shown beyond the
exception's type, and judges' messages lose their numbers: such a run could otherwise carry the
reference's code out in its outputs.
"""
import importlib
import json
import re

BOOT = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[1] + '/tests', sys.argv[1] + '/tests/hidden', sys.argv[2]]; "
        "from rlref.homework.judge import main; main(sys.argv[3])")


def one_line(text, n=400):
    """Text from the sandbox on one line, printable and short (it cannot forge lines of the report)."""
    text = "".join(c if c.isprintable() else " " for c in str(text)[:n + 1])
    return text if len(text) <= n else text[:n] + "..."


def plan(public, hidden):
    from rlref.homework.testing import tests_of
    tests = []
    for names, visibility, prefix in ((public, "public", ""), (hidden, "hidden", "hidden/")):
        for name in names:
            for test in tests_of(importlib.import_module(name)):
                module = test.probe.__module__
                if module not in public:
                    raise RuntimeError(f"{name}.{test.__name__}: its probe {test.probe.__name__} lives in {module}, "
                                       f"not in a public test module; probes run in the sandbox")
                tests.append({"id": f"{prefix}{name}.py::{test.__name__}", "module": name, "name": test.__name__,
                              "tag": test.exercise, "visibility": visibility, "probe": [module, test.probe.__name__]})
    return tests


def where(error, lines, tag):
    """'at line L of your FILE, in f' for the innermost frame in the student's lines."""
    frames = error.get("where") if isinstance(error.get("where"), list) else []
    for frame in reversed(frames):
        if not (isinstance(frame, list) and len(frame) == 3 and isinstance(frame[1], float) and frame[1].is_integer()):
            continue
        file, line, func = frame[0], int(frame[1]), frame[2]
        for tree_file, first, count, label, student_first in lines:
            if file == tree_file and first <= line < first + count:
                return f" (line {student_first + line - first} of your {label}, in {one_line(func, 60)})"
        if str(file).startswith("<solution cell"):
            return f" (line {line} of your {one_line(file, 80).strip('<>')})"
    return ""


def student_error(error, run, test):
    kind = error.get("type") if isinstance(error, dict) else None
    kind = kind if isinstance(kind, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]{0,80}", kind) else "an exception"
    if run.get("restricted"):
        return f"{test['probe'][1]} raised {kind} (details withheld in runs that hold a reference dependency)"
    message = one_line(error.get("message", ""))
    text = f"{test['probe'][1]} raised {kind}{': ' + message if message else ''}" + where(error, run.get("lines", []), test["tag"])
    if kind == "NameError" and run.get("target"):
        text += (f"; only your `def {run['target']}` is graded: define helpers and imports inside it")
    return text


def verdict(test, run, envelopes):
    """(passed, message) of one test."""
    from rlref.homework import wire
    from rlref.homework.expect import Mismatch
    if run.get("failure"):
        return False, run["failure"]
    try:
        if run["file"] not in envelopes:
            with open(run["file"], "rb") as f:
                envelopes[run["file"]] = wire.loads(f.read())["probes"]
        entry = envelopes[run["file"]][":".join(test["probe"])]
    except (OSError, KeyError, TypeError, wire.WireError) as err:
        return False, f"no usable output from the sandbox ({type(err).__name__}: {one_line(err, 200)})"
    if not isinstance(entry, dict) or len(entry) != 1:
        return False, "no usable output from the sandbox (an entry that is neither a value nor an error)"
    if "error" in entry:
        return False, student_error(entry["error"] if isinstance(entry["error"], dict) else {}, run, test)
    try:
        out = wire.decode(entry.get("ok", "missing"))
        judge = getattr(importlib.import_module(test["module"]), test["name"]).judge
        judge(out)
        return True, ""
    except wire.WireError as err:
        return False, f"the output of {test['probe'][1]} is not plain data" + ("" if run.get("restricted") else f": {err}")
    except Mismatch as err:
        if run.get("restricted"):
            return False, f"{err.where or 'a check'}: off (values withheld in runs that hold a reference dependency)"
        return False, one_line(err, 600)
    except Exception as err:                       # a value of the wrong form: too few items, a missing key
        detail = "" if run.get("restricted") else f" ({type(err).__name__}: {one_line(err, 200)})"
        return False, f"the output of {test['probe'][1]} does not have the expected form{detail}"


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    if spec["mode"] == "plan":
        result = plan(spec["public"], spec["hidden"])
    else:
        envelopes = {}
        result = []
        for test in spec["tests"]:
            passed, message = verdict(test, spec["runs"][test["tag"]], envelopes)
            result.append({**test, "passed": passed, "message": message})
    with open(spec["out"], "w") as f:
        json.dump(result, f)
