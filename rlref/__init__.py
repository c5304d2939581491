"""rlref: policy-gradient reinforcement learning in NumPy, every derivative by hand and checked.

Start with notebooks/00_backprop_and_gradcheck.ipynb; `python -m rlref --help` for the command line.
"""
import ctypes
import os

__version__ = "0.1.0"

BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def one_blas_thread(environ=None):
    """Ask for one BLAS thread in `environ` (default: this process's, which must happen before
    NumPy is first imported) unless the caller chose otherwise; returns environ.

    The networks are small, threads only add noise on two cores, and single-threaded BLAS is what
    makes runs bitwise reproducible. The command line, the tests and the scripts all call this."""
    environ = os.environ if environ is None else environ
    for var in BLAS_THREAD_VARS:
        environ.setdefault(var, "1")
    return environ


def load(run_dir):
    """The trained policy of a run directory, for your own loop: ``rlref.load(dir).act(obs)``
    (rlref.train.TrainedPolicy: frozen normalization and action clipping, as in evaluation)."""
    from rlref.train import load_run                # imported here: `import rlref` loads no NumPy
    return load_run(run_dir)


def keep_freed_memory():
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
