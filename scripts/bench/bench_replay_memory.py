"""Memory of a full FrameReplay: storage bytes and process RSS before/after filling every slot through add().

Baseline (same run, computed not allocated): storing stacked obs and next_obs per transition as uint8.
Usage: python scripts/bench/bench_replay_memory.py [--capacity 1000000] [--num-envs 4]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # runnable from a checkout without installing
from core.replay import FrameReplay  # noqa: E402

GIB = 1024**3
TARGET_GIB = 7.0


def rss_gib() -> float:
    """Resident set size of this process (VmRSS from /proc/self/status) in GiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / GIB
    raise RuntimeError("VmRSS not found in /proc/self/status")


def fill(buf: FrameReplay, episode_steps: int, seed: int) -> int:
    """Write every slot via start() + add(); episodes end every episode_steps steps. Returns add() calls."""
    rng = np.random.default_rng(seed)
    E, S = buf.num_envs, buf.stack
    pool = rng.integers(0, 256, size=(64, E, S, *buf.frame_shape), dtype=np.uint8)  # distinct non-zero frames
    buf.start(pool[0])
    zeros, calls = np.zeros(E, dtype=bool), buf.T + S  # wrap a little so the wrapped path runs too
    for i in range(calls):
        done = np.full(E, (i + 1) % episode_steps == 0)
        buf.add(rng.integers(0, 18, size=E), np.ones(E, np.float32), done, zeros, pool[i % len(pool)])
    return calls


def main() -> None:
    """Allocate, fill and report memory."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--capacity", type=int, default=1_000_000, help="transitions in total over all envs")
    p.add_argument("--num-envs", type=int, default=4, help="vector envs (slots per env = capacity // num_envs)")
    p.add_argument("--episode-steps", type=int, default=1000, help="agent steps per synthetic episode")
    args = p.parse_args()

    rss0 = rss_gib()
    buf = FrameReplay(args.capacity, args.num_envs)
    rss_alloc = rss_gib()
    t0 = time.perf_counter()
    calls = fill(buf, args.episode_steps, seed=0)
    fill_s = time.perf_counter() - t0
    rss1 = rss_gib()
    t0 = time.perf_counter()
    for _ in range(100):
        batch = buf.sample(32)
    sample_ms = (time.perf_counter() - t0) * 10
    assert batch["obs"].shape == (32, buf.stack, *buf.frame_shape)

    frame_bytes = int(np.prod(buf.frame_shape))
    naive = buf.T * buf.num_envs * 2 * buf.stack * frame_bytes / GIB  # obs + next_obs stacks per transition
    print(f"capacity {args.capacity:,} transitions, {args.num_envs} envs x {buf.T:,} slots, valid {len(buf):,}")
    print(f"storage nbytes:          {buf.nbytes / GIB:.3f} GiB ({buf.nbytes:,} bytes)")
    print(f"naive obs+next_obs:      {naive:.3f} GiB (ratio naive/frame-once {naive * GIB / buf.nbytes:.1f}x)")
    print(f"RSS before allocation:   {rss0:.3f} GiB")
    print(f"RSS after np.zeros:      {rss_alloc:.3f} GiB (lazy pages)")
    print(f"RSS after filling:       {rss1:.3f} GiB (growth {rss1 - rss0:.3f} GiB)")
    print(f"fill: {calls:,} add() calls in {fill_s:.1f} s ({calls / fill_s:,.0f} calls/s)")
    print(f"sample(32): {sample_ms:.3f} ms per batch")
    verdict = "yes" if rss1 <= TARGET_GIB else "NO"
    print(f"within {TARGET_GIB:.0f} GiB target (RSS after filling): {verdict}")


if __name__ == "__main__":
    main()
