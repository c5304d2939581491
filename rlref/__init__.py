"""rlref: policy-gradient reinforcement learning in NumPy, every derivative by hand and checked.

Start with notebooks/00_backprop_and_gradcheck.ipynb; `python -m rlref --help` for the command line.
"""
import ctypes

__version__ = "0.1.0"


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
