"""The guard that keeps `agent.compile=graph` correct: a captured CUDA graph reads fixed addresses, so every reset,
regulariser and checkpoint load must either write into the agent's existing tensors or make the agent drop its
capture. This walks every reset config in configs/reset/ (and the optimizer policies, regularisers, a checkpoint
load and plasticity injection) on the real DQN and SAC agents, on the CPU: the capture bookkeeping
(agents/graphed.py) runs in every mode, only the capture itself needs CUDA.

The tensors are found by an independent walk of the agent's attributes (modules, optimizers, tensors and dicts of
them), not by the agent's own list, so a state tensor the agent forgets to fingerprint fails here too.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import REPO, box_spaces, compose_cfg
from torch import nn

from agents.dqn import DQNAgent
from agents.graphed import UpdateCapture
from agents.sac import SACAgent
from agents.shared import clear_optimizer_state
from core.config import ConfigError
from core.spaces import Spaces
from fire_rl.build import build_reset
from fire_rl.regularizers import L2Init, Parseval
from fire_rl.resets import CBP, FullReset, ResetStrategy
from fire_rl.resets.base import LayerwiseReset

RESET_CONFIGS = sorted(Path(REPO, "configs", "reset").glob("*.yaml"))


def dqn_agent() -> DQNAgent:
    spaces = Spaces.discrete_actions((10, 10, 10), 6)
    return DQNAgent(spaces, seed=0, network="minatar", learning_starts=0, lr=1e-3, target_update_every=2)


def sac_agent() -> SACAgent:
    return SACAgent(box_spaces(5, 2), seed=0, learning_starts=0, actor_hidden=16, critic_hidden=16)


AGENTS = {"dqn": dqn_agent, "sac": sac_agent}


def batch_for(agent, rng: np.random.Generator, n: int = 16) -> dict[str, np.ndarray]:
    if isinstance(agent, DQNAgent):
        frames = lambda: (rng.random((n, 10, 10, 10)) < 0.2).astype(np.uint8)  # noqa: E731
        actions = rng.integers(0, 6, n)
    else:
        frames = lambda: rng.standard_normal((n, 5)).astype(np.float32)  # noqa: E731
        actions = rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    rewards, terminated = rng.standard_normal(n).astype(np.float32), (rng.random(n) < 0.1).astype(np.float32)
    return {"obs": frames(), "next_obs": frames(), "actions": actions, "rewards": rewards, "terminated": terminated}


def trained(kind: str):
    """An agent after three updates: optimizer state exists and the capture's fingerprint has been taken."""
    agent, rng = AGENTS[kind](), np.random.default_rng(1)
    for step in range(3):
        agent.update(batch_for(agent, rng), step)
    return agent, rng


def addresses(agent) -> dict[str, int]:
    """Storage address of every tensor the agent holds: module parameters and buffers, optimizer state, bare
    tensors and dicts of tensors (theta0), each under a readable name."""
    found: dict[str, int] = {}
    for attr, value in vars(agent).items():
        if attr == "_update_features":  # what an update returns (a graph's static outputs), not state it reads
            continue
        if isinstance(value, nn.Module):
            found.update({f"{attr}.{k}": v.data_ptr() for k, v in value.state_dict(keep_vars=True).items()})
        elif isinstance(value, torch.optim.Optimizer):
            names = {id(p): i for i, g in enumerate(value.param_groups) for i, p in enumerate(g["params"])}
            for param, state in value.state.items():
                for key, tensor in state.items():
                    found[f"{attr}.state[{names.get(id(param))}].{key}"] = tensor.data_ptr()
        elif isinstance(value, torch.Tensor):
            found[attr] = value.data_ptr()
        elif isinstance(value, dict):
            for key, inner in _flatten(value):
                found[f"{attr}.{key}"] = inner.data_ptr()
    return found


def _flatten(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, torch.Tensor):
            yield f"{prefix}{key}", value
        elif isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")


def unguarded_moves(agent, change) -> list[str]:
    """Run `change(agent)`; return the state tensors it moved (rebound, added or dropped) without the agent
    dropping its capture. Empty is what the graph needs."""
    before, generation = addresses(agent), agent.capture.generation
    change(agent)
    after = addresses(agent)
    moved = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return [] if agent.capture.generation > generation else moved


def strategy_from(config: Path, *overrides: str) -> ResetStrategy:
    """The strategy as a run builds it from `+reset=<config>`."""
    return build_reset(compose_cfg([f"+reset={config.stem}", *overrides]))


def apply(strategy: ResetStrategy, rng: np.random.Generator):
    def change(agent) -> None:
        strategy.apply(agent, step=10, sample_batch=lambda: batch_for(agent, rng))

    return change


@pytest.mark.parametrize("kind", AGENTS)
@pytest.mark.parametrize("config", RESET_CONFIGS, ids=lambda p: p.stem)
def test_every_reset_writes_in_place_or_drops_the_capture(kind, config):
    agent, rng = trained(kind)
    strategy = strategy_from(config)
    generation = agent.capture.generation
    assert unguarded_moves(agent, apply(strategy, rng)) == []
    # Only a change of structure costs a new capture; every other reset writes in place.
    assert agent.capture.generation == generation + (config.stem == "plasticity_injection")
    agent.update(batch_for(agent, rng), 11)  # and the agent trains on afterwards
    if isinstance(strategy, LayerwiseReset):
        for policy in ("clear_all", "clear_touched"):
            assert unguarded_moves(agent, apply(strategy_from(config, f"reset.optimizer={policy}"), rng)) == [], policy


@pytest.mark.parametrize("kind", AGENTS)
def test_cbp_replacing_units_writes_in_place(kind):
    agent, rng = trained(kind)
    cbp = CBP(replacement_rate=0.5, maturity=0)
    cbp.resolve(agent)
    before = {k: v.clone() for k, v in agent.networks()[next(iter(agent.networks()))][0].state_dict().items()}

    agent.update(batch_for(agent, rng), 10)
    assert unguarded_moves(agent, lambda agent: cbp.after_update(agent, 10)) == []
    assert cbp.log_values()["cbp/units_replaced"] > 0  # units really were replaced
    assert any(not torch.equal(v, before[k]) for k, v in next(iter(agent.networks().values()))[0].state_dict().items())


@pytest.mark.parametrize("kind", AGENTS)
@pytest.mark.parametrize("regularizer", [L2Init(), Parseval()], ids=lambda r: r.name)
def test_setting_a_regulariser_drops_the_capture(kind, regularizer):
    agent, rng = trained(kind)
    generation = agent.capture.generation
    agent.set_regularizer(regularizer)  # the captured step itself changes: it now adds a penalty
    assert agent.capture.generation == generation + 1
    agent.update(batch_for(agent, rng), 3)
    assert unguarded_moves(agent, apply(FullReset(), rng)) == []


@pytest.mark.parametrize("kind", AGENTS)
def test_loading_a_checkpoint_drops_the_capture(kind):
    agent, _ = trained(kind)
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)

    def load(agent) -> None:
        buffer.seek(0)
        agent.load_state_dict(torch.load(buffer, weights_only=False))

    generation = agent.capture.generation
    assert unguarded_moves(agent, load) == []
    assert agent.capture.generation == generation + 1


def test_the_guard_catches_a_reset_that_rebinds():
    """The check can fail: a reset that rebinds a weight and skips after_reset is reported, naming the tensor; one
    that rebinds and calls after_reset is caught by the fingerprint there (the capture is dropped)."""

    class Rebind(LayerwiseReset):
        calls_after_reset = False

        def transform(self, net_name, layer_name, module, theta0, logs) -> bool:
            module.weight.data = module.weight.data.clone() * 0.5  # rebinding: a graph would not see it
            return True

    agent, rng = trained("dqn")
    moved = unguarded_moves(agent, apply(Rebind(layers=["fc2"]), rng))
    assert moved == ["q.fc2.weight"]
    loud = type("RebindThenSync", (Rebind,), {"calls_after_reset": True})
    assert unguarded_moves(agent, apply(loud(layers=["fc2"]), rng)) == []
    assert agent.capture.reasons[-1] == "a reset moved a state tensor"

    def drop_state(agent) -> None:  # what `optimizer.state.clear()` would do: the graph keeps the old moments
        agent.optimizer.state.clear()

    assert "optimizer.state[0].exp_avg_sq" in unguarded_moves(agent, drop_state)


@pytest.mark.parametrize("name", ["adam", "adamw", "rmsprop_centered"])
def test_clearing_state_in_place_steps_exactly_as_a_fresh_optimizer(name):
    """Oracle: after clear_optimizer_state, steps equal those of a newly built optimizer on the same weights."""
    make = {
        "adam": lambda ps: torch.optim.Adam(ps, lr=1e-2),
        "adamw": lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=0.1),
        "rmsprop_centered": lambda ps: torch.optim.RMSprop(ps, lr=1e-2, alpha=0.95, eps=0.01, centered=True),
    }[name]
    torch.manual_seed(0)
    net = nn.Linear(4, 3)
    x = torch.randn(8, 4)
    used = make(net.parameters())
    for _ in range(3):
        used.zero_grad()
        net(x).pow(2).sum().backward()
        used.step()
    clear_optimizer_state(used)
    twin = copy.deepcopy(net)
    fresh = make(twin.parameters())
    for _ in range(3):
        for model, opt in ((net, used), (twin, fresh)):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
    for a, b in zip(net.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)


def test_graph_is_refused_without_cuda():
    """On a CPU, agent.compile=graph is refused in one line naming the device and what runs there."""
    refusal = r"agent.compile=graph .* needs device=cuda, got device=cpu; valid choices on this device: auto, none"
    with pytest.raises(ConfigError, match=refusal):
        DQNAgent(Spaces.discrete_actions((10, 10, 10), 6), network="minatar", compile="graph")
    with pytest.raises(ConfigError, match=refusal):
        SACAgent(box_spaces(5, 2), compile="graph")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="needs CUDA"):
            UpdateCapture(lambda inputs: inputs, lambda: [], graphed=True)


def test_a_checkpoint_of_a_graphed_run_loads_into_an_eager_one():
    """A graphed run's optimizer is capturable; its checkpoint resumed eagerly on a CPU must step there. Loading
    takes the saved param_groups, flag included, which the CPU refuses; the agent sets the flag to its own mode."""
    agent, rng = trained("dqn")
    state = agent.state_dict()
    for group in state["optimizer"]["param_groups"]:
        group["capturable"] = True  # as agent.compile=graph writes it
    raw = dqn_agent()
    raw.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
    with pytest.raises(AssertionError, match="capturable=True"):
        raw.update(batch_for(raw, rng), 0)
    resumed = dqn_agent()
    resumed.load_state_dict(state)
    assert resumed.optimizer.param_groups[0]["capturable"] is False
    resumed.update(batch_for(resumed, rng), 3)
