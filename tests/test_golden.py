"""Golden metrics rows: the default DQN job and a SAC run at tiny budgets must keep producing the same rows.

The golden files were recorded before the env-suite/agent-protocol restructuring, so a refactor that changes what
a run computes fails here. Rows are compared step for step, without timings; every recorded key must be present
with the same value (floats to a relative 1e-5, for BLAS differences between machines). Keys added since the
recording are allowed. Re-record deliberately, with a reason in the commit: `python tests/test_golden.py`.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

import pytest
from conftest import SAC_TINY, run_train

GOLDEN = Path(__file__).parent / "golden"
VOLATILE = {"time_s", "charts/sps", "reset/wall_time_s"}
QUIET = ["logger.wandb_mode=disabled", "logger.progress_bar=false", "torch_threads=1"]
RUNS = {
    "dqn_atari3_fire": [
        "+reset=fire",
        *(f"env.tasks.{i}.steps=200" for i in range(3)),
        "agent.learning_starts=100",
        "agent.buffer_size=2000",
        "eval_every=200",
        "eval_max_episode_steps=30",
        "metrics_every=100",
        "metrics_probe_size=32",
        "log_every=100",
        *QUIET,
    ],
    "sac_halfcheetah_gravity_fire": [
        "+reset=fire",
        *SAC_TINY,
        *QUIET,
    ],
}
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled"}


def stable_rows(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in VOLATILE} for line in lines]


def same(expected, found) -> bool:
    if isinstance(expected, float) and isinstance(found, int | float):
        return math.isclose(expected, found, rel_tol=1e-5, abs_tol=1e-8)
    return expected == found


def differences(golden: list[dict], rows: list[dict]) -> list[str]:
    """Where the rows differ from the golden ones (first 10): row count, missing keys, changed values."""
    if len(golden) != len(rows):
        events = [r["event"] for r in rows]
        return [f"{len(rows)} rows, golden has {len(golden)}: {events}"]
    found = []
    for i, (want, got) in enumerate(zip(golden, rows, strict=True)):
        for key, value in want.items():
            if key not in got or not same(value, got[key]):
                found.append(
                    f"row {i} ({want['event']} @ {want['step']}) {key}: golden {value!r}, now {got.get(key)!r}"
                )
    return found[:10]


def run(name: str, run_dir: Path) -> list[dict]:
    result = run_train(*RUNS[name], f"hydra.run.dir={run_dir}", env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    return stable_rows(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("name", RUNS)
def test_rows_equal_the_golden_rows(name, tmp_path):
    golden = [json.loads(line) for line in (GOLDEN / f"{name}.jsonl").read_text().splitlines()]
    assert differences(golden, run(name, tmp_path)) == []


if __name__ == "__main__":
    import tempfile

    for name in RUNS:
        with tempfile.TemporaryDirectory() as tmp:
            rows = run(name, Path(tmp))
        (GOLDEN / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        print(f"recorded {len(rows)} rows for {name}", file=sys.stderr)


@pytest.mark.slow
def test_the_device_replay_code_path_gives_the_same_rows(tmp_path):
    """agent.replay_device=cpu runs the device-resident replay (torch frames, stacks gathered there) on the CPU:
    the same samples, so the same rows as the numpy replay."""
    golden = [json.loads(line) for line in (GOLDEN / "dqn_atari3_fire.jsonl").read_text().splitlines()]
    result = run_train(*RUNS["dqn_atari3_fire"], "agent.replay_device=cpu", f"hydra.run.dir={tmp_path}", env=ENV)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((tmp_path / "resolved.json").read_text())["replay_device"] == "cpu"
    assert differences(golden, stable_rows(tmp_path)) == []
