"""No reset: the plain-training baseline."""

from __future__ import annotations

from fire_rl.resets.base import ResetStrategy, ResettableAgent


class NoReset(ResetStrategy):
    """Never resets (vanilla training, the paper's "Vanilla DQN" / "Vanilla SimBa-SAC" rows)."""

    def due(self, prev_step: int, step: int, switched: bool) -> bool:
        """Never due, whatever the schedule options say."""
        return False

    def apply(self, agent: ResettableAgent, step: int, sample_batch=None) -> dict[str, float]:
        """Do nothing; logs nothing."""
        self.last_touched = []
        return {}
