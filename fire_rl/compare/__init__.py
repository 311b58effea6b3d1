"""Compare reset methods over run directories: `python -m fire_rl.compare runs/multirun/<date>/<time>`.

Finds every run under the given folders (a folder holding `config.yaml` and `metrics.jsonl`) and in the given packed
runs files (`runs.jsonl.gz`, written by `python -m fire_rl.compare.pack ROOT FILE`), groups them by reset method (or
any dotted config key), and writes curves, tables, rliable aggregates, continual metrics and a `report.md` into the
output folder. Reads local runs; a wandb project can be added as a second source.

In a notebook, `runs_table(paths)` gives the same runs as a pandas DataFrame, one row per logged number.

The modules depend one way (tests/test_layers.py checks it): series and runs (reading; pack, the packed file's
writer; frames, the DataFrame) -> stats (statistics) -> tables, intervention, visits (the tables) -> figures ->
report (the output folder) -> cli (the command).
"""

from fire_rl.compare.frames import runs_table
from fire_rl.compare.runs import CompareError, RunRecord, SkipRun, find_run_dirs, load_run, load_runs

__all__ = [
    "CompareError",
    "RunRecord",
    "SkipRun",
    "compare",
    "find_run_dirs",
    "load_run",
    "load_runs",
    "main",
    "runs_table",
]


def __getattr__(name: str):
    """`compare` and `main` on first use: the command imports matplotlib and sets its Agg backend, which a notebook
    that only reads runs should not get."""
    if name in ("compare", "main"):
        from fire_rl.compare import cli

        return getattr(cli, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
