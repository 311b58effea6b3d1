"""Every config file composes and instantiates into the object the training loop would build."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, compose_cfg
from omegaconf import OmegaConf

from envs.suite import build_suite
from fire_rl.build import attach_regularizer, build_reset, check_run_options, make_agent
from fire_rl.resets.base import ResetStrategy

# configs/protocol/ holds the protocol runner's recipes, not training config groups (tests/test_protocol.py loads them).
GROUP_FILES = sorted(
    p for p in Path(CONFIG_DIR).glob("*/*.yaml") if p.parent.name not in ("hydra", "experiment", "protocol")
)
EXPERIMENT_FILES = sorted(Path(CONFIG_DIR, "experiment").glob("*.yaml"))
# Each env kind trains one agent family (and MinAtar needs the MinAtar network), so an agent or env file is
# composed with a partner from the other group.
ENV_FOR_AGENT = {"dqn": "env=atari3", "dqn_minatar": "env=minatar3", "sac": "env=halfcheetah_gravity"}
AGENT_FOR_KIND = {"atari": "agent=dqn", "minatar": "agent=dqn_minatar", "mujoco": "agent=sac"}


def _overrides(path: Path) -> list[str]:
    group, own = path.parent.name, f"{path.parent.name}={path.stem}"
    if group in ("reset", "experiment", "regularizer"):  # opt-in groups
        return [f"+{own}"]
    cfg = compose_cfg([own])
    if group == "agent":
        key = "dqn_minatar" if cfg.agent.get("network") == "minatar" else cfg.agent.name
        return [own, ENV_FOR_AGENT[key]]
    return [own, AGENT_FOR_KIND[cfg.env.get("kind", "atari")]]


def _agent_for_tasks(cfg):
    """Validate the task sequence and build the agent for its spaces, as the training loop does."""
    suite = build_suite(OmegaConf.to_container(cfg.env, resolve=True))
    spaces = suite.spaces()
    if suite.kind == "atari":
        assert spaces.num_actions == 18 or not suite.settings.full_action_space  # else the game's minimal set
    agent = make_agent(cfg.agent, spaces, "cpu", 0)
    assert agent.loss_keys and agent.reset_defaults.optimizer in ("keep", "clear_all")
    return agent


@pytest.mark.parametrize("path", GROUP_FILES + EXPERIMENT_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_config_file_composes_and_instantiates(path):
    cfg = compose_cfg(_overrides(path), quiet=False)
    agent = _agent_for_tasks(cfg)
    reset = build_reset(cfg)
    assert isinstance(reset, ResetStrategy)
    if cfg.get("regularizer") is not None:
        assert attach_regularizer(cfg, agent)["name"] == cfg.regularizer.name == agent.regularizer.name
    assert reset.resolve(agent)["strategy"] == type(reset).__name__
    assert cfg.logger.wandb_mode in ("offline", "online", "disabled")


def test_reset_is_opt_in():
    """`reset` (and `regularizer`) must stay out of the defaults list, or `+reset=...` stops working."""
    assert "reset" not in compose_cfg() and "regularizer" not in compose_cfg()
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


def quick_trials() -> list[tuple[str, list[str]]]:
    """(preset, overrides) of every line of docs/configuration.md's table "Trying a preset at a small budget"."""
    text = (Path(CONFIG_DIR).parent / "docs" / "configuration.md").read_text()
    section = text.split("## Trying a preset at a small budget", 1)[1].split("\n#", 1)[0]
    trials = re.findall(r"^\| `(\w+)` \| `python -m fire_rl.train ([^`]+)` \|$", section, flags=re.M)
    return [(preset, shlex.split(command)) for preset, command in trials]


def test_the_docs_have_a_quick_trial_for_every_experiment_preset():
    assert sorted(preset for preset, _ in quick_trials()) == sorted(p.stem for p in EXPERIMENT_FILES)


@pytest.mark.parametrize("preset, overrides", quick_trials(), ids=lambda v: v if isinstance(v, str) else "")
def test_a_quick_trial_fits_its_own_budget(preset, overrides):
    """The quick trial's warm-up, evaluation, intervention and probes all happen within its shortened budget."""
    cfg = compose_cfg(overrides)
    check_run_options(cfg)
    total = build_suite(OmegaConf.to_container(cfg.env, resolve=True)).sequence.total_steps
    assert f"+experiment={preset}" in overrides
    assert cfg.agent.learning_starts < total and cfg.eval_every <= total and cfg.metrics_every <= total
    assert all(step < total for step in cfg.get("reset_at_steps") or [])
    if cfg.eval_protocol == "vector_steps":
        assert cfg.eval_steps <= total
