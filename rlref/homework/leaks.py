"""The leak search: does any file of a student version hold the answer of an assigned exercise?

An exercise's answer, as searched:

- a function exercise: every statement of its reference body (what the stub replaces; for a
  compound statement, its header, ``for ... in ...:``, and then its own statements), and of
  every function the table cuts with it (``also_cut``);
- a notebook exercise: every statement inside its solution regions (``### BEGIN SOLUTION`` ..
  ``### END SOLUTION``; a ``def`` line only through its body: the signature is in the exercise's text);
- and the solution statements of every notebook exercise whose ``answers`` name it;
- and, of each of those statements that assigns or returns a computation (an arithmetic operator)
  of MIN_EXPRESSION characters or more, that computation alone, whatever name it is bound to.

Each is compared as text with its comments and every whitespace character removed, so a statement
is found wherever it is written, reformatted or printed: in code, in a notebook cell's source, in a
stored output (``print(inspect.getsource(gae))``), in a test, in any other text file. Skipped: what
says nothing of an answer, shorter than MIN_CHARS once normalized or in GENERIC (the plumbing many
functions of rlref write, ``N = len(A_hat)``), and what the student version ships by design, a
statement that is also in the reference body of a function exercise not assigned (a notebook exercise
that re-implements such a function is what ``make`` notes as kept). A statement found in the stub's
own file, outside the stub, is a leak like any other.

``search(folder, tags, source)`` returns the findings; ``homework make`` runs it on every version it
writes (rlref/homework/make.py), and tests/test_homework_leaks.py on versions made with ``--all``
and with a handful of exercises, and on versions with a leak planted.
"""
import ast
import json
import os
import re
from dataclasses import dataclass

from rlref.homework.exercises import BY_TAG, EXERCISES, UNGRADED_ANSWERS
from rlref.homework.notebooks import source_of, without_magics
from rlref.homework.stubs import BEGIN, END, find_function, kept_statements

MIN_CHARS = 12
MIN_EXPRESSION = 30
# Statements of reference bodies that are plumbing, not an answer: the same in many functions.
GENERIC = frozenset({
    "N=len(A_hat)", "N=len(w)", "N=len(v)", "N=obs.shape[0]", "dist,cache=policy_forward(policy,obs)",
    "dist,cache=policy_forward(policy,obs,check=False)", "returnfvp", "grads_pi=policy_backward(ddist,cache_pi)",
    'params,hs,activation=cache["params"],cache["hs"],cache["activation"]', "forkinrange(1,L+1):",
    "for_inrange(iters):",
})
TEXT_SUFFIXES = (".py", ".md", ".txt", ".json", ".toml", ".cfg", ".ini", ".yml", ".yaml", ".sh", ".rst", ".csv")


@dataclass(frozen=True)
class Finding:
    tag: str          # the assigned exercise whose answer was found
    origin: str       # where the statement comes from in the reference ("rlref/advantages.py:gae")
    statement: str    # the statement, normalized
    where: str        # the student version's file, and the cell and part of a notebook


def normalize(text):
    """Comments and every whitespace character removed: the form in which statements are compared."""
    return re.sub(r"\s+", "", re.sub(r"#[^\n]*", "", text))


def _statements(nodes, lines, skip_defs=False):
    """The source text of every simple statement in nodes, and of the header of every compound one."""
    for node in nodes:
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and not isinstance(node, ast.ClassDef):
            if not (skip_defs and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))):
                yield _span(lines, node.lineno, node.col_offset, body[0].lineno, 0)
            yield from _statements(body, lines, skip_defs)
            for part in ("orelse", "finalbody"):
                yield from _statements(getattr(node, part, []) or [], lines, skip_defs)
            for handler in getattr(node, "handlers", []) or []:
                yield from _statements(handler.body, lines, skip_defs)
        else:
            yield _span(lines, node.lineno, node.col_offset, node.end_lineno, node.end_col_offset)


def _span(lines, l0, c0, l1, c1):
    """Source text from (l0, c0) to (l1, c1), 1-based lines; c1 = 0 with l1 means up to line l1."""
    if c1 == 0:
        return "".join(lines[l0 - 1:l1 - 1])[c0:]
    text = "".join(lines[l0 - 1:l1])
    return text[c0:len(text) - len(lines[l1 - 1]) + c1]


def _keep(statements):
    """The normalized statements worth searching for, and the right-hand side of every assignment
    or return that computes something (an arithmetic operator) and is long enough (MIN_EXPRESSION)
    to tell an answer on its own, whatever name it is bound to."""
    out = []
    for s in statements:
        n = normalize(s)
        rhs = re.match(r"^(?:return|[\w\[\]\"'.,{}()*+-]+?(?<![=!<>])=(?!=))(.+)$", n)
        arithmetic = rhs and len(rhs.group(1)) >= MIN_EXPRESSION and re.search(r"[-+*/@]", rhs.group(1))
        for needle in [n] + ([rhs.group(1)] if arithmetic else []):
            if len(needle) >= MIN_CHARS and needle not in GENERIC and needle not in out:
                out.append(needle)
    return out


def function_answer(source, path, qualname):
    """The normalized statements of a function's body after its docstring and input checks."""
    func = find_function(ast.parse(source), qualname, path)
    _, cut = kept_statements(func)
    return _keep(_statements(cut, source.splitlines(keepends=True)))


def solution_answer(nb, tag):
    """The normalized statements inside the solution regions of a notebook exercise's cells."""
    found = []
    for cell in nb.get("cells", []):
        info = (cell.get("metadata") or {}).get("rlref") or {}
        if cell.get("cell_type") != "code" or info.get("exercise") != tag or info.get("role") != "solution":
            continue
        text = without_magics(source_of(cell))
        lines = text.splitlines(keepends=True)
        inside, regions = None, []
        for i, line in enumerate(lines, 1):
            if line.strip() == BEGIN:
                inside = i
            elif line.strip() == END and inside:
                regions.append((inside, i))
                inside = None
        tree = ast.parse(text)
        stmts = [s for s in _flat(tree.body) if any(a < s.lineno < b for a, b in regions)]
        found += _statements(stmts, lines, skip_defs=True)
    return _keep(found)


def _flat(nodes):
    """Every statement, nested ones too, each once (compound ones without their bodies' walk)."""
    for node in nodes:
        body = getattr(node, "body", None)
        if isinstance(body, list) and not isinstance(node, ast.ClassDef):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from _flat(body)                       # a def: only its body is an answer
                continue
        yield node


def answers(source, tag):
    """{origin: [normalized statements]} of exercise `tag`'s answer in the reference at `source`."""
    e = BY_TAG[tag]
    found = {}
    if e.is_notebook:
        found[f"{e.path}:{tag}"] = solution_answer(_notebook(source, e.path), tag)
    else:
        found[e.target] = function_answer(_text(source, e.path), e.path, e.qualname)
    for target in e.also_cut:
        path, _, qualname = target.partition(":")
        found[target] = function_answer(_text(source, path), path, qualname)
    for path, other in answered_by(tag):
        found[f"{path}:{other}"] = solution_answer(_notebook(source, path), other)
    return found


def answered_by(tag):
    """[(notebook, tag)] of the notebook exercises whose solutions answer exercise `tag` too."""
    return [(e.path, e.tag) for e in EXERCISES if tag in e.answers] + \
        [(path, t) for t, (path, answered) in UNGRADED_ANSWERS.items() if tag in answered]


def _text(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def _notebook(root, rel):
    return json.loads(_text(root, rel))


def haystacks(folder):
    """(where, normalized text) of every text in a folder: files, and each notebook's cell sources
    and stored outputs apart."""
    for base, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__"))
        for name in sorted(names):
            path = os.path.join(base, name)
            rel = os.path.relpath(path, folder)
            if name.endswith(".ipynb"):
                yield from _notebook_texts(rel, _text(folder, rel))
            elif name.endswith(TEXT_SUFFIXES) or "." not in name:
                try:
                    yield rel, normalize(_text(folder, rel))
                except UnicodeDecodeError:
                    continue


def _notebook_texts(rel, text):
    try:
        nb = json.loads(text)
    except ValueError:
        yield rel, normalize(text)
        return
    for i, cell in enumerate(nb.get("cells", [])):
        yield f"{rel} cell {i} source", normalize(source_of(cell))
        for k, out in enumerate(cell.get("outputs", []) or []):
            parts = [out.get("text", "")] + list((out.get("data") or {}).values()) + [out.get("traceback", "")]
            blob = "\n".join("".join(p) if isinstance(p, list) else p for p in parts if isinstance(p, (str, list)))
            yield f"{rel} cell {i} output {k}", normalize(blob)


def search(folder, tags, source):
    """Every Finding of an answer of the exercises `tags` (cut from the reference at `source`) in
    the student version at `folder`. A statement that is also in the reference body of a function
    exercise not assigned is no finding: that body ships by design (a notebook exercise that
    re-implements it is what ``make`` notes as kept)."""
    shipped = {n for e in EXERCISES if not e.is_notebook and e.tag not in tags
               for n in function_answer(_text(source, e.path), e.path, e.qualname)}
    wanted = {tag: {origin: [n for n in statements if n not in shipped]
                    for origin, statements in answers(source, tag).items()} for tag in tags}
    findings = []
    for where, hay in haystacks(folder):
        for tag, origins in wanted.items():
            for origin, statements in origins.items():
                findings += [Finding(tag, origin, s, where) for s in statements if s in hay]
    return findings
