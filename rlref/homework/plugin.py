"""The pytest plugin of ``homework grade`` (loaded with ``-p rlref.homework.plugin``).

It registers the marker ``exercise(TAG)`` and, driven by environment variables the grader sets,

- ``RLREF_HOMEWORK_ONLY=TAG,TAG``: keeps only the tests of those exercises (others deselected);
- ``RLREF_HOMEWORK_REPORT=FILE``: writes one JSON record per test: its exercise, outcome and the
  first line of its failure ("NotImplementedError: Exercise GAE.2: ...");
- ``RLREF_HOMEWORK_REFERENCE=DIR`` with ``RLREF_HOMEWORK_PATCH=TAG,TAG``: before any test runs,
  replaces those exercises' functions in the imported rlref by the ones of the reference project in
  DIR, so that an exercise is graded on its own code and not on a dependency that failed.

One pytest run collects every exercise's tests; the report attributes each result to its exercise.
"""
import importlib
import importlib.util
import json
import os
import sys

import pytest

MARKER = "exercise(tag): the test grades homework exercise TAG (rlref/homework/exercises.py)"


def _tags(name):
    return [t for t in os.environ.get(name, "").split(",") if t]


def exercise_of(item):
    marks = list(item.iter_markers("exercise"))
    if not marks:
        return None
    if len(marks) > 1 or len(marks[0].args) != 1:
        raise pytest.UsageError(f"{item.nodeid}: give exactly one exercise('TAG') marker with one tag")
    return marks[0].args[0]


def pytest_configure(config):
    config.addinivalue_line("markers", MARKER)
    config._rlref_records = []
    patch = _tags("RLREF_HOMEWORK_PATCH")
    if patch:
        patch_from_reference(os.environ["RLREF_HOMEWORK_REFERENCE"], patch)


def pytest_collection_modifyitems(config, items):
    only = set(_tags("RLREF_HOMEWORK_ONLY"))
    if not only:
        return
    keep = [i for i in items if exercise_of(i) in only]
    dropped = [i for i in items if exercise_of(i) not in only]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = keep


def _first_line(excinfo):
    text = str(excinfo.value).strip().splitlines()
    return f"{excinfo.typename}: {text[0] if text else ''}".strip()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    tag = exercise_of(item)
    if tag is None:
        return
    records = item.config._rlref_records
    if report.when == "setup" and report.skipped:
        records.append({"test": item.nodeid, "exercise": tag, "outcome": "skipped",
                        "message": str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""})
    elif report.failed:
        message = _first_line(call.excinfo) if call.excinfo else str(report.longrepr).splitlines()[-1]
        records.append({"test": item.nodeid, "exercise": tag, "outcome": "failed",
                        "message": (f"(in {report.when}) " if report.when != "call" else "") + message})
    elif report.when == "call" and report.passed:
        records.append({"test": item.nodeid, "exercise": tag, "outcome": "passed", "message": ""})


def pytest_sessionfinish(session):
    path = os.environ.get("RLREF_HOMEWORK_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump(session.config._rlref_records, f, indent=1)


# ------------------------------------------------------------------ grading against the reference

def _load_reference_module(reference, rel_path):
    """The reference file as a module of its own (its imports of rlref still resolve to the graded
    package, whose non-exercise code is the reference's)."""
    name = "_rlref_reference_" + rel_path.replace("/", "_").removesuffix(".py")
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, os.path.join(reference, rel_path))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def patch_from_reference(reference, tags):
    """Replace the functions of the exercises `tags` in the imported rlref by the reference's, in
    the defining module and in every rlref module that imported the name."""
    from rlref.homework.exercises import lookup
    for exercise in lookup(tags):
        module_name = exercise.path.removesuffix(".py").replace("/", ".")
        student = importlib.import_module(module_name)
        ref = _load_reference_module(reference, exercise.path)
        owner_path, _, name = exercise.qualname.rpartition(".")
        if owner_path:                                    # a method: patch the class attribute
            setattr(getattr(student, owner_path), name, getattr(getattr(ref, owner_path), name))
            continue
        old, new = getattr(student, name), getattr(ref, name)
        _import_all_rlref()
        for mod in list(sys.modules.values()):
            if getattr(mod, "__name__", "").startswith("rlref") and getattr(mod, name, None) is old:
                setattr(mod, name, new)


def _import_all_rlref():
    """Import every module of the graded rlref, so that no later import re-binds an unpatched name."""
    import pkgutil

    import rlref
    for info in pkgutil.walk_packages(rlref.__path__, "rlref."):
        if not info.name.startswith(("rlref.homework", "rlref.__main__")):
            importlib.import_module(info.name)
