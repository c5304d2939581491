"""One function's ``def``: find it in a file (even one that does not parse), take it, put it elsewhere.

The grader takes from a submitted file only the ``def`` of each assigned function, and grades it
inside the instructor's copy of that file (rlref/homework/grade.py). To keep a syntax error in one
exercise from costing the others of the same file, a def is found with ``ast`` when the file
parses, and otherwise by its text: the last ``def NAME(`` at the top level (or in the body of
``class CLASS`` for a method ``CLASS.NAME``), up to the next line indented no deeper. Either way
the def is then parsed on its own, and must be exactly one plain ``def NAME``.

Taken: the lines from ``def`` to the end of its body. Not taken: its decorators, comments around
it, and every other line of the student's file (helpers and imports there are never run).
"""
import ast
import re
from dataclasses import dataclass

from rlref.errors import HomeworkError


class DefError(HomeworkError):
    """A submitted def that cannot be graded: missing, not a plain def, or a syntax error in it."""


@dataclass(frozen=True)
class Def:
    text: str        # the def, dedented to column 0, ending with a newline
    line: int        # the line of `def` in its file (1-based)
    note: str = ""   # e.g. a syntax error elsewhere in the file


def _lines(text):
    """The lines of a source text as Python counts them (\\n, \\r\\n, \\r; not str.splitlines's form
    feeds and Unicode separators, which would shift every line number after them)."""
    return re.findall(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$", text)


def _parse(text):
    try:
        return ast.parse(text), None
    except (SyntaxError, ValueError, RecursionError, MemoryError) as err:
        return None, err


def _last(nodes, name, kinds):
    found = [n for n in nodes if isinstance(n, kinds) and n.name == name]
    return found[-1] if found else None


def _span_by_ast(tree, qualname):
    """(start, end, col) of the def, 0-based lines [start, end), or None."""
    body, node = tree.body, None
    *classes, name = qualname.split(".")
    for cls in classes:
        node = _last(body, cls, ast.ClassDef)
        if node is None:
            return None
        body = node.body
    node = _last(body, name, (ast.FunctionDef, ast.AsyncFunctionDef))
    return None if node is None else (node.lineno - 1, node.end_lineno, node.col_offset)


def _is_code(line):
    body = line.strip()
    return bool(body) and not body.startswith("#")


def _indent(line):
    return len(line) - len(line.lstrip(" \t"))


def _span_by_text(lines, qualname):
    """The same span found by indentation, for a file that does not parse."""
    *classes, name = qualname.split(".")
    lo, hi = 0, len(lines)
    if classes:
        starts = [i for i, line in enumerate(lines) if re.match(rf"class\s+{re.escape(classes[-1])}\b", line)]
        if not starts:
            return None
        lo = starts[-1] + 1
        hi = next((j for j in range(lo, len(lines)) if _is_code(lines[j]) and _indent(lines[j]) == 0), len(lines))
    pattern = re.compile(rf"(\s*)(async\s+)?def\s+{re.escape(name)}\s*\(")
    hits = [i for i in range(lo, hi) if (m := pattern.match(lines[i])) and (len(m.group(1)) > 0) == bool(classes)]
    if not hits:
        return None
    start = hits[-1]
    col = _indent(lines[start])
    end = next((j for j in range(start + 1, hi) if _is_code(lines[j]) and _indent(lines[j]) <= col), hi)
    while end > start + 1 and not _is_code(lines[end - 1]):
        end -= 1
    return start, end, col


def locate(text, qualname):
    """(start, end, col, parse error of the whole file or None), or None when there is no such def."""
    tree, err = _parse(text)
    lines = _lines(text)
    span = _span_by_ast(tree, qualname) if tree is not None else _span_by_text(lines, qualname)
    return None if span is None else (*span, err)


def _dedent(lines, col):
    """Remove up to `col` leading blanks of each line (lines of a string with less are kept whole)."""
    return "".join(line[min(col, _indent(line)):] if line.strip() else "\n" for line in lines)


def take(text, qualname, label):
    """The Def of `qualname` in a submitted file's text; DefError saying what is wrong."""
    name = qualname.rpartition(".")[2]
    found = locate(text, qualname)
    if found is None:
        raise DefError(f"{label} has no `def {qualname}`" + (" (its class is missing)" if "." in qualname else ""))
    start, end, col, file_err = found
    lines = _lines(text)
    body = _dedent(lines[start:end], col)
    if not body.endswith("\n"):
        body += "\n"
    tree, err = _parse(body)
    if tree is None:
        where = f" at line {start + err.lineno}" if getattr(err, "lineno", None) else ""
        raise DefError(f"{type(err).__name__} in `def {name}` of {label}{where}: {getattr(err, 'msg', err)}")
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef) or tree.body[0].name != name:
        raise DefError(f"`def {name}` of {label} (line {start + 1}) must be one plain def (not async, nothing after it)")
    note = ""
    if file_err is not None:
        note = (f"{label} has a {type(file_err).__name__} at line {getattr(file_err, 'lineno', '?')} outside "
                f"`def {name}`; only the def is graded")
    return Def(body, start + 1, note)


def replace(text, qualname, def_text, label):
    """The file text with the def of `qualname` replaced by def_text (indented to fit), and the
    1-based line where it now starts."""
    found = locate(text, qualname)
    if found is None:
        raise HomeworkError(f"{label} has no `def {qualname}` (the exercise table names it)")
    start, end, col, _ = found
    lines = _lines(text)
    pad = lines[start][:col]
    new = [pad + line if line.strip() else line for line in _lines(def_text)]
    return "".join(lines[:start] + new + lines[end:]), start + 1


def stub_text(qualname, tag):
    """A def of the same name that only raises: what the grader puts where an assigned exercise
    is not part of a run."""
    name = qualname.rpartition(".")[2]
    return (f"def {name}(*args, **kwargs):\n    raise NotImplementedError(\"Exercise {tag}: not part of this "
            f"grading run (only the tested exercise and its declared dependencies are)\")\n")
