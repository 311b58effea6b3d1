"""Exact, picklable snapshots of env state, so a resumed run continues every episode where it stopped.

A gymnasium env is a chain of wrappers around a simulator. The snapshot copies each wrapper's own state (frame
stacks, sticky-action memory, time-limit counters, RNGs) and the simulator's: the ALE system state with its RNG,
MuJoCo's integration state, or whatever an env of fire_rl's own returns from `snapshot_state()` (MinAtar).
Configuration and handles are rebuilt with the env, never copied.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

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
    "mujoco_renderer",
    "func",  # a transform wrapper's function (e.g. RescaleAction's), rebuilt from its settings
    "_action_set",  # the game's action list, rebuilt with the env
    "autoreset_mode",  # the vector env's configuration
    "game",  # MinAtar's game object: its state comes from the env's own snapshot_state()
}
_MJ_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def _layers(env: gym.Env) -> list[Any]:
    layers = [env]
    while hasattr(layers[-1], "env"):
        layers.append(layers[-1].env)
    return layers


def _own_state(obj: Any) -> dict[str, Any]:
    return {k: copy.deepcopy(v) for k, v in vars(obj).items() if k not in _NOT_STATE}


def _simulator_state(base: Any) -> dict[str, Any]:
    if callable(getattr(base, "snapshot_state", None)):  # an env of fire_rl's own that snapshots itself (MinAtar)
        return {"own": base.snapshot_state()}
    if hasattr(base, "ale"):
        return {"ale": base.ale.cloneState(include_rng=True)}
    if isinstance(getattr(base, "data", None), mujoco.MjData):
        buf = np.empty(mujoco.mj_stateSize(base.model, _MJ_STATE))
        mujoco.mj_getState(base.model, base.data, buf, _MJ_STATE)
        return {"mujoco": buf}
    return {}


def snapshot_env(env: gym.Env) -> list[dict[str, Any]]:
    """The state of every wrapper of `env` and of the simulator underneath."""
    layers = _layers(env)
    return [_own_state(w) for w in layers[:-1]] + [{**_own_state(layers[-1]), **_simulator_state(layers[-1])}]


def restore_env(env: gym.Env, snapshot: list[dict[str, Any]]) -> None:
    """Put a freshly made env (same task, same settings) into the snapshot's state."""
    layers = _layers(env)
    if len(layers) != len(snapshot):
        raise ValueError(f"the env has {len(layers)} layers but the snapshot {len(snapshot)}: different wrappers")
    for layer, state in zip(layers, snapshot, strict=True):
        state = dict(state)
        ale_state, mj_state, own = state.pop("ale", None), state.pop("mujoco", None), state.pop("own", None)
        vars(layer).update(copy.deepcopy(state))
        if own is not None:
            layer.restore_state(own)
        if ale_state is not None:
            layer.ale.restoreState(ale_state)
        if mj_state is not None:
            mujoco.mj_setState(layer.model, layer.data, mj_state, _MJ_STATE)
            mujoco.mj_forward(layer.model, layer.data)


class Resumable(gym.Wrapper):
    """The outermost wrapper of every sub-env of an AsyncVectorEnv (gymnasium's worker processes).

    Its worker keeps the next-step-autoreset flag to itself, so this wrapper mirrors it (`ended`: the last step ended
    an episode). A restored env whose episode had ended resets on its next step(), returning (reset obs, 0, False,
    False, info) exactly as the worker would have. `fire_rl_snapshot` / `fire_rl_restore` run inside the worker.
    """

    def __init__(self, env: gym.Env):
        super().__init__(env)
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
        return {"env": snapshot_env(self.env), "ended": self.ended}

    def fire_rl_restore(self) -> None:
        """Restore the state put into `fire_rl_state` (set per env with set_attr, then called on all)."""
        restore_env(self.env, self.fire_rl_state["env"])
        self.ended, self.pending_reset, self.fire_rl_state = False, self.fire_rl_state["ended"], None


def snapshot_vector_env(envs: gym.vector.VectorEnv) -> dict[str, Any]:
    """A SyncVectorEnv's own buffers and autoreset flags and every sub-env's snapshot; for an AsyncVectorEnv of
    `Resumable` envs, every sub-env's snapshot taken in its worker."""
    if isinstance(envs, gym.vector.AsyncVectorEnv):
        return {"async": list(envs.call("fire_rl_snapshot"))}
    if not isinstance(envs, gym.vector.SyncVectorEnv):
        raise NotImplementedError(
            f"{type(envs).__name__} cannot be snapshotted exactly (its state lives in C++ threads); "
            "use env.settings.backend=gymnasium or async for runs that must resume exactly"
        )
    return {"vector": _own_state(envs), "envs": [snapshot_env(env) for env in envs.envs]}


def restore_vector_env(envs: gym.vector.VectorEnv, snapshot: dict[str, Any]) -> None:
    """Inverse of snapshot_vector_env on a freshly made vector env of the same task."""
    if "async" in snapshot:
        envs.set_attr("fire_rl_state", snapshot["async"])
        envs.call("fire_rl_restore")
        return
    if len(envs.envs) != len(snapshot["envs"]):
        raise ValueError(f"{len(envs.envs)} envs now, {len(snapshot['envs'])} in the snapshot")
    vars(envs).update(copy.deepcopy(snapshot["vector"]))
    for env, state in zip(envs.envs, snapshot["envs"], strict=True):
        restore_env(env, state)
