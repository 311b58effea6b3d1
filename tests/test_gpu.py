"""The CUDA path (skipped when torch sees no GPU; scripts/gpu_check.sh runs them): a few hundred steps of DQN and SAC
on CUDA with every reset strategy, metrics and evaluation, a checkpoint/resume round trip with the CUDA RNG state,
the device replay against the host one, and eager vs compiled update numerics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import SAC_TINY, TINY, TINY_SWEEP, atari_spaces, box_spaces, run_train

from agents.dqn import DQNAgent
from agents.sac import SACAgent
from fire_rl.checkpoint import list_checkpoints, load_checkpoint

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA device")]

CUDA = ["device=cuda", "loop.replay_device=cuda"]
DQN_RESETS = "none,full,shrink_perturb,fire,dash,redo,plasticity_injection,cbp"


def rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def finished(sweep) -> list:
    return [p.parent for p in sweep.glob("*/metrics.jsonl") if rows(p.parent)[-1]["event"] == "end"]


def test_dqn_on_cuda_with_every_reset_strategy(tmp_path):
    result = run_train("-m", f"+reset={DQN_RESETS}", *TINY_SWEEP, *CUDA, f"hydra.sweep.dir={tmp_path}", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(finished(tmp_path)) == len(DQN_RESETS.split(","))
    for run_dir in finished(tmp_path):
        events = {r["event"] for r in rows(run_dir)}
        assert {"eval", "plasticity", "train"} <= events
        assert json.loads((run_dir / "resolved.json").read_text())["replay_device"] == "cuda"


def test_sac_on_cuda_with_its_reset_strategies(tmp_path):
    resets = "none,full,shrink_perturb,fire,dash,redo,cbp"
    result = run_train("-m", f"+reset={resets}", *SAC_TINY, "device=cuda", f"hydra.sweep.dir={tmp_path}", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(finished(tmp_path)) == len(resets.split(","))


def test_checkpoint_resume_round_trip_keeps_the_cuda_rng(tmp_path):
    first = run_train("+reset=fire", *TINY, *CUDA, "stop_at_step=300", f"hydra.run.dir={tmp_path}")
    assert first.returncode == 0, first.stderr[-2000:]
    state, _, _ = load_checkpoint(list_checkpoints(tmp_path)[-1])
    saved = state["rng"]["cuda"]
    assert saved is not None and len(saved) == torch.cuda.device_count()
    resumed = run_train("+reset=fire", *TINY, *CUDA, f"hydra.run.dir={tmp_path}")
    assert resumed.returncode == 0 and "resuming" in resumed.stderr, resumed.stderr[-2000:]
    assert rows(tmp_path)[-1]["event"] == "end"


def batch(n=32, seed=0, device="cuda") -> dict:
    rng = np.random.default_rng(seed)
    data = {
        "obs": rng.integers(0, 256, (n, 4, 84, 84), dtype=np.uint8),
        "next_obs": rng.integers(0, 256, (n, 4, 84, 84), dtype=np.uint8),
        "actions": rng.integers(0, 18, n),
        "rewards": rng.standard_normal(n).astype(np.float32),
        "terminated": (rng.random(n) < 0.1).astype(np.float32),
    }
    return {k: torch.as_tensor(v, device=device) for k, v in data.items()}


def test_compiled_dqn_update_equals_eager_on_cuda():
    eager = DQNAgent(atari_spaces(18), "cuda", seed=0, learning_starts=0, lr=1e-4, compile="none")
    fast = DQNAgent(atari_spaces(18), "cuda", seed=0, learning_starts=0, lr=1e-4, compile="compile")
    for step in range(10):
        for agent in (eager, fast):
            agent.update(batch(seed=step), step)
    for (name, a), b in zip(eager.q.state_dict().items(), fast.q.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4, msg=name)


def test_compiled_sac_update_equals_eager_on_cuda():
    rng = np.random.default_rng(0)
    data = {
        "obs": rng.standard_normal((64, 17)).astype(np.float32),
        "next_obs": rng.standard_normal((64, 17)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (64, 6)).astype(np.float32),
        "rewards": rng.standard_normal(64).astype(np.float32),
        "terminated": np.zeros(64, dtype=np.float32),
    }
    agents = [SACAgent(box_spaces(), "cuda", seed=0, learning_starts=0, compile=m) for m in ("none", "compile")]
    for step in range(10):
        for agent in agents:
            torch.manual_seed(step)  # the same reparameterisation noise for both
            agent.update(data, step)
    for a, b in zip(agents[0].critic.state_dict().values(), agents[1].critic.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)
