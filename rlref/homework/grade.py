"""`homework grade`: run every exercise's tests once, and score each exercise on its own tests.

One pytest process (``-p rlref.homework.plugin``, ``-m exercise``, tests/ of the graded folder or
the instructor's ``--tests DIR``) runs the tests of all the assigned exercises; the plugin's report
attributes every result to its exercise. An exercise earns its points when all its tests pass.

Dependencies: when an exercise fails and one of the exercises its tests run (``deps`` in the table,
followed transitively) failed too, the failure may be the dependency's. If a reference copy of the
project is at hand (the project that holds ``--tests DIR``, or the rlref running this command when
it is not the graded folder and has no stubs), the grader reruns that exercise's tests with the
failed dependencies taken from the reference, and its score is its own. Otherwise it reports
"waiting for TAG" and no points yet, so one bug is charged once, to the exercise that has it.

Running the tests never writes into the graded folder: no pytest cache, reports in a temporary file.
"""
import json
import os
import subprocess
import sys
import tempfile

from rlref.errors import HomeworkError
from rlref.homework.exercises import BY_TAG, closure, lookup
from rlref.homework.make import assigned, project_root
from rlref.homework.stubs import is_stub


def run_tests(root, tests_dir, tags, reference=None, patch=()):
    """One pytest run of the tests of `tags`; returns the plugin's records."""
    with tempfile.TemporaryDirectory(prefix="rlref-grade-") as tmp:
        report = os.path.join(tmp, "report.json")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
                   RLREF_HOMEWORK_REPORT=report, RLREF_HOMEWORK_ONLY=",".join(tags),
                   RLREF_HOMEWORK_NOTEBOOKS="1", PYTHONDONTWRITEBYTECODE="1",
                   OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
        env.pop("RLREF_HOMEWORK_PATCH", None)
        if patch:
            env.update(RLREF_HOMEWORK_REFERENCE=reference, RLREF_HOMEWORK_PATCH=",".join(patch))
        cmd = [sys.executable, "-m", "pytest", tests_dir, "-m", "exercise", "-p", "rlref.homework.plugin",
               "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--no-header", "-rN", "--tb=no"]
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True)
        if not os.path.isfile(report):
            raise HomeworkError(f"the tests in {tests_dir} did not run (pytest exit {done.returncode}): "
                                f"{(done.stderr or done.stdout).strip()[-600:]}")
        with open(report) as f:
            return json.load(f)


def summarize(records, exercises):
    """{tag: {"passed", "total", "message"}} from the plugin's records."""
    out = {e.tag: {"passed": 0, "total": 0, "message": ""} for e in exercises}
    for r in records:
        s = out.get(r["exercise"])
        if s is None:
            continue
        s["total"] += 1
        s["passed"] += r["outcome"] == "passed"
        if r["outcome"] != "passed" and not s["message"]:
            s["message"] = r["message"] or r["outcome"]
    return out


def find_reference(root, tests_dir, exercises):
    """A reference project to grade dependencies against, or None (see the module docstring)."""
    candidates = [os.path.dirname(os.path.abspath(tests_dir)), project_root()]
    for cand in candidates:
        if os.path.realpath(cand) == os.path.realpath(root) or not os.path.isdir(os.path.join(cand, "rlref")):
            continue
        ok = True
        for e in exercises:
            path = os.path.join(cand, e.path)
            if not os.path.isfile(path):
                ok = False
                break
            if not e.is_notebook:
                with open(path, encoding="utf-8") as f:
                    if is_stub(f.read(), e):
                        ok = False
                        break
        if ok:
            return cand
    return None


def grade(root=".", tests_dir=None, tags=None):
    """Grade the folder `root`; returns one result dict per exercise (tag, target, passed, total,
    points, max_points, status, message)."""
    root = os.path.abspath(root)
    if not os.path.isfile(os.path.join(root, "rlref", "__init__.py")):
        raise HomeworkError(f"{root} is not an rlref project (no rlref/__init__.py); give the student's folder")
    tests_dir = os.path.abspath(tests_dir or os.path.join(root, "tests"))
    if not os.path.isdir(tests_dir):
        raise HomeworkError(f"--tests {tests_dir} is not a folder of tests")
    exercises = lookup(tags) if tags else assigned(root)
    summary = summarize(run_tests(root, tests_dir, [e.tag for e in exercises]), exercises)
    failed = {t for t, s in summary.items() if s["total"] == 0 or s["passed"] < s["total"]}
    blocked = {t: [d for d in closure(t) if d in failed] for t in failed}
    blocked = {t: deps for t, deps in blocked.items() if deps}
    notes = {}
    if blocked:
        deps = sorted({d for ds in blocked.values() for d in ds}, key=list(BY_TAG).index)
        reference = find_reference(root, tests_dir, [BY_TAG[d] for d in deps])
        if reference is not None:
            again = summarize(run_tests(root, tests_dir, sorted(blocked), reference, deps), lookup(sorted(blocked)))
            for t in blocked:
                summary[t] = again[t]
                notes[t] = f"graded with the reference {', '.join(blocked[t])}"
            blocked = {}
    results = []
    for e in exercises:
        s = summary[e.tag]
        full = s["total"] > 0 and s["passed"] == s["total"]
        if e.tag in blocked:
            status, message = "waiting for " + ", ".join(blocked[e.tag]), s["message"]
        elif full:
            status, message = "pass", notes.get(e.tag, "")
        else:
            status = "fail"
            message = s["message"] or f"no test is marked exercise({e.tag!r}) in {tests_dir}"
        results.append({"tag": e.tag, "target": e.target, "passed": s["passed"], "total": s["total"],
                        "points": e.points if full else 0, "max_points": e.points, "status": status,
                        "message": message})
    return results


def one_line(text, width=100):
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[:width - 3] + "..."


def format_results(results):
    tw = max(len("exercise"), *(len(r["tag"]) for r in results))
    lines = [f"{'exercise':<{tw}}  {'tests':>7}  {'points':>7}  result", "-" * (tw + 60)]
    for r in results:
        detail = r["status"]
        if r["message"]:
            detail += ": " + one_line(r["message"])
        lines.append(f"{r['tag']:<{tw}}  {r['passed']:>3}/{r['total']:<3}  {r['points']:>3}/{r['max_points']:<3}  {detail}")
    score, total = sum(r["points"] for r in results), sum(r["max_points"] for r in results)
    lines.append(f"score {score} of {total} points ({sum(r['points'] == r['max_points'] for r in results)} of "
                 f"{len(results)} exercises complete)")
    return "\n".join(lines)


def gradescope(results):
    """Gradescope's results.json: the total score and one test entry per exercise."""
    tests = []
    for r in results:
        output = f"{r['passed']} of {r['total']} tests passed; {r['status']}"
        if r["message"]:
            output += f"\n{r['message']}"
        tests.append({"name": f"{r['tag']} ({r['target']})", "score": r["points"], "max_score": r["max_points"],
                      "status": "passed" if r["points"] == r["max_points"] else "failed", "output": output})
    return {"score": sum(r["points"] for r in results), "tests": tests}
