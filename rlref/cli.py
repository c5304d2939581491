"""The command line (python -m rlref ...):

    train ALGO [--env ID] [--seed S] [--total-steps N] [--out DIR] [--set key=value ...] [--overwrite]
          [--quiet | --verbose]
    train ALGO [--env ID] [--set key=value ...] --show-config    (the settings it would run, and exit)
    train --resume DIR [--quiet | --verbose]
    explain [COLUMN | RUN_DIR]
    evaluate DIR [--episodes 20] [--json] [--video FILE.gif|FILE.mp4 [--video-episodes 1]]
    plot DIR [DIR ...] [-o figures/NAME.png]             (one DIR: DIR/learning_curve.png by default)
    gradcheck [--seed S]
    bench --algos ALGO ... --envs ID ... --seeds N --out DIR [--steps S] [--jobs J] [--set key=value ...]
    homework list | make --out DIR (--exercises TAG ... | --all) | grade [SUBMISSION] [--json FILE] | autograder --out ZIP
    site --out DIR

ID is a gymnasium id (CartPole-v1) or module:Env-v0 for a custom env that `import module` registers.

Errors: a mistake in the command (argparse's) or a named rlref error (ConfigError,
UnsupportedSpaceError, NonFiniteError, CheckpointError, ...) is printed as one line, "error:
ConfigError: gamma must be in [0.0, 1.0], got 1.5", with exit code 2, before anything is written;
--debug shows an rlref error's traceback instead. Any other exception keeps its traceback.

A training run stopped by SIGINT (Ctrl-C) or SIGTERM finishes its iteration, saves a checkpoint,
prints how to resume, and exits with 128 + the signal's number (130, 143), as a shell reports a
job a signal ended: a script or batch system does not mistake it for a finished run. Under
mpiexec every rank finishes the same iteration and exits so; rank 0 alone saves and prints.
"""
import argparse
import os
import sys

from rlref.algos import ALGOS
from rlref.commandline import (OneLineParser, check_evaluate_flags, check_out_dir, default_out, evaluation_report,
                               resolve_settings, show_config, whole)
from rlref.errors import ConfigError, RlrefError

_steps = whole(1)


def resolve_config(algo, env=None, seed=None, total_steps=None, sets=()):
    """The Config that `train ALGO [--env ENV] [--seed S] [--total-steps N] [--set key=value ...]`
    runs (bench plans its runs with it too). An algorithm may keep per-env settings (PRESETS, like
    RL-Zoo's tables), chosen by the env that will run (--env, or --set env=...); --set and then the
    flags override them. A bad setting or an unknown env id raises ConfigError."""
    return resolve_settings(algo, env, seed, total_steps, sets)[0]


def cmd_train(args):
    from rlref.train import resume, train
    if args.resume:
        given = [name for name, value in (("ALGO", args.algo), ("--env", args.env), ("--seed", args.seed),
                                          ("--total-steps", args.total_steps), ("--out", args.out),
                                          ("--set", args.set), ("--overwrite", args.overwrite),
                                          ("--show-config", args.show_config)) if value]
        if given:
            raise ConfigError(f"--resume continues a run exactly as it was configured, so it takes no "
                              f"{', '.join(given)}; only --quiet or --verbose may be added")
        return _report(resume(args.resume, quiet=args.quiet, verbose=args.verbose), args.resume)
    if args.algo is None:
        raise ConfigError("train needs ALGO (one of " + ", ".join(ALGOS) + ") or --resume DIR")
    if args.show_config:
        print("\n".join(show_config(args.algo, args.env, args.seed, args.total_steps, args.set)))
        return 0
    config = resolve_config(args.algo, args.env, args.seed, args.total_steps, args.set)
    out = args.out if args.out is not None else default_out(args.algo, config)
    check_out_dir(out)
    return _report(train(args.algo, config, out, quiet=args.quiet, overwrite=args.overwrite, verbose=args.verbose),
                   out)


def _report(summary, out):
    if summary is None:                                   # a distributed run's other ranks
        return 0
    if "stopped_by" in summary:                           # the stop message is already printed
        return 128 + int(summary["stopped_by"])
    from rlref.progress import closing
    print(closing(summary, out), flush=True)
    return 0


def cmd_evaluate(args):
    from rlref.envs import solved_threshold
    from rlref.seeding import eval_seed
    from rlref.train import evaluate, load_run
    check_evaluate_flags(args)
    trained = load_run(args.dir)
    config = trained.config
    episodes = args.episodes or config.eval_episodes
    seed = eval_seed(config.seed)
    if args.video:                                        # episodes from the evaluation's seed, drawn
        from rlref.video import record
        returns = record(trained, config.env, args.video, seed, episodes=args.video_episodes)
        print(f"wrote {args.video}: {len(returns)} deterministic episode(s) of {config.env}, returns "
              + ", ".join(f"{r:.1f}" for r in returns))
        return 0
    returns = evaluate(trained, config.env, episodes, seed)
    print(evaluation_report(config.env, returns, solved_threshold(config.env), as_json=args.json))
    return 0


def cmd_plot(args):
    from rlref.plot import check_runs, figure_path, plot_runs, run_thresholds
    check_runs(args.dirs)                                 # each DIR is a run, before the -o checks
    out = figure_path(args.o, args.dirs)
    print(plot_runs(args.dirs, out, threshold=run_thresholds(args.dirs), title=args.title))
    return 0


def cmd_explain(args):
    """explain: the table of progress.csv's columns; explain COLUMN: its row; explain RUN_DIR: what
    looks unhealthy in that run, and from when."""
    from rlref.columns import BY_NAME, describe, text_table
    if args.what is None:
        print(text_table())
    elif args.what in BY_NAME:
        print(describe(args.what))
    elif os.path.isdir(args.what):
        from rlref.health import report
        print(report(args.what))
    else:
        raise ConfigError(f"explain takes a column of progress.csv (python -m rlref explain lists them) or a run "
                          f"directory; got {args.what!r}, which is neither")
    return 0


def _add_explain(sub, common):
    p = sub.add_parser("explain", parents=[common], help="what progress.csv's columns mean; what looks wrong in a run",
                       description="Without argument: every column of progress.csv (meaning, equation, healthy "
                                   "range). COLUMN: that column. RUN_DIR: the run's health checks, from its log.")
    p.add_argument("what", nargs="?", metavar="COLUMN | RUN_DIR", default=None)
    p.set_defaults(func=cmd_explain)


def cmd_gradcheck(args):
    from rlref.checks import format_table, run_checks
    rows = run_checks(seed=args.seed)
    print(format_table(rows))
    return 0 if all(r[3] for r in rows) else 1


def cmd_bench(args):
    from rlref.bench import bench
    check_out_dir(args.out)
    return bench(args)


def _add_verbosity(p):
    group = p.add_mutually_exclusive_group()
    group.add_argument("--quiet", action="store_true", help="print only the closing summary (and errors)")
    group.add_argument("--verbose", action="store_true", help="also a line per iteration (stdout)")


def build_parser():
    parser = OneLineParser(prog="python -m rlref", description="rlref: policy gradients in NumPy",
                           formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the traceback of an rlref error")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("train", help="train an agent and write a run directory", parents=[common])
    p.add_argument("algo", nargs="?", choices=ALGOS, help="the algorithm: " + ", ".join(ALGOS))
    p.add_argument("--env", default=None, help="gymnasium id (default: the algorithm's, CartPole-v1)")
    p.add_argument("--seed", type=whole(0), default=None, help="the run's seed (default 0)")
    p.add_argument("--total-steps", dest="total_steps", type=whole(1), default=None,
                   help="budget of env steps, e.g. 100000 or 1e5 (default: the preset's or the Config's)")
    p.add_argument("--out", default=None, help="run directory (default runs/ALGO-ENV-sSEED)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a field of the algorithm's Config (repeatable)")
    _add_verbosity(p)
    p.add_argument("--overwrite", action="store_true", help="replace the run already in --out (refused otherwise)")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR from its last checkpoint, as it was configured")
    p.add_argument("--show-config", dest="show_config", action="store_true",
                   help="print every setting this command would train with (value, from default, preset or "
                        "--set, meaning) and exit without training")
    p.set_defaults(func=cmd_train)
    p = sub.add_parser("evaluate", help="deterministic evaluation of a saved run", parents=[common])
    p.add_argument("dir")
    p.add_argument("--episodes", type=whole(1), default=None,
                   help="episodes to evaluate (default: the run's eval_episodes)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON line (with every return)")
    p.add_argument("--video", metavar="FILE", default=None,
                   help="draw deterministic episodes into FILE.gif (or .mp4 with ffmpeg) instead of evaluating; "
                        "needs the envs extra (pygame draws the classic-control envs): "
                        "pip install -r requirements-envs.txt")
    p.add_argument("--video-episodes", dest="video_episodes", type=whole(1), default=1,
                   help="episodes in the video (1)")
    p.set_defaults(func=cmd_evaluate)
    p = sub.add_parser("plot", help="learning curves of run directories", parents=[common])
    p.add_argument("dirs", nargs="+")
    p.add_argument("-o", default=None, help="output image, e.g. figures/cartpole.png (.png is added to a name "
                   "without a suffix; default for one DIR: DIR/learning_curve.png)")
    p.add_argument("--title", default=None)
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("gradcheck", help="check every hand-derived gradient against finite differences", parents=[common])
    p.add_argument("--seed", type=whole(0), default=0, help="seed of the random inputs (default 0)")
    p.set_defaults(func=cmd_gradcheck)
    p = sub.add_parser("bench", help="a grid of runs in parallel; results table and learning curves", parents=[common],
                       description="Train every ALGO x ENV x seed (one `train` process each, presets as on the "
                                   "command line), then write DIR/results.md, DIR/results.json and DIR/figures/. "
                                   "Finished runs are reused, stopped ones resumed (rlref/bench.py).")
    p.add_argument("--algos", nargs="+", choices=ALGOS, metavar="ALGO", help="algorithms: " + ", ".join(ALGOS))
    p.add_argument("--envs", nargs="+", metavar="ID", help="gymnasium ids")
    p.add_argument("--seeds", type=whole(1), default=None, help="number of seeds per (algorithm, env)")
    p.add_argument("--first-seed", dest="first_seed", type=whole(0), default=1, help="seeds K, K+1, ... (default 1)")
    p.add_argument("--steps", type=_steps, default=None, help="env steps per run (default: the preset's budget)")
    p.add_argument("--jobs", type=whole(1), default=None, help="runs at once (default: one per core)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="passed to every run's train")
    p.add_argument("--out", required=True, help="bench folder: runs/, logs/, figures/, results.md, results.json")
    p.add_argument("--report-only", dest="report_only", action="store_true",
                   help="rebuild results.md, results.json and figures from DIR/runs without running anything")
    p.set_defaults(func=cmd_bench)
    _add_explain(sub, common)
    from rlref.homework.commands import add_parser
    add_parser(sub, common)
    from rlref.site import add_parser as add_site_parser
    add_site_parser(sub, common)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        status = args.func(args)
        sys.stdout.flush()                   # inside the try: a reader gone early is handled below
        return status
    except RlrefError as err:
        if args.debug:
            raise
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`python -m rlref explain | head`): stop quietly, as Unix tools do;
        # stdout is pointed at devnull so that the interpreter's final flush cannot fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
