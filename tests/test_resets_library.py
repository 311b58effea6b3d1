"""The reset library: DASH, ReDo, plasticity injection, exact FIRE, layer/optimizer policies, and the full sweep."""

from __future__ import annotations

import copy
import io
import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY, atari_spaces, fresh_state, run_train
from omegaconf import OmegaConf
from torch import nn

from agents.dqn import DQNAgent
from agents.protocol import ResetDefaults
from fire_rl.metrics import plasticity_metrics
from fire_rl.resets import DASH, FIRE, FullReset, PlasticityInjection, ReDo, ShrinkPerturb, dash_scale
from fire_rl.resets.base import CapabilityError
from fire_rl.resets.isometry import (
    deviation_from_isometry,
    fire_project,
    fire_scale,
    isometry_sv_min,
    raw_deviation_from_isometry,
)


def adam_snapshot(opt: torch.optim.Optimizer) -> dict:
    return {p: {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}


def params_of(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


# ---------------------------------------------------------------- DASH against a hand-computed example
class LinearLossNet(nn.Module):
    """fc: Linear(2, 3) and conv: Conv2d(2, 1, (1, 2)), with hand-set weights."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)
        self.conv = nn.Conv2d(2, 1, (1, 2))
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]]))
            self.fc.bias.copy_(torch.tensor([1.0, 0.0, 0.0]))
            self.conv.weight.copy_(torch.tensor([[[[3.0, 4.0]], [[1.0, 0.0]]]]))
            self.conv.bias.fill_(2.0)


class LinearLossAgent:
    """Its loss is sum(C * theta) with C carried by the batch, so the gradient is exactly C."""

    reset_defaults = ResetDefaults(head_to_theta0=False, optimizer="keep")

    def __init__(self) -> None:
        self.net = LinearLossNet()
        self.theta0 = {"q": params_of(self.net)}
        self.adam = torch.optim.Adam(self.net.parameters(), lr=0.1)
        self.losses(self.batch(0)).get("q").backward()
        self.adam.step()  # some optimizer state that DASH must leave alone
        self.net.load_state_dict(self.theta0["q"])
        self.adam.zero_grad(set_to_none=True)

    @staticmethod
    def batch(k: int) -> dict:
        """Negative gradients d1 (k=0) and d2 (k=1); with alpha=0.5 the EMA is 0.25 d1 + 0.5 d2."""
        d = {
            "fc.weight": [[[4.0, 0.0], [-2.0, 0.0], [0.0, 6.0]], [[0.0, 2.0], [-1.0, 0.0], [0.0, 0.0]]][k],
            "fc.bias": [[4.0, 0.0, 0.0], [0.0, 2.0, 0.0]][k],
            "conv.weight": [[[[[16.0, 0.0]], [[0.0, 4.0]]]], [[[[0.0, 6.0]], [[0.0, 0.0]]]]][k],
            "conv.bias": [[-4.0], [0.0]][k],
        }
        return {key: -torch.tensor(v) for key, v in d.items()}  # C = -d

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        return {"q": sum((batch[k] * p).sum() for k, p in self.net.named_parameters())}

    def networks(self) -> dict:
        return {"q": (self.net, self.adam)}

    def initial_params(self) -> dict:
        return self.theta0

    def after_reset(self) -> None:
        pass


def test_dash_matches_hand_computed_scales() -> None:
    agent = LinearLossAgent()
    draws = iter([agent.batch(0), agent.batch(1)])
    snap = adam_snapshot(agent.adam)
    logs = DASH(alpha=0.5, lam=0.05, num_batches=2).apply(agent, step=0, sample_batch=lambda: next(draws)).logs
    # EMA g = 0.25 d1 + 0.5 d2: fc rows [1, 1], [-1, 0], [0, 1.5]; fc bias [1, 1, 0];
    # conv kernels (out0, in0) [4, 3], (out0, in1) [0, 1]; conv bias [-1].
    r = 1 / math.sqrt(2)
    # cosines by hand: row0 [1,0].[1,1] -> 1/sqrt2; row1 [1,1].[-1,0] -> -1/sqrt2 -> floor 0.05; row2 -> 1
    expected_fc = torch.tensor([[r, 0.0], [0.05, 0.05], [0.0, 2.0]])
    torch.testing.assert_close(agent.net.fc.weight.detach(), expected_fc)
    torch.testing.assert_close(agent.net.fc.bias.detach(), torch.tensor([r, 0.0, 0.0]))  # cos([1,0,0],[1,1,0])
    # kernel [3, 4] vs [4, 3]: 24/25; kernel [1, 0] vs [0, 1]: 0 -> 0.05; bias 2 vs -1: -1 -> 0.05
    expected_conv = torch.tensor([[[[3 * 0.96, 4 * 0.96]], [[0.05, 0.0]]]])
    torch.testing.assert_close(agent.net.conv.weight.detach(), expected_conv)
    torch.testing.assert_close(agent.net.conv.bias.detach(), torch.tensor([0.1]))
    assert logs["reset/q/fc/scale_mean"] == pytest.approx((r + 0.05 + 1.0) / 3)
    # No optimizer step and no .grad left behind: training state is untouched except the weights.
    assert all(p.grad is None for p in agent.net.parameters())
    for p, state in snap.items():
        assert all(torch.equal(agent.adam.state[p][k], v) for k, v in state.items())


def test_dash_scale_rules() -> None:
    w = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert torch.equal(dash_scale(w, w, 0.05), torch.ones(2, 1))
    assert torch.equal(dash_scale(w, -w, 0.05), torch.full((2, 1), 0.05))
    assert torch.equal(dash_scale(w, torch.zeros(2, 2), 0.3), torch.full((2, 1), 0.3))  # zero gradient -> floor
    assert dash_scale(torch.ones(4, 3, 2, 2), torch.ones(4, 3, 2, 2), 0.1).shape == (4, 3, 1, 1)


def test_dash_needs_replay_batches_and_a_loss() -> None:
    with pytest.raises(ValueError, match="replay batches"):
        DASH().apply(LinearLossAgent(), step=0)
    with pytest.raises(ValueError, match="alpha"):
        DASH(alpha=0.0)


# ---------------------------------------------------------------- ReDo on constructed dormant units
class ChainNet(nn.Module):
    """conv1 (2->4) -> conv2 (4->3) -> flatten (3x2x2) -> fc1 (12->5) -> fc2 (5->2); positive weights, so live."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(2, 4, 2), nn.Conv2d(4, 3, 2)
        self.fc1, self.fc2 = nn.Linear(12, 5), nn.Linear(5, 2)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for m in (self.conv1, self.conv2, self.fc1, self.fc2):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.9 + 0.1)
                m.bias.zero_()

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = {"conv1": torch.relu(self.conv1(x))}
        out["conv2"] = torch.relu(self.conv2(out["conv1"]))
        out["fc1"] = torch.relu(self.fc1(out["conv2"].flatten(1)))
        out["q"] = self.fc2(out["fc1"])
        return out


DORMANT = {"conv1": 1, "conv2": 2, "fc1": 3}  # the unit made dormant in each hidden layer


class ChainAgent:
    """Trained a few Adam steps, then one unit per hidden layer silenced (zero weights, bias -1)."""

    reset_defaults = ResetDefaults(head_to_theta0=True, optimizer="keep")

    def __init__(self) -> None:
        self.net = ChainNet()
        self.theta0 = {"q": params_of(self.net)}
        self.target = copy.deepcopy(self.net)
        self.adam = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        for _ in range(3):
            self.net.features(self.obs())["q"].pow(2).mean().backward()
            self.adam.step()
        with torch.no_grad():
            for layer, unit in DORMANT.items():
                getattr(self.net, layer).weight[unit] = 0.0
                getattr(self.net, layer).bias[unit] = -1.0

    @staticmethod
    def obs(n: int = 16) -> torch.Tensor:
        return torch.rand(n, 2, 4, 4, generator=torch.Generator().manual_seed(n)) + 0.1

    def probe(self, obs) -> dict:
        feats = self.net.features(torch.as_tensor(obs))
        feats.pop("q")
        return {"q": (feats, {})}

    def unit_graph(self) -> dict:
        return {"q": {"conv1": ("conv1", ("conv2",)), "conv2": ("conv2", ("fc1",)), "fc1": ("fc1", ("fc2",))}}

    def fresh_params(self, draw: int) -> dict:
        torch.manual_seed(1000 + draw)
        return {"q": {k: torch.randn_like(v) for k, v in self.theta0["q"].items()}}

    def networks(self) -> dict:
        return {"q": (self.net, self.adam)}

    def initial_params(self) -> dict:
        return self.theta0

    def after_reset(self) -> None:
        raise AssertionError("ReDo keeps the function, so it must not re-sync the target")


def touched_mask(p: torch.Tensor, layer: str, key: str, outgoing: dict) -> torch.Tensor:
    """Entries ReDo recycles: the dormant unit's row (and bias entry), and the columns of the previous dormant unit."""
    mask = torch.zeros_like(p, dtype=torch.bool)
    if layer in DORMANT:
        mask[DORMANT[layer]] = True
    if key == "weight" and layer in outgoing:
        mask[outgoing[layer]] = True
    return mask


def assert_moments_zeroed_exactly(state: dict, old: dict, mask: torch.Tensor) -> None:
    assert torch.equal(state["step"], old["step"])  # step counts are kept
    for key in ("exp_avg", "exp_avg_sq"):
        assert torch.all(state[key][mask] == 0) and torch.equal(state[key][~mask], old[key][~mask]), key


def test_redo_resets_exactly_the_dormant_units() -> None:
    agent = ChainAgent()
    before, snap, obs = params_of(agent.net), adam_snapshot(agent.adam), agent.obs()
    q_before = agent.net.features(obs)["q"].detach()
    fresh = agent.fresh_params(500)["q"]
    strategy = ReDo(num_batches=2)
    report = strategy.apply(agent, step=500, sample_batch=lambda: {"obs": agent.obs().numpy()})
    after, logs = params_of(agent.net), report.logs
    assert logs["reset/units_reset"] == 3
    assert all(logs[f"reset/q/{layer}/units_reset"] == 1 for layer in DORMANT)
    assert report.touched == ["q/conv1", "q/conv2", "q/fc1", "q/fc2"]
    # Outgoing columns of each dormant unit: conv1 ch1 -> conv2[:, 1]; conv2 ch2 -> fc1 cols 8..11; fc1 unit 3 -> fc2.
    outgoing = {"conv2": (slice(None), 1), "fc1": (slice(None), slice(8, 12)), "fc2": (slice(None), 3)}
    for layer in ("conv1", "conv2", "fc1", "fc2"):
        w, expected = after[f"{layer}.weight"], before[f"{layer}.weight"].clone()
        b, expected_b = after[f"{layer}.bias"], before[f"{layer}.bias"].clone()
        if layer in DORMANT:
            expected[DORMANT[layer]] = fresh[f"{layer}.weight"][DORMANT[layer]]
            expected_b[DORMANT[layer]] = fresh[f"{layer}.bias"][DORMANT[layer]]
        if layer in outgoing:
            expected[outgoing[layer]] = 0.0
        assert torch.equal(w, expected), layer
        assert torch.equal(b, expected_b), layer
        for key, p in (("weight", getattr(agent.net, layer).weight), ("bias", getattr(agent.net, layer).bias)):
            assert_moments_zeroed_exactly(agent.adam.state[p], snap[p], touched_mask(p, layer, key, outgoing))
    # Fresh incoming weights with zero outgoing weights: the network computes exactly what it did.
    torch.testing.assert_close(agent.net.features(obs)["q"].detach(), q_before)


def test_redo_with_nothing_dormant_changes_nothing() -> None:
    agent = ChainAgent()
    before = params_of(agent.net)
    logs = ReDo(tau=0.0, layers=["fc*"]).apply(agent, 0, sample_batch=lambda: {"obs": agent.obs().numpy()}).logs
    # Only fc1 is a selected hidden layer; its unit 3 is exactly dormant (score 0), conv units are not looked at.
    assert logs["reset/units_reset"] == 1 and "reset/q/conv1/units_reset" not in logs
    assert torch.equal(params_of(agent.net)["conv2.weight"], before["conv2.weight"])


def test_redo_refuses_an_agent_without_fresh_params() -> None:
    with pytest.raises(CapabilityError, match=r"ReDo needs the agent capability FreshInit.*LinearLossAgent"):
        ReDo().resolve(LinearLossAgent())


def test_redo_defaults_follow_the_paper() -> None:
    strategy = ReDo()
    assert (strategy.tau, strategy.schedule.at_switch, strategy.schedule.every_steps) == (0.1, False, 1000)
    assert not strategy.due(0, 4, switched=True) and strategy.due(996, 1000, switched=False)


# ---------------------------------------------------------------- plasticity injection on the real DQN agent
def dqn_batch(n: int = 16, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "obs": rng.integers(0, 256, (n, 4, 84, 84), dtype=np.uint8),
        "next_obs": rng.integers(0, 256, (n, 4, 84, 84), dtype=np.uint8),
        "actions": rng.integers(0, 6, n),
        "rewards": rng.standard_normal(n).astype(np.float32),
        "terminated": (rng.random(n) < 0.2).astype(np.float32),
    }


def trained_dqn(updates: int = 3) -> DQNAgent:
    agent = DQNAgent(atari_spaces(6), lr=1e-3, learning_starts=0)
    for i in range(updates):
        agent.update(dqn_batch(seed=i), step=i)
    return agent


def test_injection_keeps_output_and_trains_only_the_new_head_and_encoder() -> None:
    agent, batch = trained_dqn(), dqn_batch(seed=9)
    obs, next_obs = (torch.as_tensor(batch[k]) for k in ("obs", "next_obs"))
    q_before, target_before = agent.q(obs).detach(), agent.target(next_obs).detach()
    logs = PlasticityInjection().apply(agent, step=100, sample_batch=lambda: batch).logs
    assert torch.equal(agent.q(obs), q_before) and torch.equal(agent.target(next_obs), target_before)
    assert logs["reset/injected"] == 1 and logs["reset/loss_change"] == 0.0
    assert logs["reset/q/fc1/sfe_normalised"] == pytest.approx(1.0) and "reset/q/fc2/dfi_before" in logs
    for name in ("fc1", "fc2"):  # the new head and its frozen copy start at theta0
        assert torch.equal(agent.q.get_submodule(name).weight, agent.theta0[f"{name}.weight"])
        assert torch.equal(agent.q.head_ref[name].weight, agent.theta0[f"{name}.weight"])
    trainable = {n for n, p in agent.q.named_parameters() if p.requires_grad}
    assert trainable == {f"{m}.{k}" for m in ("conv1", "conv2", "conv3", "fc1", "fc2") for k in ("weight", "bias")}
    opt_params = {id(p) for g in agent.optimizer.param_groups for p in g["params"]}
    assert opt_params == {id(p) for p in agent.q.parameters() if p.requires_grad} and not agent.optimizer.state
    frozen = {k: v.clone() for k, v in agent.q.state_dict().items() if k.startswith("head_")}
    moving = params_of(agent.q)
    for i in range(3):
        agent.update(dqn_batch(seed=20 + i), step=101 + i)
    now = agent.q.state_dict()
    assert all(torch.equal(now[k], v) for k, v in frozen.items())
    assert not torch.equal(now["fc1.weight"], moving["fc1.weight"])
    assert not torch.equal(now["conv1.weight"], moving["conv1.weight"])  # encoder shared and still trainable


def test_injection_once_probe_metrics_and_checkpoint_round_trip() -> None:
    agent, strategy = trained_dqn(), PlasticityInjection()
    strategy.apply(agent, step=100)
    again = strategy.apply(agent, step=200)
    assert again.logs["reset/skipped"] == 1 and again.logs["reset/layers_touched"] == 0 and again.touched == []
    agent.update(dqn_batch(seed=5), step=201)
    acts, weights = agent.probe(dqn_batch()["obs"])["q"]
    assert set(acts) == {"conv1", "conv2", "conv3", "fc1"}
    assert math.isfinite(plasticity_metrics("q", acts, weights)["plasticity/q/dormant_0.1/all"])
    clone = DQNAgent(atari_spaces(6), lr=1e-3)
    buffer = io.BytesIO()  # through bytes, as a checkpoint file: an in-memory state_dict shares Adam's tensors
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    clone.load_state_dict(torch.load(buffer, weights_only=False))
    obs = torch.as_tensor(dqn_batch()["obs"])
    assert clone.injected and torch.equal(clone.q(obs), agent.q(obs))
    clone.update(dqn_batch(seed=6), step=202)
    agent.update(dqn_batch(seed=6), step=202)
    assert torch.equal(clone.q(obs), agent.q(obs))  # the optimizer state came back too


def test_injection_refuses_an_agent_without_it() -> None:
    with pytest.raises(CapabilityError, match="PlasticityInjection needs the agent capability PlasticityInjectable"):
        PlasticityInjection().resolve(ChainAgent())


# ---------------------------------------------------------------- FIRE options
def polar_oracle(W: np.ndarray) -> np.ndarray:
    """U V^T per kernel position, by numpy SVD, times FIRE's scale."""
    out = np.zeros_like(W)
    for i, j in np.ndindex(W.shape[2], W.shape[3]):
        u, _, vt = np.linalg.svd(W[:, :, i, j], full_matrices=False)
        out[:, :, i, j] = u @ vt
    return out * fire_scale(W.shape)


@pytest.mark.parametrize("shape", [(32, 4, 8, 8), (64, 32, 4, 4), (64, 64, 3, 3)])
def test_exact_fire_is_the_svd_polar_factor(shape: tuple[int, ...]) -> None:
    W = np.random.default_rng(3).standard_normal(shape)
    for dtype in (torch.float64, torch.float32):
        out = fire_project(torch.from_numpy(W).to(dtype), method="exact").double().numpy()
        np.testing.assert_allclose(out, polar_oracle(W), atol=1e-5)
    assert deviation_from_isometry(fire_project(torch.from_numpy(W), method="exact")) < 1e-8


def test_exact_mode_on_an_agent_reports_isometry_and_paper_mode_does_not() -> None:
    decay = torch.diag(torch.exp(-6 * torch.linspace(0, 1, 64)))
    U, _ = torch.linalg.qr(torch.randn(64, 64, generator=torch.Generator().manual_seed(1)))
    ill = (U @ decay @ U.T).reshape(64, 64, 1, 1).repeat(1, 1, 3, 3)  # condition number ~400 per position
    logs = {}
    for method in ("newton_schulz", "exact"):
        agent = trained_dqn(1)
        with torch.no_grad():
            agent.q.conv3.weight.copy_(ill)
        logs[method] = FIRE(method=method).apply(agent, step=0).logs
        assert logs[method]["reset/q/conv3/dfi_before"] > 0
    assert logs["exact"]["reset/q/conv3/dfi_after"] < 1e-6
    assert logs["exact"]["reset/fire/sv_min"] == pytest.approx(1.0, abs=1e-5)
    assert logs["newton_schulz"]["reset/q/conv3/sv_min"] < 0.5  # 10 cubic steps did not converge, and it shows
    assert logs["newton_schulz"]["reset/q/conv3/dfi_after"] > 1.0
    assert isometry_sv_min(fire_project(ill, iters=60)) == pytest.approx(1.0, abs=1e-4)


def test_fire_rejects_unknown_method() -> None:
    with pytest.raises(ValueError, match=r"'svd'.*newton_schulz.*exact"):
        FIRE(method="svd")


# ---------------------------------------------------------------- layer and optimizer policies
def changed_layers(before: dict, net: nn.Module) -> set[str]:
    after = params_of(net)
    return {k.rsplit(".", 1)[0] for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize(
    "kwargs, expected",
    [
        ({"layer_types": ["conv"]}, {"conv1", "conv2", "conv3"}),
        ({"layer_types": "linear"}, {"fc1", "fc2"}),
        ({"layer_types": ["linear"], "layers": ["fc2"]}, {"fc2"}),
        ({"layers": ["conv[12]", "fc1"]}, {"conv1", "conv2", "fc1"}),
        ({"layer_types": ["conv", "linear"]}, {"conv1", "conv2", "conv3", "fc1", "fc2"}),
    ],
)
def test_layer_selection_touches_exactly_what_it_names(kwargs: dict, expected: set[str]) -> None:
    agent = trained_dqn(2)
    before = params_of(agent.q)
    strategy = ShrinkPerturb(c=0.5, **kwargs)
    report = strategy.apply(agent, step=0)
    logs = report.logs
    assert changed_layers(before, agent.q) == expected
    assert report.touched == [f"q/{n}" for n in ("conv1", "conv2", "conv3", "fc1", "fc2") if n in expected]
    assert {k.split("/")[2] for k in logs if k.startswith("reset/q/")} == expected


def test_fire_on_encoder_only_is_configuration() -> None:
    agent = trained_dqn(2)
    before = params_of(agent.q)
    FIRE(policy="project_all", layer_types=["conv"]).apply(agent, step=0)
    assert changed_layers(before, agent.q) == {"conv1", "conv2", "conv3"}
    assert torch.equal(agent.q.conv2.weight, fire_project(before["conv2.weight"]))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"layer_types": ["attention"]}, r"'attention'.*conv.*linear"),
        ({"layer_types": ["conv"], "layers": ["fc*"]}, r"\['fc\*'\] match no layer of layer_types \['conv'\]"),
    ],
)
def test_bad_layer_selectors_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FullReset(**kwargs).select_layers(trained_dqn(0))


@pytest.mark.parametrize("default, cleared", [("keep", False), ("clear_all", True)])
def test_optimizer_agent_defers_to_the_agents_default(default: str, cleared: bool) -> None:
    agent = trained_dqn(2)
    agent.reset_defaults = ResetDefaults(head_to_theta0=True, optimizer=default)  # SAC's paper default: clear_all
    snap = adam_snapshot(agent.optimizer)
    FullReset(optimizer="agent").apply(agent, step=0)
    if cleared:
        assert all(fresh_state(agent.optimizer, p) for p in agent.q.parameters())
    else:
        assert all(torch.equal(agent.optimizer.state[p]["exp_avg"], s["exp_avg"]) for p, s in snap.items())
    assert FullReset().optimizer == "agent" and DQNAgent(atari_spaces(6)).reset_defaults.optimizer == "keep"


def test_clear_touched_clears_exactly_the_touched_parameters() -> None:
    agent = trained_dqn(2)
    snap = adam_snapshot(agent.optimizer)
    FullReset(optimizer="clear_touched", layer_types=["linear"]).apply(agent, step=0)
    for name, p in agent.q.named_parameters():
        if name.startswith("fc"):
            assert fresh_state(agent.optimizer, p), name
        else:
            assert torch.equal(agent.optimizer.state[p]["exp_avg_sq"], snap[p]["exp_avg_sq"]), name


@pytest.mark.parametrize(
    "strategy",
    [FullReset(), ShrinkPerturb(), FIRE(), FIRE(method="exact"), DASH(num_batches=1), ReDo(tau=0.5, num_batches=1)],
    ids=["full", "shrink_perturb", "fire", "fire_exact", "dash", "redo"],
)
def test_every_strategy_logs_sfe_and_dfi_before_and_after(strategy) -> None:
    agent = trained_dqn(2)
    report = strategy.apply(agent, step=7, sample_batch=lambda: dqn_batch(seed=3))
    logs = report.logs
    assert report.touched, "a reset on a trained net should touch something"
    for layer in report.touched:
        for key in ("sfe", "sfe_normalised", "dfi_before", "dfi_after"):
            assert math.isfinite(logs[f"reset/{layer}/{key}"]), (layer, key)
    assert {"reset/sfe_total", "reset/layers_touched", "reset/step", "reset/wall_time_s"} <= set(logs)
    assert all(isinstance(v, float) for v in logs.values())


def test_dqn_fresh_params_are_reproducible_and_leave_the_rng_alone() -> None:
    agent = DQNAgent(atari_spaces(6), seed=3)
    torch.manual_seed(42)
    expected_next = torch.rand(1)
    torch.manual_seed(42)
    first = agent.fresh_params(10)["q"]
    assert torch.equal(torch.rand(1), expected_next)
    assert torch.equal(first["fc1.weight"], agent.fresh_params(10)["q"]["fc1.weight"])
    assert not torch.equal(first["fc1.weight"], agent.fresh_params(11)["q"]["fc1.weight"])
    assert set(first) == set(agent.theta0) and torch.all(first["conv2.bias"] == 0)


# ---------------------------------------------------------------- every strategy end to end on real Atari games
STRATEGIES = ("none", "full", "shrink_perturb", "fire", "dash", "redo", "plasticity_injection")
SWEEP_STEPS = ["env.tasks.0.steps=350", "env.tasks.1.steps=350", "env.tasks.2.steps=350"]  # 1,050: ReDo's 1,000


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> dict[str, list[dict]]:
    """One `-m +reset=<all seven>` sweep on three real ALE games; returns each strategy's metrics rows."""
    out = tmp_path_factory.mktemp("sweep")
    result = run_train(
        "-m", f"+reset={','.join(STRATEGIES)}", *TINY, *SWEEP_STEPS, f"hydra.sweep.dir={out}", timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    runs = {}
    for metrics in out.glob("*/metrics.jsonl"):
        name = OmegaConf.load(metrics.parent / "config.yaml").reset.name
        runs[name] = [json.loads(line) for line in metrics.read_text().splitlines()]
    return runs


def resets(rows: list[dict]) -> list[dict]:
    return [row for row in rows if row["event"] == "reset"]


@pytest.mark.slow
def test_sweep_runs_every_strategy(sweep) -> None:
    assert sorted(sweep) == sorted(STRATEGIES)
    assert resets(sweep["none"]) == []
    for name in ("full", "shrink_perturb", "fire", "dash"):
        rows = resets(sweep[name])
        assert [row["step"] for row in rows] == [350, 700], name
        assert all(row["reset/layers_touched"] == 5 for row in rows), name
        assert {"reset/q/conv1/dfi_before", "reset/q/conv1/dfi_after", "reset/q/fc1/sfe_normalised"} <= set(rows[0])
    assert {"reset/fire/sv_min", "reset/q/conv3/sv_min"} <= set(resets(sweep["fire"])[0])
    assert "reset/q/fc1/scale_mean" in resets(sweep["dash"])[0]


@pytest.mark.slow
def test_sweep_redo_and_injection_events(sweep) -> None:
    redo = resets(sweep["redo"])
    assert [row["step"] for row in redo] == [1000]  # every 1,000 agent steps, not at switches
    hidden = ("conv1", "conv2", "conv3", "fc1")  # fc2 is the output layer: never recycled, only loses columns
    assert redo[0]["reset/units_reset"] == sum(redo[0][f"reset/q/{n}/units_reset"] for n in hidden)
    assert "reset/q/fc2/units_reset" not in redo[0] and redo[0]["reset/wall_time_s"] > 0
    injection = resets(sweep["plasticity_injection"])
    assert [(row["step"], row["reset/injected"], row["reset/skipped"]) for row in injection] == [
        (350, 1, 0),
        (700, 0, 1),
    ]
    assert injection[0]["layers"] == ["q/fc1", "q/fc2"] and injection[0]["reset/loss_change"] == 0
    later = [row for row in sweep["plasticity_injection"] if row["event"] == "plasticity" and row["step"] > 350]
    assert later and all(row["plasticity/q/dormant_0.1/all"] is not None for row in later)


# ---------------------------------------------------------------- the paper's DfI and the RMS-scale variant
def test_raw_dfi_is_the_papers_definition_on_hand_built_matrices():
    U, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    V, _ = torch.linalg.qr(torch.randn(9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    assert raw_deviation_from_isometry(U[:4, :]) == pytest.approx(0.0, abs=1e-12)  # orthonormal rows
    s = torch.tensor([2.0, 1.0, 0.5, 0.1], dtype=torch.float64)  # a wide (4 x 9) weight with this spectrum
    Q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(3)))
    wide = Q @ torch.diag(s) @ V[:, :4].T
    assert raw_deviation_from_isometry(wide) == pytest.approx(float(((s**2 - 1) ** 2).sum()))
    tall = wide.T  # 9 x 4: W W^T has 5 zero eigenvalues, each adding (0 - 1)^2
    assert raw_deviation_from_isometry(tall) == pytest.approx(float(((s**2 - 1) ** 2).sum()) + 5)
    conv = torch.stack([wide[:, :3], 2 * wide[:, :3]], dim=-1).reshape(4, 3, 1, 2)  # two kernel positions, summed
    expected = sum(raw_deviation_from_isometry(conv[:, :, 0, j]) for j in range(2))
    assert raw_deviation_from_isometry(conv) == pytest.approx(expected)


def test_every_reset_row_logs_both_dfis():
    logs = FIRE().apply(trained_dqn(2), step=0).logs
    for layer in ("conv1", "conv3", "fc1"):
        assert {f"reset/q/{layer}/dfi_{k}" for k in ("before", "after", "raw_before", "raw_after")} <= set(logs)
    # After the paper's FIRE a conv's weights are scaled by sqrt(C_out/C_in)/(kh kw) != 1: only dfi_* reads ~0.
    assert logs["reset/q/conv1/dfi_after"] < 1e-3 < logs["reset/q/conv1/dfi_raw_after"]


def test_rms_scale_variant_divides_convs_by_the_root_of_the_kernel_size():
    W = torch.randn(8, 4, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    paper, rms = fire_project(W, iters=60), fire_project(W, iters=60, scale="rms")
    torch.testing.assert_close(rms, paper * 3.0)  # k_h k_w / sqrt(k_h k_w) = 3
    linear = torch.randn(5, 7, dtype=torch.float64)
    torch.testing.assert_close(fire_project(linear, scale="rms"), fire_project(linear))
    agent = trained_dqn(1)
    logs = FIRE(scale="rms", method="exact").apply(agent, step=0).logs
    assert logs["reset/fire/sv_min"] == pytest.approx(1.0, abs=1e-5)  # measured against the variant's own scale
    assert FIRE().scale == "paper"
    with pytest.raises(ValueError, match=r"'sqrt'.*paper.*rms"):
        FIRE(scale="sqrt")
