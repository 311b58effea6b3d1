"""Input shifts: a task that is its game seen through a fixed view transform, for level sequences in which the game,
its rewards and its actions stay the same and only what the network sees changes.

Two kinds, each fixed per task by its own seed (task data, not the run seed, so every method and run seed of a
comparison sees the same levels):

- `offset`: a fixed array drawn from N(0, sigma^2), one value per observation element, added to every observation
  (C-CHAIN's gym-control levels, Tang et al. 2025, from the TRAC code; sigma 0 is the plain view, in float).
  Observations become float32.
- `permute`: the cells of the spatial grid shuffled by a fixed permutation, the same for every channel (the
  Permuted-MNIST idea of Dohare et al., Nature 2024, on a grid game). Observations keep their dtype.

A task's `shift` is applied inside its env (ShiftedView), so training, evaluation, the replay buffer, plasticity
probes and checkpoints all see the view of the task that produced an observation. MinAtar tasks take both kinds,
MuJoCo tasks an offset of their state vector (envs/mujoco.py). `level_tasks` expands a
`levels` block (one game, N levels, steps per level, kind, sigma) into the task list of an N-level sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from core.config import ConfigError, check_choice, check_positive

KINDS = ("offset", "permute")
LEVEL_KEYS = ("env_id", "count", "steps", "kind", "sigma", "seed")


@dataclass(frozen=True)
class ViewShift:
    """One task's view transform; `seed` fixes its draw."""

    kind: str
    seed: int
    sigma: float = 1.0  # offset only: standard deviation of the offset's entries

    @classmethod
    def parse(cls, spec: Mapping[str, Any], task: str) -> ViewShift:
        """From a task's `shift` entry; ConfigError names the bad key or value and the valid ones."""
        spec = dict(spec)
        check_choice(f"shift kind of task {task}", spec.get("kind"), KINDS)
        valid = ("kind", "seed", "sigma") if spec["kind"] == "offset" else ("kind", "seed")
        unknown = sorted(set(spec) - set(valid))
        if unknown or "seed" not in spec:
            what = f"unknown key {unknown[0]!r}" if unknown else "no 'seed'"
            raise ConfigError(f"task {task}: shift has {what}; a {spec['kind']} shift takes {', '.join(valid)}")
        if not isinstance(spec["seed"], int) or isinstance(spec["seed"], bool) or spec["seed"] < 0:
            raise ConfigError(f"task {task}: shift seed must be a non-negative integer, got {spec['seed']!r}")
        if spec["kind"] == "offset":
            check_positive(f"shift sigma of task {task}", spec.get("sigma", 1.0), allow_zero=True)
        return cls(**spec)

    @property
    def obs_dtype(self) -> str:
        """The dtype of the observations this view gives, for an env whose plain view is uint8."""
        return "float32" if self.kind == "offset" else "uint8"

    def transform(self, obs_shape: tuple[int, ...]):
        """The view as a function of one observation (a state vector, or channel-first C, H, W for a permutation),
        its draw made once here."""
        rng = np.random.default_rng(self.seed)
        if self.kind == "offset":
            offset = (self.sigma * rng.standard_normal(obs_shape)).astype(np.float32)
            return lambda obs: obs.astype(np.float32) + offset
        cells = int(np.prod(obs_shape[1:]))
        order = rng.permutation(cells)  # cell j of the view shows cell order[j] of the game
        return lambda obs: obs.reshape(obs.shape[0], cells)[:, order].reshape(obs.shape)


class ShiftedView(gym.ObservationWrapper):
    """An env seen through a task's ViewShift; rewards, actions and episode ends pass through untouched."""

    def __init__(self, env: gym.Env, shift: ViewShift):
        super().__init__(env)
        space = env.observation_space
        self.func = shift.transform(space.shape)  # `func`: configuration, rebuilt with the env, never snapshotted
        if shift.kind == "offset":
            self.observation_space = gym.spaces.Box(-np.inf, np.inf, space.shape, dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return self.func(observation)


def shift_label(shift: Mapping[str, Any]) -> str:
    """The part of a task's name its shift adds: '-offset1-s3', '-permute-s3'."""
    sigma = f"{float(shift.get('sigma', 1.0)):g}" if shift.get("kind") == "offset" else ""
    return f"-{shift.get('kind')}{sigma}-s{shift.get('seed')}"


def level_tasks(levels: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The tasks of an N-level sequence: one game, `count` levels of `steps` agent steps, level i shifted by `kind`
    (and `sigma`) with shift seed `seed + i`. Every level is shifted, level 0 too (sigma 0 gives the plain view)."""
    levels = dict(levels)
    unknown = sorted(set(levels) - set(LEVEL_KEYS))
    missing = [key for key in ("env_id", "count", "steps", "kind") if key not in levels]
    if unknown or missing:
        what = f"unknown key {unknown[0]!r}" if unknown else f"no {missing[0]!r}"
        raise ConfigError(f"env.levels has {what}; valid keys: {', '.join(LEVEL_KEYS)}")
    check_positive("env.levels.count", levels["count"])
    base_seed = levels.get("seed", 0)
    tasks = []
    for level in range(int(levels["count"])):
        shift = {"kind": levels["kind"], "seed": base_seed + level}
        if levels["kind"] == "offset":
            shift["sigma"] = levels.get("sigma", 1.0)
        tasks.append({"env_id": levels["env_id"], "steps": levels["steps"], "shift": shift})
    return tasks
