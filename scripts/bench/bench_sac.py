"""Env steps/s of SAC on HalfCheetah-v5 with each network preset (CleanRL MLP vs the paper's SimBa), same run.

One update per env step at batch 256, as in training: act, env step, store, update. Each preset first fills the
replay with random steps and runs a few untimed updates, then the timed budget. Prints steps/s and the ratio.

    OMP_NUM_THREADS=1 python scripts/bench/bench_sac.py --steps 200 --threads 1
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from bench_loop import env_steps_per_second, fill_with_random_steps
from hydra import compose, initialize_config_dir

from agents.sac import SACAgent
from core.replay import TransitionReplay
from core.spaces import Spaces
from envs.mujoco import MujocoSettings, MujocoTask, make_vector_env
from envs.sequence import build_sequence
from fire_rl.build import agent_arguments

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "configs")
BATCH_SIZE = 256  # the SAC presets' loop.batch_size


def preset(name: str) -> dict:
    """The agent config file's learner settings (configs/agent/<name>.yaml)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"agent={name}", "env=halfcheetah_gravity"])
    return agent_arguments(cfg.agent)


def preset_env_steps_per_second(name: str, steps: int, warmup: int, seed: int = 0) -> float:
    """Timed act/step/store/update loop after `warmup` random steps and 5 untimed updates."""
    task = build_sequence([{"env_id": "HalfCheetah-v5", "steps": steps}], task_type=MujocoTask).visits[0]
    envs = make_vector_env(task, MujocoSettings(), 1)
    options = {**preset(name), "learning_starts": 0}
    agent = SACAgent(Spaces.box_actions((17,), (6,)), seed=seed, **options)
    replay = TransitionReplay(warmup + steps + 10, 1, (17,), (6,), seed=seed)
    rng = np.random.default_rng(seed)
    obs = fill_with_random_steps(
        envs, replay, envs.reset(seed=seed)[0], warmup, lambda: rng.uniform(-1, 1, (1, 6)).astype(np.float32)
    )
    for i in range(5):
        agent.update(replay.sample(BATCH_SIZE), i)
    return env_steps_per_second(envs, agent, replay, obs, steps, BATCH_SIZE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="timed env steps per preset")
    parser.add_argument("--warmup", type=int, default=1_000, help="random env steps before timing")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch 256, 1 update per env step")
    rates = {name: preset_env_steps_per_second(name, args.steps, args.warmup) for name in ("sac", "sac_simba")}
    for name, rate in rates.items():
        print(f"{name:10s} ({preset(name)['network']:5s}): {rate:8.2f} env steps/s over {args.steps} steps")
    ratio = rates["sac_simba"] / rates["sac"]
    print(f"ratio sac_simba / sac: {ratio:.3f} (the MLP preset is {1 / ratio:.1f}x faster)")


if __name__ == "__main__":
    main()
