"""Reading runs for `python -m fire_rl.compare`: every run directory under the given folders (a folder holding
`config.yaml` and `metrics.jsonl`) and every run of a packed runs file (`runs.jsonl.gz`, written by
`python -m fire_rl.compare.pack`; its format is below), each read into a RunRecord (resolved config, group label,
task sequence, metrics rows), and runs of a wandb project as a second source.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from envs.sequence import Task, TaskSequence, sequence_from_record
from envs.suite import SUITES, build_suite, suite_class
from fire_rl.compare.series import Series, eval_series
from fire_rl.logging import METRICS_FILE, read_rows_checked

DEFAULT_GROUP_BY = "reset.name"
SKIP_DIRS = {".hydra", "wandb", "__pycache__", ".git"}
_MISSING = object()


class CompareError(Exception):
    """Bad input; the message names the bad path or value."""


class SkipRun(Exception):
    """A run that cannot be used; the message says why."""


@dataclass
class RunRecord:
    """One run: where it came from, its resolved config, group label, task sequence and metrics rows."""

    path: str
    config: dict
    group: str
    sequence: TaskSequence
    rows: list[dict]
    prefix: list[dict] = field(default_factory=list)  # a branched run's stage-1 rows up to the branch (curves only)

    @property
    def seed(self) -> Any:
        """The seed from the run's config (None without one)."""
        return self.config.get("seed")

    @cached_property
    def evals(self) -> dict[str, Series]:
        """The run's own evaluations: what the tables use."""
        return eval_series(self.rows)

    @property
    def curve_rows(self) -> list[dict]:
        """What the curves draw: the stage-1 prefix of a branched run, then its own rows (0 to the end)."""
        return self.prefix + self.rows

    @cached_property
    def curve_evals(self) -> dict[str, Series]:
        """The evaluations of the curve rows: what the curves draw."""
        return eval_series(self.curve_rows)

    @cached_property
    def complete(self) -> bool:
        """True when the run evaluated at its last step (a killed run did not)."""
        return any(r["event"] == "eval" and r["step"] >= self.sequence.total_steps for r in self.rows)


Groups = dict[str, list[RunRecord]]  # group label -> its runs, as the tables and figures take them


# --- packed runs files ------------------------------------------------------------------------------------------
# A packed runs file is gzip (mtime 0: the same runs give the same bytes) of JSON lines. The first line is the header,
# {"format": PACK_FORMAT, "version": PACK_VERSION}; then one line per run directory that was found under the packed
# root, in path order, stage-1 runs included:
#   path      the run directory relative to the packed root, "/"-separated ("seed0/fire")
#   config    its resolved config (config.yaml, as JSON)
#   env       its env record (env.json), or null
#   problems  the notes on lines of its metrics.jsonl that could not be read (usually none)
#   rows      every metrics row but the training episodes, in file order
#   episodes  the training episodes as columns of equal length: step, task, return, length (an episode row's
#             time_s is not kept; an episode row with other keys stays whole in `rows`)
# A packed run reads back as its directory would, under the path <file>/<path>; its episode rows are put back among
# the other rows by step.

PACK_FORMAT = "fire_rl.compare.runs"
PACK_VERSION = 1
EPISODE_COLUMNS = {  # column -> the key of an episode row
    "step": "step",
    "task": "task",
    "return": "charts/episodic_return",
    "length": "charts/episodic_length",
}


@dataclass
class PackedRun:
    """One run of a packed runs file, as its directory held it."""

    path: Path  # <file>/<path inside it>
    config: dict
    env: dict | None
    rows: list  # every metrics row, episodes included
    problems: list[str]


def read_pack(file: Path) -> list[PackedRun]:
    """Every run of a packed runs file; CompareError when it is not one (or one of a later version)."""
    root = file.resolve()
    try:
        with gzip.open(file, "rt", encoding="utf-8") as f:
            header = json.loads(f.readline() or "null")
            if not isinstance(header, dict) or header.get("format") != PACK_FORMAT:
                raise CompareError(f"{file}: not a directory, nor a packed runs file ({PACK_FORMAT})")
            if header.get("version") != PACK_VERSION:
                version = header.get("version")
                raise CompareError(f"{file}: packed runs version {version}; this compare reads {PACK_VERSION}")
            return [unpacked_run(json.loads(line), root) for line in f]
    except (OSError, EOFError, zlib.error, ValueError, KeyError, TypeError) as err:  # ValueError: bad JSON too
        raise CompareError(f"{file}: not a directory, nor a readable packed runs file ({err!r})") from err


def unpacked_run(line: dict, root: Path) -> PackedRun:
    """One line of a packed file as the run it holds."""
    rows = with_episodes(line["rows"], line["episodes"])
    return PackedRun(root / line["path"], line["config"], line["env"], rows, line["problems"])


def with_episodes(rows: list, columns: dict[str, list]) -> list:
    """The rows with the episode columns put back as episode rows, where the training loop writes them: after the
    rows of their own step, before the first row of a later step."""
    keys = list(EPISODE_COLUMNS.values())
    values = zip(*(columns[c] for c in EPISODE_COLUMNS), strict=True)
    episodes = [{"event": "episode", **dict(zip(keys, v, strict=True))} for v in values]
    merged, i = [], 0
    for row in rows:
        step = row.get("step") if isinstance(row, dict) else None
        if isinstance(step, int | float):
            while i < len(episodes) and episodes[i]["step"] < step:
                merged.append(episodes[i])
                i += 1
        merged.append(row)
    return merged + episodes[i:]


# --- discovery and loading ------------------------------------------------------------------------------------


def find_run_dirs(roots: list[Path]) -> tuple[list[Path], list[str]]:
    """Every run directory under the roots (Hydra sweep folders, single runs, parents of either), plus skip notes."""
    found, notes = walk_run_dirs(roots)
    if not found:
        raise CompareError(no_runs(roots))
    return found, notes


def no_runs(roots: list[Path]) -> str:
    """The error for roots without a run."""
    where = ", ".join(str(r) for r in roots)
    return f"no run directories (a folder holding config.yaml and {METRICS_FILE}) under {where}"


def walk_run_dirs(roots: list[Path]) -> tuple[list[Path], list[str]]:
    """find_run_dirs, without the error when there are none."""
    for root in roots:
        if not root.is_dir():
            raise CompareError(f"no such directory: {root}")
    found, notes = set(), []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
            has_config, has_metrics = "config.yaml" in filenames, METRICS_FILE in filenames
            if has_config and has_metrics:
                found.add(Path(dirpath).resolve())
                dirnames[:] = []
            elif has_metrics:
                notes.append(f"{dirpath}: {METRICS_FILE} without config.yaml; skipped")
            elif has_config and (Path(dirpath) / ".hydra").is_dir():
                notes.append(f"{dirpath}: config.yaml without {METRICS_FILE} (the run never started); skipped")
    return sorted(found), notes


def pack_of(root: Path) -> tuple[Path, PurePosixPath] | None:
    """(packed file, folder inside it) for a root such as `runs.jsonl.gz/cycle/seed1`: the runs a packed file
    holds under that folder, as a folder of run directories would; None when the root is no such path."""
    if root.exists():
        return (root, PurePosixPath(".")) if root.is_file() else None
    for parent in root.parents:
        if parent.is_file():
            return parent, PurePosixPath(root.relative_to(parent).as_posix())
    return None


def packed_runs_under(runs: list[PackedRun], file: Path, inside: PurePosixPath) -> list[PackedRun]:
    """The runs of a packed file (`runs`, read from `file`) under a folder inside it ('.': all of them);
    CompareError naming the folders it holds when none is there."""
    if inside == PurePosixPath("."):
        return runs
    base = file.resolve()
    inner = {id(r): PurePosixPath(r.path.relative_to(base).as_posix()) for r in runs}
    chosen = [r for r in runs if inside == inner[id(r)] or inside in inner[id(r)].parents]
    if not chosen:
        tops = sorted({path.parts[0] for path in inner.values()})
        raise CompareError(f"{file} holds no run under {inside}; its top folders: {', '.join(tops)}")
    return chosen


def find_runs(roots: list[Path]) -> tuple[list[Path | PackedRun], list[str], StageOnes]:
    """Every run under the roots, folders and packed runs files (or folders inside one) alike, in path order, plus
    skip notes and where branches find their stage 1: every run of each packed file read (a branch chosen from a
    folder finds its stage 1 there), with those files marked read."""
    packs = {root: pack_of(root) for root in roots}
    found, notes = walk_run_dirs([root for root, pack in packs.items() if pack is None])
    whole = {file: read_pack(file) for file, _ in filter(None, packs.values())}  # each file read once
    chosen = [
        run for file, inside in filter(None, packs.values()) for run in packed_runs_under(whole[file], file, inside)
    ]
    runs = sorted([*found, *chosen], key=source_path)
    if not runs:
        raise CompareError(no_runs(roots))
    return runs, notes, StageOnes({run.path: run for file_runs in whole.values() for run in file_runs}, set(whole))


def source_path(source: Path | PackedRun) -> Path:
    """Where a run was found: its directory, or <packed file>/<its path inside>."""
    return source if isinstance(source, Path) else source.path


def config_value(config: dict, key: str) -> Any:
    """The value at a dotted key (`reset.c`), or _MISSING."""
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def check_group_by(runs: list[RunRecord], key: str) -> None:
    """A --group-by key that no run's config has is a typo, not a grouping (runs without +reset= are `none`)."""
    if key != DEFAULT_GROUP_BY and all(config_value(r.config, key) is _MISSING for r in runs):
        keys = ", ".join(sorted(runs[0].config))
        raise CompareError(f"--group-by {key!r} is not a key of any run config; top-level keys: {keys}")


def group_label(config: dict, key: str) -> str:
    """The run's group: by default its reset method (`none` without a reset group), joined with its regulariser when
    it has one (`fire+l2_init`); else `<last key part>=<value>`."""
    value = config_value(config, key)
    if key == DEFAULT_GROUP_BY:
        reset = "none" if value is _MISSING else str(value)
        regularizer = config_value(config, "regularizer.name")
        return reset if regularizer is _MISSING or regularizer is None else f"{reset}+{regularizer}"
    if value is _MISSING:
        return "none" if key.startswith("reset.") and not config.get("reset") else "(absent)"
    return f"{key.rsplit('.', 1)[-1]}={value}"


def run_sequence(path: str, config: dict, env_record: dict | None) -> TaskSequence:
    """The sequence the run trained on: read back from its env.json, else built by its env suite from the config
    (dynamics draws included); SkipRun when neither works."""
    if env_record and env_record.get("sequence"):
        kind = env_record.get("kind")
        return sequence_from_record(env_record["sequence"], suite_class(kind).task_type if kind in SUITES else Task)
    try:
        return build_suite(config["env"]).sequence
    except Exception as err:  # a config from another version or a hand-edited one
        raise SkipRun(f"{path}: no usable task sequence in env.json or config.yaml ({err}); skipped") from err


def make_record(path: str, config: dict, rows: list[dict], group_by: str, sequence: TaskSequence) -> RunRecord:
    """A RunRecord from a resolved config, the sequence it ran and its rows."""
    rows = [r for r in rows if isinstance(r, dict) and "event" in r and isinstance(r.get("step"), int | float)]
    return RunRecord(path, config, group_label(config, group_by), sequence, rows)


def read_env_record(run_dir: Path) -> dict | None:
    """env.json, or None when it is missing or unreadable (older runs, killed before writing it)."""
    try:
        return json.loads((run_dir / "env.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None


StageOneRows = Callable[[Path], list | None]  # a stage-1 run's folder -> its metrics rows, None when there is none


def rows_on_disk(stage1: Path) -> list | None:
    """The metrics rows of a run directory, None when it has no metrics file."""
    return read_rows_checked(stage1)[0] if (stage1 / METRICS_FILE).exists() else None


def load_run(run_dir: Path, group_by: str, stage_one_rows: StageOneRows = rows_on_disk) -> tuple[RunRecord, list[str]]:
    """Read one run directory; returns the record and notes about lines skipped in its metrics file."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise SkipRun(f"{run_dir}: config.yaml unreadable ({err}); skipped") from err
    skip_stage_one(run_dir, config)
    rows, problems = read_rows_checked(run_dir)
    return read_record(run_dir, config, read_env_record(run_dir), rows, problems, group_by, stage_one_rows)


def load_packed(run: PackedRun, group_by: str, stage_one_rows: StageOneRows) -> tuple[RunRecord, list[str]]:
    """Read one run of a packed file as load_run reads a directory."""
    skip_stage_one(run.path, run.config)
    return read_record(run.path, run.config, run.env, run.rows, run.problems, group_by, stage_one_rows)


class StageOnes:
    """A branch's stage-1 rows by the stage-1 run's path: a run of a packed file already read, else a run directory
    on disk, else a run of a packed file on disk that no root named, read once when a branch first points into it
    (the branch points a result keeps beside its packed runs: kept_stage_one)."""

    def __init__(self, packed: dict[Path, PackedRun], files_read: set[Path]):
        self.packed = packed
        self.files_read = {file.resolve() for file in files_read}  # never read twice
        self.problems: list[str] = []  # a packed file a branch pointed into that could not be read

    def __call__(self, stage1: Path) -> list | None:
        key = stage1.resolve()
        if key not in self.packed:
            self.read_pack_holding(stage1)
        return self.packed[key].rows if key in self.packed else rows_on_disk(stage1)

    def read_pack_holding(self, stage1: Path) -> None:
        """Read the packed file `stage1` lies inside, if any and not read yet."""
        pack = pack_of(stage1)
        if pack is None or pack[1] == PurePosixPath(".") or pack[0].resolve() in self.files_read:
            return
        self.files_read.add(pack[0].resolve())
        try:
            self.packed.update({r.path: r for r in read_pack(pack[0])})
        except CompareError as err:
            self.problems.append(f"a branch's stage 1 was looked for in {pack[0]}, which was not read: {err}")


def skip_stage_one(path: Path, config: dict) -> None:
    """SkipRun for stage 1 of a midpoint protocol: the methods' own runs branch from it; counting it would add a fake
    "none"."""
    if config.get("stop_at_step") is not None:
        raise SkipRun(f"{path}: stopped at step {config['stop_at_step']} (stage 1 of a branch protocol); skipped")


def read_record(
    path: Path,
    config: dict,
    env_record: dict | None,
    rows: list,
    problems: list[str],
    group_by: str,
    stage_one_rows: StageOneRows,
) -> tuple[RunRecord, list[str]]:
    """A run's record from what its directory holds, and the notes on it (lines skipped, a stage 1 not found)."""
    sequence = run_sequence(str(path), config, env_record)
    record = make_record(str(path), config, rows, group_by, sequence)
    notes = [f"{path}: {p}" for p in problems]
    if config.get("branch_from"):
        record.prefix, note = branch_prefix(Path(config["branch_from"]), path, stage_one_rows)
        notes += [note] if note else []
    return record, notes


KEPT_RESULT_RUNS = "runs.jsonl.gz"  # a result's packed runs, beside the branch points it keeps (docs/protocols.md)


def kept_stage_one(checkpoint: Path) -> Path | None:
    """The stage-1 run of a branch point kept with a result, <result>/stage1/<seed folder>/step_N: the run
    <result>/runs.jsonl.gz/<seed folder>/stage1 of the result's packed runs; None for a checkpoint in a run folder
    (<run>/checkpoints/step_N) or any other path."""
    parts = checkpoint.parts
    if len(parts) < 2 or parts[-2] == "checkpoints" or "stage1" not in parts[:-1]:
        return None
    at = len(parts) - 2 - parts[-2::-1].index("stage1")
    return Path(*parts[:at], KEPT_RESULT_RUNS, *parts[at + 1 : -1], "stage1")


def branch_prefix(
    checkpoint: Path, run_dir: Path, stage_one_rows: StageOneRows = rows_on_disk
) -> tuple[list[dict], str | None]:
    """The stage-1 rows up to the branch step (checkpoint <stage1>/checkpoints/step_<N>, or a branch point a result
    keeps: kept_stage_one), or a note why there are none. The path as recorded is tried first (a relative one from
    the working directory), then its tails from the run directory's ancestors, longest first: a sweep copied
    elsewhere (seedN/{stage1,fire} in another folder) or packed (<file>/seedN/{stage1,fire}) still finds its stage 1
    as seedN/stage1/checkpoints/step_<N>, and runs copied beside a result (<result>/../new/seedN/dash) find it as
    <result>/stage1/seedN/step_<N>."""
    step = int(checkpoint.name.split("_")[-1]) if checkpoint.name.startswith("step_") else None
    tails = [Path(*checkpoint.parts[i:]) for i in range(len(checkpoint.parts) - 2)]
    candidates = dict.fromkeys([checkpoint, *(a / tail for tail in tails for a in run_dir.parents)])  # once each
    stage_ones = dict.fromkeys(kept_stage_one(c) or c.parent.parent for c in candidates)
    found = (stage_one_rows(s) for s in stage_ones) if step is not None else iter(())
    rows = next((r for r in found if r is not None), None)
    if rows is None:
        return (
            [],
            f"{run_dir}: branched from {checkpoint}, whose stage-1 run was not found; its curves start at the branch",
        )
    return [r for r in rows if isinstance(r.get("step"), int | float) and r["step"] <= step], None


def load_runs(roots: list[Path], group_by: str) -> tuple[list[RunRecord], list[str]]:
    """Discover and read every run under the roots (folders and packed runs files); unusable runs become notes, not
    errors."""
    sources, notes, stage_ones = find_runs(roots)
    runs = []
    for source in sources:
        try:
            if isinstance(source, PackedRun):
                run, problems = load_packed(source, group_by, stage_ones)
            else:
                run, problems = load_run(source, group_by, stage_ones)
        except SkipRun as skip:
            notes.append(str(skip))
            continue
        runs.append(run)
        notes.extend(problems)
    notes.extend(stage_ones.problems)
    if not runs:
        raise CompareError("no usable runs: " + "; ".join(notes))
    return runs, notes


def wandb_runs(project: str, group_by: str, notes: list[str]) -> list[RunRecord]:
    """Runs of a wandb project (ENTITY/PROJECT) from their logged config and history (lossy; local files are not)."""
    try:
        import wandb

        remote = list(wandb.Api(timeout=30).runs(project))
    except Exception as err:  # no network, no login, wrong path: all end here
        raise CompareError(f"--wandb-project {project!r}: could not list runs ({err})") from err
    records = []
    for run in remote:
        path, config = f"wandb:{project}/{run.id}", dict(run.config)
        try:
            sequence = run_sequence(path, config, None)
            rows = rows_from_history(run.scan_history(), sequence)
            records.append(make_record(path, config, rows, group_by, sequence))
        except SkipRun as skip:
            notes.append(str(skip))
    return records


def rows_from_history(history, sequence: TaskSequence) -> list[dict]:
    """wandb history rows as metrics rows: switches from the sequence, events from the key prefixes present."""
    starts = [0, *sequence.switch_steps]
    visits = enumerate(zip(sequence.visits, starts, strict=True))
    rows = [{"event": "switch", "step": s, "task": t.name, "visit": i} for i, (t, s) in visits]
    for h in history:
        step = h.get("_step")
        if step is None:
            continue
        for prefix, event, extra in (("eval/", "eval", {}), ("plasticity/", "plasticity", {"phase": "periodic"})):
            values = {k: v for k, v in h.items() if k.startswith(prefix)}
            if values:
                rows.append({"event": event, "step": step, **extra, **values})
        if h.get("reset/sfe_total") is not None:
            rows.append({"event": "reset", "step": step})
        if h.get("charts/episodic_return") is not None:
            task = sequence.visits[sequence.visit_at(step)].name
            value = h["charts/episodic_return"]
            rows.append({"event": "episode", "step": step, "task": task, "charts/episodic_return": value})
    return sorted(rows, key=lambda r: r["step"])


def group_runs(runs: list[RunRecord]) -> Groups:
    """Runs by group label; a group whose runs disagree on the task sequence is an error."""
    groups: Groups = {}
    for run in runs:
        groups.setdefault(run.group, []).append(run)
    for group, members in groups.items():
        first = members[0]
        for other in members[1:]:
            if other.sequence != first.sequence:
                raise CompareError(
                    f"group {group!r} mixes task sequences: {first.path} runs {describe(first.sequence)} but "
                    f"{other.path} runs {describe(other.sequence)}; compare them separately or split with --group-by"
                )
    return groups


def describe(sequence: TaskSequence) -> str:
    """'Asterix(100) > BeamRider(100)' in visit order; a long sequence by its first two and last visits."""
    shown = [f"{t.name}({t.steps})" for t in sequence.visits]
    if len(shown) > 4:
        return " > ".join([*shown[:2], "...", shown[-1]]) + f" ({len(shown)} visits)"
    return " > ".join(shown)


def order_groups(groups: Groups, baseline: str) -> Groups:
    """The baseline first, then the other groups by name."""
    return dict(sorted(groups.items(), key=lambda item: (item[0] != baseline, item[0])))


def reference_curves(roots: list[Path]) -> dict[str, list[Series]]:
    """Single-task reference runs: evaluation curve(s) per task name, for forward transfer."""
    runs, _ = load_runs(roots, DEFAULT_GROUP_BY)
    curves: dict[str, list[Series]] = {}
    for run in runs:
        tasks = run.sequence.distinct_tasks
        if len(tasks) == 1 and tasks[0].name in run.evals:
            curves.setdefault(tasks[0].name, []).append(run.evals[tasks[0].name])
    if not curves:
        raise CompareError(f"--reference-dir {', '.join(map(str, roots))}: no single-task runs with evaluations")
    return curves
