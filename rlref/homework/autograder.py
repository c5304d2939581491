"""`homework autograder`: Gradescope's autograder zip for an assignment, in one command.

The zip holds, at its root, what Gradescope expects (its "Autograder Specifications"):

- ``setup.sh``: run once, as root, when Gradescope builds the image (Ubuntu 22.04). It installs
  NumPy from PyPI (the grader needs nothing else), and Python 3 and pip from Ubuntu only when the
  image lacks them;
- ``run_autograder``: run as root for every submission. It makes the autograder's folder
  unreadable to everyone else (the sandbox's uid then reads none of the reference, the hidden
  tests or the results), and runs the autograder line of the instructor's checkout,
  ``python3 -m rlref homework grade /autograder/submission --json /autograder/results/results.json``;
  whatever happens, results.json exists when it ends;
- the instructor's checkout, as much as grading needs: rlref/ (the reference), the public and
  hidden exercise tests, the notebooks of the assigned notebook exercises, and homework.json, the
  assignment.

``RLREF_AUTOGRADER_ROOT`` replaces /autograder and ``RLREF_AUTOGRADER_PYTHON`` the interpreter,
so that the zip can be tried in a temporary folder laid out like /autograder
(tests/test_homework_autograder.py does, on right, wrong and tampering submissions).
"""
import os
import subprocess
import zipfile

from rlref.errors import HomeworkError
from rlref.homework import assignment
from rlref.homework.make import project_root

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder's image (Ubuntu 22.04).
# The grader needs Python >= 3.10 and NumPy, nothing else; NumPy comes from PyPI.
set -euo pipefail
if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
  apt-get update && apt-get install -y --no-install-recommends python3 python3-pip
fi
python3 -m pip install --no-cache-dir "numpy>=1.26,<3"
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this as root for every submission. RLREF_AUTOGRADER_ROOT replaces /autograder
# and RLREF_AUTOGRADER_PYTHON the interpreter (to try the autograder outside Gradescope).
set -u
root="${RLREF_AUTOGRADER_ROOT:-/autograder}"
python="${RLREF_AUTOGRADER_PYTHON:-python3}"
mkdir -p "$root/results"
chmod 700 "$root" "$root/source" "$root/results"   # the sandbox's uid may read none of it
cd "$root/source"
"$python" -m rlref homework grade "$root/submission" --json "$root/results/results.json"
if [ ! -s "$root/results/results.json" ]; then
  echo '{"score": 0, "output": "The autograder failed before it could grade; tell your instructor.", "tests": []}' \\
    > "$root/results/results.json"
fi
exit 0
"""


def _wanted(rel, notebooks):
    if "__pycache__" in rel or rel.endswith((".pyc", ".pyo")):
        return False
    return (rel.startswith("rlref/") and rel.endswith(".py")) or rel.startswith("tests/hidden/") or \
        (rel.startswith("tests/test_exercises_") and rel.endswith(".py")) or rel in notebooks


def _files(root):
    done = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached"], capture_output=True, text=True)
    if done.returncode == 0 and os.path.exists(os.path.join(root, ".git")):
        return [p for p in done.stdout.split("\0") if p and os.path.isfile(os.path.join(root, p))]
    return [os.path.relpath(os.path.join(folder, n), root) for folder, _, names in os.walk(root) for n in names]


def _add(archive, name, data, mode=0o644):
    info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    archive.writestr(info, data)


def build(out, tags=None):
    """Write the autograder zip for the assignment (`tags`, or this checkout's homework.json)."""
    root = project_root()
    exercises, _ = assignment.load(root, tags)
    notebooks = {e.path for e in exercises if e.is_notebook}
    files = sorted(p for p in _files(root) if _wanted(p, notebooks))
    if not any(p.startswith("tests/hidden/") for p in files):
        raise HomeworkError(f"{root} has no hidden tests (tests/hidden/): the autograder would grade on public tests only")
    record = {**assignment.student_copy(exercises), "note": "the assignment the autograder grades (homework autograder)"}
    with zipfile.ZipFile(out, "w") as archive:
        _add(archive, "setup.sh", SETUP, 0o755)
        _add(archive, "run_autograder", RUN, 0o755)
        _add(archive, assignment.MANIFEST, assignment.json_text(record))
        for rel in files:
            with open(os.path.join(root, rel), "rb") as f:
                _add(archive, rel, f.read())
    return {"exercises": [e.tag for e in exercises], "points": sum(e.points for e in exercises), "files": len(files) + 3}
