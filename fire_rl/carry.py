"""Carry a sweep's run directories between machines through the repository, trimmed to what resuming needs.

A reference sweep runs for longer than one session, and the machine it ran on may not come back. `save` copies
each run directory under SRC into DEST with only what the sweep needs to go on: every file of the run (metrics,
configs, logs) and at most one checkpoint. A run that is not finished (no `end` row: cut off, or stopped on purpose
at `stop_at_step` like a stage-1 run, whose last checkpoint is the shared branch point) keeps its newest complete
checkpoint; a finished run keeps none (its metrics are all a report reads).
`restore` copies each run of DEST into OUT where OUT does not hold that run at least as far along, so re-running
the sweep command resumes every run instead of starting it again.

    python -m fire_rl.carry save runs/minatar_midpoint carry/minatar_midpoint
    python -m fire_rl.carry restore carry/minatar_midpoint runs/minatar_midpoint

`python -m fire_rl.protocol carry|sweep` calls these (a pilot's runs are not carried). A carried tree is a sweep in
progress: once it has finished, its runs are packed into the result's folder (`python -m fire_rl.compare.pack`) and
the tree leaves the repository (docs/protocols.md).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from fire_rl.checkpoint import list_checkpoints
from fire_rl.logging import METRICS_FILE
from fire_rl.run_state import finished

CONFIG_FILE = "config.yaml"


def run_dirs(root: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """The run directories under `root` (those holding a config), relative to it, except under the top-level
    folders named in `skip`."""
    found = (p.parent.relative_to(root) for p in root.rglob(CONFIG_FILE) if p.parent.name != ".hydra")
    return sorted(rel for rel in found if rel.parts[0] not in skip)


def checkpoint_to_keep(run_dir: Path) -> Path | None:
    """The newest complete checkpoint of an unfinished run; None for a finished one (see the module docstring)."""
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints and not finished(run_dir) else None


def progress(run_dir: Path) -> tuple[bool, int]:
    """How far a run is along, comparable with <: (True, 0) once finished, else (False, newest checkpoint's step)."""
    if finished(run_dir):
        return True, 0
    checkpoints = list_checkpoints(run_dir)
    return False, int(checkpoints[-1].name.removeprefix("step_")) if checkpoints else -1


def copy_trimmed(src: Path, dest: Path) -> None:
    """Replace `dest` with `src`'s files, its `.hydra` folder and only the checkpoint it needs."""
    tmp = dest.with_name(dest.name + ".carrying")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("checkpoints"))
    keep = checkpoint_to_keep(src)
    if keep is not None:
        shutil.copytree(keep, tmp / keep.relative_to(src))
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def save(src: Path, dest: Path, skip: tuple[str, ...] = ()) -> list[Path]:
    """Copy every run of `src` (but those under `skip`) that `dest` does not already hold as far along; return those
    copied."""
    copied = []
    for rel in run_dirs(src, skip):
        if (dest / rel).is_dir() and progress(dest / rel) == progress(src / rel):
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        copy_trimmed(src / rel, dest / rel)
        copied.append(rel)
    return copied


def restore(src: Path, out: Path) -> list[Path]:
    """Copy every run of `src` (a carried tree) that `out` lacks or holds less far along; return those copied."""
    copied = []
    for rel in run_dirs(src):
        here = out / rel
        if (here / METRICS_FILE).exists() and progress(here) >= progress(src / rel):
            continue
        here.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(here, ignore_errors=True)
        shutil.copytree(src / rel, here)
        copied.append(rel)
    return copied


def summary(action: str, copied: list[Path], dest: Path) -> str:
    """One line per run copied and a count, as `carry` prints them."""
    lines = []
    for rel in copied:
        done, step = progress(dest / rel)
        lines.append(f"{action}: {rel} ({'finished' if done else f'checkpoint at step {step}'})")
    return "\n".join([*lines, f"carry {action}: {len(copied)} run(s) copied into {dest}"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fire_rl.carry", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("src", type=Path, help="save: the sweep's output root; restore: the carried tree")
    parser.add_argument("dest", type=Path, help="save: the carried tree; restore: the sweep's output root")
    args = parser.parse_args(argv)
    if not args.src.is_dir():
        print(f"fire_rl.carry: {args.action}: no directory {args.src}", file=sys.stderr)
        return 2
    copied = (save if args.action == "save" else restore)(args.src, args.dest)
    print(summary(args.action, copied, args.dest))
    return 0


if __name__ == "__main__":
    sys.exit(main())
