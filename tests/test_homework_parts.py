"""The grader's parts on their own: what crosses from the sandbox (wire), the judges' messages
(expect), taking a def from a broken file (splice), reading an untrusted upload (submission), and
the sandbox's process as seen from inside."""
import json
import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from rlref.homework import expect, splice, wire
from rlref.homework.sandbox import Sandbox
from rlref.homework.submission import Submission, SubmissionError
from helpers import ENV, ROOT


# ------------------------------------------------------------------ wire: only plain data crosses

def roundtrip(x):
    return wire.decode(wire.loads(wire.dumps(wire.encode(x))))


class Liar(np.ndarray):
    def __eq__(self, other):
        return True


def test_wire_keeps_numbers_and_arrays_and_drops_every_trick():
    got = roundtrip({"a": (np.arange(6.0).reshape(2, 3).view(Liar), 3, True), "b": [None, np.float32(0.5)]})
    a = got["a"][0]
    assert type(a) is np.ndarray and a.dtype == np.float64 and a.shape == (2, 3) and not a.flags.writeable
    assert got["a"][1:] == [3.0, 1.0] and got["b"] == [None, 0.5] and all(type(v) is float for v in got["a"][1:])
    assert np.isnan(roundtrip(np.array([np.nan]))[0]) and roundtrip(-np.inf) == -np.inf
    for bad in (np.array([1j]), 2j, np.array([object()]), {1: 2.0}, "text", [[[[[[[[[[1.0]]]]]]]]]]):
        with pytest.raises(wire.WireError):
            wire.encode(bad)


@pytest.mark.parametrize("payload", [
    True, "text", {"a": [2.0], "d": [1.0, 2.0, 3.0]}, {"a": [1.5], "d": [1.0]}, {"a": [-1.0], "d": []},
    {"a": [1.0], "d": ["x"]}, {"l": [1.0], "m": {}}, {"x": 1.0}, {"m": {"k" * 300: 1.0}}, [1.0, 2.0],
    {"a": [float(wire.MAX_ELEMENTS + 1)], "d": [0.0] * (wire.MAX_ELEMENTS + 1)}])
def test_wire_refuses_what_is_not_plain_data(payload):
    with pytest.raises(wire.WireError):
        wire.decode(payload)


def test_wire_refuses_pickles_huge_and_deep_payloads():
    for raw in (pickle.dumps({"probes": {}}), b"\x80\x04", b"[" * 200000, b" " * (wire.MAX_BYTES + 1)):
        with pytest.raises(wire.WireError):
            wire.loads(raw)


# ------------------------------------------------------------------ expect: where and by how much

def test_expect_says_where_and_by_how_much():
    with pytest.raises(expect.Mismatch, match=r"A_hat: element \[1, 2\] is 0\.7 where 0\.5 is expected \(off by 0\.2"):
        expect.close("A_hat", [[0, 0, 0], [0, 0, 0.7]], np.array([[0, 0, 0], [0, 0, 0.5]]), atol=1e-12)
    with pytest.raises(expect.Mismatch, match=r"expected shape \(2, 3\), got \(3, 2\)"):
        expect.close("A_hat", np.zeros((3, 2)), np.zeros((2, 3)))
    with pytest.raises(expect.Mismatch, match="not a number"):
        expect.close("x", [np.nan], [1.0], atol=1.0)
    with pytest.raises(expect.Mismatch, match=r"g\['W1'\]: element \[0\] is 1\.001 where finite differences give 1 "):
        expect.gradient("g", {"W1": np.array([1.001])}, {"W1": np.array([1.0])})
    with pytest.raises(expect.Mismatch) as err:
        expect.close("v", [3.0], [2.0])
    assert err.value.where == "v: element [0]" and "3" not in err.value.where
    expect.close("within tolerance", [1.0 + 1e-13], [1.0], atol=1e-12)


# ------------------------------------------------------------------ splice: one def, even from a broken file

BROKEN = '''import os


def helper():
    return 1


class Categorical:
    @staticmethod
    def dlogp(self, a):
        return a +


    def dentropy(self):
        """dH"""
        x = helper()
        return -x


def gae(r):
    return r * 2
'''


def test_take_finds_each_def_of_a_file_that_does_not_parse():
    d = splice.take(BROKEN, "Categorical.dentropy", "d.py")
    assert d.text.startswith("def dentropy(self):\n") and d.line == 14 and "return -x" in d.text
    assert "has a SyntaxError at line 11 outside `def dentropy`" in d.note
    assert splice.take(BROKEN, "gae", "d.py").text == "def gae(r):\n    return r * 2\n"
    with pytest.raises(splice.DefError, match=r"SyntaxError in `def dlogp` of d.py at line 11"):
        splice.take(BROKEN, "Categorical.dlogp", "d.py")
    with pytest.raises(splice.DefError, match="has no `def Categorical.kl`"):
        splice.take(BROKEN, "Categorical.kl", "d.py")
    with pytest.raises(splice.DefError, match="one plain def"):
        splice.take("async def gae(r):\n    return r\n", "gae", "d.py")
    odd = "# a form feed \x0c and a line separator \u2028 in a comment\ndef gae(r):\n    return r\n"
    assert splice.take(odd, "gae", "d.py") == splice.Def("def gae(r):\n    return r\n", 2)


def test_take_leaves_decorators_and_the_rest_of_the_file_behind_and_replace_reindents():
    text = "import os\n@os.system\ndef gae(r):\n    return r\nos._exit(0)\n"
    d = splice.take(text, "gae", "f.py")
    assert d.text == "def gae(r):\n    return r\n"
    base = "class Categorical:\n    def dentropy(self):\n        return 0\n\n    def kl(self):\n        return 1\n"
    new, line = splice.replace(base, "Categorical.dentropy", "def dentropy(self):\n    return 2\n", "b.py")
    assert new == base.replace("return 0", "return 2") and line == 2


# ------------------------------------------------------------------ submission: untrusted uploads

def test_submission_never_follows_links_and_reads_zips_member_by_member(tmp_path):
    (tmp_path / "up" / "rlref").mkdir(parents=True)
    os.symlink(os.path.join(ROOT, "rlref", "advantages.py"), tmp_path / "up" / "rlref" / "advantages.py")
    (tmp_path / "up" / "nn.py").write_text("def mlp_backward(): pass\n")
    sub = Submission(str(tmp_path / "up"))
    assert sub.find("rlref/advantages.py") is None and sub.find("rlref/nn.py") == "nn.py"
    with zipfile.ZipFile(tmp_path / "up.zip", "w") as z:
        link = zipfile.ZipInfo("rlref/advantages.py")
        link.external_attr = 0o120777 << 16
        z.writestr(link, os.path.join(ROOT, "rlref", "advantages.py"))
        z.writestr("../../etc/evil.py", "x")
        z.writestr("hw/rlref/normalize.py", "x" * (3 << 20))
        z.writestr("hw/homework.json", json.dumps({"exercises": ["MLP.2"]}))
    sub = Submission(str(tmp_path / "up.zip"))
    assert sub.find("rlref/advantages.py") is None and not any(".." in p for p in sub.files)
    with pytest.raises(SubmissionError, match="larger than 2 MB"):
        sub.text(sub.find("rlref/normalize.py"))
    assert sub.manifest() == ["MLP.2"]


# ------------------------------------------------------------------ the sandbox, seen from inside

PROBE = '''
import os, resource, sys


def observe():
    allowed = {"PATH", "HOME", "TMPDIR", "LANG", "LC_ALL", "PYTHONHASHSEED", "MPLBACKEND", "OMP_NUM_THREADS",
               "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "LD_LIBRARY_PATH"}
    def readable(path):
        try:
            open(path).read(1)
            return 1
        except OSError:
            return 0
    return {"uid": os.getuid(), "groups": len(os.getgroups()), "env_scrubbed": set(os.environ) <= allowed,
            "isolated": sys.flags.isolated, "no_site": sys.flags.no_site, "cwd_is_home": os.getcwd() == os.environ["HOME"],
            "as": resource.getrlimit(resource.RLIMIT_AS)[0], "nproc": resource.getrlimit(resource.RLIMIT_NPROC)[0],
            "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0], "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
            "private": readable(PRIVATE), "checkout": readable(CHECKOUT), "proc": os.path.exists("/proc/self"),
            "pytest": any(os.path.isdir(os.path.join(p, "_pytest")) for p in sys.path)}
'''


def test_the_sandbox_from_inside(tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    (private / "secret.txt").write_text("the grader's")
    with Sandbox([str(private), ROOT]) as box:
        tree = box.new_box()
        shutil.copytree(os.path.join(ROOT, "rlref"), os.path.join(tree, "rlref"), ignore=shutil.ignore_patterns("__pycache__"))
        os.makedirs(os.path.join(tree, "tests"))
        with open(os.path.join(tree, "tests", "sandbox_probe.py"), "w") as f:
            f.write(f"PRIVATE, CHECKOUT = {str(private / 'secret.txt')!r}, {os.path.join(ROOT, 'rlref', 'nn.py')!r}\n" + PROBE)
        run = box.run(tree, {"kind": "function", "probes": [["sandbox_probe", "observe"]]}, timeout=60)
        enclosed = box.enclosed
    assert run["status"] == "ok" and run["output"], run["log"]
    seen = wire.decode(wire.loads(run["output"])["probes"]["sandbox_probe:observe"]["ok"])
    assert seen["env_scrubbed"] and seen["isolated"] and seen["no_site"] and seen["cwd_is_home"] and not seen["pytest"]
    assert seen["as"] == 512 << 20 and seen["fsize"] == 16 << 20 and seen["cpu"] == 20
    if os.geteuid() == 0:
        assert seen["uid"] >= 42000 and seen["groups"] == 0 and seen["nproc"] == 16 and seen["private"] == 0
        assert seen["checkout"] == 0 or not enclosed
        assert not seen["proc"] or not enclosed


def test_without_root_what_a_run_leaves_behind_is_killed_too(tmp_path):
    """The grader as an ordinary user (a student checking their work): no uid to switch to, so the
    run's process group and every orphan that comes back to the grader (a child subreaper) are
    killed. Simulated in a child process by declaring the grader not root."""
    from homework_kit import submission, with_body, with_reference
    from rlref.homework.make import make
    make(str(tmp_path / "hw"), ["GAE.1", "DIST.1"])
    marker = f"{os.getpid() % 1000}.{tmp_path.name[-6:].replace('-', '')}1"
    escape = f"import os\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.execv('/bin/sleep', ['sleep', '{marker}'])\n" \
             "    os._exit(0)\nwhile True:\n    pass"
    sub = submission(str(tmp_path / "hw"), str(tmp_path / "sub"), [("rlref/advantages.py", lambda t: with_body(t, "GAE.1", escape)),
                     ("rlref/distributions.py", lambda t: with_reference(t, "DIST.1"))], tags=["GAE.1", "DIST.1"])
    code = ("import json, sys, rlref.homework.sandbox as s; s.as_root = lambda: False\n"
            "from rlref.homework.grade import grade\n"
            f"r = grade({sub!r}, ['GAE.1', 'DIST.1'])\nprint(json.dumps({{e['tag']: e['status'] for e in r['exercises']}}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env=dict(ENV, PYTHONPATH=ROOT, RLREF_GRADE_TIMEOUT="3"))
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.splitlines()[-1]) == {"DIST.1": "pass", "GAE.1": "fail"}
    left = [p for p in os.listdir("/proc") if p.isdigit() and marker.encode() in _cmdline(p)]
    assert not left, f"processes left behind: {left}"


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
