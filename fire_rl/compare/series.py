"""What the tables and figures of `python -m fire_rl.compare` read out of a run's metrics rows: evaluation returns
per task, the return on the task being trained, training-episode returns, plasticity probes and reset steps."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable

import numpy as np

Series = tuple[np.ndarray, np.ndarray]  # (steps, values) of one run

PHASE_ORDER = {"periodic": 0, "pre_reset": 1, "post_reset": 2}


def as_series(points: list[tuple[float, float]]) -> Series:
    """(step, value) pairs as two arrays sorted by step."""
    points = sorted(points, key=lambda p: p[0])  # stable: equal steps keep file order
    return np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float)


def eval_series(rows: Iterable[dict]) -> dict[str, Series]:
    """Evaluation return per task over agent steps (`eval/<task>/return`; null values left out)."""
    points: dict[str, list] = defaultdict(list)
    for row in rows:
        if row.get("event") != "eval":
            continue
        for key, value in row.items():
            if key.startswith("eval/") and key.endswith("/return") and value is not None:
                points[key[len("eval/") : -len("/return")]].append((row["step"], float(value)))
    return {task: as_series(p) for task, p in points.items()}


def current_series(rows: list[dict]) -> Series:
    """The return on the task being trained, over the whole run: each eval row's value for its own `task`."""
    points = [
        (row["step"], float(value))
        for row in rows
        if row.get("event") == "eval" and (value := row.get(f"eval/{row.get('task')}/return")) is not None
    ]
    return as_series(points)


def plasticity_keys(rows: list[dict]) -> dict[str, str]:
    """Panel title -> key: pooled dormant ratio (tau 0.025, 0.1), effective rank and srank of the last hidden layer."""
    first = next((r for r in rows if r.get("event") == "plasticity"), {})
    keys = {}
    for net in dict.fromkeys(k.split("/")[1] for k in first if k.startswith("plasticity/")):
        layers = [k.split("/")[3] for k in first if k.startswith(f"plasticity/{net}/effective_rank/")]
        keys[f"{net}: dormant ratio, tau 0.025 (all layers)"] = f"plasticity/{net}/dormant_0.025/all"
        keys[f"{net}: dormant ratio, tau 0.1 (all layers)"] = f"plasticity/{net}/dormant_0.1/all"
        for layer in [layer for layer in layers if layer != "all"][-1:]:
            keys[f"{net}: effective rank ({layer})"] = f"plasticity/{net}/effective_rank/{layer}"
            keys[f"{net}: srank ({layer})"] = f"plasticity/{net}/srank/{layer}"
    return keys


def probe_at(rows: list[dict], step: int, key: str, after_reset: bool = False) -> float:
    """The probe value at the end of a visit ending at `step` (the last probe at or before it, pre-reset at a
    switch), or the post-reset probe at `step`; NaN when there is none."""
    probes = [r for r in rows if r.get("event") == "plasticity" and r.get(key) is not None and r["step"] <= step]
    if after_reset:
        probes = [r for r in probes if r["step"] == step and r.get("phase") == "post_reset"]
    else:
        probes = [r for r in probes if not (r["step"] == step and r.get("phase") == "post_reset")]
    return float(probes[-1][key]) if probes else math.nan


def episode_series(rows: Iterable[dict], merged: str | None = None) -> dict[str, Series]:
    """Training-episode returns (raw game score) per task over agent steps (all tasks as one, named `merged`)."""
    points: dict[str, list] = defaultdict(list)
    for row in rows:
        if row.get("event") == "episode" and row.get("charts/episodic_return") is not None:
            points[merged or row.get("task", "?")].append((row["step"], float(row["charts/episodic_return"])))
    return {task: as_series(p) for task, p in points.items()}


def plasticity_series(rows: Iterable[dict], key: str) -> Series:
    """One plasticity key over steps; pre/post-reset probes share the step and keep their order (a vertical jump)."""
    points = [
        (row["step"] + PHASE_ORDER.get(row.get("phase"), 0) / 10, float(row[key]))
        for row in rows
        if row.get("event") == "plasticity" and row.get(key) is not None
    ]
    return as_series(points)


def reset_steps(rows: Iterable[dict]) -> list[int]:
    """Agent steps at which a reset was applied."""
    return [row["step"] for row in rows if row.get("event") == "reset"]
