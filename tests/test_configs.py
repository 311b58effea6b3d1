"""Every config file composes and instantiates into the object the training loop would build."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CONFIG_DIR, compose_cfg
from hydra.utils import instantiate
from omegaconf import OmegaConf

from envs.atari import AtariSettings, validate_tasks
from envs.sequence import build_sequence
from fire_rl.resets.base import ResetStrategy
from fire_rl.train import build_reset

GROUP_FILES = sorted(p for p in Path(CONFIG_DIR).glob("*/*.yaml") if p.parent.name not in ("hydra", "experiment"))


def _override(path: Path) -> str:
    group = path.parent.name
    return f"+{group}={path.stem}" if group == "reset" else f"{group}={path.stem}"


@pytest.mark.parametrize("path", GROUP_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_file_composes_and_instantiates(path):
    cfg = compose_cfg([_override(path)])
    agent = instantiate(cfg.agent, num_actions=18, device="cpu", seed=0)
    assert agent.num_actions == 18
    sequence = build_sequence(OmegaConf.to_container(cfg.env.tasks), cfg.env.cycles)
    assert validate_tasks(sequence, AtariSettings(**cfg.env.settings)) == 18
    assert isinstance(build_reset(cfg), ResetStrategy)
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
