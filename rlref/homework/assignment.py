"""The assignment: which exercises are graded, for how many points. It comes from the instructor.

``homework make`` writes ``homework.json`` twice: into the student version (so a student's own
``homework grade`` knows what to grade), and into the project it was made from, the instructor's
checkout, with what was shipped (every file and its SHA-256) and what was left out. ``homework
grade`` reads the assignment from the homework.json of the project that runs it, or from
``--exercises``, and never from the submission: a submission's homework.json is only compared, and
a disagreement is noted in the results. ``homework autograder`` puts the same record in its zip.
"""
import json
import os
import subprocess

from rlref.errors import HomeworkError
from rlref.homework.exercises import lookup

MANIFEST = "homework.json"


def load(root, tags=None):
    """(exercises, where they came from): --exercises when given, else ROOT/homework.json."""
    if tags:
        return lookup(tags), "--exercises"
    path = os.path.join(root, MANIFEST)
    if not os.path.isfile(path):
        raise HomeworkError(f"no assignment: {path} does not exist. Run `python -m rlref homework make` from this "
                            f"checkout (it records the assignment there), or give --exercises TAG ...")
    try:
        with open(path) as f:
            tags = json.load(f)["exercises"]
    except (ValueError, KeyError, TypeError) as err:
        raise HomeworkError(f"{path} is not an assignment record ({type(err).__name__}: {err})") from None
    return lookup(tags), path


def student_copy(exercises):
    """What a student version's homework.json holds."""
    return {"exercises": [e.tag for e in exercises], "points": {e.tag: e.points for e in exercises},
            "note": "written by `python -m rlref homework make`; the grader takes the assignment from the instructor's "
                    "copy, not from this file"}


def record(exercises, out, shipped, left_out, source):
    """The instructor's record of a student version (see the module docstring)."""
    commit = subprocess.run(["git", "-C", source, "rev-parse", "HEAD"], capture_output=True, text=True)
    return {**student_copy(exercises), "note": "the assignment `python -m rlref homework grade` grades, recorded by "
            "`homework make`", "total": sum(e.points for e in exercises), "student_version": os.path.abspath(out),
            "made_from": commit.stdout.strip() if commit.returncode == 0 else None, "shipped": shipped,
            "left_out": left_out}


def json_text(data):
    return json.dumps(data, indent=1) + "\n"


def write(path, data):
    with open(path + ".part", "w") as f:
        f.write(json_text(data))
    os.replace(path + ".part", path)


def disagreement(listed, exercises):
    """A note when the submission's homework.json (its list, or why it cannot be read) differs."""
    if listed is None:
        return ""
    if isinstance(listed, str):
        return f"note: the submission's homework.json was ignored ({listed}); graded the instructor's assignment"
    want = [e.tag for e in exercises]
    if sorted(listed) != sorted(want):
        return (f"note: the submission's homework.json lists {listed}, the assignment is {want}; the assignment "
                f"was graded (the grader never takes the exercise list from a submission)")
    return ""
