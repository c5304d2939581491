"""`python -m rlref ...`: see rlref/cli.py."""
import os

# One BLAS thread before NumPy loads: the networks are small, threads only add noise on 2 cores,
# and single-threaded BLAS is what makes runs bitwise reproducible (DESIGN.md).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from rlref.cli import main  # noqa: E402

raise SystemExit(main())
