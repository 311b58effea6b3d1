"""No reset: the plain-training baseline."""

from __future__ import annotations

from fire_rl.resets.base import ResetReport, ResetStrategy, ResettableAgent


class NoReset(ResetStrategy):
    """Never resets (vanilla training, the paper's "Vanilla DQN" / "Vanilla SimBa-SAC" rows)."""

    changes_weights = False

    def resolve(self, agent: ResettableAgent) -> dict:
        return {"strategy": self.name}

    def due(self, prev_step: int, step: int, switched: bool) -> bool:
        """Never due, whatever the schedule options say."""
        return False

    def apply(self, agent: ResettableAgent, step: int, sample_batch=None) -> ResetReport:
        """Do nothing; logs nothing."""
        return ResetReport()
