"""Networks shared by the agents."""

from __future__ import annotations

import torch
from torch import nn


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
        x = out["fc1"] = torch.relu(self.fc1(x.flatten(1)))
        out["q"] = self.fc2(x)
        return out

    def hidden_weights(self) -> dict[str, torch.Tensor]:
        """Weights of every layer, keyed as in features()."""
        return {name: getattr(self, name).weight for name in ("conv1", "conv2", "conv3", "fc1", "fc2")}
