"""Learner speed, same run, printed as ratios to eager: updates/s of DQN (Nature CNN, batch 32) and SAC (MLP and
SimBa presets, batch 256) under `agent.compile` none (eager), compile and, on CUDA, graph (the whole update as a
replayed CUDA graph), DQN also eager with channels_last and, on CUDA, graphed with fused Adam; then end-to-end
agent steps/s of `+experiment=paper_dqn` and `+experiment=paper_sac` (Humanoid) after their warm-ups, per compile
mode. Every rate is measured `--repeats` times, modes interleaved, and printed as the median with the range
(min-max) over the repeats. `--cudnn-benchmark` turns cuDNN autotuning on for a whole second run to compare.

    python scripts/bench/bench_learner.py --updates 200 --repeats 3 --e2e-steps 2000
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
    """Updates/s after an untimed warm-up (which also compiles, or warms up and captures the graph)."""
    for step in range(5):
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


def fused_adam(agent: DQNAgent) -> DQNAgent:
    """The agent with its Adam replaced by the fused CUDA kernel (same settings), its capture dropped."""
    agent.optimizer = torch.optim.Adam(agent.q.parameters(), **{**agent.optimizer.defaults, "fused": True})
    agent.capture.invalidate("fused Adam")
    return agent


def modes(device: str) -> list[str]:
    """The compile modes that run on the device (graph needs CUDA)."""
    return ["none", "compile", "graph"] if device == "cuda" else ["none", "compile"]


def repeated(measure, variants: list[str], repeats: int) -> dict[str, list[float] | str]:
    """`measure(variant)` for every variant, the variants interleaved, `repeats` rounds; a variant that raises is
    reported by its error and dropped (one failing mode must not cost the others' numbers)."""
    rates: dict[str, list[float] | str] = {v: [] for v in variants}
    for _ in range(repeats):
        for variant in variants:
            if isinstance(rates[variant], str):
                continue
            try:
                rates[variant].append(measure(variant))
            except Exception as err:  # noqa: BLE001 - reported in the line, the other variants go on
                rates[variant] = f"failed: {type(err).__name__}: {str(err).splitlines()[-1][:200]}"
    return rates


def ratio_line(title: str, rates: dict[str, list[float] | str], unit: str) -> str:
    """`title: none median (min-max), compile median (min-max) (ratio of medians to the first), ... unit`."""
    measured = [values for values in rates.values() if not isinstance(values, str)]
    base = float(np.median(measured[0])) if measured and measured[0] else float("nan")
    parts = []
    for variant, values in rates.items():
        if isinstance(values, str):
            parts.append(f"{variant} {values}")
            continue
        median = float(np.median(values))
        ratio = "" if not parts else f" ({median / base:.2f}x)"
        parts.append(f"{variant} {median:.1f} ({min(values):.1f}-{max(values):.1f}){ratio}")
    repeats = max((len(v) for v in measured), default=0)
    return f"{title}: " + ", ".join(parts) + f" {unit}, median (min-max) of {repeats}"


def learners(device: str, updates: int, repeats: int) -> list[str]:
    """Each learner built once per mode (compiling or capturing once), then timed `repeats` times, interleaved."""
    spaces = Spaces.discrete_actions((4, 84, 84), 18)
    dqn_agents = {mode: DQNAgent(spaces, device, learning_starts=0, compile=mode) for mode in modes(device)}
    dqn_agents["channels_last"] = channels_last(DQNAgent(spaces, device, learning_starts=0, compile="none"))
    if device == "cuda":  # a small lever, kept only if it measures faster
        dqn_agents["graph+fused_adam"] = fused_adam(DQNAgent(spaces, device, learning_starts=0, compile="graph"))
    batch = dqn_batch(device)
    rates = repeated(lambda variant: rate(dqn_agents[variant], batch, updates, device), list(dqn_agents), repeats)
    lines = [ratio_line(f"{device}: DQN Nature CNN", rates, "updates/s")]
    spaces, batch = Spaces.box_actions((17,), (6,)), sac_batch(device)
    for name, options in SAC_PRESETS.items():
        agents = {mode: SACAgent(spaces, device, learning_starts=0, compile=mode, **options) for mode in modes(device)}
        rates = repeated(lambda mode, agents=agents: rate(agents[mode], batch, updates, device), list(agents), repeats)
        lines.append(ratio_line(f"{device}: SAC {name}", rates, "updates/s"))
    return lines


# The end-to-end commands: the experiment, how long it warms up without learning, and what makes the closing
# evaluation short (periodic evaluation and probes are pushed past the budget).
E2E = {
    "paper_dqn": ["+experiment=paper_dqn", "loop.buffer_size=100000", "eval_steps=400"],
    "paper_sac": ["+experiment=paper_sac", "loop.buffer_size=100000", "eval_episodes=1", "eval_max_episode_steps=200"],
}


def steps_per_second(experiment: str, compile_mode: str, steps: int, warmup: int, device: str) -> float:
    """Agent steps/s of the real command between its first and last train rows after the warm-up."""
    with tempfile.TemporaryDirectory() as run_dir:
        args = [
            *E2E[experiment],
            f"env.tasks.0.steps={warmup + steps}",
            f"agent.learning_starts={warmup}",
            f"agent.compile={compile_mode}",
            f"device={device}",
            "eval_every=100000000",
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
    parser.add_argument("--updates", type=int, default=30, help="timed updates per learner, mode and repeat")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of every measurement (modes interleaved)")
    parser.add_argument("--e2e-steps", type=int, default=400, help="timed agent steps end to end after warm-up")
    parser.add_argument("--warmup", type=int, default=1_000, help="end-to-end agent steps before learning")
    parser.add_argument("--e2e", nargs="*", default=list(E2E), choices=list(E2E), help="end-to-end commands to time")
    parser.add_argument("--e2e-modes", nargs="*", help="compile modes end to end (default: every mode that runs)")
    parser.add_argument("--e2e-repeats", type=int, help="rounds end to end (default: --repeats)")
    parser.add_argument("--skip-e2e", action="store_true", help="learner rates only")
    parser.add_argument("--cuda-only", action="store_true", help="skip the CPU learners (a GPU check's time is short)")
    parser.add_argument(
        "--cudnn-benchmark",
        action="store_true",
        help="torch.backends.cudnn.benchmark for the whole run (cuDNN caches its choice per shape in a process, so "
        "it is compared by running the script twice, not as a variant beside the others)",
    )
    args = parser.parse_args()
    torch.backends.cudnn.benchmark = args.cudnn_benchmark
    devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU thread(s), devices: {', '.join(devices)}")
    for device in devices[-1:] if args.cuda_only else devices:
        for line in learners(device, args.updates, args.repeats):
            print(line, flush=True)
    if args.skip_e2e:
        return
    device = devices[-1]
    for experiment in args.e2e:

        def e2e(mode: str, experiment=experiment) -> float:
            return steps_per_second(experiment, mode, args.e2e_steps, args.warmup, device)

        rates = repeated(e2e, args.e2e_modes or modes(device), args.e2e_repeats or args.repeats)
        print(ratio_line(f"{device}: {experiment} end to end", rates, "agent steps/s"), flush=True)


if __name__ == "__main__":
    main()
