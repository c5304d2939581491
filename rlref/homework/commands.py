"""The `python -m rlref homework ...` subcommands:

    homework list                                   the exercises: tag, what to write, points, tests
    homework make --out DIR (--exercises TAG ... | --all)    a student version of this project
    homework grade [DIR] [--json FILE] [--tests DIR]         a table per exercise; exit 1 unless full points
"""
import ast
import glob
import json
import os

from rlref.errors import HomeworkError
from rlref.homework.exercises import EXERCISES
from rlref.homework.grade import format_results, grade, gradescope
from rlref.homework.make import make, project_root


def marked_tests(tests_dir):
    """{tag: [test names]} of the functions in tests_dir marked @pytest.mark.exercise("TAG")."""
    found = {}
    for path in sorted(glob.glob(os.path.join(tests_dir, "test_*.py"))):
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                name = getattr(dec.func, "attr", None) or getattr(dec.func, "id", None) if isinstance(dec, ast.Call) else None
                if name == "exercise" and dec.args and isinstance(dec.args[0], ast.Constant):   # pytest.mark.exercise or an alias
                    found.setdefault(dec.args[0].value, []).append(f"{os.path.basename(path)}::{node.name}")
    return found


def cmd_list(args):
    tests = marked_tests(os.path.join(project_root(), "tests"))
    notebook_tests = "tests/test_exercises_notebooks.py (its check cells)"
    width = max(len(e.target) for e in EXERCISES)
    print(f"{'tag':<7} {'what the student writes':<{width}}  points  needs        tests")
    for e in EXERCISES:
        names = notebook_tests if e.is_notebook else ", ".join(tests.get(e.tag, ["none!"]))
        print(f"{e.tag:<7} {e.target:<{width}}  {e.points:>6}  {','.join(e.deps) or '-':<11}  {names}")
        print(f"{'':<7} {e.todo}")
    print(f"{len(EXERCISES)} exercises, {sum(e.points for e in EXERCISES)} points; "
          f"tests are marked @pytest.mark.exercise(TAG) in tests/")
    return 0


def cmd_make(args):
    if args.all == bool(args.exercises):
        raise HomeworkError("give either --exercises TAG ... or --all")
    chosen = make(args.out, None if args.all else args.exercises)
    print(f"wrote {args.out}: {len(chosen)} exercise(s) as stubs ({', '.join(e.tag for e in chosen)}), "
          f"{sum(e.points for e in chosen)} points. Students run: cd {args.out} && python -m rlref homework grade")
    return 0


def cmd_grade(args):
    results = grade(args.dir, args.tests, args.exercises or None)
    print(format_results(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(gradescope(results), f, indent=1)
            f.write("\n")
    return 0 if all(r["points"] == r["max_points"] for r in results) else 1


def add_parser(sub, common):
    """The `homework` subcommand and its three actions, for rlref.cli."""
    p = sub.add_parser("homework", help="exercises, student versions and grading", parents=[common])
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list", help="the exercises, their points and tests", parents=[common])
    q.set_defaults(func=cmd_list)
    q = actions.add_parser("make", help="write a student version with the chosen exercises as stubs", parents=[common])
    q.add_argument("--out", required=True, help="a new folder for the student version")
    q.add_argument("--exercises", nargs="+", default=[], metavar="TAG")
    q.add_argument("--all", action="store_true", help="every exercise of the table")
    q.set_defaults(func=cmd_make)
    q = actions.add_parser("grade", help="grade a student folder, one line per exercise", parents=[common])
    q.add_argument("dir", nargs="?", default=".", help="the student folder (default: here)")
    q.add_argument("--json", default=None, metavar="FILE", help="also write Gradescope's results.json")
    q.add_argument("--tests", default=None, metavar="DIR", help="grade with these tests (hidden tests)")
    q.add_argument("--exercises", nargs="+", default=[], metavar="TAG",
                   help="grade these (default: the folder's homework.json, else all)")
    q.set_defaults(func=cmd_grade)
