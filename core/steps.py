"""Budgets, cadences and schedules count env steps, and the loop advances several at a time (num_envs, action
repeat), so "is it due" is always asked of a stretch of steps (prev_step, step], never of one step by equality."""

from __future__ import annotations


def crossed(prev_step: int, step: int, every: int | None) -> bool:
    """True when (prev_step, step] contains a multiple of `every` (never when `every` is None)."""
    return every is not None and step // every > prev_step // every


def reached(prev_step: int, step: int, at: int) -> bool:
    """True when (prev_step, step] contains `at`."""
    return prev_step < at <= step
