"""DQN learner against hand computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import atari_spaces

from agents.dqn import DQNAgent
from fire_rl.resets import DASH


def _batch(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.integers(0, 256, (n, 4, 84, 84), dtype=np.uint8),
        "next_obs": rng.integers(0, 256, (n, 4, 84, 84), dtype=np.uint8),
        "actions": rng.integers(0, 18, n),
        "rewards": np.array([50.0, -3.0, 0.0, 1.0, 200.0, -0.5, 0.0, 7.0][:n], dtype=np.float32),
        "terminated": np.array([0, 1, 0, 0, 1, 0, 0, 0][:n], dtype=np.float32),
    }


def test_network_init_is_xavier_uniform_with_zero_biases():
    agent = DQNAgent(atari_spaces(18))
    for name in ("conv1", "conv2", "conv3", "fc1", "fc2"):
        layer = getattr(agent.q, name)
        receptive = layer.weight[0, 0].numel()  # 1 for a linear layer
        fan_in, fan_out = layer.weight.shape[1] * receptive, layer.weight.shape[0] * receptive
        bound = math.sqrt(6 / (fan_in + fan_out))
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
        assert torch.all(layer.bias == 0)
    assert agent.q(torch.zeros(2, 4, 84, 84, dtype=torch.uint8)).shape == (2, 18)


def test_epsilon_schedule():
    agent = DQNAgent(atari_spaces(18), learning_starts=100, epsilon_decay_steps=1000)
    assert agent.epsilon(0) == agent.epsilon(100) == 1.0
    assert agent.epsilon(600) == np.float64(1.0 + 0.5 * (0.01 - 1.0))
    assert agent.epsilon(1100) == pytest.approx(0.01) and agent.epsilon(10**6) == pytest.approx(0.01)


def test_td_target_clips_rewards_and_masks_terminals():
    agent = DQNAgent(atari_spaces(18), gamma=0.9)
    with torch.no_grad():  # a target net whose Q is the constant 2.0 for every action
        agent.target.fc2.weight.zero_()
        agent.target.fc2.bias.fill_(2.0)
    batch = _batch()
    q = agent.q(torch.as_tensor(batch["obs"])).gather(1, torch.as_tensor(batch["actions"])[:, None]).squeeze(1)
    target = np.sign(batch["rewards"]) + 0.9 * (1 - batch["terminated"]) * 2.0
    expected = F.smooth_l1_loss(q, torch.as_tensor(target, dtype=torch.float32))
    assert torch.allclose(agent.losses(batch)["q"], expected)


def test_updates_reduce_td_loss_and_sync_target_on_schedule():
    agent = DQNAgent(atari_spaces(18), lr=1e-3, target_update_every=10)
    batch = _batch()
    first = agent.losses(batch)["q"].item()
    for step in range(1, 9):
        agent.update(batch, step)
    assert agent.losses(batch)["q"].item() < first
    assert not torch.equal(agent.q.fc2.weight, agent.target.fc2.weight)  # no copy before step 10
    agent.update(batch, 12)
    assert torch.equal(agent.q.fc2.weight, agent.target.fc2.weight) and agent.last_target_sync == 12


def test_act_is_greedy_when_epsilon_is_zero():
    agent = DQNAgent(atari_spaces(18), eval_epsilon=0.0)
    obs = _batch()["obs"]
    greedy = agent.q(torch.as_tensor(obs)).argmax(1).numpy()
    assert np.array_equal(agent.act(obs, step=0, explore=False), greedy)


def test_state_dict_round_trip():
    agent, other = DQNAgent(atari_spaces(18), seed=0), DQNAgent(atari_spaces(18), seed=1)
    agent.update(_batch(), 1)
    other.load_state_dict(agent.state_dict())
    obs = _batch()["obs"]
    assert torch.equal(agent.q(torch.as_tensor(obs)), other.q(torch.as_tensor(obs)))
    assert np.array_equal(agent.act(obs, 0), other.act(obs, 0))


@pytest.mark.slow
def test_compiled_update_equals_eager_on_cpu():
    """agent.compile=compile (torch.compile of the loss, forward and backward) computes what the eager update does."""
    from core.spaces import Spaces

    spaces = Spaces.discrete_actions((10, 10, 10), 6)
    options = dict(network="minatar", learning_starts=0, lr=1e-3, optimizer="adam", target_update_every=3)
    eager, fast = (
        DQNAgent(spaces, seed=0, compile="none", **options),
        DQNAgent(spaces, seed=0, compile="compile", **options),
    )
    rng = np.random.default_rng(0)
    for step in range(6):
        batch = {
            "obs": (rng.random((32, 10, 10, 10)) < 0.2).astype(np.uint8),
            "next_obs": (rng.random((32, 10, 10, 10)) < 0.2).astype(np.uint8),
            "actions": rng.integers(0, 6, 32),
            "rewards": rng.integers(0, 2, 32).astype(np.float32),
            "terminated": (rng.random(32) < 0.1).astype(np.float32),
        }
        a, b = eager.update(batch, step), fast.update(batch, step)
        torch.testing.assert_close(a["losses/td_loss"], b["losses/td_loss"], rtol=1e-4, atol=1e-6)
    for (name, x), y in zip(eager.q.state_dict().items(), fast.q.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=name)
    assert fast.compile == "compile" and DQNAgent(spaces, **{**options, "compile": "auto"}).compile == "none"
    # DASH differentiates the agent's loss once per network with the graph kept, which a compiled backward refuses
    # (donated buffers); resets use the eager loss, so DASH on a compiled agent does what it does on an eager one.
    for agent in (eager, fast):
        DASH(num_batches=2).apply(agent, step=6, sample_batch=lambda: batch)
    for (name, x), y in zip(eager.q.state_dict().items(), fast.q.state_dict().values(), strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=f"after DASH: {name}")
