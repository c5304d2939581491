"""`python -m rlref ...`: see rlref/cli.py. Two process-wide settings come first."""
import os

import rlref                       # its __init__ imports no NumPy: the settings below still come first

# One BLAS thread before NumPy loads: the networks are small, threads only add noise on 2 cores,
# and single-threaded BLAS is what makes runs bitwise reproducible (DESIGN.md).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
rlref.keep_freed_memory()          # speed only: see its docstring

from rlref.cli import main  # noqa: E402

raise SystemExit(main())
