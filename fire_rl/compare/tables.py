"""The tables of `python -m fire_rl.compare` over groups of runs (group label -> its RunRecords): final and
average return, rliable aggregates, continual metrics, plasticity at the end of every visit, and what they share (a
mean with its bootstrap CI as three columns, the finished runs, a run's final value). The intervention and gap
tables are in intervention.py, the visits table in visits.py."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from envs.sequence import TaskSequence
from fire_rl.compare.atari_scores import human_normalised, reference_for
from fire_rl.compare.runs import Groups, RunRecord
from fire_rl.compare.series import Series, plasticity_keys, probe_at
from fire_rl.compare.stats import (
    Normaliser,
    align,
    continual_world,
    cora,
    cora_scale,
    finite_mean,
    forward_transfer,
    improvement_with_ci,
    iqm_with_ci,
    mean_ci,
    reference_auc,
    task_normaliser,
    visit_windows,
)

NO_INTERVAL = (math.nan, math.nan, math.nan)


def interval_columns(name: str, interval: tuple[float, float, float]) -> dict[str, float]:
    """{name, name_ci_low, name_ci_high} from (value, low, high): how every table spells a value with its CI."""
    value, low, high = interval
    return {name: value, f"{name}_ci_low": low, f"{name}_ci_high": high}


def ci_columns(name: str, values: Sequence[float], reps: int) -> dict[str, float]:
    """The mean of per-run values with its 95% bootstrap CI, as three columns."""
    return interval_columns(name, mean_ci(values, reps))


def finished(runs: list[RunRecord]) -> list[RunRecord]:
    """The runs that reached their final evaluation (tables use only these)."""
    return [r for r in runs if r.complete]


def final_value(run: RunRecord, task: str) -> float:
    """The task's evaluation return at the run's last step (NaN where it was not evaluated there: with
    `eval_tasks: current` a task is evaluated only while it trains, and its last value is not a final one)."""
    if task not in run.evals:
        return math.nan
    steps, values = run.evals[task]
    return float(values[-1]) if len(steps) and steps[-1] >= run.sequence.total_steps else math.nan


def normalisers(groups: Groups, references: dict[str, list[Series]]) -> dict[str, Normaliser]:
    """One normaliser per task name over every run compared (see `task_normaliser`)."""
    out = {}
    for task in {t.name: t for runs in groups.values() for t in runs[0].sequence.distinct_tasks}.values():
        observed = [r.evals[task.name][1] for runs in groups.values() for r in runs if task.name in r.evals]
        ref_curve = np.nanmean(align(references[task.name])[1], axis=0) if task.name in references else None
        reference = reference_for(task.env_id, task.kwargs)
        out[task.name] = task_normaliser(reference, ref_curve, np.concatenate(observed) if observed else np.array([]))
    return out


def cora_scales(groups: Groups) -> dict[str, Normaliser]:
    """CORA's max|return| scale per task, over every run compared (all groups, so groups stay comparable)."""
    observed: Groups = defaultdict(list)
    for runs in groups.values():
        for run in runs:
            for task, (_, values) in run.evals.items():
                observed[task].append(values)
    return {task: cora_scale(np.concatenate(v)) for task, v in observed.items()}


def summary_rows(groups: Groups, reps: int) -> list[dict]:
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


def score_matrix(runs: list[RunRecord], norms: dict[str, Normaliser]) -> tuple[np.ndarray, list[str]]:
    """Normalised final scores, runs x tasks, keeping the tasks every run has a finite score for."""
    tasks = [t.name for t in runs[0].sequence.distinct_tasks]
    matrix = np.array([[float(norms[t](final_value(r, t))) for t in tasks] for r in finished(runs)]).reshape(
        -1, len(tasks)
    )
    keep = np.isfinite(matrix).all(axis=0) if len(matrix) else np.zeros(len(tasks), bool)
    return matrix[:, keep], [t for t, k in zip(tasks, keep, strict=True) if k]


def aggregate_rows(groups: Groups, norms: dict[str, Normaliser], baseline: str, reps: int) -> list[dict]:
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
        row |= interval_columns("iqm", iqm.get(group, NO_INTERVAL))
        row["baseline"] = baseline if group in pairs else "-"
        row |= interval_columns("p_improvement", improvement.get(group, NO_INTERVAL))
        rows.append(row)
    return rows


def continual_rows(groups: Groups, norms: dict, scales: dict, references: dict, reps: int) -> list[dict]:
    """Per group and task (and over all tasks): Continual World and CORA metrics, mean [95% CI] over runs."""
    rows = []
    for group, runs in groups.items():
        sequence, per_run = runs[0].sequence, []
        tasks = [t.name for t in sequence.distinct_tasks]
        for run in finished(runs):
            cw = continual_world({t: (s, norms[t](v)) for t, (s, v) in run.evals.items()}, sequence)
            co = cora({t: (s, scales[t](v)) for t, (s, v) in run.evals.items()}, sequence)
            values = {t: _continual_values(t, cw[t], co[t], sequence, norms, references) for t in tasks}
            values["all tasks"] = {k: finite_mean([values[t][k] for t in tasks]) for k in CONTINUAL_KEYS}
            per_run.append(values)
        for task in [*tasks, "all tasks"]:
            row = {"group": group, "task": task, "runs": len(per_run)}
            for key in CONTINUAL_KEYS:
                row |= ci_columns(key, [values[task][key] for values in per_run], reps)
            rows.append(row)
    return rows


CONTINUAL_KEYS = ("cw_final", "cw_forgetting", "cw_forward_transfer", "cora_forgetting", "cora_zero_shot")


def _continual_values(task: str, cw: dict, co: dict, sequence: TaskSequence, norms: dict, references: dict) -> dict:
    """One run's CONTINUAL_KEYS for one task (forward transfer only where a single-task reference exists)."""
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


def plasticity_rows(groups: Groups, reps: int) -> list[dict]:
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
