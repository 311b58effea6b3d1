"""Networks shared by the agents."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

HEAD = ("fc1", "fc2")  # the Q-head on top of the conv encoder (what plasticity injection adds beside itself)


@dataclass(frozen=True)
class Architecture:
    """A conv encoder (out channels, kernel, stride per layer) on square frames, then fc1 (hidden) and fc2 (Q)."""

    convs: tuple[tuple[int, int, int], ...]
    hidden: int
    frame: int  # observation side in pixels
    input_divisor: float  # uint8 pixels / 255 (Atari); MinAtar's 0/1 channels are used as they are
    xavier: bool  # Xavier-uniform weights and zero biases (the FIRE authors' DQN); else PyTorch's default init

    def flat_dim(self) -> int:
        side = self.frame
        for _, kernel, stride in self.convs:
            side = (side - kernel) // stride + 1
        return self.convs[-1][0] * side * side


ARCHITECTURES = {
    # Nature DQN (Mnih et al. 2015) on 84x84 frames.
    "nature": Architecture(
        ((32, 8, 4), (64, 4, 2), (64, 3, 1)), hidden=512, frame=84, input_divisor=255.0, xavier=True
    ),
    # The MinAtar paper's DQN (kenjyoung/MinAtar examples/dqn.py): conv 16 3x3 stride 1, fc 128, default init.
    "minatar": Architecture(((16, 3, 1),), hidden=128, frame=10, input_divisor=1.0, xavier=False),
}


class QNetwork(nn.Module):
    """Conv encoder (conv1, conv2, ...) -> fc1 -> ReLU -> fc2 = Q-values, with plasticity injection on the head."""

    def __init__(
        self, num_actions: int, in_channels: int = 4, architecture: str = "nature", xavier: bool | None = None
    ):
        super().__init__()
        arch = ARCHITECTURES[architecture]
        self.conv_names, self.input_divisor = tuple(f"conv{i + 1}" for i in range(len(arch.convs))), arch.input_divisor
        channels = in_channels
        for name, (out, kernel, stride) in zip(self.conv_names, arch.convs, strict=True):
            setattr(self, name, nn.Conv2d(channels, out, kernel_size=kernel, stride=stride))
            channels = out
        self.fc1 = nn.Linear(arch.flat_dim(), arch.hidden)
        self.fc2 = nn.Linear(arch.hidden, num_actions)
        if arch.xavier if xavier is None else xavier:  # None: the architecture's own initialisation
            for layer in self.layers():
                # The FIRE authors' DQN uses Xavier-uniform "since redo use xavier_uniform" (docs/paper-notes.md §3).
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        # Set by inject(): frozen trained head, and the frozen copy of the new head (Nikishin et al. 2023).
        self.head_old: nn.ModuleDict | None = None
        self.head_ref: nn.ModuleDict | None = None

    def layers(self) -> list[nn.Module]:
        """Every Conv2d and Linear layer, input to output."""
        return [getattr(self, name) for name in (*self.conv_names, *HEAD)]

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
        """Q-values for a batch of uint8 observations (B, C, frame, frame)."""
        return self.features(obs)["q"]

    def features(self, obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Post-ReLU output of every hidden layer (keyed by layer name) and the Q-values under 'q'."""
        x = obs.float() / self.input_divisor
        out = {}
        for name in self.conv_names:
            x = out[name] = torch.relu(getattr(self, name)(x))
        z = x.flatten(1)
        x = out["fc1"] = torch.relu(self.fc1(z))
        out["q"] = self.fc2(x)
        if self.head_old is not None:
            # old + (new - ref): new and ref are bit-identical at injection, so the output is exactly unchanged.
            out["q"] = _head(self.head_old, z) + (out["q"] - _head(self.head_ref, z))
        return out

    def hidden_weights(self) -> dict[str, torch.Tensor]:
        """Weights of every layer, keyed as in features()."""
        return {name: getattr(self, name).weight for name in (*self.conv_names, *HEAD)}


def _head(head: nn.ModuleDict, z: torch.Tensor) -> torch.Tensor:
    """fc1 -> ReLU -> fc2 of a frozen head; gradients still flow into the shared encoder through z."""
    return head["fc2"](torch.relu(head["fc1"](z)))
