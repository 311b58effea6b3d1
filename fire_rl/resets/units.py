"""Hidden units and their recycling, shared by ReDo and continual backprop (CBP).

A unit of a hidden layer owns a row of its layer's weight (and a bias entry) and the input columns of every layer
it feeds (a conv channel owns H*W consecutive columns of a Linear after a flatten). Recycling a unit gives it fresh
incoming weights from the layer's own initialiser and zero outgoing weights, so the network computes exactly what it
did, and zeroes the optimizer's per-element state (Adam moments) of all those entries. The agent says which layer
feeds which (`unit_graph`, agents/protocol.py UnitGraph).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class Successor:
    """A layer fed by a hidden layer, and how many of its input columns each unit owns."""

    name: str
    module: nn.Module
    per_unit: int


@dataclass(frozen=True)
class HiddenLayer:
    """A hidden layer whose units can be recycled: its feature key (probe / update features), module and feeds."""

    net: str
    key: str
    name: str
    module: nn.Module
    successors: tuple[Successor, ...]

    @property
    def units(self) -> int:
        return self.module.weight.shape[0]


def hidden_layers(agent) -> list[HiddenLayer]:
    """Every hidden layer of the agent's unit graph, with its successors resolved to modules."""
    layers = []
    networks = agent.networks()
    for net, graph in agent.unit_graph().items():
        modules = dict(networks[net][0].named_modules())
        for key, (name, feeds) in graph.items():
            module = modules[name]
            successors = tuple(Successor(f, modules[f], columns_per_unit(name, module, f, modules[f])) for f in feeds)
            layers.append(HiddenLayer(net, key, name, module, successors))
    return layers


def recyclable(agent, selected: dict[str, list[tuple[str, nn.Module]]]) -> list[HiddenLayer]:
    """The agent's hidden layers among `selected` (a strategy's layer selection): the units ReDo and CBP may
    recycle."""
    picked = {(net, name) for net, layers in selected.items() for name, _ in layers}
    return [h for h in hidden_layers(agent) if (h.net, h.name) in picked]


def columns_per_unit(name: str, module: nn.Module, successor: str, nxt: nn.Module) -> int:
    """Input columns of `nxt` each unit of `module` owns: H*W for conv -> flatten -> Linear, else 1."""
    units, fan_in = module.weight.shape[0], nxt.weight.shape[1]
    if fan_in % units or (isinstance(nxt, nn.Conv2d) and fan_in != units):
        raise ValueError(f"{name} has {units} units but {successor}, which it feeds, takes {fan_in} inputs")
    return fan_in // units


def zero_moments(optimizer: torch.optim.Optimizer, param: Tensor, index: tuple) -> None:
    """Zero the per-element optimizer state (Adam's exp_avg, exp_avg_sq, ...) at `index`; step counts stay."""
    for value in optimizer.state.get(param, {}).values():
        if torch.is_tensor(value) and value.shape == param.shape:
            value[index] = 0


@torch.no_grad()
def fresh_rows(layer: HiddenLayer, mask: Tensor, fresh: dict[str, Tensor], optimizer) -> None:
    """The masked units' incoming weights and bias from a fresh initialisation; their optimizer state zeroed."""
    module, mask = layer.module, mask.to(layer.module.weight.device)
    module.weight[mask] = fresh[f"{layer.name}.weight"].to(module.weight)[mask]
    zero_moments(optimizer, module.weight, (mask,))
    if module.bias is not None:
        module.bias[mask] = fresh[f"{layer.name}.bias"].to(module.bias)[mask]
        zero_moments(optimizer, module.bias, (mask,))


@torch.no_grad()
def zero_columns(successor: Successor, mask: Tensor, optimizer) -> None:
    """The masked units' outgoing weights in one successor set to 0, with their optimizer state."""
    weight = successor.module.weight
    index = (slice(None), mask.to(weight.device).repeat_interleave(successor.per_unit))
    weight[index] = 0
    zero_moments(optimizer, weight, index)


def recycle(layer: HiddenLayer, mask: Tensor, fresh: dict[str, Tensor], optimizer) -> None:
    """Fresh incoming weights, zero outgoing weights, zeroed optimizer state for the masked units of `layer`."""
    fresh_rows(layer, mask, fresh, optimizer)
    for successor in layer.successors:
        zero_columns(successor, mask, optimizer)
