"""`python -m rlref ...`: see rlref/cli.py. Two process-wide settings come first."""
import rlref                       # its __init__ imports no NumPy: the settings below still come first

rlref.one_blas_thread()            # before NumPy loads: see its docstring
rlref.keep_freed_memory()          # speed only: see its docstring

from rlref.cli import main  # noqa: E402

raise SystemExit(main())
