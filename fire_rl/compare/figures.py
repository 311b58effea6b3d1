"""The figures of `python -m fire_rl.compare`, one set per task sequence: evaluation return, training-episode return
and plasticity probes, one panel per task or probe, one line per group with its 95% bootstrap band over seeds, task
switches and resets marked, optional FIRE-paper markers."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from envs.sequence import TaskSequence  # noqa: E402
from fire_rl.compare.runs import Groups, describe  # noqa: E402
from fire_rl.compare.series import (  # noqa: E402
    Series,
    current_series,
    episode_series,
    plasticity_keys,
    plasticity_series,
    reset_steps,
)
from fire_rl.compare.stats import align, bootstrap_band  # noqa: E402

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
    """One panel: switches, each group's reset marks and band, the paper's values, titles and axes."""
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
    """A legend entry per group, then one per kind of mark the figure draws."""
    handles = [Line2D([], [], color=c, lw=2, label=g) for g, c in colours.items()]
    handles.append(Line2D([], [], color="grey", linestyle="--", label="task switch"))
    if any(spec.resets.values()):
        handles.append(Line2D([], [], color="black", marker="v", linestyle="", label="reset (group colour)"))
    if any(periodic(steps) for steps in spec.resets.values()):
        handles.append(Line2D([], [], color="black", label="periodic resets, first to last", **PERIODIC_SPAN))
    if spec.overlay:
        handles.append(Line2D([], [], color="black", linestyle=(0, (1, 3)), label=PAPER_LABEL))
    return handles


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


def _resets(groups: Groups) -> dict[str, list[int]]:
    """Every step at which a run of the group reset, per group."""
    return {g: sorted({s for r in runs for s in reset_steps(r.rows)}) for g, runs in groups.items()}


CURRENT_PANEL = "the task being trained"


def evaluates_current_only(groups: Groups) -> bool:
    """True when every run evaluated only the task it was training (`eval_tasks: current`): one panel then."""
    return all(r.config.get("eval_tasks") == "current" for runs in groups.values() for r in runs)


def eval_figure(groups: Groups, sequence: TaskSequence, paper_overlay: bool) -> Figure:
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


def train_figure(groups: Groups, sequence: TaskSequence) -> Figure:
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


def plasticity_figure(groups: Groups, sequence: TaskSequence) -> Figure:
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


def draw_figures(out: Path, groups: Groups, args: argparse.Namespace) -> list[tuple[str, list]]:
    """Eval, training and plasticity figures, one set per task sequence; returns (sequence, file names)."""
    by_sequence: dict[str, Groups] = {}
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
