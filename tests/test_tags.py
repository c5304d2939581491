"""One tag per equation, in both directions.

Each notebook opens with a tag table ("| tag | quantity | code |"): it defines the tags of the
equations that notebook derives and names the code that computes them. rlref/ cites tags as (PPO.2)
in comments and docstrings. These tests hold the two sides together:

- every tag cited in rlref/ (and every equation tag of a homework exercise) is defined in exactly
  one notebook's table;
- every tag a table defines is cited in rlref/, where it is computed, unless the table says the
  notebook derives it itself ("derived here"), in which case that notebook typesets it (\\tag{...});
- every tag a notebook typesets is in that notebook's table;
- the equation behind a tag the code computes is written out in a docstring, the tag at the end of
  its line (an equation block that a reflow turned into prose fails here);
- every name a table gives in its code column exists.
"""
import ast
import importlib
import json
import re
from pathlib import Path

import pytest

from rlref.algos import ALGOS
from rlref.homework.exercises import EXERCISES

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
TAG = r"[A-Z]{1,6}\.\d+"
CITED = re.compile(r"\b([A-Z]{1,6})\.(\d+)(?:-(\d+))?\b")          # PPO.2, or the range TRPO.1-9
TABLE_TAG = re.compile(rf"\(({TAG})\)(?:\s*[–-]\s*\(({TAG})\))?")    # (PPO.2), or (DIST.1)–(DIST.4)


def expand(family, first, last=None):
    return [f"{family}.{n}" for n in range(int(first), int(last or first) + 1)]


def markdown(path):
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "markdown"]


def table_rows(path):
    """(tags, code column) of every row of the notebook's tag tables."""
    rows = []
    for text in markdown(path):
        lines = text.splitlines()
        for i, line in enumerate(lines):
            if not re.match(r"\|\s*tag\s*\|", line):
                continue
            for row in lines[i + 2:]:                                # after the header and |---|
                if not row.startswith("|"):
                    break
                cells = [c.strip() for c in row.strip("|").split("|")]
                tags = [t for m in TABLE_TAG.finditer(cells[0])
                        for t in expand(*m.group(1).split("."), m.group(2) and m.group(2).split(".")[1])]
                rows.append((tags, cells[-1]))
    return rows


def defined():
    """{tag: [notebook names whose tables define it]}."""
    out = {}
    for path in NOTEBOOKS:
        for tags, _ in table_rows(path):
            for tag in tags:
                out.setdefault(tag, []).append(path.name)
    return out


def cited_in_package():
    """{tag: [files of rlref/ that cite it]}."""
    out = {}
    for path in sorted((ROOT / "rlref").rglob("*.py")):
        for m in CITED.finditer(path.read_text()):
            for tag in expand(*m.groups()):
                out.setdefault(tag, []).append(str(path.relative_to(ROOT)))
    return out


def typeset(path):
    return {t for text in markdown(path) for t in re.findall(rf"\\tag\{{({TAG})\}}", text)}


def test_every_table_defines_some_tags():
    for path in NOTEBOOKS:
        assert sum(len(tags) for tags, _ in table_rows(path)) >= 5, path.name


def test_every_cited_tag_is_defined_in_exactly_one_table():
    tables = defined()
    twice = {tag: where for tag, where in tables.items() if len(where) > 1}
    assert not twice, f"tags defined by more than one table: {twice}"
    missing = {tag: where for tag, where in cited_in_package().items() if tag not in tables}
    assert not missing, f"tags cited in rlref/ that no notebook's tag table defines: {missing}"


def test_every_exercise_equation_tag_is_defined():
    tables = defined()
    tags = [e.tag for e in EXERCISES if re.fullmatch(TAG, e.tag)]
    assert len(tags) >= 10
    assert not [t for t in tags if t not in tables], "exercise tags missing from every tag table"


def test_every_defined_tag_is_cited_where_it_is_computed():
    cited = cited_in_package()
    for path in NOTEBOOKS:
        shown = typeset(path)
        for tags, code in table_rows(path):
            for tag in tags:
                if "derived here" in code:
                    assert tag in shown, f"{path.name} says it derives {tag} but never typesets \\tag{{{tag}}}"
                else:
                    assert tag in cited, f"{path.name}'s table defines {tag}, which rlref/ never cites"


def test_every_typeset_tag_is_in_its_notebooks_table():
    for path in NOTEBOOKS:
        listed = {tag for tags, _ in table_rows(path) for tag in tags}
        assert not typeset(path) - listed, f"{path.name} typesets {sorted(typeset(path) - listed)} without a table row"


def docstring_line_tags():
    """Tags that end a line of some docstring of rlref/ (a group of nothing but tags, or several)."""
    out = set()
    for path in sorted((ROOT / "rlref").rglob("*.py")):
        nodes = [n for n in ast.walk(ast.parse(path.read_text()))
                 if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef))]
        for doc in filter(None, (ast.get_docstring(n, clean=False) for n in nodes)):
            for line in doc.splitlines():
                tail = re.search(rf"((?:\(\s*{TAG}(?:-\d+)?(?:,\s*{TAG})*\s*\)[,\s]*)+)$", line.rstrip())
                if tail:
                    out.update(t for m in CITED.finditer(tail.group(1)) for t in expand(*m.groups()))
    return out


def test_the_equation_of_every_computed_tag_ends_a_docstring_line():
    written = docstring_line_tags()
    cited = cited_in_package()
    computed = {tag for path in NOTEBOOKS for tags, code in table_rows(path) for tag in tags
                if "derived here" not in code}
    assert not sorted(t for t in computed & set(cited) if t not in written), \
        "tags whose equation no docstring writes out (tag at the end of its line)"


def resolve(name, module):
    """The object a table's code column names: rlref.x.y, x.y (an algorithm or a core module), or a
    bare y of the module named before it in the same cell. Returns (object, its module)."""
    parts = name.split(".")
    if parts[0] != "rlref" and len(parts) > 1:
        parts = ["rlref", "algos", *parts] if parts[0] in ALGOS else ["rlref", *parts]
    elif parts[0] != "rlref":
        return getattr(module, name), module
    for k in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:k]))
        except ModuleNotFoundError:
            continue
        obj = found
        for attr in parts[k:]:
            obj = getattr(obj, attr)
        return obj, found
    raise ModuleNotFoundError(name)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name[:2])
def test_every_name_in_a_code_column_exists(path):
    for _, code in table_rows(path):
        module = None
        for name in re.findall(r"`([^`]+)`", code):
            name = name.split("(")[0]
            if "=" in name or "/" in name:                           # an argument, a file
                continue
            _, module = resolve(name, module)
