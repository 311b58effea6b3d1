"""`agent.compile`: run the loss computations (forward and, through AOTAutograd, backward) under torch.compile.

Measured on this project's 2-core CPU, compiling gives no speedup (scripts/bench/bench_learner.py), so `auto` compiles
on CUDA only. CUDA-graph capture is not shipped: it has not been measured on a GPU here, and a captured graph that is
not re-captured after a reset replaces tensors computes silently wrong results (docs/gpu-notes.md).
"""

from __future__ import annotations

import torch

from core.config import ConfigError, check_choice

COMPILE_MODES = ("auto", "none", "compile", "cudagraph")


def compile_mode(mode: str, device: torch.device) -> str:
    """The mode in force: `none` or `compile`."""
    check_choice("agent.compile", mode, COMPILE_MODES)
    if mode == "cudagraph":
        raise ConfigError(
            "agent.compile=cudagraph is not shipped: CUDA-graph capture has not been measured on a GPU here; "
            "valid choices that run: auto, none, compile"
        )
    if mode == "auto":
        return "compile" if device.type == "cuda" else "none"
    return mode


def maybe_compile(fn, mode: str):
    """fn itself, or fn under torch.compile (module structure changes, e.g. injected heads, re-trace it)."""
    return torch.compile(fn) if mode == "compile" else fn
