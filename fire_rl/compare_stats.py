"""Statistics for `python -m fire_rl.compare`: curves from metrics rows, bootstrap bands, score normalisation,
continual-learning metrics and rliable aggregates.

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
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from envs.sequence import TaskSequence
from fire_rl.atari_scores import human_normalised, reference_for

Series = tuple[np.ndarray, np.ndarray]  # (steps, values) of one run


# --- curves out of metrics rows -----------------------------------------------------------------------------


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


def align(series: Sequence[Series]) -> tuple[np.ndarray, np.ndarray]:
    """Put several runs on the union of their steps: (steps, values of shape runs x steps, NaN where absent)."""
    steps = np.unique(np.concatenate([s for s, _ in series])) if series else np.array([])
    matrix = np.full((len(series), len(steps)), np.nan)
    for i, (s, v) in enumerate(series):
        matrix[i, np.searchsorted(steps, s)] = v
    return steps, matrix


def as_series(points: list[tuple[float, float]]) -> Series:
    """(step, value) pairs as two arrays sorted by step."""
    points = sorted(points, key=lambda p: p[0])  # stable: equal steps keep file order
    return np.array([p[0] for p in points], dtype=float), np.array([p[1] for p in points], dtype=float)


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
        out[task.name] = {"forgetting": _mean(lost), "zero_shot": _mean(gained)}
    return out


def _mean(values: list[float]) -> float:
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


# --- tables (groups: label -> runs with .sequence, .evals, .complete) -------------------------------------------


def ci_columns(name: str, values: Sequence[float], reps: int) -> dict[str, float]:
    """{name, name_ci_low, name_ci_high} for per-run values."""
    mean, low, high = mean_ci(values, reps)
    return {name: mean, f"{name}_ci_low": low, f"{name}_ci_high": high}


def finished(runs: list) -> list:
    """The runs that reached their final evaluation (tables use only these)."""
    return [r for r in runs if r.complete]


def final_value(run, task: str) -> float:
    """The task's evaluation return at the run's last step (NaN where it was not evaluated there: with
    `eval_tasks: current` a task is evaluated only while it trains, and its last value is not a final one)."""
    if task not in run.evals:
        return math.nan
    steps, values = run.evals[task]
    return float(values[-1]) if len(steps) and steps[-1] >= run.sequence.total_steps else math.nan


def normalisers(groups: dict[str, list], references: dict[str, list[Series]]) -> dict[str, Normaliser]:
    """One normaliser per task name over every run compared (see `task_normaliser`)."""
    out = {}
    for task in {t.name: t for runs in groups.values() for t in runs[0].sequence.distinct_tasks}.values():
        observed = [r.evals[task.name][1] for runs in groups.values() for r in runs if task.name in r.evals]
        ref_curve = np.nanmean(align(references[task.name])[1], axis=0) if task.name in references else None
        reference = reference_for(task.env_id, task.kwargs)
        out[task.name] = task_normaliser(reference, ref_curve, np.concatenate(observed) if observed else np.array([]))
    return out


def cora_scales(groups: dict[str, list]) -> dict[str, Normaliser]:
    """CORA's max|return| scale per task, over every run compared (all groups, so groups stay comparable)."""
    observed: dict[str, list] = defaultdict(list)
    for runs in groups.values():
        for run in runs:
            for task, (_, values) in run.evals.items():
                observed[task].append(values)
    return {task: cora_scale(np.concatenate(v)) for task, v in observed.items()}


def summary_rows(groups: dict[str, list], reps: int) -> list[dict]:
    """Per group and task: final return, average return over all evaluations, and final HNS (Atari only)."""
    rows = []
    for group, runs in groups.items():
        done = finished(runs)
        for task in runs[0].sequence.distinct_tasks:
            series = [r.evals[task.name] for r in done if task.name in r.evals]
            finals = [final_value(r, task.name) for r in done if task.name in r.evals]
            hns = [human_normalised(f, task.env_id, task.kwargs) for f in finals]
            rows.append(
                {"group": group, "task": task.name, "runs": len(series)}
                | ci_columns("final_return", finals, reps)
                | ci_columns("average_return", [float(np.mean(v)) for _, v in series], reps)
                | ci_columns("final_hns", hns, reps)
            )
    return rows


def score_matrix(runs: list, norms: dict[str, Normaliser]) -> tuple[np.ndarray, list[str]]:
    """Normalised final scores, runs x tasks, keeping the tasks every run has a finite score for."""
    tasks = [t.name for t in runs[0].sequence.distinct_tasks]
    matrix = np.array([[float(norms[t](final_value(r, t))) for t in tasks] for r in finished(runs)]).reshape(
        -1, len(tasks)
    )
    keep = np.isfinite(matrix).all(axis=0) if len(matrix) else np.zeros(len(tasks), bool)
    return matrix[:, keep], [t for t, k in zip(tasks, keep, strict=True) if k]


def aggregate_rows(groups: dict[str, list], norms: dict[str, Normaliser], baseline: str, reps: int) -> list[dict]:
    """Per group: rliable IQM of normalised final scores (runs x tasks) and P(improvement) over the baseline."""
    matrices = {g: score_matrix(runs, norms) for g, runs in groups.items()}
    usable = {g: m for g, (m, tasks) in matrices.items() if m.size}
    iqm = iqm_with_ci(usable, reps)
    base = matrices.get(baseline)
    pairs = {
        g: (m, base[0])
        for g, (m, tasks) in matrices.items()
        if base is not None and g != baseline and m.size and base[0].size and tasks == base[1]
    }
    improvement = improvement_with_ci(pairs, reps)
    rows = []
    for group, (matrix, tasks) in matrices.items():
        kinds = sorted({norms[t].kind for t in tasks}) or ["-"]
        row = {"group": group, "score": " + ".join(kinds), "runs": matrix.shape[0], "tasks": " ".join(tasks)}
        row |= dict(zip(("iqm", "iqm_ci_low", "iqm_ci_high"), iqm.get(group, (math.nan,) * 3), strict=True))
        row["baseline"] = baseline if group in pairs else "-"
        p = improvement.get(group, (math.nan,) * 3)
        row |= dict(zip(("p_improvement", "p_improvement_ci_low", "p_improvement_ci_high"), p, strict=True))
        rows.append(row)
    return rows


def reference_auc(curves: list[Series], norm: Normaliser, steps: int) -> float:
    """AUC^b: mean normalised evaluation over the reference runs' first `steps` agent steps."""
    return _mean([window_mean((s, norm(v)), 0, steps) for s, v in curves])


def continual_rows(groups: dict[str, list], norms: dict, scales: dict, references: dict, reps: int) -> list[dict]:
    """Per group and task (and over all tasks): Continual World and CORA metrics, mean [95% CI] over runs."""
    rows = []
    for group, runs in groups.items():
        sequence, per_run = runs[0].sequence, []
        tasks = [t.name for t in sequence.distinct_tasks]
        for run in finished(runs):
            cw = continual_world({t: (s, norms[t](v)) for t, (s, v) in run.evals.items()}, sequence)
            co = cora({t: (s, scales[t](v)) for t, (s, v) in run.evals.items()}, sequence)
            values = {t: _continual_values(t, cw[t], co[t], sequence, norms, references) for t in tasks}
            values["all tasks"] = {k: _mean([values[t][k] for t in tasks]) for k in CONTINUAL_KEYS}
            per_run.append(values)
        for task in [*tasks, "all tasks"]:
            row = {"group": group, "task": task, "runs": len(per_run)}
            for key in CONTINUAL_KEYS:
                row |= ci_columns(key, [values[task][key] for values in per_run], reps)
            rows.append(row)
    return rows


CONTINUAL_KEYS = ("cw_final", "cw_forgetting", "cw_forward_transfer", "cora_forgetting", "cora_zero_shot")


def _continual_values(task: str, cw: dict, co: dict, sequence: TaskSequence, norms: dict, references: dict) -> dict:
    steps = next(t.steps for t in sequence.visits if t.name == task)
    ft = (
        forward_transfer(cw["auc"], reference_auc(references[task], norms[task], steps))
        if task in references
        else math.nan
    )
    return {
        "cw_final": cw["final"],
        "cw_forgetting": cw["forgetting"],
        "cw_forward_transfer": ft,
        "cora_forgetting": co["forgetting"],
        "cora_zero_shot": co["zero_shot"],
    }


# --- plasticity at the end of every visit ---------------------------------------------------------------------


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


def plasticity_rows(groups: dict[str, list], reps: int) -> list[dict]:
    """Per group and task visit: each plasticity key at the visit's end and just after the reset that followed.
    Finished runs only, like every other table (an unfinished run has no probe at the ends it did not reach, and its
    last probe would stand in for them)."""
    rows = []
    for group, runs in groups.items():
        runs = finished(runs)
        if not runs:
            continue
        keys = {}
        for run in runs:
            keys |= {k: v for k, v in plasticity_keys(run.rows).items() if k not in keys}
        windows = visit_windows(runs[0].sequence)
        for visit, (task, _, end) in enumerate(windows):
            row = {"group": group, "visit": visit, "task": task, "end_step": end, "runs": len(runs)}
            for key in keys.values():
                short = key.removeprefix("plasticity/")
                row |= ci_columns(short, [probe_at(r.rows, end, key) for r in runs], reps)
                # NaN where no reset followed (the last visit, plain training)
                row |= ci_columns(f"{short}@after_reset", [probe_at(r.rows, end, key, True) for r in runs], reps)
            rows.append(row)
    return rows
