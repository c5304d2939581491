"""The `python -m rlref homework ...` subcommands:

    homework list                                          the exercises: tag, what to write, points, tests
    homework make --out DIR (--exercises TAG ... | --all)  a student version; records the assignment here
    homework grade [SUBMISSION] [--json FILE] [--exercises TAG ...] [--tests DIR] [--test ID]
                                                           a table per exercise; exit 1 unless full points
    homework autograder --out autograder.zip [--exercises TAG ...]   Gradescope's autograder

``homework grade SUBMISSION --json FILE``, run from the instructor's checkout, is the autograder
line: the assignment, the tests and the grader come from the checkout, only the assigned answers
from SUBMISSION. With --json, results.json is written whatever happens, also when the grade itself
fails (then with no points and the reason, and exit code 2).
"""
import ast
import glob
import os
import sys

from rlref.errors import HomeworkError
from rlref.homework import report
from rlref.homework.exercises import BY_TAG, EXERCISES
from rlref.homework.make import make, project_root


def marked_tests(tests_dir):
    """{tag: [test ids]} of the functions in tests_dir's exercise tests, decorated @exercise("TAG", probe)."""
    found = {}
    paths = sorted(glob.glob(os.path.join(tests_dir, "test_exercises_*.py"))) + \
        sorted(glob.glob(os.path.join(tests_dir, "hidden", "test_*.py")))
    for path in paths:
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        prefix = "hidden/" if os.path.basename(os.path.dirname(path)) == "hidden" else ""
        for node in tree.body:
            for dec in getattr(node, "decorator_list", []):
                if isinstance(dec, ast.Call) and getattr(dec.func, "id", None) == "exercise" and dec.args and \
                        isinstance(dec.args[0], ast.Constant):
                    found.setdefault(dec.args[0].value, []).append(f"{prefix}{os.path.basename(path)}::{node.name}")
    return found


def cmd_list(args):
    tests = marked_tests(os.path.join(project_root(), "tests"))
    width = max(len(e.target) for e in EXERCISES)
    print(f"{'tag':<7} {'what the student writes':<{width}}  points  needs        tests")
    for e in EXERCISES:
        print(f"{e.tag:<7} {e.target:<{width}}  {e.points:>6}  {','.join(e.deps) or '-':<11}  "
              f"{', '.join(tests.get(e.tag, ['none!']))}")
        print(f"{'':<7} {e.todo}")
    print(f"{len(EXERCISES)} exercises, {sum(e.points for e in EXERCISES)} points; tests are "
          f"@exercise(TAG, probe) in tests/test_exercises_*.py (public) and tests/hidden/ (hidden)")
    return 0


def cmd_make(args):
    if args.all == bool(args.exercises):
        raise HomeworkError("give either --exercises TAG ... or --all")
    made = make(args.out, None if args.all else args.exercises, record=True, nbgrader=args.nbgrader_source)
    chosen = made["exercises"]
    print(f"wrote {args.out}: {len(chosen)} exercise(s) as stubs ({', '.join(e.tag for e in chosen)}), "
          f"{sum(e.points for e in chosen)} points, {len(made['shipped'])} files.")
    if made["left_out"]:
        print(f"left out ({len(made['left_out'])}): " + ", ".join(made["left_out"][:20]) +
              (" ..." if len(made["left_out"]) > 20 else ""))
    print(f"recorded the assignment in {made['record']}: `homework grade SUBMISSION` run here grades it.\n"
          f"Students run: cd {args.out} && python -m rlref homework grade")
    if args.nbgrader_source:
        print(f"wrote nbgrader's source version of the assigned notebooks into {args.nbgrader_source}: "
              f"`nbgrader generate_assignment` releases the notebooks of {args.out} from it.")
    for tag, function in made["kept"]:
        e = BY_TAG[function]
        print(f"note: exercise {tag} re-implements {e.target} (exercise {function}, not assigned), which this "
              f"version keeps with its answer: assign {function} too to cut it", file=sys.stderr)
    for leak in made["leaks"]:
        print(f"warning: {leak.where} holds a statement of exercise {leak.tag}'s answer ({leak.origin}): "
              f"{leak.statement[:80]}", file=sys.stderr)
    return 0


def cmd_grade(args):
    from rlref.homework.grade import grade
    try:
        result = grade(args.submission, args.exercises or None, args.tests or (), args.test)
    except BaseException as err:                 # results.json even when the grade itself cannot run
        if args.json:
            report.write(args.json, report.failed_report(f"{type(err).__name__}: {err}"))
        if isinstance(err, (HomeworkError, KeyboardInterrupt)):
            raise
        print(f"error: the grader failed: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    print(report.format_results(result, args.submission))
    if args.json:
        report.write(args.json, report.gradescope(result))
    return 0 if all(r["status"] == "pass" for r in result["exercises"]) else 1


def cmd_autograder(args):
    from rlref.homework.autograder import build
    made = build(args.out, args.exercises or None)
    print(f"wrote {args.out}: Gradescope's autograder for {', '.join(made['exercises'])} "
          f"({made['points']} points, {made['files']} files). Upload it as the assignment's autograder.")
    return 0


def add_parser(sub, common):
    """The `homework` subcommand and its actions, for rlref.cli."""
    p = sub.add_parser("homework", help="exercises, student versions and grading", parents=[common])
    actions = p.add_subparsers(dest="action", required=True)
    q = actions.add_parser("list", help="the exercises, their points and tests", parents=[common])
    q.set_defaults(func=cmd_list)
    q = actions.add_parser("make", help="write a student version with the chosen exercises as stubs", parents=[common])
    q.add_argument("--out", required=True, help="a new (or empty) folder for the student version")
    q.add_argument("--exercises", nargs="+", default=[], metavar="TAG")
    q.add_argument("--all", action="store_true", help="every exercise of the table")
    q.add_argument("--nbgrader-source", default=None, metavar="DIR", help="also write nbgrader's source version of "
                   "each notebook with an assigned exercise here (nbgrader's source/ASSIGNMENT folder)")
    q.set_defaults(func=cmd_make)
    q = actions.add_parser("grade", help="grade a submission, one line per exercise", parents=[common])
    q.add_argument("submission", nargs="?", default=".", help="the student's folder, a zip of it, or a folder of the "
                   "changed files (default: here)")
    q.add_argument("--json", default=None, metavar="FILE", help="also write Gradescope's results.json")
    q.add_argument("--exercises", nargs="+", default=[], metavar="TAG",
                   help="grade these (default: the assignment in this checkout's homework.json)")
    q.add_argument("--tests", nargs="+", default=[], metavar="DIR", help="more hidden tests (test_*.py) to grade with")
    q.add_argument("--test", default=None, metavar="ID", help="run only this test (its id, as the table prints it)")
    q.set_defaults(func=cmd_grade)
    q = actions.add_parser("autograder", help="Gradescope's autograder zip for an assignment", parents=[common])
    q.add_argument("--out", required=True, help="the zip to write, e.g. autograder.zip")
    q.add_argument("--exercises", nargs="+", default=[], metavar="TAG",
                   help="the assignment (default: this checkout's homework.json)")
    q.set_defaults(func=cmd_autograder)
