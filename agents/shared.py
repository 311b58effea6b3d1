"""What the DQN and SAC agents do the same way: fresh initialisations for resets, clearing optimizer state in place,
and loading a checkpoint (taken after plasticity injection; tensors read onto the CPU)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import numpy as np
import torch

Built = TypeVar("Built")


def seeded_init(seed: int, draw: int, build: Callable[[], Built]) -> Built:
    """`build()` (new networks, their layers' own initialisers) under a torch seed derived from (seed, draw): the
    same draw gives the same weights, and the training RNG stream is left where it was."""
    derived = int(np.random.SeedSequence([seed, draw]).generate_state(1)[0])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derived)
        return build()


def match_injection(state: dict[str, Any], injected: bool, nets: Iterable, rebuild_optimizers: Callable) -> None:
    """Before loading `state`: if it was saved after plasticity injection and this agent has not injected, add the
    injected heads to `nets` and rebuild the optimizers over the new trainable parameters, so every tensor of the
    checkpoint has a place (the values then come from the checkpoint)."""
    if state.get("injected", False) and not injected:
        for net in nets:
            net.add_injection_heads()
        rebuild_optimizers()


def to_device(tree: Any, device: torch.device) -> Any:
    """Every tensor of a nested dict moved to `device` (a checkpoint's theta0, loaded onto the CPU, before a CUDA
    run's resets compare the live weights with it)."""
    if isinstance(tree, dict):
        return {key: to_device(value, device) for key, value in tree.items()}
    return tree.to(device) if isinstance(tree, torch.Tensor) else tree


def clear_optimizer_state(optimizer: torch.optim.Optimizer, params=None) -> None:
    """Put the optimizer state of `params` (default: every parameter) back to where a fresh optimizer starts, in
    place: zeros, and a step count of 0. For Adam, AdamW and RMSprop (centered or not) a fresh state is exactly
    that, so the next steps equal those of a new optimizer; writing in place keeps a captured update graph valid
    (a new optimizer, or dropped state, would leave the graph using the old tensors)."""
    chosen = optimizer.state if params is None else [p for p in params if p in optimizer.state]
    with torch.no_grad():
        for param in chosen:
            for value in optimizer.state[param].values():
                if isinstance(value, torch.Tensor):
                    value.zero_()


def match_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """After loading an optimizer's state: its `capturable` setting as this run's mode needs it, whatever mode wrote
    the checkpoint (load_state_dict takes the saved param_groups, flag included), and each step count where that
    setting keeps it: on the parameter's device when capturable (a CUDA graph updates it there), else on the CPU."""
    for group in optimizer.param_groups:
        if "capturable" in group:
            group["capturable"] = capturable
    for param, state in optimizer.state.items():
        step = state.get("step")
        if isinstance(step, torch.Tensor):
            state["step"] = step.to(param.device if capturable else "cpu", torch.float32)
