"""Input checking shared by every entry point: one error type, one message style."""

from __future__ import annotations

from collections.abc import Iterable


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


# Agent-config keys the training loop reads; an agent accepts them and ignores them.
LOOP_KEYS = ("name", "num_envs", "updates_per_env_step", "buffer_size", "replay_device")


def check_loop_keys(agent: str, extra: dict) -> None:
    """Refuse agent-config keys that neither the agent nor the loop knows (a typo would otherwise pass silently)."""
    unknown = sorted(set(extra) - set(LOOP_KEYS))
    if unknown:
        raise ConfigError(f"unknown {agent} agent keys {unknown}; the loop's keys are {list(LOOP_KEYS)}")
