"""FIRE: Frobenius-Isometry REinitialization (Han et al., ICLR 2026), as the authors' code runs it."""

from __future__ import annotations

import math

from torch import Tensor, nn

from fire_rl.resets.base import LayerwiseReset, ResettableAgent, policy_for, restore_theta0
from fire_rl.resets.isometry import METHODS, SCALES, fire_project, isometry_sv_min

# agent: the agent's paper form (DQN: paper_dqn; SAC: project_all), resolved when the strategy meets the agent.
POLICIES = ("agent", "paper_dqn", "project_all")


class FIRE(LayerwiseReset):
    """FIRE (Han et al., ICLR 2026, arXiv 2602.08040); follows `apply_fire` in rl/dqn/cleanrl/dqn_atari_resume.py.

    policy "paper_dqn": Conv2d weights projected, conv biases kept, Linear layers back to theta0 (weights and biases),
    Adam state kept. policy "project_all": every selected weight projected, biases kept (the vision/SAC form).
    policy "agent" (default): the agent's paper form (DQN: paper_dqn; SAC: project_all).
    method "newton_schulz" (paper, `ns_iters` iterations) or "exact" (SVD polar factor: a stronger, named variant).
    scale "paper" (conv: sqrt(C_out/C_in)/(k_h k_w), the authors') or "rms" (conv divided by sqrt(k_h k_w) instead,
    RMS-preserving: a separately named variant, never the default).
    Logs `<layer>/sv_min` per projected layer and `reset/fire/sv_min`: 1.0 means the projection reached an isometry.
    """

    def __init__(
        self, policy: str = "agent", method: str = "newton_schulz", ns_iters: int = 10, scale: str = "paper", **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if scale not in SCALES:
            raise ValueError(f"FIRE scale={scale!r} is not one of {list(SCALES)}")
        self.scale = scale
        if policy not in POLICIES:
            raise ValueError(f"FIRE policy={policy!r} is not one of {list(POLICIES)}")
        if method not in METHODS:
            raise ValueError(f"FIRE method={method!r} is not one of {list(METHODS)}")
        if int(ns_iters) < 1:
            raise ValueError(f"FIRE ns_iters must be >= 1, got {ns_iters}")
        self.policy, self.method, self.ns_iters = policy, method, int(ns_iters)
        self.policy_in_force = policy

    def settle(self, agent: ResettableAgent) -> dict[str, str]:
        self.policy_in_force = policy_for("FIRE", self.policy, agent, every_layer="project_all")
        return {"policy": self.policy_in_force}

    def transform(
        self, net_name: str, layer_name: str, module: nn.Module, theta0: dict[str, Tensor], logs: dict[str, float]
    ) -> bool:
        """Project the weight, or (paper_dqn, Linear) restore theta0."""
        if self.policy_in_force == "paper_dqn" and isinstance(module, nn.Linear):
            restore_theta0(module, theta0)
            return True
        module.weight.copy_(fire_project(module.weight, iters=self.ns_iters, method=self.method, scale=self.scale))
        # How far the projection got: 10 Newton-Schulz steps leave ill-conditioned layers far from an isometry.
        sv_min = isometry_sv_min(module.weight, self.scale)
        logs[f"reset/{net_name}/{layer_name}/sv_min"] = sv_min
        logs["reset/fire/sv_min"] = min(sv_min, logs.get("reset/fire/sv_min", math.inf))
        return True
