"""The agent contract, in one place: what the training loop, the reset strategies and the metrics use.

Every agent (agents/dqn.py, agents/sac.py) is built as `Agent(spaces, device, seed, **hyperparameters)` and has
everything in `Agent`. The small optional capabilities below are what some reset strategies need on top; a
strategy names the ones it needs (`requires`) and is refused at build time when the agent lacks one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor, nn

Batch = dict[str, np.ndarray]  # obs, actions, rewards, terminated, next_obs (the replay's sample)
Probe = dict[str, tuple[dict[str, Tensor], dict[str, Tensor]]]  # net -> (hidden activations, layer weights)


@dataclass(frozen=True)
class ResetDefaults:
    """What `policy: agent` and `optimizer: agent` of a reset strategy mean for this agent (the paper's form).

    head_to_theta0: the FIRE authors' DQN treats the encoder (convs) with the method and puts the linear head back
    to theta0 (FIRE and S&P); their SAC applies the method to every layer.
    optimizer: what happens to optimizer state after a reset (DQN: keep Adam; SAC: fresh optimizers).
    """

    head_to_theta0: bool
    optimizer: str


class Agent(Protocol):
    """What every agent has."""

    learning_starts: int  # env steps before the first update
    loss_keys: tuple[str, ...]  # the keys `update` returns, averaged into the `train` rows (regulariser keys too)
    reset_defaults: ResetDefaults

    def act(self, obs: np.ndarray, step: int, explore: bool = True) -> np.ndarray: ...

    def update(self, batch: Batch, step: int) -> dict[str, Tensor]:
        """One learning step; returns detached 0-d tensors (on the agent's device) keyed by `loss_keys`: nothing is
        read back to the host here, the loop averages them when it writes a `train` row."""
        ...

    def log_values(self, step: int) -> dict[str, float]:
        """Values the `train` rows carry besides losses (DQN: charts/epsilon)."""
        ...

    def networks(self) -> dict[str, tuple[nn.Module, torch.optim.Optimizer]]:
        """What resets may touch: {name: (module, its optimizer)}."""
        ...

    def initial_params(self) -> dict[str, dict[str, Tensor]]:
        """theta0 per network: the state_dict at construction."""
        ...

    def after_reset(self) -> None:
        """Re-establish what a weight transform leaves inconsistent (targets, temperature, optimizers)."""
        ...

    def probe(self, obs: np.ndarray) -> Probe: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


# --- optional capabilities -------------------------------------------------------------------------------------


@runtime_checkable
class GradientLosses(Protocol):
    """Differentiable losses per network on a replay batch (DASH)."""

    def losses(self, batch: Batch) -> dict[str, Tensor]: ...


@runtime_checkable
class Primable(Protocol):
    """Heavy priming (Nikishin et al. 2022, section 3): many gradient updates at one agent step, on the replay as it
    is when learning starts, following the agent's own update rules."""

    def prime_update(self, batch: Batch, index: int, steps_per_update: float) -> dict[str, Tensor]:
        """Priming update number `index` (from 0); `steps_per_update` agent steps is what one update stands for in
        training (1 / updates_per_env_step), so rules keyed on agent steps (DQN's target copy) count updates here."""
        ...


@runtime_checkable
class FreshInit(Protocol):
    """Fresh initialisations of the networks from their own initialisers, reproducible from a draw number (ReDo)."""

    def fresh_params(self, draw: int) -> dict[str, dict[str, Tensor]]: ...


@runtime_checkable
class PlasticityInjectable(Protocol):
    """Plasticity injection (Nikishin et al. 2023): at most once per run."""

    @property
    def injected(self) -> bool: ...

    def inject_plasticity(self) -> None: ...


@runtime_checkable
class UnitGraph(Protocol):
    """Which hidden layers feed which layers directly, so units can be recycled (ReDo, CBP)."""

    def unit_graph(self) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
        """{net: {feature key: (module name of the layer, module names of the layers its units feed)}}; a net whose
        hidden units do not feed the next layers directly (residual blocks) is left out."""
        ...


@runtime_checkable
class UpdateFeatures(Protocol):
    """The hidden activations the last update computed on its batch (CBP's utilities reuse them)."""

    @property
    def update_features(self) -> dict[str, dict[str, Tensor]]:
        """{net: {feature key: detached activations}} of the last update's forward pass."""
        ...


@runtime_checkable
class Regularizable(Protocol):
    """Adds a regulariser's penalty to its networks' losses in every update (L2-init, Parseval)."""

    def set_regularizer(self, regularizer: Regularizer) -> None: ...


class Regularizer(Protocol):
    """A penalty on a network's parameters, added to that network's loss (fire_rl/regularizers.py)."""

    name: str

    def penalty(self, net: nn.Module, theta0: dict[str, Tensor]) -> Tensor: ...


def missing_capabilities(agent: object, required: tuple[type, ...]) -> list[str]:
    """Names of the capabilities in `required` the agent does not offer."""
    return [cap.__name__ for cap in required if not isinstance(agent, cap)]
