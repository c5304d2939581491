"""`homework grade`: grade the assigned answers of a submission inside a tree built from this checkout.

1. The assignment comes from this checkout's homework.json (or ``--exercises``), never from the
   submission (rlref/homework/assignment.py).
2. From the submission only the assigned answers are taken: each function's ``def`` and each
   notebook exercise's solution cells (rlref/homework/trees.py). Nothing else of it is read as code.
3. The judge process (rlref/homework/judge.py) lists the exercise tests: public ones from tests/,
   hidden ones from tests/hidden/ and ``--tests``.
4. Each exercise runs in a fresh sandboxed process (rlref/homework/sandbox.py): the stubbed tree
   with the student's defs of the exercise and of its declared dependencies spliced in, or the
   student's notebook cells after the notebook's setup; its probes' values come back as plain data.
   A syntax error, an exception at import, an endless loop or a memory blow-up costs that run.
5. The judge decides every test from those values, in a process that never ran student code.
6. Dependencies (``deps`` in the table): an exercise that fails while a dependency it runs fails
   too is run again with the reference dependency, and scored on that run, so that one bug costs
   points once. Where there is no reference (a student grading their own folder) it reads
   "waiting for TAG". Such a rerun holds reference code, so its messages show no student output.

An exercise earns its points when all its tests pass, public and hidden. The grade always ends
within its time budget; the command line writes results.json whatever happens (commands.py).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

import rlref
from rlref.errors import HomeworkError
from rlref.homework import assignment, judge
from rlref.homework.exercises import BY_TAG, closure
from rlref.homework.make import project_root
from rlref.homework.sandbox import LIMITS, MEMORY, Sandbox
from rlref.homework.submission import Submission
from rlref.homework.trees import Base, answers

TIMEOUT = 20.0      # wall-clock seconds of one exercise's run (RLREF_GRADE_TIMEOUT)
BUDGET = 480.0      # seconds of the whole grade (RLREF_GRADE_BUDGET); Gradescope stops at 10 minutes
NUMPY_SITE = os.path.dirname(os.path.dirname(os.path.abspath(np.__file__)))   # the judge's NumPy: the grader's own


def run_failure(run, timeout, restricted):
    """Why a sandbox run produced no usable output, in words; None when it did."""
    if run["status"] == "timeout":
        return f"stopped after {timeout:g} s of wall-clock time (an endless loop, or far too slow)"
    if run["status"] == "memory":
        return f"stopped: its processes held more than {MEMORY >> 20} MB of memory"
    if run["signal"] == "SIGXCPU":
        return f"stopped after {LIMITS['RLIMIT_CPU'][0]} s of CPU time"
    if run["signal"] == "SIGXFSZ":
        return f"stopped: it wrote more than {LIMITS['RLIMIT_FSIZE'][0] >> 20} MB (output or a file)"
    if run["signal"]:
        return f"the process was killed by {run['signal']}"
    if run["output"] is None or run["code"] != 0:
        tail = "" if restricted else " " + judge.one_line(run["log"][-300:], 300).strip()
        return (f"the process exited (code {run['code']}) before reporting: sys.exit or os._exit in the code, "
                f"or a crash.{tail}").strip()
    return None


class Grading:
    """One grade's state: the base, the sandbox, the private folder, the answers, the clock."""

    def __init__(self, base, box, private, exercises, found, deadline):
        self.base, self.box, self.private, self.exercises = base, box, private, exercises
        self.found, self.deadline, self.count = found, deadline, 0
        self.judge_tree = os.path.join(private, "judge")
        base.judge_tree(self.judge_tree)

    def _judge(self, spec):
        self.count += 1
        spec_path, out = (os.path.join(self.private, f"{kind}-{self.count}.json") for kind in ("spec", "verdicts"))
        with open(spec_path, "w") as f:
            json.dump({**spec, "out": out}, f)
        env = rlref.one_blas_thread({"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})
        done = subprocess.run([sys.executable, "-I", "-S", "-c", judge.BOOT, self.judge_tree, NUMPY_SITE, spec_path],
                              env=env, capture_output=True, text=True, cwd=self.private)
        if done.returncode != 0:
            raise HomeworkError(f"the judge failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
        with open(out) as f:
            return json.load(f)

    def plan(self, only):
        tests = self._judge({"mode": "plan", "public": [n[:-3] for n in self.base.public],
                             "hidden": [n[:-3] for n in self.base.hidden]})
        tags = {e.tag for e in self.exercises}
        tests = [t for t in tests if t["tag"] in tags]
        if only:
            tests = [t for t in tests if t["id"] == only or t["id"].endswith("::" + only) or t["id"].endswith("/" + only)]
            if not tests:
                raise HomeworkError(f"no test {only!r} among the assigned exercises' tests")
        return tests

    def run(self, exercise, tests, reference=()):
        """Run one exercise's probes in the sandbox; returns the judge's entry for that run."""
        answer = self.found[exercise.tag]
        entry = {"target": exercise.qualname.rpartition(".")[2] or None, "restricted": bool(reference), "lines": [],
                 "file": None, "failure": answer.error or None}
        remaining = self.deadline - time.monotonic()
        if entry["failure"]:
            return entry
        if remaining < 1.0:
            return {**entry, "failure": "not graded: the grade used up its time budget"}
        box = self.box.new_box()
        probes = sorted({tuple(t["probe"]) for t in tests})
        defs = {} if exercise.is_notebook else {exercise: (answer.definition, answer.label)}
        for tag in closure(exercise.tag):          # the package functions its tests run (deps), spliced in
            if tag in reference:
                defs[BY_TAG[tag]] = (self.base.reference[tag], "reference")
            elif tag in self.found and self.found[tag].definition is not None:
                defs[BY_TAG[tag]] = (self.found[tag].definition, self.found[tag].label)
        lines = [m for m in self.base.run_tree(box, defs) if m[3] != "reference"]
        if exercise.is_notebook:
            job = {"kind": "notebook", "probes": probes, "cells": answer.cells,
                   "setup": self.base.notebook_setup(exercise, self.exercises)}
        else:
            entry["lines"] = lines
            job = {"kind": "function", "probes": probes}
        timeout = min(float(os.environ.get("RLREF_GRADE_TIMEOUT", TIMEOUT)), remaining)
        result = self.box.run(box, job, timeout)
        entry["failure"] = run_failure(result, timeout, bool(reference))
        if entry["failure"] is None:
            entry["file"] = os.path.join(self.private, f"output-{self.box.runs}.json")
            with open(entry["file"], "wb") as f:
                f.write(result["output"])
        return entry

    def verdicts(self, tests, reference=None):
        """{tag: [verdicts]} of running and judging the exercises of `tests` (reference: {tag: deps})."""
        runs = {}
        for e in self.exercises:
            mine = [t for t in tests if t["tag"] == e.tag]
            if mine and (reference is None or e.tag in reference):
                runs[e.tag] = self.run(e, mine, (reference or {}).get(e.tag, ()))
        judged = self._judge({"mode": "judge", "tests": [t for t in tests if t["tag"] in runs], "runs": runs})
        return {tag: [v for v in judged if v["tag"] == tag] for tag in runs}


def _failed(verdicts):
    return not verdicts or not all(v["passed"] for v in verdicts)


def _result(exercise, verdicts, status, note=""):
    passed = sum(v["passed"] for v in verdicts)
    full = status == "pass"
    return {"tag": exercise.tag, "target": exercise.target, "passed": passed, "total": len(verdicts),
            "points": exercise.points if full else 0, "max_points": exercise.points, "status": status,
            "tests": verdicts, "note": note}


def score(grading, exercises, tests):
    """The results of every exercise: one pass, then the reruns on reference dependencies."""
    first = grading.verdicts(tests)
    failed = {e.tag for e in exercises if _failed(first.get(e.tag, []))}
    blocked = {e.tag: [d for d in closure(e.tag) if d in failed] for e in exercises if e.tag in failed}
    blocked = {t: deps for t, deps in blocked.items() if deps and first.get(t)}
    rerun = {t: deps for t, deps in blocked.items() if all(d in grading.base.reference for d in deps)}
    again = grading.verdicts([t for t in tests if t["tag"] in rerun], rerun) if rerun else {}
    results = []
    for e in exercises:
        verdicts = again.get(e.tag, first.get(e.tag, []))
        status = "fail" if _failed(verdicts) else "pass"
        note = "" if verdicts else f"no test of exercise {e.tag} among the grader's tests"
        if e.tag in rerun:
            mine = next((v["message"] for v in first[e.tag] if not v["passed"]), "")
            note = (f"graded with the reference {', '.join(rerun[e.tag])} (which your code fails); with your own it "
                    f"failed: {mine}")
        elif e.tag in blocked:
            status = "waiting for " + ", ".join(blocked[e.tag])
        results.append(_result(e, verdicts, status, note))
    return results


def grade(submission=".", tags=None, hidden_dirs=(), only=None, root=None):
    """Grade a submission (folder, zip, or changed files) against this checkout; returns
    {"exercises": [one dict per exercise], "notes": [...], "assignment": where it came from}."""
    start = time.monotonic()
    budget = float(os.environ.get("RLREF_GRADE_BUDGET", BUDGET))
    root = os.path.abspath(root or project_root())
    exercises, source = assignment.load(root, tags)
    sub = Submission(submission)
    local = os.path.realpath(sub.path) == os.path.realpath(root)
    hidden_dirs = [os.path.abspath(d) for d in hidden_dirs]
    for d in hidden_dirs:
        if not os.path.isdir(d):
            raise HomeworkError(f"--tests {d} is not a folder of tests")
    base = Base(root, exercises, hidden_dirs, local)
    found = answers(sub, exercises)
    notes = [n for n in [assignment.disagreement(sub.manifest(), exercises)] +
             [a.definition.note for a in found.values() if a.definition is not None] if n]
    private = tempfile.mkdtemp(prefix="rlref-grade-")
    try:
        with Sandbox([root, *hidden_dirs, private]) as box:
            grading = Grading(base, box, private, exercises, found, start + budget)
            tests = grading.plan(only)
            graded = [e for e in exercises if not only or any(t["tag"] == e.tag for t in tests)]
            results = score(grading, graded, tests)
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return {"exercises": results, "notes": sorted(set(notes)), "assignment": source,
            "seconds": time.monotonic() - start, "local": local}
