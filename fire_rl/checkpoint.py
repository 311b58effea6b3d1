"""Whole-run checkpoints: one directory per checkpoint, written under a temporary name and renamed into place.

A checkpoint directory holds `state.pt` (everything but the replay arrays: networks, optimizers, theta0, RNG
states, env snapshots, loop counters, reset-strategy state, logger position), `replay.npz` (the replay arrays,
optionally compressed) and `manifest.json` (written last: file sizes, step, configuration fingerprint). A directory
without a manifest, or whose files do not match it, is incomplete and is never loaded.
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
MANIFEST = "manifest.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, incomplete, corrupt, or from another configuration."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    run_dir: Path,
    step: int,
    state: dict[str, Any],
    replay: dict[str, Any],
    fingerprint: dict[str, Any],
    keep: int = 2,
    compress: bool = False,
) -> Path:
    """Write checkpoint `step_<step>` atomically and keep only the newest `keep` complete ones."""
    root = Path(run_dir) / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    final, tmp = root / f"step_{step:012d}", root / f".tmp_step_{step:012d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(state, tmp / "state.pt")
    arrays = {k: v for k, v in replay.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in replay.items() if not isinstance(v, np.ndarray)}
    (np.savez_compressed if compress else np.savez)(tmp / "replay.npz", **arrays)
    torch.save(scalars, tmp / "replay_meta.pt")
    files = {p.name: p.stat().st_size for p in tmp.iterdir()}
    manifest = {"step": step, "files": files, "fingerprint": fingerprint}
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    for path in tmp.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)  # the rename is the commit point: a kill before it leaves only a .tmp directory
    _fsync_dir(root)
    for old in list_checkpoints(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete-looking checkpoint directories of a run, oldest first."""
    root = Path(run_dir) / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if p.is_dir())


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of a checkpoint directory, after checking every file is there with its recorded size."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"checkpoint {path} does not exist (expected a directory holding {MANIFEST})")
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"checkpoint {path} is incomplete: unreadable {MANIFEST} ({err})") from err
    for name, size in manifest["files"].items():
        actual = (path / name).stat().st_size if (path / name).exists() else None
        if actual != size:
            raise CheckpointError(f"checkpoint {path} is corrupt: {name} has {actual} bytes, manifest says {size}")
    return manifest


def load_checkpoint(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(state, replay state, manifest) of one checkpoint; CheckpointError if it is incomplete or corrupt."""
    manifest = read_manifest(path)
    try:
        state = torch.load(path / "state.pt", weights_only=False, map_location="cpu")
        replay = dict(torch.load(path / "replay_meta.pt", weights_only=False))
        with np.load(path / "replay.npz") as arrays:
            replay.update({k: arrays[k] for k in arrays.files})
    except Exception as err:  # zip, pickle and torch errors all mean the same thing here
        raise CheckpointError(f"checkpoint {path} is corrupt: {type(err).__name__}: {err}") from err
    return state, replay, manifest


def load_latest(run_dir: Path) -> tuple[Path, dict[str, Any], dict[str, Any], dict[str, Any]] | None:
    """The newest usable checkpoint of a run (older ones are tried when the newest is damaged), or None."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return (path, *load_checkpoint(path))
        except CheckpointError as err:
            warnings.warn(f"{err}; trying the previous checkpoint", stacklevel=2)
    return None


def check_fingerprint(found: dict[str, Any], expected: dict[str, Any], path: Path) -> None:
    """Refuse a checkpoint written under another configuration, naming what differs."""
    diffs = [f"{k}: checkpoint {found.get(k)!r} vs now {v!r}" for k, v in expected.items() if found.get(k) != v]
    if diffs:
        raise CheckpointError(f"checkpoint {path} is from another configuration ({'; '.join(diffs)})")
