"""What the homework tests share: an instructor's checkout to grade from, submissions built from a
student version's stubs, the autograder line in a subprocess, and a check of results.json against
Gradescope's documented fields."""
import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import zipfile

from rlref.homework import stubs
from rlref.homework.exercises import BY_TAG
from helpers import ENV, ROOT

VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def instructor_checkout(dest):
    """A copy of this checkout's tracked files (what an instructor clones), with no homework.json."""
    files = subprocess.run(["git", "-C", ROOT, "ls-files", "-z"], capture_output=True, text=True, check=True)
    for rel in files.stdout.split("\0"):
        if rel and os.path.isfile(os.path.join(ROOT, rel)) and rel != "homework.json":
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), os.path.join(dest, rel))
    return dest


def cli_in(root, *args, timeout=600, env=None):
    """`python -m rlref ARGS` run from the checkout `root` (its rlref, its homework.json)."""
    return subprocess.run([sys.executable, "-m", "rlref", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout, env=dict(ENV, PYTHONPATH=root, **(env or {})))


def stub_line(tag):
    e = BY_TAG[tag]
    return f"raise NotImplementedError({json.dumps(stubs.stub_message(e))})"


def with_body(text, tag, body):
    """The file text with exercise `tag`'s stub replaced by `body` (indented like the stub)."""
    line = stub_line(tag)
    at = text.index(line)
    indent = text[text.rindex("\n", 0, at) + 1:at]
    return text[:at] + textwrap.indent(textwrap.dedent(body).strip("\n"), indent)[len(indent):] + text[at + len(line):]


def with_reference(text, tag):
    """The file text with exercise `tag`'s stub replaced by the reference body (this checkout's)."""
    e = BY_TAG[tag]
    with open(os.path.join(ROOT, e.path), encoding="utf-8") as f:
        return stubs.restore_source(text, f.read(), e)


def notebook_with(text, tag, role, source):
    """A notebook's text with the cell of exercise `tag` and `role` holding `source`."""
    nb = json.loads(text)
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("rlref", {}) == {"exercise": tag, "role": role}:
            cell["source"] = textwrap.dedent(source).strip("\n")
    return json.dumps(nb)


def submission(student, dest, edits=(), files=None, layout="files", tags=()):
    """A submission built from the student version `student`: the files of the exercises `tags` (or,
    with layout "folder", the whole version), changed by `edits` [(path, function of its text)],
    plus `files` {path: text or bytes}; layout "zip" zips the folder."""
    paths = {BY_TAG[t].path for t in tags} | {"homework.json"}
    folder = dest + ("-folder" if layout == "zip" else "")
    if layout == "folder":
        shutil.copytree(student, folder)
    for rel in paths if layout != "folder" else ():
        os.makedirs(os.path.dirname(os.path.join(folder, rel)), exist_ok=True)
        shutil.copy2(os.path.join(student, rel), os.path.join(folder, rel))
    for rel, change in edits:
        with open(os.path.join(folder, rel), encoding="utf-8") as f:
            text = change(f.read())
        with open(os.path.join(folder, rel), "w", encoding="utf-8") as f:
            f.write(text)
    for rel, data in (files or {}).items():
        path = os.path.join(folder, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
    if layout != "zip":
        return folder
    with zipfile.ZipFile(dest + ".zip", "w") as z:
        for base, _, names in os.walk(folder):
            for n in names:
                z.write(os.path.join(base, n), os.path.relpath(os.path.join(base, n), folder))
    return dest + ".zip"


def grade_line(root, sub, results, *extra, env=None, timeout=600):
    """The autograder line from `root`; returns (CompletedProcess, results.json as a dict, seconds)."""
    start = time.monotonic()
    done = cli_in(root, "homework", "grade", sub, "--json", results, *extra, timeout=timeout, env=env)
    with open(results) as f:
        return done, json.load(f), time.monotonic() - start


def check_results(data):
    """results.json against Gradescope's documented fields; returns the score."""
    assert isinstance(data, dict) and isinstance(data.get("score"), (int, float)), data
    assert isinstance(data.get("execution_time", 0), (int, float)) and isinstance(data.get("output", ""), str)
    assert data.get("visibility", "visible") in VISIBILITY and data.get("stdout_visibility", "hidden") in VISIBILITY
    assert isinstance(data.get("tests"), list)
    for t in data["tests"]:
        assert isinstance(t["name"], str) and isinstance(t["output"], str), t
        assert isinstance(t["score"], (int, float)) and isinstance(t["max_score"], (int, float)), t
        assert 0 <= t["score"] <= t["max_score"] and t["status"] in ("passed", "failed"), t
        assert t["visibility"] in VISIBILITY, t
    assert data["score"] == sum(t["score"] for t in data["tests"]), data
    return data["score"]


def points(data):
    """{exercise tag: points} from results.json's exercise entries."""
    return {t["number"]: t["score"] for t in data["tests"] if t.get("visibility") == "visible"}


def measure(cmd, cwd, env):
    """Run cmd; returns (CompletedProcess-like (returncode, stdout), peak resident bytes of it and every
    process it started, sandbox uids included, sampled every 20 ms, and CPU seconds of it and all its
    reaped descendants)."""
    import resource
    import threading
    from rlref.homework.sandbox import SANDBOX_UIDS, _processes
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out, peak = [], 0
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()))
    reader.start()
    while proc.poll() is None:
        procs = {p[0]: p for p in _processes()}
        mine, frontier = {proc.pid}, [proc.pid]
        while frontier:
            parent = frontier.pop()
            kids = [pid for pid, p in procs.items() if p[2] == parent and pid not in mine]
            mine.update(kids)
            frontier += kids
        mine |= {pid for pid, p in procs.items() if SANDBOX_UIDS[0] <= p[1] < SANDBOX_UIDS[1]}
        peak = max(peak, sum(procs[pid][4] for pid in mine if pid in procs))
        time.sleep(0.02)
    reader.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return (proc.returncode, out[0]), peak, cpu
