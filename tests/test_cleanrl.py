"""agent=dqn_cleanrl with env=cleanrl_atari against CleanRL's dqn_atari.py settings: loss, init, optimizer,
schedule, and the SB3-style wrappers (no-op starts, episodic life, fire reset) on real games."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import compose_cfg

from envs.atari_wrappers import EpisodicLife, FireReset, NoopReset
from fire_rl.build import build_components
from fire_rl.episodes import EpisodeTracker

CLEANRL = ["agent=dqn_cleanrl", "env=cleanrl_atari", "loop.buffer_size=1000"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return build_components(compose_cfg(CLEANRL), tmp_path_factory.mktemp("cleanrl"))


def test_learner_is_cleanrls(run):
    agent = run.agent
    opt = agent.optimizer
    assert isinstance(opt, torch.optim.Adam) and (opt.defaults["lr"], opt.defaults["eps"]) == (1e-4, 1e-8)
    assert agent.target_update_every == 1000 and run.cfg.loop.updates_per_env_step == 0.25
    assert any(torch.any(m.bias != 0) for m in (agent.q.conv1, agent.q.fc1))  # torch default init, not Xavier's zeros
    # linear_schedule(1.0, 0.01, 0.1 * 10M, t): from step 0, through the 80k warm-up
    assert agent.epsilon(0) == 1.0 and agent.epsilon(80_000) == pytest.approx(1 - 0.99 * 0.08)
    assert agent.epsilon(500_000) == pytest.approx(0.505) and agent.epsilon(2_000_000) == 0.01
    rng = np.random.default_rng(0)
    batch = {
        "obs": rng.integers(0, 256, (8, 4, 84, 84), dtype=np.uint8),
        "next_obs": rng.integers(0, 256, (8, 4, 84, 84), dtype=np.uint8),
        "actions": rng.integers(0, 4, 8),
        "rewards": rng.standard_normal(8).astype(np.float32),
        "terminated": np.zeros(8, dtype=np.float32),
    }
    with torch.no_grad():  # MSE on sign(r) + 0.99 max Q_target(s'), by hand
        target = (
            torch.sign(torch.as_tensor(batch["rewards"]))
            + 0.99 * agent.target(torch.as_tensor(batch["next_obs"])).max(1).values
        )
        q = agent.q(torch.as_tensor(batch["obs"])).gather(1, torch.as_tensor(batch["actions"])[:, None]).squeeze(1)
        assert float(agent.losses(batch)["q"]) == pytest.approx(float(F.mse_loss(q, target)), rel=1e-5)


def test_wrappers_are_cleanrls_in_its_order(run):
    env = run.suite.make_eval_env(run.sequence.visits[0], 1000)
    chain, layer = [], env
    while hasattr(layer, "env"):
        chain.append(type(layer).__name__)
        layer = layer.env
    assert chain[:6] == [
        "FrameStackObservation",
        "FireReset",
        "EpisodicLife",
        "TimeLimit",
        "AuthorsPreprocessing",
        "NoopReset",
    ]
    assert "StickyAction" not in chain and env.action_space.n == 4
    freeway = build_components(compose_cfg([*CLEANRL, "env.tasks.0.env_id=ALE/Freeway-v5"]), None).suite
    assert not any(isinstance(w, FireReset) for w in _layers(freeway.make_eval_env(freeway.sequence.visits[0], 10)))


def _layers(env):
    while hasattr(env, "env"):
        yield env
        env = env.env


def test_noop_starts_take_between_one_and_thirty_frames(run):
    env = run.suite.make_eval_env(run.sequence.visits[0], 1000)
    noop = next(w for w in _layers(env) if isinstance(w, NoopReset))
    frames = set()
    for seed in range(12):
        noop.reset(seed=seed)
        frames.add(noop.unwrapped.ale.getEpisodeFrameNumber())
    assert min(frames) >= 1 and max(frames) <= 30 and len(frames) > 3


def test_episodic_life_ends_learning_episodes_at_lost_lives_and_logs_whole_games(run):
    envs = run.suite.make_vector_env(run.sequence.visits[0], 1)
    obs, _ = envs.reset(seed=0)
    tracker, rng = EpisodeTracker(1), np.random.default_rng(0)
    lost_lives, games, logged, since_game, resetting = 0, [], [], 0.0, False
    for _ in range(3000):
        obs, rewards, terminated, truncated, infos = envs.step(rng.integers(4, size=1))
        logged += [r for r, _ in tracker.step(rewards, terminated | truncated, infos.get("game_over"))]
        if not resetting:  # oracle: rewards summed over every life of a game, autoreset steps left out
            since_game += float(rewards[0])
            if terminated[0] or truncated[0]:
                if infos["game_over"][0]:
                    games.append(since_game)
                    since_game = 0.0
                else:
                    lost_lives += 1
        resetting = bool(terminated[0] or truncated[0])
    assert lost_lives >= 4 * len(games) > 0  # Breakout: 5 lives per game, each a learning episode
    assert logged == games
    wrapper = next(w for w in _layers(envs.envs[0]) if isinstance(w, EpisodicLife))
    assert wrapper.unwrapped.ale.lives() <= 5
