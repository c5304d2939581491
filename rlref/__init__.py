"""rlref: policy-gradient reinforcement learning in NumPy, every derivative by hand and checked.

Start with notebooks/00_backprop_and_gradcheck.ipynb; `python -m rlref --help` for the command line.
"""
__version__ = "0.1.0"
