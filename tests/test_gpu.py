"""The CUDA path (skipped when torch sees no GPU; scripts/gpu_check.sh runs them): a few hundred steps of DQN and SAC
on CUDA with every reset strategy, metrics and evaluation, a checkpoint/resume round trip with the CUDA RNG state,
the device replay against the host one, and eager vs compiled update numerics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import (
    SAC_TINY,
    TINY,
    TINY_SWEEP,
    assert_compiled_loss_matches_eager,
    assert_sac_compiled_losses_match,
    atari_spaces,
    box_spaces,
    run_train,
)

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


@pytest.fixture
def full_fp32():
    """Full float32 on CUDA while eager and compiled are compared: cuDNN convolutions default to TF32, whose 10-bit
    mantissa would swamp the comparison."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def test_compiled_dqn_loss_equals_eager_on_cuda(full_fp32):
    """What agent.compile compiles, the TD loss forward and backward (Nature CNN, Atari frames), gives the eager
    loss and gradients on the same weights; the update trains with the compiled one."""
    agent = DQNAgent(atari_spaces(18), "cuda", seed=0, learning_starts=0, lr=1e-4, compile="auto")
    assert agent.compile == "compile"
    for seed in range(3):
        data = batch(seed=seed)
        params = list(agent.q.parameters())
        assert_compiled_loss_matches_eager(
            lambda b: [agent.losses(b)["q"]], lambda b: [agent._train_losses(b)["q"]], (data,), params
        )
        agent.update(data, seed)


def test_compiled_sac_losses_equal_eager_on_cuda(full_fp32):
    """SAC's compiled actor and critic losses against the eager ones, reparameterisation noise included (drawn
    from torch's generator in the compiled graph too, under fallback_random)."""
    rng = np.random.default_rng(0)
    data = {
        "obs": rng.standard_normal((64, 17)).astype(np.float32),
        "next_obs": rng.standard_normal((64, 17)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (64, 6)).astype(np.float32),
        "rewards": rng.standard_normal(64).astype(np.float32),
        "terminated": np.zeros(64, dtype=np.float32),
    }
    with torch._inductor.config.patch(fallback_random=True):
        agent = SACAgent(box_spaces(), "cuda", seed=0, learning_starts=0, compile="auto")
        assert agent.compile == "compile"
        for step in range(3):
            assert_sac_compiled_losses_match(agent, data)
            agent.update(data, step)
