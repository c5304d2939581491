"""`homework make`: a complete, runnable copy of the project in which the chosen exercises are stubs.

The copy holds the files of the project: those git tracks when the source is a git checkout (so
untracked runs and caches stay behind), otherwise every file except virtualenvs, run directories,
caches and .git. It also gets ``homework.json``, the exercises assigned (what ``homework grade``
grades by default, and their points). The source is never modified; the destination must not exist.
"""
import json
import os
import shutil
import subprocess

from rlref.errors import HomeworkDirectoryError, HomeworkError
from rlref.homework.exercises import EXERCISES, lookup
from rlref.homework.stubs import stub_source, student_notebook

SKIP_DIRS = {".git", ".venv", "venv", "runs", "__pycache__", ".pytest_cache", ".ipynb_checkpoints",
             "build", "dist"}
MANIFEST = "homework.json"


def project_root():
    """The folder holding this rlref package (the reference the homework is cut from)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def project_files(root):
    """Relative paths of the project's files: what git tracks or would track (not ignored), or a
    walk without SKIP_DIRS when the project is not a git checkout."""
    if os.path.isdir(os.path.join(root, ".git")) or os.path.isfile(os.path.join(root, ".git")):
        done = subprocess.run(["git", "-C", root, "ls-files", "-z", "--cached", "--others", "--exclude-standard"], capture_output=True, text=True)
        if done.returncode == 0:
            return [p for p in done.stdout.split("\0") if p and os.path.isfile(os.path.join(root, p))]
    files = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        files += [os.path.relpath(os.path.join(folder, n), root) for n in sorted(names)
                  if not n.endswith((".pyc", ".pyo"))]
    return files


def make(out, tags=None, source=None):
    """Write the student version of `source` (default: this project) into `out`, with the exercises
    `tags` (None: all of them) stubbed. Returns the exercises assigned."""
    source = os.path.abspath(source or project_root())
    exercises = list(EXERCISES) if tags is None else lookup(tags)
    if not exercises:
        raise HomeworkError("no exercise chosen: give --exercises TAG ... or --all")
    if os.path.lexists(out):
        raise HomeworkDirectoryError(f"--out {out} already exists; homework make writes only into a new "
                                     f"folder (remove it or choose another name)")
    files = project_files(source)
    wanted = {e.path for e in exercises}
    missing = sorted(wanted - set(files))
    if missing:
        raise HomeworkError(f"{source} is not a complete rlref project: missing {missing}")
    edited = _edited_files(source, exercises)
    out = os.path.abspath(out)
    os.makedirs(out)
    for rel in files:
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if rel in edited:
            with open(dest, "w", encoding="utf-8", newline="") as f:
                f.write(edited[rel])
        else:
            shutil.copy2(os.path.join(source, rel), dest)
    with open(os.path.join(out, MANIFEST), "w") as f:
        json.dump({"exercises": [e.tag for e in exercises],
                   "points": {e.tag: e.points for e in exercises}}, f, indent=1)
        f.write("\n")
    return exercises


def _edited_files(source, exercises):
    """{relative path: new text} for every file an exercise changes (all stubs of a file together)."""
    edited = {}
    for e in exercises:
        if e.path not in edited:
            with open(os.path.join(source, e.path), encoding="utf-8", newline="") as f:
                edited[e.path] = f.read()
    for path in edited:
        mine = [e for e in exercises if e.path == path]
        if path.endswith(".ipynb"):
            nb = student_notebook(json.loads(edited[path]), mine, path)
            edited[path] = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
        else:
            for e in mine:
                edited[path] = stub_source(edited[path], e)
    return edited


def assigned(root):
    """The exercises of a student folder's homework.json (all of them when it has none)."""
    manifest = os.path.join(root, MANIFEST)
    if not os.path.isfile(manifest):
        return list(EXERCISES)
    with open(manifest) as f:
        return lookup(json.load(f)["exercises"])
