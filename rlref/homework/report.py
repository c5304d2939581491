"""A grade in words (the table ``homework grade`` prints) and in Gradescope's results.json.

Every failing test is shown with its message (where and by how much) and the command that reruns
that one test. results.json (Gradescope's format, https://gradescope-autograders.readthedocs.io,
"Autograder Specifications") has ``score``, ``execution_time``, ``output``, ``visibility``,
``stdout_visibility`` and ``tests``: one entry per exercise, visible, holding the exercise's
points and its public tests' results, and one entry per hidden test, worth no points of its own,
with visibility ``after_published``: students see how the hidden tests went once the instructor
publishes the grades, never before.
"""
import json
import os

HIDDEN_VISIBILITY = "after_published"


def rerun_command(test_id, submission=None):
    where = "" if submission in (None, ".") else f" {submission}"
    return f"python -m rlref homework grade{where} --test {test_id}"


def _lines(result, submission, hidden=True):
    """The detail lines of one exercise: notes, then each failing test."""
    out = [f"  note: {result['note']}"] if result["note"] else []
    for v in result["tests"]:
        if v["passed"] or (v["visibility"] == "hidden" and not hidden):
            continue
        out.append(f"  FAIL {v['id']}: {v['message']}")
        out.append(f"       rerun: {rerun_command(v['id'], submission)}")
    return out


def format_results(report, submission=None):
    results = report["exercises"]
    tw = max(len("exercise"), *(len(r["tag"]) for r in results)) if results else 8
    lines = [f"assignment: {report['assignment']}", f"{'exercise':<{tw}}  {'tests':>7}  {'points':>7}  result", "-" * (tw + 60)]
    for r in results:
        lines.append(f"{r['tag']:<{tw}}  {r['passed']:>3}/{r['total']:<3}  {r['points']:>3}/{r['max_points']:<3}  {r['status']}")
        lines += _lines(r, submission)
    lines += [f"note: {n}" for n in report["notes"]]
    score, total = sum(r["points"] for r in results), sum(r["max_points"] for r in results)
    lines.append(f"score {score} of {total} points ({sum(r['status'] == 'pass' for r in results)} of "
                 f"{len(results)} exercises complete)")
    return "\n".join(lines)


def _exercise_entry(r):
    public = [v for v in r["tests"] if v["visibility"] == "public"]
    hidden = [v for v in r["tests"] if v["visibility"] == "hidden"]
    text = [f"{r['status']}: {r['points']} of {r['max_points']} points",
            f"public tests: {sum(v['passed'] for v in public)} of {len(public)} passed"]
    text += [line for line in _lines({**r, "tests": public}, None)]
    if hidden:
        text.append(f"hidden tests: {sum(v['passed'] for v in hidden)} of {len(hidden)} passed")
    return {"name": f"{r['tag']}: {r['target']}", "number": r["tag"], "score": r["points"], "max_score": r["max_points"],
            "status": "passed" if r["status"] == "pass" else "failed", "output": "\n".join(text), "visibility": "visible"}


def gradescope(report):
    """Gradescope's results.json as a dict (see the module docstring)."""
    tests = []
    for r in report["exercises"]:
        tests.append(_exercise_entry(r))
        tests += [{"name": f"{r['tag']} hidden test: {v['id']}", "number": f"{r['tag']}.h{k}", "score": 0, "max_score": 0,
                   "status": "passed" if v["passed"] else "failed", "output": v["message"] or "passed",
                   "visibility": HIDDEN_VISIBILITY}
                  for k, v in enumerate((v for v in r["tests"] if v["visibility"] == "hidden"), 1)]
    score = sum(r["points"] for r in report["exercises"])
    total = sum(r["max_points"] for r in report["exercises"])
    output = "\n".join([f"{score} of {total} points"] + report["notes"])
    return {"score": score, "execution_time": round(report.get("seconds", 0.0)), "output": output,
            "visibility": "visible", "stdout_visibility": "hidden", "tests": tests}


def failed_report(message):
    """results.json for a grade that could not run: no points, and why (for the instructor)."""
    return {"score": 0, "execution_time": 0, "output": f"The grader could not grade this submission: {message}",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def write(path, data):
    """Write results.json atomically: a temporary file in the same folder, then a rename over the
    path (a file, or a link, planted there is replaced, never written through)."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{os.getpid()}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)
