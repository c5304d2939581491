"""The algorithms, one module each; ALGOS in teaching order."""
ALGOS = ("reinforce", "a2c", "npg", "trpo", "ppo", "dppo")
