"""The settings every training run shares; each algorithm's Config adds its own fields.

One commented line per field names its symbol and says what it is; ``__post_init__`` validates, so a
bad value raises ConfigError at construction, before any env is made or stepped. The command line
builds `--set key=value` overrides from these fields (parse_value), writes values back in that syntax
(format_value) and prints the comments as the settings' meanings (meanings: `train ... --show-config`),
so a field's comment is its documentation: keep it on the field's line, a "..." comment continuing
the line above.
"""
import dataclasses
import difflib
import inspect
import re
import textwrap
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
    env: str = "CartPole-v1"         # gymnasium id (module:Env-v0 imports module first, as gym.make does)
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
    """Turn the text of `--set key=text` into the type of the field `key` of config_cls; ConfigError
    in the command line's words for an unknown key (with a "did you mean") or a text of another type."""
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    check_renamed([key])
    if key not in fields:
        close = difflib.get_close_matches(key, fields, n=2)
        close += [name for name in sorted(fields) if name.startswith(key + "_") and name not in close][:3 - len(close)]
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        algo = _algo_name(config_cls)
        raise ConfigError(f"unknown setting {key!r} for {algo} ({hint}python -m rlref train {algo} --show-config "
                          f"lists every setting with its value and meaning)")
    default, kind = fields[key].default, _kind(fields[key])
    try:
        if default is None and text.strip().lower() == "none":
            return None
        if kind is bool:
            if text.strip().lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return text.strip().lower() in ("true", "1")
        if kind is tuple:
            return tuple(whole_number(h) for h in text.split(",") if h.strip())
        if kind is int:
            return whole_number(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise ConfigError(f"{key} must be {KIND_WORDS[kind]}{' or none' if default is None else ''} "
                          f"(like {format_value(default)}), got {text!r}") from None
    return text


KIND_WORDS = {bool: "true or false", tuple: "a comma-separated list of whole numbers such as 64,64",
              int: "a whole number", float: "a number", str: "a word"}


def whole_number(text):
    """An int from a command line's text: 100000, 100_000 and 1e5 alike; ValueError for 1.5 or x."""
    text = text.strip().replace("_", "")
    try:
        return int(text)
    except ValueError:
        value = float(text)                                         # ValueError for a non-number
        if not value.is_integer():
            raise ValueError(f"{text} is not a whole number") from None
        return int(value)


def _kind(field):
    """The type a field's --set text becomes: its default's, or its annotation's for a None default."""
    if field.default is not None:
        return type(field.default) if type(field.default) in KIND_WORDS else str
    return {"int": int, "float": float, "bool": bool, "str": str}.get(getattr(field.type, "__name__", field.type), str)


def _algo_name(config_cls):
    return config_cls.__module__.rpartition(".")[2]


def format_value(value):
    """A setting as the command line writes it: 32,32 for (32, 32), true for True, none for None."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (tuple, list)):
        return ",".join(format_value(v) for v in value) if value else '""'
    return str(value)


def meanings(config_cls):
    """{field: one-line meaning} of a Config dataclass, read from the comment on each field's line (the
    one source: one commented line per field). A comment that starts with "..." goes on
    from the field above it, so the fields of one such run share the whole sentence; a subclass's
    comment that only begins its base's (E for "E: parallel envs") gives way to the base's."""
    found = {}
    for cls in reversed([c for c in config_cls.__mro__ if dataclasses.is_dataclass(c)]):   # base first
        for name, text in _field_comments(cls).items():
            if not found.get(name, "").startswith(text):
                found[name] = text
    return {f.name: found.get(f.name, "") for f in dataclasses.fields(config_cls)}


def _field_comments(cls):
    """{field: comment} of the fields one class's source defines, continued comments joined."""
    try:
        lines = textwrap.dedent(inspect.getsource(cls)).splitlines()
    except (OSError, TypeError):                                    # no source (frozen): no meanings
        return {}
    comments, run = {}, []
    for line in lines:
        match = FIELD_LINE.match(line)
        if not match:
            continue
        name, text = match.group(1), match.group(2).strip()
        if text.startswith("...") and run:
            run.append(name)
            joined = comments[run[0]] + " " + text[3:].strip()
            comments.update({n: joined for n in run})
        else:
            comments[name], run = text, [name]
    return comments


FIELD_LINE = re.compile(r"^    (\w+)\s*:\s*[\w\[\], .]+=[^#]*#\s*(.*)$")
