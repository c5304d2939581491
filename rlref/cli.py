"""The command line: python -m rlref {gradcheck} ...

    python -m rlref gradcheck [--seed S]   every hand-derived gradient vs finite differences
"""
import argparse
import sys


def cmd_gradcheck(args):
    from rlref.checks import format_table, run_checks
    rows = run_checks(seed=args.seed)
    print(format_table(rows))
    return 0 if all(r[3] for r in rows) else 1


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m rlref", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gradcheck", help="check every hand-derived gradient against finite differences")
    p.add_argument("--seed", type=int, default=0, help="seed of the random inputs (default 0)")
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
