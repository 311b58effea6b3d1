"""The README's three-regime figure, drawn from the committed packed runs of docs/results/:

- no loss (minatar_midpoint): a network that still learns, every method branched from one 150k checkpoint;
- loss put there (minatar_priming): the same protocol with stage 1 primed by 100,000 updates on 500 transitions;
- loss that arises by itself, looked for (minatar_levels): SpaceInvaders <-> Breakout cycled, and 8 updates per
  agent step, `none` against `full` (no rung qualified).

One panel per regime: greedy return on the game being trained, mean over seeds with its 95% bootstrap band, the
branch or switch steps dashed. Every panel keeps a method's colour.

  python scripts/regimes_figure.py                      # writes docs/img/regimes.png
  python scripts/regimes_figure.py --out /tmp/regimes.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from fire_rl.compare.runs import group_runs, load_runs  # noqa: E402
from fire_rl.compare.series import current_series  # noqa: E402
from fire_rl.compare.stats import align, bootstrap_band  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "docs" / "results"
# (title, packed runs, the groups drawn); the text of the panels says what each shows, the README what it means
PANELS = [
    (
        "no loss: midpoint, 1 update/step (5 seeds)",
        RESULTS / "minatar_midpoint" / "runs.jsonl.gz",
        ["none", "full", "fire", "shrink_perturb_all"],
    ),
    (
        "loss put there: primed stage 1 (5 seeds)",
        RESULTS / "minatar_priming" / "runs.jsonl.gz",
        ["unprimed", "none", "full", "fire", "shrink_perturb_all"],
    ),
    (
        "arising? SpaceInvaders <-> Breakout (2 seeds)",
        RESULTS / "minatar_levels" / "pilot_runs.jsonl.gz" / "cycle_si_br",
        ["none", "full"],
    ),
    (
        "arising? 8 updates/step (seed 0)",
        RESULTS / "minatar_levels" / "pilot_runs.jsonl.gz" / "rr8",
        ["none", "full"],
    ),
]
COLOURS = {
    "none": "tab:blue",
    "full": "tab:red",
    "fire": "tab:orange",
    "shrink_perturb_all": "tab:green",
    "unprimed": "grey",
}
LABELS = {"none": "none (continues)", "full": "full (theta0)", "unprimed": "never primed"}


def same_curve(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> bool:
    """Two (steps, runs x steps) curves with the same steps and values."""
    return all(x.shape == y.shape and np.array_equal(x, y, equal_nan=True) for x, y in zip(a, b, strict=True))


def draw_panel(ax, title: str, source: Path, methods: list[str], reps: int) -> None:
    """One regime: the chosen groups' current-task return over the whole run, stage-1 prefix included."""
    runs, _ = load_runs([source], "reset.name")
    groups = group_runs(runs)
    missing = [m for m in methods if m not in groups]
    if missing:
        raise SystemExit(f"{source}: no runs of {missing}; it holds {sorted(groups)}")
    switches = groups[methods[0]][0].sequence.switch_steps
    reset_at = [step for m in methods for step in groups[m][0].config.get("reset_at_steps") or []]
    branch = min(reset_at + switches[:1], default=None)  # up to here the groups ran alike (a shared stage 1)
    for step in sorted({*switches, *reset_at}):
        ax.axvline(step, color="grey", linestyle="--", linewidth=0.7)
    drawn_prefixes = []  # each distinct stage 1 (the curve up to the branch) is drawn once, by its first group
    for method in methods:
        steps, values = align([current_series(r.curve_rows) for r in groups[method]])
        if branch is not None:
            before = steps < branch
            prefix = (steps[before], values[:, before])
            if any(same_curve(prefix, seen) for seen in drawn_prefixes):
                steps, values = steps[~before], values[:, ~before]
            else:
                drawn_prefixes.append(prefix)
        mean, low, high = bootstrap_band(values, reps)
        ax.plot(steps, mean, "-", color=COLOURS[method], lw=1.3, label=LABELS.get(method, method))
        ax.fill_between(steps, low, high, color=COLOURS[method], alpha=0.18, linewidth=0)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("agent steps", fontsize=8)
    ax.set_ylabel("greedy return", fontsize=8)
    ax.tick_params(labelsize=7)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img" / "regimes.png")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap resamples per step")
    args = parser.parse_args(argv)
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.0 * len(PANELS), 3.3), layout="constrained")
    for ax, (title, source, methods) in zip(axes, PANELS, strict=True):
        draw_panel(ax, title, source, methods, args.reps)
    handles = {h.get_label(): h for ax in axes for h in ax.get_lines() if not h.get_label().startswith("_")}
    fig.legend(handles=list(handles.values()), loc="outside lower center", ncol=len(handles), fontsize=8)
    fig.savefig(args.out, dpi=100)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
