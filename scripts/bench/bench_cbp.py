"""Per-update cost of continual backprop (CBP) on the Nature CNN, as a ratio to a plain DQN update, same run.

A plain update is sample-free: one fixed replay batch of Atari-shaped observations, `agent.update` at batch 32.
With CBP, each update is followed by `CBP.after_update` (utilities from the update's own activations, ages, the
fractional replacement count, and a replacement with a fresh initialisation whenever the count reaches a unit).
Two CBP settings: the LoP defaults (rate 1e-4, maturity 10,000: no replacement within a short benchmark, so this is
the bookkeeping cost) and every unit mature with rate 1e-2 (replacements happen every few updates: the worst case).

    python scripts/bench/bench_cbp.py --updates 200 --threads 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.dqn import DQNAgent  # noqa: E402
from core.spaces import Spaces  # noqa: E402
from fire_rl.resets.cbp import CBP  # noqa: E402


def batch(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8),
        "next_obs": rng.integers(0, 256, (32, 4, 84, 84), dtype=np.uint8),
        "actions": rng.integers(0, 18, 32),
        "rewards": rng.standard_normal(32).astype(np.float32),
        "terminated": np.zeros(32, dtype=np.float32),
    }


def updates_per_second(cbp: CBP | None, updates: int) -> float:
    agent = DQNAgent(Spaces.discrete_actions((4, 84, 84), 18), learning_starts=0)
    data = batch()
    for step in range(5):  # untimed warm-up
        agent.update(data, step)
    start = time.perf_counter()
    for step in range(updates):
        agent.update(data, step)
        if cbp is not None:
            cbp.after_update(agent, step)
    return updates / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200, help="timed updates per setting")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), Nature CNN, batch 32, {args.updates} updates"
    )
    plain = updates_per_second(None, args.updates)
    defaults = updates_per_second(CBP(), args.updates)
    heavy_cbp = CBP(replacement_rate=1e-2, maturity=0)
    heavy = updates_per_second(heavy_cbp, args.updates)
    replaced = sum(slot["total"] for slot in heavy_cbp.state.values())
    print(f"plain update            {plain:7.2f} updates/s")
    print(f"+ CBP (LoP defaults)    {defaults:7.2f} updates/s, cost ratio {plain / defaults:.3f}x a plain update")
    print(
        f"+ CBP (rate 1e-2, all mature; {replaced} units replaced) {heavy:7.2f} updates/s, ratio {plain / heavy:.3f}x"
    )


if __name__ == "__main__":
    main()
