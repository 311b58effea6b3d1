"""The house's floors: `core` (the ground floor) imports nothing of the project; `agents` and `envs` import only
`core` (and themselves); `fire_rl` may import all of them. Inside fire_rl, the modules of `fire_rl.compare` form a
chain of their own. An import that runs back up is a test failure, with the module and the line that names it."""

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


# fire_rl.compare, bottom up: reading (series, runs) -> statistics -> tables -> figures -> report -> the command.
COMPARE = REPO / "fire_rl" / "compare"
COMPARE_CHAIN = (
    "atari_scores",
    "series",
    "runs",
    "pack",
    "frames",
    "stats",
    "tables",
    "intervention",
    "visits",
    "figures",
    "report",
    "cli",
)


def compare_imports(source: str) -> list[tuple[int, str]]:
    """(line, module of fire_rl.compare) of every import in a module's source; a name taken from the package itself
    counts as `__init__`, which imports the rest."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level in (0, 1):
            module = node.module if node.level == 0 else ".".join(filter(None, ("fire_rl.compare", node.module)))
            targets = [f"{module}.{a.name}" for a in node.names] if module == "fire_rl.compare" else [module or ""]
        else:
            continue
        for target in targets:
            parts = target.split(".")
            if parts[:2] == ["fire_rl", "compare"]:
                found.append((node.lineno, parts[2] if len(parts) > 2 and parts[2] in COMPARE_CHAIN else "__init__"))
    return found


def chain_breaks(module: str, source: str) -> list[str]:
    """The imports of a chain module that run to its own place in the chain or later."""
    rank = {m: i for i, m in enumerate(COMPARE_CHAIN)} | {"__init__": len(COMPARE_CHAIN)}
    return [
        f"{module}:{line} imports {target}" for line, target in compare_imports(source) if rank[target] >= rank[module]
    ]


def test_every_compare_module_has_its_place_in_the_chain():
    assert {p.stem for p in COMPARE.glob("*.py")} == {*COMPARE_CHAIN, "__init__", "__main__"}


def test_compare_modules_import_only_modules_below_them():
    wrong = [w for m in COMPARE_CHAIN for w in chain_breaks(m, (COMPARE / f"{m}.py").read_text())]
    assert not wrong, "fire_rl/compare runs " + " -> ".join(COMPARE_CHAIN) + "; " + "; ".join(wrong)


def test_the_chain_check_sees_an_import_upwards_in_each_spelling():
    for source in (
        "from fire_rl.compare.report import write_outputs",
        "from fire_rl.compare import report",
        "import fire_rl.compare.cli",
        "from .figures import draw",
        "from fire_rl.compare import RunRecord",  # through the package, which imports everything
    ):
        assert chain_breaks("runs", source), source
    assert chain_breaks("runs", "from fire_rl.compare.series import Series\nimport numpy") == []
