"""The grader against submissions that try to take points they did not earn (docs/instructors.md).

Every attack is built on the stubs of a student version (GAE.1, DIST.1 and 05.2 assigned: a
function, a method, a notebook cell) and graded from an instructor's checkout with the autograder
line, ``python -m rlref homework grade SUBMISSION --json FILE``; each must score 0, leave a valid
results.json and finish within its limits. Attacks that would find the reference get the answer
right only if they found it (``LEAK``), so a leak shows as points. Honest submissions lose exactly
the exercise with the mistake. The grades run two at a time (each is a separate process with its
own sandbox uid); about a minute in all.
"""
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from homework_kit import (check_results, cli_in, grade_line, instructor_checkout, notebook_with, points, submission,
                          with_body, with_reference)
from helpers import ROOT

ASSIGNED = ["GAE.1", "DIST.1", "05.2"]
HONEST = ["PG.3", "GAE.1", "GAE.2", "DIST.1", "DIST.2", "05.2"]
ADV, DIST, NB = "rlref/advantages.py", "rlref/distributions.py", "notebooks/05_ppo.ipynb"
ENV = {"RLREF_GRADE_TIMEOUT": "4"}
MARK = "(1.0 - terminated) * next_values"          # a line of the reference td_residuals
RIGHT = "return rewards + gamma * (1.0 - terminated) * next_values - values"


def leak(paths_code):
    """A td_residuals body that returns the right answer only if one of the paths it computes holds
    the reference (so points mean a leak); `paths_code` sets `paths`, a list of file paths."""
    return f"""
import glob, os, sys
paths = []
{paths_code}
for p in paths:
    try:
        with open(p, errors="ignore") as f:
            text = f.read()
        if ("{MARK[:12]}" + "{MARK[12:]}" in text and "no reference " + "found" not in text) or "def " + "test_hidden" in text:
            {RIGHT}
    except (OSError, ValueError):
        pass
raise NotImplementedError("no reference found in %d paths" % len(paths))
"""


def gae1(body):
    return [(ADV, lambda text: with_body(text, "GAE.1", body))]


def attacks(checkout, results_dir):
    """{name: dict(edits, files, layout)}: every way in we know of, each a submission."""
    roots = [checkout, ROOT]
    known = "paths += [r + '/rlref/advantages.py' for r in %r] + [r + '/tests/hidden/test_hidden_core.py' for r in %r]" % (
        roots, roots) + "\npaths += glob.glob('/work/*/rlref/advantages.py') + glob.glob('/*/*/rlref/advantages.py')"
    everything_passes = "import pytest\n@pytest.hookimpl(hookwrapper=True)\ndef pytest_runtest_makereport(item, call):\n" \
                        "    out = yield\n    out.get_result().outcome = 'passed'\n"
    write_report = (f"import glob, json, os\nfor p in glob.glob('/proc/*/cmdline') + ['{results_dir}/x']:\n    pass\n"
                    f"full = json.dumps({{'score': 99, 'tests': []}})\nfor p in glob.glob('{results_dir}/*.json') + "
                    f"[os.environ.get('RLREF_HOMEWORK_REPORT', '/nonexistent')]:\n    try:\n        open(p, 'w').write(full)\n"
                    f"    except OSError:\n        pass\n")
    daemon = f"""
import json, os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(3)
        for name in os.listdir('{results_dir}') if os.path.isdir('{results_dir}') else []:
            try:
                open(os.path.join('{results_dir}', name), 'w').write(json.dumps({{'score': 99, 'tests': []}}))
            except OSError:
                pass
        os._exit(0)
    os._exit(0)
raise NotImplementedError("left a daemon behind")
"""
    class_trick = """
import numpy as np
class Always(np.ndarray):
    def __eq__(self, other): return np.ones(np.shape(self), bool)
    def __sub__(self, other): return np.zeros(np.shape(self)).view(Always)
    __rsub__ = __sub__
    def __abs__(self): return np.zeros(np.shape(self))
    def __le__(self, other): return np.ones(np.shape(self), bool)
return np.zeros(np.shape(rewards)).view(Always)
"""
    return {
        "conftest_and_ini_at_the_root": dict(files={"conftest.py": everything_passes, "pytest.ini": "[pytest]\naddopts = -p conftest\n",
                                                    "tests/conftest.py": everything_passes, "setup.cfg": "[tool:pytest]\n"}),
        "pytest_py_at_the_root": dict(files={"pytest.py": "def main(*a, **k):\n    return 0\n", "py.py": "raise SystemExit(0)\n"}),
        "sitecustomize_usercustomize_and_pth": dict(files={"sitecustomize.py": "import numpy\nnumpy.allclose = lambda *a, **k: True\n",
                                                           "usercustomize.py": "raise SystemExit(0)\n",
                                                           "rlref/sitecustomize.py": "raise SystemExit(0)\n",
                                                           "zz_evil.pth": "import os; os._exit(0)\n"}),
        "dist_info_with_a_pytest11_entry_point": dict(files={"evil-1.0.dist-info/METADATA": "Name: evil\nVersion: 1.0\n",
                                                             "evil-1.0.dist-info/entry_points.txt": "[pytest11]\nevil = evil_plugin\n",
                                                             "evil_plugin.py": everything_passes}),
        "the_graders_own_modules_replaced": dict(files={
            "rlref/gradcheck.py": "def numerical_grad(f, x, eps=1e-6):\n    return 0\ndef check_grad(*a, **k):\n    return 0.0\n",
            "rlref/homework/expect.py": "def close(*a, **k):\n    pass\nequal = gradient = true = close\n",
            "rlref/homework/judge.py": "def main(path):\n    pass\n", "rlref/homework/wire.py": "raise SystemExit(0)\n",
            "tests/test_exercises_core.py": "", "tests/hidden/test_hidden_core.py": "", "rlref/__init__.py": "import os\nos._exit(0)\n"}),
        "report_path_written_and_env_read": dict(edits=gae1(write_report + "raise NotImplementedError('wrote')")),
        "daemon_rewrites_results_after_the_grader_exits": dict(edits=gae1(daemon)),
        "child_holds_the_output_open": dict(edits=gae1("import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\n"
                                                       "    os._exit(0)\nraise NotImplementedError('holding')")),
        "homework_json_lists_every_exercise": dict(files={"homework.json": json.dumps({"exercises": ["GAE.1", "MLP.2", "05.1"],
                                                                                       "points": {"GAE.1": 100}})}),
        "homework_json_deleted": dict(files={}, layout="folder", delete="homework.json"),
        "check_cell_edited": dict(edits=[(NB, lambda t: notebook_with(t, "05.2", "check", "print('exercise 2: correct')"))]),
        "reference_by_direct_url_json": dict(edits=gae1(leak(
            "for base in [sys.prefix, %r, %r, '/usr/local', '/usr']:\n"
            "    for d in glob.glob(base + '/**/rlref*.dist-info/direct_url.json', recursive=True):\n"
            "        try:\n            url = __import__('json').load(open(d))['url']\n"
            "            paths.append(url.replace('file://', '') + '/rlref/advantages.py')\n"
            "        except (OSError, ValueError, KeyError):\n            pass" % (ROOT + "/.venv", checkout + "/.venv")))),
        "reference_by_proc": dict(edits=gae1(leak(
            "for pid in (os.listdir('/proc') if os.path.isdir('/proc') else []):\n"
            "    paths += ['/proc/%s/%s/rlref/advantages.py' % (pid, w) for w in ('cwd', 'root')]\n"
            "    try:\n        cmd = open('/proc/%s/cmdline' % pid, 'rb').read().split(b'\\0')\n"
            "        env = open('/proc/%s/environ' % pid, 'rb').read().split(b'\\0')\n    except OSError:\n        continue\n"
            "    paths += [c.decode(errors='ignore').split('=')[-1] + '/rlref/advantages.py' for c in cmd + env if b'/' in c]"))),
        "reference_by_environment_and_walking_up": dict(edits=gae1(leak(
            "paths += [v + '/rlref/advantages.py' for v in os.environ.values() if v.startswith('/')]\n"
            "d = os.path.abspath(__file__ if '__file__' in globals() else os.getcwd())\n"
            "while d != '/':\n    d = os.path.dirname(d)\n    paths.append(d + '/rlref/advantages.py')\n"
            "for top, dirs, names in os.walk('/'):\n    dirs[:] = dirs if top.count('/') < 4 else []\n"
            "    paths += [top + '/advantages.py'] if 'advantages.py' in names else []"))),
        "reference_by_known_paths_and_other_checkouts": dict(edits=gae1(leak(known))),
        "hidden_tests_read": dict(edits=gae1(leak("paths += [r + '/tests/hidden/test_hidden_core.py' for r in %r]" % roots))),
        "comparisons_patched_at_import": dict(edits=[(ADV, lambda t: with_body(t.replace(
            "terminated, gamma):", "terminated, gamma, _=[__import__('numpy').__setattr__(n, lambda *a, **k: True) for n in "
            "('allclose', 'array_equal', 'isclose')]):", 1), "GAE.1", "import numpy as np\nreturn np.zeros(np.shape(rewards))"))]),
        "values_whose_comparisons_always_hold": dict(edits=gae1(class_trick) + [(DIST, lambda t: with_body(
            t, "DIST.1", "class A:\n    def __array__(self, *a, **k):\n        raise SystemExit(0)\n"
                         "    def __eq__(self, o):\n        return True\nreturn A()"))]),
        "exit_at_import_and_in_the_body": dict(edits=[(ADV, lambda t: t.replace("terminated, gamma):",
                                                                              "terminated, gamma, _=__import__('os')._exit(0)):", 1)),
                                                      (DIST, lambda t: with_body(t, "DIST.1", "import os\nos._exit(121)")),
                                                      (NB, lambda t: notebook_with(t, "05.2", "solution", "raise SystemExit(0)"))]),
        "fork_bomb": dict(edits=gae1("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass")),
        "endless_loops_everywhere": dict(edits=gae1("while True:\n    pass") + [(DIST, lambda t: with_body(t, "DIST.1", "while True:\n    pass")),
                                                                                (NB, lambda t: notebook_with(t, "05.2", "solution", "while True:\n    pass"))]),
        "stdout_flood_and_huge_outputs": dict(edits=gae1("while True:\n    print('x' * 100000)") + [
            (DIST, lambda t: with_body(t, "DIST.1", "return np.broadcast_to(0.0, (10 ** 9,))")),
            (NB, lambda t: notebook_with(t, "05.2", "solution", "def banded_beta(*a):\n    return [0.5] * 10 ** 7"))]),
        "memory_blow_up": dict(edits=gae1("import numpy as np\nx = [np.ones(10 ** 7) for _ in range(1000)]")),
        "pickled_payloads": dict(edits=gae1(
            "import os, pickle, sys\nclass P:\n    def __reduce__(self):\n        return (os.system, ('touch /tmp/rlref-pwned',))\n"
            "out = sys.argv[-1]\nopen(out, 'wb').write(pickle.dumps(P()))\nos._exit(0)") + [
            (DIST, lambda t: with_body(t, "DIST.1", "return np.array([object()] * 24, dtype=object).reshape(6, 4)"))]),
        "forged_result_file": dict(edits=gae1(
            "import json, os, sys\nv = {'a': [3.0, 1.0], 'd': [0.6, -0.15, 2.05]}\n"
            "open(sys.argv[-1], 'w').write(json.dumps({'probes': {'test_exercises_returns:td_residuals_runs': {'ok': {'m': "
            "{'hand': v, 'hand_terminated': v, 'gamma_0': v, 'rollout': v, 'other_next_values': v}}}}}))\nos._exit(0)")),
        "signals_to_the_parent": dict(edits=gae1(
            "import os, signal\nfor pid in (os.getppid(), 1, -1):\n    for s in (signal.SIGSTOP, signal.SIGTERM, signal.SIGKILL):\n"
            "        try:\n            os.kill(pid, s)\n        except OSError:\n            pass\nraise NotImplementedError('signalled')")),
        "writes_where_the_grader_reads": dict(edits=gae1(
            "import glob, os, sys\nfor p in glob.glob('/tmp/rlref-*') + glob.glob('/tmp/rlref-*/*') + [sys.argv[-1]]:\n"
            "    for target in (p, p + '/x', p + '/judge/rlref/homework/expect.py'):\n        try:\n"
            "            open(target, 'w').write('pwned')\n        except OSError:\n            pass\n"
            "import numpy\ntry:\n    open(numpy.__file__, 'a').write('\\nallclose = lambda *a, **k: True\\n')\nexcept OSError:\n    pass\n"
            "raise NotImplementedError('wrote around')")),
        "symlink_to_the_reference": dict(files={}, layout="files", symlink=(ADV, os.path.join(checkout, ADV))),
        "zip_with_a_symlink_to_the_reference": dict(files={}, layout="zip", symlink=(ADV, os.path.join(checkout, ADV))),
        "helpers_and_module_code_outside_the_def": dict(edits=[(ADV, lambda t: t + "\n\ntd_residuals = lambda *a: 0\n"
                                                                   "import numpy\nnumpy.allclose = lambda *a, **k: True\n")]),
    }


def build(spec, student, dest):
    sub = submission(student, dest, spec.get("edits", ()), spec.get("files"), spec.get("layout", "files"), ASSIGNED)
    folder = sub[:-4] + "-folder" if sub.endswith(".zip") else sub
    if "delete" in spec:
        os.remove(os.path.join(folder, spec["delete"]))
    if "symlink" in spec:
        rel, target = spec["symlink"]
        os.remove(os.path.join(folder, rel))
        os.symlink(target, os.path.join(folder, rel))
        if sub.endswith(".zip"):
            import zipfile
            with zipfile.ZipFile(sub, "w") as z:
                info = zipfile.ZipInfo(rel)
                info.external_attr = 0o120777 << 16
                z.writestr(info, target)
                z.write(os.path.join(ROOT, "rlref", "__init__.py"), "rlref/__init__.py")
    return sub


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """Every attack and honest submission, graded two at a time: {name: (process, results, seconds, path)}."""
    base = tmp_path_factory.mktemp("redteam")
    checkout = instructor_checkout(str(base / "instructor"))
    made = cli_in(checkout, "homework", "make", "--out", str(base / "student"), "--exercises", *ASSIGNED)
    assert made.returncode == 0 and os.path.isfile(os.path.join(checkout, "homework.json")), made.stderr
    results_dir = str(base / "results")
    os.makedirs(results_dir)
    jobs = {name: (build(spec, str(base / "student"), str(base / "subs" / name)), ()) for name, spec in
            attacks(checkout, results_dir).items()}
    from rlref.homework.make import make
    make(str(base / "honest-student"), HONEST, source=checkout)
    for name, edits in honest_cases().items():
        sub = submission(str(base / "honest-student"), str(base / "subs" / name), edits, tags=HONEST)
        jobs[name] = (sub, ("--exercises", *HONEST))

    def run(name):
        sub, extra = jobs[name]
        return name, (*grade_line(checkout, sub, os.path.join(results_dir, name + ".json"), *extra, env=ENV), sub)
    with ThreadPoolExecutor(max_workers=2) as pool:
        return {"checkout": checkout, "results": results_dir, **dict(pool.map(run, sorted(jobs)))}


ATTACKS = ["conftest_and_ini_at_the_root", "pytest_py_at_the_root", "sitecustomize_usercustomize_and_pth",
           "dist_info_with_a_pytest11_entry_point", "the_graders_own_modules_replaced", "report_path_written_and_env_read",
           "daemon_rewrites_results_after_the_grader_exits", "child_holds_the_output_open",
           "homework_json_lists_every_exercise", "homework_json_deleted", "check_cell_edited", "reference_by_direct_url_json",
           "reference_by_proc", "reference_by_environment_and_walking_up", "reference_by_known_paths_and_other_checkouts",
           "hidden_tests_read", "comparisons_patched_at_import", "values_whose_comparisons_always_hold",
           "exit_at_import_and_in_the_body", "fork_bomb", "endless_loops_everywhere", "stdout_flood_and_huge_outputs",
           "memory_blow_up", "pickled_payloads", "forged_result_file", "signals_to_the_parent", "writes_where_the_grader_reads",
           "symlink_to_the_reference", "zip_with_a_symlink_to_the_reference", "helpers_and_module_code_outside_the_def"]


@pytest.mark.parametrize("name", ATTACKS)
def test_attack_scores_zero_with_a_valid_results_json(graded, name):
    done, data, seconds, _ = graded[name]
    assert check_results(data) == 0, (name, [t for t in data["tests"] if t["score"]], done.stdout[-2000:])
    assert done.returncode == 1, (done.returncode, done.stderr[-2000:])
    assert seconds < 60, f"{name} took {seconds:.0f} s"
    assert set(points(data)) == set(ASSIGNED), points(data)


def test_nothing_the_attacks_left_behind_changes_the_results(graded):
    time.sleep(4)                                           # the daemon's 3 s
    for name in ATTACKS:
        with open(os.path.join(graded["results"], name + ".json")) as f:
            assert check_results(json.load(f)) == 0, name
    assert not os.path.exists("/tmp/rlref-pwned")


def test_the_exercise_list_comes_from_the_instructor(graded):
    done, data, _, _ = graded["homework_json_lists_every_exercise"]
    assert "the submission's homework.json lists ['GAE.1', 'MLP.2', '05.1']" in data["output"], data["output"]
    assert sum(t["max_score"] for t in data["tests"]) == 3


def test_attacks_fail_for_the_reason_they_should(graded):
    why = {name: next(t["output"] for t in graded[name][1]["tests"] if t["number"] == "GAE.1") for name in ATTACKS}
    assert "stopped after 4 s" in why["endless_loops_everywhere"] and "stopped after 4 s" in why["fork_bomb"]
    assert "no reference found" in why["reference_by_proc"] and "no reference found" in why["hidden_tests_read"]
    assert "exited (code 0) before reporting" in why["exit_at_import_and_in_the_body"], why["exit_at_import_and_in_the_body"]
    dist = next(t["output"] for t in graded["exit_at_import_and_in_the_body"][1]["tests"] if t["number"] == "DIST.1")
    assert "exited (code 121) before reporting" in dist, dist      # the launcher's own failure code: still the student's
    assert "the submission has no rlref/advantages.py" in why["symlink_to_the_reference"]
    assert "no usable output from the sandbox" in why["pickled_payloads"], why["pickled_payloads"]
    assert "delta (terminated at t = 1)" in why["forged_result_file"] or "expected shape" in why["forged_result_file"]
    dist = next(t["output"] for t in graded["pickled_payloads"][1]["tests"] if t["number"] == "DIST.1")
    assert "not an array of real numbers" in dist, dist


# ------------------------------------------------------------------ honest mistakes cost only themselves

def honest_cases():
    """{name: edits} of the honest submissions: all right, then one mistake each."""
    right = [(path, lambda t, tag=tag: with_reference(t, tag)) for tag, path in
             (("PG.3", ADV), ("GAE.1", ADV), ("GAE.2", ADV), ("DIST.1", DIST), ("DIST.2", DIST))]
    right.append((NB, lambda t: notebook_with(t, "05.2", "solution", """
        def banded_beta(beta, d, kl_target, beta_min, beta_max):
            if d < kl_target / 1.5:
                beta = beta / 2.0
            elif d > 1.5 * kl_target:
                beta = beta * 2.0
            return float(np.clip(beta, beta_min, beta_max))""")))

    def but(tag, path, body):                      # every exercise right but `tag`, which gets `body`
        return [(p, f) for p, f in right if f.__defaults__ != (tag,)] + [(path, lambda t: with_body(t, tag, body))]
    return {"honest_right": right,
            "honest_wrong_in_one_element": but("GAE.1", ADV, "d = rewards + gamma * (1.0 - terminated) * next_values - values\n"
                                                             "d.flat[0] += 1e-3\nreturn d"),
            "honest_syntax_error_in_one": but("DIST.1", DIST, "return 1 +"),
            "honest_endless_loop_in_one": but("GAE.1", ADV, "while True:\n    pass"),
            "honest_memory_blow_up_in_one": but("PG.3", ADV, "import numpy as np\nx = [np.ones(10 ** 7) for _ in range(100)]"),
            "honest_exception_at_import_in_one": right + [(DIST, lambda t: t.replace("def dentropy(self):",
                                                                                     "def dentropy(self, _=1 / 0):", 1))]}


def test_a_right_submission_gets_full_marks(graded):
    done, data, _, _ = graded["honest_right"]
    assert check_results(data) == 8 and done.returncode == 0, done.stdout[-3000:]


@pytest.mark.parametrize("name, lost, why", [
    ("honest_wrong_in_one_element", "GAE.1", "element [0, 0] is 0.601 where 0.6 is expected (off by 0.001"),
    ("honest_syntax_error_in_one", "DIST.1", "SyntaxError in `def dlogp` of rlref/distributions.py"),
    ("honest_endless_loop_in_one", "GAE.1", "stopped after 4 s of wall-clock time"),
    ("honest_memory_blow_up_in_one", "PG.3", ("MemoryError", "more than 400 MB", "stopped after 4 s")),
    ("honest_exception_at_import_in_one", "DIST.2", "ZeroDivisionError")])
def test_an_honest_mistake_costs_its_exercise_only(graded, name, lost, why):
    done, data, seconds, _ = graded[name]
    check_results(data)
    got = points(data)
    assert {t for t, p in got.items() if p == 0} == {lost}, (got, done.stdout[-3000:])
    entry = next(t for t in data["tests"] if t["number"] == lost)
    assert any(w in entry["output"] for w in ((why,) if isinstance(why, str) else why)), entry["output"]
    assert "rerun: python -m rlref homework grade --test " in entry["output"], entry["output"]
    assert seconds < 90


def test_dependents_of_a_broken_exercise_are_graded_on_the_reference_and_show_no_values(graded):
    data = graded["honest_wrong_in_one_element"][1]
    gae2 = next(t for t in data["tests"] if t["number"] == "GAE.2")
    assert gae2["score"] == 2 and "graded with the reference GAE.1" in gae2["output"], gae2
    assert "(1.0 - terminated)" not in json.dumps(data)
