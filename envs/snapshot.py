"""Exact, picklable snapshots of env state, so a resumed run continues every episode where it stopped.

A gymnasium env is a chain of wrappers around a simulator. The snapshot copies each wrapper's own state (frame
stacks, sticky-action memory, time-limit counters, RNGs) and the simulator's, which only the env's family knows how
to read: each env suite names its `SimulatorState` (the ALE's in envs/atari.py, MuJoCo's in envs/mujoco.py; the
base form here reads an env of fire_rl's own that snapshots itself, MinAtar). Configuration and handles are rebuilt
with the env, never copied.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import gymnasium as gym

# Attributes of gymnasium's wrappers and vector envs that are configuration or handles, not state.
_NOT_STATE = {
    "env",
    "envs",
    "env_fns",
    "ale",
    "model",
    "data",
    "spec",
    "_saved_kwargs",
    "_cached_spec",
    "_ezpickle_args",
    "_ezpickle_kwargs",
    "action_space",
    "observation_space",
    "single_action_space",
    "single_observation_space",
    "_action_space",
    "_observation_space",
    "metadata",
    "_metadata",
    "render_mode",
    "func",  # a transform wrapper's function (e.g. RescaleAction's), rebuilt from its settings
    "autoreset_mode",  # the vector env's configuration
}


class SimulatorState:
    """How a family's simulator state is read from the innermost env and written back, under `key` in its layer's
    snapshot; `handles` are the env attributes the simulator owns (copied by `read`, or rebuilt with the env).

    This base form is for an env of fire_rl's own that snapshots itself (`snapshot_state`/`restore_state`: MinAtar,
    whose game object is the state)."""

    key: ClassVar[str] = "own"
    handles: ClassVar[frozenset[str]] = frozenset({"game"})

    def read(self, base: Any) -> Any | None:
        return base.snapshot_state() if callable(getattr(base, "snapshot_state", None)) else None

    def write(self, base: Any, state: Any) -> None:
        base.restore_state(state)


def _layers(env: gym.Env) -> list[Any]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def _own_state(obj: Any, simulator: SimulatorState) -> dict[str, Any]:
    skip = _NOT_STATE | simulator.handles
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if k not in skip}


def snapshot_env(env: gym.Env, simulator: SimulatorState) -> list[dict[str, Any]]:
    """The state of every wrapper of `env` and of the simulator underneath."""
    layers = _layers(env)
    snapshot = [_own_state(layer, simulator) for layer in layers]
    inner = simulator.read(layers[-1])
    if inner is not None:
        snapshot[-1][simulator.key] = inner
    return snapshot


def restore_env(env: gym.Env, snapshot: list[dict[str, Any]], simulator: SimulatorState) -> None:
    """Put a freshly made env (same task, same settings) into the snapshot's state."""
    layers = _layers(env)
    if len(layers) != len(snapshot):
        raise ValueError(f"the env has {len(layers)} layers but the snapshot {len(snapshot)}: different wrappers")
    for layer, state in zip(layers, snapshot, strict=True):
        state = dict(state)
        inner = state.pop(simulator.key, None)
        vars(layer).update(copy.deepcopy(state))
        if inner is not None:
            simulator.write(layer, inner)


class Resumable(gym.Wrapper):
    """The outermost wrapper of every sub-env of an AsyncVectorEnv (gymnasium's worker processes).

    Its worker keeps the next-step-autoreset flag to itself, so this wrapper mirrors it (`ended`: the last step ended
    an episode). A restored env whose episode had ended resets on its next step(), returning (reset obs, 0, False,
    False, info) exactly as the worker would have. `fire_rl_snapshot` / `fire_rl_restore` run inside the worker.
    """

    def __init__(self, env: gym.Env, simulator: SimulatorState):
        super().__init__(env)
        self.simulator = simulator
        self.ended, self.pending_reset, self.fire_rl_state = False, False, None

    def reset(self, **kwargs):
        self.ended, self.pending_reset = False, False
        return self.env.reset(**kwargs)

    def step(self, action):
        if self.pending_reset:
            obs, info = self.reset()
            return obs, 0.0, False, False, info
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.ended = bool(terminated or truncated)
        return obs, reward, terminated, truncated, info

    def fire_rl_snapshot(self) -> dict[str, Any]:
        return {"env": snapshot_env(self.env, self.simulator), "ended": self.ended}

    def fire_rl_restore(self) -> None:
        """Restore the state put into `fire_rl_state` (set per env with set_attr, then called on all)."""
        restore_env(self.env, self.fire_rl_state["env"], self.simulator)
        self.ended, self.pending_reset, self.fire_rl_state = False, self.fire_rl_state["ended"], None


def snapshot_vector_env(envs: gym.vector.VectorEnv, simulator: SimulatorState) -> dict[str, Any]:
    """A SyncVectorEnv's own buffers and autoreset flags and every sub-env's snapshot; for an AsyncVectorEnv of
    `Resumable` envs, every sub-env's snapshot taken in its worker."""
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        return {"async": list(envs.call("fire_rl_snapshot"))}
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        raise NotImplementedError(
            f"{type(envs).__name__} cannot be snapshotted exactly (its state lives in C++ threads); "
            "use env.settings.backend=gymnasium or async for runs that must resume exactly"
        )
    return {"vector": _own_state(envs, simulator), "envs": [snapshot_env(env, simulator) for env in envs.envs]}


def restore_vector_env(envs: gym.vector.VectorEnv, snapshot: dict[str, Any], simulator: SimulatorState) -> None:
    """Inverse of snapshot_vector_env on a freshly made vector env of the same task."""
    if "async" in snapshot:
        envs.set_attr("fire_rl_state", snapshot["async"])
        envs.call("fire_rl_restore")
        return
    if len(envs.envs) != len(snapshot["envs"]):
        raise ValueError(f"{len(envs.envs)} envs now, {len(snapshot['envs'])} in the snapshot")
    vars(envs).update(copy.deepcopy(snapshot["vector"]))
    for env, state in zip(envs.envs, snapshot["envs"], strict=True):
        restore_env(env, state, simulator)
