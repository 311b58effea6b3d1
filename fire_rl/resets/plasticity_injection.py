"""Plasticity injection (Nikishin et al., NeurIPS 2023) as the FIRE authors' DQN baseline (`--pi 1`)."""

from __future__ import annotations

import time

import torch
from torch import Tensor

from agents.protocol import GradientLosses, PlasticityInjectable
from fire_rl.resets.base import (
    BatchSource,
    ResetReport,
    ResettableAgent,
    ScheduledReset,
    layer_params,
    named_layers,
)


class PlasticityInjection(ScheduledReset):
    """Q(x) = h_old(f(x)) + h_new(f(x)) - h_ref(f(x)) (docs/paper-notes.md §2.1): the shared encoder f keeps
    training, the trained head h_old is frozen, h_new (trainable) and h_ref (frozen) both start at theta0, so the
    output is unchanged at the moment of injection. The target network is injected from its own encoder and head,
    and a fresh optimizer is built over the trainable parameters only. Injection happens once per run: the first
    trigger injects, every later trigger changes nothing and logs `reset/skipped = 1`. Needs an agent that is
    PlasticityInjectable (DQN); SAC has no injection in the authors' code (docs/paper-notes.md §7.6).
    """

    requires = (PlasticityInjectable, GradientLosses)  # losses: to log that injection leaves them unchanged

    def apply(self, agent: ResettableAgent, step: int, sample_batch: BatchSource | None = None) -> ResetReport:
        """Inject once; log the head's SFE/DfI, how much the loss moved (0 by design) and whether it was skipped."""
        start = time.perf_counter()
        self.resolve_once(agent)
        if agent.injected:
            return ResetReport({"reset/skipped": 1.0, "reset/injected": 0.0}).close(step, start)
        batch = sample_batch() if sample_batch is not None else None
        loss_before, before = _losses(agent, batch), _snapshot(agent)
        agent.inject_plasticity()
        report = _changed_layers(agent, before)
        loss_after = _losses(agent, batch)
        report.logs["reset/loss_change"] = max((abs(loss_after[k] - v) for k, v in loss_before.items()), default=0.0)
        report.logs.update({"reset/skipped": 0.0, "reset/injected": 1.0})
        return report.close(step, start)


def _changed_layers(agent: ResettableAgent, before: dict) -> ResetReport:
    """The trainable layers injection moved (the new head, now at theta0), recorded with their SFE and DfI."""
    report, init = ResetReport(), agent.initial_params()
    for net_name, (net, _) in agent.networks().items():
        modules = dict(net.named_modules())
        for layer, pre in before[net_name].items():
            module = modules[layer]
            if all(torch.equal(pre[k], p) for k, p in layer_params(module).items()):
                continue
            theta0 = {k: init[net_name][f"{layer}.{k}"] for k in pre}
            report.add_layer(net_name, layer, pre, module, theta0)
    return report


def _snapshot(agent: ResettableAgent) -> dict[str, dict[str, dict[str, Tensor]]]:
    """Copies of every Conv/Linear layer's weight and bias, per network."""
    return {
        net_name: {layer: {k: p.detach().clone() for k, p in layer_params(m).items()} for layer, m in named_layers(net)}
        for net_name, (net, _) in agent.networks().items()
    }


@torch.no_grad()
def _losses(agent: ResettableAgent, batch: dict | None) -> dict[str, float]:
    """The agent's losses on one batch (empty without a batch): injection must leave them unchanged."""
    if batch is None:
        return {}
    return {k: float(v) for k, v in agent.losses(batch).items()}
