"""What a run's display (rlref/progress.py: header, bar or plain lines, health checks) costs, as a
share of the run's wall time, measured inside the process.

    python scripts/display_cost.py [--algo ppo] [--seed 1] [--modes tty pipe quiet]

Trains ALGO on CartPole-v1 with its defaults once per mode (into temporary folders), with every
method of rlref.progress.Display wrapped in a clock: "tty" shows the tqdm bar (stderr replaced by
a text buffer that says it is a terminal), "pipe" the plain line every 10 s, "quiet" only runs the
health checks. Prints the display's milliseconds, their share of the run, and per iteration. The
first "tty" of a process includes importing tqdm (about 50 ms here), which the display before it
paid too. A side-by-side of whole processes cannot resolve 1 % on a shared machine (pairs spread
by +-10 %); this accounting can.
"""
import argparse
import io
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import rlref  # noqa: E402

rlref.one_blas_thread()                   # before NumPy loads, as python -m rlref does
rlref.keep_freed_memory()
from rlref import progress  # noqa: E402
from rlref.algos import algo_module  # noqa: E402
from rlref.train import train  # noqa: E402


class Terminal(io.StringIO):
    def isatty(self):
        return True


def clocked(spent):
    """Wrap Display's methods so that the seconds spent in them add up in spent[name]."""
    def wrap(name, method):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent[name] = spent.get(name, 0.0) + time.perf_counter() - t
        return timed
    for name in ("__init__", "row", "close", "health"):
        setattr(progress.Display, name, wrap(name, getattr(progress.Display, name)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default="ppo")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--modes", nargs="+", choices=("tty", "pipe", "quiet"), default=["tty", "pipe", "quiet"])
    args = parser.parse_args()
    spent = {}
    clocked(spent)
    for mode in args.modes:
        spent.clear()
        sys.stderr = Terminal() if mode == "tty" else io.StringIO()
        t = time.perf_counter()
        out = tempfile.mkdtemp(prefix="rlref-cost-")
        summary = train(args.algo, algo_module(args.algo).Config(seed=args.seed), out, quiet=mode == "quiet")
        wall = time.perf_counter() - t
        sys.stderr = sys.__stderr__
        total, n = sum(spent.values()), summary["iterations"]
        print(f"{mode:5s}: display {1e3 * total:6.1f} ms of {wall:5.2f} s = {100 * total / wall:.2f} % "
              f"({1e6 * total / n:.0f} us per iteration over {n}; "
              + ", ".join(f"{k} {1e3 * v:.1f} ms" for k, v in spent.items()) + ")")


if __name__ == "__main__":
    main()
