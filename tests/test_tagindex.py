"""The equation tags gathered from the repository (rlref/tagindex.py), on small made-up projects
whose answers are written here by hand, and the notation page's tag index against the real one."""
import json
import os
import re

import pytest

from rlref import tagindex
from rlref.homework.make import project_root
from rlref.site import notebook_summaries, package_modules
from rlref.tagindex import citing_tests, code_citations, gather, typeset_tags, with_anchors

ROOT = project_root()


def notebook(*markdown):
    return {"cells": [{"cell_type": "markdown", "metadata": {}, "source": text} for text in markdown]
            + [{"cell_type": "code", "metadata": {"rlref": {"exercise": "09.1", "role": "solution"}},
                "source": "x = 1", "outputs": []}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def test_typeset_tags_are_found_in_markdown_only():
    nb = notebook("intro", "so\n$$\na = b \\tag{AB.1}\n$$\nand $$c \\tag{AB.12}$$")
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": "# \\tag{AB.3}", "outputs": []})
    assert typeset_tags(nb) == {"AB.1": [1], "AB.12": [1]}


def test_anchors_go_on_their_own_line_before_the_block_that_typesets_the_tag():
    nb = with_anchors(notebook("Some text:\n$$\na = b\n\\qquad c \\tag{AB.1}\n$$\nmore",
                               "- item\n\n  $$ x \\tag{AB.2} $$\n\n$$\ny\n$$"))
    first, second = nb["cells"][0]["source"], nb["cells"][1]["source"]
    assert first == "Some text:\n\n(eq-AB.1)=\n$$\na = b\n\\qquad c \\tag{AB.1}\n$$\nmore"
    assert second == "- item\n\n  (eq-AB.2)=\n  $$ x \\tag{AB.2} $$\n\n$$\ny\n$$"


def test_an_exercise_gets_a_target_cell_before_its_first_cell():
    cells = with_anchors(notebook("a"))["cells"]
    assert [c["source"] for c in cells] == ["a", "(exercise-09.1)=", "x = 1"]
    assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", cells[1]["id"])     # nbformat 4.5 cell id


def test_code_citations_name_the_innermost_function_and_its_api_entry(tmp_path):
    write(str(tmp_path / "rlref" / "algos" / "toy.py"), '''"""Toy: y = x (TOY.1)."""


class Box:
    def step(self):
        return 1   # (TOY.2)


def outer():
    def inner():
        return 2   # (TOY.3), not (TOY.30 nor TOY.4)
    return inner


def _private():
    """(TOY.2) again"""
''')
    write(str(tmp_path / "rlref" / "homework" / "table.py"), '# (TOY.9) names tags as data\n')
    assert code_citations(str(tmp_path)) == {
        "TOY.1": [("rlref.algos.toy", "", "")],
        "TOY.2": [("rlref.algos.toy", "Box.step", "Box.step"), ("rlref.algos.toy", "_private", "_private")],
        "TOY.3": [("rlref.algos.toy", "outer.inner", "outer")]}


def test_tests_cite_a_tag_by_mark_or_by_name(tmp_path):
    write(str(tmp_path / "tests" / "test_toy.py"), '''import pytest


@pytest.mark.exercise("TOY.1")
def test_marked():
    pass


def test_named():
    """checks (TOY.2)"""


def test_not_a_prefix():
    """TOY.21 and xTOY.2 are other names"""


class TestBox:
    def test_method(self):
        assert "TOY.1"
''')
    assert citing_tests(str(tmp_path), ["TOY.1", "TOY.2"]) == {
        "TOY.1": ["test_toy.py::test_marked", "test_toy.py::TestBox.test_method"],
        "TOY.2": ["test_toy.py::test_named"]}


def test_every_typeset_tag_is_gathered_once_in_course_order():
    rows = gather(ROOT)
    tags = [row["tag"] for row in rows]
    assert len(tags) == len(set(tags))
    with open(os.path.join(ROOT, "notebooks", "00_backprop_and_gradcheck.ipynb"), encoding="utf-8") as f:
        first = list(typeset_tags(json.load(f)))
    assert tags[:len(first)] == first


def test_the_notation_page_indexes_every_tag_once():
    """Every tag the notebooks typeset, the code cites or the homework assigns is defined once in the
    tag index of docs/notation.md, and the index lists no tag that is used nowhere."""
    with open(os.path.join(ROOT, "docs", "notation.md"), encoding="utf-8") as f:
        text = f.read()
    index = text[text.index("## Tag index"):]
    listed = re.findall(r"^\| \(([A-Z]+\.\d+)\) \|", index, re.M)
    assert len(listed) == len(set(listed)), "a tag is listed twice"
    used = {row["tag"] for row in gather(ROOT)}
    assert sorted(used - set(listed)) == [], "used but not in the tag index of docs/notation.md"
    assert sorted(set(listed) - used) == [], "in the tag index of docs/notation.md but used nowhere"


def test_notebook_summaries_come_from_the_table_of_notebooks_readme():
    text = "| notebook | what |\n|---|---|\n| `05_ppo.ipynb` | the clip | \n| `x.ipynb` | no |\n"
    assert notebook_summaries(text) == {"05_ppo.ipynb": "the clip"}


def test_every_module_gets_an_api_page():
    modules = package_modules(ROOT)
    assert {"rlref", "rlref.nn", "rlref.algos", "rlref.algos.ppo", "rlref.site"} <= set(modules)
    assert "rlref.__main__" not in modules


def test_free_text_in_the_tags_page_reads_as_written():
    """An exercise's description such as 'the bound on |J - L_old|' is text, not reStructuredText
    markup (|...| was an undefined substitution, which failed the site's build)."""
    docutils_core = pytest.importorskip("docutils.core")
    text = "the bound on |J - L_old| of *x* and `y` by a\\b"
    doctree = docutils_core.publish_doctree(tagindex._plain(text), settings_overrides={"report_level": 5})
    assert not [n for n in doctree.findall() if n.tagname == "system_message"]
    assert doctree.astext() == text
