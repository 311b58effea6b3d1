"""The FIRE paper's DQN protocol, exactly: the S&P baseline's form, the authors' evaluation, their exploration draw
and preprocessing order, each against an independent oracle."""

from __future__ import annotations

import cv2
import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import compose_cfg

from agents.dqn import EpsilonGreedy
from envs.atari import AtariSettings, make_env
from envs.sequence import build_sequence
from fire_rl import evaluation
from fire_rl.build import build_components
from fire_rl.episodes import EpisodeTracker

PAPER = ["+experiment=paper_dqn", "loop.buffer_size=1000"]


def test_paper_dqn_shrink_perturb_is_the_sr_dqn_form_without_extra_flags(tmp_path):
    run = build_components(compose_cfg([*PAPER, "+reset=shrink_perturb"]), tmp_path)
    agent = run.agent
    with torch.no_grad():  # move every weight away from theta0, as training would
        for p in agent.q.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    before = {k: v.clone() for k, v in agent.q.state_dict().items()}
    run.reset.apply(agent, step=1_250_000)
    theta0, after = agent.theta0, agent.q.state_dict()
    for name in before:  # oracle: the authors' `--sr 1` by hand: convs 0.2 theta + 0.8 theta0, linears theta0
        expected = theta0[name] if name.startswith("fc") else 0.2 * before[name] + 0.8 * theta0[name]
        torch.testing.assert_close(after[name], expected, msg=name)
    assert run.resolved["reset"]["policy"] == "paper_dqn" and run.resolved["reset"]["optimizer"] == "keep"
    assert run.resolved["reset"]["at_steps"] == [1_250_000]


def test_per_vector_step_exploration_draws_one_coin_for_all_envs():
    schedule = EpsilonGreedy(1.0, 0.01, 100, 0, per_vector_step=True)
    greedy = np.full(4, 7)
    for seed in range(50):
        rng, oracle = np.random.default_rng(seed), np.random.default_rng(seed)
        actions = schedule.choose(greedy, 18, 0.5, rng)
        random, coin = oracle.integers(18, size=4), oracle.random()
        assert np.array_equal(actions, random if coin < 0.5 else greedy)
    per_env = EpsilonGreedy(1.0, 0.01, 100, 0, per_vector_step=False)
    rng, oracle = np.random.default_rng(3), np.random.default_rng(3)
    random, coins = oracle.integers(18, size=4), oracle.random(4)
    assert np.array_equal(per_env.choose(greedy, 18, 0.5, rng), np.where(coins < 0.5, random, greedy))
    assert compose_cfg(PAPER).agent.epsilon_draw == "per_vector_step"


def test_authors_preprocessing_order_matches_a_hand_built_reference_pixel_for_pixel():
    """RGB max over the last two of 4 frames, cv2 INTER_AREA resize to 84x84, then cv2 RGB2GRAY, on real frames."""
    task = build_sequence([{"env_id": "ALE/Breakout-v5", "steps": 1}]).visits[0]
    settings = AtariSettings(preprocessing="authors", sticky_action_prob=0.0, frame_stack=1)
    ours = make_env(task, settings)
    raw = gym.make("ALE/Breakout-v5", frameskip=1, repeat_action_probability=0.0, full_action_space=True)
    (obs, _), (frame, _) = ours.reset(seed=3), raw.reset(seed=3)

    def warp(rgb):
        return cv2.cvtColor(cv2.resize(rgb, (84, 84), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)

    assert np.array_equal(obs[0], warp(frame))
    rng = np.random.default_rng(0)
    differs = 0
    for _ in range(60):
        action = int(rng.integers(4))
        frames = [raw.step(action)[0] for _ in range(4)]
        obs, *_ = ours.step(action)
        expected = warp(np.maximum(frames[2], frames[3]))
        assert np.array_equal(obs[0], expected)
        gray_first = cv2.resize(
            np.maximum(*(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames[2:])),
            (84, 84),
            interpolation=cv2.INTER_AREA,
        )
        differs += int(not np.array_equal(gray_first, expected))
    assert differs > 0  # the order matters on real frames: gymnasium's gray-max-resize gives other pixels


def test_the_authors_evaluation_counts_steps_and_averages_completed_episodes(tmp_path):
    cfg = [*PAPER, "env.tasks.0.env_id=ALE/Pong-v5", "env.settings.max_episode_steps=30", "eval_steps=400"]
    run = build_components(compose_cfg([*cfg, "eval_num_envs=2"]), tmp_path)
    task = run.sequence.visits[0]
    calls = []
    act = run.agent.act

    def counting_act(obs, step, explore=True):
        calls.append(len(obs))
        return act(obs, step, explore)

    run.agent.act = counting_act
    returns = evaluation.vector_step_returns(run, task, step=0)
    assert sum(calls) == 400 and set(calls) == {2}  # 400 agent steps in all, over 2 envs
    # Oracle: the same envs, seeds and policy, episodes by hand; a 30-step cap ends each after 30 steps.
    run.agent.eval_rng = np.random.default_rng([run.cfg.seed, 1])
    envs = run.suite.make_vector_env(task, 2)
    obs, _ = envs.reset(seed=evaluation.AUTHORS_EVAL_SEED)
    tracker, expected = EpisodeTracker(2), []
    for _ in range(200):
        obs, rewards, terminated, truncated, _ = envs.step(act(obs, 0, explore=False))
        expected += [(r, n) for r, n in tracker.step(rewards, terminated | truncated)]
    assert returns == [r for r, _ in expected] and all(n == 30 for _, n in expected) and len(returns) == 12
    values = evaluation.evaluate_task(run, task, step=0)
    assert values["eval/Pong/episodes"] == 12 and values["eval/Pong/return"] == pytest.approx(np.mean(returns))


def test_paper_dqn_uses_the_authors_evaluation_and_preprocessing():
    cfg = compose_cfg(PAPER)
    assert (cfg.eval_protocol, cfg.eval_steps, cfg.eval_num_envs, cfg.eval_every) == (
        "vector_steps",
        125_000,
        4,
        250_000,
    )
    assert cfg.env.settings.preprocessing == "authors" and cfg.env.settings.max_episode_steps == 100_000
    assert compose_cfg([]).eval_protocol == "episodes"  # the continual presets evaluate per episode on every task
