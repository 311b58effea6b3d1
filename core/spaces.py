"""What every task of a sequence shares and what an agent is sized to: the observation and action spaces."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spaces:
    """What every task of a sequence shares, and what the agent is sized to: observation and action spaces."""

    obs_shape: tuple[int, ...]
    obs_dtype: str  # numpy dtype name of the observations the env returns ("uint8", "float32")
    num_actions: int | None = None  # discrete actions (DQN)
    action_shape: tuple[int, ...] | None = None  # continuous actions in [-1, 1] (SAC)

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None

    @classmethod
    def discrete_actions(cls, obs_shape: tuple[int, ...], num_actions: int, obs_dtype: str = "uint8") -> Spaces:
        return cls(tuple(obs_shape), obs_dtype, num_actions=int(num_actions))

    @classmethod
    def box_actions(cls, obs_shape: tuple[int, ...], action_shape: tuple[int, ...]) -> Spaces:
        return cls(tuple(obs_shape), "float32", action_shape=tuple(action_shape))
