"""Full reset: every selected layer back to its initial weights."""

from __future__ import annotations

from torch import Tensor, nn

from fire_rl.resets.base import LayerwiseReset, restore_theta0


class FullReset(LayerwiseReset):
    """Reset (Nikishin et al., ICML 2022), as `--full_reset 1` in the FIRE authors' rl/dqn/cleanrl/dqn_atari_resume.py.

    Weights and biases <- theta0 exactly; Adam state kept by default, as the authors' DQN does.
    """

    touches_norms = True  # the paper's SAC full reset rebuilds the whole network, LayerNorm included

    def transform(
        self, net_name: str, layer_name: str, module: nn.Module, theta0: dict[str, Tensor], logs: dict[str, float]
    ) -> bool:
        """Copy theta0 into the layer."""
        restore_theta0(module, theta0)
        return True
