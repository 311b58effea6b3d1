"""Statistics for `python -m fire_rl.compare`: bootstrap bands and intervals, score normalisation,
continual-learning metrics and rliable aggregates, on arrays and series (no tables: fire_rl/compare/tables.py).

Continual metrics, on evaluation returns p_i(t) of every task i over the whole sequence (T = its last step):
- Continual World (Wolczyk et al., NeurIPS 2021, arXiv 2105.10919), where p is a success rate in [0, 1]:
  average performance P(T) = mean_i p_i(T); forgetting F_i = p_i(end of task i's training) - p_i(T), averaged over
  all tasks; forward transfer FT_i = (AUC_i - AUC_i^b) / (1 - AUC_i^b), AUC_i the mean of p_i over task i's (first)
  visit and AUC_i^b the same over the first steps of a single-task reference run of equal length. Here p is a
  normalised return (see `Normaliser`); with cycles, "end of task i's training" is the end of its last visit, so the
  task trained last has F = 0, as in the paper. AUC is the mean of the evaluations inside the window (start, end].
- CORA (Powers et al., CoLLAs 2022, arXiv 2110.10067; the "isolated" variants of AGI-Labs/continual_rl's
  continual_rl/utils/metrics.py), returns divided by the task's largest absolute evaluation return (over every
  compared run, so that groups share one scale; CORA's code scales per method): isolated forgetting of task i by a
  later visit v to another task = p_i(start of v) - p_i(end of v), averaged over all such visits (CORA's tables use
  the first cycle); zero-shot forward transfer to task i from a visit v before task i is first trained =
  p_i(end of v) - p_i(start of v), averaged (before the first evaluation, the first evaluation stands in, as in
  CORA's code). CORA's tables multiply by 10; these do not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from envs.sequence import TaskSequence
from fire_rl.compare.series import Series

# --- runs on common steps ---------------------------------------------------------------------------------------


def align(series: Sequence[Series]) -> tuple[np.ndarray, np.ndarray]:
    """Put several runs on the union of their steps: (steps, values of shape runs x steps, NaN where absent)."""
    steps = np.unique(np.concatenate([s for s, _ in series])) if series else np.array([])
    matrix = np.full((len(series), len(steps)), np.nan)
    for i, (s, v) in enumerate(series):
        matrix[i, np.searchsorted(steps, s)] = v
    return steps, matrix


# --- bootstrap band ----------------------------------------------------------------------------------------------


def bootstrap_band(values: np.ndarray, reps: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean over runs (axis 0) and its 95% percentile-bootstrap band over runs; one run gives a zero-width band."""
    values = np.atleast_2d(np.asarray(values, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
        mean = np.nanmean(values, axis=0)
        if values.shape[0] == 1:
            return mean, mean.copy(), mean.copy()
        idx = np.random.default_rng(seed).integers(0, values.shape[0], size=(reps, values.shape[0]))
        means = np.nanmean(values[idx], axis=1)
        low, high = np.nanpercentile(means, [2.5, 97.5], axis=0)
    return mean, low, high


def mean_ci(values: Sequence[float], reps: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of per-run values (NaN left out) with its 95% percentile-bootstrap interval."""
    finite = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if finite.size == 0:
        return math.nan, math.nan, math.nan
    mean, low, high = bootstrap_band(finite[:, None], reps, seed)
    return float(mean[0]), float(low[0]), float(high[0])


def difference_ci(
    a: Sequence[float], b: Sequence[float], reps: int = 2000, seed: int = 0
) -> tuple[float, float, float]:
    """mean(a) - mean(b) for two independent samples of per-run values (NaN left out), with its 95% percentile
    bootstrap interval (each sample resampled on its own); NaN when either sample is empty."""
    xs = [np.asarray([v for v in s if v is not None and math.isfinite(v)], dtype=float) for s in (a, b)]
    if any(x.size == 0 for x in xs):
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    boot_a, boot_b = (x[rng.integers(0, x.size, size=(reps, x.size))].mean(axis=1) for x in xs)
    low, high = np.percentile(boot_a - boot_b, [2.5, 97.5])
    return float(xs[0].mean() - xs[1].mean()), float(low), float(high)


# --- normalisation --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Normaliser:
    """Affine map of a task's return: low -> 0, high -> 1 (HNS: random -> 0, human -> 1)."""

    kind: str
    low: float
    high: float

    def __call__(self, values):
        """The normalised values (all NaN where the map is undefined: ends equal or not finite)."""
        if not (math.isfinite(self.high - self.low) and self.high != self.low):
            return np.full_like(np.asarray(values, dtype=float), np.nan)
        return (np.asarray(values, dtype=float) - self.low) / (self.high - self.low)


def task_normaliser(reference: tuple[float, float] | None, ref_curve: np.ndarray | None, observed: np.ndarray):
    """HNS for Atari games with reference scores; else min-max of the single-task reference's mean evaluation curve;
    else min-max over every evaluation of the task in this comparison (only comparable within one report)."""
    if reference is not None:
        return Normaliser("HNS", *reference)
    if ref_curve is not None and np.isfinite(ref_curve).any():
        return Normaliser("min-max of reference run", float(np.nanmin(ref_curve)), float(np.nanmax(ref_curve)))
    finite = observed[np.isfinite(observed)]
    if finite.size == 0:
        return Normaliser("none", math.nan, math.nan)
    return Normaliser("min-max over compared runs", float(finite.min()), float(finite.max()))


def cora_scale(observed: np.ndarray) -> Normaliser:
    """CORA's per-task scale: divide by the largest absolute evaluation return seen."""
    finite = np.abs(observed[np.isfinite(observed)])
    return Normaliser("CORA max|return|", 0.0, float(finite.max()) if finite.size else math.nan)


# --- continual metrics (per run) ------------------------------------------------------------------------------


def visit_windows(sequence: TaskSequence) -> list[tuple[str, int, int]]:
    """(task name, first step, last step) of every visit, in order."""
    starts = [0, *sequence.switch_steps]
    return [(task.name, start, start + task.steps) for task, start in zip(sequence.visits, starts, strict=True)]


def value_at(series: Series, step: float, first_before_start: bool = False) -> float:
    """The last evaluation at or before `step` (NaN if none; the first evaluation if `first_before_start`)."""
    steps, values = series
    i = int(np.searchsorted(steps, step, side="right")) - 1
    if i < 0:
        return float(values[0]) if first_before_start and len(values) else math.nan
    return float(values[i])


def window_mean(series: Series, start: float, end: float) -> float:
    """Mean of the evaluations in (start, end]: the normalised area under the curve over that window."""
    steps, values = series
    inside = values[(steps > start) & (steps <= end)]
    return float(inside.mean()) if inside.size else math.nan


def forward_transfer(auc: float, auc_reference: float) -> float:
    """Continual World's FT = (AUC - AUC^b) / (1 - AUC^b); NaN where the reference already reaches 1."""
    return (auc - auc_reference) / (1.0 - auc_reference) if auc_reference < 1.0 else math.nan


def reference_auc(curves: list[Series], norm: Normaliser, steps: int) -> float:
    """AUC^b: mean normalised evaluation over the reference runs' first `steps` agent steps."""
    return finite_mean([window_mean((s, norm(v)), 0, steps) for s, v in curves])


def continual_world(curves: dict[str, Series], sequence: TaskSequence) -> dict[str, dict[str, float]]:
    """Per task: final normalised performance p_i(T), forgetting F_i, and AUC_i over its first visit."""
    windows, total = visit_windows(sequence), sequence.total_steps
    out = {}
    for task in sequence.distinct_tasks:
        series = curves.get(task.name)
        if series is None or len(series[0]) == 0:
            out[task.name] = {"final": math.nan, "forgetting": math.nan, "auc": math.nan}
            continue
        last_end = max(end for name, _, end in windows if name == task.name)
        first = next((start, end) for name, start, end in windows if name == task.name)
        final = value_at(series, total)
        out[task.name] = {
            "final": final,
            "forgetting": value_at(series, last_end) - final,
            "auc": window_mean(series, *first),
        }
    return out


def cora(curves: dict[str, Series], sequence: TaskSequence) -> dict[str, dict[str, float]]:
    """Per task: CORA isolated forgetting and zero-shot forward transfer (means over the visits that cause them)."""
    windows = visit_windows(sequence)
    out = {}
    for task in sequence.distinct_tasks:
        series = curves.get(task.name)
        first = next(i for i, (name, _, _) in enumerate(windows) if name == task.name)
        if series is None or len(series[0]) == 0:
            out[task.name] = {"forgetting": math.nan, "zero_shot": math.nan}
            continue
        lost = [
            value_at(series, s, True) - value_at(series, e, True) for n, s, e in windows[first + 1 :] if n != task.name
        ]
        gained = [value_at(series, e, True) - value_at(series, s, True) for _, s, e in windows[:first]]
        out[task.name] = {"forgetting": finite_mean(lost), "zero_shot": finite_mean(gained)}
    return out


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values; NaN when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


# --- rliable aggregates ---------------------------------------------------------------------------------------


def rliable_modules():
    """rliable's library and metrics modules, with a clear message when its import chain is broken."""
    try:
        from rliable import library, metrics
    except Exception as err:  # rliable 1.2 -> arch<8, and arch 7 fails to import under pandas>=3
        raise RuntimeError(
            f"rliable could not be imported ({type(err).__name__}: {err}); rliable 1.2 needs arch<8, which needs "
            "pandas<3: pip install 'rliable>=1.2' 'pandas<3'"
        ) from err
    return library, metrics


def iqm_with_ci(scores: dict[str, np.ndarray], reps: int, seed: int = 0) -> dict[str, tuple[float, float, float]]:
    """rliable IQM over runs x tasks with its 95% stratified-bootstrap interval, per group."""
    library, metrics = rliable_modules()
    return _interval_estimates(library, scores, lambda x: np.array([metrics.aggregate_iqm(x)]), reps, seed)


def improvement_with_ci(
    pairs: dict[str, tuple[np.ndarray, np.ndarray]], reps: int, seed: int = 0
) -> dict[str, tuple[float, float, float]]:
    """rliable probability of improvement P(X > Y), averaged over tasks, with its 95% interval, per pair."""
    library, metrics = rliable_modules()
    return _interval_estimates(
        library, pairs, lambda x, y: np.array([metrics.probability_of_improvement(x, y)]), reps, seed
    )


def _interval_estimates(library, data: dict, func: Callable, reps: int, seed: int) -> dict:
    """rliable's point estimate and 95% stratified-bootstrap interval of `func` per key, reproducibly."""
    if not data:
        return {}
    # rliable 1.2's stratified bootstraps draw their resamples with np.random.choice, numpy's global RNG, and ignore
    # the random_state they are given: seed the global RNG for the call (and put it back) so a report is reproducible
    global_state = np.random.get_state()
    np.random.seed(seed)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # arch deprecates the random_state that rliable passes on
            points, intervals = library.get_interval_estimates(
                data, func, reps=reps, random_state=np.random.RandomState(seed)
            )
    finally:
        np.random.set_state(global_state)
    return {k: (float(points[k][0]), float(intervals[k][0][0]), float(intervals[k][1][0])) for k in data}
