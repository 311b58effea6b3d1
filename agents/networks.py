"""Networks shared by the agents."""

from __future__ import annotations

import copy

import torch
from torch import nn

HEAD = ("fc1", "fc2")  # the Q-head on top of the conv encoder (what plasticity injection adds beside itself)


class NatureQNetwork(nn.Module):
    """Nature-DQN CNN (Mnih et al. 2015) on uint8 stacks of 84x84 frames; Xavier-uniform weights, zero biases."""

    def __init__(self, num_actions: int, in_channels: int = 4):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 32, kernel_size=8, stride=4)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=4, stride=2)
        self.conv3 = nn.Conv2d(64, 64, kernel_size=3, stride=1)
        self.fc1 = nn.Linear(64 * 7 * 7, 512)
        self.fc2 = nn.Linear(512, num_actions)
        for layer in (self.conv1, self.conv2, self.conv3, self.fc1, self.fc2):
            # The FIRE authors' DQN uses Xavier-uniform "since redo use xavier_uniform" (fire-paper.md section 3).
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)
        # Set by inject(): frozen trained head, and the frozen copy of the new head (Nikishin et al. 2023).
        self.head_old: nn.ModuleDict | None = None
        self.head_ref: nn.ModuleDict | None = None

    @property
    def injected(self) -> bool:
        """Whether plasticity injection has added its frozen heads."""
        return self.head_old is not None

    def add_injection_heads(self) -> None:
        """Frozen copies of the current head as the old head and the reference head (values set by the caller)."""
        heads = [nn.ModuleDict({n: copy.deepcopy(getattr(self, n)) for n in HEAD}) for _ in range(2)]
        for head in heads:
            head.requires_grad_(False)
        self.head_old, self.head_ref = heads

    @torch.no_grad()
    def inject(self, theta0: dict[str, torch.Tensor]) -> None:
        """Plasticity injection: Q = h_old(f) + h_new(f) - h_ref(f), with h_new = h_ref = theta0; output unchanged."""
        self.add_injection_heads()
        for name in HEAD:
            for head in (getattr(self, name), self.head_ref[name]):
                head.weight.copy_(theta0[f"{name}.weight"])
                head.bias.copy_(theta0[f"{name}.bias"])

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Q-values for a batch of uint8 observations (B, C, 84, 84)."""
        return self.features(obs)["q"]

    def features(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Post-ReLU output of every hidden layer (keyed by layer name) and the Q-values under 'q'."""
        x = obs.float() / 255.0
        out = {}
        x = out["conv1"] = torch.relu(self.conv1(x))
        x = out["conv2"] = torch.relu(self.conv2(x))
        x = out["conv3"] = torch.relu(self.conv3(x))
        z = x.flatten(1)
        x = out["fc1"] = torch.relu(self.fc1(z))
        out["q"] = self.fc2(x)
        if self.head_old is not None:
            # old + (new - ref): new and ref are bit-identical at injection, so the output is exactly unchanged.
            out["q"] = _head(self.head_old, z) + (out["q"] - _head(self.head_ref, z))
        return out

    def hidden_weights(self) -> dict[str, torch.Tensor]:
        """Weights of every layer, keyed as in features()."""
        return {name: getattr(self, name).weight for name in ("conv1", "conv2", "conv3", "fc1", "fc2")}


def _head(head: nn.ModuleDict, z: torch.Tensor) -> torch.Tensor:
    """fc1 -> ReLU -> fc2 of a frozen head; gradients still flow into the shared encoder through z."""
    return head["fc2"](torch.relu(head["fc1"](z)))
