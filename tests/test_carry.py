"""Carrying a sweep's run directories to another machine (fire_rl/carry.py): what is kept, and that the carried
runs resume and branch exactly as the originals would have; the protocol runner (fire_rl/protocol.py) end to end
on tiny budgets: the midpoint protocol carried to a new machine, and the priming protocol with its yardstick."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from golden_rows import read_rows
from test_resume import ENV, RUN, run_cli

from fire_rl.checkpoint import list_checkpoints
from fire_rl.run_state import finished

CARRY = [sys.executable, "-m", "fire_rl.carry"]


def carry(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([*CARRY, *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def checkpoint_steps(run_dir) -> list[int]:
    return [int(p.name.removeprefix("step_")) for p in list_checkpoints(run_dir)]


@pytest.mark.slow
def test_carried_runs_resume_and_branch_as_the_originals(tmp_path):
    out, carried = tmp_path / "machine" / "sweep", tmp_path / "repository" / "carry" / "sweep"
    stage1, cut, whole = out / "stage1", out / "fire_cut", out / "fire"
    assert run_cli(*RUN, "stop_at_step=300", f"hydra.run.dir={stage1}").returncode == 0
    branch = [*RUN, "+reset=fire", "reset.at_switch=false", f"branch_from={stage1}/checkpoints/step_000000000300"]
    assert run_cli(*branch, f"hydra.run.dir={whole}").returncode == 0
    assert run_cli(*branch, "stop_at_step=450", f"hydra.run.dir={cut}").returncode == 0  # a run cut off at 450
    assert finished(whole) and not finished(cut) and not finished(stage1)

    saved = carry("save", out, carried).stdout
    assert "3 run(s) copied" in saved
    assert checkpoint_steps(carried / "stage1") == [300]  # the branch point only
    assert checkpoint_steps(carried / "fire_cut") == [450]  # where it resumes
    assert checkpoint_steps(carried / "fire") == []  # finished: its metrics are all a report needs
    assert (carried / "fire" / ".hydra" / "overrides.yaml").exists()
    assert "0 run(s) copied" in carry("save", out, carried).stdout  # nothing moved on since

    reference = {name: read_rows(out / name / "metrics.jsonl") for name in ("stage1", "fire")}
    shutil.rmtree(tmp_path / "machine")  # the machine is gone; the repository came along
    assert "3 run(s) copied" in carry("restore", carried, out).stdout

    resumed = run_cli(*branch, f"hydra.run.dir={cut}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"resuming {cut} at step 450" in resumed.stderr
    assert read_rows(cut / "metrics.jsonl") == reference["fire"]
    again = run_cli(*branch, f"hydra.run.dir={out / 'fire_again'}")  # a new method from the carried branch point
    assert again.returncode == 0, again.stderr[-2000:]
    assert read_rows(out / "fire_again" / "metrics.jsonl") == reference["fire"]
    assert read_rows(stage1 / "metrics.jsonl") == reference["stage1"]


def test_restore_never_replaces_a_run_that_is_further_along(tmp_path):
    def make(root, name, rows, steps):
        run = root / name
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.yaml").write_text("seed: 0\n")
        (run / "metrics.jsonl").write_text("".join(f'{{"event": "{r}", "step": 1}}\n' for r in rows))
        for step in steps:
            (run / "checkpoints" / f"step_{step:012d}").mkdir()
        return run

    carried, out = tmp_path / "carried", tmp_path / "out"
    make(carried, "a", ["train"], [100])
    make(carried, "b", ["train"], [100])
    make(carried, "c", ["train", "end"], [])
    make(out, "a", ["train"], [200])  # further along here
    make(out, "b", ["train"], [50])  # behind the carried copy
    restored = carry("restore", carried, out).stdout
    assert "restore: b (checkpoint at step 100)" in restored and "restore: c (finished)" in restored
    assert "restore: a" not in restored and checkpoint_steps(out / "a") == [200]
    assert checkpoint_steps(out / "b") == [100]


# Settings that make a protocol's runs take seconds: one seed, 300 agent steps to the midpoint, 300 after it.
TINY_PROTOCOL = ["seeds=[0]", "midpoint=300", 'overrides=[env.tasks.0.steps=600,"reset_at_steps=[300]"]']
TINY_MIDPOINT = ["agent.learning_starts=100", "loop.buffer_size=1000", "eval_every=150", "eval_episodes=2",
                 "eval_max_episode_steps=50", "metrics_every=150", "metrics_probe_size=32", "log_every=150",
                 "checkpoint_every=150"]  # fmt: skip


def protocol_stage(name: str, out: Path, results: Path, methods: str, *overrides: str):
    """A function that runs one stage of `python -m fire_rl.protocol <stage> <name>` with the tiny settings (one
    seed, `methods`, its runs under `out`, report and carried runs under `results`) and returns what it printed,
    after asserting it succeeded."""
    carried = results.parent / "carry" / name  # as carry/<protocol> at the repository root
    settings = [*TINY_PROTOCOL, f"methods=[{methods}]", f"out={out}", f"report={results}", f"carry={carried}"]

    def stage(stage_name: str) -> str:
        command = [sys.executable, "-m", "fire_rl.protocol", stage_name, name, *settings, "--", *TINY_MIDPOINT,
                   *overrides]  # fmt: skip
        result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result.stdout + result.stderr

    return stage


@pytest.mark.slow
def test_the_midpoint_sweep_goes_on_from_its_carried_runs_on_a_new_machine(tmp_path):
    """`fire_rl.protocol sweep`, `carry`, the machine gone, `sweep` again: every run restored and none trained
    again, and the report written; each branch starts at the midpoint from its stage 1's checkpoint."""
    pytest.importorskip("minatar")
    out, results = tmp_path / "machine" / "out", tmp_path / "repository" / "results"
    stage = protocol_stage("minatar_midpoint", out, results, "none,fire")
    first = stage("sweep")
    assert first.count("(stop_at_step)") == 1 and first.count("(done)") == 2 and (results / "summary.csv").exists()
    runs = out / "SpaceInvaders" / "seed0"
    for method in ("none", "fire"):  # each branch starts at the midpoint; fire resets there, once
        rows = read_rows(runs / method / "metrics.jsonl")
        resets = [(r["step"], r["reason"]) for r in rows if r["event"] == "reset"]
        assert min(r["step"] for r in rows) >= 300 and resets == [(300, "branch")] * (method == "fire")
    stage("carry")
    before = {m: read_rows(runs / m / "metrics.jsonl") for m in ("none", "fire")}
    shutil.rmtree(tmp_path / "machine")
    again = stage("sweep")
    assert "carry restore: 3 run(s) copied" in again
    assert again.count("(done)") == 0 and again.count("finished earlier; left as it is") == 2
    for method, rows in before.items():
        assert read_rows(runs / method / "metrics.jsonl") == rows


@pytest.mark.slow
def test_the_priming_sweep_primes_stage_1_only_and_reports_the_gap_to_the_unprimed_runs(tmp_path):
    """`fire_rl.protocol sweep minatar_priming`: a primed stage 1 (one `prime` row), `none` branched from its midpoint
    that does not prime again (its metrics start at the branch point), an unprimed run of the same seed that never
    primes, and the report's gap of `none` to it."""
    pytest.importorskip("minatar")
    out, results = tmp_path / "out", tmp_path / "results"
    stage = protocol_stage("minatar_priming", out, results, "none", "prime_updates=20")
    printed = stage("sweep")
    assert printed.count("(stop_at_step)") == 1 and printed.count("(done)") == 2  # stage 1; the branch, the yardstick
    runs = {name: read_rows(out / "SpaceInvaders" / "seed0" / name / "metrics.jsonl")
            for name in ("stage1", "none", "unprimed")}  # fmt: skip
    primes = {name: [row for row in rows if row["event"] == "prime"] for name, rows in runs.items()}
    assert [row["prime/updates"] for row in primes["stage1"]] == [20]
    assert primes["none"] == primes["unprimed"] == []  # the branch is primed (stage 1 was); it does not prime again
    with open(results / "gap.csv") as table:
        gaps = {row["group"]: row for row in csv.DictReader(table)}
    final = {name: [row for row in runs[name] if row["event"] == "eval"][-1]["eval/SpaceInvaders/return"]
             for name in ("none", "unprimed")}  # fmt: skip
    assert set(gaps) == {"none"} and gaps["none"]["yardstick_runs"] == "1"
    assert float(gaps["none"]["final_gap"]) == pytest.approx(final["none"] - final["unprimed"])
