"""Shared fixtures: compose the real Hydra configs, and tiny budgets for real-environment runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# setuptools before anything can import the standard library's distutils: torch.compile's C++ builder imports
# setuptools, whose distutils shim refuses to load once the stdlib copy is in the process (seen with setuptools
# 84.2.1, a torch dependency that CI installs fresh: tests/test_dqn.py's compiled test failed in the full suite).
import setuptools  # noqa: F401, E402  isort: skip
import torch
from hydra import compose, initialize_config_dir

from core.spaces import Spaces

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = str(REPO / "configs")

# A few hundred agent steps of each real ALE game: enough for switches, resets, evals and probes.
TINY = [
    "env.tasks.0.steps=200",
    "env.tasks.1.steps=200",
    "env.tasks.2.steps=200",
    "agent.learning_starts=100",
    "loop.buffer_size=2000",
    "eval_every=200",
    "eval_max_episode_steps=30",
    "metrics_every=100",
    "metrics_probe_size=32",
    "log_every=100",
]


# A sweep's jobs at 100 agent steps per game: enough for every event, cheap enough to run several jobs.
TINY_SWEEP = [
    *TINY,
    "env.tasks.0.steps=100",
    "env.tasks.1.steps=100",
    "env.tasks.2.steps=100",
    "agent.learning_starts=50",
]


# SAC on three gravities of HalfCheetah at 150 env steps each: every event of a SAC run, in about ten seconds.
SAC_TINY = [
    "+experiment=halfcheetah_gravity",
    "env.cycles=1",
    *(f"env.tasks.{i}.steps=150" for i in range(3)),
    "agent.learning_starts=50",
    "loop.batch_size=32",
    "loop.buffer_size=1000",
    "eval_every=150",
    "eval_episodes=1",
    "eval_max_episode_steps=20",
    "metrics_every=75",
    "metrics_probe_size=32",
    "log_every=50",
]


# Tests write no wandb files and draw no progress bar (a test that wants them passes quiet=False).
QUIET = ["logger.wandb_mode=disabled", "logger.progress_bar=false"]


def train_command(*args: str, quiet: bool = True) -> list[str]:
    """The argv of `python -m fire_rl.train <args>`, QUIET last (after a multirun's `-m` too)."""
    return [sys.executable, "-m", "fire_rl.train", *args, *(QUIET if quiet else [])]


def run_train(
    *args: str, timeout: int = 600, env: dict | None = None, quiet: bool = True
) -> subprocess.CompletedProcess:
    """The real command line, `python -m fire_rl.train <args>`, run from the repository root."""
    return subprocess.run(
        train_command(*args, quiet=quiet),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def compose_cfg(overrides: list[str] | None = None, quiet: bool = True):
    """The configuration `python -m fire_rl.train <overrides>` would run with (QUIET first: the overrides win)."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="train", overrides=[*(QUIET if quiet else []), *(overrides or [])])


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", os.environ.get("WANDB_MODE", "offline"))


def atari_spaces(num_actions: int = 18) -> Spaces:
    """The spaces of an Atari sequence with the default preprocessing: 4 stacked 84x84 uint8 frames."""
    return Spaces.discrete_actions((4, 84, 84), num_actions)


def box_spaces(obs_dim: int = 17, action_dim: int = 6) -> Spaces:
    """Flat observations and continuous actions (HalfCheetah-v5: 17 and 6)."""
    return Spaces.box_actions((obs_dim,), (action_dim,))


def assert_compiled_loss_matches_eager(eager_fn, compiled_fn, args: tuple, params: list, seed: int = 0) -> None:
    """An agent's compiled training loss (forward, and backward through AOTAutograd) against its eager loss on the
    same weights and inputs: the same loss and the same gradient for each of `params`. Both draw their random
    numbers after torch.manual_seed(seed); a compiled graph draws from torch's generator only under
    torch._inductor.config.fallback_random (the caller's to set). Gradients are the oracle, not weights after a few
    optimizer steps: Adam's first steps move each weight by about lr whatever its gradient's size, so the rounding
    noise in a near-zero gradient becomes a difference of lr."""
    results = []
    for fn in (eager_fn, compiled_fn):
        torch.manual_seed(seed)
        loss = fn(*args)[0]
        results.append((loss.detach(), torch.autograd.grad(loss, params, allow_unused=True)))
    (eager_loss, eager_grads), (compiled_loss, compiled_grads) = results
    torch.testing.assert_close(compiled_loss, eager_loss, rtol=1e-4, atol=1e-6)
    for i, (g, expected) in enumerate(zip(compiled_grads, eager_grads, strict=True)):
        assert (g is None) == (expected is None), f"parameter {i}: a gradient on one side only"
        if expected is not None:
            scale = float(expected.abs().max())
            torch.testing.assert_close(
                g, expected, rtol=1e-3, atol=1e-4 * scale + 1e-12, msg=lambda m, i=i: f"parameter {i}: {m}"
            )


def assert_sac_compiled_losses_match(agent, batch: dict) -> None:
    """The agent's compiled actor and critic losses (what its update trains with) against its eager ones (what
    resets such as DASH differentiate): same loss, same gradients, same reparameterisation noise."""
    obs, actions, rewards, next_obs, terminated = agent._normalised(agent._tensors(batch))
    actor, critic = list(agent.actor.parameters()), list(agent.critic.parameters())
    assert_compiled_loss_matches_eager(agent._actor_loss, agent._train_actor_loss, (obs,), actor)
    critic_args = (obs, actions, rewards, next_obs, terminated)
    assert_compiled_loss_matches_eager(agent._critic_loss, agent._train_critic_loss, critic_args, critic)


def fresh_state(optimizer, param) -> bool:
    """The parameter's optimizer state is where a new optimizer starts (what a reset's clear writes in place): every
    moment 0 and a step count of 0."""
    return param in optimizer.state and all(not v.any() for v in optimizer.state[param].values())
