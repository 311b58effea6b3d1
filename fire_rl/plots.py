"""The run's own picture: returns per task over agent steps, with task switches and reset events marked."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fire_rl.logging import read_rows_checked  # noqa: E402


def read_rows(run_dir: Path) -> list[dict]:
    """Every complete JSON line of the run's metrics file (a line cut off by a kill is skipped)."""
    return read_rows_checked(run_dir)[0]


def _mark_events(ax, rows: list[dict]) -> None:
    for row in rows:
        if row["event"] == "switch":
            ax.axvline(row["step"], color="grey", linestyle="--", linewidth=1)
        elif row["event"] == "reset":
            ax.axvline(row["step"], color="red", linestyle=":", linewidth=1.5)


def plot_returns(run_dir: Path, out_name: str = "returns.png") -> Path:
    """Training returns (raw game score) per task and evaluation returns on every task, in one PNG."""
    run_dir = Path(run_dir)
    rows = read_rows(run_dir)
    train, evals = defaultdict(list), defaultdict(list)
    for row in rows:
        if row["event"] == "episode":
            train[row["task"]].append((row["step"], row["charts/episodic_return"]))
        elif row["event"] == "eval":
            for key, value in row.items():
                if key.startswith("eval/") and key.endswith("/return") and value is not None:
                    evals[key.split("/")[1]].append((row["step"], value))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for task, points in train.items():
        top.plot(*zip(*points, strict=True), ".", markersize=3, label=task)
    for task, points in evals.items():
        bottom.plot(*zip(*points, strict=True), "o-", label=task)
    for ax, title in ((top, "training episodes (epsilon-greedy)"), (bottom, "evaluation on every task (greedy)")):
        _mark_events(ax, rows)
        ax.set_title(title)
        ax.set_ylabel("return (raw game score)")
        if ax.has_data():
            ax.legend(fontsize=8, loc="upper left")
    bottom.set_xlabel("agent steps  (grey dashed: task switch, red dotted: reset)")
    fig.tight_layout()
    path = run_dir / out_name
    fig.savefig(path.with_suffix(".tmp.png"), dpi=100)
    path.with_suffix(".tmp.png").replace(path)  # atomic: a kill never leaves a half-written PNG
    plt.close(fig)
    return path
