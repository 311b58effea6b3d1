"""Shrink & Perturb: the FIRE paper's deterministic form toward theta0, or Ash & Adams' fresh-noise form."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from fire_rl.resets.base import LayerwiseReset, ResettableAgent, policy_for

NOISES = ("theta0", "fresh")
POLICIES = ("agent", "all", "paper_dqn")


class ShrinkPerturb(LayerwiseReset):
    """Shrink & Perturb. noise="theta0" (default): theta <- (1-c) theta + c theta0, the FIRE paper's form (Han et al.
    2026, `--sr 1` in rl/dqn/cleanrl/dqn_atari_resume.py), toward the network's OWN initial weights, no noise.

    noise="fresh": the Ash & Adams 2020 form, theta <- lambda theta + sigma eps with shrink lambda = 1-c,
    noise scale sigma = `noise_scale`, eps a fresh Xavier-uniform draw for weights and zeros for biases.
    policy="paper_dqn": Linear layers back to theta0 and only convs shrunk, as the authors' DQN baseline does
    (SR-DQN style, docs/paper-notes.md §2.1); policy="all" treats every selected layer alike (the authors' SAC form);
    policy="agent" (default): the agent's paper form (DQN: paper_dqn; SAC: all).
    """

    touches_norms = True  # the paper's SAC S&P interpolates every parameter, LayerNorm included

    def __init__(
        self, c: float = 0.8, noise: str = "theta0", noise_scale: float = 0.01, policy: str = "agent", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"ShrinkPerturb c must be in [0, 1], got {c}")
        if noise not in NOISES:
            raise ValueError(f"ShrinkPerturb noise={noise!r} is not one of {list(NOISES)}")
        if not noise_scale >= 0.0:
            raise ValueError(f"ShrinkPerturb noise_scale must be >= 0, got {noise_scale}")
        if policy not in POLICIES:
            raise ValueError(f"ShrinkPerturb policy={policy!r} is not one of {list(POLICIES)}")
        self.c, self.noise, self.noise_scale, self.policy = float(c), noise, float(noise_scale), policy
        self.policy_in_force = policy

    def settle(self, agent: ResettableAgent) -> dict[str, str]:
        self.policy_in_force = policy_for("ShrinkPerturb", self.policy, agent, every_layer="all")
        return {"policy": self.policy_in_force}

    def transform(
        self, net_name: str, layer_name: str, module: nn.Module, theta0: dict[str, Tensor], logs: dict[str, float]
    ) -> bool:
        """Interpolate toward theta0, or shrink and add fresh noise."""
        # paper_dqn: a Linear layer is interpolated with c = 1, i.e. put back to theta0 (noise="theta0").
        c = 1.0 if self.policy_in_force == "paper_dqn" and isinstance(module, nn.Linear) else self.c
        for key, p in (("weight", module.weight), ("bias", module.bias)):
            if p is None:
                continue
            # A LayerNorm's initialiser is deterministic (ones, zeros): its "fresh draw" is theta0 itself.
            if self.noise == "theta0" or isinstance(module, nn.LayerNorm):
                p.copy_((1 - c) * p + c * theta0[key])
            elif key == "weight":
                eps = nn.init.xavier_uniform_(torch.empty_like(p))
                p.copy_((1 - c) * p + self.noise_scale * eps)
            else:  # the bias initialiser draws zeros, so only the shrink remains
                p.copy_((1 - c) * p)
        return True
