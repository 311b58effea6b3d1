"""Heavy priming (`prime_updates`): updates at one agent step that follow each agent's own update rules, a `prime`
row, and the inputs it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY, box_spaces, run_train

from agents.dqn import DQNAgent
from agents.sac import SACAgent
from core.spaces import Spaces


def minatar_batch(rng: np.random.Generator, n: int = 32) -> dict:
    return {
        "obs": rng.integers(0, 2, (n, 10, 10, 10), dtype=np.uint8),
        "next_obs": rng.integers(0, 2, (n, 10, 10, 10), dtype=np.uint8),
        "actions": rng.integers(0, 6, n),
        "rewards": rng.integers(0, 2, n).astype(np.float32),
        "terminated": (rng.random(n) < 0.1).astype(np.float32),
    }


def same(a: dict, b: dict) -> bool:
    return all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("steps_per_update, updates_per_copy", [(1.0, 100), (4.0, 25)])
def test_dqn_priming_copies_the_target_every_target_update_every_steps_worth_of_updates(
    steps_per_update, updates_per_copy
):
    """target_update_every=100 agent steps: every 100 priming updates at one update per step, every 25 at one per 4."""
    agent = DQNAgent(Spaces.discrete_actions((10, 10, 10), 6), network="minatar", target_update_every=100)
    rng, copies = np.random.default_rng(0), []
    for index in range(2 * updates_per_copy + 10):
        agent.prime_update(minatar_batch(rng), index, steps_per_update)
        if (index + 1) % updates_per_copy == 0:
            copies.append({k: v.clone() for k, v in agent.q.state_dict().items()})
    assert len(copies) == 2 and not same(copies[0], copies[1])
    assert same(agent.target.state_dict(), copies[1])  # the copy made after the last full period, not since
    assert not same(agent.target.state_dict(), agent.q.state_dict())
    assert agent.last_target_sync == 0  # the training schedule's own copies are untouched


def test_dqn_priming_makes_the_same_gradient_steps_as_training():
    spaces = Spaces.discrete_actions((10, 10, 10), 6)
    primed, trained = (DQNAgent(spaces, network="minatar", seed=3) for _ in range(2))
    for index, seed in enumerate(range(5)):
        primed.prime_update(minatar_batch(np.random.default_rng(seed)), index, 1.0)
        trained.update(minatar_batch(np.random.default_rng(seed)), 0)
    assert same(primed.q.state_dict(), trained.q.state_dict())


def test_sac_priming_is_ordinary_updates_with_the_polyak_target():
    rng = np.random.default_rng(0)
    batches = [
        {
            "obs": rng.normal(size=(32, 17)).astype(np.float32),
            "next_obs": rng.normal(size=(32, 17)).astype(np.float32),
            "actions": rng.uniform(-1, 1, (32, 6)).astype(np.float32),
            "rewards": rng.normal(size=32).astype(np.float32),
            "terminated": np.zeros(32, dtype=np.float32),
        }
        for _ in range(4)
    ]
    primed, trained = (SACAgent(box_spaces(17, 6), seed=0, learning_starts=0) for _ in range(2))
    start = {k: v.clone() for k, v in primed.target.state_dict().items()}
    torch.manual_seed(1)  # SAC samples actions from torch's generator: the same draws for both
    for index, batch in enumerate(batches):
        primed.prime_update(batch, index, 1.0)
    torch.manual_seed(1)
    for index, batch in enumerate(batches):
        trained.update(batch, 1_000 + index)
    assert same(primed.critic.state_dict(), trained.critic.state_dict())
    assert same(primed.target.state_dict(), trained.target.state_dict())
    assert not same(primed.target.state_dict(), start)


@pytest.mark.slow
def test_a_primed_run_logs_one_prime_row_when_learning_starts(tmp_path):
    """On a priming set smaller than one batch (20 transitions, batch 32): batches are drawn with replacement."""
    args = [*TINY, "agent.learning_starts=20", "prime_updates=40", "torch_threads=1", f"hydra.run.dir={tmp_path}"]
    result = run_train(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    (prime,) = [r for r in rows if r["event"] == "prime"]
    assert prime["step"] == 21 and prime["prime/updates"] == 40 and prime["prime/replay_size"] <= 21
    assert np.isfinite(prime["prime/td_loss"])
    assert "prime_updates: 40" in (tmp_path / "config.yaml").read_text()


@pytest.mark.parametrize(
    "override, message",
    [
        ("prime_updates=-1", "prime_updates must be non-negative, got -1"),
        ("prime_updates=1e5", "prime_updates must be a whole number of updates, got 100000.0"),
    ],
)
def test_priming_refuses_what_makes_no_sense(tmp_path, override, message):
    result = run_train(*TINY, override, f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0 and message in result.stderr
    assert not (tmp_path / "metrics.jsonl").exists()


@pytest.mark.slow
def test_priming_is_refused_for_a_branch_past_learning_starts_from_an_unprimed_checkpoint(tmp_path):
    """Priming happens when learning starts; an unprimed checkpoint past that point cannot be primed after it."""
    unprimed = tmp_path / "unprimed"
    result = run_train(*TINY, "agent.learning_starts=100", "stop_at_step=200", f"hydra.run.dir={unprimed}")
    assert result.returncode == 0, result.stderr[-2000:]
    branch = tmp_path / "branch"
    checkpoint = f"branch_from={unprimed}/checkpoints/step_000000000200"
    result = run_train(*TINY, "agent.learning_starts=100", "prime_updates=10", checkpoint, f"hydra.run.dir={branch}")
    assert result.returncode != 0
    assert "prime_updates=10 primes once, when learning starts (agent step 100), but this run starts at step 200" in (
        result.stderr
    )
    assert not (branch / "metrics.jsonl").exists()
