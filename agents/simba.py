"""SimBa building blocks (Lee et al. 2025), as the FIRE paper's SAC uses them (docs/paper-notes.md §4).

Encoder: Dense (orthogonal) -> n residual blocks x + Dense(ReLU(Dense_4h(LayerNorm(x)))) (He-normal) -> LayerNorm.
Observations go through a running mean/variance normaliser first. Also the CleanRL-style MLP encoder, so both
presets expose the same `features()` interface to the SAC agent.
"""

from __future__ import annotations

import math

import torch
from torch import nn

LAYER_NORM_EPS = 1e-6  # Flax's LayerNorm default (PyTorch's is 1e-5)
# Flax's he_normal is a normal truncated at 2 std, rescaled by this constant so the variance stays 2 / fan_in.
TRUNCATED_NORMAL_STD = 0.87962566103423978


def he_normal_(weight: torch.Tensor) -> torch.Tensor:
    """Flax `he_normal` for a PyTorch (out, in) weight: truncated normal with variance 2 / fan_in."""
    std = math.sqrt(2.0 / weight.shape[1]) / TRUNCATED_NORMAL_STD
    return nn.init.trunc_normal_(weight, std=std, a=-2 * std, b=2 * std)


def orthogonal_linear(in_dim: int, out_dim: int, gain: float = 1.0) -> nn.Linear:
    """Linear layer with an orthogonal weight and a zero bias (SimBa's input and head layers)."""
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


class ResidualBlock(nn.Module):
    """x + fc2(ReLU(fc1(LayerNorm(x)))), with an inverted bottleneck of width 4h."""

    def __init__(self, hidden: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)
        self.fc1 = nn.Linear(hidden, 4 * hidden)
        self.fc2 = nn.Linear(4 * hidden, hidden)
        for layer in (self.fc1, self.fc2):
            he_normal_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(torch.relu(self.fc1(self.norm(x))))


class SimbaEncoder(nn.Module):
    """SimBa encoder; features are the paper code's: input Dense output, residual stream per block, final LayerNorm."""

    def __init__(self, in_dim: int, hidden: int, blocks: int):
        super().__init__()
        self.input = orthogonal_linear(in_dim, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden) for _ in range(blocks))
        self.out_norm = nn.LayerNorm(hidden, eps=LAYER_NORM_EPS)

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every probed feature by name; the last one ('out_norm') is the encoder's output."""
        out = {}
        x = out["input"] = self.input(x)
        for i, block in enumerate(self.blocks):
            x = out[f"block{i + 1}"] = block(x)
        out["out_norm"] = self.out_norm(x)
        return out


class MLPEncoder(nn.Module):
    """CleanRL's SAC trunk: `layers` Linear+ReLU layers of width `hidden`, PyTorch's default init."""

    def __init__(self, in_dim: int, hidden: int, layers: int):
        super().__init__()
        dims = [in_dim] + [hidden] * layers
        self.layers = nn.ModuleDict({f"fc{i + 1}": nn.Linear(dims[i], dims[i + 1]) for i in range(layers)})

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Post-ReLU output of every hidden layer; the last one is the encoder's output."""
        out = {}
        for name, layer in self.layers.items():
            x = out[name] = torch.relu(layer(x))
        return out


class RunningNorm(nn.Module):
    """Running mean/variance of observations (parallel Welford update); normalises as (o - mu) / sqrt(var + 1e-8)."""

    def __init__(self, dim: int, enabled: bool = True):
        super().__init__()
        self.enabled = enabled
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.tensor(1e-4, dtype=torch.float64))  # as gymnasium's: no division by 0

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Fold a batch of training-time observations into the running statistics."""
        if not self.enabled:
            return
        x = obs.to(torch.float64).reshape(-1, self.mean.numel())
        n, batch_mean, batch_var = x.shape[0], x.mean(0), x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        self.var.copy_((self.var * self.count + batch_var * n + delta**2 * self.count * n / total) / total)
        self.mean.add_(delta * n / total)
        self.count.copy_(total)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            return obs
        return ((obs - self.mean) / torch.sqrt(self.var + 1e-8)).to(obs.dtype)
