"""Plasticity metrics against hand-computed answers: constructed activations and hand-built spectra."""

import math

import numpy as np
import pytest
import torch

from fire_rl.metrics import (
    DORMANT_TAUS,
    dormant_mask,
    dormant_scores,
    effective_rank,
    feature_rank,
    pca_rank,
    plasticity_metrics,
    singular_values,
    srank,
)


def _dense_acts() -> torch.Tensor:
    """(4, 5) activations whose per-unit mean |a| is [0, 0.01, 0.05, 1.94, 2.0] (layer mean 0.8)."""
    raw = torch.tensor([0.0, 0.01, 0.05, 1.94, 2.0], dtype=torch.float64)
    pattern = torch.tensor([0.5, -1.5, 1.0, -1.0], dtype=torch.float64)  # mean |.| = 1, mixed signs
    return pattern[:, None] * raw[None, :]


def _conv_acts() -> torch.Tensor:
    """(2, 3, 2, 2): channel 0 dead, channel 1 is 0.1 at one of 4 positions (score 0.025), channel 2 all ones."""
    acts = torch.zeros(2, 3, 2, 2, dtype=torch.float64)
    acts[:, 1, 0, 0] = 0.1
    acts[:, 2] = 1.0
    return acts


# normalised scores by hand: dense = raw / 0.8; conv = [0, 0.025, 1] / (1.025 / 3)
DENSE_SCORES = [0.0, 0.0125, 0.0625, 2.425, 2.5]
CONV_SCORES = [0.0, 0.075 / 1.025, 3.0 / 1.025]
DENSE_DORMANT = {0.0: [0], 0.025: [0, 1], 0.1: [0, 1, 2]}
CONV_DORMANT = {0.0: [0], 0.025: [0], 0.1: [0, 1]}


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q


def _matrix_with_spectrum(s, n=40, d=12, seed=0) -> torch.Tensor:
    """F = U diag(s) V^T with random orthonormal U (n, k) and V (d, k)."""
    rng = np.random.default_rng(seed)
    s = np.asarray(s, dtype=np.float64)
    u, v = _orthonormal(rng, n, len(s)), _orthonormal(rng, d, len(s))
    return torch.from_numpy(u @ np.diag(s) @ v.T)


def _entropy_rank(s) -> float:
    total = sum(s)
    return math.exp(-sum((x / total) * math.log(x / total) for x in s if x > 0))


# ---------------------------------------------------------------- dormant units


def test_dense_scores_match_hand_computed():
    assert torch.allclose(dormant_scores(_dense_acts()), torch.tensor(DENSE_SCORES, dtype=torch.float64))


@pytest.mark.parametrize("tau", DORMANT_TAUS)
def test_dense_dormant_mask(tau):
    mask = dormant_mask(_dense_acts(), tau)
    assert mask.dtype == torch.bool and mask.shape == (5,)
    assert torch.nonzero(mask).flatten().tolist() == DENSE_DORMANT[tau]


def test_conv_scores_average_over_batch_and_space():
    scores = dormant_scores(_conv_acts())
    assert scores.shape == (3,)
    assert torch.allclose(scores, torch.tensor(CONV_SCORES, dtype=torch.float64))


@pytest.mark.parametrize("tau", DORMANT_TAUS)
def test_conv_dead_channel(tau):
    assert torch.nonzero(dormant_mask(_conv_acts(), tau)).flatten().tolist() == CONV_DORMANT[tau]


def test_tau_zero_uses_isclose_and_tau_uses_less_equal():
    acts = torch.tensor([[1e-12, 1.0, 2.0, 1.0]], dtype=torch.float64)  # unit 0: tiny but nonzero score
    assert dormant_mask(acts, 0.0).tolist() == [True, False, False, False]
    boundary = torch.tensor([[0.1, 1.9, 1.0, 1.0]], dtype=torch.float64)  # layer mean 1: unit 0 scores 0.1 / (1 + 1e-9)
    assert dormant_mask(boundary, 0.1).tolist() == [True, False, False, False]
    assert not dormant_mask(boundary, 0.0999).any()


def test_all_zero_layer_is_fully_dormant():
    assert dormant_mask(torch.zeros(3, 4), 0.0).all()


def test_scores_reject_1d_input():
    with pytest.raises(ValueError, match="shape"):
        dormant_scores(torch.ones(5))


# ---------------------------------------------------------------- spectra and ranks


def test_singular_values_recover_spectrum():
    s = [10.0, 5.0, 1.0, 0.001]
    sv = singular_values(_matrix_with_spectrum(s))
    assert sv.dtype == torch.float64 and sv.shape == (12,)
    assert torch.allclose(sv[:4], torch.tensor(s, dtype=torch.float64), atol=1e-10)
    assert sv[4:].abs().max() < 1e-10


def test_singular_values_flatten_and_do_not_center():
    ones = torch.ones(5, 2, 3, 2, dtype=torch.float32)  # a centred SVD would give all zeros
    sv = singular_values(ones)
    assert sv.shape == (5,)
    assert sv[0].item() == pytest.approx(math.sqrt(5 * 12)) and sv[1:].abs().max() < 1e-10


def test_flat_spectrum_ranks():
    sv = singular_values(_matrix_with_spectrum([1.0, 1.0, 1.0, 1.0], n=20, d=10))
    assert effective_rank(sv) == pytest.approx(4.0, abs=1e-9)
    assert srank(sv) == 4 and pca_rank(sv) == 4 and feature_rank(sv, n=20) == 4


def test_uneven_spectrum_ranks():
    s = [10.0, 5.0, 1.0, 0.001]
    sv = singular_values(_matrix_with_spectrum(s, n=100))
    assert effective_rank(sv) == pytest.approx(_entropy_rank(s), abs=1e-9)
    # cumsum / sum = [0.62496, 0.93744, 0.9999375, 1]
    assert srank(sv, delta=0.01) == 3
    assert srank(sv, delta=1e-4) == 3
    assert srank(sv, delta=1e-5) == 4
    assert srank(sv, delta=0.5) == 1
    # cumsum(s^2) / sum(s^2) = [0.79365, 0.99206, 0.99999999, 1]
    assert pca_rank(sv) == 2
    assert pca_rank(sv, frac=0.995) == 3
    # s / sqrt(100) = [1, 0.5, 0.1, 1e-4]
    assert feature_rank(sv, n=100) == 3
    assert feature_rank(sv, n=100, eps=0.2) == 2
    assert feature_rank(sv, n=100, eps=1e-5) == 4


def test_threshold_boundaries_are_inclusive_for_cumulative_and_strict_for_feature_rank():
    sv = torch.tensor([3.0, 1.0], dtype=torch.float64)
    assert srank(sv, delta=0.25) == 1  # 3/4 == 0.75 exactly
    assert srank(sv, delta=0.2499) == 2
    assert pca_rank(sv, frac=0.9) == 1  # 9/10 == 0.9 exactly
    assert pca_rank(sv, frac=0.9000001) == 2
    assert srank(torch.tensor([99.0, 1.0], dtype=torch.float64)) == 1  # 0.99 >= 1 - 0.01
    assert feature_rank(torch.tensor([0.5], dtype=torch.float64), n=25, eps=0.1) == 0  # 0.5/5 == eps: not counted


def test_rank_deficient_matrix():
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 12))
    sv = singular_values(torch.from_numpy(feats))
    oracle = np.linalg.svd(feats, compute_uv=False)
    assert np.allclose(sv.numpy(), oracle, atol=1e-10)
    assert int((sv > 1e-8).sum()) == 3
    assert feature_rank(sv, n=30) == 3
    assert srank(sv, delta=1e-6) == 3 and pca_rank(sv, frac=1 - 1e-9) == 3
    assert effective_rank(sv) == pytest.approx(_entropy_rank(oracle[:3].tolist()), abs=1e-9)
    assert 1.0 <= effective_rank(sv) <= 3.0


def test_zero_spectrum_gives_zero_ranks():
    sv = torch.zeros(4, dtype=torch.float64)
    assert effective_rank(sv) == 0.0
    assert srank(sv) == 0 and pca_rank(sv) == 0 and feature_rank(sv, n=8) == 0


# ---------------------------------------------------------------- plasticity_metrics


def _two_layer_inputs():
    torch.manual_seed(0)
    conv = _conv_acts().float().requires_grad_(True)
    fc = _dense_acts().float()
    weights = {"conv": torch.randn(3, 2, 3, 3), "fc": torch.randn(5, 12, requires_grad=True)}
    return {"conv": conv, "fc": fc}, weights


def test_plasticity_metrics_key_set():
    acts, weights = _two_layer_inputs()
    out = plasticity_metrics("q", acts, weights)
    layers = ["conv", "fc"]
    expected = {f"plasticity/q/dormant_{t}/{x}" for t in ("0", "0.025", "0.1") for x in [*layers, "all"]}
    for metric in ("effective_rank", "srank", "feature_rank", "pca99_rank", "feature_norm", "weight_norm"):
        expected |= {f"plasticity/q/{metric}/{x}" for x in layers}
    expected.add("plasticity/q/weight_norm/all")
    assert set(out) == expected
    assert all(type(v) in (float, int) for v in out.values())


def test_plasticity_metrics_values_and_inputs_unchanged():
    acts, weights = _two_layer_inputs()
    before = {k: v.detach().clone() for k, v in [*acts.items(), *(("w_" + k, w) for k, w in weights.items())]}
    out = plasticity_metrics("q", acts, weights)
    p = "plasticity/q"
    for tau, name in zip(DORMANT_TAUS, ("0", "0.025", "0.1"), strict=True):
        assert out[f"{p}/dormant_{name}/conv"] == pytest.approx(100 * len(CONV_DORMANT[tau]) / 3)
        assert out[f"{p}/dormant_{name}/fc"] == pytest.approx(100 * len(DENSE_DORMANT[tau]) / 5)
    assert out[f"{p}/dormant_0/all"] == pytest.approx(25.0)  # (1 + 1) / 8
    assert out[f"{p}/dormant_0.025/all"] == pytest.approx(37.5)  # (1 + 2) / 8
    assert out[f"{p}/dormant_0.1/all"] == pytest.approx(62.5)  # (2 + 3) / 8
    for layer, a in acts.items():
        flat = a.detach().double().reshape(a.shape[0], -1)
        sv = singular_values(flat)
        assert out[f"{p}/effective_rank/{layer}"] == pytest.approx(effective_rank(sv))
        assert out[f"{p}/srank/{layer}"] == srank(sv)
        assert out[f"{p}/feature_rank/{layer}"] == feature_rank(sv, a.shape[0])
        assert out[f"{p}/pca99_rank/{layer}"] == pca_rank(sv)
        row_norms = np.linalg.norm(flat.numpy(), axis=1)
        assert out[f"{p}/feature_norm/{layer}"] == pytest.approx(row_norms.mean())
    w_norms = {k: float(np.linalg.norm(w.detach().numpy().ravel())) for k, w in weights.items()}
    for layer, norm in w_norms.items():
        assert out[f"{p}/weight_norm/{layer}"] == pytest.approx(norm, rel=1e-6)
    assert out[f"{p}/weight_norm/all"] == pytest.approx(math.hypot(*w_norms.values()), rel=1e-6)
    assert torch.equal(acts["conv"].detach(), before["conv"]) and torch.equal(acts["fc"], before["fc"])
    assert all(torch.equal(w.detach(), before["w_" + k]) for k, w in weights.items())
    assert acts["conv"].grad is None


def test_plasticity_metrics_nonfinite_features_give_nan_ranks():
    acts = {"fc": torch.tensor([[1.0, float("nan")], [0.0, 1.0]])}
    out = plasticity_metrics("pi", acts, {"fc": torch.ones(2, 2)})
    assert math.isnan(out["plasticity/pi/srank/fc"]) and math.isnan(out["plasticity/pi/effective_rank/fc"])


def test_plasticity_metrics_rejects_empty_activations():
    with pytest.raises(ValueError, match="empty"):
        plasticity_metrics("q", {}, {})
