"""ReDo: Recycling Dormant neurons (Sokar et al., ICML 2023)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from agents.protocol import FreshInit
from fire_rl.metrics import dormant_mask
from fire_rl.resets.base import LAYER_TYPES, BatchSource, ResetStrategy, ResettableAgent, named_layers


@dataclass
class _Rows:
    """Dormant units of a layer and the fresh incoming weights they get."""

    mask: Tensor
    weight: Tensor
    bias: Tensor | None


@dataclass
class _Columns:
    """Input columns of the next layer that belong to dormant units (each unit owns `per_unit` columns)."""

    mask: Tensor
    per_unit: int


def zero_moments(optimizer: torch.optim.Optimizer, param: Tensor, index: tuple) -> None:
    """Zero the per-element optimizer state (Adam's exp_avg, exp_avg_sq, ...) at `index`; step counts stay."""
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[index] = 0


def _successors(net: nn.Module) -> dict[str, tuple[str, nn.Module]]:
    """Each Conv/Linear layer's successor: the next one in definition order."""
    # True for a feed-forward chain such as the Nature CNN; a residual/branching net would need an explicit map.
    layers = list(named_layers(net))
    return {name: nxt for (name, _), nxt in zip(layers, layers[1:], strict=False)}


def _columns_per_unit(layer: str, units: int, nxt_name: str, nxt: nn.Module) -> int:
    """How many input columns of the next layer each unit owns: H*W for conv -> flatten -> Linear, else 1."""
    fan_in = nxt.weight.shape[1]
    if fan_in % units or (isinstance(nxt, nn.Conv2d) and fan_in != units):
        raise ValueError(
            f"ReDo: {layer} has {units} units but the next layer {nxt_name} takes {fan_in} inputs; it needs a "
            "feed-forward chain where each layer feeds the next Conv/Linear in definition order"
        )
    return fan_in // units


class ReDo(ResetStrategy):
    """ReDo (Sokar et al., ICML 2023; Dopamine labs/redo). Score per unit = mean |activation| over the batch (and
    spatial positions) divided by the layer mean; units with score <= tau are dormant. A dormant unit gets fresh
    incoming weights and bias from the layer's own initialiser (`agent.fresh_params`), zero outgoing weights (a conv
    channel owns H*W consecutive fc1 columns through the flatten), and zeroed Adam moments on all of those entries.
    Hidden layers only: the probed activations (`agent.probe`) name them; the output layer only loses columns.
    """

    calls_after_reset = False  # the network's function is preserved, so target networks stay as they are
    requires = (FreshInit,)  # and the agent's probe(), which every agent has

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
        self._rows: dict[tuple[str, str], _Rows] = {}
        self._columns: dict[tuple[str, str], _Columns] = {}
        self._optimizers: dict[str, torch.optim.Optimizer] = {}

    def select_layers(self, agent: ResettableAgent) -> dict[str, list[tuple[str, nn.Module]]]:
        """The selected layers plus their successors, whose input columns (outgoing weights) ReDo zeroes."""
        selected = super().select_layers(agent)
        out = {}
        for net_name, (net, _) in agent.networks().items():
            names = {name for name, _ in selected.get(net_name, [])}
            nexts = {nxt for name, (nxt, _) in _successors(net).items() if name in names}
            out[net_name] = [(n, m) for n, m in named_layers(net) if n in names or n in nexts]
        return out

    def prepare(
        self, agent: ResettableAgent, step: int, selected: dict, sample_batch: BatchSource | None, logs: dict
    ) -> None:
        """Dormant masks from the probed activations on `num_batches` replay batches, and fresh weights to draw on."""
        if sample_batch is None:
            raise ValueError("ReDo needs replay batches: call apply(agent, step, sample_batch=...)")
        obs = np.concatenate([sample_batch()["obs"] for _ in range(self.num_batches)])
        probes, fresh, networks = agent.probe(obs), agent.fresh_params(step), agent.networks()
        picked = super().select_layers(agent)  # the user's selection, without the added successors
        self._rows, self._columns = {}, {}
        self._optimizers = {name: opt for name, (_, opt) in networks.items()}
        total = 0
        for net_name, (net, _) in networks.items():
            modules, successors = dict(net.named_modules()), _successors(net)
            chosen = {name for name, _ in picked.get(net_name, [])}
            for layer, acts in probes.get(net_name, ({}, {}))[0].items():
                if not isinstance(modules.get(layer), LAYER_TYPES) or layer not in successors:
                    raise ValueError(f"ReDo: probe() activation {layer!r} of {net_name!r} is not a hidden Conv/Linear")
                if layer in chosen:
                    mask = dormant_mask(acts, self.tau)
                    total += self._plan(net_name, layer, mask, fresh[net_name], successors, logs)
        logs["reset/units_reset"] = float(total)

    def _plan(self, net_name: str, layer: str, mask: Tensor, fresh: dict, successors: dict, logs: dict) -> int:
        """Record the rows to redraw and the next layer's columns to zero; return the number of dormant units."""
        nxt_name, nxt = successors[layer]
        per_unit = _columns_per_unit(layer, mask.numel(), nxt_name, nxt)
        mask = mask.to(nxt.weight.device)
        self._rows[(net_name, layer)] = _Rows(mask, fresh[f"{layer}.weight"], fresh.get(f"{layer}.bias"))
        self._columns[(net_name, nxt_name)] = _Columns(mask, per_unit)
        count = int(mask.sum())
        logs[f"reset/{net_name}/{layer}/units_reset"] = float(count)
        return count

    def transform(
        self, net_name: str, layer_name: str, module: nn.Module, theta0: dict[str, Tensor], logs: dict[str, float]
    ) -> bool:
        """Fresh rows for this layer's dormant units, then zero columns for the previous layer's dormant units."""
        optimizer, touched = self._optimizers[net_name], False
        rows = self._rows.get((net_name, layer_name))
        if rows is not None and rows.mask.any():
            module.weight[rows.mask] = rows.weight.to(module.weight)[rows.mask]
            zero_moments(optimizer, module.weight, (rows.mask,))
            if module.bias is not None and rows.bias is not None:
                module.bias[rows.mask] = rows.bias.to(module.bias)[rows.mask]
                zero_moments(optimizer, module.bias, (rows.mask,))
            touched = True
        columns = self._columns.get((net_name, layer_name))
        if columns is not None and columns.mask.any():
            # Zeroed after the fresh rows, so every outgoing weight of a recycled unit is 0 and the output unchanged.
            index = (slice(None), columns.mask.repeat_interleave(columns.per_unit))
            module.weight[index] = 0
            zero_moments(optimizer, module.weight, index)
            touched = True
        return touched
