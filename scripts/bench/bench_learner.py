"""Learner speed, same run, printed as ratios: updates/s of DQN (Nature CNN, batch 32) and SAC (MLP and SimBa
presets, batch 256) eager vs `agent.compile=compile` (and DQN with channels_last), on the CPU and on CUDA when
torch sees one; then end-to-end agent steps/s of `+experiment=paper_dqn` after its warm-up, eager vs compiled.
CUDA-graph capture is not shipped (agent.compile=cudagraph is refused), so it is not measured.

    python scripts/bench/bench_learner.py --updates 30 --e2e-steps 400
    python scripts/bench/bench_learner.py --skip-e2e            # learners only
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from agents.dqn import DQNAgent  # noqa: E402
from agents.sac import SACAgent  # noqa: E402
from core.spaces import Spaces  # noqa: E402

SAC_PRESETS = {
    "sac (MLP)": {},
    "sac_simba": dict(network="simba", actor_hidden=128, actor_blocks=1, critic_hidden=512, obs_norm=True),
}


def dqn_batch(device: str) -> dict:
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8),
        "next_obs": rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8),
        "actions": rng.integers(0, 18, 32),
        "rewards": rng.standard_normal(32).astype(np.float32),
        "terminated": np.zeros(32, dtype=np.float32),
    }
    return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}  # as a device replay hands them over


def sac_batch(device: str) -> dict:
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.standard_normal((256, 17)).astype(np.float32),
        "next_obs": rng.standard_normal((256, 17)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (256, 6)).astype(np.float32),
        "rewards": rng.standard_normal(256).astype(np.float32),
        "terminated": np.zeros(256, dtype=np.float32),
    }
    return {k: torch.as_tensor(v, device=device) for k, v in batch.items()}


def rate(agent, batch: dict, updates: int, device: str) -> float:
    """Updates/s after an untimed warm-up (which also triggers compilation)."""
    for step in range(3):
        agent.update(batch, step)
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for step in range(updates):
        agent.update(batch, step)
    if device == "cuda":
        torch.cuda.synchronize()  # the updates return device tensors: wait for the queued work
    return updates / (time.perf_counter() - start)


def channels_last(agent: DQNAgent) -> DQNAgent:
    agent.q = agent.q.to(memory_format=torch.channels_last)
    agent.target = agent.target.to(memory_format=torch.channels_last)
    return agent


def learners(device: str, updates: int) -> list[str]:
    lines = []
    spaces = Spaces.discrete_actions((4, 84, 84), 18)
    batch = dqn_batch(device)
    eager = rate(DQNAgent(spaces, device, learning_starts=0, compile="none"), batch, updates, device)
    compiled = rate(DQNAgent(spaces, device, learning_starts=0, compile="compile"), batch, updates, device)
    last = rate(channels_last(DQNAgent(spaces, device, learning_starts=0, compile="none")), batch, updates, device)
    lines.append(
        f"{device}: DQN Nature CNN: eager {eager:8.2f} updates/s, compiled {compiled:8.2f} ({compiled / eager:.2f}x), "
        f"channels_last eager {last:8.2f} ({last / eager:.2f}x)"
    )
    spaces, batch = Spaces.box_actions((17,), (6,)), sac_batch(device)
    for name, options in SAC_PRESETS.items():
        eager = rate(SACAgent(spaces, device, learning_starts=0, compile="none", **options), batch, updates, device)
        compiled = rate(
            SACAgent(spaces, device, learning_starts=0, compile="compile", **options), batch, updates, device
        )
        lines.append(
            f"{device}: SAC {name}: eager {eager:8.2f} updates/s, compiled {compiled:8.2f} ({compiled / eager:.2f}x)"
        )
    return lines


def paper_dqn_steps_per_second(compile_mode: str, steps: int, warmup: int, device: str) -> float:
    """Agent steps/s of the real `+experiment=paper_dqn` command between its first and last train rows after the
    warm-up (periodic evaluation and probes pushed past the budget, the closing evaluation cut to 400 steps)."""
    with tempfile.TemporaryDirectory() as run_dir:
        args = [
            "+experiment=paper_dqn",
            f"env.tasks.0.steps={warmup + steps}",
            f"agent.learning_starts={warmup}",
            "loop.buffer_size=100000",
            f"agent.compile={compile_mode}",
            f"device={device}",
            "eval_every=100000000",
            "eval_steps=400",  # the run's closing evaluation (the preset's is 125,000 agent steps, minutes each)
            "metrics_every=100000000",
            f"log_every={max(steps // 4, 4)}",
            "checkpoint_every=null",
            "logger.wandb_mode=disabled",
            "logger.progress_bar=false",
            f"hydra.run.dir={run_dir}",
        ]
        done = subprocess.run([sys.executable, "-m", "fire_rl.train", *args], cwd=REPO, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr[-2000:])
        rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["event"] == "train" and r["step"] > warmup]
    first, last = train[0], train[-1]
    return (last["step"] - first["step"]) / (last["time_s"] - first["time_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=30, help="timed updates per learner and mode")
    parser.add_argument("--e2e-steps", type=int, default=400, help="timed agent steps of paper_dqn after warm-up")
    parser.add_argument("--warmup", type=int, default=1_000, help="paper_dqn agent steps before learning")
    parser.add_argument("--skip-e2e", action="store_true", help="learner rates only")
    args = parser.parse_args()
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), devices: {', '.join(devices)}")
    for device in devices:
        for line in learners(device, args.updates):
            print(line, flush=True)
    if args.skip_e2e:
        return
    device = devices[-1]
    eager = paper_dqn_steps_per_second("none", args.e2e_steps, args.warmup, device)
    fast = paper_dqn_steps_per_second("compile", args.e2e_steps, args.warmup, device)
    print(f"{device}: paper_dqn end to end: eager {eager:.1f} agent steps/s, compiled {fast:.1f} ({fast / eager:.2f}x)")


if __name__ == "__main__":
    main()
