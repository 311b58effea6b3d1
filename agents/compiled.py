"""`agent.compile`: how a training update runs.

- `none`: eager PyTorch.
- `compile`: the loss computations (forward and, through AOTAutograd, backward) under torch.compile.
- `graph`: the whole update (loss, penalty, backward, optimizer step) captured once as a CUDA graph and replayed
  (agents/graphed.py); CUDA only, refused on any other device.
- `auto`: `compile` on CUDA, `none` elsewhere. Measured on this project's 2-core CPU, compiling gives no speedup
  (scripts/bench/bench_learner.py); on CUDA, which of compile and graph is faster is measured by that script.
"""

from __future__ import annotations

import torch

from core.config import ConfigError, check_choice

COMPILE_MODES = ("auto", "none", "compile", "graph")


def compile_mode(mode: str, device: torch.device) -> str:
    """The mode in force: `none`, `compile` or `graph`."""
    check_choice("agent.compile", mode, COMPILE_MODES)
    if mode == "graph" and device.type != "cuda":
        raise ConfigError(
            f"agent.compile=graph captures the update as a CUDA graph and needs device=cuda, got device={device}; "
            "valid choices on this device: auto, none, compile"
        )
    if mode == "auto":
        return "compile" if device.type == "cuda" else "none"
    return mode


def maybe_compile(fn, mode: str):
    """fn itself, or fn under torch.compile (module structure changes, e.g. injected heads, re-trace it)."""
    return torch.compile(fn) if mode == "compile" else fn
