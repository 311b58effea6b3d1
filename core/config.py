"""Input checking shared by every entry point: one error type, one message style."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


class ConfigError(ValueError):
    """Bad user input, reported as one line before any training starts."""


def check_choice(what: str, value: object, valid: Iterable[object]) -> None:
    """Raise ConfigError naming `value` and the valid choices unless value is one of them."""
    valid = list(valid)
    if value not in valid:
        raise ConfigError(f"unknown {what} {value!r}; valid choices: {', '.join(map(str, valid))}")


def check_positive(what: str, value: object, allow_zero: bool = False) -> None:
    """Raise ConfigError unless value is a positive (or, if allowed, zero) number."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = "non-negative" if allow_zero else "positive"
        raise ConfigError(f"{what} must be {bound}, got {value!r}")


# The training loop's settings for a learner (the `loop` section an agent preset sets), each checked where it is used.
LOOP_KEYS = ("num_envs", "updates_per_env_step", "buffer_size", "batch_size", "replay_device")
# Keys that moved: the loop's settings left the agent config (an agent config holds its constructor's arguments).
MOVED_KEYS = {f"agent.{key}": f"loop.{key}" for key in LOOP_KEYS}


def moved_key_error(key: str, value: Any = None) -> ConfigError:
    """The one line for a key typed the old way."""
    new = MOVED_KEYS[key]
    example = f"{new}={value}" if value is not None else new
    return ConfigError(
        f"{key} moved to {new}: the training loop's settings ({', '.join(LOOP_KEYS)}) have their own section "
        f"`loop`, set by the agent preset; use {example}"
    )


def check_overrides(overrides: list[str]) -> None:
    """Refuse command-line overrides of moved keys (`agent.buffer_size=1000`) before Hydra composes anything."""
    for item in overrides:
        key, _, value = item.lstrip("+~").partition("=")
        if key in MOVED_KEYS:
            raise moved_key_error(key, value or None)
