"""What a grade is built from: the grader's checkout as text, the student's answers, the trees of each run.

``Base`` reads the grader's own checkout (the instructor's, or a student's folder grading itself):
rlref's Python files, the public test modules (tests/test_exercises_*.py) and the hidden ones
(tests/hidden/, and any --tests folder). Every assigned function exercise, and every function the
table cuts with it (``also_cut``), is replaced by a stub that only raises: that is the tree the
judge imports, and the tree every sandbox run starts from, so no assigned reference body is ever
where student code can read it (a cut function with a stand-in, rlref/homework/standins.py, gets the
stand-in, which holds no answer). A run of exercise X then gets the student's defs of X and of the
assigned exercises X's tests run (its ``deps``), spliced where the stubs are; in a rerun that grades
X on a reference dependency, the reference def of that dependency instead.

``answers`` takes from a submission only what is assigned: each function's def (rlref/homework/
splice.py) and each notebook exercise's solution cells (rlref/homework/notebooks.py). A problem
with one answer (file missing, syntax error, no such def) is that exercise's failure message.
"""
import glob
import json
import os
from dataclasses import dataclass

from rlref.errors import HomeworkError
from rlref.homework import notebooks, splice
from rlref.homework.make import cuts
from rlref.homework.standins import standin_text
from rlref.homework.stubs import is_stub

PUBLIC_TESTS = "tests/test_exercises_*.py"
HIDDEN_TESTS = "tests/hidden"


@dataclass
class Answer:
    label: str = ""               # the submission's file
    definition: splice.Def = None
    cells: list = None            # [(name, source)] of a notebook exercise
    error: str = ""


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _write(dest, files):
    for rel, text in files.items():
        path = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(path, 0o644)


class Base:
    def __init__(self, root, exercises, hidden_dirs=(), local=False):
        self.root, self.exercises = root, exercises
        self.package = {os.path.relpath(p, root): _read(p) for p in sorted(glob.glob(os.path.join(root, "rlref", "**", "*.py"),
                                                                                    recursive=True))}
        self.public = {os.path.basename(p): _read(p) for p in sorted(glob.glob(os.path.join(root, PUBLIC_TESTS)))}
        if not self.public:
            raise HomeworkError(f"{root} has no public exercise tests ({PUBLIC_TESTS})")
        self.hidden = {}
        for folder in [os.path.join(root, HIDDEN_TESTS), *hidden_dirs]:
            for p in sorted(glob.glob(os.path.join(folder, "test_*.py"))):
                if os.path.basename(p) in self.public:
                    continue                                  # --tests pointing at the public tests
                self.hidden[os.path.basename(p)] = _read(p)
        self.stubbed = dict(self.package)
        self.reference = {}
        for e in exercises:
            for c in cuts(e):
                path, qualname = c.path, c.qualname
                if path not in self.stubbed:
                    raise HomeworkError(f"{root} has no {path} (exercise {e.tag})")
                if c.target == e.target and not local and not _is_stub(self.package[path], e):
                    self.reference[e.tag] = splice.take(self.package[path], qualname, path)
                cut = standin_text(c.target) if c.target != e.target else None
                self.stubbed[path] = splice.replace(self.stubbed[path], qualname,
                                                    cut or splice.stub_text(qualname, e.tag), path)[0]

    def judge_tree(self, dest):
        _write(dest, {**self.stubbed, **{f"tests/{n}": t for n, t in self.public.items()},
                      **{f"tests/hidden/{n}": t for n, t in self.hidden.items()}})

    def run_tree(self, dest, defs):
        """Write a run's tree: the stubbed package with `defs` ({exercise: (Def, label)}) spliced in,
        and the public tests. Returns the line map [(file, first line, lines, label, student's line)]."""
        files, lines = dict(self.stubbed), []
        for e, (definition, label) in defs.items():
            files[e.path], first = splice.replace(files[e.path], e.qualname, definition.text, e.path)
        for e, (definition, label) in defs.items():     # line numbers after every splice of the file
            first = splice.locate(files[e.path], e.qualname)[0] + 1
            lines.append((e.path, first, definition.text.count("\n"), label, definition.line))
        _write(dest, {**files, **{f"tests/{n}": t for n, t in self.public.items()}})
        return lines

    def notebook_setup(self, exercise, assigned):
        nb = json.loads(_read(os.path.join(self.root, exercise.path)))
        clear = {e.tag for e in assigned if e.path == exercise.path and e.tag != exercise.tag}
        return notebooks.setup_code(nb, exercise, clear)


def _is_stub(text, exercise):
    try:
        return is_stub(text, exercise)
    except (HomeworkError, SyntaxError, ValueError):
        return True                                       # cannot tell: treat as no reference


def answers(sub, exercises):
    """{tag: Answer} for the assigned exercises, from a rlref.homework.submission.Submission."""
    found = {}
    for e in exercises:
        try:
            if e.is_notebook:
                holds = lambda nb, tag=e.tag: _has_solution(nb, tag)
                path, nb = sub.notebook(e.path, holds)
                if path is None:
                    raise HomeworkError(f"the submission has no {e.path} (looked for it by path, by name and by its cells)")
                cells = [(f"<solution cell {i} of exercise {e.tag} in {path}>", text)
                         for i, text in notebooks.solution_cells(nb, e.tag, path)]
                found[e.tag] = Answer(label=path, cells=cells)
            else:
                path = sub.find(e.path)
                if path is None:
                    raise HomeworkError(f"the submission has no {e.path} (looked for it by path and by name)")
                found[e.tag] = Answer(label=path, definition=splice.take(sub.text(path), e.qualname, path))
        except HomeworkError as err:
            found[e.tag] = Answer(error=str(err))
    return found


def _has_solution(nb, tag):
    try:
        return bool(notebooks.solution_cells(nb, tag))
    except HomeworkError:
        return False
