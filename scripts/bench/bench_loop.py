"""The training loop's per-step work as the benchmark scripts time it (bench_minatar.py, bench_sac.py): fill a
replay with random steps, then act, env step, store, sample and update once per env step."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def fill_with_random_steps(envs, replay, obs, steps: int, random_actions: Callable[[], np.ndarray]) -> np.ndarray:
    """`steps` env steps of `random_actions()` stored in `replay` (started on `obs`); returns the last observation."""
    replay.start(obs)
    for _ in range(steps):
        actions = random_actions()
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        replay.add(actions, rewards, terminated, truncated, obs)
    return obs


def env_steps_per_second(envs, agent, replay, obs, steps: int, batch_size: int) -> float:
    """Env steps/s of `steps` steps of the agent acting, stored, and one update per env step."""
    start = time.perf_counter()
    for step in range(steps):
        actions = agent.act(obs, step)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        replay.add(actions, rewards, terminated, truncated, obs)
        agent.update(replay.sample(batch_size), step)  # updates_per_env_step = 1
    return steps / (time.perf_counter() - start)
