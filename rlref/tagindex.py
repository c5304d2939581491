"""The equation tags of the course, gathered from the repository: where each is derived, computed,
assigned and tested.

An equation carries one stable tag, ``(ALG.n)``: the notebook that derives it typesets it with
``\\tag{PPO.2}`` in a markdown cell, the code that computes it cites ``# (PPO.2)``, the homework table
(rlref/homework/exercises.py) may assign it as an exercise, and the tests that check it are marked
``@pytest.mark.exercise("PPO.2")`` or name it. The functions here read those four places and
return plain dicts; rlref/site.py turns them into the site's page of tags. Nothing here imports the
code it reads: modules and tests are parsed with ``ast``, notebooks read as JSON.
"""
import ast
import glob
import json
import os
import re

from rlref.homework.commands import marked_tests
from rlref.homework.exercises import EXERCISES

TAG = r"[A-Z]{1,6}\.\d{1,3}"                           # MLP.2, DIST.7, OFF.0, V.1, DPPO.5
TYPESET = re.compile(r"\\tag\{(" + TAG + r")\}")       # \tag{PPO.2} in a notebook's markdown
CITED = re.compile(r"\((" + TAG + r")\)")              # (PPO.2) in a comment or docstring
NAMED = re.compile(r"(?<![\w.])(" + TAG + r")(?!\w)")    # a whole tag: not the head of a longer one, nor the tail of a name
NOT_CODE = ("rlref/homework/", "rlref/tagindex.py", "rlref/site.py")   # they name tags as data
NOT_TESTS = ("test_homework.py",)                      # tests of the grader, which names tags as data


def label(tag):
    """The site's reference label of the place a notebook typesets `tag`: eq-PPO.2."""
    return "eq-" + tag


def typeset_tags(notebook):
    """{tag: [markdown cell indices]} of the \\tag{...} a notebook (its JSON as a dict) typesets."""
    found = {}
    for index, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] == "markdown":
            for tag in TYPESET.findall(_text(cell["source"])):
                found.setdefault(tag, []).append(index)
    return found


def with_anchors(notebook):
    """A copy of `notebook` whose markdown carries a MyST target, ``(eq-PPO.2)=``, on the line
    before the $$ block that typesets each tag, so that a page can link to the equation itself."""
    notebook = json.loads(json.dumps(notebook))
    for cell in notebook["cells"]:
        if cell["cell_type"] != "markdown" or not TYPESET.search(_text(cell["source"])):
            continue
        lines = _text(cell["source"]).split("\n")
        opening = None                                   # the line of the $$ that opens the block
        marks = {}                                       # opening line -> tags of its block
        for i, line in enumerate(lines):
            if line.strip().startswith("$$") and opening is None:
                opening = i
            for tag in TYPESET.findall(line):
                marks.setdefault(i if opening is None else opening, []).append(tag)
            if line.strip().endswith("$$") and opening is not None and (i > opening or line.strip() != "$$"):
                opening = None
        for i in sorted(marks, reverse=True):
            indent = lines[i][:len(lines[i]) - len(lines[i].lstrip())]
            blank = [""] if i > 0 and lines[i - 1].strip() else []      # a target starts a block
            lines[i:i] = blank + [indent + f"({label(tag)})=" for tag in marks[i]]
        cell["source"] = "\n".join(lines)
    return _exercise_anchors(notebook)


def _exercise_anchors(notebook):
    """Put a markdown cell holding the target ``(exercise-00.1)=`` before the first cell of each
    notebook exercise (cells with {"rlref": {"exercise": TAG}} metadata)."""
    cells, seen = [], set()
    for cell in notebook["cells"]:
        tag = cell.get("metadata", {}).get("rlref", {}).get("exercise")
        if tag and tag not in seen:
            seen.add(tag)
            cells.append({"cell_type": "markdown", "id": "rlref-exercise-" + tag.replace(".", "-"),
                          "metadata": {}, "source": f"(exercise-{tag})="})
        cells.append(cell)
    notebook["cells"] = cells
    return notebook


def code_citations(root):
    """{tag: [(module, qualname, entry)]}: the functions (qualname "Class.method") and modules
    (qualname "") of rlref/ whose source cites ``(TAG)``, in a comment, a docstring or a line of
    code; entry is the qualname an API page documents (see _defs)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(root, "rlref", "**", "*.py"), recursive=True)):
        if os.path.relpath(path, root).replace(os.sep, "/").startswith(NOT_CODE):
            continue
        module = os.path.relpath(path, root)[:-3].replace(os.sep, ".").removesuffix(".__init__")
        with open(path, encoding="utf-8") as f:
            source = f.read()
        owners = _owners(ast.parse(source))
        for number, line in enumerate(source.split("\n"), start=1):
            for tag in CITED.findall(line):
                place = (module, *owners.get(number, ("", "")))
                if place not in found.setdefault(tag, []):
                    found[tag].append(place)
    return found


def citing_tests(root, tags):
    """{tag: ["test_file.py::test_name"]}: tests marked @pytest.mark.exercise(TAG), and test
    functions whose source (decorators included) names the tag."""
    tests_dir, wanted = os.path.join(root, "tests"), set(tags)
    found = {tag: [n for n in names if not n.startswith("hidden/")]          # hidden tests stay private
             for tag, names in marked_tests(tests_dir).items() if tag in wanted}
    for path in sorted(glob.glob(os.path.join(tests_dir, "test_*.py"))):
        if os.path.basename(path) in NOT_TESTS:
            continue
        for name, source in sources_of_tests(path):
            test = f"{os.path.basename(path)}::{name}"
            for tag in dict.fromkeys(NAMED.findall(source)):
                if tag in wanted and test not in found.get(tag, []):
                    found.setdefault(tag, []).append(test)
    return found


def sources_of_tests(path):
    """[(name, source with decorators)] of the test functions of a test file, methods of test
    classes as "Class.name", in file order."""
    with open(path, encoding="utf-8") as f:
        source = f.read()
    lines = source.split("\n")
    found = []
    for node, prefix, _ in _defs(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test"):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            found.append((prefix + node.name, "\n".join(lines[first - 1:node.end_lineno])))
    return found


def exercises_by_tag():
    """{tag: Exercise} of the homework table (rlref/homework/exercises.py)."""
    return {e.tag: e for e in EXERCISES}


def gather(root):
    """One row per equation tag, in the order of the course (notebooks first, then the tags only
    the code cites): {"tag", "notebooks": [(notebook file, [cells])], "code": [(module, qualname, entry)],
    "exercise": Exercise or None, "tests": ["file::name"]}."""
    typeset = {}
    for path in sorted(glob.glob(os.path.join(root, "notebooks", "*.ipynb"))):
        with open(path, encoding="utf-8") as f:
            for tag, cells in typeset_tags(json.load(f)).items():
                typeset.setdefault(tag, []).append((os.path.basename(path), cells))
    code = code_citations(root)
    exercises = {tag: e for tag, e in exercises_by_tag().items() if re.fullmatch(TAG, tag)}
    order = list(typeset) + sorted(set(code) - set(typeset), key=_tag_key) \
        + sorted(set(exercises) - set(typeset) - set(code), key=_tag_key)
    tests = citing_tests(root, order)
    return [{"tag": tag, "notebooks": typeset.get(tag, []), "code": code.get(tag, []),
             "exercise": exercises.get(tag), "tests": tests.get(tag, [])} for tag in order]


def _tag_key(tag):
    family, _, number = tag.partition(".")
    return family, int(number)


def _text(source):
    return source if isinstance(source, str) else "".join(source)


def _defs(tree, prefix="", entry=None):
    """(node, "Outer.", entry) for every function and class, nested ones with their owners' names;
    entry is the qualname of the object an API page documents for it (a function nested in a
    function has its outer function's entry)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            own = entry or prefix + node.name
            yield node, prefix, own
            inner = None if isinstance(node, ast.ClassDef) else own
            yield from _defs(node, prefix + node.name + ".", inner)


def _owners(tree):
    """{line number: (qualname, entry) of the innermost function or class holding that line}."""
    owners = {}
    for node, prefix, entry in sorted(_defs(tree), key=lambda item: item[0].lineno):
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        for number in range(first, node.end_lineno + 1):
            owners[number] = (prefix + node.name, entry)  # inner definitions come later: they win
    return owners


def tags_page(rows):
    """The site's tags.rst from the rows of gather(): one row per equation tag with links to its
    derivation (the anchor at the equation in the notebook), the code citing it, its exercise and
    its tests; then the notebook exercises."""
    table = [_row(["tag", "derived in", "computed or cited by", "exercise", "tests"])]
    for row in rows:
        derived = [f":ref:`{name[:-6]} <{label(row['tag'])}>`" for name, _ in row["notebooks"]]
        code = sorted(row["code"], key=lambda place: (place[1] == "", place))       # functions first
        table.append(_row([f"**{row['tag']}**", ", ".join(derived) or "(no notebook typesets it)",
                           ", ".join(_code_link(*place) for place in code) or "none",
                           _exercise_link(row["exercise"]), ", ".join(map(_test_link, row["tests"])) or "none"]))
    notebook = [_row(["exercise", "notebook", "what the student writes", "points"])]
    for e in EXERCISES:
        if e.is_notebook:
            name = os.path.basename(e.path)[:-6]
            notebook.append(_row([f"**{e.tag}**", f":ref:`{name} <exercise-{e.tag}>`", _plain(e.todo),
                                  str(e.points)]))
    return TAGS_PAGE.format(count=len(rows), table="\n".join(table), notebook="\n".join(notebook))


def _plain(text):
    """Free text as reStructuredText shows it verbatim: |x| would be a substitution, *x* emphasis."""
    return "".join("\\" + c if c in "\\*`|_" else c for c in text)


def _row(cells):
    return "   * - " + "\n     - ".join(cell.replace("\n", " ") for cell in cells)


def _code_link(module, qualname, entry):
    """A link to the API entry of a public object, else to its place in the module's source listing."""
    if not qualname:
        return f":py:mod:`{module}` (docstring)"
    if any(part.startswith("_") for part in entry.split(".")):      # no API entry: the source listing
        return f"`{qualname} <_modules/{module.replace('.', '/')}.html>`__"
    return f":py:obj:`{qualname} <{module}.{entry}>`"


def _exercise_link(exercise):
    if exercise is None:
        return "none"
    module, _, name = exercise.target.partition(":")
    dotted = module[:-3].replace("/", ".").removesuffix(".__init__")
    return f":py:obj:`{name} <{dotted}.{name}>` ({exercise.points} point{'s' * (exercise.points != 1)})"


def _test_link(test):
    path, _, name = test.partition("::")
    return f":ref:`{name} <{label_of_test(path, name)}>`"


def label_of_test(path, name):
    return f"test-{path[:-3]}-{name}"


def pages_of_tests(root, rows):
    """{"tests/test_x.rst": text} for every test file that holds a test the rows of gather() cite,
    each test a section with its source; and tests/index.rst listing them."""
    cited = {test.partition("::")[0] for row in rows for test in row["tests"]}
    pages = {}
    for path in sorted(cited):
        sections = []
        for name, source in sources_of_tests(os.path.join(root, "tests", path)):
            code = "\n".join("   " + line if line.strip() else "" for line in source.split("\n"))
            title = f"``{name}``"
            sections.append(f".. _{label_of_test(path, name)}:\n\n{title}\n{'-' * len(title)}\n\n"
                            f".. code-block:: python\n\n{code}\n")
        title = f"tests/{path}"
        pages[f"tests/{path[:-3]}.rst"] = f"{title}\n{'=' * len(title)}\n\n" + "\n".join(sections)
    entries = "\n".join(f"   {path[:-3]}" for path in sorted(cited))
    pages["tests/index.rst"] = TESTS_INDEX + entries + "\n"
    return pages


TAGS_PAGE = """Equation tags
=============

Every equation of the course carries a tag such as (PPO.2). The notebook that derives it typesets the
tag; the code that computes it cites ``# (PPO.2)``; the homework may ask a student to write that code
(``python -m rlref homework list``); and tests check it. This page is generated from the repository
when the site is built: {count} tags. A link under *derived in* goes to the equation in its notebook.

.. list-table::
   :header-rows: 1
   :class: tags

{table}

Exercises inside the notebooks
------------------------------

.. list-table::
   :header-rows: 1

{notebook}
"""

TESTS_INDEX = """The tests the tags cite
=======================

The test files that check a tagged equation, each test with its source. Run them with
``python -m pytest tests/FILE.py``.

.. toctree::
   :maxdepth: 1

"""
