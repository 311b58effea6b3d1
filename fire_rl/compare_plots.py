"""What `python -m fire_rl.compare` writes: figures (one panel per task or plasticity metric, one line per group with
its 95% bootstrap band over seeds, task switches and resets marked, optional FIRE-paper markers), tables, report.md."""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from envs.sequence import TaskSequence  # noqa: E402
from fire_rl import compare_stats as st  # noqa: E402
from fire_rl.compare_intervention import gap_rows, intervention_rows  # noqa: E402
from fire_rl.compare_stats import Series, align, as_series, bootstrap_band, plasticity_keys  # noqa: E402
from fire_rl.compare_visits import current_series, visit_rows  # noqa: E402

PHASE_ORDER = {"periodic": 0, "pre_reset": 1, "post_reset": 2}

PAPER_LABEL = "read from FIRE paper Fig. 4 (approx.)"

# Final returns read off the FIRE paper's Fig. 4 (docs/paper-notes.md §3 and §4):
# DQN at 2.5M agent steps (one intervention at 1.25M), SAC at 1.0M env steps (one intervention at 500K).
# Keys: our method names (reset.name); SAC plasticity injection is fire_rl's own form (the authors have no code).
PAPER_FINAL = {
    "Asterix": {"fire": 2250, "full": 1850, "shrink_perturb": 1830, "plasticity_injection": 830, "none": 1270},
    "BeamRider": {"fire": 3400, "full": 3350, "shrink_perturb": 2900, "plasticity_injection": 3050, "none": 2200},
    "DemonAttack": {"fire": 1500, "full": 950, "shrink_perturb": 950, "plasticity_injection": 350, "none": 330},
    "h1-walk": {"fire": 715, "full": 705, "shrink_perturb": 775, "plasticity_injection": 355, "none": 610},
    "h1-balance_simple": {"fire": 550, "full": 515, "shrink_perturb": 485, "plasticity_injection": 250, "none": 380},
    "h1-run": {"fire": 200, "full": 145, "shrink_perturb": 185, "plasticity_injection": 65, "none": 150},
}


@dataclass
class Figure:
    """What one figure shows: per group, per panel, the runs' values on common steps."""

    title: str
    ylabel: str
    panels: list[str]
    data: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]  # group -> panel -> (steps, runs x steps)
    switches: list[int] = field(default_factory=list)
    resets: dict[str, list[int]] = field(default_factory=dict)  # group -> reset steps
    overlay: dict[str, dict[str, float]] = field(default_factory=dict)  # panel -> method -> value
    note: str = ""
    xmax: int = 0  # the sequence's last agent step


PANEL_WIDTH = 5.2  # inches per panel column
LEGEND_ENTRY_WIDTH = 1.8  # inches a legend entry takes at fontsize 8, the longest method names included


def group_colours(groups: list[str]) -> dict[str, tuple]:
    """A fixed tab10/tab20 colour per group, in the given order."""
    cmap = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20")
    return {g: cmap(i % cmap.N) for i, g in enumerate(groups)}


def draw(fig_spec: Figure, path: Path, reps: int) -> Path:
    """Render one figure to PNG (written atomically)."""
    groups = list(fig_spec.data)
    colours = group_colours(groups)
    ncols = 2 if len(fig_spec.panels) == 4 else min(3, max(1, len(fig_spec.panels)))
    nrows = math.ceil(len(fig_spec.panels) / ncols)
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(PANEL_WIDTH * ncols, 3.4 * nrows + 1.0), squeeze=False, layout="constrained"
    )
    for ax, panel in zip(axes.flat, fig_spec.panels, strict=False):
        _panel(ax, fig_spec, panel, colours, reps)
    for ax in list(axes.flat)[len(fig_spec.panels) :]:
        ax.axis("off")
    fig.suptitle(fig_spec.title, fontsize=11)
    handles = _legend(fig_spec, colours)
    columns = min(len(handles), max(2, int(PANEL_WIDTH * ncols / LEGEND_ENTRY_WIDTH)))  # so that none is cut off
    fig.legend(handles=handles, loc="outside lower center", ncol=columns, fontsize=8)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    tmp.replace(path)
    plt.close(fig)
    return path


def _panel(ax, spec: Figure, panel: str, colours: dict, reps: int) -> None:
    for step in spec.switches:
        ax.axvline(step, color="grey", linestyle="--", linewidth=0.8)
    drawn = False
    resetting = [group for group in spec.data if spec.resets.get(group)]
    for group, by_panel in spec.data.items():
        if group in resetting:
            _reset_marks(ax, sorted(set(spec.resets[group])), resetting.index(group), colours[group])
        if panel in by_panel:
            drawn |= _band(ax, *by_panel[panel], colours[group], reps)
    _overlay(ax, spec.overlay.get(panel, {}), colours)
    ax.set_title(panel, fontsize=10, pad=8)
    if spec.xmax:
        ax.set_xlim(0, spec.xmax)
    ax.set_xlabel("agent steps", fontsize=8)
    ax.set_ylabel(spec.ylabel, fontsize=8)
    ax.tick_params(labelsize=7)
    if not drawn:
        ax.text(0.5, 0.5, spec.note or "no data", transform=ax.transAxes, ha="center", va="center", fontsize=8)


PERIODIC_MARKS = 10  # a group resetting more often than this (ReDo, every 1,000 steps) gets a span, not markers
# dotted with a bar at the last reset, so that it does not read as a flat return curve at the height it is drawn
PERIODIC_SPAN = {"linestyle": (0, (1, 1.5)), "lw": 1.2, "marker": "|", "markevery": [1], "ms": 6}


def periodic(steps: list[int]) -> bool:
    """A group's distinct reset steps are drawn as a span rather than a triangle each."""
    return len(steps) > PERIODIC_MARKS


def _reset_marks(ax, steps: list[int], row: int, colour) -> None:
    """One row per resetting group along the top edge: a triangle per reset, or, for a periodic strategy, a triangle
    at its first reset and a dotted line to a bar at its last (an empty unclipped line would break the layout)."""
    y = 1.0 - 0.035 * row
    marks = ax.get_xaxis_transform()
    if periodic(steps):
        ax.plot([steps[0], steps[-1]], [y, y], color=colour, transform=marks, clip_on=False, **PERIODIC_SPAN)
        steps = steps[:1]
    ax.plot(steps, [y] * len(steps), "v", color=colour, ms=5, transform=marks, clip_on=False)


def _band(ax, steps: np.ndarray, values: np.ndarray, colour, reps: int) -> bool:
    """Mean line and bootstrap band of one group; False when there was nothing to draw."""
    mean, low, high = bootstrap_band(values, reps, seed=0)
    ok = np.isfinite(mean)
    ax.plot(steps[ok], mean[ok], "o-" if ok.sum() < 30 else "-", color=colour, markersize=3, lw=1.4)
    ax.fill_between(steps[ok], low[ok], high[ok], color=colour, alpha=0.2, linewidth=0)
    return bool(ok.any())


def _overlay(ax, values: dict[str, float], colours: dict) -> None:
    """Paper values as dotted horizontal lines; labels staggered so that close values stay readable."""
    shown = {m: v for m, v in values.items() if m in colours} or values  # the compared methods, else all
    for i, (method, value) in enumerate(sorted(shown.items(), key=lambda item: item[1])):
        colour = colours.get(method, "black")
        ax.axhline(value, color=colour, linestyle=(0, (1, 3)), linewidth=1.2)
        ax.annotate(
            f"{method} (paper)",
            (1.0 - 0.3 * (i % 3), value),
            xycoords=("axes fraction", "data"),
            fontsize=6,
            color=colour,
            ha="right",
            va="bottom",
        )


def _legend(spec: Figure, colours: dict) -> list[Line2D]:
    handles = [Line2D([], [], color=c, lw=2, label=g) for g, c in colours.items()]
    handles.append(Line2D([], [], color="grey", linestyle="--", label="task switch"))
    if any(spec.resets.values()):
        handles.append(Line2D([], [], color="black", marker="v", linestyle="", label="reset (group colour)"))
    if any(periodic(steps) for steps in spec.resets.values()):
        handles.append(Line2D([], [], color="black", label="periodic resets, first to last", **PERIODIC_SPAN))
    if spec.overlay:
        handles.append(Line2D([], [], color="black", linestyle=(0, (1, 3)), label=PAPER_LABEL))
    return handles


# --- curves out of metrics rows ---------------------------------------------------------------------------


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


def binned(series: Series, edges: np.ndarray) -> Series:
    """Mean of the points in each bin (right edge as x); empty bins are NaN."""
    steps, values = series
    which = np.searchsorted(edges, steps, side="left") - 1
    which = which.clip(0)  # step 0 belongs to the first bin
    inside = which < len(edges) - 1
    sums = np.bincount(which[inside], weights=values[inside], minlength=len(edges) - 1)
    counts = np.bincount(which[inside], minlength=len(edges) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return edges[1:], np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


# --- the three figures of one task sequence -------------------------------------------------------------------


def _resets(groups: dict[str, list]) -> dict[str, list[int]]:
    return {g: sorted({s for r in runs for s in reset_steps(r.rows)}) for g, runs in groups.items()}


CURRENT_PANEL = "the task being trained"


def evaluates_current_only(groups: dict[str, list]) -> bool:
    """True when every run evaluated only the task it was training (`eval_tasks: current`): one panel then."""
    return all(r.config.get("eval_tasks") == "current" for runs in groups.values() for r in runs)


def eval_figure(groups: dict[str, list], sequence: TaskSequence, paper_overlay: bool) -> Figure:
    """Evaluation return on every task over the whole sequence (mean over seeds, 95% bootstrap band); one panel, the
    task being trained, when the runs evaluated only that."""
    if evaluates_current_only(groups):
        data = {g: {CURRENT_PANEL: align([current_series(r.curve_rows) for r in runs])} for g, runs in groups.items()}
        title = "evaluation return (raw score, near-greedy) on the task being trained"
        return Figure(title, "return", [CURRENT_PANEL], data, sequence.switch_steps, _resets(groups))
    tasks = [t.name for t in sequence.distinct_tasks]
    data = {
        g: {
            t: align([r.curve_evals[t] for r in runs if t in r.curve_evals])
            for t in tasks
            if any(t in r.curve_evals for r in runs)
        }
        for g, runs in groups.items()
    }
    overlay = {t: PAPER_FINAL[t] for t in tasks if paper_overlay and t in PAPER_FINAL}
    title = "evaluation return (raw score, near-greedy) on every task"
    return Figure(title, "return", tasks, data, sequence.switch_steps, _resets(groups), overlay)


def train_figure(groups: dict[str, list], sequence: TaskSequence) -> Figure:
    """Training-episode return per task, averaged in bins of the evaluation cadence, then over seeds."""
    total = sequence.total_steps
    every = min((r.config.get("eval_every") or total // 50 or 1) for runs in groups.values() for r in runs)
    edges = np.linspace(0, total, int(np.clip(total // max(every, 1), 1, 100)) + 1)
    tasks, data = [t.name for t in sequence.distinct_tasks], {}
    if evaluates_current_only(groups):  # one panel, as the evaluation figure: every episode is of the task trained
        tasks = [CURRENT_PANEL]
    for group, runs in groups.items():
        episodes = [
            episode_series(r.curve_rows, merged=CURRENT_PANEL if tasks == [CURRENT_PANEL] else None) for r in runs
        ]
        data[group] = {
            t: align([binned(e[t], edges) for e in episodes if t in e]) for t in tasks if any(t in e for e in episodes)
        }
    title = f"training-episode return (raw score, epsilon-greedy), mean per {int(edges[1] - edges[0])}-step bin"
    note = "no training episode finished"
    return Figure(title, "return", tasks, data, sequence.switch_steps, _resets(groups), note=note)


def plasticity_figure(groups: dict[str, list], sequence: TaskSequence) -> Figure:
    """Dormant ratio and feature ranks over steps per group; pre/post-reset probes show each reset's jump."""
    keys: dict[str, str] = {}
    for runs in groups.values():
        for run in runs:
            keys |= {k: v for k, v in plasticity_keys(run.curve_rows).items() if k not in keys}
    data = {
        g: {p: align([s for r in runs if len((s := plasticity_series(r.curve_rows, k))[0])]) for p, k in keys.items()}
        for g, runs in groups.items()
    }
    data = {g: {p: v for p, v in d.items() if v[1].size} for g, d in data.items()}
    title = "plasticity probes (fixed replay probe; periodic and just before/after every reset)"
    return Figure(
        title, "", list(keys) or ["plasticity"], data, sequence.switch_steps, _resets(groups), note="no probes"
    )


def describe(sequence: TaskSequence) -> str:
    """'Asterix(100) > BeamRider(100)' in visit order; a long sequence by its first two and last visits."""
    shown = [f"{t.name}({t.steps})" for t in sequence.visits]
    if len(shown) > 4:
        return " > ".join([*shown[:2], "...", shown[-1]]) + f" ({len(shown)} visits)"
    return " > ".join(shown)


# --- outputs --------------------------------------------------------------------------------------------------


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
    low, high = row.get(f"{column}_ci_low"), row.get(f"{column}_ci_high")
    if low is None or not math.isfinite(low) or low == high == row[column]:
        return fmt(row[column])
    return f"{fmt(row[column])} [{fmt(low)}, {fmt(high)}]"


def draw_figures(out: Path, groups: dict[str, list], args: argparse.Namespace) -> list[tuple[str, list]]:
    """Eval, training and plasticity figures, one set per task sequence; returns (sequence, file names)."""
    by_sequence: dict[str, dict[str, list]] = {}
    for group, runs in groups.items():  # Task holds dicts, so sequences are keyed by their repr, not hashed
        by_sequence.setdefault(repr(runs[0].sequence), {})[group] = runs
    drawn = []
    for i, subset in enumerate(by_sequence.values()):
        sequence = next(iter(subset.values()))[0].sequence
        suffix = "" if len(by_sequence) == 1 else f"_{i + 1}"
        figures = (
            (f"eval_curves{suffix}.png", eval_figure(subset, sequence, args.paper_overlay)),
            (f"train_curves{suffix}.png", train_figure(subset, sequence)),
            (f"plasticity{suffix}.png", plasticity_figure(subset, sequence)),
        )
        for name, spec in figures:
            spec.title, spec.xmax = f"{spec.title}\n{describe(sequence)}", sequence.total_steps
            draw(spec, out / name, args.reps)
        drawn.append((describe(sequence), [name for name, _ in figures]))
    return drawn


def write_outputs(out, groups, baseline, references, notes, args) -> Path:
    """Figures, tables, skipped.txt and report.md in `out`; returns the report path."""
    figures = draw_figures(out, groups, args)
    norms, scales = st.normalisers(groups, references), st.cora_scales(groups)
    tables = {
        "summary": write_table(out, "summary", st.summary_rows(groups, args.reps)),
        "aggregate": write_table(out, "aggregate", st.aggregate_rows(groups, norms, baseline, args.reps)),
        "continual": write_table(out, "continual", st.continual_rows(groups, norms, scales, references, args.reps)),
        "plasticity": write_table(out, "plasticity", st.plasticity_rows(groups, args.reps)),
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


def report_text(groups: dict[str, list], baseline: str, figures: list, tables: dict, norms: dict, notes, args) -> str:
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


def _runs_section(groups: dict[str, list], args) -> list[str]:
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
    "before task i is first trained (zero-shot forward transfer). Definitions: fire_rl/compare_stats.py."
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
