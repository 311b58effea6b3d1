"""The env-suite interface: everything family-specific (Atari, MuJoCo, MinAtar, ...) behind one small base class.

A suite is built from the `env` config. It owns the task sequence (dynamics draws included) and the shared
settings, checks the tasks, makes training and evaluation envs, snapshots and restores them exactly, says which
episode ends end a game, writes env.json, says what a switch row records, how many env steps one agent decision
is, which replay buffer it needs and which agent family trains on it. The loop, build, evaluation and compare talk
only to this interface; `env.kind` picks the suite from `SUITES`.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from core.config import ConfigError, check_choice
from core.spaces import Spaces
from envs.sequence import Task, TaskSequence, build_sequence, sequence_record
from envs.snapshot import SimulatorState, restore_vector_env, snapshot_vector_env

# env.kind -> "module:class". Imported on demand, so compare does not load simulators it does not need and an
# optional family (MinAtar) costs nothing until it is used.
SUITES = {
    "atari": "envs.atari:AtariSuite",
    "mujoco": "envs.mujoco:MujocoSuite",
    "minatar": "envs.minatar:MinatarSuite",
}


class EnvSuite:
    """Base class of a family. Subclasses set the class attributes and implement the methods that raise here."""

    kind: ClassVar[str]
    agent_family: ClassVar[str]  # the agent config's `name` that trains on this family
    settings_type: ClassVar[type]  # a frozen dataclass; its __post_init__ refuses bad values with ConfigError
    config_keys: ClassVar[tuple[str, ...]] = ("kind", "tasks", "cycles", "settings")  # what `env` may hold
    task_type: ClassVar[type[Task]] = Task  # a subclass when the family's tasks carry more (MuJoCo's dynamics)
    make_env: ClassVar[Callable[[Task, Any], gym.Env]]  # (task, settings) -> one env as training sees it
    simulator: ClassVar[SimulatorState] = SimulatorState()  # how the simulator's state is snapshotted

    def __init__(self, env_cfg: Mapping[str, Any]):
        unknown = sorted(set(env_cfg) - set(self.config_keys))
        if unknown:
            raise ConfigError(
                f"env.{unknown[0]} is not a setting of env.kind {self.kind} sequences; valid keys: "
                f"{', '.join(self.config_keys)} (env.draws: MuJoCo sequences only)"
            )
        self.settings = parse_settings(self.settings_type, env_cfg.get("settings") or {}, self.kind)
        self.sequence = self.build_sequence(env_cfg)

    # --- the task sequence --------------------------------------------------------------------------------------
    def build_sequence(self, env_cfg: Mapping[str, Any]) -> TaskSequence:
        """The sequence exactly as training runs it; families with dynamics draws override this."""
        return build_sequence(list(env_cfg.get("tasks") or []), env_cfg.get("cycles", 1), self.task_type)

    def spaces(self) -> Spaces:
        """Check every task against the settings (ids, options, shared spaces); ConfigError names what is wrong."""
        raise NotImplementedError

    def check_run(self, needs_exact_snapshots: bool) -> None:
        """Refuse run options this family cannot honour (default: none)."""

    # --- envs ---------------------------------------------------------------------------------------------------
    def make_vector_env(self, task: Task, num_envs: int) -> gym.vector.VectorEnv:
        raise NotImplementedError

    def make_eval_env(self, task: Task, max_episode_steps: int) -> gym.Env:
        """One env as training sees it, with evaluation's own episode cap."""
        return self.make_env(task, with_episode_cap(self.settings, max_episode_steps))

    def game_over(self, done: np.ndarray, infos: Mapping[str, Any]) -> np.ndarray:
        """Which episode ends (`done`, per env or one env's) end the game: all of them, unless a family's envs
        end learning episodes inside a game (Atari's episodic life)."""
        return np.asarray(done, dtype=bool)

    def snapshot(self, envs: gym.vector.VectorEnv) -> dict[str, Any]:
        """The exact state of a training vector env mid-visit (envs/snapshot.py), for a checkpoint."""
        return snapshot_vector_env(envs, self.simulator)

    def restore(self, envs: gym.vector.VectorEnv, snapshot: dict[str, Any]) -> None:
        """Put a freshly made vector env of the same task into a snapshot's state."""
        restore_vector_env(envs, snapshot, self.simulator)

    @property
    def steps_per_act(self) -> int:
        """Env steps per agent decision (MuJoCo's action repeat; 1 where an agent step is the env step)."""
        return 1

    def switch_values(self, task: Task, envs: gym.vector.VectorEnv) -> dict[str, Any]:
        """Values a `switch` row records (prefixed `task/`): by default the task's make-kwargs."""
        return {f"task/{k}": v for k, v in task.kwargs.items()}

    # --- records and replay -------------------------------------------------------------------------------------
    def record(self) -> dict[str, Any]:
        """env.json: the family's record plus the kind and the exact sequence of visits (what compare reads)."""
        return {"kind": self.kind, **self.family_record(), "sequence": sequence_record(self.sequence)}

    def family_record(self) -> dict[str, Any]:
        """Every setting in force, per task, with library versions."""
        raise NotImplementedError

    def make_replay(self, spaces: Spaces, capacity: int, num_envs: int, seed: int, device: str | None = None):
        """The family's replay buffer; `device` (a torch device) only where the family's replay can live there."""
        raise NotImplementedError

    def replay_bytes(self, spaces: Spaces, capacity: int) -> int | None:
        """Bytes a device-resident replay would take, or None when the family's replay stays on the host."""
        return None


def suite_class(kind: str) -> type[EnvSuite]:
    """The suite registered for `env.kind`."""
    check_choice("env.kind", kind, SUITES)
    module, name = SUITES[kind].split(":")
    return getattr(importlib.import_module(module), name)


def build_suite(env_cfg: Mapping[str, Any]) -> EnvSuite:
    """The suite of an env config (kind defaults to atari), with its settings parsed and its sequence built."""
    return suite_class(env_cfg.get("kind", "atari"))(env_cfg)


def parse_settings(settings_type: type, raw: Mapping[str, Any], kind: str) -> Any:
    """The family's settings dataclass from `env.settings`; an unknown key is a ConfigError listing the valid ones."""
    try:
        return settings_type(**dict(raw))
    except TypeError as err:
        valid = ", ".join(f.name for f in dataclasses.fields(settings_type))
        raise ConfigError(f"env.settings: {err}; valid keys for {kind}: {valid}") from err


def with_episode_cap(settings: Any, max_episode_steps: int) -> Any:
    """The same settings with another episode cap (evaluation's)."""
    return dataclasses.replace(settings, max_episode_steps=max_episode_steps)
