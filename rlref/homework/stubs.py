"""Student versions cut from the reference: function bodies by ``ast``, notebook cells by nbgrader's rules.

Function exercises. The generator parses the file, finds the function (or method ``Class.name``) of
the exercise, and keeps

1. the ``def`` line(s) with the signature, and the docstring (shapes, the equation tag);
2. the input checks: the longest run of statements right after the docstring that are checks, where
   a check is a ``raise`` (other than of NotImplementedError); a call (bare, or assigned: ``x = require_array(...)``) of a function whose
   name starts with ``require_``, ``check_``, ``_check`` or ``check``; or an ``if`` whose branches
   hold only checks (``if check: a = self._check_actions(a)``, ``if n == 0: raise ...``).

Everything after is replaced by ``raise NotImplementedError("Exercise TAG: <todo>")``, indented like
the body. Only the body's line range changes: every other byte of the file stays as it was, so the
reference code needs no marker comments and diffs between versions show exactly the exercise.

Notebook exercises follow nbgrader. ``nbgrader_source`` gives the cells of the assigned exercises
nbgrader's metadata (the solution cell that of an autograded answer, the check cell that of an
autograder test with the exercise's points) and leaves solution regions in those cells only; then
``release`` does what nbgrader's ClearSolutions does: in each solution cell, each region from
``### BEGIN SOLUTION`` to ``### END SOLUTION`` (delimiters included) becomes the nbgrader stub
``# YOUR CODE HERE`` / ``raise NotImplementedError()``, indented like the delimiter. nbgrader's own
``generate_assignment`` on the source version gives the student notebook (tests/test_homework_nbgrader.py).
Which outputs a student notebook keeps: rlref/homework/make.py.
"""
import ast
import copy
import json
import re

from rlref.errors import HomeworkError

CHECK_PREFIXES = ("require_", "check_", "_check", "check")
NBGRADER_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


# ------------------------------------------------------------------ function exercises

def find_function(tree, qualname, path="<source>"):
    """The FunctionDef of "name" or "Class.name" at the top level of a module's tree."""
    body, node = tree.body, None
    for part in qualname.split("."):
        node = next((n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and n.name == part), None)
        if node is None:
            raise HomeworkError(f"{path} has no {qualname!r} (looked for {part!r}); the exercise table's "
                                f"target must name a top-level function or a method of a top-level class")
        body = node.body
    if not isinstance(node, ast.FunctionDef):
        raise HomeworkError(f"{path}:{qualname} is a class, not a function")
    return node


def _call_name(node):
    if isinstance(node, (ast.Assign, ast.AnnAssign, ast.Expr)) and isinstance(node.value, ast.Call):
        func = node.value.func
        return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return None


def is_check(node):
    """Whether a statement is an input check (see the module docstring)."""
    if isinstance(node, ast.Raise):                    # a stub's NotImplementedError is no input check
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        return getattr(exc, "id", "") != "NotImplementedError"
    if isinstance(node, ast.If):
        return all(is_check(n) for n in node.body + node.orelse)
    name = _call_name(node)
    return bool(name) and name.startswith(CHECK_PREFIXES)


def kept_statements(func):
    """The docstring and the leading input checks of a function's body (the statements kept)."""
    body = list(func.body)
    kept = []
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        kept.append(body.pop(0))
    while body and is_check(body[0]):
        kept.append(body.pop(0))
    if not body:
        raise HomeworkError(f"{func.name} has nothing to cut after its docstring and input checks")
    return kept, body


def stub_message(exercise):
    return f"Exercise {exercise.tag}: {exercise.todo}"


def stub_source(source, exercise):
    """The source with the exercise's function body (after docstring and checks) replaced by the stub."""
    tree = ast.parse(source)
    func = find_function(tree, exercise.qualname, exercise.path)
    _, cut = kept_statements(func)
    lines = source.splitlines(keepends=True)
    first, last = cut[0].lineno - 1, func.end_lineno             # 0-based start, exclusive end
    indent = lines[first][:len(lines[first]) - len(lines[first].lstrip())]
    stub = f"{indent}raise NotImplementedError({json.dumps(stub_message(exercise))})\n"
    return "".join(lines[:first]) + stub + "".join(lines[last:])


def reference_body(source, exercise):
    """The lines of the reference body that stub_source cuts (to put back or to compare)."""
    tree = ast.parse(source)
    func = find_function(tree, exercise.qualname, exercise.path)
    _, cut = kept_statements(func)
    lines = source.splitlines(keepends=True)
    return "".join(lines[cut[0].lineno - 1:func.end_lineno])


def restore_source(student_source, reference_source, exercise):
    """The student source with the stub of `exercise` replaced by the reference body."""
    tree = ast.parse(student_source)
    func = find_function(tree, exercise.qualname, exercise.path)
    _, cut = kept_statements(func)
    lines = student_source.splitlines(keepends=True)
    return ("".join(lines[:cut[0].lineno - 1]) + reference_body(reference_source, exercise)
            + "".join(lines[func.end_lineno:]))


def is_stub(source, exercise):
    """Whether the exercise's function in `source` is the generated stub."""
    func = find_function(ast.parse(source), exercise.qualname, exercise.path)
    _, cut = kept_statements(func)
    return len(cut) == 1 and isinstance(cut[0], ast.Raise) and f"Exercise {exercise.tag}:" in ast.unparse(cut[0])


# ------------------------------------------------------------------ notebook exercises

def _lines(cell):
    src = cell["source"]
    return ("".join(src) if isinstance(src, list) else src).split("\n")


def clear_solution(text):
    """nbgrader's ClearSolutions on one cell's source: every BEGIN..END region becomes the stub."""
    out, inside = [], False
    for line in text.split("\n"):
        if line.strip() == BEGIN:
            if inside:
                raise HomeworkError("a solution cell opens '### BEGIN SOLUTION' twice without an END")
            inside = True
            indent = line[:len(line) - len(line.lstrip())]
            out += [indent + s for s in NBGRADER_STUB]
        elif line.strip() == END:
            if not inside:
                raise HomeworkError("a solution cell has '### END SOLUTION' without a BEGIN")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise HomeworkError("a solution cell has '### BEGIN SOLUTION' without an END")
    return "\n".join(out)


def grade_id(tag, role):
    """nbgrader ids are letters, digits, '_' and '-': "00.1" -> "ex00_1-solution"."""
    return "ex" + tag.replace(".", "_") + "-" + role


def nbgrader_metadata(role, tag, points):
    meta = {"schema_version": 3, "grade_id": grade_id(tag, role), "task": False}
    if role == "solution":
        return {**meta, "solution": True, "grade": False, "locked": False}
    return {**meta, "solution": False, "grade": True, "locked": True, "points": points}


def names_any(text, names):
    """Whether the code text names one of `names` (as a whole identifier: `gae`, not `my_gae`)."""
    return any(re.search(rf"(?<!\w){re.escape(n)}\b", text) for n in names)


def nbgrader_source(nb, exercises, path="notebook", cleared=(), names=()):
    """The notebook of a student version before its solutions are cleared: what nbgrader calls the
    source version (rlref/homework/make.py's module docstring has the rules).

    The given exercises' cells get nbgrader metadata and keep their solution regions; the exercises
    `cleared` (tags) are cleared already, ungraded; every other exercise keeps its solution without
    the two delimiter lines, so that a region is left only where nbgrader must clear one. No output
    is kept in a notebook with a given exercise, else none in the cells that name one of `names` or
    hold a cleared solution."""
    nb = copy.deepcopy(nb)
    wanted = {e.tag: e for e in exercises}
    found = {t: set() for t in list(wanted) + list(cleared)}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        info = cell.get("metadata", {}).get("rlref", {})
        tag, role = info.get("exercise"), info.get("role")
        text = "\n".join(_lines(cell))
        if wanted or (tag in cleared and role == "solution") or names_any(text, names):
            cell["outputs"], cell["execution_count"] = [], None
        if tag in found:
            found[tag].add(role)
        if tag in wanted:
            cell["metadata"]["nbgrader"] = nbgrader_metadata(role, tag, wanted[tag].points)
        if role != "solution" or tag in wanted:
            continue
        if BEGIN not in text and tag in cleared:
            raise HomeworkError(f"{path}: the solution cell of exercise {tag} has no '{BEGIN}' region")
        kept = clear_solution(text) if tag in cleared else "\n".join(
            line for line in text.split("\n") if line.strip() not in (BEGIN, END))
        _set_source(cell, kept)
    missing = [t for t, roles in found.items() if roles != {"solution", "check"}]
    if missing:
        raise HomeworkError(f"{path} lacks a solution cell and a check cell tagged with exercise(s) {missing} "
                            f"(cell metadata {{'rlref': {{'exercise': TAG, 'role': 'solution' | 'check'}}}})")
    return nb


def release(nb, path="notebook"):
    """nbgrader's ClearSolutions on a source version: the regions of its solution cells cleared."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and (cell.get("metadata", {}).get("nbgrader") or {}).get("solution"):
            text = "\n".join(_lines(cell))
            if BEGIN not in text:
                raise HomeworkError(f"{path}: a solution cell ({cell['metadata']['nbgrader']['grade_id']}) has "
                                    f"no '{BEGIN}' region")
            _set_source(cell, clear_solution(text))
    return nb


def _set_source(cell, text):
    lines = text.split("\n")
    cell["source"] = [line + "\n" for line in lines[:-1]] + [lines[-1]]
