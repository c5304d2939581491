"""The collector against a scripted env under gymnasium's next-step autoreset, bad spaces, and
non-finite env output."""
import gymnasium as gym
import numpy as np
import pytest

from rlref.errors import ConfigError, NonFiniteError, UnsupportedSpaceError
from rlref.policy import init_policy
from rlref.envs import make_envs
from rlref.rollout import collect, start


class ScriptedEnv(gym.Env):
    """Episode k of this env lasts script[k] = (length, "term" | "trunc") steps. The observation is
    [env id, k, t, 0] and the reward of step t (1-based) of episode k is 100 k + t, whatever the
    action; received actions are recorded."""

    def __init__(self, env_id, script, action_space=None, nan_at=None):
        self.env_id, self.script, self.nan_at = env_id, script, nan_at
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (4,), np.float64)
        self.action_space = action_space or gym.spaces.Discrete(3)
        self.k, self.t, self.received, self.n_steps = -1, 0, [], 0

    def _obs(self):
        return np.array([self.env_id, self.k, self.t, 0.0])

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.k, self.t = self.k + 1, 0
        return self._obs(), {}

    def step(self, action):
        self.received.append(np.array(action))
        self.t += 1
        self.n_steps += 1
        length, how = self.script[self.k]
        obs = self._obs()
        if self.nan_at is not None and self.n_steps == self.nan_at:
            obs[3] = np.nan
        done = self.t == length
        return obs, 100.0 * self.k + self.t, done and how == "term", done and how == "trunc", {}


SCRIPTS = [[(3, "term"), (2, "trunc"), (4, "term"), (50, "term")],
           [(5, "trunc"), (1, "term"), (50, "term")]]


def make(scripts=SCRIPTS, **kwargs):
    return gym.vector.SyncVectorEnv([lambda i=i, s=s: ScriptedEnv(i, s, **kwargs) for i, s in enumerate(scripts)])


def expected_transitions(script, n_valid):
    """(obs, reward, terminated, truncated, next_obs) of the first n_valid real transitions."""
    out = []
    for k, (length, how) in enumerate(script):
        for t in range(1, length + 1):
            out.append(([k, t - 1], 100.0 * k + t, t == length and how == "term",
                        t == length and how == "trunc", [k, t]))
    return out[:n_valid]


def test_stored_transitions_follow_the_script(rng):
    envs = make()
    collector = start(envs, seed=0)
    params = init_policy([4, 8, 3], rng)
    batches = [collect(collector, params, 7, rng), collect(collector, params, 6, rng)]   # autoreset spans both
    for e, script in enumerate(SCRIPTS):
        rows = []
        for b in batches:
            for t in range(len(b.rewards)):
                if b.valid[t, e]:
                    rows.append((list(b.obs[t, e, 1:3]), b.rewards[t, e], bool(b.terminated[t, e]),
                                 bool(b.truncated[t, e]), list(b.obs[t + 1, e, 1:3])))
                else:                                   # an autoreset step: nothing but the flag
                    assert b.rewards[t, e] == 0 and not b.terminated[t, e] and not b.truncated[t, e]
        assert rows == expected_transitions(script, len(rows))
        # the slot after each done holds the episode's final observation: next_values[t] = V(obs[t+1])
        n_invalid = sum(int((~b.valid[:, e]).sum()) for b in batches)
        assert len(rows) + n_invalid == 13
    assert not batches[0].valid[3, 0] and not batches[0].valid[5, 1]   # steps right after the ends
    # in order of completion: env 0 at t=2, env 1 at t=4, env 0 at t=5, env 1 at t=6; then env 0
    assert batches[0].episode_returns == [1 + 2 + 3, 1 + 2 + 3 + 4 + 5, 101 + 102, 101]
    assert batches[0].episode_lengths == [3, 5, 2, 1]
    assert batches[1].episode_returns == [201 + 202 + 203 + 204]
    # 13 calls x 2 envs, minus the autoreset slots: env 0 at t = 3, 6, 6 + 4; env 1 at t = 5, 7
    assert collector.transitions == 13 * 2 - 5


def test_actions_are_clipped_only_when_sent_to_the_env(rng):
    box = gym.spaces.Box(-1.0, 1.0, (1,), np.float64)
    envs = make(action_space=box)
    collector = start(envs, seed=0)
    params = init_policy([4, 8, 1], rng, gaussian=True, log_std=1.0)        # sigma = e: many outside
    batch = collect(collector, params, 6, rng)
    sent = np.array([np.ravel(a) for a in envs.envs[0].received])
    stored = batch.actions[:, 0, :]
    assert np.abs(stored).max() > 1.0                                          # log-probs use these
    # autoreset steps call reset(), not step(): the env saw exactly the valid actions, clipped
    np.testing.assert_array_equal(sent, np.clip(stored[batch.valid[:, 0]], -1, 1))


def test_non_finite_observation_names_env_and_step(rng):
    envs = gym.vector.SyncVectorEnv([lambda: ScriptedEnv(0, SCRIPTS[0]),
                                     lambda: ScriptedEnv(1, SCRIPTS[1], nan_at=4)])
    collector = start(envs, seed=0)
    with pytest.raises(NonFiniteError, match=r"env 1 returned a non-finite observation at step 4 "):
        collect(collector, init_policy([4, 8, 3], rng), 6, rng)


@pytest.mark.parametrize("obs_space, act_space, match", [
    (gym.spaces.Dict({"a": gym.spaces.Box(-1, 1, (2,))}), gym.spaces.Discrete(2), "FlattenObservation"),
    (gym.spaces.Box(0, 255, (8, 8, 3), np.uint8), gym.spaces.Discrete(2), "1-D Box"),
    (gym.spaces.Box(-1, 1, (4,)), gym.spaces.MultiDiscrete([2, 3]), "Discrete or a 1-D Box"),
    (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Tuple((gym.spaces.Discrete(2),)), "Discrete or a 1-D Box"),
    (gym.spaces.Box(-1, 1, (4,)), gym.spaces.Box(-np.inf, np.inf, (2,)), "bounds must be finite"),
])
def test_unsupported_spaces(obs_space, act_space, match):
    class Env(gym.Env):
        observation_space, action_space = obs_space, act_space

        def reset(self, seed=None, options=None):
            return self.observation_space.sample(), {}
    with pytest.raises(UnsupportedSpaceError, match=match):
        start(gym.vector.SyncVectorEnv([Env]), seed=0)


def test_other_autoreset_modes_are_refused():
    envs = gym.vector.SyncVectorEnv([lambda: ScriptedEnv(0, SCRIPTS[0])],
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    with pytest.raises(ConfigError, match="autoreset mode must be NEXT_STEP"):
        start(envs, seed=0)


def test_episodes_mode_stops_after_every_env_finished_once(rng):
    envs = make()
    collector = start(envs, seed=0)
    batch = collect(collector, init_policy([4, 8, 3], rng), 100, rng, stop_when_all_done=True)
    assert len(batch.rewards) == 5                                   # env 1's first episode is 5 long
    assert batch.valid[:, 0].sum() == 3 and batch.valid[:, 1].sum() == 5
    assert batch.episode_returns == [6.0, 15.0]


def test_sync_envs_carry_no_info_and_the_collector_keeps_its_own_copy(rng):
    # make_envs builds sync vector envs with copy=False (they return their own buffer) and DropInfo
    envs = make_envs("Pendulum-v1", 2)
    start(envs, 3)
    assert envs.step(np.zeros((2, 1)))[4] == {}
    envs.close()
    # ... so the Collector must hold a copy of a float64 observation, or the next step rewrites it
    def float64_env():
        return gym.wrappers.DtypeObservation(gym.make("Pendulum-v1"), np.float64)

    with np.errstate(over="ignore"):                     # gymnasium's Box compares its float32 bounds in float64
        envs = gym.vector.SyncVectorEnv([float64_env, float64_env], copy=False)
    collector = start(envs, 3)
    seen = collector.obs.copy()
    obs = envs.step(np.zeros((2, 1)))[0]
    assert obs.dtype == np.float64 and not np.array_equal(obs, seen)
    np.testing.assert_array_equal(collector.obs, seen)
    batch = collect(collector, init_policy([3, 8, 1], rng, gaussian=True), 5, rng)
    assert not np.array_equal(batch.obs[1], batch.obs[2])
    envs.close()
