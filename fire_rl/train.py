"""Train an agent on a task sequence with a reset strategy: `python -m fire_rl.train +reset=fire`.

The loop, top to bottom: build and validate everything, then for each task visit make its envs, apply the reset
at the switch, and step/learn/evaluate/probe until the visit's budget is spent. The env config's `kind` picks the
family: atari (DQN, frame replay) or mujoco (SAC, flat replay); the loop itself is shared.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from agents.sac import LOSS_KEYS as SAC_LOSS_KEYS
from envs import atari, mujoco
from envs.atari import AtariSettings
from envs.mujoco import MujocoSettings
from envs.sequence import Task, TaskSequence, build_sequence
from fire_rl.config import ConfigError, check_choice, check_positive
from fire_rl.logging import WANDB_MODES, Progress, RunLogger
from fire_rl.metrics import plasticity_metrics
from fire_rl.plots import plot_returns
from fire_rl.replay import FrameReplay, TransitionReplay
from fire_rl.resets.none import NoReset


@dataclass(frozen=True)
class Family:
    """An env kind and the one agent family that trains on it."""

    agent: str  # the agent config's `name`
    envs: ModuleType  # make_env, make_vector_env, env_record, validate_tasks
    settings: type
    loss_keys: tuple[str, ...]  # what `agent.update()` returns, averaged into the `train` rows


FAMILIES = {
    "atari": Family("dqn", atari, AtariSettings, ("losses/td_loss",)),
    "mujoco": Family("sac", mujoco, MujocoSettings, SAC_LOSS_KEYS),
}
# The paper's SAC resets treat every dense layer alike; `paper_dqn` (Linear layers back to theta0) is DQN-only.
SAC_RESET_POLICIES = {"fire": "project_all", "shrink_perturb": "all"}


@dataclass
class Run:
    """Everything the loop needs, built and validated before the first step."""

    cfg: DictConfig
    run_dir: Path
    family: Family
    settings: AtariSettings | MujocoSettings
    sequence: TaskSequence
    agent: Any
    reset: Any
    logger: RunLogger
    replay: FrameReplay | TransitionReplay
    probe_rng: np.random.Generator = field(default_factory=np.random.default_rng)

    @property
    def steps_per_act(self) -> int:
        """Env steps per agent decision: the MuJoCo action repeat (an Atari agent step is already one env step)."""
        return getattr(self.settings, "action_repeat", 1)


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
    kind = check_family(cfg)
    family = FAMILIES[kind]
    try:
        settings = family.settings(**cfg.env.settings)
    except TypeError as err:  # an unknown key
        valid = ", ".join(f.name for f in dataclasses.fields(family.settings))
        raise ConfigError(f"env.settings: {err}; valid keys for {kind}: {valid}") from err
    draws = OmegaConf.to_container(cfg.env.draws) if cfg.env.get("draws") else None
    if draws and kind != "mujoco":
        raise ConfigError("env.draws (dynamics drawn per task) needs a MuJoCo task sequence (env.kind: mujoco)")
    sequence = build_sequence(mujoco.draw_tasks(OmegaConf.to_container(cfg.env.tasks), draws), cfg.env.cycles)
    agent, replay = build_learner(cfg, kind, sequence, settings)
    resolve_reset(cfg, agent)
    reset = build_reset(cfg)
    try:
        reset.select_layers(agent)  # a `layers` pattern that matches nothing is a typo: refuse it now
    except ValueError as err:
        raise ConfigError(f"reset {cfg.reset.name!r}: {err}") from err
    record = family.envs.env_record(sequence, settings)
    (run_dir / "env.json").write_text(json.dumps({**record, "draws": draws} if draws else record, indent=2))
    container = OmegaConf.to_container(cfg, resolve=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    logger = RunLogger(run_dir, container, cfg.logger.wandb_mode, cfg.logger.wandb_project)
    probe_rng = np.random.default_rng(cfg.seed + 1)
    return Run(cfg, run_dir, family, settings, sequence, agent, reset, logger, replay, probe_rng)


def check_family(cfg: DictConfig) -> str:
    """The env kind, and that the agent is the family that trains on it."""
    kind = cfg.env.get("kind", "atari")
    check_choice("env.kind", kind, FAMILIES)
    expected = FAMILIES[kind].agent
    if cfg.agent.name != expected:
        raise ConfigError(
            f"agent {cfg.agent.name!r} is not available for {kind.capitalize()} task sequences; valid choices: "
            f"{expected} (pairings: agent=dqn|dqn_paper with env=atari3; agent=sac|sac_simba with a MuJoCo env "
            "such as env=slippery_ant or +experiment=slippery_ant)"
        )
    return kind


def build_learner(cfg: DictConfig, kind: str, sequence: TaskSequence, settings) -> tuple[Any, Any]:
    """Check the tasks against the family, then the agent sized to their spaces and its replay buffer."""
    device, agent_cfg = resolve_device(cfg.device), cfg.agent
    if kind == "atari":
        with_dynamics = [task.name for task in sequence.distinct_tasks if task.dynamics]
        if with_dynamics:
            raise ConfigError(f"tasks {with_dynamics} set dynamics, which only MuJoCo task sequences have")
        num_actions = atari.validate_tasks(sequence, settings)
        agent = instantiate_agent(agent_cfg, num_actions=num_actions, device=device, seed=cfg.seed)
        replay = FrameReplay(agent_cfg.buffer_size, agent_cfg.num_envs, stack=settings.frame_stack, seed=cfg.seed)
        return agent, replay
    obs_shape, action_shape = mujoco.validate_tasks(sequence, settings)
    agent = instantiate_agent(agent_cfg, obs_dim=obs_shape[0], action_dim=action_shape[0], device=device, seed=cfg.seed)
    replay = TransitionReplay(agent_cfg.buffer_size, agent_cfg.num_envs, obs_shape, action_shape, seed=cfg.seed)
    return agent, replay


def instantiate_agent(agent_cfg: DictConfig, **kwargs: Any) -> Any:
    """Hydra instantiation with the agent's own ConfigError (Hydra wraps it) passed through as is."""
    try:
        return instantiate(agent_cfg, **kwargs)
    except Exception as err:
        if isinstance(err.__cause__, ConfigError):
            raise err.__cause__ from None
        raise


def resolve_reset(cfg: DictConfig, agent: Any) -> None:
    """Settle what the opt-in reset config cannot know; written into cfg so config.yaml shows what ran.

    An experiment preset's `reset_at_steps` join the reset's `at_steps` (a preset cannot edit a group the user adds
    later with `+reset=`). Under SAC, FIRE's DQN-only `paper_dqn` policy becomes the paper's SAC mode (every dense
    kernel projected: `project_all`), since SAC has no conv encoder to treat apart.
    """
    if "reset" not in cfg or cfg.reset is None:
        return
    with open_dict(cfg):
        extra = cfg.get("reset_at_steps") or []
        if extra and "at_steps" in cfg.reset:
            at_steps = cfg.reset.at_steps
            at_steps = [at_steps] if isinstance(at_steps, int) else list(at_steps)
            cfg.reset.at_steps = sorted({int(s) for s in [*at_steps, *extra]})
        if not agent.discrete and cfg.reset.get("policy") == "paper_dqn":
            name = cfg.reset.get("name")
            if name not in SAC_RESET_POLICIES:
                raise ConfigError(f"reset {name!r}: policy paper_dqn is DQN-only; choose another policy for SAC")
            cfg.reset.policy = SAC_RESET_POLICIES[name]
            print(f"fire_rl: SAC agent: reset.policy paper_dqn -> {cfg.reset.policy} (the paper's SAC mode)")


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
    """Greedy (Atari: near-greedy) episodes on EVERY task of the sequence, so forgetting shows; raw returns."""
    cfg, values = run.cfg, {}
    settings = dataclasses.replace(run.settings, max_episode_steps=cfg.eval_max_episode_steps)
    for task in run.sequence.distinct_tasks:
        env, returns = run.family.envs.make_env(task, settings), []  # the task's own dynamics
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


def switch_values(run: Run, task: Task, envs) -> dict[str, Any]:
    """What the switch row records: Atari mode/difficulty; MuJoCo make-kwargs and every dynamics value in force."""
    if run.family.envs is not mujoco:
        return dict(task.kwargs)
    in_force = mujoco.dynamics_in_force(envs.envs[0], task.dynamics)
    return {**{f"task/{k}": v for k, v in task.kwargs.items()}, **{f"task/{k}": v for k, v in in_force.items()}}


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
    num_envs, step, update_credit = cfg.agent.num_envs, 0, 0.0
    stride = num_envs * run.steps_per_act  # env steps per vector step (action repeat counts: budgets are env steps)
    losses: dict[str, list[float]] = defaultdict(list)
    progress = Progress(run.sequence.total_steps, cfg.logger.progress_bar)
    started = time.perf_counter()
    for visit, task in enumerate(run.sequence.visits):
        # --- task switch: new envs, then the reset (before any step on the new task) ---
        envs = run.family.envs.make_vector_env(task, run.settings, num_envs)
        obs, _ = envs.reset(seed=cfg.seed + 1_000 * visit)
        replay.start(obs)
        logger.log("switch", step, task=task.name, visit=visit, env_id=task.env_id, **switch_values(run, task, envs))
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
                length *= run.steps_per_act  # in env steps, like every count
                episode = {"charts/episodic_return": episodic_return, "charts/episodic_length": length}
                logger.log("episode", step, task=task.name, **episode)
                progress.episode(episodic_return)
            obs, prev_step, step = next_obs, step, step + stride
            progress.advance(stride, task.name)
            # --- learn: updates_per_env_step gradient steps per env step, on average ---
            if step > agent.learning_starts:
                update_credit += stride * cfg.agent.updates_per_env_step
                while update_credit >= 1.0:
                    for key, value in agent.update(replay.sample(cfg.agent.batch_size), step).items():
                        losses[key].append(value)
                    update_credit -= 1.0
            # --- scheduled resets, evaluation, probes, throughput ---
            if run.reset.due(prev_step, step, switched=False):
                apply_reset(run, step, task, "schedule")
            if crossed(prev_step, step, cfg.eval_every) or step >= run.sequence.total_steps:
                evaluate(run, step)
            if crossed(prev_step, step, cfg.metrics_every):
                probe_metrics(run, step, "periodic")
            if crossed(prev_step, step, cfg.log_every):
                log_train(run, step, task, losses, started)
                losses.clear()
        envs.close()
    progress.close()
    plot_returns(run.run_dir)


def log_train(run: Run, step: int, task: Task, losses: dict[str, list[float]], started: float) -> None:
    """One `train` row: mean losses since the last row (None before learning), exploration, throughput."""
    values = {key: float(np.mean(losses[key])) if losses.get(key) else None for key in run.family.loss_keys}
    if run.agent.discrete:
        values["charts/epsilon"] = run.agent.epsilon(step)
    values["charts/sps"] = step / (time.perf_counter() - started)
    values["charts/replay_size"] = len(run.replay)
    run.logger.log("train", step, task=task.name, **values)


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
