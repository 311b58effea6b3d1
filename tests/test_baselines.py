"""Continual backprop, L2-init and Parseval against hand computations on constructed networks, and tiny real runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY, compose_cfg, run_train
from torch import nn

from agents.protocol import ResetDefaults
from core.config import ConfigError
from fire_rl.build import build_components
from fire_rl.regularizers import L2Init, Parseval
from fire_rl.resets import CBP


class TwoLayerAgent:
    """fc1 (3 -> 4 units) -> fc2 (4 -> 2); its 'update' features are whatever the test sets."""

    reset_defaults = ResetDefaults(head_to_theta0=True, optimizer="keep")

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.net = nn.Sequential()
        self.net.fc1, self.net.fc2 = nn.Linear(3, 4), nn.Linear(4, 2)
        self.theta0 = {k: v.clone() for k, v in self.net.state_dict().items()}
        self.adam = torch.optim.Adam(self.net.parameters(), lr=0.1)
        self.net(torch.randn(5, 3)).sum().backward()  # gradients and one Adam step: moments to check
        self.adam.step()
        with torch.no_grad():
            self.net.fc2.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 3.0], [1.0, 1.0, -0.5, 1.0]]))
        self.acts = torch.tensor([[1.0, 0.5, 2.0, 0.1], [-1.0, 0.5, 2.0, 0.3]])  # mean |h| = [1, 0.5, 2, 0.2]

    def networks(self):
        return {"q": (self.net, self.adam)}

    def initial_params(self):
        return {"q": self.theta0}

    def after_reset(self) -> None:
        raise AssertionError("CBP keeps the function; it must not re-sync anything")

    def unit_graph(self):
        return {"q": {"fc1": ("fc1", ("fc2",))}}

    @property
    def update_features(self):
        return {"q": {"fc1": self.acts}}

    def fresh_params(self, draw: int):
        return {"q": {k: torch.full_like(v, 7.0 + draw) for k, v in self.theta0.items()}}


# sum |fc2 column| per fc1 unit: [2, 3, 1, 4]; times mean |h| [1, 0.5, 2, 0.2] -> contributions [2, 1.5, 2, 0.8]
CONTRIBUTION = torch.tensor([2.0, 1.5, 2.0, 0.8], dtype=torch.float64)


def test_cbp_utility_is_the_running_contribution():
    agent, cbp = TwoLayerAgent(), CBP(replacement_rate=0.0, decay=0.9)
    cbp.after_update(agent, step=1)
    torch.testing.assert_close(cbp.state["q/fc1"]["utility"], 0.1 * CONTRIBUTION)
    cbp.after_update(agent, step=2)
    torch.testing.assert_close(cbp.state["q/fc1"]["utility"], (0.9 * 0.1 + 0.1) * CONTRIBUTION)
    assert cbp.state["q/fc1"]["age"].tolist() == [2, 2, 2, 2]


def test_cbp_replaces_the_weakest_mature_unit_and_never_an_immature_one():
    agent, cbp = TwoLayerAgent(), CBP(replacement_rate=0.5, maturity=10, decay=0.9)
    cbp.rate = 0.0
    cbp.after_update(agent, step=1)  # creates the per-unit state without replacing
    slot = cbp.state["q/fc1"]
    slot["age"] = torch.tensor([50, 50, 50, 3])  # unit 3 has the smallest utility but is immature
    cbp.rate = 0.5  # 3 mature units x 0.5 = 1.5: one now, 0.5 carried
    before = {k: v.clone() for k, v in agent.net.state_dict().items()}
    moments = {k: v.clone() for k, v in agent.adam.state[agent.net.fc2.weight].items()}
    cbp.after_update(agent, step=2)
    # Utilities (bias-corrected, same ages): unit 1 (1.5) is the smallest among the mature units 0, 1, 2.
    assert slot["total"] == 1 and slot["carry"] == pytest.approx(0.5)
    assert torch.equal(agent.net.fc1.weight[1], torch.full((3,), 7.0)) and agent.net.fc1.bias[1] == 7.0
    assert torch.all(agent.net.fc2.weight[:, 1] == 0)
    for unit in (0, 2, 3):
        assert torch.equal(agent.net.fc1.weight[unit], before["fc1.weight"][unit])
        assert torch.equal(agent.net.fc2.weight[:, unit], before["fc2.weight"][:, unit])
    assert slot["age"][1] == 0 and slot["utility"][1] == 0
    for key in ("exp_avg", "exp_avg_sq"):  # moments of the replaced entries zeroed, the others kept
        state = agent.adam.state[agent.net.fc2.weight][key]
        assert torch.all(state[:, 1] == 0) and torch.equal(state[:, [0, 2, 3]], moments[key][:, [0, 2, 3]])
        assert torch.all(agent.adam.state[agent.net.fc1.weight][key][1] == 0)


def test_cbp_replacement_count_follows_the_rate():
    agent, cbp = TwoLayerAgent(), CBP(replacement_rate=0.01, maturity=0)
    for step in range(1, 1001):
        cbp.after_update(agent, step)
    # 4 mature units x 0.01 per update = 0.04 per update; every replaced unit is young until its next update.
    assert abs(cbp.state["q/fc1"]["total"] - 0.04 * 1000) <= 1
    values = cbp.log_values()
    assert (
        values["cbp/units_replaced_total"] == cbp.state["q/fc1"]["total"]
        and cbp.log_values()["cbp/units_replaced"] == 0
    )


def test_cbp_defaults_are_the_loss_of_plasticity_ones_and_refusals_name_both():
    cbp = CBP()
    assert (cbp.rate, cbp.maturity, cbp.decay) == (1e-4, 10_000, 0.99)
    with pytest.raises(ValueError, match="replacement_rate"):
        CBP(replacement_rate=2.0)
    cfg = compose_cfg(["+experiment=halfcheetah_gravity", "agent=sac_simba", "+reset=cbp"])
    with pytest.raises(ConfigError, match="CBP found no hidden layer.*SimBa's residual blocks"):
        build_components(cfg, None)


# --- regularisers --------------------------------------------------------------------------------------------------


def test_l2_init_penalty_and_gradient_by_hand():
    net = nn.Linear(2, 2)
    theta0 = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        net.weight.add_(torch.tensor([[1.0, -2.0], [0.0, 3.0]]))
        net.bias.add_(torch.tensor([0.5, 0.0]))
    penalty = L2Init(coef=0.1).penalty(net, theta0)
    assert float(penalty.detach()) == pytest.approx(0.05 * (1 + 4 + 9 + 0.25))
    penalty.backward()
    torch.testing.assert_close(net.weight.grad, 0.1 * torch.tensor([[1.0, -2.0], [0.0, 3.0]]))
    torch.testing.assert_close(net.bias.grad, torch.tensor([0.05, 0.0]))


def test_parseval_penalty_and_gradient_by_hand():
    conv = nn.Conv2d(1, 2, (1, 2), bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 1.0]]], [[[0.0, 2.0]]]]))  # W (2 x 2) = [[1, 1], [0, 2]]
    w = torch.tensor([[1.0, 1.0], [0.0, 2.0]])
    residual = w @ w.T - torch.eye(2)  # [[1, 2], [2, 3]]
    penalty = Parseval(coef=0.01).penalty(conv, {})
    assert float(penalty.detach()) == pytest.approx(0.01 * (1 + 4 + 4 + 9))
    penalty.backward()
    # d/dW ||W W^T - I||^2 = 4 (W W^T - I) W for the symmetric residual
    torch.testing.assert_close(conv.weight.grad.reshape(2, 2), 0.01 * 4 * residual @ w)
    frozen = nn.Linear(3, 3, bias=False).requires_grad_(False)  # frozen layers (an injected head) are left out
    assert float(Parseval(1.0).penalty(frozen, {})) == 0.0 and float(L2Init(1.0).penalty(frozen, {})) == 0.0


def test_a_regularizer_needs_a_known_name_and_a_valid_coefficient(tmp_path):
    with pytest.raises(ConfigError, match="coef must be >= 0"):
        build_components(compose_cfg(["+regularizer=l2_init", "regularizer.coef=-1"]), tmp_path)


# --- tiny real runs ---------------------------------------------------------------------------------------------------


def rows(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_tiny_real_run_with_cbp_counts_replacements(tmp_path):
    args = ("+reset=cbp", "reset.maturity=10", "reset.replacement_rate=0.01", *TINY, f"hydra.run.dir={tmp_path}")
    result = run_train(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    train = [r for r in rows(tmp_path) if r["event"] == "train"]
    assert train[-1]["cbp/units_replaced_total"] > 0 and "cbp/q/fc1/units_replaced" in train[-1]
    assert not any(r["event"] == "reset" for r in rows(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("regularizer", ["l2_init", "parseval"])
def test_tiny_real_runs_with_each_regularizer_log_it(regularizer, tmp_path):
    result = run_train(f"+regularizer={regularizer}", "+reset=fire", *TINY, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    values = [r[f"losses/{regularizer}/q"] for r in rows(tmp_path) if r["event"] == "train"]
    assert values[0] is None and all(math.isfinite(v) and v > 0 for v in values[1:])
    resolved = json.loads((tmp_path / "resolved.json").read_text())
    assert resolved["regularizer"]["name"] == regularizer and resolved["regularizer"]["coef"] == 1e-3


def test_sac_mlp_takes_cbp_and_redo_on_both_heads(tmp_path):
    cfg = compose_cfg(["+experiment=halfcheetah_gravity", "+reset=cbp"])
    run = build_components(cfg, tmp_path)
    graph = run.agent.unit_graph()
    assert graph["actor"]["fc2"] == ("encoder.layers.fc2", ("mean", "log_std"))
    assert graph["critic"]["q2.fc2"] == ("q2.encoder.layers.fc2", ("q2.out",))
    batch = {
        "obs": np.random.default_rng(0).standard_normal((8, 17)).astype(np.float32),
        "actions": np.zeros((8, 6), dtype=np.float32),
        "rewards": np.ones(8, dtype=np.float32),
        "next_obs": np.zeros((8, 17), dtype=np.float32),
        "terminated": np.zeros(8, dtype=np.float32),
    }
    run.agent.update(batch, step=1)
    assert set(run.agent.update_features["critic"]) == {"q1.fc1", "q1.fc2", "q2.fc1", "q2.fc2"}
    run.reset.after_update(run.agent, step=1)
    assert set(run.reset.state) == {f"actor/encoder.layers.fc{i}" for i in (1, 2)} | {
        f"critic/{q}.encoder.layers.fc{i}" for q in ("q1", "q2") for i in (1, 2)
    }
