"""`homework make`: a complete, runnable copy of the project in which the chosen exercises are stubs.

The copy holds the files git tracks (in a checkout that is not a git repository: every file but
virtualenvs, run directories, caches and .git), minus what stays with the instructor: the hidden
tests (tests/hidden/), the tests of the homework machinery itself (tests/test_homework*.py and
their kit, which hold answers to plant bugs in), and the assignment record (homework.json). ``make``
says what it left out: untracked files by name, ignored ones by count.

No answer of an assigned exercise leaves with the copy:

- every assigned function becomes a stub (rlref/homework/stubs.py), and every function the table
  cuts with it (``also_cut``) a stub or its stand-in (rlref/homework/standins.py);
- every assigned notebook exercise's solution regions are cleared, nbgrader style, and so are those
  of every notebook exercise whose solution answers an assigned exercise (``answers``);
- a notebook with an assigned exercise keeps no output; in the others, every code cell that names
  an assigned or cut function (``inspect.getsource(gae)``, or a call whose printed result came from
  the reference) or holds a cleared solution loses its outputs, and the rest keep theirs;
- then the leak search (rlref/homework/leaks.py) looks for every assigned answer in every file of
  the copy, and ``make`` returns what it found (the command line prints it as a warning).

The copy gets ``homework.json``, the assignment, and with ``record=True`` (the command line) the
source checkout gets the instructor's record of it (rlref/homework/assignment.py), which ``homework
grade`` grades by. The destination must not exist; the source is never modified otherwise.
"""
import hashlib
import json
import os
import shutil
import subprocess

from rlref.errors import HomeworkDirectoryError, HomeworkError
from rlref.homework import assignment, leaks, splice
from rlref.homework.exercises import EXERCISES, Exercise, answering, lookup
from rlref.homework.standins import standin_text
from rlref.homework.stubs import nbgrader_source, release, stub_source

SKIP_DIRS = {".git", ".venv", "venv", "runs", "__pycache__", ".pytest_cache", ".ipynb_checkpoints",
             "build", "dist"}
INSTRUCTOR_ONLY = ("tests/hidden/", "tests/test_homework", "tests/homework_kit.py", assignment.MANIFEST)


def project_root():
    """The folder holding this rlref package (the reference the homework is cut from)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _git(root, *args):
    done = subprocess.run(["git", "-C", root, "ls-files", "-z", *args], capture_output=True, text=True)
    return None if done.returncode != 0 else [p for p in done.stdout.split("\0") if p]


def project_files(root):
    """(files to ship, files left out): git's tracked files, or a walk without SKIP_DIRS, minus
    INSTRUCTOR_ONLY; left out lists untracked files by name and counts ignored ones."""
    tracked = _git(root, "--cached") if os.path.exists(os.path.join(root, ".git")) else None
    if tracked is not None:
        files = [p for p in tracked if os.path.isfile(os.path.join(root, p))]
        untracked = _git(root, "--others", "--exclude-standard") or []
        ignored = _git(root, "--others", "--ignored", "--exclude-standard") or []
        left = sorted(untracked) + ([f"({len(ignored)} files git ignores: virtualenvs, caches, runs)"] if ignored else [])
    else:
        files, left = [], [f"(folders {', '.join(sorted(SKIP_DIRS))}: not a git checkout, so not by name)"]
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
            files += [os.path.relpath(os.path.join(folder, n), root) for n in sorted(names)
                      if not n.endswith((".pyc", ".pyo"))]
    mine = [p for p in files if p.startswith(INSTRUCTOR_ONLY)]
    return [p for p in files if p not in mine], mine + left


def make(out, tags=None, source=None, record=False, nbgrader=None):
    """Write the student version of `source` (default: this project) into `out` with the exercises
    `tags` (None: all) stubbed; with `nbgrader` a folder, also the nbgrader source version of every
    notebook with an assigned exercise into it (nbgrader's generate_assignment on it gives the
    notebook in `out`). Returns {"exercises", "shipped", "left_out", "record", "leaks", "kept"}, leaks
    the findings of the leak search on the copy (rlref/homework/leaks.py; none, normally), and
    "kept" the package functions that answer an assigned notebook exercise (kept_answers)."""
    source = os.path.abspath(source or project_root())
    exercises = list(EXERCISES) if tags is None else lookup(tags)
    if not exercises:
        raise HomeworkError("no exercise chosen: give --exercises TAG ... or --all")
    if os.path.lexists(out) and not (os.path.isdir(out) and not os.path.islink(out) and not os.listdir(out)):
        raise HomeworkDirectoryError(f"--out {out} already exists and is not an empty folder; homework make writes "
                                     f"only into a new or empty folder (remove it or choose another name)")
    files, left_out = project_files(source)
    missing = sorted({e.path for e in exercises} - set(files))
    if missing:
        raise HomeworkError(f"{source} is not a complete rlref project: missing {missing} (or not tracked by git)")
    out = os.path.abspath(out)
    if nbgrader is not None and (os.path.abspath(nbgrader) + os.sep).startswith(out + os.sep):
        raise HomeworkDirectoryError(f"--nbgrader-source {nbgrader} is inside --out {out}: it holds the solutions")
    edited, sources = _edited_files(source, exercises)
    os.makedirs(out, exist_ok=True)                          # new, or empty (checked above)
    if nbgrader is not None:
        os.makedirs(nbgrader, exist_ok=True)
        for rel, text in sources.items():
            with open(os.path.join(nbgrader, os.path.basename(rel)), "w", encoding="utf-8") as f:
                f.write(text)
    shipped = {}
    for rel in files:
        dest = os.path.join(out, rel)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if rel in edited:
            with open(dest, "w", encoding="utf-8", newline="") as f:
                f.write(edited[rel])
        else:
            shutil.copy2(os.path.join(source, rel), dest)
        with open(dest, "rb") as f:
            shipped[rel] = hashlib.sha256(f.read()).hexdigest()
    assignment.write(os.path.join(out, assignment.MANIFEST), assignment.student_copy(exercises))
    path = os.path.join(source, assignment.MANIFEST) if record else None
    if record:
        assignment.write(path, assignment.record(exercises, out, shipped, left_out, source))
    found = leaks.search(out, [e.tag for e in exercises], source)
    return {"exercises": exercises, "shipped": sorted(shipped), "left_out": left_out, "record": path, "leaks": found,
            "kept": kept_answers(exercises)}


def kept_answers(exercises):
    """[(notebook exercise, function exercise)]: an assigned notebook exercise that re-implements a
    function of the package whose exercise is not assigned, so the package keeps its answer (cutting
    the function would break the package for the student: assign both when that matters)."""
    tags = {e.tag for e in exercises}
    return [(e.tag, t) for e in exercises for t in e.answers if t not in tags]


def cuts(exercise):
    """The table entries stubbed for an exercise: itself (a function) and what it cuts with it."""
    own = [exercise] if not exercise.is_notebook else []
    return own + [Exercise(exercise.tag, target, f"cut with exercise {exercise.tag}: {exercise.todo}", 0)
                  for target in exercise.also_cut]


def cut_source(text, c):
    """A file's text with the table entry c cut: its stand-in for the whole def, or the stub."""
    standin = standin_text(c.target)
    if standin is None:
        return stub_source(text, c)
    return splice.replace(text, c.qualname, standin, c.path)[0]


def hidden_names(exercises):
    """The names of the assigned and cut functions: a notebook cell that names one loses its outputs."""
    return {c.qualname.rpartition(".")[2] for e in exercises for c in cuts(e)}


def _notebook_text(nb):
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _edited_files(source, exercises):
    """({relative path: new text} for every file an exercise changes (all stubs of a file together),
    {notebook: its nbgrader source version} for the notebooks with an assigned exercise)."""
    edited, sources = {}, {}
    cut = [c for e in exercises for c in cuts(e)]
    cleared = answering([e.tag for e in exercises])
    paths = [c.path for c in cut] + [e.path for e in exercises if e.is_notebook] + [p for p, _ in cleared]
    paths += [e.path for e in EXERCISES if e.is_notebook]              # every notebook: outputs that name a cut function
    for path in paths:
        if path not in edited and os.path.exists(os.path.join(source, path)):
            with open(os.path.join(source, path), encoding="utf-8", newline="") as f:
                edited[path] = f.read()
    names = hidden_names(exercises)
    for path in edited:
        if path.endswith(".ipynb"):
            mine = [e for e in exercises if e.path == path and e.is_notebook]
            nb = nbgrader_source(json.loads(edited[path]), mine, path, [t for p, t in cleared if p == path], names)
            edited[path] = _notebook_text(release(nb, path))
            if mine:
                sources[path] = _notebook_text(nb)
        else:
            for c in cut:
                if c.path == path:
                    edited[path] = cut_source(edited[path], c)
    return edited, sources
