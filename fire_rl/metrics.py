"""Plasticity diagnostics: dormant units, feature ranks and norms. Read-only on the networks.

Definitions follow docs/paper-notes.md §5.2 (the FIRE authors' SAC metrics code).
Keys are ``plasticity/<net>/<metric>/<layer>``; see ``plasticity_metrics``.
"""

from __future__ import annotations

import math

import torch

DORMANT_TAUS = (0.0, 0.025, 0.1)
_SCORE_EPS = 1e-9  # added to the layer mean, as in ReDo / Dopamine, so an all-zero layer scores 0 rather than NaN


def dormant_scores(acts: torch.Tensor) -> torch.Tensor:
    """Normalised ReDo activity score per unit, E|a_u| / (mean_k E|a_k| + 1e-9) (Sokar et al. 2023)."""
    if acts.dim() < 2:
        raise ValueError(f"acts must be (n, units) or (n, channels, ...), got shape {tuple(acts.shape)}")
    # For convs the score averages over batch AND spatial positions (one score per channel), as ReDo does.
    reduce_dims = [0, *range(2, acts.dim())]
    score = acts.detach().to(torch.float64).abs().mean(dim=reduce_dims)
    return score / (score.mean() + _SCORE_EPS)


def _mask_from_scores(scores: torch.Tensor, tau: float) -> torch.Tensor:
    if tau == 0:
        # The reference code counts "zero-active" units with isclose(score, 0) rather than score <= 0.
        return torch.isclose(scores, torch.zeros_like(scores))
    return scores <= tau


def dormant_mask(acts: torch.Tensor, tau: float) -> torch.Tensor:
    """Boolean (units,) mask of tau-dormant units, normalised score <= tau (Sokar et al. 2023, ReDo)."""
    return _mask_from_scores(dormant_scores(acts), tau)


def singular_values(features: torch.Tensor) -> torch.Tensor:
    """Singular values (descending, float64, no centering) of the features flattened to (n, d)."""
    feats = features.detach().reshape(features.shape[0], -1).to(torch.float64)
    return torch.linalg.svdvals(feats)


# All rank functions return 0 for an all-zero spectrum (no features carry any signal), instead of NaN.


def effective_rank(sv: torch.Tensor) -> float:
    """Effective rank exp(-sum p_i log p_i) with p = s / sum(s) and 0 log 0 := 0 (Roy & Vetterli 2007)."""
    s = sv.detach().to(torch.float64)
    total = s.sum()
    if total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def _cumulative_rank(values: torch.Tensor, frac: float) -> int:
    """Smallest k such that the top-k values hold at least `frac` of the total."""
    total = values.sum()
    if total <= 0:
        return 0
    below = torch.cumsum(values, dim=0) / total < frac
    return min(int(below.sum()) + 1, values.numel())


def srank(sv: torch.Tensor, delta: float = 0.01) -> int:
    """srank_delta: smallest k with sum_{i<=k} s_i / sum_i s_i >= 1 - delta (Kumar et al. 2021)."""
    return _cumulative_rank(sv.detach().to(torch.float64), 1.0 - delta)


def feature_rank(sv: torch.Tensor, n: int, eps: float = 0.01) -> int:
    """Feature rank #{i : s_i / sqrt(n) > eps} for n samples (Lyle et al. 2022)."""
    return int((sv.detach().to(torch.float64) / math.sqrt(n) > eps).sum())


def pca_rank(sv: torch.Tensor, frac: float = 0.99) -> int:
    """Approximate (PCA) rank: smallest k with sum_{i<=k} s_i^2 >= frac * sum_i s_i^2 (Yang et al. 2020)."""
    return _cumulative_rank(sv.detach().to(torch.float64) ** 2, frac)


def _tau_name(tau: float) -> str:
    return f"dormant_{tau:g}"  # 0 -> dormant_0, 0.025 -> dormant_0.025, 0.1 -> dormant_0.1


def _rank_metrics(feats: torch.Tensor) -> dict[str, float]:
    if not torch.isfinite(feats).all():  # a diverged net should show NaN in the logs, not crash the run
        return dict.fromkeys(("effective_rank", "srank", "feature_rank", "pca99_rank"), math.nan)
    sv = singular_values(feats)
    return {
        "effective_rank": effective_rank(sv),
        "srank": srank(sv),
        "feature_rank": feature_rank(sv, feats.shape[0]),
        "pca99_rank": pca_rank(sv),
    }


@torch.no_grad()
def plasticity_metrics(
    net_name: str, activations: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]
) -> dict[str, float]:
    """Flat dict of dormant %, ranks, feature and weight norms keyed plasticity/<net>/<metric>/<layer> (FIRE §5.2)."""
    if not activations:
        raise ValueError(f"plasticity_metrics({net_name!r}): activations is empty, expected {{layer: tensor}}")
    prefix = f"plasticity/{net_name}"
    out: dict[str, float] = {}
    dormant_counts = dict.fromkeys(DORMANT_TAUS, 0)
    total_units = 0
    for layer, acts in activations.items():
        scores = dormant_scores(acts)
        total_units += scores.numel()
        for tau in DORMANT_TAUS:
            count = int(_mask_from_scores(scores, tau).sum())
            dormant_counts[tau] += count
            out[f"{prefix}/{_tau_name(tau)}/{layer}"] = 100.0 * count / scores.numel()
        feats = acts.detach().reshape(acts.shape[0], -1).to(torch.float64)
        for metric, value in _rank_metrics(feats).items():
            out[f"{prefix}/{metric}/{layer}"] = value
        out[f"{prefix}/feature_norm/{layer}"] = float(feats.norm(dim=1).mean())
    for tau in DORMANT_TAUS:
        out[f"{prefix}/{_tau_name(tau)}/all"] = 100.0 * dormant_counts[tau] / total_units
    squared_total = 0.0
    for layer, weight in weights.items():
        norm = float(weight.detach().to(torch.float64).norm())
        squared_total += norm**2
        out[f"{prefix}/weight_norm/{layer}"] = norm
    out[f"{prefix}/weight_norm/all"] = math.sqrt(squared_total)
    return out
