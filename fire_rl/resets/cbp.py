"""Continual backprop, CBP (Dohare et al., Nature 2024; shibhansh/loss-of-plasticity, generate-and-test)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from agents.protocol import FreshInit, UnitGraph, UpdateFeatures
from fire_rl.resets.base import ResetStrategy, ResettableAgent, layer_type_names, select_layers
from fire_rl.resets.units import HiddenLayer, recyclable, recycle


class CBP(ResetStrategy):
    """Continual backprop: after every gradient update, each hidden unit's contribution utility
    u <- decay * u + (1 - decay) * mean|h| * sum|outgoing weights| is updated from the activations that update
    computed (no second forward pass; conv channels average |h| over batch and positions). Units older than
    `maturity` are eligible; each update adds `replacement_rate` * (eligible units) to a per-layer count whose whole
    part is replaced, the fraction carried over. The replaced units are the eligible ones with the smallest
    bias-corrected utility u / (1 - decay^age): fresh incoming weights and bias from the layer's own initialiser,
    zero outgoing weights, zeroed optimizer moments of all those entries, age and utility back to 0
    (fire_rl/resets/units.py). Replacements are logged in the `train` rows (`cbp/...`); no reset row is written.
    fire_rl does not move a replaced unit's mean contribution into the next layer's bias (LoP's mean-corrected
    variant).
    """

    intervenes = False  # no scheduled intervention: its work happens in after_update, on every update
    requires = (FreshInit, UnitGraph, UpdateFeatures)

    def __init__(
        self,
        replacement_rate: float = 1e-4,
        maturity: int = 10_000,
        decay: float = 0.99,
        layers=None,
        layer_types=None,
    ) -> None:
        if not 0.0 <= replacement_rate <= 1.0:
            raise ValueError(f"CBP replacement_rate must be in [0, 1], got {replacement_rate}")
        if int(maturity) < 0:
            raise ValueError(f"CBP maturity must be >= 0 updates, got {maturity}")
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"CBP decay must be in [0, 1), got {decay}")
        self.rate, self.maturity, self.decay = float(replacement_rate), int(maturity), float(decay)
        self.layers, self.layer_types = layers, layer_type_names(layer_types)
        self._layers: list[HiddenLayer] | None = None
        self.state: dict[str, dict[str, Any]] = {}  # per "net/layer": utility, age, carry, replaced counts
        self.draws = 0  # fresh initialisations drawn so far (reproducible from the agent's seed)

    def resolve(self, agent: ResettableAgent) -> dict[str, Any]:
        resolved = super().resolve(agent)
        layers = self.recyclable(agent)
        if not layers:
            raise ValueError(
                f"CBP found no hidden layer to work on: {type(agent).__name__}'s unit graph has none the selection "
                "picks (SimBa's residual blocks are not a feed-forward chain)"
            )
        return {**resolved, "layers": [f"{h.net}/{h.name}" for h in layers]}

    def recyclable(self, agent: ResettableAgent) -> list[HiddenLayer]:
        """The agent's hidden layers that the `layers` / `layer_types` selection picks."""
        return recyclable(agent, select_layers(agent, self.layers, self.layer_types))

    # --- every update -------------------------------------------------------------------------------------------
    @torch.no_grad()
    def after_update(self, agent: ResettableAgent, step: int) -> None:
        if self._layers is None:
            self._layers = self.recyclable(agent)
        features, fresh = agent.update_features, None
        for layer in self._layers:
            slot = self._slot(layer)
            utility = self._contribution(layer, features[layer.net][layer.key])
            slot["utility"].mul_(self.decay).add_((1.0 - self.decay) * utility)
            slot["age"] += 1
            eligible = slot["age"] > self.maturity
            slot["carry"] += self.rate * int(eligible.sum())
            count = int(slot["carry"])
            if count == 0:
                continue
            slot["carry"] -= count
            if fresh is None:
                fresh, self.draws = agent.fresh_params(self.draws), self.draws + 1
            mask = self._weakest(slot, eligible, count)
            recycle(layer, mask, fresh[layer.net], agent.networks()[layer.net][1])
            slot["utility"][mask], slot["age"][mask] = 0.0, 0
            slot["since_log"] += count
            slot["total"] += count

    def _slot(self, layer: HiddenLayer) -> dict[str, Any]:
        key = f"{layer.net}/{layer.name}"
        if key not in self.state:
            zeros = torch.zeros(layer.units, dtype=torch.float64)
            self.state[key] = {"utility": zeros, "age": zeros.long(), "carry": 0.0, "since_log": 0, "total": 0}
        return self.state[key]

    @staticmethod
    def _contribution(layer: HiddenLayer, acts: Tensor) -> Tensor:
        """mean |activation| per unit times the summed |weights| of every column the unit feeds."""
        mean_abs = acts.abs().mean(dim=[0, *range(2, acts.dim())]).double().cpu()
        outgoing = sum(
            s.module.weight.abs().transpose(0, 1).reshape(layer.units, -1).sum(1).double().cpu()
            for s in layer.successors
        )
        return mean_abs * outgoing

    def _weakest(self, slot: dict[str, Any], eligible: Tensor, count: int) -> Tensor:
        """Mask of the `count` eligible units with the smallest bias-corrected utility."""
        corrected = slot["utility"] / (1.0 - self.decay ** slot["age"].double())
        corrected[~eligible] = torch.inf
        mask = torch.zeros_like(eligible)
        mask[torch.topk(corrected, min(count, int(eligible.sum())), largest=False).indices] = True
        return mask

    # --- logging and checkpoints ------------------------------------------------------------------------------------
    def log_values(self) -> dict[str, float]:
        """Units replaced since the last `train` row, per layer and in all, and in all since the start."""
        values = {f"cbp/{key}/units_replaced": float(slot["since_log"]) for key, slot in self.state.items()}
        values["cbp/units_replaced"] = float(sum(slot["since_log"] for slot in self.state.values()))
        values["cbp/units_replaced_total"] = float(sum(slot["total"] for slot in self.state.values()))
        for slot in self.state.values():
            slot["since_log"] = 0
        return values

    def state_dict(self) -> dict[str, Any]:
        return {"state": {k: dict(v) for k, v in self.state.items()}, "draws": self.draws}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state = {k: dict(v) for k, v in state.get("state", {}).items()}
        self.draws = int(state.get("draws", 0))
