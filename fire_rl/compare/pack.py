"""`python -m fire_rl.compare.pack ROOT OUT_FILE`: every run directory under ROOT (stage-1 runs included) into one
packed runs file, which `python -m fire_rl.compare OUT_FILE` reads as it reads the directories. The format is
described in runs.py, which reads it; a results folder keeps its runs as `runs.jsonl.gz`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from pathlib import Path

import yaml

from fire_rl.compare.runs import (
    EPISODE_COLUMNS,
    PACK_FORMAT,
    PACK_VERSION,
    CompareError,
    find_run_dirs,
    read_env_record,
)
from fire_rl.logging import read_rows_checked

KEPT_EPISODE_KEYS = {"event", *EPISODE_COLUMNS.values()}
DROPPED_EPISODE_KEYS = {"time_s"}  # read by nothing: an episode's wall-clock time


def is_packable_episode(row) -> bool:
    """An episode row the columns hold: the kept keys, perhaps time_s, nothing else, and a numeric step."""
    if not isinstance(row, dict) or row.get("event") != "episode" or not isinstance(row.get("step"), int | float):
        return False
    return KEPT_EPISODE_KEYS <= row.keys() <= KEPT_EPISODE_KEYS | DROPPED_EPISODE_KEYS


def packed_run(run_dir: Path, root: Path) -> dict:
    """One run directory as a line of the packed file."""
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    except (OSError, yaml.YAMLError) as err:
        raise CompareError(f"{run_dir}: config.yaml unreadable ({err})") from err
    if json.loads(json.dumps(config)) != config:
        raise CompareError(f"{run_dir}: config.yaml holds values JSON does not keep (keys that are not strings?)")
    rows, problems = read_rows_checked(run_dir)
    episodes = [r for r in rows if is_packable_episode(r)]
    return {
        "path": run_dir.relative_to(root).as_posix(),
        "config": config,
        "env": read_env_record(run_dir),
        "problems": problems,
        "rows": [r for r in rows if not is_packable_episode(r)],
        "episodes": {column: [e[key] for e in episodes] for column, key in EPISODE_COLUMNS.items()},
    }


def pack(root: Path, out: Path) -> int:
    """Write every run directory under `root` into `out`; returns how many. The same runs give the same bytes."""
    dirs, _ = find_run_dirs([root])
    root = root.resolve()
    lines = [{"format": PACK_FORMAT, "version": PACK_VERSION}, *(packed_run(d, root) for d in dirs)]
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    out.write_bytes(gzip.compress(text.encode("utf-8"), compresslevel=9, mtime=0))
    return len(dirs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fire_rl.compare.pack", description=__doc__)
    parser.add_argument("root", type=Path, help="a folder of run directories (a sweep, a carried results folder)")
    parser.add_argument("out", type=Path, help="the packed runs file to write (runs.jsonl.gz)")
    args = parser.parse_args(argv)
    try:
        count = pack(args.root, args.out)
    except CompareError as err:
        sys.exit(f"fire_rl.compare.pack: error: {err}")
    print(f"packed {count} run(s) under {args.root} into {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
