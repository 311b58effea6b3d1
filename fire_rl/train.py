"""Train an agent on a task sequence with a reset strategy: `python -m fire_rl.train +reset=fire`.

The loop, top to bottom: build and validate everything (fire_rl/build.py), open the run fresh, resumed or
branched (fire_rl/run_state.py), then for each task visit make its envs, apply the reset at the switch, and act, store,
learn, evaluate, probe, reset and checkpoint until the visit's budget is spent. Everything family-specific comes
from the env suite that `env.kind` picks (envs/suite.py); the agent is used through agents/protocol.py.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from core.config import ConfigError, check_overrides
from core.steps import crossed
from envs.sequence import Task, task_label
from fire_rl import evaluation, run_state
from fire_rl.build import build_components, check_run_options
from fire_rl.checkpoint import CheckpointError
from fire_rl.episodes import EpisodeTracker
from fire_rl.logging import Progress
from fire_rl.metrics import plasticity_metrics
from fire_rl.plots import plot_returns
from fire_rl.run_state import AT_STOP_STEP, DONE, Checkpointer, Ending, LoopState, Run, StopRequested, Stops

NAMING_KEYS = ("experiment", "agent", "env", "reset", "seed")
# Preemption: write a checkpoint, then end by the signal (a stopped run is not a finished one, so no launcher may
# record it as a success). SIGUSR2 is submitit's time-out signal: after the checkpoint, submitit's own handler runs
# (it requeues the job), so the requeued job resumes from that checkpoint. docs/slurm.md: the whole path.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


def short_overrides(override_dirname: str) -> str:
    """Sweep sub-directory name from the overrides that identify a job (`+reset=fire,seed=0`), not budget keys."""
    kept = [item for item in override_dirname.split(",") if item.split("=")[0].lstrip("+~") in NAMING_KEYS]
    return ",".join(kept)[:100]


def game_of(key: str, *, _root_: DictConfig) -> str:
    """`${game:env.tasks.0.env_id}`: the short name of the game at `key` ('MinAtar/SpaceInvaders-v0' ->
    'SpaceInvaders'), for a protocol's run directories (fire_rl/protocol.py)."""
    return task_label(str(OmegaConf.select(_root_, key)), {})


OmegaConf.register_new_resolver("short_overrides", short_overrides, replace=True)
OmegaConf.register_new_resolver("game", game_of, replace=True)


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
    """Probe, reset, probe again, and log what the reset did (nothing at all for plain training)."""
    if not run.reset.intervenes:
        return
    probe = probe_metrics(run, step, "pre_reset")
    report = run.reset.apply(run.agent, step, sample_batch=lambda: run.replay.sample(run.cfg.loop.batch_size))
    run.logger.log("reset", step, task=task.name, reason=reason, layers=report.touched, **report.logs)
    probe_metrics(run, step, "post_reset", probe)


def evaluate(run: Run, step: int, training_task: Task) -> None:
    """Evaluate on every task of the sequence, so forgetting shows, or with `eval_tasks: current` on the task being
    trained only (fire_rl/evaluation.py: the protocols)."""
    values = {}
    current = run.cfg.get("eval_tasks", "all") == "current"
    for task in [training_task] if current else run.sequence.distinct_tasks:
        values.update(evaluation.evaluate_task(run, task, step))
    run.logger.log("eval", step, task=training_task.name, **values)


# --- the loop -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cadence:
    """The loop's settings as plain values, read once (a config lookup per step costs more than it looks)."""

    stride: int  # env steps per vector step (budgets count env steps)
    updates_per_env_step: float
    batch_size: int
    eval_every: int
    metrics_every: int
    log_every: int
    prime_updates: int

    @classmethod
    def of(cls, run: Run) -> Cadence:
        cfg = run.cfg
        return cls(
            cfg.loop.num_envs * run.suite.steps_per_act,
            float(cfg.loop.updates_per_env_step),
            cfg.loop.batch_size,
            cfg.eval_every,
            cfg.metrics_every,
            cfg.log_every,
            cfg.get("prime_updates", 0),
        )


def train(run: Run, loop: LoopState, stops: Stops) -> Ending:
    """Run the sequence from `loop` to its end, or until `stops` says stop; every stop leaves a checkpoint."""
    agent, replay, logger, every = run.agent, run.replay, run.logger, Cadence.of(run)
    if stops.already_stopped(loop):
        return AT_STOP_STEP
    saver = Checkpointer(run, stops)
    ends = np.cumsum([task.steps for task in run.sequence.visits])
    progress = Progress(run.sequence.total_steps, run.cfg.logger.progress_bar, initial=loop.step)
    started, start_step = time.perf_counter(), loop.step
    while loop.visit < len(run.sequence.visits):
        task = run.sequence.visits[loop.visit]
        envs = run.suite.make_vector_env(task, run.cfg.loop.num_envs)
        obs = start_visit(run, loop, task, envs)
        while loop.step < ends[loop.visit] or loop.unfinished_step is not None:
            if loop.unfinished_step is None:
                # --- act and store ---
                actions = agent.act(obs, loop.step)
                next_obs, rewards, terminated, truncated, infos = envs.step(actions)
                replay.add(actions, rewards, terminated, truncated, next_obs)
                done = terminated | truncated
                finished = loop.tracker.step(rewards, done, run.suite.game_over(done, infos))
                for episodic_return in log_episodes(run, loop.step, task, finished):
                    progress.episode(episodic_return)
                obs, prev_step, loop.step = next_obs, loop.step, loop.step + every.stride
                progress.advance(every.stride, task.name)
                # --- learn: updates_per_env_step gradient steps per env step, on average ---
                if loop.step > agent.learning_starts:
                    learn(run, loop, every)
            else:  # resumed in a step whose evaluation or probe a stop abandoned: its remaining work, exactly
                prev_step, loop.unfinished_step = loop.unfinished_step, None
            # --- evaluation, probes (a stop abandons them, see Checkpointer.interruptible), throughput; then a
            # scheduled reset (so both see the pre-reset network) ---
            try:
                evaluate_and_probe(run, loop, task, prev_step, every, saver, envs, obs)
            except StopRequested as stop:
                envs.close()
                progress.close()
                return stop.ending
            if crossed(prev_step, loop.step, every.log_every):
                log_train(run, loop.step, task, loop.losses, (loop.step - start_step) / (time.perf_counter() - started))
                loop.losses.clear()
            if run.reset.due(prev_step, loop.step, switched=False):
                apply_reset(run, loop.step, task, "schedule")
            # --- checkpoint and stop: always after everything this step logs ---
            ending = saver.after_step(loop, envs, obs, prev_step, visit_done=loop.step >= ends[loop.visit])
            if ending:
                envs.close()
                progress.close()
                return ending
        envs.close()
        loop.visit, loop.obs = loop.visit + 1, None
        saver.at_switch(loop)
    progress.close()
    logger.log("end", loop.step)
    plot_returns(run.run_dir)
    return DONE


def evaluate_and_probe(
    run: Run, loop: LoopState, task: Task, prev_step: int, every: Cadence, saver: Checkpointer, envs, obs
) -> None:
    """The evaluation and the periodic probe that the step (prev_step, loop.step] is due; a stop signal during
    them raises StopRequested once a checkpoint that redoes them is on disk."""
    evaluating = crossed(prev_step, loop.step, every.eval_every) or loop.step >= run.sequence.total_steps
    probing = crossed(prev_step, loop.step, every.metrics_every)
    if not (evaluating or probing):
        return
    with saver.interruptible(loop, envs, obs, prev_step):
        if evaluating:
            evaluate(run, loop.step, task)
        if probing:
            probe_metrics(run, loop.step, "periodic")


def log_episodes(run: Run, step: int, task: Task, episodes: list[tuple[float, int]]) -> list[float]:
    """An `episode` row for each finished game (raw score; length in env steps, like every count); their returns."""
    for episodic_return, length in episodes:
        values = {"charts/episodic_return": episodic_return, "charts/episodic_length": length * run.suite.steps_per_act}
        run.logger.log("episode", step, task=task.name, **values)
    return [episodic_return for episodic_return, _ in episodes]


def learn(run: Run, loop: LoopState, every: Cadence) -> None:
    """The updates this vector step has earned (fractional credit carries over: 0.25 per step is one every 4), each
    followed by the strategy's per-update work (CBP); losses stay device tensors until a `train` row is written."""
    if every.prime_updates and not loop.primed:
        prime(run, loop, every)
    loop.update_credit += every.stride * every.updates_per_env_step
    while loop.update_credit >= 1.0:
        for key, value in run.agent.update(run.replay.sample(every.batch_size), loop.step).items():
            loop.losses[key].append(value)
        run.reset.after_update(run.agent, loop.step)
        loop.update_credit -= 1.0


def prime(run: Run, loop: LoopState, every: Cadence) -> None:
    """Heavy priming (Nikishin et al. 2022, section 3), once, as learning starts: `prime_updates` gradient updates on
    the replay as it is now, by the agent's own update rules (agents/protocol.py, Primable); a `prime` row holds the
    mean losses of its last 100 updates. Reset strategies' per-update work (CBP) does not run during priming."""
    started, tail = time.perf_counter(), defaultdict(lambda: deque(maxlen=100))
    steps_per_update = 1.0 / every.updates_per_env_step if every.updates_per_env_step else 1.0
    for index in range(every.prime_updates):
        batch = run.replay.sample(every.batch_size)
        for key, value in run.agent.prime_update(batch, index, steps_per_update).items():
            tail[key].append(value)
    values = {key.replace("losses/", "prime/", 1): mean_of(list(v)) for key, v in tail.items()}
    seconds = time.perf_counter() - started
    values |= {"prime/updates": every.prime_updates, "prime/replay_size": len(run.replay), "prime/wall_time_s": seconds}
    run.logger.log("prime", loop.step, **values)
    loop.primed = True


def mean_of(values: list) -> float:
    """Mean of the losses since the last row: the one place they are read back from the device (values restored
    from a checkpoint sit on the CPU and join the device's)."""
    tensors = [torch.as_tensor(v) for v in values]
    device = tensors[-1].device
    return float(torch.stack([t.to(device) for t in tensors]).double().mean())


def start_visit(run: Run, loop: LoopState, task: Task, envs) -> np.ndarray:
    """New envs for a visit: restored mid-episode on resume, else reset, logged, and reset-strategy applied."""
    if loop.env_snapshot is not None:
        run_state.restore_envs(run, envs, loop)
        if loop.take_branch_reset():
            apply_reset(run, loop.step, task, "branch")
        return loop.obs
    obs, _ = envs.reset(seed=run.cfg.seed + 1_000 * loop.visit)
    run.replay.start(obs)
    loop.tracker = EpisodeTracker(run.cfg.loop.num_envs)
    switch = run.suite.switch_values(task, envs)
    run.logger.log("switch", loop.step, task=task.name, visit=loop.visit, env_id=task.env_id, **switch)
    branched = loop.take_branch_reset()
    if branched or (loop.visit > 0 and run.reset.due(loop.step, loop.step, switched=True)):
        apply_reset(run, loop.step, task, "branch" if branched else "switch")
        plot_returns(run.run_dir)
    return obs


def log_train(run: Run, step: int, task: Task, losses: dict[str, list[float]], sps: float) -> None:
    """One `train` row: mean losses since the last row (None before learning), exploration, steps per second."""
    values = {key: mean_of(losses[key]) if losses.get(key) else None for key in run.agent.loss_keys}
    values.update(run.agent.log_values(step))
    values.update(run.reset.log_values())
    values["charts/sps"] = sps
    values["charts/replay_size"] = len(run.replay)
    run.logger.log("train", step, task=task.name, **values)


@hydra.main(version_base="1.3", config_path="../configs", config_name="train")
def main(cfg: DictConfig) -> None:
    run_dir = Path(cfg.resume) if cfg.get("resume") else Path(HydraConfig.get().runtime.output_dir)
    try:
        check_run_options(cfg)
        parts = build_components(cfg, run_dir)
        if run_state.finished(run_dir):  # a re-run sweep finishes what is unfinished and leaves the rest alone
            run_state.check_finished_run(parts)
            print(f"run directory: {run_dir} (finished earlier; left as it is)", flush=True)
            return
        run, loop = run_state.open_run(parts)
    except (ConfigError, CheckpointError) as err:
        if os.environ.get("SUBMITIT_FOLDER"):  # a launcher's job: an exception is what submitit records as failed
            raise
        refuse(err)
    stops = Stops(cfg.stop_at_step)
    previous = {sig: signal.signal(sig, stops.request) for sig in STOP_SIGNALS}
    try:
        ending = train(run, loop, stops)
    finally:
        run.close()
    print(f"run directory: {run_dir} ({ending.reason})", flush=True)
    if ending.signal is not None:
        end_by_signal(ending.signal, previous.get(ending.signal))


def refuse(err: Exception) -> None:
    """Bad input or an unusable checkpoint: one line, a failing exit status, nothing trained."""
    sys.exit(f"fire_rl: error: {err}")


def end_by_signal(sig: signal.Signals, previous_handler) -> None:
    """After the stop's checkpoint: the handler that was there before ours (submitit's requeue, which exits
    itself), then the signal's default action, so the process ends as killed by it (exit status 128 + signal)."""
    if callable(previous_handler):
        previous_handler(sig, None)
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(sig, signal.SIG_DFL)
    os.kill(os.getpid(), sig)


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:])  # a moved key, refused in our words before Hydra's own error
    except ConfigError as err:
        refuse(err)
    main()
