"""Notebook exercises for the grader: their solution cells, the code they run after, and running both.

A notebook exercise (``05.1``) owns the cells tagged ``{"rlref": {"exercise": "05.1", "role":
"solution" | "check"}}`` in the reference notebook; a student notebook made by ``homework make``
carries nbgrader's ``grade_id`` on them too (``ex04_1-solution``), and either identifies them.

For grading, the solution cells are the only cells taken from the student's notebook. They run
after the notebook's setup, always taken from the instructor's copy, which the table chooses per
exercise (``setup=`` in rlref/homework/exercises.py):

- ``"imports"`` (the default): the import statements of the code cells before the exercise's first
  solution cell, each on its own (one that fails, like matplotlib where it is not installed, is
  skipped). Enough for an exercise that defines functions of NumPy and rlref.
- ``"cells"``: every code cell before the first solution cell, errors skipped, with the solution
  regions of the other assigned exercises cleared, for an exercise whose solution uses variables
  the notebook computed earlier. Slower: those cells run in every grade.

IPython magics (lines starting with ``%`` or ``!``) become ``pass``. The check cells never run in a
grade: each notebook exercise's tests restate them as a probe and a judge
(tests/test_exercises_notebooks.py), because a check cell run next to student code can be fooled.
"""
import ast
import json
import types

from rlref.errors import HomeworkError
from rlref.homework.stubs import clear_solution, grade_id


def source_of(cell):
    src = cell.get("source", "")
    text = "".join(src) if isinstance(src, list) else src
    if not isinstance(text, str):
        raise HomeworkError("a notebook cell's source is neither text nor a list of lines")
    return text


def without_magics(text):
    """The cell's code with IPython magic and shell lines replaced by `pass` (same indentation)."""
    lines = []
    for line in text.split("\n"):
        body = line.lstrip()
        lines.append(line[:len(line) - len(body)] + "pass" if body.startswith(("%", "!")) else line)
    return "\n".join(lines)


def cell_tag(cell, role):
    """The exercise tag of a cell with this role, from rlref's metadata or nbgrader's grade_id."""
    meta = cell.get("metadata") or {}
    info = meta.get("rlref") if isinstance(meta.get("rlref"), dict) else {}
    if info.get("role") == role and isinstance(info.get("exercise"), str):
        return info["exercise"]
    nbg = meta.get("nbgrader") if isinstance(meta.get("nbgrader"), dict) else {}
    gid = nbg.get("grade_id")
    if isinstance(gid, str) and gid.startswith("ex") and gid.endswith("-" + role):
        return gid[2:-len(role) - 1].replace("_", ".")
    return None


def solution_cells(nb, tag, path="notebook"):
    """[(cell index, source)] of the exercise's solution cells, in order."""
    cells = nb.get("cells") if isinstance(nb, dict) else None
    if not isinstance(cells, list):
        raise HomeworkError(f"{path} is not a notebook (no list of cells)")
    found = [(i, source_of(c)) for i, c in enumerate(cells) if isinstance(c, dict) and
             c.get("cell_type") == "code" and cell_tag(c, "solution") == tag]
    if not found:
        raise HomeworkError(f"{path} has no solution cell of exercise {tag} (nbgrader grade_id "
                            f"{grade_id(tag, 'solution')!r})")
    return found


def setup_code(nb, exercise, clear=()):
    """The instructor's code that runs before the exercise's solution cells (module docstring)."""
    first = solution_cells(nb, exercise.tag, exercise.path)[0][0]
    before = [c for c in nb["cells"][:first] if isinstance(c, dict) and c.get("cell_type") == "code"]
    if exercise.setup == "cells":
        return [clear_solution(without_magics(source_of(c))) if cell_tag(c, "solution") in clear
                else without_magics(source_of(c)) for c in before]
    imports = []
    for c in before:
        try:
            tree = ast.parse(without_magics(source_of(c)))
        except SyntaxError:
            continue
        imports += [ast.unparse(s) for s in tree.body if isinstance(s, (ast.Import, ast.ImportFrom))]
    return imports


def run_code(setup, cells):
    """Run the setup (each piece on its own, errors skipped), then the solution cells (errors
    propagate, with the cell's name as the file name); returns the namespace."""
    ns = {"__name__": "__main__"}
    for text in setup:
        try:
            exec(compile(text, "<notebook setup>", "exec"), ns)
        except Exception:                   # a plotting import without matplotlib, and the like
            pass
    for name, text in cells:
        exec(compile(without_magics(text), name, "exec"), ns)
    return ns


class Namespace(types.SimpleNamespace):
    """What a notebook probe receives: the names the solution cells defined, as attributes."""

    def __getattr__(self, name):
        raise NameError(f"the solution cells define no {name!r}")


def namespace_of(path, tag):
    """The namespace of a notebook's own solution cells of `tag` (pytest runs: this folder's copy)."""
    from rlref.homework.exercises import lookup
    with open(path, encoding="utf-8") as f:
        nb = json.load(f)
    cells = [(f"<solution cell {i} of exercise {tag}>", text) for i, text in solution_cells(nb, tag, path)]
    ns = run_code(setup_code(nb, lookup([tag])[0]), cells)
    return Namespace(**{k: v for k, v in ns.items() if not k.startswith("__")})
