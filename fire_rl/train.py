"""Train an agent on a task sequence with a reset strategy: `python -m fire_rl.train +reset=fire`.

The loop, top to bottom: build and validate everything, then for each task visit make its envs, apply the reset
at the switch, and step/learn/evaluate/probe until the visit's budget is spent.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from envs.atari import AtariSettings, env_record, make_env, make_vector_env, validate_tasks
from envs.sequence import Task, TaskSequence, build_sequence
from fire_rl.config import ConfigError, check_choice, check_positive
from fire_rl.logging import WANDB_MODES, Progress, RunLogger
from fire_rl.metrics import plasticity_metrics
from fire_rl.plots import plot_returns
from fire_rl.replay import FrameReplay
from fire_rl.resets.none import NoReset


@dataclass
class Run:
    """Everything the loop needs, built and validated before the first step."""

    cfg: DictConfig
    run_dir: Path
    settings: AtariSettings
    sequence: TaskSequence
    agent: Any
    reset: Any
    logger: RunLogger
    replay: FrameReplay
    probe_rng: np.random.Generator = field(default_factory=np.random.default_rng)


NAMING_KEYS = ("experiment", "agent", "env", "reset", "seed")


def short_overrides(override_dirname: str) -> str:
    """Sweep sub-directory name from the overrides that identify a job (`+reset=fire,seed=0`), not budget keys."""
    kept = [item for item in override_dirname.split(",") if item.split("=")[0].lstrip("+~") in NAMING_KEYS]
    return ",".join(kept)[:100]


OmegaConf.register_new_resolver("short_overrides", short_overrides, replace=True)


def resolve_device(name: str) -> str:
    check_choice("device", name, ("auto", "cpu", "cuda"))
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda asked for, but torch sees no CUDA device; use device=auto or cpu")
    return name


def validate_loop(cfg: DictConfig) -> None:
    """Budgets and cadences: positive where they must be, before anything is built."""
    for key in ("eval_every", "metrics_every", "log_every", "eval_episodes", "eval_max_episode_steps"):
        check_positive(key, cfg[key])
    check_positive("metrics_probe_size", cfg.metrics_probe_size)
    for key in ("num_envs", "buffer_size", "batch_size"):
        check_positive(f"agent.{key}", cfg.agent[key])
    check_positive("agent.updates_per_env_step", cfg.agent.updates_per_env_step, allow_zero=True)
    check_positive("agent.learning_starts", cfg.agent.learning_starts, allow_zero=True)
    check_choice("logger.wandb_mode", cfg.logger.wandb_mode, WANDB_MODES)


def build_run(cfg: DictConfig, run_dir: Path) -> Run:
    """Validate the whole configuration and construct every component; raises ConfigError on bad input."""
    validate_loop(cfg)
    if cfg.torch_threads is not None:
        check_positive("torch_threads", cfg.torch_threads)
        torch.set_num_threads(cfg.torch_threads)
    if cfg.agent.name != "dqn":
        raise ConfigError(f"agent {cfg.agent.name!r} is not available for Atari task sequences; valid choices: dqn")
    settings = AtariSettings(**cfg.env.settings)
    sequence = build_sequence(OmegaConf.to_container(cfg.env.tasks), cfg.env.cycles)
    num_actions = validate_tasks(sequence, settings)
    agent = instantiate(cfg.agent, num_actions=num_actions, device=resolve_device(cfg.device), seed=cfg.seed)
    reset = build_reset(cfg)
    try:
        reset.select_layers(agent)  # a `layers` pattern that matches nothing is a typo: refuse it now
    except ValueError as err:
        raise ConfigError(f"reset {cfg.reset.name!r}: {err}") from err
    replay = FrameReplay(cfg.agent.buffer_size, cfg.agent.num_envs, stack=settings.frame_stack, seed=cfg.seed)
    (run_dir / "env.json").write_text(json.dumps(env_record(sequence, settings), indent=2))
    container = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    logger = RunLogger(run_dir, container, cfg.logger.wandb_mode, cfg.logger.wandb_project)
    return Run(cfg, run_dir, settings, sequence, agent, reset, logger, replay, np.random.default_rng(cfg.seed + 1))


def build_reset(cfg: DictConfig):
    """The configured reset strategy, or none when `+reset=` was not given."""
    if "reset" not in cfg or cfg.reset is None:
        return NoReset()
    options = OmegaConf.to_container(cfg.reset, resolve=True)
    options.pop("name", None)
    try:
        return instantiate(options)
    except Exception as err:  # Hydra wraps the strategy's own ValueError
        cause = err.__cause__ or err
        raise ConfigError(f"reset {cfg.reset.get('name')!r}: {cause}") from err


# --- the pieces the loop calls ----------------------------------------------------------------------------------


def probe_metrics(run: Run, step: int, phase: str, probe: np.ndarray | None = None) -> np.ndarray | None:
    """Plasticity metrics on a replay probe; returns the probe so pre/post-reset use the same observations."""
    if len(run.replay) == 0:
        return None
    if probe is None:
        probe = run.replay.sample_obs(min(run.cfg.metrics_probe_size, len(run.replay)), run.probe_rng)
    values = {}
    for net, (activations, weights) in run.agent.probe(probe).items():
        values.update(plasticity_metrics(net, activations, weights))
    run.logger.log("plasticity", step, phase=phase, **values)
    return probe


def apply_reset(run: Run, step: int, task: Task, reason: str) -> None:
    """Probe, reset, probe again, and log what the reset did."""
    probe = probe_metrics(run, step, "pre_reset")
    diagnostics = run.reset.apply(run.agent, step, sample_batch=lambda: run.replay.sample(run.cfg.agent.batch_size))
    run.logger.log("reset", step, task=task.name, reason=reason, layers=run.reset.last_touched, **diagnostics)
    probe_metrics(run, step, "post_reset", probe)


def evaluate(run: Run, step: int) -> None:
    """Near-greedy episodes on EVERY task of the sequence, so forgetting shows; raw game scores."""
    cfg, values = run.cfg, {}
    settings = AtariSettings(**{**cfg.env.settings, "max_episode_steps": cfg.eval_max_episode_steps})
    for task in run.sequence.distinct_tasks:
        env, returns = make_env(task, settings), []
        for episode in range(cfg.eval_episodes):
            obs, _ = env.reset(seed=cfg.seed + 100_000 + episode)
            done, total = False, 0.0
            while not done:
                action = run.agent.act(obs[None], step, explore=False)[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                total, done = total + float(reward), terminated or truncated
            returns.append(total)
        env.close()
        values[f"eval/{task.name}/return"] = float(np.mean(returns))
    run.logger.log("eval", step, **values)


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


# --- the loop -----------------------------------------------------------------------------------------------------


def train(run: Run) -> None:
    cfg, agent, replay, logger = run.cfg, run.agent, run.replay, run.logger
    num_envs, step, update_credit, losses = cfg.agent.num_envs, 0, 0.0, []
    progress = Progress(run.sequence.total_steps, cfg.logger.progress_bar)
    started = time.perf_counter()
    for visit, task in enumerate(run.sequence.visits):
        # --- task switch: new envs, then the reset (before any step on the new task) ---
        envs = make_vector_env(task, run.settings, num_envs)
        obs, _ = envs.reset(seed=cfg.seed + 1_000 * visit)
        replay.start(obs)
        logger.log("switch", step, task=task.name, visit=visit, env_id=task.env_id, **dict(task.kwargs))
        if visit > 0 and run.reset.due(step, step, switched=True):
            apply_reset(run, step, task, "switch")
            plot_returns(run.run_dir)
        tracker, visit_end = EpisodeTracker(num_envs), step + task.steps
        while step < visit_end:
            # --- act and store ---
            actions = agent.act(obs, step)
            next_obs, rewards, terminated, truncated, _ = envs.step(actions)
            replay.add(actions, rewards, terminated, truncated, next_obs)
            for episodic_return, length in tracker.step(rewards, terminated | truncated):
                logger.log(
                    "episode",
                    step,
                    task=task.name,
                    **{"charts/episodic_return": episodic_return, "charts/episodic_length": length},
                )
                progress.episode(episodic_return)
            obs, prev_step, step = next_obs, step, step + num_envs
            progress.advance(num_envs, task.name)
            # --- learn: updates_per_env_step gradient steps per agent step, on average ---
            if step > agent.learning_starts:
                update_credit += num_envs * cfg.agent.updates_per_env_step
                while update_credit >= 1.0:
                    losses.append(agent.update(replay.sample(cfg.agent.batch_size), step)["losses/td_loss"])
                    update_credit -= 1.0
            # --- scheduled resets, evaluation, probes, throughput ---
            if run.reset.due(prev_step, step, switched=False):
                apply_reset(run, step, task, "schedule")
            if crossed(prev_step, step, cfg.eval_every) or step >= run.sequence.total_steps:
                evaluate(run, step)
            if crossed(prev_step, step, cfg.metrics_every):
                probe_metrics(run, step, "periodic")
            if crossed(prev_step, step, cfg.log_every):
                logger.log(
                    "train",
                    step,
                    task=task.name,
                    **{
                        "losses/td_loss": float(np.mean(losses)) if losses else None,
                        "charts/epsilon": agent.epsilon(step),
                        "charts/sps": step / (time.perf_counter() - started),
                        "charts/replay_size": len(replay),
                    },
                )
                losses = []
        envs.close()
    progress.close()
    plot_returns(run.run_dir)


def crossed(prev_step: int, step: int, every: int) -> bool:
    """True when (prev_step, step] contains a multiple of `every`."""
    return step // every > prev_step // every


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        run = build_run(cfg, run_dir)
    except ConfigError as err:
        sys.exit(f"fire_rl: error: {err}")
    try:
        train(run)
    finally:
        run.logger.close()
    print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
