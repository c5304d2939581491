"""Grading tests of the notebook exercises: run the notebook, then read its check cells.

``homework grade`` sets RLREF_HOMEWORK_NOTEBOOKS=1; then each notebook of an exercise being graded
runs once, top to bottom, in a fresh kernel on this Python (nbclient, errors allowed so that one
exercise's error does not stop the others), and an exercise passes when its solution and check cells
ran without an error. Nothing is written back: the executed copy lives in memory. In the ordinary
suite these tests skip, since nbval already runs every notebook (and so every check cell) there.
"""
import os

import pytest

from rlref.homework.exercises import EXERCISES
from rlref.homework.make import project_root

NOTEBOOK_EXERCISES = [e for e in EXERCISES if e.is_notebook]
_executed = {}


def executed(path):
    """The notebook at `path`, executed once per session (a dict of nbformat cells)."""
    if path not in _executed:
        import nbformat
        from nbclient import NotebookClient
        nb = nbformat.read(path, as_version=4)
        client = NotebookClient(nb, timeout=600, kernel_name="python3", allow_errors=True,
                                resources={"metadata": {"path": os.path.dirname(path)}})
        client.execute()
        _executed[path] = nb
    return _executed[path]


def first_error(cell):
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return f"{out['ename']}: {out['evalue']}".splitlines()[0]
    return None


@pytest.mark.parametrize("exercise", [pytest.param(e, marks=pytest.mark.exercise(e.tag), id=e.tag)
                                      for e in NOTEBOOK_EXERCISES])
def test_notebook_exercise_check_cells_pass(exercise):
    if os.environ.get("RLREF_HOMEWORK_NOTEBOOKS") != "1":
        pytest.skip("notebook exercises are graded by `python -m rlref homework grade`; in the suite, nbval "
                    "runs every notebook and so every check cell")
    nb = executed(os.path.join(project_root(), exercise.path))
    cells = [c for c in nb.cells if c.get("metadata", {}).get("rlref", {}).get("exercise") == exercise.tag]
    assert {c.metadata["rlref"]["role"] for c in cells} >= {"solution", "check"}, \
        f"{exercise.path} has lost the solution or check cell of exercise {exercise.tag}"
    for role in ("solution", "check"):
        for c in cells:
            if c.metadata["rlref"]["role"] == role and first_error(c):
                raise AssertionError(f"{role} cell of exercise {exercise.tag}: {first_error(c)}")
