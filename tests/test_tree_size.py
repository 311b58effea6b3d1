"""The repository stays small enough to clone: results are kept as data (docs/results/<name>/runs.jsonl.gz and the
branch points a new method needs), not as run directories. A sweep in progress is carried through the repository
(carry/<protocol>) and leaves it once packed (docs/protocols.md), so it is not counted."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import REPO

LIMIT_MIB = 48
IN_PROGRESS = "carry/"  # a sweep carried between machines, removed when it is packed


def tracked_files() -> list[str]:
    """The files git tracks in this checkout; skips the test outside one (an unpacked archive, a copied tree)."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed: no tracked files to measure")
    result = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, timeout=60)
    if result.returncode != 0 or not result.stdout:
        pytest.skip(f"{REPO} is not a git checkout: no tracked files to measure")
    return result.stdout.split("\0")[:-1]


def test_the_tracked_tree_stays_under_48_mib():
    sizes = {
        name: (REPO / name).lstat().st_size
        for name in tracked_files()
        if not name.startswith(IN_PROGRESS) and (REPO / name).exists()
    }
    total = sum(sizes.values())
    largest = ", ".join(f"{n} ({s / 2**20:.1f} MiB)" for n, s in sorted(sizes.items(), key=lambda i: -i[1])[:5])
    assert total < LIMIT_MIB * 2**20, f"tracked files: {total / 2**20:.1f} MiB, limit {LIMIT_MIB}; largest: {largest}"
