"""Regularisers that combine with any reset strategy (`+regularizer=l2_init` or `parseval`): a penalty on a
network's parameters, added to that network's loss in every update. Defaults come from the FIRE paper's vision
tables (docs/paper-notes.md §2.3, warm-start CIFAR-10/ResNet-18: both 1e-3); they are untuned for RL.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

WEIGHT_LAYERS = (nn.Conv2d, nn.Linear)


class L2Init:
    """L2-init / regenerative regularisation (Kumar et al. 2023): (coef / 2) * sum ||theta - theta0||^2 over every
    trainable parameter that has an initial value (weights, biases, LayerNorm)."""

    name = "l2_init"

    def __init__(self, coef: float = 1e-3) -> None:
        if not coef >= 0:
            raise ValueError(f"L2Init coef must be >= 0, got {coef}")
        self.coef = float(coef)

    def penalty(self, net: nn.Module, theta0: Mapping[str, Tensor]) -> Tensor:
        terms = [
            ((p - theta0[name].to(p)) ** 2).sum()
            for name, p in net.named_parameters()
            if p.requires_grad and name in theta0
        ]
        return 0.5 * self.coef * _total(terms)


class Parseval:
    """Parseval regularisation (Chung et al. 2024): coef * sum over Conv2d/Linear layers of ||W W^T - I||_F^2, with
    W reshaped to (out, -1). fire_rl penalises every trainable Conv2d and Linear weight, output layers included, and
    leaves LayerNorm scales alone (the FIRE authors' vision code also pulls those toward 1)."""

    name = "parseval"

    def __init__(self, coef: float = 1e-3) -> None:
        if not coef >= 0:
            raise ValueError(f"Parseval coef must be >= 0, got {coef}")
        self.coef = float(coef)

    def penalty(self, net: nn.Module, theta0: Mapping[str, Tensor]) -> Tensor:
        terms = []
        for module in net.modules():
            if isinstance(module, WEIGHT_LAYERS) and module.weight.requires_grad:
                w = module.weight.reshape(module.weight.shape[0], -1)
                gram = w @ w.T
                terms.append(((gram - torch.eye(gram.shape[0], dtype=w.dtype, device=w.device)) ** 2).sum())
        return self.coef * _total(terms)


def _total(terms: list[Tensor]) -> Tensor:
    """Sum of the per-parameter terms (0 when nothing is trainable)."""
    return torch.stack(terms).sum() if terms else torch.zeros(())
