"""Task sequences and the real ALE preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_cfg
from omegaconf import OmegaConf

from core.config import ConfigError
from envs.atari import AtariSettings, make_env, make_vector_env
from envs.sequence import build_sequence
from envs.suite import build_suite


def test_sequence_switch_points_and_cycles():
    seq = build_sequence(
        [{"env_id": "ALE/Pong-v5", "steps": 100}, {"env_id": "ALE/Breakout-v5", "steps": 50, "mode": 4}], cycles=2
    )
    assert [t.name for t in seq.visits] == ["Pong", "Breakout-m4", "Pong", "Breakout-m4"]
    assert seq.switch_steps == [100, 150, 250] and seq.total_steps == 300
    assert [seq.visit_at(s) for s in (0, 99, 100, 149, 150, 299)] == [0, 0, 1, 1, 2, 3]
    assert [t.name for t in seq.distinct_tasks] == ["Pong", "Breakout-m4"]


def test_sequence_rejects_bad_entries():
    with pytest.raises(ConfigError, match="cycles must be positive"):
        build_sequence([{"env_id": "ALE/Pong-v5", "steps": 1}], cycles=0)
    with pytest.raises(ConfigError, match="needs both"):
        build_sequence([{"env_id": "ALE/Pong-v5"}])
    with pytest.raises(ConfigError, match="share the name"):
        build_sequence(
            [{"env_id": "ALE/Pong-v5", "steps": 1}, {"env_id": "ALE/Pong-v5", "steps": 1, "name": "Pong", "mode": 1}]
        )


def _task(**kwargs):
    return build_sequence([{"env_id": "ALE/Breakout-v5", "steps": 10, **kwargs}]).visits[0]


def test_preprocessing_matches_the_paper():
    env = make_env(_task(mode=4, difficulty=1), AtariSettings())
    obs, _ = env.reset(seed=0)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8
    assert env.action_space.n == 18  # full action space
    ale = env.unwrapped.ale
    assert ale.getInt("frame_skip") == 1  # skipping is done by the wrapper, which max-pools the last two frames
    assert ale.getFloat("repeat_action_probability") == 0.0  # sticky actions are per agent step (paper's code)
    wrappers = []
    while hasattr(env, "env"):
        wrappers.append(type(env).__name__)
        env = env.env
    assert wrappers[:4] == ["FrameStackObservation", "TimeLimit", "StickyAction", "AtariPreprocessing"]


def test_per_frame_sticky_actions_use_ale():
    env = make_env(_task(), AtariSettings(sticky_actions_per="frame"))
    env.reset(seed=0)
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)


def test_rewards_are_raw_game_scores():
    """Asterix pays 50 points per item: an unclipped reward above 1 shows up under random play."""
    task = build_sequence([{"env_id": "ALE/Asterix-v5", "steps": 10}]).visits[0]
    env = make_env(task, AtariSettings())
    env.reset(seed=0)
    rewards = [env.step(env.action_space.sample())[1] for _ in range(300)]
    assert max(rewards) > 1


@pytest.mark.parametrize("backend", ["gymnasium", "ale_vector"])
def test_vector_backends_agree_on_shapes(backend):
    envs = make_vector_env(_task(), AtariSettings(backend=backend), num_envs=2)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    obs, rewards, terminated, truncated, _ = envs.step(np.array([0, 1]))
    assert obs.shape == (2, 4, 84, 84) and rewards.shape == terminated.shape == truncated.shape == (2,)
    envs.close()


def test_ale_vector_cannot_take_modes():
    with pytest.raises(ConfigError, match="cannot set"):
        make_vector_env(_task(mode=4), AtariSettings(backend="ale_vector"), num_envs=1)


@pytest.mark.parametrize(
    "name, game, modes", [("freeway_modes", "Freeway", range(8)), ("spaceinvaders_modes", "SpaceInvaders", range(10))]
)
def test_mode_sequences_from_the_literature_are_one_task_per_mode(name, game, modes):
    suite = build_suite(OmegaConf.to_container(compose_cfg([f"env={name}"]).env))
    assert [t.kwargs["mode"] for t in suite.sequence.visits] == list(modes)
    assert {t.env_id for t in suite.sequence.visits} == {f"ALE/{game}-v5"}
    record = suite.record()
    assert [t["mode"] for t in record["tasks"]] == list(modes) and all(
        t["backend"] == "gymnasium" for t in record["tasks"]
    )
    assert suite.spaces().num_actions == {"Freeway": 3, "SpaceInvaders": 6}[game]  # the minimal set, every mode
