"""DASH: Direction-Aware SHrinking (Shin et al., 2024), adapted to RL with the agent's own loss on replay batches."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from agents.protocol import GradientLosses
from fire_rl.resets.base import BatchSource, LayerwiseReset, ResettableAgent, layer_params

_EPS = 1e-8  # as torch's cosine_similarity: a zero gradient or weight gives cosine 0, hence the floor lambda


def dash_scale(weight: Tensor, direction: Tensor, lam: float, per_unit: bool = True) -> Tensor:
    """clamp(cos(direction, weight), lam, 1), broadcastable to the weight.

    per_unit=True: one cosine per Linear row, and per (out, in) kernel of a Conv over its spatial entries (the vision
    code's grouping, docs/paper-notes.md §2.3). per_unit=False: one cosine for the whole tensor (how biases are scaled).
    """
    if not per_unit or weight.dim() == 1:
        dims = tuple(range(weight.dim()))
    elif weight.dim() == 2:
        dims = (1,)
    elif weight.dim() == 4:
        dims = (2, 3)
    else:
        raise ValueError(f"DASH handles Linear (2-D), Conv2d (4-D) and bias (1-D) tensors, got {tuple(weight.shape)}")
    w, g = weight.double(), direction.double()
    dot = (w * g).sum(dims, keepdim=True)
    norms = (w.norm(dim=dims, keepdim=True) * g.norm(dim=dims, keepdim=True)).clamp_min(_EPS)
    return (dot / norms).clamp(lam, 1.0).to(weight.dtype)


class DASH(LayerwiseReset):
    """DASH (Shin et al., 2024, "DASH: Warm-Starting Neural Network Training in Stationary Settings without Loss of
    Plasticity"), as the FIRE authors' vision code runs it (docs/paper-notes.md §2.3), with the data pass adapted to RL.

    An EMA of the negative gradient of the agent's own loss (`agent.losses(batch)`: the TD loss for DQN) over
    `num_batches` replay batches, g <- (1-alpha) g + alpha (-grad), starting from g = 0; then every selected weight is
    scaled per unit by clamp(cos(g, w), lam, 1) and every bias by one clamped cosine. Gradients come from
    torch.autograd.grad, so no .grad field, optimizer state or optimizer step is touched.
    """

    requires = (GradientLosses,)

    def __init__(self, alpha: float = 0.3, lam: float = 0.05, num_batches: int = 8, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 < alpha <= 1.0:
            raise ValueError(f"DASH alpha must be in (0, 1], got {alpha}")
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"DASH lam must be in [0, 1], got {lam}")
        if int(num_batches) < 1:
            raise ValueError(f"DASH num_batches must be >= 1 replay batches, got {num_batches}")
        self.alpha, self.lam, self.num_batches = float(alpha), float(lam), int(num_batches)
        self._direction: dict[tuple[str, str, str], Tensor] = {}

    def prepare(
        self, agent: ResettableAgent, step: int, selected: dict, sample_batch: BatchSource | None, logs: dict
    ) -> None:
        """EMA of the negative loss gradient per selected weight and bias over `num_batches` replay batches."""
        if sample_batch is None:
            raise ValueError("DASH needs replay batches: call apply(agent, step, sample_batch=...)")
        params = {
            net: [((net, layer, key), p) for layer, m in layers for key, p in layer_params(m).items()]
            for net, layers in selected.items()
            if layers
        }
        ema = {name: torch.zeros_like(p) for entries in params.values() for name, p in entries}
        for _ in range(self.num_batches):
            losses = agent.losses(sample_batch())
            for net, entries in params.items():
                if net not in losses:
                    raise ValueError(f"DASH: agent.losses() gave no loss for network {net!r}, only {sorted(losses)}")
                grads = torch.autograd.grad(losses[net], [p for _, p in entries], retain_graph=True, allow_unused=True)
                for (name, _), grad in zip(entries, grads, strict=True):
                    negative = torch.zeros_like(ema[name]) if grad is None else -grad.detach()
                    ema[name].mul_(1.0 - self.alpha).add_(self.alpha * negative)
        self._direction = ema

    def transform(
        self, net_name: str, layer_name: str, module: nn.Module, theta0: dict[str, Tensor], logs: dict[str, float]
    ) -> bool:
        """Shrink the weight per unit and the bias as a whole by their clamped cosines with the EMA direction."""
        for key, p in layer_params(module).items():
            scale = dash_scale(p, self._direction[(net_name, layer_name, key)], self.lam, per_unit=key == "weight")
            p.mul_(scale)
            if key == "weight":
                # Mean of the per-unit factors: 1.0 keeps the layer, lam shrinks it to the floor.
                logs[f"reset/{net_name}/{layer_name}/scale_mean"] = float(scale.mean())
        return True
