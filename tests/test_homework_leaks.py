"""No student version holds an assigned exercise's answer: the leak search (rlref/homework/leaks.py)
on versions made with --all and with a handful of exercises, the leaks it must find when one is
planted, and what `make` cuts and clears so that there are none. About 5 s."""
import copy
import dataclasses
import inspect
import json
import os

import numpy as np
import pytest

from rlref.advantages import gae
from rlref.algos import npg
from rlref.homework import leaks, make as make_module, standins, stubs
from rlref.homework.exercises import EXERCISES
from rlref.homework.make import make
from rlref.policy import init_policy, policy_forward
from helpers import ROOT
from homework_kit import instructor_checkout

HANDFUL = ["GAE.2", "PPO.4", "NORM.1", "TRPO.6", "DIST.2", "05.1"]


def _read(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        return f.read()


def _notebook(root, rel):
    return json.loads(_read(root, rel))


@pytest.fixture(scope="module")
def versions(tmp_path_factory):
    base = tmp_path_factory.mktemp("leaks")
    return {name: (str(base / name), make(str(base / name), tags))
            for name, tags in (("all", None), ("handful", HANDFUL))}


def test_every_answer_has_statements_to_search_for():
    for e in EXERCISES:
        found = leaks.answers(ROOT, e.tag)
        assert all(found.values()), (e.tag, found)          # the search is never vacuous
    assert "rlref/algos/dppo.py:rms_unmerge" in leaks.answers(ROOT, "NORM.1")
    assert "notebooks/05_ppo.ipynb:05.2" in leaks.answers(ROOT, "PPO.4")
    assert "notebooks/05_ppo.ipynb:05.4" in leaks.answers(ROOT, "NORM.1")      # not graded, still an answer


@pytest.mark.parametrize("name", ["all", "handful"])
def test_student_versions_hold_no_assigned_answer(versions, name):
    folder, made = versions[name]
    tags = [e.tag for e in made["exercises"]]
    assert made["leaks"] == [] and leaks.search(folder, tags, ROOT) == []
    wheres = {where for where, _ in leaks.haystacks(folder)}
    assert "tests/test_exercises_core.py" in wheres and "rlref/advantages.py" in wheres
    if name == "handful":               # with --all every notebook has an assigned exercise (06 too, since 06.1-06.4)
        assert any(w.startswith("notebooks/06_dppo.ipynb cell") and " output " in w for w in wheres), \
            "a notebook without an assigned exercise keeps its other outputs, and the search reads them"


def test_make_cuts_and_clears_what_answers_an_assigned_exercise(versions):
    folder, _ = versions["handful"]
    nb01 = _notebook(folder, "notebooks/02_actor_critic.ipynb")
    nb00 = _notebook(folder, "notebooks/00_backprop_and_gradcheck.ipynb")
    for c in nb01["cells"] + nb00["cells"]:
        text = "".join(c["source"])
        if c["cell_type"] == "code" and ("getsource(gae)" in text or "getsource(fisher_vector_product)" in text):
            assert c["outputs"] == [], text                 # the source of GAE.2 and TRPO.6, printed
        if c.get("metadata", {}).get("rlref") == {"exercise": "02.1", "role": "solution"}:
            assert "raise NotImplementedError()" in text and "nbgrader" not in c["metadata"]   # GAE by hand: ungraded
    assert sum(bool(c.get("outputs")) for c in nb01["cells"]) > 12, "notebook 02 keeps its other outputs"
    nb04 = _notebook(folder, "notebooks/05_ppo.ipynb")
    cleared = {c["metadata"]["rlref"]["exercise"] for c in nb04["cells"]
               if "raise NotImplementedError()" in "".join(c["source"])}
    assert cleared == {"05.1", "05.2", "05.4"}              # assigned; banded beta (PPO.4); reward scaling (NORM.1)
    assert 'raise NotImplementedError("Exercise NORM.1: cut with exercise NORM.1' in _read(folder, "rlref/algos/dppo.py")
    assert _read(folder, "rlref/algos/npg.py") == _read(ROOT, "rlref/algos/npg.py")       # MLP.2 not assigned
    everything, _ = versions["all"]
    npg_text = _read(everything, "rlref/algos/npg.py")
    assert standins.standin_text("rlref/algos/npg.py:per_sample_grads") in npg_text      # MLP.2 cut: the stand-in
    assert versions["handful"][1]["kept"] == [("05.1", "PPO.2")] and versions["all"][1]["kept"] == []
    left_out = versions["all"][1]["left_out"]
    assert "tests/test_homework_redteam.py" in left_out and "tests/homework_kit.py" in left_out
    assert not os.path.exists(os.path.join(everything, "tests", "test_homework.py"))


def test_the_search_finds_a_cut_relation_that_is_missing(tmp_path, monkeypatch):
    """make with an also_cut entry and an `answers` relation dropped: the search, which reads the
    table as it is, finds what was left."""
    lookup = make_module.lookup
    monkeypatch.setattr(make_module, "lookup", lambda tags: [dataclasses.replace(e, also_cut=()) for e in lookup(tags)])
    monkeypatch.setattr(make_module, "answering", lambda tags: [])
    found = make(str(tmp_path / "v"), ["NORM.1", "PPO.4"])["leaks"]
    origins = {(f.tag, f.origin, f.where.split(" cell")[0]) for f in found}
    assert ("NORM.1", "rlref/algos/dppo.py:rms_unmerge", "rlref/algos/dppo.py") in origins, origins
    assert ("NORM.1", "notebooks/05_ppo.ipynb:05.4", "notebooks/05_ppo.ipynb") in origins, origins
    assert ("PPO.4", "notebooks/05_ppo.ipynb:05.2", "notebooks/05_ppo.ipynb") in origins, origins


def test_the_search_finds_printed_sources_when_make_keeps_the_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(make_module, "hidden_names", lambda exercises: set())     # no output cleared by name
    found = make(str(tmp_path / "v"), ["GAE.2"])["leaks"]
    assert found and all(f.where.startswith("notebooks/02_actor_critic.ipynb cell ") and " output " in f.where
                         for f in found), found                  # print(inspect.getsource(gae)), stored


def _output_cell(source, text):
    return {"cell_type": "code", "execution_count": 1, "id": f"planted{abs(hash(source)) % 10**8}", "metadata": {},
            "source": source, "outputs": [{"name": "stdout", "output_type": "stream", "text": text}]}


def test_the_search_finds_a_planted_output_and_make_clears_one_that_names_the_function(tmp_path):
    source = instructor_checkout(str(tmp_path / "repo"))
    printed = inspect.getsource(gae)
    rel = "notebooks/04_trpo.ipynb"                         # no exercise of the handful in it
    nb = _notebook(source, rel)
    nb["cells"].insert(3, _output_cell("print(inspect.getsource(gae))", printed))
    with open(os.path.join(source, rel), "w", encoding="utf-8") as f:
        json.dump(nb, f)
    assert make(str(tmp_path / "named"), HANDFUL, source=source)["leaks"] == []    # cleared: the cell names gae
    nb["cells"].insert(4, _output_cell("print(open(advantages_path).read())", printed))
    with open(os.path.join(source, rel), "w", encoding="utf-8") as f:
        json.dump(nb, f)
    found = make(str(tmp_path / "unnamed"), HANDFUL, source=source)["leaks"]
    assert found and {f.where for f in found} == {f"{rel} cell 4 output 0"}, found
    assert {f.tag for f in found} == {"GAE.2"}


def test_normalize_and_names():
    assert leaks.normalize("a = b  # note\n  + c  # more") == "a=b+c"
    assert stubs.names_any("x = gae(r)", {"gae"}) and stubs.names_any("advantages.gae", {"gae"})
    assert not stubs.names_any("my_gae(r)", {"gae"}) and not stubs.names_any("gaelic", {"gae"})


@pytest.mark.parametrize("gaussian", [False, True])
def test_the_per_sample_stand_in_agrees_with_the_reference(gaussian):
    rng = np.random.default_rng(3)
    policy = init_policy([3, 5, 4, 3], rng, gaussian=gaussian, out_gain=1.0)
    _, cache = policy_forward(policy, rng.standard_normal((6, 3)))
    ddist = tuple(rng.standard_normal((2, 6, 3)) for _ in range(2)) if gaussian else rng.standard_normal((2, 6, 3))
    want = npg.per_sample_grads(copy.deepcopy(ddist), cache)
    got = standins.per_sample_grads(ddist, cache)
    assert got.shape == want.shape and np.abs(got - want).max() < 1e-12 * max(1.0, np.abs(want).max())
