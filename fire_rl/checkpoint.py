"""Whole-run checkpoints: one directory per checkpoint, written under a temporary name and renamed into place.

A checkpoint directory holds `state.pt` (everything but the replay arrays: networks, optimizers, theta0, RNG
states, env snapshots, loop counters, reset-strategy state, logger position), `replay.npz` (the replay arrays,
optionally compressed) and `manifest.json` (written last: file sizes, step, configuration fingerprint). A directory
without a manifest, or whose files do not match it, is incomplete and is never loaded.

Loading runs no code from the checkpoint: the .pt files are read with `torch.load(weights_only=True)`, which admits
only tensors and primitive containers (dict, list, tuple, str, bytes, numbers, None), and `replay.npz` with numpy's
default `allow_pickle=False`. The few other things a run's state holds (numpy arrays and scalars, numpy RNGs,
deques) are written as tagged primitives by `encode` and rebuilt by `decode`, an explicit
allowlist; anything else cannot be saved, and a file holding anything else is refused.
"""

from __future__ import annotations

import collections
import json
import os
import pickle
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

CHECKPOINT_DIR = "checkpoints"
MANIFEST = "manifest.json"
_TAG = "__fire_rl__"  # marks an encoded value: {_TAG: kind, ...}


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used: missing, incomplete, corrupt, or from another configuration."""


# --- the allowlist: encode at save, decode at load -----------------------------------------------------------

_PRIMITIVES = (str, bytes, int, float, bool, type(None), torch.Tensor)


def encode(obj: Any, where: str = "state") -> Any:
    """The same tree with every allowlisted non-primitive as a tagged dict; TypeError (naming where) otherwise."""
    if isinstance(obj, _PRIMITIVES):
        return obj
    if isinstance(obj, dict):
        return {k: encode(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        items = [encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        return items if isinstance(obj, list) else tuple(items)
    if isinstance(obj, np.ndarray | np.generic):
        array = np.asarray(obj)
        if array.dtype.hasobject:
            raise TypeError(f"{where}: object arrays cannot go into a checkpoint")
        kind = "ndarray" if isinstance(obj, np.ndarray) else "npscalar"
        return {_TAG: kind, "dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}
    if isinstance(obj, np.random.Generator):
        return {_TAG: "generator", "state": encode(obj.bit_generator.state, where)}
    if isinstance(obj, np.random.RandomState):
        return {_TAG: "randomstate", "state": encode(obj.get_state(legacy=False), where)}
    if isinstance(obj, collections.deque):
        return {_TAG: "deque", "items": encode(list(obj), where), "maxlen": obj.maxlen}
    raise TypeError(f"{where}: {type(obj).__module__}.{type(obj).__qualname__} is not allowed in a checkpoint")


def decode(obj: Any) -> Any:
    """Inverse of encode."""
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(decode(v) for v in obj)
    if not isinstance(obj, dict):
        return obj
    kind = obj.get(_TAG)
    if kind is None:
        return {k: decode(v) for k, v in obj.items()}
    if kind in ("ndarray", "npscalar"):
        array = np.frombuffer(obj["data"], dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
        return array if kind == "ndarray" else array[()]
    if kind == "generator":
        state = decode(obj["state"])
        generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
        generator.bit_generator.state = state
        return generator
    if kind == "randomstate":
        legacy = np.random.RandomState()
        legacy.set_state(decode(obj["state"]))
        return legacy
    if kind == "deque":
        return collections.deque(decode(obj["items"]), maxlen=obj["maxlen"])
    if kind == "ale_state":  # checkpoints written before the ALE snapshot held its state as bytes: those bytes
        return obj["data"]
    raise CheckpointError(f"unknown encoded kind {kind!r}")


def save_tree(tree: Any, path: Path) -> None:
    """torch.save of the encoded tree."""
    torch.save(encode(tree), path)


def load_tree(path: Path) -> Any:
    """Load a file written by save_tree, running no code from it; CheckpointError names the file otherwise."""
    try:
        raw = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(
            f"checkpoint file {path} holds something outside the allowlist (tensors, numpy arrays, RNG states, "
            f"primitive containers), so it is not loaded: {first}"
        ) from err
    except Exception as err:  # zip and torch errors: a damaged file
        raise CheckpointError(f"checkpoint file {path} is corrupt: {type(err).__name__}: {err}") from err
    return decode(raw)


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
    save_tree(state, tmp / "state.pt")
    arrays = {k: v for k, v in replay.items() if isinstance(v, np.ndarray)}
    scalars = {k: v for k, v in replay.items() if not isinstance(v, np.ndarray)}
    (np.savez_compressed if compress else np.savez)(tmp / "replay.npz", **arrays)
    save_tree(scalars, tmp / "replay_meta.pt")
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
    state, replay = load_tree(path / "state.pt"), dict(load_tree(path / "replay_meta.pt"))
    try:
        with np.load(path / "replay.npz") as arrays:  # allow_pickle=False: arrays only
            replay.update({k: arrays[k] for k in arrays.files})
    except Exception as err:  # zip and numpy errors all mean the same thing here
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
