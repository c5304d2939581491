"""The algorithms, one module each; ALGOS in teaching order."""
import importlib

from rlref.errors import require_choice

ALGOS = ("reinforce", "a2c", "npg", "trpo", "ppo", "dppo")


def algo_module(name):
    """The module rlref.algos.NAME (ConfigError, naming the algorithms, for another name)."""
    require_choice("algorithm", name, ALGOS)
    return importlib.import_module(f"rlref.algos.{name}")
