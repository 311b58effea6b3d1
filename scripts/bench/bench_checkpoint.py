"""Checkpoint size and write time for a full 1M-transition Atari run (the paper's DQN agent and replay).

The replay is filled with real ALE frames (a few thousand from Asterix, repeated), so compression sees realistic
data. Baselines measured in the same run: the raw bytes of the replay arrays, and the time `np.save` takes to
write the frames array alone (what the disk can do). Prints sizes, times and ratios.

    python scripts/bench/bench_checkpoint.py  # 1,000,000 transitions, 4 envs, uncompressed and compressed
    python scripts/bench/bench_checkpoint.py --capacity 100000 --no-compress
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agents.dqn import DQNAgent  # noqa: E402
from core.replay import FrameReplay  # noqa: E402
from core.spaces import Spaces  # noqa: E402
from envs.atari import AtariSettings, make_env  # noqa: E402
from envs.sequence import build_sequence  # noqa: E402
from fire_rl.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402


def real_frames(n: int) -> np.ndarray:
    """n consecutive 84x84 frames of Asterix under random play."""
    env = make_env(build_sequence([{"env_id": "ALE/Asterix-v5", "steps": 1}]).visits[0], AtariSettings())
    obs, _ = env.reset(seed=0)
    frames = []
    for _ in range(n):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        frames.append(obs[-1])
        if terminated or truncated:
            obs, _ = env.reset()
    return np.stack(frames)


def filled_replay(capacity: int, num_envs: int) -> FrameReplay:
    """A replay whose every slot holds a real frame and a valid transition (written directly, for speed)."""
    replay = FrameReplay(capacity, num_envs)
    source = real_frames(4096)
    for env in range(num_envs):  # each env its own phase of the clip, so no two envs hold the same frame at a time
        shifted = np.roll(source, env * 997, axis=0)
        for start in range(0, replay.T, len(source)):
            rows = min(len(source), replay.T - start)
            replay.frames[start : start + rows, env] = shifted[:rows]
    replay.actions[:] = np.random.default_rng(0).integers(18, size=replay.actions.shape)
    replay.valid[:] = True
    replay.pos, replay.full = replay.T - 1, True
    return replay


def timed_save(root: Path, agent: DQNAgent, replay: FrameReplay, compress: bool) -> tuple[Path, float]:
    start = time.perf_counter()
    path = save_checkpoint(root, 1_250_000, {"agent": agent.state_dict()}, replay.state_dict(), {}, compress=compress)
    return path, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--capacity", type=int, default=1_000_000)
    parser.add_argument("--num-envs", type=int, default=4)
    parser.add_argument("--no-compress", action="store_true", help="skip the compressed variant")
    parser.add_argument("--dir", default=None, help="where to write (default: a temporary directory)")
    args = parser.parse_args()

    replay, agent = filled_replay(args.capacity, args.num_envs), DQNAgent(Spaces.discrete_actions((4, 84, 84), 18))
    root = Path(args.dir or tempfile.mkdtemp(prefix="fire_rl_ckpt_"))
    gib = 2**30
    start = time.perf_counter()
    np.save(root / "frames_baseline.npy", replay.frames)
    raw_s = time.perf_counter() - start
    (root / "frames_baseline.npy").unlink()
    print(f"replay: {args.capacity:,} transitions, {args.num_envs} envs, arrays {replay.nbytes / gib:.3f} GiB")
    print(f"baseline np.save of the frames array: {raw_s:.1f} s ({replay.frames.nbytes / gib / raw_s:.2f} GiB/s)")
    for compress in (False,) if args.no_compress else (False, True):
        path, seconds = timed_save(root, agent, replay, compress)
        size = sum(p.stat().st_size for p in path.iterdir())
        start = time.perf_counter()
        load_checkpoint(path)
        load_s = time.perf_counter() - start
        label = "compressed  " if compress else "uncompressed"
        print(
            f"{label}: {size / gib:.3f} GiB ({size / replay.nbytes:.2f}x the arrays), write {seconds:.1f} s "
            f"({seconds / raw_s:.2f}x the np.save baseline), load {load_s:.1f} s"
        )
        shutil.rmtree(path)
    if args.dir is None:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
