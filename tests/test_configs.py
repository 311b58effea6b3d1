"""Every config file composes and instantiates into the object the training loop would build."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFIG_DIR, compose_cfg
from hydra.utils import instantiate
from omegaconf import OmegaConf

from envs import atari, mujoco
from envs.sequence import build_sequence
from fire_rl.build import FAMILIES, build_reset, check_family
from fire_rl.resets.base import ResetStrategy

GROUP_FILES = sorted(p for p in Path(CONFIG_DIR).glob("*/*.yaml") if p.parent.name not in ("hydra", "experiment"))
EXPERIMENT_FILES = sorted(Path(CONFIG_DIR, "experiment").glob("*.yaml"))
# Each agent family trains on one env kind, so an agent or env file is composed with a partner of the other group.
PARTNERS = {"dqn": "env=atari3", "sac": "env=halfcheetah_gravity", "atari": "agent=dqn", "mujoco": "agent=sac"}


def _overrides(path: Path) -> list[str]:
    group, own = path.parent.name, f"{path.parent.name}={path.stem}"
    if group in ("reset", "experiment"):
        return [f"+{own}"]
    cfg = compose_cfg([own])
    kind = cfg.env.get("kind", "atari")
    if FAMILIES[kind].agent == cfg.agent.name:
        return [own]
    return [own, PARTNERS[cfg.agent.name] if group == "agent" else PARTNERS[kind]]


def _agent_for_tasks(cfg):
    """Validate the task sequence and instantiate the agent for its spaces, as the training loop does."""
    kind = check_family(cfg)
    settings = FAMILIES[kind].settings(**cfg.env.settings)
    draws = OmegaConf.to_container(cfg.env.draws) if cfg.env.get("draws") else None
    sequence = build_sequence(mujoco.draw_tasks(OmegaConf.to_container(cfg.env.tasks), draws), cfg.env.cycles)
    if kind == "atari":
        num_actions = atari.validate_tasks(sequence, settings)
        assert num_actions == (18 if settings.full_action_space else 9)  # paper_dqn: Asterix's minimal set
        agent = instantiate(cfg.agent, num_actions=num_actions, device="cpu", seed=0)
        assert agent.num_actions == num_actions
        return agent
    obs_shape, action_shape = mujoco.validate_tasks(sequence, settings)
    agent = instantiate(cfg.agent, obs_dim=obs_shape[0], action_dim=action_shape[0], device="cpu", seed=0)
    assert agent.action_dim == action_shape[0] and not agent.discrete
    return agent


@pytest.mark.parametrize("path", GROUP_FILES + EXPERIMENT_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_file_composes_and_instantiates(path):
    cfg = compose_cfg(_overrides(path))
    agent = _agent_for_tasks(cfg)
    reset = build_reset(cfg)
    assert isinstance(reset, ResetStrategy)
    reset.select_layers(agent)
    assert cfg.logger.wandb_mode in ("offline", "online", "disabled")


def test_reset_is_opt_in():
    """`reset` must stay out of the defaults list, or `+reset=...` stops working."""
    assert "reset" not in compose_cfg()
    assert type(build_reset(compose_cfg())).__name__ == "NoReset"
    assert compose_cfg(["+reset=fire"]).reset.name == "fire"


def test_every_key_is_commented():
    """Each key line in every config file carries a trailing comment saying what it means."""
    for path in Path(CONFIG_DIR).rglob("*.yaml"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            if not stripped or stripped.startswith(("#", "-", "defaults")) or stripped.endswith(":"):
                continue
            if ":" in stripped and not stripped.startswith("_target_"):
                assert "#" in stripped, f"{path.name}: uncommented key line {stripped!r}"
