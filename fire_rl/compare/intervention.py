"""What one intervention did (the FIRE paper's midpoint protocol): probes just before and just after it and at the
end, and the reset's own diagnostics, per method (intervention.csv/md of `python -m fire_rl.compare`), and the
gap each group leaves to a yardstick group (gap.csv/md).

The intervention step of a run is its branch point (`branch_from=<stage 1>/checkpoints/step_<N>`), else its first
reset. `return_after` is the mean evaluation return after it (every evaluation in (step, end], averaged over the
run's tasks): the post-intervention phase's area under the curve. Before it, probes come from the run's stitched
rows (the stage-1 prefix of a branch), so a branch that changes nothing (`none`) reads the stage-1 probe at the
branch point, and its "after" is the same probe.
"""

from __future__ import annotations

import math
from pathlib import Path

from fire_rl.compare.runs import Groups, RunRecord
from fire_rl.compare.series import eval_series, plasticity_keys, probe_at
from fire_rl.compare.stats import difference_ci, window_mean
from fire_rl.compare.tables import ci_columns, final_value, finished, interval_columns

RESET_DIAGNOSTICS = ("sfe_vs_full", "dfi_raw_before", "dfi_raw_after", "sv_min")


def intervention_step(run: RunRecord) -> int | None:
    """The run's branch point, else the step of its first reset; None when it has neither."""
    branch = run.config.get("branch_from")
    if branch and Path(str(branch)).name.startswith("step_"):
        return int(Path(str(branch)).name.split("_")[-1])
    resets = [r["step"] for r in run.rows if r.get("event") == "reset"]
    return resets[0] if resets else None


def probe_after(rows: list[dict], step: int, key: str) -> float:
    """The post-reset probe at `step`, or (no reset there) the probe just before it."""
    after = probe_at(rows, step, key, after_reset=True)
    return after if not math.isnan(after) else probe_at(rows, step, key)


def last_probe(rows: list[dict], key: str) -> float:
    """The run's last value of a probe key (NaN when it has none)."""
    values = [r[key] for r in rows if r.get("event") == "plasticity" and r.get(key) is not None]
    return float(values[-1]) if values else math.nan


def return_after(rows: list[dict], step: int) -> float:
    """Mean evaluation return over the evaluations after `step`, averaged over the tasks evaluated there."""
    means = [window_mean(series, step, math.inf) for series in eval_series(rows).values()]
    means = [m for m in means if not math.isnan(m)]
    return sum(means) / len(means) if means else math.nan


def reset_diagnostics(rows: list[dict], step: int) -> dict[str, float]:
    """The reset at `step`: SFE over the touched layers divided by a full reset's (each layer's SFE back to theta0,
    recovered from its sfe and sfe_normalised), the paper's raw DfI summed over layers, FIRE's smallest singular
    value. NaN where there was no reset or the value does not apply."""
    row = next((r for r in rows if r.get("event") == "reset" and r.get("step") == step), None)
    if row is None:
        return dict.fromkeys(RESET_DIAGNOSTICS, math.nan)
    layers = [k[: -len("/sfe")] for k in row if k.startswith("reset/") and k.endswith("/sfe")]
    sfe = sum(row[f"{layer}/sfe"] for layer in layers)
    full = sum(
        row[f"{layer}/sfe"] / row[f"{layer}/sfe_normalised"]
        for layer in layers
        if row.get(f"{layer}/sfe_normalised") not in (None, 0) and math.isfinite(row[f"{layer}/sfe_normalised"])
    )

    def summed(name: str) -> float:
        """A diagnostic summed over the touched layers that log it."""
        values = [row[f"{layer}/{name}"] for layer in layers if f"{layer}/{name}" in row]
        return float(sum(values)) if values else math.nan

    return {
        "sfe_vs_full": sfe / full if full > 0 else math.nan,
        "dfi_raw_before": summed("dfi_raw_before"),
        "dfi_raw_after": summed("dfi_raw_after"),
        "sv_min": float(row.get("reset/fire/sv_min", math.nan)),
    }


def intervention_rows(groups: Groups, reps: int) -> list[dict]:
    """Per group with an intervention: the mean return after it, probes before, just after and at the end, and the
    reset diagnostics. Finished runs only, like every other table (an unfinished run's `return_after` would average
    fewer evaluations and its `@end` probe would not be at the end)."""
    table = []
    for group, runs in groups.items():
        located = [(run, step) for run in finished(runs) if (step := intervention_step(run)) is not None]
        if not located:
            continue
        keys: dict[str, str] = {}
        for run, _ in located:
            keys |= {k: v for k, v in plasticity_keys(run.curve_rows).items() if k not in keys}
        steps = sorted({step for _, step in located})
        row = {"group": group, "runs": len(located), "step": steps[0] if len(steps) == 1 else "various"}
        row |= ci_columns("return_after", [return_after(r.curve_rows, s) for r, s in located], reps)
        for key in keys.values():
            short = key.removeprefix("plasticity/")
            row |= ci_columns(f"{short}@before", [probe_at(r.curve_rows, s, key) for r, s in located], reps)
            row |= ci_columns(f"{short}@after", [probe_after(r.curve_rows, s, key) for r, s in located], reps)
            row |= ci_columns(f"{short}@end", [last_probe(r.rows, key) for r, _ in located], reps)
        diagnostics = [reset_diagnostics(r.rows, s) for r, s in located]
        for name in RESET_DIAGNOSTICS:
            row |= ci_columns(f"reset_{name}", [d[name] for d in diagnostics], reps)
        table.append(row)
    return table


def final_return(run: RunRecord) -> float:
    """The run's evaluation return at its last step, averaged over its tasks."""
    values = [final_value(run, task) for task in run.evals]
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def gap_rows(groups: Groups, yardstick: str, reps: int) -> list[dict]:
    """Per group, how far it is from the `yardstick` group (the unprimed runs of a priming experiment): the
    difference of the mean final return, and of the mean return after the group's intervention step (the yardstick's
    runs averaged over the same evaluations), each with a 95% bootstrap CI over the two groups' runs, resampled
    independently. Finished runs only; a group without one intervention step for all its runs gets no `after` gap."""
    reference = finished(groups[yardstick])
    table = []
    for group, runs in groups.items():
        done = finished(runs)
        if group == yardstick or not done:
            continue
        steps = {intervention_step(run) for run in done}
        step = next(iter(steps)) if len(steps) == 1 else None
        label = step if step is not None else "various" if len(steps) > 1 else "none"
        row = {"group": group, "runs": len(done), "yardstick_runs": len(reference), "step": label}
        ours, theirs = [final_return(r) for r in done], [final_return(r) for r in reference]
        row |= _gap_columns("final", ours, theirs, reps)
        if step is None:
            ours, theirs = [], []
        else:
            ours = [return_after(r.curve_rows, step) for r in done]
            theirs = [return_after(r.curve_rows, step) for r in reference]
        row |= _gap_columns("after", ours, theirs, reps)
        table.append(row)
    return table


def _gap_columns(name: str, ours: list[float], theirs: list[float], reps: int) -> dict[str, float]:
    """Both groups' means and the difference between them, each with its 95% bootstrap CI."""
    gap = interval_columns(f"{name}_gap", difference_ci(ours, theirs, reps))
    return ci_columns(name, ours, reps) | ci_columns(f"yardstick_{name}", theirs, reps) | gap
