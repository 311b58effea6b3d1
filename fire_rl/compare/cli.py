"""The command line, `python -m fire_rl.compare DIR|FILE ...`: its options, the checks on them, and the run of it
all."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from fire_rl.compare.report import write_outputs
from fire_rl.compare.runs import (
    DEFAULT_GROUP_BY,
    CompareError,
    Groups,
    check_group_by,
    group_runs,
    load_runs,
    order_groups,
    pack_of,
    reference_curves,
    wandb_runs,
)
from fire_rl.compare.stats import rliable_modules


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command's options (argv None: sys.argv)."""
    description = "Curves, tables, rliable aggregates and continual metrics over fire_rl run directories."
    parser = argparse.ArgumentParser(prog="python -m fire_rl.compare", description=description)
    parser.add_argument(
        "dirs", nargs="+", type=Path, help="run directories, Hydra sweep folders, their parents, or packed runs files"
    )
    parser.add_argument(
        "--out", type=Path, help="output folder (default: <first DIR>/compare; beside a packed file: compare/<folder>)"
    )
    parser.add_argument("--group-by", default=DEFAULT_GROUP_BY, help="dotted config key (default: reset.name)")
    parser.add_argument("--baseline", help="group for probability of improvement (default: none, if present)")
    parser.add_argument("--gap-to", metavar="GROUP", help="also tabulate every group's return gap to GROUP (gap.csv)")
    parser.add_argument("--reference-dir", type=Path, nargs="+", help="single-task runs for forward transfer")
    parser.add_argument("--paper-overlay", action="store_true", help="draw the FIRE paper's Fig. 4 final values")
    parser.add_argument(
        "--late-visits", type=int, default=2, help="visits the visits table's late row covers (default: 2)"
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default: 2000)")
    parser.add_argument("--wandb-project", help="also read runs of this wandb ENTITY/PROJECT")
    return parser.parse_args(argv)


def check_counts(args: argparse.Namespace) -> None:
    """--reps and --late-visits are positive, checked before any run is read."""
    if args.reps < 1:
        raise CompareError(f"--reps must be a positive integer, got {args.reps}")
    if args.late_visits < 1:
        raise CompareError(f"--late-visits must be a positive integer, got {args.late_visits}")


def chosen_baseline(groups: Groups, args: argparse.Namespace, notes: list[str]) -> str:
    """The baseline group (`none` unless named); a named --baseline or --gap-to group must exist."""
    baseline = args.baseline or "none"
    if args.baseline and args.baseline not in groups:
        raise CompareError(f"--baseline {args.baseline!r} is not a group; groups: {', '.join(sorted(groups))}")
    if args.gap_to is not None and args.gap_to not in groups:
        raise CompareError(f"--gap-to {args.gap_to!r} is not a group; groups: {', '.join(sorted(groups))}")
    if baseline not in groups:
        notes.append(f"no group named {baseline!r}: probability of improvement not computed (pick one with --baseline)")
    return baseline


def compare(args: argparse.Namespace) -> Path:
    """Everything the command does; returns the report path."""
    check_counts(args)
    runs, notes = load_runs(args.dirs, args.group_by)
    if args.wandb_project:
        runs += wandb_runs(args.wandb_project, args.group_by, notes)
    check_group_by(runs, args.group_by)
    groups = group_runs(runs)
    baseline = chosen_baseline(groups, args, notes)
    groups = order_groups(groups, baseline)
    references = reference_curves(args.reference_dir) if args.reference_dir else {}
    try:
        rliable_modules()  # fail before writing anything when the aggregate statistics cannot be computed
    except RuntimeError as err:
        raise CompareError(str(err)) from err
    first = args.dirs[0]
    pack = pack_of(first)  # a packed file (or a folder inside one): the report goes beside the file
    out = args.out or (first / "compare" if pack is None else pack[0].parent / "compare" / pack[1])
    out.mkdir(parents=True, exist_ok=True)
    return write_outputs(out, groups, baseline, references, notes, args)


def main(argv: list[str] | None = None) -> None:
    """Run the command; bad input exits with one line naming it (status 1)."""
    args = parse_args(argv)
    started = time.perf_counter()
    try:
        report = compare(args)
    except CompareError as err:
        sys.exit(f"fire_rl.compare: error: {err}")
    print(f"report: {report}  ({time.perf_counter() - started:.1f} s)")
