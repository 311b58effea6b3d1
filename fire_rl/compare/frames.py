"""Runs as a pandas DataFrame, for notebooks: `fire_rl.compare.runs_table(paths)`."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from fire_rl.compare.runs import DEFAULT_GROUP_BY, RunRecord, load_runs

COLUMNS = ["run", "group", "seed", "event", "step", "task", "phase", "metric", "value"]
PLACES = {"event", "step", "task", "phase"}  # what says where a row belongs; its other numeric fields are metrics


def runs_table(
    paths: str | os.PathLike | Iterable[str | os.PathLike], group_by: str = DEFAULT_GROUP_BY
) -> pd.DataFrame:
    """Every run under the paths (run directories, sweep folders, their parents, packed runs files) as a tidy table:
    one row per number in a run's metrics.jsonl (of a packed run, less its episodes' time_s), with the run's path,
    group and seed; notes on what was skipped in `.attrs["notes"]`."""
    roots = [Path(paths)] if isinstance(paths, str | os.PathLike) else [Path(p) for p in paths]
    runs, notes = load_runs(roots, group_by)
    table = pd.DataFrame([row for run in runs for row in tidy_rows(run)], columns=COLUMNS)
    table.attrs["notes"] = notes
    return table


def tidy_rows(run: RunRecord) -> Iterator[tuple]:
    """A table row per numeric field (bools and nulls left out) of each of the run's own metrics rows."""
    for row in run.rows:
        place = (run.path, run.group, run.seed, row["event"], row["step"], row.get("task"), row.get("phase"))
        for key, value in row.items():
            if key not in PLACES and isinstance(value, int | float) and not isinstance(value, bool):
                yield (*place, key, value)
