"""nbgrader itself, on rlref's notebooks: `homework make --nbgrader-source` writes nbgrader's source
version, nbgrader's generate_assignment releases exactly the student notebook of `make`, and
nbgrader's autograde of a right and a wrong submission gives the points rlref's grader gives.

nbgrader is optional (requirements-nbgrader.txt, which .ci/run installs); without it this skips.
Notebook 00 is used because it runs in seconds: autograde executes every cell. About 40 s.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest

from rlref.homework.exercises import BY_TAG
from rlref.homework.grade import grade
from rlref.homework.make import make
from rlref.homework.stubs import BEGIN, END
from helpers import ENV, ROOT
from homework_kit import notebook_with

pytest.importorskip("nbgrader", reason="nbgrader is optional: pip install -r requirements-nbgrader.txt (CI does)")

NOTEBOOK = "notebooks/00_backprop_and_gradcheck.ipynb"
TAGS = ["00.1", "00.3", "00.4"]
WRONG = {"00.3": """
    def reverse_kl(z, z_old):
        p = Categorical(z).probs
        return (p * (np.log(p) - np.log(Categorical(z_old).probs))).sum(axis=1)


    def reverse_kl_grad(z, z_old):
        p = Categorical(z).probs
        return p * (np.log(p) - np.log(Categorical(z_old).probs))              # the mean is not subtracted
"""}


def _nbgrader(course, *args):
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--force"], cwd=course, capture_output=True,
                          text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]


def _reference_solution(tag):
    cells = [c for c in json.load(open(os.path.join(ROOT, NOTEBOOK), encoding="utf-8"))["cells"]
             if c.get("metadata", {}).get("rlref") == {"exercise": tag, "role": "solution"}]
    return "\n".join(line for line in "".join(cells[0]["source"]).split("\n") if line.strip() not in (BEGIN, END))


def _submission(student, dest, wrong=()):
    """The student version with every assigned solution written in: the reference's, or WRONG's."""
    shutil.copytree(student, dest)
    path = os.path.join(dest, NOTEBOOK)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    for tag in TAGS:
        text = notebook_with(text, tag, "solution", WRONG[tag] if tag in wrong else _reference_solution(tag))
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return dest


def test_nbgrader_releases_the_student_notebook_and_grades_like_rlref(tmp_path):
    course, student = tmp_path / "course", str(tmp_path / "hw")
    make(student, TAGS, nbgrader=str(course / "source" / "hw"))
    name = os.path.basename(NOTEBOOK)
    _nbgrader(course, "generate_assignment", "hw")
    released = json.load(open(course / "release" / "hw" / name, encoding="utf-8"))
    mine = json.load(open(os.path.join(student, NOTEBOOK), encoding="utf-8"))
    assert ["".join(c["source"]) for c in released["cells"]] == ["".join(c["source"]) for c in mine["cells"]]
    keys = ("grade_id", "solution", "grade", "points")
    for theirs, ours in zip(released["cells"], mine["cells"]):
        want = {k: theirs["metadata"]["nbgrader"].get(k) for k in keys} if "nbgrader" in theirs["metadata"] else None
        got = {k: ours["metadata"]["nbgrader"].get(k) for k in keys} if "nbgrader" in ours["metadata"] else None
        assert got == want, ("".join(ours["source"])[:200], got, want)
    submissions = {"right": (), "wrong": ("00.3",)}
    for student_id, wrong in submissions.items():
        sub = _submission(student, str(tmp_path / student_id), wrong)
        os.makedirs(course / "submitted" / student_id / "hw")
        shutil.copy(os.path.join(sub, NOTEBOOK), course / "submitted" / student_id / "hw" / name)
    _nbgrader(course, "autograde", "hw")
    from nbgrader.api import Gradebook
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        theirs = {sid: {g.name: g.score for g in gb.find_submission_notebook(name[:-6], "hw", sid).grades}
                  for sid in submissions}
    for student_id, wrong in submissions.items():
        ours = {r["tag"]: r["points"] for r in grade(str(tmp_path / student_id), TAGS)["exercises"]}
        want = {t: 0 if t in wrong else BY_TAG[t].points for t in TAGS}
        assert ours == want, (student_id, ours)
        assert {t: theirs[student_id][f"ex{t.replace('.', '_')}-check"] for t in TAGS} == want, (student_id, theirs)
