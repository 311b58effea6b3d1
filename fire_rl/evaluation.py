"""Evaluation protocols: what an `eval` row measures on every task of the sequence (raw returns, so forgetting shows),
or, with `eval_tasks: current`, on the task being trained only (a sequence of many levels, where plasticity, not
forgetting, is the question and evaluating every level would cost levels-fold).

- `episodes` (default): `eval_episodes` episodes per task in one env, seeds seed+100000+i, each cut after
  `eval_max_episode_steps` agent steps (the score so far counts); the row holds their mean and standard deviation
  (`return_std`, over episodes, ddof 0). Cheap enough for CPU runs.
- `vector_steps` (the FIRE authors' DQN evaluation, docs/paper-notes.md §3): a fresh vector env of `eval_num_envs`
  envs with the training wrappers (sticky actions on, the training episode cap), seeded 46782132 + i, run for
  `eval_steps` agent steps in total; the row holds the mean return of the episodes that ended within the budget
  (None when none did) and how many those were.
"""

from __future__ import annotations

import numpy as np
from omegaconf import DictConfig

from core.config import check_choice, check_positive
from envs.sequence import Task
from fire_rl.episodes import EpisodeTracker

PROTOCOLS = ("episodes", "vector_steps")
SCOPES = ("all", "current")  # eval_tasks: every task of the sequence (forgetting shows), or the one being trained
AUTHORS_EVAL_SEED = 46782132  # the FIRE authors' evaluation seed (env i gets this + i), whatever the run seed


def check_options(cfg: DictConfig) -> None:
    """The evaluation settings, before anything is built."""
    check_choice("eval_protocol", cfg.eval_protocol, PROTOCOLS)
    check_choice("eval_tasks", cfg.get("eval_tasks", "all"), SCOPES)
    for key in ("eval_every", "eval_episodes", "eval_max_episode_steps", "eval_steps", "eval_num_envs"):
        check_positive(key, cfg[key])


def evaluate_task(run, task: Task, step: int) -> dict[str, float | int | None]:
    """The `eval/<task>/...` values of one task under the configured protocol."""
    if run.cfg.eval_protocol == "vector_steps":
        returns = vector_step_returns(run, task, step)
        mean = float(np.mean(returns)) if returns else None
        return {f"eval/{task.name}/return": mean, f"eval/{task.name}/episodes": len(returns)}
    returns = episode_returns(run, task, step)
    # The spread over episodes: with it, a result can say whether evaluation noise or seeds dominate.
    return {f"eval/{task.name}/return": float(np.mean(returns)), f"eval/{task.name}/return_std": float(np.std(returns))}


def episode_returns(run, task: Task, step: int) -> list[float]:
    """`eval_episodes` near-greedy episodes in one env, each cut after `eval_max_episode_steps` agent steps."""
    cfg, returns = run.cfg, []
    env = run.suite.make_eval_env(task, cfg.eval_max_episode_steps)  # the task's own dynamics
    for episode in range(cfg.eval_episodes):
        obs, _ = env.reset(seed=cfg.seed + 100_000 + episode)
        done, total = False, 0.0
        while not done:
            action = run.agent.act(obs[None], step, explore=False)[0]
            obs, reward, terminated, truncated, info = env.step(action)
            total, done = total + float(reward), truncated or bool(run.suite.game_over(terminated, info))
            if terminated and not done:  # episodic life: a lost life, the game goes on
                obs, _ = env.reset()
        returns.append(total)
    env.close()
    return returns


def vector_step_returns(run, task: Task, step: int) -> list[float]:
    """Returns of the episodes that end within `eval_steps` agent steps of a fresh training-wrapped vector env."""
    cfg, returns = run.cfg, []
    envs = run.suite.make_vector_env(task, cfg.eval_num_envs)
    obs, _ = envs.reset(seed=AUTHORS_EVAL_SEED)
    tracker, taken = EpisodeTracker(cfg.eval_num_envs), 0
    while taken < cfg.eval_steps:
        obs, rewards, terminated, truncated, infos = envs.step(run.agent.act(obs, step, explore=False))
        done = terminated | truncated
        returns += [episodic for episodic, _ in tracker.step(rewards, done, run.suite.game_over(done, infos))]
        taken += cfg.eval_num_envs
    envs.close()
    return returns
