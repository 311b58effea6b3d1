"""The house's floors: `core` (the ground floor) imports nothing of the project; `agents` and `envs` import only
`core` (and themselves); `fire_rl` may import all of them. An import that runs back up is a test failure, with the
module and the line that names it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("core", "agents", "envs", "fire_rl")
MAY_IMPORT = {"core": {"core"}, "agents": {"core", "agents"}, "envs": {"core", "envs"}, "fire_rl": set(PROJECT)}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level project package) of every import in a module, function-level imports included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        found += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in PROJECT]
    return found


@pytest.mark.parametrize("package", PROJECT)
def test_no_import_runs_back_up(package):
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for path in sorted((REPO / package).rglob("*.py"))
        for line, target in project_imports(path)
        if target not in MAY_IMPORT[package]
    ]
    assert not wrong, f"{package} may import only {sorted(MAY_IMPORT[package])}: " + "; ".join(wrong)
