"""ReDo: Recycling Dormant neurons (Sokar et al., ICML 2023)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from agents.protocol import FreshInit, UnitGraph
from fire_rl.metrics import dormant_mask
from fire_rl.resets.base import BatchSource, LayerwiseReset, ResettableAgent
from fire_rl.resets.units import HiddenLayer, Successor, fresh_rows, recyclable, zero_columns


class ReDo(LayerwiseReset):
    """ReDo (Sokar et al., ICML 2023; Dopamine labs/redo). Score per unit = mean |activation| over the batch (and
    spatial positions) divided by the layer mean; units with score <= tau are dormant. A dormant unit gets fresh
    incoming weights and bias from the layer's own initialiser (`agent.fresh_params`), zero outgoing weights in every
    layer it feeds (a conv channel owns H*W consecutive fc1 columns through the flatten), and zeroed Adam moments on
    all of those entries (fire_rl/resets/units.py). Hidden layers only, as the agent's unit graph names them; an
    output layer only loses columns.
    """

    calls_after_reset = False  # the network's function is preserved, so target networks stay as they are
    requires = (FreshInit, UnitGraph)  # and the agent's probe(), which every agent has

    def __init__(
        self,
        tau: float = 0.1,
        num_batches: int = 8,
        at_switch: bool = False,
        every_steps: int | None = 1_000,
        optimizer: str = "keep",
        **kwargs,
    ) -> None:
        super().__init__(at_switch=at_switch, every_steps=every_steps, optimizer=optimizer, **kwargs)
        if not tau >= 0.0:
            raise ValueError(f"ReDo tau must be >= 0, got {tau}")
        if int(num_batches) < 1:
            raise ValueError(f"ReDo num_batches must be >= 1 replay batches, got {num_batches}")
        self.tau, self.num_batches = float(tau), int(num_batches)
        self._rows: dict[tuple[str, str], tuple[HiddenLayer, Tensor, dict]] = {}
        self._columns: dict[tuple[str, str], tuple[Successor, Tensor]] = {}
        self._optimizers: dict[str, torch.optim.Optimizer] = {}

    def select_layers(self, agent: ResettableAgent) -> dict[str, list[tuple[str, nn.Module]]]:
        """The selected hidden layers plus the layers they feed, whose input columns ReDo zeroes."""
        touched = {}
        for h in recyclable(agent, super().select_layers(agent)):
            for name, module in [(h.name, h.module), *((s.name, s.module) for s in h.successors)]:
                touched[(h.net, name)] = module
        if not touched:
            raise ValueError(
                f"ReDo found no recyclable hidden layer: {type(agent).__name__}'s unit graph has none the selection "
                "picks (SimBa's residual blocks are not a feed-forward chain)"
            )
        out: dict[str, list[tuple[str, nn.Module]]] = {net: [] for net in agent.networks()}
        for net, (module, _) in agent.networks().items():
            out[net] = [(n, m) for n, m in module.named_modules() if (net, n) in touched]
        return out

    def prepare(
        self, agent: ResettableAgent, step: int, selected: dict, sample_batch: BatchSource | None, logs: dict
    ) -> None:
        """Dormant masks from the probed activations on `num_batches` replay batches, and fresh weights to draw on."""
        if sample_batch is None:
            raise ValueError("ReDo needs replay batches: call apply(agent, step, sample_batch=...)")
        batches = [sample_batch()["obs"] for _ in range(self.num_batches)]  # numpy, or tensors of a device replay
        obs = torch.cat(batches) if torch.is_tensor(batches[0]) else np.concatenate(batches)
        probes, fresh = agent.probe(obs), agent.fresh_params(step)
        self._optimizers = {name: opt for name, (_, opt) in agent.networks().items()}
        self._rows, self._columns, total = {}, {}, 0
        for layer in recyclable(agent, super().select_layers(agent)):
            activations = probes[layer.net][0]
            if layer.key not in activations:
                raise ValueError(f"ReDo: probe() of {layer.net!r} has no activation {layer.key!r}")
            mask = dormant_mask(activations[layer.key], self.tau).to(layer.module.weight.device)
            self._rows[(layer.net, layer.name)] = (layer, mask, fresh[layer.net])
            for successor in layer.successors:
                self._columns[(layer.net, successor.name)] = (successor, mask)
            count = int(mask.sum())
            logs[f"reset/{layer.net}/{layer.name}/units_reset"] = float(count)
            total += count
        logs["reset/units_reset"] = float(total)

    def transform(
        self, net_name: str, layer_name: str, module: nn.Module, theta0: dict[str, Tensor], logs: dict[str, float]
    ) -> bool:
        """Fresh rows for this layer's dormant units, then zero columns for the dormant units that feed it."""
        optimizer, touched = self._optimizers[net_name], False
        if (net_name, layer_name) in self._rows:
            layer, mask, fresh = self._rows[(net_name, layer_name)]
            if mask.any():
                fresh_rows(layer, mask, fresh, optimizer)
                touched = True
        if (net_name, layer_name) in self._columns:
            successor, mask = self._columns[(net_name, layer_name)]
            if mask.any():
                # After the fresh rows, so every outgoing weight of a recycled unit is 0 and the output unchanged.
                zero_columns(successor, mask, optimizer)
                touched = True
        return touched
