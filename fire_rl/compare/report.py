"""What `python -m fire_rl.compare` writes into its output folder: the figures, every table as csv and markdown,
skipped.txt, and report.md, which puts them together with the prose that defines each table."""

from __future__ import annotations

import argparse
import csv
import math
from datetime import datetime
from pathlib import Path
from typing import Any

from fire_rl.compare.figures import PAPER_LABEL, draw_figures
from fire_rl.compare.intervention import gap_rows, intervention_rows
from fire_rl.compare.runs import Groups, describe
from fire_rl.compare.series import Series
from fire_rl.compare.tables import (
    aggregate_rows,
    continual_rows,
    cora_scales,
    normalisers,
    plasticity_rows,
    summary_rows,
)
from fire_rl.compare.visits import visit_rows


def fmt(value: Any) -> str:
    """A table cell: integers and text as is, floats to about three significant digits, NaN as a dash."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value)
    if value is None or not math.isfinite(value):
        return "-"
    decimals = next((d for limit, d in ((100, 0), (10, 1), (0.1, 2)) if abs(value) >= limit), 2 if value == 0 else 3)
    return f"{value:.{decimals}f}"


def write_table(out: Path, name: str, rows: list[dict]) -> str:
    """`<name>.csv` (every column, NaN empty) and `<name>.md` (mean [95% CI]); returns the markdown."""
    columns = list(rows[0]) if rows else ["group"]
    with open(out / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()})
    shown = [c for c in columns if not c.endswith(("_ci_low", "_ci_high"))]
    lines = ["| " + " | ".join(shown) + " |", "|" + "---|" * len(shown)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row, c) for c in shown) + " |")
    text = "\n".join(lines) + "\n"
    (out / f"{name}.md").write_text(text, encoding="utf-8")
    return text


def _cell(row: dict, column: str) -> str:
    """A markdown cell: the value, with its CI where it has one that is not the value itself."""
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if low is None or not math.isfinite(low) or low == high == row[column]:
        return fmt(row[column])
    return f"{fmt(row[column])} [{fmt(low)}, {fmt(high)}]"


def write_outputs(
    out: Path,
    groups: Groups,
    baseline: str,
    references: dict[str, list[Series]],
    notes: list[str],
    args: argparse.Namespace,
) -> Path:
    """Figures, tables, skipped.txt and report.md in `out`; returns the report path."""
    figures = draw_figures(out, groups, args)
    norms, scales = normalisers(groups, references), cora_scales(groups)
    tables = {
        "summary": write_table(out, "summary", summary_rows(groups, args.reps)),
        "aggregate": write_table(out, "aggregate", aggregate_rows(groups, norms, baseline, args.reps)),
        "continual": write_table(out, "continual", continual_rows(groups, norms, scales, references, args.reps)),
        "plasticity": write_table(out, "plasticity", plasticity_rows(groups, args.reps)),
    }
    interventions = intervention_rows(groups, args.reps)
    if interventions:  # runs with one intervention: a branch, or a scheduled reset
        tables["intervention"] = write_table(out, "intervention", interventions)
    if args.gap_to is not None:
        tables["gap"] = write_table(out, "gap", gap_rows(groups, args.gap_to, args.reps))
    if any(len(runs[0].sequence.visits) > 1 for runs in groups.values()):
        tables["visits"] = write_table(out, "visits", visit_rows(groups, baseline, args.late_visits, args.reps))
    notes = notes + [
        f"{r.path}: no final evaluation (step {r.sequence.total_steps}): in the curves, not in the tables"
        for runs in groups.values()
        for r in runs
        if not r.complete
    ]
    (out / "skipped.txt").write_text("\n".join(notes) + "\n" if notes else "nothing skipped\n", encoding="utf-8")
    report = out / "report.md"
    report.write_text(report_text(groups, baseline, figures, tables, norms, notes, args), encoding="utf-8")
    return report


def report_text(groups: Groups, baseline: str, figures: list, tables: dict, norms: dict, notes, args) -> str:
    """report.md: what was compared, the figures, the three tables with their definitions, what was skipped."""
    lines = _runs_section(groups, args)
    for sequence, names in figures:
        lines += ["", f"## Curves: {sequence}", ""] + [f"![{n[:-4]}]({n})" for n in names]
    scores = "; ".join(f"{t}: {n.kind} ({fmt(n.low)} -> 0, {fmt(n.high)} -> 1)" for t, n in norms.items())
    texts = {
        "summary": ("Final and average return", SUMMARY_TEXT),
        "aggregate": ("Aggregate over seeds x tasks", AGGREGATE_TEXT.format(baseline=baseline, reps=args.reps)),
        "continual": ("Continual metrics", CONTINUAL_TEXT),
        "plasticity": ("Plasticity at the end of every visit", PLASTICITY_TEXT),
        "intervention": ("What the intervention did", INTERVENTION_TEXT),
        "gap": (f"The gap to `{args.gap_to}`", GAP_TEXT.format(yardstick=args.gap_to, reps=args.reps)),
        "visits": ("Return per task visit", VISITS_TEXT.format(late=args.late_visits, baseline=baseline)),
    }
    for name, (title, text) in texts.items():
        if name not in tables:
            continue
        extra = ["", f"Scores: {scores}."] if name == "aggregate" else []
        lines += ["", f"## {title} ([{name}.csv]({name}.csv), [{name}.md]({name}.md))", "", text, *extra, ""]
        lines.append(tables[name])
    lines += ["## Skipped and notes ([skipped.txt](skipped.txt))", ""]
    return "\n".join(lines + [f"- {n}" for n in notes or ["nothing skipped"]]) + "\n"


def _runs_section(groups: Groups, args) -> list[str]:
    """report.md's head: the command, a line per group (runs, seeds, sequence), how the curves are drawn."""
    n_runs = sum(len(runs) for runs in groups.values())
    lines = [
        "# Comparison of reset methods",
        "",
        f"`python -m fire_rl.compare {' '.join(map(str, args.dirs))}` on {datetime.now():%Y-%m-%d %H:%M}: "
        f"{n_runs} runs in {len(groups)} groups (grouped by `{args.group_by}`). Steps are agent steps.",
        "",
        "| group | runs | complete | seeds | task sequence (steps per visit) |",
        "|---|---|---|---|---|",
    ]
    for group, runs in groups.items():
        seeds = ", ".join(str(r.seed) for r in runs)
        lines.append(
            f"| {group} | {len(runs)} | {sum(r.complete for r in runs)} | {seeds} | {describe(runs[0].sequence)} |"
        )
    lines += ["", CURVES_TEXT.format(reps=args.reps)]
    single = [g for g, runs in groups.items() if len(runs) == 1]
    if single:
        lines.append(f"Groups with one seed ({', '.join(single)}): their band collapses to the line.")
    if args.paper_overlay:
        lines.append(PAPER_TEXT)
    return lines


CURVES_TEXT = (
    "Curves: mean over seeds; shaded: 95% percentile bootstrap of that mean over seeds ({reps} resamples). "
    "Grey dashed: task switch; triangles along the top, in the group's colour: reset (a periodic strategy: its "
    "first reset, and a dotted line to a bar at its last)."
)
PAPER_TEXT = (
    f"Horizontal dotted lines: final returns {PAPER_LABEL}: single-game runs (DQN: 2.5M agent steps, one "
    "intervention at 1.25M; SAC: 1M env steps, one at 500K), a scale reference, not a like-for-like target."
)
SUMMARY_TEXT = (
    "Per group and task, over the runs that reached their last step: final return (evaluation at the last step), "
    "average return (mean of every evaluation over the whole sequence) and final human-normalised score "
    "(Atari games with reference scores, default mode and difficulty). Cells: mean over seeds [95% bootstrap CI]."
)
AGGREGATE_TEXT = (
    "rliable (Agarwal et al. 2021) on the normalised final scores, a runs x tasks matrix per group: interquartile "
    "mean (IQM) with a 95% stratified-bootstrap CI ({reps} resamples), and the probability that a run of the group "
    "beats a run of `{baseline}` on a task (Mann-Whitney, averaged over tasks), with its CI. Normalisation: HNS for "
    "Atari games with reference scores; else min-max of the single-task reference's evaluation curve "
    "(--reference-dir); else min-max over every evaluation of the task in this comparison."
)
CONTINUAL_TEXT = (
    "On normalised evaluation curves p_i(t) (same normalisation as above). Continual World (Wolczyk et al. 2021): "
    "`cw_final` = p_i(T), its 'all tasks' row is the average performance; `cw_forgetting` = p_i(end of task i's "
    "last visit) - p_i(T) (positive: forgotten); `cw_forward_transfer` = (AUC_i - AUC_i^b) / (1 - AUC_i^b) over "
    "task i's first visit against the single-task reference (needs --reference-dir). CORA (Powers et al. 2022), "
    "returns divided by the task's largest absolute evaluation return: `cora_forgetting` = mean drop of p_i over "
    "each later visit to another task (isolated forgetting); `cora_zero_shot` = mean gain of p_i over each visit "
    "before task i is first trained (zero-shot forward transfer). Definitions: fire_rl/compare/stats.py."
)
INTERVENTION_TEXT = (
    "For finished runs with one intervention (a branch from a shared checkpoint, or the first reset): "
    "`return_after`, the mean evaluation return over the evaluations after it (the post-intervention phase), then "
    "each plasticity key just before it (`@before`: the pre-reset probe; where nothing was reset, as for `none`, "
    "the stage-1 probe at the branch point, another sample of the same replay), just after it (`@after`, on the "
    "pre-reset probe's observations; the `@before` value where nothing was reset) and at the run's end (`@end`); "
    "and the reset's diagnostics: "
    "`reset_sfe_vs_full`, the squared distance moved over the touched layers divided by what a full reset to theta0 "
    "would move (the paper's normalised SFE; 1 for a full reset), `reset_dfi_raw_before`/`after`, the paper's "
    "||W^T W - I||_F^2 summed over the touched layers, and `reset_sv_min`, FIRE's smallest singular value after its "
    "projection. Cells: mean over runs [95% bootstrap CI]."
)

GAP_TEXT = (
    "How far each group ends from the yardstick group `{yardstick}` (`--gap-to`; in a priming experiment, the "
    "unprimed runs): `final`, the mean final evaluation return (averaged over tasks), and `after`, the mean return "
    "over the evaluations after the group's intervention step, with the yardstick's runs averaged over the same "
    "evaluations; `yardstick_*`, the yardstick's own means; `*_gap`, the group's mean minus the yardstick's, with a "
    "95% bootstrap CI ({reps} replications, each group's runs resampled on their own: the runs are not paired). A gap "
    "whose CI lies below 0 is a deficit left; one that covers 0 is closed at this number of seeds, or not resolved."
)

VISITS_TEXT = (
    "Per group and task visit (finished runs), from the evaluations of the visit's own task inside the visit: "
    "`return_mean`, their mean (the area under the visit's curve, so learning speed within the visit enters it), and "
    "`return_last_half`, the mean of those in the visit's second half. The `late` row averages each run's visit "
    "means over the last {late} visits (--late-visits) and gives P(improvement) over `{baseline}` on them (rliable, "
    "per visit, averaged over the visits, 95% stratified-bootstrap CI). Cells: mean over seeds [95% bootstrap CI]."
)
PLASTICITY_TEXT = (
    "The probes of the plasticity figure (finished runs), read at the end of every task visit (the last probe at or "
    "before it; at a switch, the one just before the reset) and, where a reset followed, just after it: pooled "
    "dormant ratio (%, tau 0.025 and 0.1) and effective rank and srank of the last hidden layer. Cells: mean over "
    "runs [95% bootstrap CI]."
)
