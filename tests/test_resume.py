"""Runs that survive: kill-and-resume equivalence, preemption, branching, bad checkpoints, the submitit launcher."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, TINY, TINY_SWEEP, compose_cfg, run_train, train_command

from fire_rl.build import build_components
from fire_rl.checkpoint import CheckpointError, list_checkpoints, load_checkpoint
from fire_rl.run_state import branch

# Timing and throughput differ between any two runs; everything else must be identical.
VOLATILE = {"time_s", "charts/sps", "reset/wall_time_s"}
RUN = [*TINY, "checkpoint_every=50", "torch_threads=1"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def command(*args: str) -> list[str]:
    return train_command(*args)


def run_cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return run_train(*args, timeout=timeout, env=ENV)


def rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE} for line in lines]


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_run_resumes_to_identical_metrics(tmp_path):
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert run_cli("+reset=fire", *RUN, f"hydra.run.dir={reference}").returncode == 0
    proc = subprocess.Popen(
        command("+reset=fire", *RUN, f"hydra.run.dir={killed}"),
        cwd=REPO,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: len(list_checkpoints(killed)) >= 1, proc)
    time.sleep(random.uniform(0.0, 1.5))  # SIGKILL at an arbitrary moment after the first checkpoint
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL
    last = int(list_checkpoints(killed)[-1].name.split("_")[1])
    assert last < 600, "the run finished before it was killed: nothing was tested"
    resumed = run_cli("+reset=fire", *RUN, f"hydra.run.dir={killed}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {killed} at step {last}" in resumed.stderr
    assert rows(killed) == rows(reference)  # step for step: no duplicated, missing or different row


@pytest.mark.slow
def test_sigterm_writes_a_checkpoint_and_ends_by_the_signal(tmp_path):
    """A stopped run is not a finished one: after its checkpoint it ends as killed by SIGTERM (exit 128 + 15),
    so no launcher records it as a success."""
    args = ("+reset=full", *TINY, "env.tasks.0.steps=100000", "torch_threads=1", f"hydra.run.dir={tmp_path}")
    proc = subprocess.Popen(
        command(*args), cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    wait_for(
        lambda: (tmp_path / "metrics.jsonl").exists() and "episode" in (tmp_path / "metrics.jsonl").read_text(), proc
    )
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == -signal.SIGTERM and "(SIGTERM)" in out
    (checkpoint,) = list_checkpoints(tmp_path)
    state, _, _ = load_checkpoint(checkpoint)
    assert 0 < state["loop"]["step"] < 100_000 and state["loop"]["env_snapshot"] is not None  # mid-visit, envs included


# A MinAtar run whose evaluation at step 200 is long (400 greedy episodes) next to everything else; no update
# before it, so that step 200 comes within milliseconds of the `train` row at step 100.
LONG_EVAL = [
    "env=minatar_breakout",
    "agent=dqn_minatar",
    "env.tasks.0.steps=300",
    "agent.learning_starts=200",
    "loop.buffer_size=1000",
    "eval_every=200",
    "eval_episodes=400",
    "metrics_every=100",
    "metrics_probe_size=32",
    "log_every=100",
    "torch_threads=1",
]
STOP_BOUND_S = 10.0  # signal to exit, checkpoint included; measured 0.28 s here (docs/slurm.md)


def metrics_text(run_dir: Path) -> str:
    path = run_dir / "metrics.jsonl"
    return path.read_text() if path.exists() else ""


@pytest.mark.slow
def test_a_stop_during_an_evaluation_abandons_it_checkpoints_at_once_and_resumes_exactly(tmp_path):
    reference, stopped = tmp_path / "reference", tmp_path / "stopped"
    assert run_cli(*LONG_EVAL, f"hydra.run.dir={reference}").returncode == 0
    reference_rows = rows(reference)
    eval_row = next(i for i, r in enumerate(reference_rows) if r["event"] == "eval" and r["step"] == 200)
    times = [json.loads(line)["time_s"] for line in (reference / "metrics.jsonl").read_text().splitlines()]
    eval_s = times[eval_row] - times[eval_row - 1]
    proc = subprocess.Popen(
        command(*LONG_EVAL, f"hydra.run.dir={stopped}"),
        cwd=REPO,
        env=ENV,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: '"event": "train", "step": 100,' in metrics_text(stopped), proc)
    time.sleep(min(1.0, eval_s / 4))  # the loop is now in the evaluation at step 200 (steps 101-200 take ms)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    took = time.monotonic() - sent
    assert proc.returncode == -signal.SIGTERM and "(SIGTERM)" in out
    assert took < STOP_BOUND_S and took < eval_s, (
        f"stopped {took:.1f} s after the signal; the evaluation takes {eval_s:.1f} s"
    )
    (checkpoint,) = list_checkpoints(stopped)
    state, _, _ = load_checkpoint(checkpoint)
    assert (state["loop"]["step"], state["loop"]["unfinished_step"]) == (200, 199)  # the step's evaluation is owed
    resumed = run_cli(*LONG_EVAL, f"hydra.run.dir={stopped}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert rows(stopped) == reference_rows  # the abandoned evaluation redone exactly, nothing twice


@pytest.mark.slow
def test_branch_applies_the_reset_once_and_keeps_the_buffer(tmp_path):
    stage1 = tmp_path / "stage1"
    assert run_cli(*RUN, "stop_at_step=300", f"hydra.run.dir={stage1}").returncode == 0
    (checkpoint,) = [p for p in list_checkpoints(stage1) if p.name.endswith("300")]
    assert not any(row["event"] == "reset" for row in rows(stage1))

    _, saved_replay, _ = load_checkpoint(checkpoint)
    run = build_components(compose_cfg([*RUN, "+reset=fire"]), tmp_path / "inproc")
    loop = branch(run, str(checkpoint))
    assert loop.step == 300 and loop.branch_reset and loop.env_snapshot is not None
    n = len(saved_replay["frames"])
    assert np.array_equal(run.replay.frames[:n], saved_replay["frames"]) and len(run.replay) > 0

    branched = tmp_path / "fire"
    result = run_cli(
        *RUN, "+reset=fire", "reset.at_switch=false", f"branch_from={checkpoint}", f"hydra.run.dir={branched}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    resets = [row for row in rows(branched) if row["event"] == "reset"]
    assert [(r["step"], r["reason"]) for r in resets] == [(300, "branch")]
    assert rows(branched)[0]["step"] == 300  # the branch continues the same run position


def test_bad_checkpoints_are_refused_before_anything_is_written(tmp_path):
    result = run_cli(*TINY, f"branch_from={tmp_path / 'nowhere'}", f"hydra.run.dir={tmp_path / 'a'}", timeout=120)
    assert result.returncode != 0 and "branch_from=" in result.stderr and "does not exist" in result.stderr

    foreign = tmp_path / "checkpoints" / "step_000000000100"
    foreign.mkdir(parents=True)
    (foreign / "manifest.json").write_text("{not json")
    result = run_cli(*TINY, f"branch_from={foreign}", f"hydra.run.dir={tmp_path / 'b'}", timeout=120)
    assert result.returncode != 0 and "incomplete" in result.stderr
    assert not (tmp_path / "b" / "metrics.jsonl").exists()


@pytest.mark.slow
def test_resume_refuses_another_configuration_and_overwrites_nothing(tmp_path):
    assert run_cli(*RUN, "stop_at_step=100", f"hydra.run.dir={tmp_path}").returncode == 0
    before = (tmp_path / "metrics.jsonl").read_bytes(), (tmp_path / "config.yaml").read_bytes()
    result = run_cli(*RUN, "agent.lr=0.1", f"hydra.run.dir={tmp_path}", timeout=120)
    assert result.returncode != 0 and "from another configuration" in result.stderr and "agent" in result.stderr
    assert ((tmp_path / "metrics.jsonl").read_bytes(), (tmp_path / "config.yaml").read_bytes()) == before

    sac = build_components(compose_cfg(["+experiment=slippery_ant"]), tmp_path / "sac")
    with pytest.raises(CheckpointError, match="another configuration"):
        branch(sac, str(list_checkpoints(tmp_path)[-1]))


def test_a_run_written_before_the_loop_section_resumes(tmp_path):
    """Checkpoints written while num_envs, buffer_size, ... sat in the agent config resume under the same settings:
    the manifest's configuration is rewritten to that older layout, and the run still resumes and finishes."""
    assert run_cli(*RUN, "stop_at_step=100", f"hydra.run.dir={tmp_path}").returncode == 0
    manifest_path = list_checkpoints(tmp_path)[-1] / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    identity = manifest["fingerprint"]["identity"]
    identity["agent"] |= identity.pop("loop")  # the layout before 2026-12-02
    manifest_path.write_text(json.dumps(manifest))
    result = run_cli(*RUN, f"hydra.run.dir={tmp_path}", timeout=300)
    assert result.returncode == 0 and "resuming" in result.stderr, result.stderr[-2000:]
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])["event"] == "end"


@pytest.mark.slow
def test_two_job_sweep_through_the_submitit_local_launcher(tmp_path):
    result = run_cli(
        "-m", "hydra/launcher=submitit_local", "+reset=none,full", *TINY_SWEEP, f"hydra.sweep.dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    finished = [p.parent for p in tmp_path.glob("*/metrics.jsonl") if rows(p.parent)[-1]["event"] == "end"]
    assert len(finished) == 2


@pytest.mark.slow
def test_rerunning_a_sweep_finishes_what_is_unfinished_and_leaves_the_rest_alone(tmp_path):
    """The documented recipe: pin hydra.sweep.dir and run the same command again after a kill."""
    sweep = [
        "-m",
        "+reset=none,full",
        *TINY_SWEEP,
        "checkpoint_every=50",
        "torch_threads=1",
        f"hydra.sweep.dir={tmp_path}",
    ]
    proc = subprocess.Popen(command(*sweep), cwd=REPO, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = lambda: next(iter(tmp_path.glob("1_*")), None)  # noqa: E731  (jobs run one after another)
    wait_for(lambda: second() is not None and len(list_checkpoints(second())) >= 1, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (first,) = tmp_path.glob("0_*")
    done_before = (first / "metrics.jsonl").read_bytes()
    assert rows(first)[-1]["event"] == "end" and rows(second())[-1]["event"] != "end"
    again = run_cli(*sweep)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "finished earlier; left as it is" in again.stdout and "resuming" in again.stderr
    assert (first / "metrics.jsonl").read_bytes() == done_before
    assert rows(second())[-1]["event"] == "end"


def test_a_finished_run_asked_for_something_else_is_refused_naming_what_differs(tmp_path):
    """A finished run is left alone when the same command runs again, and refused in one line when the command now
    asks for another budget (the change would otherwise be ignored in silence)."""
    from omegaconf import OmegaConf

    from core.config import ConfigError
    from fire_rl.build import build_components
    from fire_rl.run_state import check_finished_run

    overrides = ["+reset=fire", *TINY]
    OmegaConf.save(compose_cfg(overrides), tmp_path / "config.yaml", resolve=True)
    check_finished_run(build_components(compose_cfg(overrides), tmp_path))  # the same command: nothing to say
    longer = build_components(compose_cfg([*overrides, "env.tasks.0.steps=400", "logger.progress_bar=true"]), tmp_path)
    with pytest.raises(ConfigError, match=r"finished under another configuration \(env\.tasks\.0\.steps: 200 -> 400\)"):
        check_finished_run(longer)
