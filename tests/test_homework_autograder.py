"""Gradescope's autograder zip, tried without Gradescope: unpacked into a temporary root laid out
like /autograder, run as Gradescope runs it (as root, no mount namespaces), on right, wrong and
tampering submissions; results.json checked against Gradescope's documented fields."""
import json
import os
import shutil
import pathlib
import stat
import subprocess
import sys
import tempfile
import zipfile

import pytest

from homework_kit import (check_results, cli_in, instructor_checkout, measure, points, submission, with_body,
                         with_reference)
from helpers import ENV, ROOT

ASSIGNED = ["PG.3", "GAE.1", "GAE.2", "05.2"]       # in the table's order
GRADESCOPE = {"RLREF_SANDBOX_NAMESPACES": "0", "RLREF_GRADE_TIMEOUT": "5"}   # its containers have no mount namespaces


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    base = tmp_path_factory.mktemp("gradescope")
    checkout = instructor_checkout(str(base / "instructor"))
    assert cli_in(checkout, "homework", "make", "--out", str(base / "student"), "--exercises", *ASSIGNED).returncode == 0
    done = cli_in(checkout, "homework", "autograder", "--out", str(base / "autograder.zip"))
    assert done.returncode == 0, done.stderr
    roots = tempfile.mkdtemp(prefix="rlref-autograder-roots-")
    os.chmod(roots, 0o755)                     # as /: others may enter, so run_autograder's chmod is what protects
    yield {"zip": str(base / "autograder.zip"), "student": str(base / "student"), "base": base, "roots": roots}
    shutil.rmtree(roots)


def run_in_root(autograder, name, sub):
    """Unpack the zip into ROOT/source, the submission into ROOT/submission, run run_autograder."""
    root = pathlib.Path(autograder["roots"]) / name
    with zipfile.ZipFile(autograder["zip"]) as z:
        z.extractall(root / "source")
    for member in ("setup.sh", "run_autograder"):
        os.chmod(root / "source" / member, 0o755)
    shutil.copytree(sub, root / "submission")
    env = dict(ENV, RLREF_AUTOGRADER_ROOT=str(root), RLREF_AUTOGRADER_PYTHON=sys.executable, **GRADESCOPE)
    env.pop("PYTHONPATH", None)
    done = subprocess.run(["bash", str(root / "source" / "run_autograder")], cwd="/", env=env, capture_output=True,
                          text=True, timeout=600)
    with open(root / "results" / "results.json") as f:
        return done, json.load(f), root


def test_zip_has_what_gradescope_expects(autograder):
    with zipfile.ZipFile(autograder["zip"]) as z:
        names = z.namelist()
        modes = {i.filename: i.external_attr >> 16 for i in z.infolist()}
        setup = z.read("setup.sh").decode()
        record = json.loads(z.read("homework.json"))
    assert {"setup.sh", "run_autograder", "homework.json"} <= set(names)
    assert all(modes[n] & stat.S_IXUSR for n in ("setup.sh", "run_autograder"))
    assert any(n.startswith("tests/hidden/") for n in names) and "rlref/advantages.py" in names
    assert not any(".venv" in n or "__pycache__" in n or n.startswith("figures/") for n in names)
    assert record["exercises"] == ASSIGNED
    assert 'pip install --no-cache-dir "numpy>=1.26,<3"' in setup and "http" not in setup.replace("https://", "")
    for script in ("setup.sh", "run_autograder"):
        with zipfile.ZipFile(autograder["zip"]) as z:
            text = z.read(script).decode()
        assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0, script


def test_right_and_wrong_submissions(autograder):
    right = [(path, lambda t, tag=tag: with_reference(t, tag)) for tag, path in
             (("PG.3", "rlref/advantages.py"), ("GAE.1", "rlref/advantages.py"), ("GAE.2", "rlref/advantages.py"))]
    solved = submission(autograder["student"], str(autograder["base"] / "right"), right, tags=ASSIGNED)
    done, data, root = run_in_root(autograder, "right-root", solved)
    assert check_results(data) == 5, (done.stdout[-3000:], done.stderr[-2000:])
    assert points(data) == {"GAE.1": 1, "GAE.2": 2, "PG.3": 2, "05.2": 0}
    assert stat.S_IMODE(os.stat(root).st_mode) == 0o700, "run_autograder leaves /autograder readable"
    hidden = [t for t in data["tests"] if t["visibility"] == "after_published"]
    assert hidden and all(t["max_score"] == 0 for t in hidden)
    wrong = right[:2] + [("rlref/advantages.py", lambda t: with_body(t, "GAE.2", """
        A_hat = discount_cumsum(td_residuals(rewards, values, next_values, terminated, gamma), lam, dones)
        return A_hat, A_hat + values"""))]
    done, data, _ = run_in_root(autograder, "wrong-root", submission(autograder["student"], str(autograder["base"] / "wrong"),
                                                                     wrong, tags=ASSIGNED))
    assert check_results(data) == 3 and points(data)["GAE.2"] == 0, done.stdout[-3000:]
    gae2 = next(t["output"] for t in data["tests"] if t["number"] == "GAE.2")
    assert "A_hat (hand): element [1, 0] is 0.875 where 0.3625 is expected" in gae2 and "rerun: python -m rlref homework grade --test" in gae2, gae2


def test_tampering_through_the_autograder_scores_zero(autograder):
    body = """
        import glob, json, os
        for p in glob.glob('{root}/*/*') + glob.glob('{root}/source/tests/hidden/*'):
            try:
                open(p).read()
                return rewards + gamma * (1.0 - terminated) * next_values - values
            except OSError:
                pass
        for p in ['{root}/results/results.json']:
            try:
                open(p, 'w').write(json.dumps({{'score': 99}}))
            except OSError:
                pass
        raise NotImplementedError('nothing readable')"""
    root = pathlib.Path(autograder["roots"]) / "tamper-root"
    sub = submission(autograder["student"], str(autograder["base"] / "tamper"),
                     [("rlref/advantages.py", lambda t: with_body(t, "GAE.1", body.format(root=root)))], tags=ASSIGNED,
                     files={"conftest.py": "raise SystemExit(0)\n", "sitecustomize.py": "raise SystemExit(0)\n"})
    done, data, _ = run_in_root(autograder, "tamper-root", sub)
    assert check_results(data) == 0, done.stdout[-3000:]
    assert "nothing readable" in next(t["output"] for t in data["tests"] if t["number"] == "GAE.1")


def test_as_root_without_namespaces_a_readable_checkout_is_refused_with_results_written(tmp_path):
    from rlref.homework.runtime import others_reach
    if os.geteuid() != 0 or not others_reach(ROOT, stat.S_IROTH | stat.S_IXOTH):
        pytest.skip("needs root and a checkout others can reach and read (a clone inside a 0700 folder is not)")
    done = cli_in(ROOT, "homework", "grade", ROOT, "--json", str(tmp_path / "r.json"), "--exercises", "GAE.1",
                  env=GRADESCOPE)
    assert done.returncode == 2 and "refusing to run student code as root" in done.stderr, done.stderr
    with open(tmp_path / "r.json") as f:
        data = json.load(f)
    assert check_results(data) == 0 and "chmod o-rwx" in data["output"]


def test_grading_every_exercise_fits_gradescopes_container(tmp_path):
    """Gradescope's default container: 768 MB and 10 minutes on half a CPU (5 CPU-minutes). A
    correct submission of every exercise (a copy of the reference) graded from this checkout: full
    points, and the peak memory of the grader and everything it started, and their CPU time.
    Measured here on a shared 2-core machine with 50 exercises: about 170 MB and 23 s of CPU."""
    sub = tmp_path / "reference"
    shutil.copytree(os.path.join(ROOT, "rlref"), sub / "rlref", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(os.path.join(ROOT, "notebooks"), sub / "notebooks")
    from rlref.homework.exercises import EXERCISES
    cmd = [sys.executable, "-m", "rlref", "homework", "grade", str(sub), "--exercises", *[e.tag for e in EXERCISES]]
    (code, out), peak, cpu = measure(cmd, ROOT, dict(ENV, PYTHONPATH=ROOT))
    print(f"grading all {len(EXERCISES)} exercises: peak {peak / 2**20:.0f} MB, CPU {cpu:.1f} s")
    total = sum(e.points for e in EXERCISES)
    assert code == 0 and f"score {total} of {total} points" in out, out[-3000:]
    assert peak < 768 << 20 and cpu < 300
