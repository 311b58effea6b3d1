"""A run's components from its configuration: validate everything, then construct the env suite, agent, replay
and reset strategy.

Nothing here trains or writes: bad input is refused with a ConfigError before any file exists. The family-specific
parts come from the env suite (envs/suite.py) that `env.kind` picks. fire_rl/run_state.py's `open_run` turns the
components into a run (started fresh, resumed or branched, its outputs open).
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf

from agents.protocol import Agent, Primable, Regularizable
from core.config import LOOP_KEYS, MOVED_KEYS, ConfigError, check_choice, check_positive, moved_key_error
from core.spaces import Spaces
from envs.sequence import TaskSequence
from envs.suite import SUITES, EnvSuite, build_suite, suite_class
from fire_rl import evaluation
from fire_rl.logging import WANDB_MODES, RunLogger
from fire_rl.resets.base import ResetStrategy, ScheduledReset
from fire_rl.resets.none import NoReset

RESOLVED_FILE = "resolved.json"


@dataclass
class Components:
    """What a run is made of, validated and constructed; nothing is written yet."""

    cfg: DictConfig
    run_dir: Path
    suite: EnvSuite
    spaces: Spaces
    agent: Agent
    reset: ResetStrategy
    replay: Any  # the suite's replay buffer (fire_rl/replay.py)
    resolved: dict[str, Any]  # what build settled that the config leaves open (device, the reset's per-agent form)
    probe_rng: np.random.Generator  # draws the plasticity probes' observations

    @property
    def sequence(self) -> TaskSequence:
        return self.suite.sequence


def build_components(cfg: DictConfig, run_dir: Path | None) -> Components:
    """Validate the whole configuration and construct every component; raises ConfigError on bad input."""
    validate_loop(cfg)
    if cfg.torch_threads is not None:
        check_positive("torch_threads", cfg.torch_threads)
        torch.set_num_threads(cfg.torch_threads)
    env_cfg = OmegaConf.to_container(cfg.env, resolve=True)
    check_pairing(cfg.agent.name, env_cfg.get("kind", "atari"))
    suite = build_suite(env_cfg)
    suite.check_run(needs_exact_snapshots=bool(cfg.get("checkpoint_every") or cfg.get("stop_at_step")))
    spaces = suite.spaces()
    device = resolve_device(cfg.device)
    agent = make_agent(cfg.agent, spaces, device, cfg.seed)
    if cfg.get("prime_updates", 0) and not isinstance(agent, Primable):
        raise ConfigError(f"prime_updates needs an agent that is Primable; {type(agent).__name__} is not")
    replay_device = resolve_replay_device(cfg.loop.replay_device, suite, spaces, cfg, device)
    replay = suite.make_replay(spaces, cfg.loop.buffer_size, cfg.loop.num_envs, cfg.seed, device=replay_device)
    reset = build_reset(cfg)
    resolved = {"device": device, "replay_device": replay_device or "host", "spaces": dataclasses.asdict(spaces)}
    resolved["reset"] = resolve_reset(cfg, reset, agent)
    resolved["regularizer"] = attach_regularizer(cfg, agent)
    probe_rng = np.random.default_rng(cfg.seed + 1)
    return Components(cfg, run_dir, suite, spaces, agent, reset, replay, resolved, probe_rng)


def open_outputs(parts: Components, wandb_id: str | None) -> RunLogger:
    """Write config.yaml, env.json and resolved.json into the run directory; the metrics logger, appending."""
    run_dir, cfg = parts.run_dir, parts.cfg
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "env.json").write_text(json.dumps(parts.suite.record(), indent=2))
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True))
    (run_dir / RESOLVED_FILE).write_text(json.dumps(parts.resolved, indent=2))
    container = OmegaConf.to_container(cfg, resolve=True)
    return RunLogger(run_dir, container, cfg.logger.wandb_mode, cfg.logger.wandb_project, wandb_id)


def check_run_options(cfg: DictConfig) -> None:
    """Checkpoint cadence and stop options: refused before anything is built."""
    for key in ("checkpoint_every", "stop_at_step"):
        if cfg[key] is not None:
            check_positive(key, cfg[key])
    check_positive("checkpoint_keep", cfg.checkpoint_keep)
    if cfg.resume and not Path(cfg.resume).is_dir():
        raise ConfigError(f"resume={cfg.resume!r} is not a run directory")
    if cfg.branch_from and not Path(cfg.branch_from).is_dir():
        raise ConfigError(f"branch_from={cfg.branch_from!r} does not exist (give a checkpoints/step_* directory)")


def validate_loop(cfg: DictConfig) -> None:
    """Budgets and cadences: positive where they must be, before anything is built."""
    for key in ("metrics_every", "log_every"):
        check_positive(key, cfg[key])
    evaluation.check_options(cfg)
    check_positive("metrics_probe_size", cfg.metrics_probe_size)
    check_loop_section(cfg)
    check_priming(cfg)
    check_choice("logger.wandb_mode", cfg.logger.wandb_mode, WANDB_MODES)


def check_priming(cfg: DictConfig) -> None:
    """`prime_updates` is a whole number of updates (0: none). They sample the replay as it is when learning starts
    with replacement, so a priming set smaller than one batch is allowed (the paper primes SAC on 100 transitions)."""
    updates = cfg.get("prime_updates", 0)
    check_positive("prime_updates", updates, allow_zero=True)
    if not isinstance(updates, int):
        raise ConfigError(f"prime_updates must be a whole number of updates, got {updates!r}")


def check_priming_point(cfg: DictConfig, step: int, primed: bool) -> None:
    """Priming happens once, when learning starts: a run resumed or branched past that point unprimed cannot have it."""
    updates, starts = cfg.get("prime_updates", 0), cfg.agent.learning_starts
    if updates and not primed and step > starts:
        raise ConfigError(
            f"prime_updates={updates} primes once, when learning starts (agent step {starts}), but this run starts "
            f"at step {step} from a checkpoint that was not primed: continue it with prime_updates=0, or prime a "
            "run from the start"
        )


def check_loop_section(cfg: DictConfig) -> None:
    """The loop's settings: every key there (none left in the agent config), each positive where it must be."""
    for key in cfg.agent:
        if f"agent.{key}" in MOVED_KEYS:
            raise moved_key_error(f"agent.{key}", cfg.agent[key])
    missing = [key for key in LOOP_KEYS if key not in cfg.get("loop", {})]
    if missing:
        raise ConfigError(
            f"loop.{missing[0]} is not set; the agent preset's `loop` section sets {', '.join(LOOP_KEYS)}"
        )
    for key in ("num_envs", "buffer_size", "batch_size"):
        check_positive(f"loop.{key}", cfg.loop[key])
    check_positive("loop.updates_per_env_step", cfg.loop.updates_per_env_step, allow_zero=True)


def check_pairing(agent_name: str, kind: str) -> None:
    """The env kind exists and the agent is the family that trains on it."""
    expected = suite_class(kind).agent_family
    if agent_name != expected:
        pairings = ", ".join(f"{k} -> {suite_class(k).agent_family}" for k in SUITES)
        raise ConfigError(
            f"agent {agent_name!r} does not train on env.kind {kind} task sequences; valid choices: {expected} "
            f"(pairings by env.kind: {pairings}; every configs/agent/ preset names its family in `name`)"
        )


def resolve_device(name: str) -> str:
    check_choice("device", name, ("auto", "cpu", "cuda"))
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda asked for, but torch sees no CUDA device; use device=auto or cpu")
    return name


REPLAY_DEVICES = ("auto", "host", "cpu", "cuda")
GPU_HEADROOM = 0.8  # auto puts the replay on the GPU only if it takes at most this share of the free memory


def resolve_replay_device(choice: str, suite: EnvSuite, spaces: Spaces, cfg: DictConfig, device: str) -> str | None:
    """None (numpy on the host) or the torch device the replay's frames live on. auto: the GPU when training runs
    there and the frames fit in its free memory; `cpu` runs the device code path on the CPU (tests)."""
    check_choice("loop.replay_device", choice, REPLAY_DEVICES)
    needed = suite.replay_bytes(spaces, cfg.loop.buffer_size)
    if choice == "auto":
        if needed is None or device != "cuda" or needed > GPU_HEADROOM * torch.cuda.mem_get_info()[0]:
            return None
        return "cuda"
    if choice == "host":
        return None
    if needed is None:
        raise ConfigError(
            f"loop.replay_device={choice} needs a frame replay (Atari); {suite.kind} keeps it on the host"
        )
    if choice == "cuda" and device != "cuda":
        raise ConfigError("loop.replay_device=cuda needs the agent on CUDA (device=cuda or auto on a GPU machine)")
    return choice


def agent_arguments(agent_cfg: DictConfig) -> dict[str, Any]:
    """The constructor arguments an agent config holds: every key but `_target_` (the class) and `name` (its
    family, which the pairing check reads)."""
    options = OmegaConf.to_container(agent_cfg, resolve=True)
    return {key: value for key, value in options.items() if key not in ("_target_", "name")}


def make_agent(agent_cfg: DictConfig, spaces: Spaces, device: str, seed: int) -> Agent:
    """The agent class named by `_target_` (its family in `name`), sized to the spaces; every other key of the agent
    config is one of its constructor's arguments, and a key that is not is refused naming the valid ones."""
    agent_class, options = get_class(agent_cfg._target_), agent_arguments(agent_cfg)
    accepted = [name for name in inspect.signature(agent_class).parameters if name not in ("spaces", "device", "seed")]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"agent.{unknown[0]} is not a setting of {agent_class.__name__}; valid keys: {', '.join(accepted)}"
        )
    return agent_class(spaces, device=device, seed=seed, **options)


def build_reset(cfg: DictConfig) -> ResetStrategy:
    """The configured reset strategy (none when `+reset=` was not given), with a preset's `reset_at_steps` added."""
    if "reset" not in cfg or cfg.reset is None:
        return NoReset()
    options = OmegaConf.to_container(cfg.reset, resolve=True)
    options.pop("name", None)
    try:
        strategy = instantiate(options)
    except Exception as err:  # Hydra wraps the strategy's own ValueError
        cause = err.__cause__ or err
        raise ConfigError(f"reset {cfg.reset.get('name')!r}: {cause}") from err
    # A preset cannot edit a group the user adds later with +reset=, so its extra steps join here (a strategy
    # without a schedule, such as none or CBP, has no intervention for them to trigger).
    if isinstance(strategy, ScheduledReset):
        strategy.schedule = strategy.schedule.with_steps(cfg.get("reset_at_steps") or [])
    return strategy


def attach_regularizer(cfg: DictConfig, agent: Agent) -> dict[str, Any] | None:
    """The opt-in `+regularizer=` penalty, added to the agent's losses; None without one."""
    if cfg.get("regularizer") is None:
        return None
    options = OmegaConf.to_container(cfg.regularizer, resolve=True)
    name = options.pop("name", None)
    try:
        regularizer = instantiate(options)
    except Exception as err:  # Hydra wraps the regulariser's own ValueError
        raise ConfigError(f"regularizer {name!r}: {err.__cause__ or err}") from err
    if not isinstance(agent, Regularizable):
        raise ConfigError(f"regularizer {name!r} needs an agent that is Regularizable; {type(agent).__name__} is not")
    agent.set_regularizer(regularizer)
    return {"name": regularizer.name, **options}


def resolve_reset(cfg: DictConfig, reset: ResetStrategy, agent: Agent) -> dict[str, Any]:
    """What the strategy settles for this agent (capabilities checked, per-agent defaults): for resolved.json."""
    try:
        return reset.resolve(agent)
    except ValueError as err:  # a missing capability, a layer pattern matching nothing, a DQN-only policy
        name = cfg.reset.get("name") if cfg.get("reset") else "none"
        raise ConfigError(f"reset {name!r}: {err}") from err
