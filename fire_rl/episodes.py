"""Episode bookkeeping under gymnasium's next-step autoreset, shared by the training loop and evaluation."""

from __future__ import annotations

import numpy as np


class EpisodeTracker:
    """Raw-score returns per env under next-step autoreset (the step after an episode end is the reset step).

    With episodic life (envs/atari_wrappers.py), a lost life ends the learning episode but not the game: pass which
    episode ends are game ends (the suite's `game_over`) and a return covers the whole game, as CleanRL logs it;
    without them every episode end is a game end.
    """

    def __init__(self, num_envs: int):
        self.returns, self.lengths = np.zeros(num_envs), np.zeros(num_envs, dtype=int)
        self.resetting = np.zeros(num_envs, dtype=bool)  # this step is an autoreset step
        self.game_ended = np.ones(num_envs, dtype=bool)  # ... after a whole game (not only a life) ended

    def step(
        self, rewards: np.ndarray, done: np.ndarray, game_over: np.ndarray | None = None
    ) -> list[tuple[float, int]]:
        game_over = done if game_over is None else np.asarray(game_over, dtype=bool) & done
        live = ~self.resetting
        restart = self.resetting & self.game_ended
        self.returns[restart], self.lengths[restart] = 0.0, 0
        self.returns[live] += rewards[live]
        self.lengths[live] += 1
        finished = live & game_over
        episodes = [(float(self.returns[i]), int(self.lengths[i])) for i in np.flatnonzero(finished)]
        self.resetting, self.game_ended = done.copy(), game_over.copy()
        return episodes

    def state_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("returns", "lengths", "resetting", "game_ended")}

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> EpisodeTracker:
        tracker = cls(len(state["returns"]))
        for key, value in state.items():  # checkpoints from before game_ended existed lack it: every end was a game's
            setattr(tracker, key, value)
        if "game_ended" not in state:
            tracker.game_ended = tracker.resetting.copy()
        return tracker
