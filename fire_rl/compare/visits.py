"""Return per task visit for `python -m fire_rl.compare`: how well each group learns the task it is training on,
visit by visit, for sequences of many visits (levels of one game, cycled games).

A visit's return is read from the evaluations of the visit's own task at steps inside the visit, (start, end]:
`return_mean`, the mean of all of them (its area under the curve, so the learning speed within the visit enters
it), and `return_last_half`, the mean of those in the visit's second half, (start + steps/2, end]. A group's `late`
row averages each run's `return_mean` over the last `late` visits and gives the probability of improvement over the
baseline group on those visits (rliable, Mann-Whitney per visit averaged over the visits, 95% stratified
bootstrap), the question a loss of plasticity that builds up over a sequence asks: does the group still learn late?
"""

from __future__ import annotations

import numpy as np

from fire_rl.compare.runs import Groups, RunRecord
from fire_rl.compare.stats import improvement_with_ci, visit_windows, window_mean
from fire_rl.compare.tables import NO_INTERVAL, ci_columns, finished, interval_columns


def visit_returns(run: RunRecord) -> list[tuple[float, float]]:
    """(return_mean, return_last_half) of every visit of a run, from its own task's evaluations inside the visit."""
    values = []
    for task, start, end in visit_windows(run.sequence):
        series = run.evals.get(task, (np.array([]), np.array([])))
        values.append((window_mean(series, start, end), window_mean(series, start + (end - start) / 2, end)))
    return values


def visit_rows(groups: Groups, baseline: str, late: int, reps: int) -> list[dict]:
    """Per group: a row per visit, then its `late` row over the last `late` visits (finished runs only)."""
    per_run = {g: [visit_returns(r) for r in finished(runs)] for g, runs in groups.items()}
    improvement = late_improvement(per_run, baseline, late, reps)
    rows = []
    for group, runs in per_run.items():
        windows = visit_windows(next(iter(groups[group])).sequence)
        rows += [_visit_row(group, visit, window, runs, reps) for visit, window in enumerate(windows)]
        p = interval_columns("p_improvement", improvement.get(group, NO_INTERVAL))
        rows.append(_late_row(group, windows, runs, late, reps) | p)
    return rows


def late_improvement(per_run: dict[str, list], baseline: str, late: int, reps: int) -> dict:
    """P(improvement) over the baseline on the last `late` visits' means, per group (finite scores only)."""
    scores = {g: np.array([[mean for mean, _ in v[-late:]] for v in runs]) for g, runs in per_run.items()}
    base = scores.get(baseline)
    if base is None or not base.size or not np.isfinite(base).all():
        return {}
    pairs = {g: (m, base) for g, m in scores.items() if g != baseline and m.size and np.isfinite(m).all()}
    return improvement_with_ci(pairs, reps) if pairs else {}


def _visit_row(group: str, visit: int, window: tuple[str, int, int], runs: list, reps: int) -> dict:
    """One visit's row: the runs' visit means, no comparison."""
    task, start, end = window
    row = {"group": group, "visit": str(visit), "task": task, "steps": f"{start}-{end}", "runs": len(runs)}
    row |= ci_columns("return_mean", [v[visit][0] for v in runs], reps)
    row |= ci_columns("return_last_half", [v[visit][1] for v in runs], reps)
    return row | interval_columns("p_improvement", NO_INTERVAL)


def _late_row(group: str, windows: list[tuple[str, int, int]], runs: list, late: int, reps: int) -> dict:
    """The `late` row: each run's visit means averaged over the last `late` visits."""
    first = len(windows) - min(late, len(windows))
    row = {"group": group, "visit": f"late ({first}-{len(windows) - 1})", "task": "-", "runs": len(runs)}
    row["steps"] = f"{windows[first][1]}-{windows[-1][2]}"
    row |= ci_columns("return_mean", [float(np.mean([m for m, _ in v[first:]])) for v in runs], reps)
    row |= ci_columns("return_last_half", [float(np.mean([h for _, h in v[first:]])) for v in runs], reps)
    return row
