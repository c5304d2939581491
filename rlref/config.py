"""The settings every training run shares; each algorithm's Config adds its own fields.

One commented line per field names its symbol; ``__post_init__`` validates, so a bad value raises
ConfigError at construction, before any env is made or stepped. The command line builds
`--set key=value` overrides from these fields (rlref/cli.py).
"""
import dataclasses
from dataclasses import dataclass

from rlref.errors import ConfigError, require_choice, require_float, require_int
from rlref.nn import ACTIVATIONS

# Settings that were renamed, old -> new: an old name (in a script's --set, or a keyword argument)
# raises ConfigError naming the new one instead of being silently ignored or reported as unknown.
RENAMED = {"target_kl": "early_stop_kl", "vf_lr": "lr_v", "vf_epochs": "v_epochs",
           "vf_minibatch": "v_minibatch", "backtrack_ratio": "backtrack_coef"}


def check_renamed(keys):
    for key in keys:
        if key in RENAMED:
            raise ConfigError(f"the setting {key!r} was renamed: use {RENAMED[key]!r}")


@dataclass
class TrainConfig:
    env: str = "CartPole-v1"         # gymnasium id
    seed: int = 0                    # the one seed every generator is spawned from
    total_steps: int = 100_000       # budget of env transitions
    num_envs: int = 8                # E: parallel envs
    gamma: float = 0.99              # discount of J = E[sum_t gamma^t r_t]
    hidden: tuple = (64, 64)         # hidden layer sizes of the policy and value MLPs
    activation: str = "tanh"         # hidden activation: tanh, relu or identity
    log_std_init: float = 0.0        # initial log sigma of a Gaussian policy (Box actions)
    eval_episodes: int = 20          # deterministic evaluation episodes at the end
    normalize_obs: bool = False      # observation normalization by running statistics (NORM.2)
    obs_clip: float = 10.0           # clip of normalized observations
    scale_reward: bool = False       # divide rewards by the running std of the return (NORM.3)
    checkpoint_every: int = 100      # save a resumable checkpoint every this many iterations (0: never)
    checkpoint_minutes: float = 10.0 # ... and whenever this much wall time passed since the last one

    def __new__(cls, *args, **kwargs):
        check_renamed(kwargs)                                      # before dataclass's TypeError
        return super().__new__(cls)

    def __post_init__(self):
        if not isinstance(self.env, str) or not self.env:
            raise ConfigError(f"env must be a gymnasium id such as 'CartPole-v1', got {self.env!r}")
        require_int("seed", self.seed, 0)
        require_int("total_steps", self.total_steps, 1)
        require_int("num_envs", self.num_envs, 1)
        require_int("eval_episodes", self.eval_episodes, 1)
        require_int("checkpoint_every", self.checkpoint_every, 0)
        require_float("checkpoint_minutes", self.checkpoint_minutes, 0.0, low_open=True)
        require_float("gamma", self.gamma, 0.0, 1.0)
        self.hidden = tuple(self.hidden)
        for h in self.hidden:
            require_int("hidden sizes", h, 1)
        require_float("obs_clip", self.obs_clip, 0.0, low_open=True)
        require_float("log_std_init", self.log_std_init, -20.0, 5.0)
        require_choice("activation", self.activation, ACTIVATIONS)

    def to_dict(self):
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def parse_value(config_cls, key, text):
    """Turn the text of `--set key=text` into the type of the field `key` of config_cls."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    check_renamed([key])
    if key not in fields:
        raise ConfigError(f"unknown setting {key!r} for {config_cls.__module__}; allowed: "
                          f"{', '.join(sorted(fields))}")
    default = fields[key].default
    try:
        if isinstance(default, bool):
            if text.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.lower() in ("true", "1")
        if isinstance(default, tuple):
            return tuple(int(h) for h in text.split(",") if h.strip())
        if isinstance(default, int):
            return int(text)
        if isinstance(default, float):
            return float(text)
        if default is None:                                        # optional: none, or its annotated type
            return None if text.lower() == "none" else (int if fields[key].type in (int, "int") else float)(text)
    except ValueError:
        kind = "number or none" if default is None else type(default).__name__
        raise ConfigError(f"{key} must be a {kind} (like {default!r}), got {text!r}") from None
    return text
