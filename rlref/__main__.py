"""`python -m rlref ...`: see rlref/cli.py. Two process-wide settings come first."""
import ctypes
import os

# One BLAS thread before NumPy loads: the networks are small, threads only add noise on 2 cores,
# and single-threaded BLAS is what makes runs bitwise reproducible (DESIGN.md).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


def _keep_freed_memory():
    """Stop glibc from returning freed arrays to the operating system.

    By default glibc serves every allocation of 128 KB or more (one (256, 64) float64 activation)
    with fresh pages from the OS and gives them back when the array is freed, so each new array
    page-faults on every 4 KB page: measured here, 112 faults per forward pass of a 4-64-64-2 MLP
    at batch 256, and none with these two settings (M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3
    in malloc.h). It changes speed only, never results. Elsewhere than Linux/glibc it does nothing.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-1, 32 << 20)
        libc.mallopt(-3, 32 << 20)
    except (OSError, AttributeError):
        pass


_keep_freed_memory()

from rlref.cli import main  # noqa: E402

raise SystemExit(main())
