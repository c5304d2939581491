"""A tiny custom env for the command line's `module:Env-v0` ids (tests/test_cli_slips.py): importing
this module registers TinyGuess-v0, so `--env tests.tiny_env:TinyGuess-v0` trains it as gymnasium's
own `gym.make("module:id")` would make it. One observation in {-1, +1}; reward 1 for the action
that matches its sign (0 for -1, 1 for +1); 16 steps per episode."""
import gymnasium as gym
import numpy as np


class TinyGuess(gym.Env):
    observation_space = gym.spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float64)
    action_space = gym.spaces.Discrete(2)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.sign = self.np_random.choice([-1.0, 1.0])
        return np.array([self.sign]), {}

    def step(self, action):
        reward = float(int(action) == int(self.sign > 0))
        self.sign = self.np_random.choice([-1.0, 1.0])
        return np.array([self.sign]), reward, False, False, {}


gym.register(id="TinyGuess-v0", entry_point=TinyGuess, max_episode_steps=16, reward_threshold=15.0)
