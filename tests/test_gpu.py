"""The CUDA path (skipped when torch sees no GPU; scripts/gpu_check.sh runs them): a few hundred steps of DQN and SAC
on CUDA with every reset strategy, metrics and evaluation, a checkpoint/resume round trip with the CUDA RNG state,
the device replay against the host one, eager vs compiled update numerics, and the graphed update (agent.compile=graph)
against the eager one through every reset."""

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
    compose_cfg,
    run_train,
)

from agents.dqn import DQNAgent
from agents.sac import SACAgent
from core.spaces import Spaces
from fire_rl.build import build_reset
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
            lambda b: [agent.losses(b)["q"]], lambda b: [agent._train_losses(agent._tensors(b))[0]], (data,), params
        )
        agent.update(data, seed)


def sac_data(seed: int, n: int = 256) -> dict:
    """A HalfCheetah-shaped SAC batch (17-d observations, 6-d actions) on the GPU."""
    rng = np.random.default_rng(seed)
    data = {
        "obs": rng.standard_normal((n, 17)).astype(np.float32),
        "next_obs": rng.standard_normal((n, 17)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, 6)).astype(np.float32),
        "rewards": rng.standard_normal(n).astype(np.float32),
        "terminated": np.zeros(n, dtype=np.float32),
    }
    return {k: torch.as_tensor(v, device="cuda") for k, v in data.items()}


def test_compiled_sac_losses_equal_eager_on_cuda(full_fp32):
    """SAC's compiled actor and critic losses against the eager ones, reparameterisation noise included (drawn
    from torch's generator in the compiled graph too, under fallback_random)."""
    data = sac_data(0, n=64)
    with torch._inductor.config.patch(fallback_random=True):
        agent = SACAgent(box_spaces(), "cuda", seed=0, learning_starts=0, compile="auto")
        assert agent.compile == "compile"
        for step in range(3):
            assert_sac_compiled_losses_match(agent, data)
            agent.update(data, step)


# --- agent.compile=graph: the whole update as a replayed CUDA graph -------------------------------------------------

GRAPH_RESETS = ["none", "full", "shrink_perturb", "fire", "fire_all", "dash", "redo", "plasticity_injection"]


def minatar_batch(seed: int, n: int = 32) -> dict:
    rng = np.random.default_rng(seed)
    frames = lambda: torch.as_tensor((rng.random((n, 10, 10, 10)) < 0.2).astype(np.uint8), device="cuda")  # noqa: E731
    return {
        "obs": frames(),
        "next_obs": frames(),
        "actions": torch.as_tensor(rng.integers(0, 6, n), device="cuda"),
        "rewards": torch.as_tensor(rng.integers(0, 2, n).astype(np.float32), device="cuda"),
        "terminated": torch.as_tensor((rng.random(n) < 0.1).astype(np.float32), device="cuda"),
    }


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, msg: str) -> None:
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(y, x, rtol=1e-4, atol=1e-5, msg=lambda m, name=name: f"{msg}: {name}: {m}")


@pytest.mark.parametrize("reset", GRAPH_RESETS)
def test_graphed_dqn_equals_eager_through_a_reset(full_fp32, reset):
    """The same updates eager and graphed (3 warm-up updates, then capture and replays), a reset of each strategy
    in the middle, then replays again (recaptured where the reset replaced state): the same losses and weights."""
    options = dict(network="minatar", learning_starts=0, lr=1e-3, optimizer="adam", target_update_every=4)
    spaces = Spaces.discrete_actions((10, 10, 10), 6)
    eager = DQNAgent(spaces, "cuda", seed=0, compile="none", **options)
    graphed = DQNAgent(spaces, "cuda", seed=0, compile="graph", **options)
    strategies = [build_reset(compose_cfg([f"+reset={reset}"])) for _ in range(2)]
    for step in range(16):
        data = minatar_batch(step)
        if step == 8:
            for agent, strategy in zip((eager, graphed), strategies, strict=True):
                strategy.apply(agent, step, sample_batch=lambda: minatar_batch(100))
        a, b = eager.update(data, step), graphed.update(data, step)
        torch.testing.assert_close(b["losses/td_loss"], a["losses/td_loss"], rtol=1e-4, atol=1e-6, msg=str(step))
    assert graphed.capture.captured
    assert_same_weights(eager.q, graphed.q, reset)
    assert_same_weights(eager.target, graphed.target, reset)


def test_graphed_sac_draws_new_noise_every_replay(full_fp32):
    """With learning rates too small to move a weight, two replays on the same batch differ only by their
    reparameterisation noise: their actor losses and entropies must differ (a graph that replayed the noise of its
    capture would give equal ones)."""
    tiny = dict(actor_lr=1e-30, critic_lr=1e-30, temperature_lr=1e-30)
    agent = SACAgent(box_spaces(), "cuda", seed=0, learning_starts=0, compile="graph", **tiny)
    data = sac_data(0)
    values = [agent.update(data, step) for step in range(8)]
    assert agent.capture.captured
    replayed = values[4:]  # 3 warm-up updates, the capture, then replays
    for key in ("losses/actor", "losses/entropy"):
        assert len({float(v[key]) for v in replayed}) == len(replayed), key


@pytest.mark.parametrize("preset", ["mlp", "simba"])
def test_graphed_sac_equals_eager(full_fp32, preset):
    """SAC eager and graphed from one seed: a replay draws its noise from the generator's offsets as the eager ops
    would, so the losses and weights agree within float tolerance, through a reset and its fresh optimizer state."""
    from fire_rl.resets import FIRE

    options = dict(network=preset, learning_starts=0, obs_norm=preset == "simba")
    eager, graphed = (SACAgent(box_spaces(), "cuda", seed=0, compile=mode, **options) for mode in ("none", "graph"))
    for step in range(12):
        if step == 6:
            for agent in (eager, graphed):
                FIRE(policy="project_all").apply(agent, step)
        torch.manual_seed(step)  # the same generator state before each pair of updates
        a = eager.update(sac_data(step), step)
        torch.manual_seed(step)
        b = graphed.update(sac_data(step), step)
        for key, value in a.items():
            torch.testing.assert_close(b[key], value, rtol=1e-4, atol=1e-5, msg=f"{step} {key}")
    for name in ("actor", "critic", "target"):
        assert_same_weights(getattr(eager, name), getattr(graphed, name), name)


def test_graph_run_matches_eager_rows(tmp_path):
    """The training command with agent.compile=graph writes the metrics rows the eager one writes, within the
    golden tolerances, up to its first FIRE reset. Capturable Adam computes its bias correction in float32 on the
    device (about 1e-5 relative off the eager double), so a near-tied greedy action may flip later and the two
    trajectories part; the rows before the reset are what must agree."""
    from golden_rows import differences

    runs = {}
    for mode in ("none", "graph"):
        run_dir = tmp_path / mode
        result = run_train("+reset=fire", *TINY, *CUDA, f"agent.compile={mode}", f"hydra.run.dir={run_dir}")
        assert result.returncode == 0, result.stderr[-2000:]
        runs[mode] = rows(run_dir)
    first_reset = next(r["step"] for r in runs["none"] if r["event"] == "reset")
    before = {mode: [r for r in found if r.get("step", 0) < first_reset] for mode, found in runs.items()}
    assert differences(before["none"], before["graph"]) == []
    assert [r["event"] for r in runs["graph"]][-1] == "end"


@pytest.mark.parametrize("first, then", [("none", "graph"), ("graph", "none")])
def test_a_checkpoint_resumes_across_compile_modes(first, then):
    """An eager checkpoint loaded by a graphed agent (and back): the optimizer's capturable setting and step
    counts follow the loading agent's mode, and it trains on (a capture refuses a non-capturable optimizer)."""
    import io

    options = dict(network="minatar", learning_starts=0, lr=1e-3, target_update_every=4)
    spaces = Spaces.discrete_actions((10, 10, 10), 6)
    writer = DQNAgent(spaces, "cuda", seed=0, compile=first, **options)
    for step in range(6):
        writer.update(minatar_batch(step), step)
    buffer = io.BytesIO()
    torch.save(writer.state_dict(), buffer)
    buffer.seek(0)
    reader = DQNAgent(spaces, "cuda", seed=1, compile=then, **options)
    reader.load_state_dict(torch.load(buffer, map_location="cpu", weights_only=False))
    group = reader.optimizer.param_groups[0]
    assert group["capturable"] is (then == "graph")
    for step in range(6, 12):
        reader.update(minatar_batch(step), step)
    assert reader.capture.captured is (then == "graph")
