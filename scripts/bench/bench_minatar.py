"""Env steps/s of `agent=dqn_minatar` on MinAtar with 1 and 2 torch threads, against its learner-only bound.

End to end is the training loop's own work at one update per step: act, env step, store, sample, update. The
learner-only bound is the same sample + update on the same replay with no env and no acting, so its updates/s is
the most steps/s this agent could reach here. Both are measured in the same run, per thread count, and printed with
their ratio (how much of the bound the env and acting leave).

    python scripts/bench/bench_minatar.py --steps 3000 --game MinAtar/SpaceInvaders-v0
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench_loop import env_steps_per_second, fill_with_random_steps  # noqa: E402

from agents.dqn import DQNAgent  # noqa: E402
from envs.minatar import MinatarSuite  # noqa: E402
from fire_rl.build import agent_arguments  # noqa: E402

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
BATCH_SIZE = 32  # the preset's loop.batch_size


def preset() -> tuple[dict, dict]:
    """configs/agent/dqn_minatar.yaml's learner settings and the loop settings it comes with."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["agent=dqn_minatar", "env=minatar3"])
    return agent_arguments(cfg.agent), OmegaConf.to_container(cfg.loop)


def setup(game: str, warmup: int, seed: int = 0):
    """Envs, agent (acting after the warm-up) and a replay filled with `warmup` random steps."""
    suite = MinatarSuite({"kind": "minatar", "tasks": [{"env_id": game, "steps": warmup}]})
    task, spaces = suite.sequence.visits[0], suite.spaces()
    envs = suite.make_vector_env(task, 1)
    learner, _ = preset()
    agent = DQNAgent(spaces, seed=seed, **{**learner, "learning_starts": 0, "epsilon_decay_steps": 1})
    replay = suite.make_replay(spaces, 100_000, 1, seed)
    rng = np.random.default_rng(seed)
    obs = fill_with_random_steps(envs, replay, envs.reset(seed=seed)[0], warmup, lambda: rng.integers(6, size=1))
    return envs, agent, replay, obs


def learner_updates_per_second(agent, replay, steps: int) -> float:
    start = time.perf_counter()
    for step in range(steps):
        agent.update(replay.sample(BATCH_SIZE), step)
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3_000, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=5_000, help="random steps in the replay before timing")
    parser.add_argument("--game", default="MinAtar/SpaceInvaders-v0", help="MinAtar id (SpaceInvaders: slowest env)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {args.game}, batch 32, 1 update per step, {args.steps} timed steps each")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        envs, agent, replay, obs = setup(args.game, args.warmup)
        learner_updates_per_second(agent, replay, 200)  # untimed warm-up of the allocator and kernels
        bound = learner_updates_per_second(agent, replay, args.steps)
        end_to_end = env_steps_per_second(envs, agent, replay, obs, args.steps, BATCH_SIZE)
        print(
            f"{threads} thread(s): end to end {end_to_end:7.1f} env steps/s, learner-only bound {bound:7.1f} "
            f"updates/s, ratio {end_to_end / bound:.3f}"
        )


if __name__ == "__main__":
    main()
