"""Episode bookkeeping under gymnasium's next-step autoreset, shared by the training loop and evaluation."""

from __future__ import annotations

import numpy as np


class EpisodeTracker:
    """Raw-score returns per env under next-step autoreset (the step after an episode end is the reset step)."""

    def __init__(self, num_envs: int):
        self.returns, self.lengths = np.zeros(num_envs), np.zeros(num_envs, dtype=int)
        self.resetting = np.zeros(num_envs, dtype=bool)

    def step(self, rewards: np.ndarray, done: np.ndarray) -> list[tuple[float, int]]:
        live = ~self.resetting
        self.returns[~live], self.lengths[~live] = 0.0, 0
        self.returns[live] += rewards[live]
        self.lengths[live] += 1
        finished = live & done
        episodes = [(float(self.returns[i]), int(self.lengths[i])) for i in np.flatnonzero(finished)]
        self.resetting = done.copy()
        return episodes

    def state_dict(self) -> dict[str, np.ndarray]:
        return {"returns": self.returns, "lengths": self.lengths, "resetting": self.resetting}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> EpisodeTracker:
        tracker = cls(len(state["returns"]))
        tracker.returns, tracker.lengths, tracker.resetting = state["returns"], state["lengths"], state["resetting"]
        return tracker
