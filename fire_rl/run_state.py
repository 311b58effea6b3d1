"""A run ready for the loop, and the whole continual state of a run: how it is saved, resumed and branched.

`open_run` is where a run starts: fresh, from the run directory's last checkpoint, or from another run's
(`branch_from`); its outputs are opened there and nowhere else. A checkpoint holds the loop position (step, task
visit, update credit, episode trackers, current observations and the exact env state), the agent (networks,
targets, theta0, optimizers, its RNG), the replay buffer, every RNG the run draws from, and the logger's position
(metrics-file offset, elapsed time, wandb run id).
"""

from __future__ import annotations

import random
import signal
import sys
import warnings
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import OmegaConf

from core.config import LOOP_KEYS, ConfigError
from core.steps import crossed, reached
from fire_rl.build import Components, check_priming_point, open_outputs
from fire_rl.checkpoint import (
    CheckpointError,
    check_fingerprint,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    save_checkpoint,
)
from fire_rl.episodes import EpisodeTracker
from fire_rl.logging import METRICS_FILE, RunLogger, truncate_metrics

# Keys that may differ between a run and its resumption: where output goes and how it is shown.
_NOT_IDENTITY = (
    "logger",
    "resume",
    "branch_from",
    "stop_at_step",
    "checkpoint_every",
    "checkpoint_keep",
    "checkpoint_compress",
    "torch_threads",
    "device",
)


def pack_losses(losses: dict[str, list]) -> dict[str, torch.Tensor]:
    """The losses pending since the last `train` row, one 1-d tensor per key, for a checkpoint: thousands of 0-d
    tensors pickle at hundreds of bytes each (17.6 MB at 8 updates per agent step), their values at four."""
    return {key: torch.stack([torch.as_tensor(v) for v in values]).cpu() for key, values in losses.items() if values}


def unpack_losses(losses: dict[str, Any]) -> dict[str, list]:
    """Inverse of `pack_losses`: the same values as 0-d tensors (older checkpoints hold the lists themselves)."""
    return {key: list(values.unbind()) if torch.is_tensor(values) else list(values) for key, values in losses.items()}


@dataclass
class LoopState:
    """Where the loop is. `env_snapshot` is set only when a checkpoint was taken in the middle of a visit."""

    step: int = 0
    visit: int = 0
    update_credit: float = 0.0
    losses: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    tracker: EpisodeTracker | None = None
    obs: np.ndarray | None = None
    env_snapshot: dict[str, Any] | None = None
    branch_reset: bool = False  # apply the configured reset once, at the branch point
    # A stop abandoned the evaluation or probe of the step that ended at `step`; this is that step's start, and
    # resuming does that step's evaluation, probes and the rest of its work first.
    unfinished_step: int | None = None
    primed: bool = False  # the `prime_updates` priming is done (it happens once, when learning starts)

    def state_dict(self, env_snapshot: dict[str, Any] | None) -> dict[str, Any]:
        """Plain data for a checkpoint, with the snapshot of the live envs when it is taken mid-visit."""
        state = {**self.__dict__, "losses": pack_losses(self.losses), "env_snapshot": env_snapshot}
        state["tracker"] = self.tracker.state_dict() if self.tracker is not None else None
        return state

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> LoopState:
        state = dict(state)
        if "envs" in state:  # checkpoints written before the field was renamed (e.g. the midpoint sweep's)
            state["env_snapshot"] = state.pop("envs")
        loop = cls(**state)
        loop.losses = defaultdict(list, unpack_losses(loop.losses))
        loop.tracker = EpisodeTracker.from_state(loop.tracker) if loop.tracker is not None else None
        return loop

    def take_branch_reset(self) -> bool:
        """True once, at the first visit start of a branched run: that is when its reset is applied."""
        pending, self.branch_reset = self.branch_reset, False
        return pending


@dataclass
class Run(Components):
    """A run ready for the loop: its components, and its metrics logger open (appending after the start point)."""

    logger: RunLogger

    def close(self) -> None:
        self.logger.close()


def identity(run: Components) -> dict[str, Any]:
    """What must match to resume: the resolved config minus output and scheduling-of-stops keys."""
    config = OmegaConf.to_container(run.cfg, resolve=True)
    return {k: v for k, v in config.items() if k not in _NOT_IDENTITY}


def differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    """The dotted keys where two configs differ, as 'key: old -> new'."""
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        old, new = dict(enumerate(old)), dict(enumerate(new))  # a task list: say which entry changed
    if isinstance(old, dict) and isinstance(new, dict):
        keys = list(old) + [k for k in new if k not in old]
        return [d for k in keys for d in differences(old.get(k, "<absent>"), new.get(k, "<absent>"), f"{prefix}{k}.")]
    return [] if old == new else [f"{prefix.rstrip('.')}: {old!r} -> {new!r}"]


def check_finished_run(run: Components) -> None:
    """Refuse to leave a finished run alone when the command asks for something else (a longer budget, another
    method): the user's change would be ignored in silence. A finished run is not extended."""
    saved = OmegaConf.to_container(OmegaConf.load(run.run_dir / "config.yaml"), resolve=True)
    before = with_loop_section({k: v for k, v in saved.items() if k not in _NOT_IDENTITY})
    changed = differences(before, identity(run))
    if changed:
        shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
        raise ConfigError(
            f"{run.run_dir} finished under another configuration ({shown}); a finished run is not extended: run "
            "the new configuration in a new run directory (or branch_from one of this run's checkpoints)"
        )


def with_loop_section(found: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's identity in today's layout: one written while the loop's settings sat in the agent config has
    them moved to `loop`, so such a run resumes under the same settings."""
    if "loop" in found or "agent" not in found:
        return found
    agent = dict(found["agent"])
    loop = {key: agent.pop(key) for key in LOOP_KEYS if key in agent}
    return {**found, "agent": agent, "loop": loop}


def shapes(run: Components) -> dict[str, Any]:
    """What must match to branch: the agent family, every network parameter's shape, the replay's layout."""
    networks = run.agent.networks()
    nets = {name: {k: list(v.shape) for k, v in net.state_dict().items()} for name, (net, _) in networks.items()}
    replay = {"buffer_size": run.cfg.loop.buffer_size, "num_envs": run.cfg.loop.num_envs}
    return {"agent": run.cfg.agent.name, "networks": nets, "replay": replay}


@dataclass(frozen=True)
class Ending:
    """How a call of the loop ended: `done` (the sequence's end), `stop_at_step`, or a stop signal's name, with the
    signal (the process then ends by it)."""

    reason: str
    signal: signal.Signals | None = None


DONE, AT_STOP_STEP = Ending("done"), Ending("stop_at_step")


class StopRequested(BaseException):
    """A stop signal arrived during an evaluation or a probe; the checkpoint is written, the run stops. Not an
    Exception, so that no `except Exception` in library code on the way swallows it (as KeyboardInterrupt)."""

    def __init__(self, sig: signal.Signals):
        super().__init__(sig.name)
        self.ending = Ending(sig.name, sig)


class Stops:
    """When the loop stops: at a stop signal (the handler is `request`), or once `stop_at_step` is reached."""

    def __init__(self, stop_at: int | None):
        self.stop_at = stop_at
        self.signals: list[signal.Signals] = []
        self.interrupting = False  # inside an evaluation or a probe: a signal stops at once (Checkpointer)

    def request(self, signum: int, frame: Any = None) -> None:
        """Signal handler: stop at the end of the current step; inside an evaluation or a probe, at once."""
        self.signals.append(signal.Signals(signum))
        if self.interrupting:
            raise StopRequested(self.signals[0])

    def already_stopped(self, loop: LoopState) -> bool:
        """Re-running a finished stage 1 resumes at its stop and must stop again at once."""
        return self.stop_at is not None and loop.step >= self.stop_at

    def after(self, prev_step: int, step: int) -> Ending | None:
        """Why the loop stops after the step (prev_step, step], or None to go on."""
        if self.signals:
            return Ending(self.signals[0].name, self.signals[0])
        if self.stop_at is not None and reached(prev_step, step, self.stop_at):
            return AT_STOP_STEP
        return None


class Checkpointer:
    """When the loop saves: every task switch, every `checkpoint_every` steps, and whenever it stops."""

    def __init__(self, run: Run, stops: Stops):
        self.run, self.stops = run, stops
        self.every, self.compress = run.cfg.checkpoint_every, run.cfg.checkpoint_compress

    @contextmanager
    def interruptible(self, loop: LoopState, envs, obs, prev_step: int) -> Iterator[None]:
        """Evaluations and probes only read the networks and draw from their own RNGs, and can take long (the
        authors' evaluation is 125k agent steps), so a stop signal abandons them at once: the checkpoint then holds
        the run as it was when they began (RNG states and metrics offset included) and marks the step unfinished,
        and resuming redoes them exactly. Raises StopRequested once the checkpoint is on disk."""
        parts_before = run_parts(self.run)
        self.stops.interrupting = True
        try:
            if self.stops.signals:
                raise StopRequested(self.stops.signals[0])
            yield
        except StopRequested:
            self.stops.interrupting = False  # a second signal must not interrupt the save
            loop.obs, loop.unfinished_step = obs, prev_step
            save(self.run, loop, envs, self.compress, parts_before)
            raise
        finally:
            self.stops.interrupting = False

    def after_step(self, loop: LoopState, envs, obs, prev_step: int, visit_done: bool) -> Ending | None:
        """Save mid-visit when due or stopping (the switch checkpoint covers a visit's last step); returns why the
        loop stops after this step, else None."""
        ending = self.stops.after(prev_step, loop.step)
        if ending or (crossed(prev_step, loop.step, self.every) and not visit_done):
            loop.obs = obs
            save(self.run, loop, envs, self.compress)
        return ending

    def at_switch(self, loop: LoopState) -> None:
        """Every switch (and the end) is a checkpoint: the branch points of a sequence."""
        save(self.run, loop, None, self.compress)


def run_parts(run: Run) -> dict[str, Any]:
    """Everything a checkpoint holds besides the loop position and the replay: agent, reset strategy, RNGs, logger."""
    return {
        "agent": run.agent.state_dict(),
        "reset": run.reset.state_dict(),
        "rng": {
            "probe": run.probe_rng.bit_generator.state,
            "torch": torch.get_rng_state(),
            "numpy": np.random.get_state(),
            "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        },
        "logger": {**run.logger.position(), "wandb_id": run.logger.wandb_id},
    }


def save(run: Run, loop: LoopState, envs, compress: bool = False, parts: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint of the whole run at the loop's current position (with `parts` taken earlier, if given)."""
    state = {
        "loop": loop.state_dict(run.suite.snapshot(envs) if envs else None),
        **(parts if parts is not None else run_parts(run)),
    }
    fingerprint = {"identity": identity(run), "shapes": shapes(run)}
    return save_checkpoint(
        run.run_dir,
        loop.step,
        state,
        run.replay.state_dict(),
        fingerprint,
        keep=run.cfg.checkpoint_keep,
        compress=compress,
    )


def restore(run: Components, state: dict[str, Any], replay: dict[str, Any]) -> LoopState:
    """Put agent, replay and RNGs into the checkpoint's state; return the loop position."""
    run.agent.load_state_dict(state["agent"])
    run.reset.load_state_dict(state.get("reset", {}))
    run.replay.load_state_dict(replay)
    run.probe_rng.bit_generator.state = state["rng"]["probe"]
    torch.set_rng_state(state["rng"]["torch"])
    if state["rng"].get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    np.random.set_state(state["rng"]["numpy"])
    random.setstate(state["rng"]["python"])
    return LoopState.from_state(state["loop"])


def restore_envs(run: Run, envs, loop: LoopState) -> None:
    """Continue a mid-visit checkpoint's episodes exactly where they stopped."""
    run.suite.restore(envs, loop.env_snapshot)
    loop.env_snapshot = None


def resume(run: Components) -> tuple[LoopState, dict[str, Any]] | None:
    """The loop state of the run directory's newest usable checkpoint, after checking it belongs to this config."""
    if not list_checkpoints(run.run_dir):
        return None
    found = load_latest(run.run_dir)
    if found is None:
        raise CheckpointError(f"every checkpoint in {run.run_dir / 'checkpoints'} is incomplete or corrupt")
    path, state, replay, manifest = found
    # The configuration decides everything; network shapes may legitimately have grown (plasticity injection).
    found = {"identity": with_loop_section(manifest["fingerprint"]["identity"])}
    check_fingerprint(found, {"identity": identity(run)}, path)
    return restore(run, state, replay), state["logger"]


def branch(run: Components, path: str) -> LoopState:
    """Start from another run's checkpoint (replay included) and mark the configured reset for the branch point."""
    state, replay, manifest = load_checkpoint(Path(path))
    check_fingerprint(manifest["fingerprint"], {"shapes": shapes(run)}, Path(path))
    found = manifest["fingerprint"]["identity"]
    if found.get("env", {}).get("tasks") != identity(run).get("env", {}).get("tasks"):
        warnings.warn(f"branching from {path}: its task sequence differs from this run's", stacklevel=2)
    loop = restore(run, state, replay)
    loop.branch_reset = True
    return loop


def finished(run_dir: Path) -> bool:
    """True when the run directory holds a run that reached its end (its last metrics row is `end`)."""
    path = run_dir / METRICS_FILE
    if not path.exists() or path.stat().st_size == 0:
        return False
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        last = f.read().splitlines()[-1]
    return last.startswith(b'{"event": "end"')


FRESH_LOGGER = {"offset": 0, "elapsed_s": 0.0, "wandb_id": None}  # the logger position of a run not yet begun


def open_run(parts: Components) -> tuple[Run, LoopState]:
    """The run and where its loop starts: the run directory's last checkpoint, else a branch from another run's
    checkpoint (`branch_from`), else fresh. The metrics file is cut back to the start point (rows of an attempt
    that died after it), then the outputs are opened. Raises CheckpointError for a checkpoint that cannot be used,
    ConfigError for one past the priming point that was not primed (build.check_priming_point)."""
    resumed = resume(parts)
    if resumed is not None:
        loop, logger_state = resumed
        print(f"fire_rl: resuming {parts.run_dir} at step {loop.step}", file=sys.stderr)
    else:
        loop = branch(parts, parts.cfg.branch_from) if parts.cfg.branch_from else LoopState()
        logger_state = FRESH_LOGGER
    check_priming_point(parts.cfg, loop.step, loop.primed)
    truncate_metrics(parts.run_dir, int(logger_state["offset"]))
    logger = open_outputs(parts, logger_state.get("wandb_id"))
    logger.continue_from(logger_state["elapsed_s"])
    return Run(**vars(parts), logger=logger), loop
