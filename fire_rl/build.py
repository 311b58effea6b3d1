"""Build a run from its configuration: validate everything, then construct envs settings, agent, replay and reset.

Nothing here trains and nothing here writes: bad input is refused with a ConfigError before any file exists.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from agents.sac import LOSS_KEYS as SAC_LOSS_KEYS
from envs import atari, mujoco
from envs.atari import AtariSettings
from envs.mujoco import MujocoSettings
from envs.sequence import TaskSequence, build_sequence
from fire_rl.config import ConfigError, check_choice, check_positive
from fire_rl.logging import WANDB_MODES, RunLogger
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
    replay: FrameReplay | TransitionReplay
    probe_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    draws: dict | None = None  # the seeded dynamics draws (MuJoCo), recorded in env.json
    logger: RunLogger | None = None  # opened by open_outputs() once nothing can be refused any more

    @property
    def steps_per_act(self) -> int:
        """Env steps per agent decision: the MuJoCo action repeat (an Atari agent step is already one env step)."""
        return getattr(self.settings, "action_repeat", 1)


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
    if kind == "atari" and (cfg.get("checkpoint_every") or cfg.get("stop_at_step")):
        if any(atari.uses_ale_vector(task, settings) for task in sequence.distinct_tasks):
            raise ConfigError(
                "checkpoint_every / stop_at_step need exact env snapshots, which env.settings.backend=ale_vector "
                "cannot give (its state lives in C++ threads); use env.settings.backend=gymnasium"
            )
    agent, replay = build_learner(cfg, kind, sequence, settings)
    resolve_reset(cfg, agent)
    reset = build_reset(cfg)
    try:
        reset.select_layers(agent)  # a `layers` pattern that matches nothing is a typo: refuse it now
    except ValueError as err:
        raise ConfigError(f"reset {cfg.reset.name!r}: {err}") from err
    probe_rng = np.random.default_rng(cfg.seed + 1)
    return Run(cfg, run_dir, family, settings, sequence, agent, reset, replay, probe_rng, draws=draws)


def open_outputs(run: Run, wandb_id: str | None = None) -> None:
    """Write config.yaml and env.json into the run directory and open the metrics logger (appending)."""
    record = run.family.envs.env_record(run.sequence, run.settings)
    record = {**record, "draws": run.draws} if run.draws else record
    (run.run_dir / "env.json").write_text(json.dumps(record, indent=2))
    (run.run_dir / "config.yaml").write_text(OmegaConf.to_yaml(run.cfg, resolve=True))
    container = OmegaConf.to_container(run.cfg, resolve=True)
    run.logger = RunLogger(run.run_dir, container, run.cfg.logger.wandb_mode, run.cfg.logger.wandb_project, wandb_id)


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
