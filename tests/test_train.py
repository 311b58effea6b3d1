"""The real command on a few hundred steps of real ALE games, and the bad inputs it must refuse."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, TINY_SWEEP, compose_cfg
from conftest import run_train as run_cli

from core.config import ConfigError
from fire_rl.build import build_components
from fire_rl.run_state import EpisodeTracker
from fire_rl.train import crossed


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_main_command_produces_run_directory(tmp_path):
    result = run_cli("+reset=fire", *TINY, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("config.yaml", "env.json", "metrics.jsonl", "returns.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = read_metrics(tmp_path)
    events = {row["event"] for row in rows}
    assert {"switch", "reset", "eval", "plasticity", "train", "end"} <= events
    resets = [row for row in rows if row["event"] == "reset"]
    assert [row["step"] for row in resets] == [200, 400]  # exactly at the two task switches
    assert {"reset/sfe_total", "reset/wall_time_s", "reset/q/conv1/dfi_after", "reset/q/fc1/sfe"} <= set(resets[0])
    assert resets[0]["layers"] == ["q/conv1", "q/conv2", "q/conv3", "q/fc1", "q/fc2"]
    phases = [row["phase"] for row in rows if row["event"] == "plasticity" and row["step"] == 200]
    assert "pre_reset" in phases and "post_reset" in phases
    final_eval = [row for row in rows if row["event"] == "eval"][-1]
    assert {f"eval/{t}/return" for t in ("Asterix", "BeamRider", "DemonAttack")} <= set(final_eval)
    assert rows[-1]["event"] == "end"
    # a checkpoint at every switch and at the end; the newest two are kept
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000000000400", "step_000000000600"]
    env = json.loads((tmp_path / "env.json").read_text())
    assert env["settings"]["sticky_action_prob"] == 0.25 and len(env["tasks"]) == 3


@pytest.mark.slow
def test_sweep_gives_each_job_its_own_run_directory(tmp_path):
    result = run_cli("-m", "+reset=none,full", *TINY_SWEEP, f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    run_dirs = sorted(p.parent for p in tmp_path.glob("*/metrics.jsonl"))
    assert len(run_dirs) == 2
    n_resets = [sum(row["event"] == "reset" for row in read_metrics(d)) for d in run_dirs]
    assert sorted(n_resets) == [0, 2]


BAD_INPUTS = {
    "unknown game": (["env.tasks.0.env_id=ALE/Asterx-v5"], "ALE/Asterix-v5"),
    "invalid mode": (["+env.tasks.0.mode=3"], "valid mode values: [0]"),
    "invalid difficulty": (["+env.tasks.1.difficulty=9"], "valid difficulty values: [0"),
    "zero steps": (["env.tasks.0.steps=0"], "must be positive"),
    "negative eval cadence": (["eval_every=-5"], "eval_every must be positive"),
    "continuous env under DQN": (["env.tasks.0.env_id=HalfCheetah-v5"], "not an Atari env"),
    "unknown agent family": (["agent.name=ppo"], "valid choices: dqn"),
    "mixed action spaces": (
        ["env.settings.full_action_space=false", "env.tasks.0.env_id=ALE/Pong-v5"],
        "mixes action spaces",
    ),
    "bad sticky level": (["env.settings.sticky_actions_per=episode"], "valid choices: agent_step, frame"),
    "bad reset option": (["+reset=fire", "reset.policy=encoder_only"], "paper_dqn"),
    "negative buffer": (["loop.buffer_size=-1"], "loop.buffer_size must be positive"),
    "misspelt agent key": (["+agent.lrr=0.1"], "agent.lrr is not a setting of DQNAgent; valid keys: network, init"),
    "loop key in the agent config": (["+agent.batch_size=64"], "agent.batch_size moved to loop.batch_size"),
    "loop setting missing": (["~loop.batch_size"], "loop.batch_size is not set"),
    "CUDA graph on the CPU": (["agent.compile=graph", "device=cpu"], "needs device=cuda, got device=cpu"),
    "unknown compile mode": (["agent.compile=cudagraph"], "valid choices: auto, none, compile, graph"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_is_refused_before_training(name, tmp_path):
    overrides, expected = BAD_INPUTS[name]
    with pytest.raises(ConfigError, match=None) as err:
        build_components(compose_cfg(overrides), tmp_path)
    assert expected in str(err.value)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_bad_input_exits_nonzero_with_one_line(tmp_path):
    result = run_cli("env.tasks.0.env_id=ALE/NotAGame-v5", f"hydra.run.dir={tmp_path}", timeout=120)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("fire_rl: error: unknown Atari env id 'ALE/NotAGame-v5'")


def test_a_moved_key_typed_the_old_way_is_refused_with_one_line_naming_the_new_one(tmp_path):
    for args in (["agent.buffer_size=5000"], ["-m", "+reset=none,fire", "agent.num_envs=2"]):
        result = run_cli(*args, f"hydra.run.dir={tmp_path}", timeout=120)
        assert result.returncode != 0 and not (tmp_path / "metrics.jsonl").exists()
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("fire_rl: error: agent.") and "moved to loop." in last and "use loop." in last


def test_unknown_reset_name_lists_the_valid_ones(tmp_path):
    result = run_cli("+reset=magic", f"hydra.run.dir={tmp_path}", timeout=120)
    assert result.returncode != 0
    assert "reset/magic" in result.stderr and "shrink_perturb" in result.stderr


def test_episode_tracker_skips_the_autoreset_step():
    tracker = EpisodeTracker(2)

    def step(rewards, done):
        return tracker.step(np.array(rewards), np.array(done))

    assert step([1.0, 2.0], [False, False]) == []
    assert step([3.0, 2.0], [True, False]) == [(4.0, 2)]
    # env 0's next step is the reset step: its reward (0 by gymnasium's contract) starts nothing
    assert step([0.0, 1.0], [False, True]) == [(5.0, 3)]
    assert step([7.0, 0.0], [True, False]) == [(7.0, 1)]


def test_crossed_counts_multiples_in_jumps():
    assert crossed(96, 100, 100) and not crossed(100, 104, 100) and crossed(399, 401, 100)
