"""Tests for fire_rl.resets: Newton-Schulz against an independent numpy oracle, strategies on a real trained net."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from conftest import fresh_state
from torch import nn

from agents.protocol import ResetDefaults
from fire_rl.resets import FIRE, FullReset, NoReset, ResetStrategy, Schedule, ShrinkPerturb
from fire_rl.resets.isometry import deviation_from_isometry, fire_project, fire_scale, newton_schulz

LAYERS = ("conv1", "conv2", "fc1", "fc2")


# ---------------------------------------------------------------- independent oracle (numpy, float64, one matrix)
def ns_oracle(W: np.ndarray, iters: int = 10) -> np.ndarray:
    """The paper's recipe, literally: transpose if wide, divide by ||W||_F, X <- 1.5X - 0.5 X X^T X, transpose back."""
    X = np.array(W, dtype=np.float64)
    transposed = X.shape[1] > X.shape[0]
    if transposed:
        X = X.T
    X = X / np.sqrt((X * X).sum())
    for _ in range(iters):
        X = 1.5 * X - 0.5 * X @ X.T @ X
    return X.T if transposed else X


def conv_oracle(W: np.ndarray, iters: int = 10) -> np.ndarray:
    """Per-kernel-position loop of the oracle, then sqrt(C_out/C_in)/(kh*kw) by hand."""
    c_out, c_in, kh, kw = W.shape
    out = np.zeros_like(W, dtype=np.float64)
    for i, j in np.ndindex(kh, kw):
        out[:, :, i, j] = ns_oracle(W[:, :, i, j], iters)
    return out * math.sqrt(c_out / c_in) / (kh * kw)


# ---------------------------------------------------------------- a small real network behind the agent contract
class TinyQNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(4, 8, 3)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 3)
        for m in (self.conv1, self.conv2, self.fc1, self.fc2):
            nn.init.xavier_uniform_(m.weight)
            nn.init.uniform_(m.bias, -0.1, 0.1)  # non-zero, so "bias kept" is a real check

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


class TinyAgent:
    """Implements networks() / initial_params() / after_reset() like the DQN agent, trained for a few Adam steps."""

    reset_defaults = ResetDefaults(head_to_theta0=True, optimizer="keep")  # the DQN agent's

    def __init__(self, seed: int = 0, train_steps: int = 5) -> None:
        torch.manual_seed(seed)
        self.q = TinyQNet()
        self.theta0 = {"q": {k: v.detach().clone() for k, v in self.q.state_dict().items()}}
        self.target = copy.deepcopy(self.q)
        self.adam = torch.optim.Adam(self.q.parameters(), lr=1e-2)
        self.after_reset_calls = 0
        for _ in range(train_steps):
            loss = (self.q(torch.randn(8, 4, 12, 12)) - torch.randn(8, 3)).pow(2).mean()
            self.adam.zero_grad()
            loss.backward()
            self.adam.step()

    def networks(self) -> dict:
        return {"q": (self.q, self.adam)}

    def initial_params(self) -> dict:
        return self.theta0

    def after_reset(self) -> None:
        self.after_reset_calls += 1
        self.target.load_state_dict(self.q.state_dict())


def params_of(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def adam_snapshot(opt: torch.optim.Optimizer) -> dict:
    return {p: {k: v.clone() for k, v in s.items()} for p, s in opt.state.items()}


def assert_state_equal(opt: torch.optim.Optimizer, snap: dict, params: list[nn.Parameter]) -> None:
    for p in params:
        assert set(opt.state[p]) == set(snap[p])
        for k, v in snap[p].items():
            assert torch.equal(opt.state[p][k], v)


# ---------------------------------------------------------------- Newton-Schulz and FIRE math
@pytest.mark.parametrize("shape", [(7, 3), (3, 7), (5, 5), (32, 4), (4, 64), (6, 5, 3), (2, 3, 4, 9)])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_newton_schulz_matches_oracle(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    W = np.random.default_rng(1).standard_normal(shape)
    out = newton_schulz(torch.from_numpy(W).to(dtype), iters=10).double().numpy()
    assert out.shape == shape
    # The oracle sees one matrix at a time, so a batch is checked matrix by matrix.
    for w, o in zip(W.reshape(-1, *shape[-2:]), out.reshape(-1, *shape[-2:]), strict=True):
        np.testing.assert_allclose(o, ns_oracle(w, 10), atol=1e-5)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (5, 5)])
def test_newton_schulz_converges_to_svd_polar_factor(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(4)
    k = min(shape)
    U, _ = np.linalg.qr(rng.standard_normal((shape[0], k)))
    V, _ = np.linalg.qr(rng.standard_normal((shape[1], k)))
    W = U @ np.diag(np.linspace(0.5, 1.5, k)) @ V.T  # well conditioned: condition number 3
    u, _, vt = np.linalg.svd(W, full_matrices=False)
    out = newton_schulz(torch.from_numpy(W), iters=60).numpy()
    np.testing.assert_allclose(out, u @ vt, atol=1e-5)


def test_newton_schulz_zero_matrix_is_finite() -> None:
    assert torch.isfinite(newton_schulz(torch.zeros(3, 4, 5))).all()


def test_fire_scale_by_hand() -> None:
    assert fire_scale((32, 4, 8, 8)) == pytest.approx(math.sqrt(8) / 64)
    assert fire_scale((64, 32, 4, 4)) == pytest.approx(math.sqrt(2) / 16)
    assert fire_scale((512, 128)) == pytest.approx(2.0)
    with pytest.raises(ValueError, match=r"\(3, 4, 5\)"):
        fire_scale((3, 4, 5))


def test_fire_project_matches_oracle_conv_and_linear() -> None:
    W = np.random.default_rng(5).standard_normal((32, 4, 8, 8))
    out = fire_project(torch.from_numpy(W), iters=10).numpy()
    np.testing.assert_allclose(out, conv_oracle(W, 10), atol=1e-5)
    # Scale by hand: the per-position oracle without scale, times sqrt(32/4)/(8*8).
    np.testing.assert_allclose(out[:, :, 2, 5], ns_oracle(W[:, :, 2, 5]) * math.sqrt(8) / 64, atol=1e-5)
    lin = W[:8, :, :, 0].reshape(8, 4 * 8)
    np.testing.assert_allclose(fire_project(torch.from_numpy(lin)).numpy(), ns_oracle(lin) * 0.5, atol=1e-5)


def test_dfi_zero_on_scaled_orthogonal() -> None:
    rng = np.random.default_rng(7)
    Q, _ = np.linalg.qr(rng.standard_normal((8, 4)))  # orthonormal columns
    assert deviation_from_isometry(torch.from_numpy(Q * fire_scale((8, 4)))) < 1e-6
    assert deviation_from_isometry(torch.from_numpy(Q.T * fire_scale((4, 8)))) < 1e-6
    conv = np.stack([np.linalg.qr(rng.standard_normal((16, 8)))[0] for _ in range(9)], axis=-1).reshape(16, 8, 3, 3)
    assert deviation_from_isometry(torch.from_numpy(conv * fire_scale(conv.shape))) < 1e-6


def test_dfi_known_values() -> None:
    assert deviation_from_isometry(torch.diag(torch.tensor([2.0, 1.0]))) == pytest.approx(9.0)
    # Wide 2x4: Gram on the small side is diag(4, 1) -> 9 (the large side would give 11).
    wide = torch.zeros(2, 4, dtype=torch.float64)
    wide[0, 0], wide[1, 1] = 2.0, 1.0
    assert deviation_from_isometry(wide * fire_scale((2, 4))) == pytest.approx(9.0)
    # A converged FIRE projection (60 iterations on small slices) reads 0.
    assert deviation_from_isometry(fire_project(torch.randn(8, 4, 3, 3, dtype=torch.float64), iters=60)) < 1e-6


# ---------------------------------------------------------------- strategies on the agent
def test_fire_paper_dqn() -> None:
    agent = TinyAgent()
    before, snap = params_of(agent.q), adam_snapshot(agent.adam)
    logs = FIRE().apply(agent, step=1000).logs  # policy agent: this DQN-like agent's paper_dqn
    after = params_of(agent.q)
    for conv in ("conv1", "conv2"):
        assert torch.allclose(after[f"{conv}.weight"], fire_project(before[f"{conv}.weight"]))
        assert torch.equal(after[f"{conv}.bias"], before[f"{conv}.bias"])
    for fc in ("fc1", "fc2"):
        for k in ("weight", "bias"):
            assert torch.equal(after[f"{fc}.{k}"], agent.theta0["q"][f"{fc}.{k}"])
    assert_state_equal(agent.adam, snap, list(agent.q.parameters()))
    assert agent.after_reset_calls == 1
    for k, v in agent.target.state_dict().items():
        assert torch.equal(v, after[k])
    for layer in LAYERS:
        for key in ("sfe", "sfe_normalised", "dfi_before", "dfi_after"):
            assert f"reset/q/{layer}/{key}" in logs
        sfe = sum(((before[f"{layer}.{k}"] - after[f"{layer}.{k}"]).double() ** 2).sum() for k in ("weight", "bias"))
        assert logs[f"reset/q/{layer}/sfe"] == pytest.approx(float(sfe), rel=1e-6)
        assert logs[f"reset/q/{layer}/dfi_after"] == pytest.approx(deviation_from_isometry(after[f"{layer}.weight"]))
    assert logs["reset/sfe_total"] == pytest.approx(sum(logs[f"reset/q/{n}/sfe"] for n in LAYERS))
    assert logs["reset/layers_touched"] == 4 and logs["reset/step"] == 1000
    assert logs["reset/wall_time_s"] >= 0
    assert logs["reset/q/fc1/sfe_normalised"] == pytest.approx(1.0)


def test_fire_project_all_keeps_biases_and_projects_linears() -> None:
    agent = TinyAgent()
    before = params_of(agent.q)
    FIRE(policy="project_all").apply(agent, step=0)
    after = params_of(agent.q)
    for layer in LAYERS:
        assert torch.allclose(after[f"{layer}.weight"], fire_project(before[f"{layer}.weight"]))
        assert torch.equal(after[f"{layer}.bias"], before[f"{layer}.bias"])


def test_full_reset_gives_theta0() -> None:
    agent = TinyAgent()
    logs = FullReset().apply(agent, step=0).logs
    for k, v in params_of(agent.q).items():
        assert torch.equal(v, agent.theta0["q"][k])
    assert sorted(logs) == sorted(
        [f"reset/q/{n}/{k}" for n in LAYERS for k in ("sfe", "sfe_normalised", "dfi_before", "dfi_after")]
        + [f"reset/q/{n}/dfi_raw_{k}" for n in LAYERS for k in ("before", "after")]
        + ["reset/sfe_total", "reset/layers_touched", "reset/wall_time_s", "reset/step"]
    )
    assert all(logs[f"reset/q/{n}/sfe_normalised"] == pytest.approx(1.0) for n in LAYERS)


@pytest.mark.parametrize("c", [0.8, 0.3, 0.0, 1.0])
def test_shrink_perturb_theta0_form(c: float) -> None:
    agent = TinyAgent()
    before = params_of(agent.q)
    ShrinkPerturb(c=c, policy="all").apply(agent, step=0)
    for k, v in params_of(agent.q).items():
        assert torch.equal(v, (1 - c) * before[k] + c * agent.theta0["q"][k])


def test_shrink_perturb_paper_dqn_resets_head() -> None:
    agent = TinyAgent()
    before = params_of(agent.q)
    ShrinkPerturb(c=0.8, policy="paper_dqn").apply(agent, step=0)
    after, theta0 = params_of(agent.q), agent.theta0["q"]
    assert torch.allclose(after["conv1.weight"], 0.2 * before["conv1.weight"] + 0.8 * theta0["conv1.weight"])
    assert torch.equal(after["fc2.weight"], theta0["fc2.weight"])


def test_shrink_perturb_fresh_noise_form() -> None:
    c, sigma = 0.8, 0.01
    agent = TinyAgent()
    before = params_of(agent.q)
    torch.manual_seed(123)
    ShrinkPerturb(c=c, noise="fresh", noise_scale=sigma, policy="all").apply(agent, step=0)
    after = params_of(agent.q)
    torch.manual_seed(123)  # replay the same draws, in the same (layer) order, to recover eps exactly
    for name, module in agent.q.named_children():
        eps = nn.init.xavier_uniform_(torch.empty_like(module.weight))
        assert torch.allclose(after[f"{name}.weight"], (1 - c) * before[f"{name}.weight"] + sigma * eps, atol=1e-7)
        assert torch.allclose(after[f"{name}.bias"], (1 - c) * before[f"{name}.bias"], atol=1e-7)
    other = TinyAgent()
    ShrinkPerturb(c=c, policy="all").apply(other, step=0)
    assert not torch.allclose(after["conv1.weight"], params_of(other.q)["conv1.weight"])


@pytest.mark.parametrize(
    "cls, kwargs, message",
    [
        (ShrinkPerturb, {"c": -0.1}, "-0.1"),
        (ShrinkPerturb, {"c": 1.5}, "1.5"),
        (ShrinkPerturb, {"noise": "gaussian"}, r"'gaussian'.*theta0.*fresh"),
        (ShrinkPerturb, {"policy": "encoder"}, r"'encoder'.*all.*paper_dqn"),
        (FullReset, {"optimizer": "reset_all"}, r"'reset_all'.*keep.*clear_all.*clear_touched"),
        (FIRE, {"policy": "exact"}, r"'exact'.*paper_dqn.*project_all"),
        (FIRE, {"ns_iters": 0}, "0"),
        (FIRE, {"at_steps": [5, -3]}, "-3"),
        (Schedule, {"at_steps": [5, -3]}, "-3"),
        (Schedule, {"every_steps": 0}, "0"),
        (Schedule, {"every_steps": -5}, "-5"),
    ],
)
def test_bad_options_name_value_and_choices(cls: type, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cls(**kwargs)


def test_layer_pattern_matching_nothing_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"conv9.*available layers.*fc1"):
        FullReset(layers=["conv9"]).apply(TinyAgent(train_steps=0), step=0)


# ---------------------------------------------------------------- optimizer policies
@pytest.mark.parametrize("policy", ["keep", "clear_all"])
def test_optimizer_keep_and_clear_all(policy: str) -> None:
    agent = TinyAgent()
    snap = adam_snapshot(agent.adam)
    FullReset(optimizer=policy).apply(agent, step=0)
    if policy == "keep":
        assert_state_equal(agent.adam, snap, list(agent.q.parameters()))
    else:  # a fresh Adam's state, written in place (tests/test_capture_guard.py: it steps as a new Adam)
        assert all(fresh_state(agent.adam, p) for p in agent.q.parameters())


def test_optimizer_clear_touched_with_layer_patterns() -> None:
    agent = TinyAgent()
    before, snap = params_of(agent.q), adam_snapshot(agent.adam)
    strategy = FullReset(optimizer="clear_touched", layers=["fc*"])
    report = strategy.apply(agent, step=0)
    logs = report.logs
    assert report.touched == ["q/fc1", "q/fc2"]
    assert logs["reset/layers_touched"] == 2 and "reset/q/conv1/sfe" not in logs
    after = params_of(agent.q)
    for conv in (agent.q.conv1, agent.q.conv2):
        assert_state_equal(agent.adam, snap, [conv.weight, conv.bias])
    for k in ("conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"):
        assert torch.equal(after[k], before[k])
    for fc in (agent.q.fc1, agent.q.fc2):
        assert fresh_state(agent.adam, fc.weight) and fresh_state(agent.adam, fc.bias)
    # The optimizer still works after its state was cleared (references stayed valid, state re-initialised).
    agent.q(torch.randn(2, 4, 12, 12)).sum().backward()
    agent.adam.step()
    FIRE(optimizer="clear_touched").apply(agent, step=0)  # paper_dqn keeps conv biases: their state stays
    assert not fresh_state(agent.adam, agent.q.conv1.bias) and fresh_state(agent.adam, agent.q.conv1.weight)


# ---------------------------------------------------------------- schedule
def fire_steps(schedule: Schedule | ResetStrategy, jump: int = 4, end: int = 40, switches: tuple = ()) -> list[int]:
    return [s for s in range(jump, end + 1, jump) if schedule.due(s - jump, s, s in switches)]


@pytest.mark.parametrize(
    "kwargs, switches, expected",
    [
        ({}, (12, 24), [12, 24]),  # at_switch defaults to True
        ({"at_switch": False}, (12, 24), []),
        ({"at_switch": False, "at_steps": [10, 13, 16]}, (), [12, 16]),  # each listed step fires once when crossed
        ({"at_switch": False, "at_steps": [0]}, (), []),  # (prev, step] never contains 0 once running
        ({"at_switch": False, "every_steps": 10}, (), [12, 20, 32, 40]),
        ({"at_steps": [6], "every_steps": 20}, (28,), [8, 20, 28, 40]),
    ],
)
def test_schedule_with_jumps_of_4(kwargs: dict, switches: tuple, expected: list[int]) -> None:
    assert fire_steps(Schedule(**kwargs), switches=switches) == expected
    assert fire_steps(FullReset(**kwargs), switches=switches) == expected


def test_no_reset_never_due() -> None:
    strategy = NoReset(at_steps=[8], every_steps=4)
    assert fire_steps(strategy, switches=(4, 8, 12)) == []
    agent = TinyAgent(train_steps=1)
    before = params_of(agent.q)
    assert strategy.apply(agent, step=8).logs == {}
    assert all(torch.equal(v, before[k]) for k, v in params_of(agent.q).items())
    assert agent.after_reset_calls == 0
