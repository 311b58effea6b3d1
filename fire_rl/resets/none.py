"""No reset: the plain-training baseline."""

from __future__ import annotations

from collections.abc import Sequence

from fire_rl.resets.base import ResetStrategy


class NoReset(ResetStrategy):
    """Never resets (vanilla training, the paper's "Vanilla DQN" / "Vanilla SimBa-SAC" rows): the protocol's
    defaults, which do nothing."""

    intervenes = False

    def __init__(self, at_switch: bool = True, at_steps: Sequence[int] = (), every_steps: int | None = None) -> None:
        """Schedule options are accepted and ignored, so one sweep can give every arm the same ones."""
