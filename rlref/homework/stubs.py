"""Student versions cut from the reference: function bodies by ``ast``, notebook cells by nbgrader's rules.

Function exercises. The generator parses the file, finds the function (or method ``Class.name``) of
the exercise, and keeps

1. the ``def`` line(s) with the signature, and the docstring (shapes, the equation tag);
2. the input checks: the longest run of statements right after the docstring that are checks, where
   a check is a ``raise`` (other than of NotImplementedError); a call (bare, or assigned: ``x = require_array(...)``) of a function whose
   name starts with ``require_``, ``check_``, ``_check`` or ``check``; or an ``if`` whose branches
   hold only checks (``if check: a = self._check_actions(a)``, ``if b_norm == 0.0: raise ...``).

Everything after is replaced by ``raise NotImplementedError("Exercise TAG: <todo>")``, indented like
the body. Only the body's line range changes: every other byte of the file stays as it was, so the
reference code needs no marker comments and diffs between versions show exactly the exercise.

Notebook exercises follow nbgrader's ClearSolutions: in the cells tagged with the exercise, each
region from ``### BEGIN SOLUTION`` to ``### END SOLUTION`` (delimiters included) becomes the
nbgrader stub ``# YOUR CODE HERE`` / ``raise NotImplementedError()``, indented like the delimiter.
Solution cells get the nbgrader metadata of an autograded answer, check cells that of an autograder
test with the exercise's points; every output of a student notebook is cleared.
"""
import ast
import copy
import json

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


def student_notebook(nb, exercises, path="notebook"):
    """A student copy of a notebook dict: the given exercises cleared, nbgrader metadata on their
    cells, every output cleared. Exercises not given keep their solutions."""
    nb = copy.deepcopy(nb)
    wanted = {e.tag: e for e in exercises}
    found = {t: set() for t in wanted}
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        cell["outputs"], cell["execution_count"] = [], None
        info = cell.get("metadata", {}).get("rlref", {})
        tag, role = info.get("exercise"), info.get("role")
        if tag not in wanted:
            continue
        found[tag].add(role)
        cell["metadata"]["nbgrader"] = nbgrader_metadata(role, tag, wanted[tag].points)
        if role == "solution":
            text = "\n".join(_lines(cell))
            if BEGIN not in text:
                raise HomeworkError(f"{path}: the solution cell of exercise {tag} has no '{BEGIN}' region")
            cleared = clear_solution(text).split("\n")
            cell["source"] = [line + "\n" for line in cleared[:-1]] + [cleared[-1]]
    missing = [t for t, roles in found.items() if roles != {"solution", "check"}]
    if missing:
        raise HomeworkError(f"{path} lacks a solution cell and a check cell tagged with exercise(s) {missing} "
                            f"(cell metadata {{'rlref': {{'exercise': TAG, 'role': 'solution' | 'check'}}}})")
    return nb
