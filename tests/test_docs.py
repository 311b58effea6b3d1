"""The docs stay true to the repository: the layout in docs/architecture.md names exactly the files on disk, and
every training command in the README and the docs composes into a configuration that passes the input checks."""

from __future__ import annotations

import fnmatch
import importlib.util
import re
import shlex

import pytest
from conftest import REPO, compose_cfg
from omegaconf import OmegaConf

from envs.suite import build_suite
from fire_rl.build import build_reset, check_pairing, validate_loop

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "docs").glob("results/*/README.md"))]
NAME = re.compile(r"(?<![\w.])([\w*-]+(?:\.(?:py|sh|yaml|md)|/))(?=[\s,)]|$)")


def layout() -> dict[str, list[str]]:
    """{folder: the names its line in docs/architecture.md gives} from the Layout block."""
    text = (REPO / "docs" / "architecture.md").read_text().split("## Layout", 1)[1]
    block = text.split("```", 2)[1]
    folders: dict[str, list[str]] = {}
    for line in block.splitlines():
        if line and not line[0].isspace():
            folder, line = line.split(maxsplit=1)
            folders[folder] = []
        if folders:
            folders[folder] += NAME.findall(line)
    return folders


def on_disk(folder: str) -> list[str]:
    entries = (REPO / folder).iterdir()
    skip = {"__init__.py", "__pycache__"}
    return sorted(p.name + ("/" if p.is_dir() else "") for p in entries if p.name not in skip and p.name[0] != ".")


@pytest.mark.parametrize("folder", sorted(layout()))
def test_the_layout_names_every_file_of_each_folder_and_nothing_else(folder):
    named, present = layout()[folder], on_disk(folder)
    unnamed = [p for p in present if not any(fnmatch.fnmatch(p, n) for n in named)]
    missing = [n for n in named if not fnmatch.filter(present, n)]
    assert not unnamed, f"docs/architecture.md does not name {unnamed} in {folder}"
    assert not missing, f"docs/architecture.md names {missing} in {folder}, which are not there"


def test_the_layout_covers_every_code_folder():
    assert {"configs/", "fire_rl/", "fire_rl/resets/", "agents/", "envs/", "scripts/", "tests/", "docs/"} <= set(
        layout()
    )


def train_commands() -> list[tuple[str, str]]:
    """(file, command) for every `python -m fire_rl.train ...` in the docs, continuation lines joined."""
    found = []
    for path in DOCS:
        text = path.read_text().replace("\\\n", " ")
        for match in re.finditer(r"^(?!\$ ).*?python -m fire_rl\.train\b([^`\n#|]*)", text, flags=re.M):
            found.append((str(path.relative_to(REPO)), match.group(1).strip()))
    return found


def compositions(command: str) -> list[list[str]]:
    """The override lists a command stands for: placeholders (`<...>`, `$...`) and Hydra's own keys dropped, and a
    multirun's comma lists tried one value at a time."""
    words = [w for w in shlex.split(command) if w != "-m" and not re.search(r"[<$]", w)]
    words = [w for w in words if not w.startswith(("hydra.", "hydra/"))]
    single = [w.split(",")[0] if is_sweep(w) else w for w in words]
    variants = [single]
    for index, word in enumerate(words):
        if is_sweep(word):
            key, values = word.split("=", 1)
            variants += [single[:index] + [f"{key}={v}"] + single[index + 1 :] for v in values.split(",")[1:]]
    return variants


def is_sweep(word: str) -> bool:
    return "=" in word and "," in word and not re.search(r"[\[{'\"]", word)


@pytest.mark.parametrize("where, command", train_commands(), ids=lambda v: v if "/" in v or v.endswith("md") else "")
def test_every_documented_training_command_composes_and_passes_the_input_checks(where, command):
    """The checks a run makes before it builds anything (paths such as `branch_from` exist only after stage 1)."""
    for overrides in compositions(command):
        cfg = compose_cfg(overrides)
        validate_loop(cfg)
        build_suite(OmegaConf.to_container(cfg.env, resolve=True))
        check_pairing(cfg.agent.name, cfg.env.kind)
        if "reset" in cfg:
            build_reset(cfg)


def test_every_documented_script_and_module_exists():
    """Scripts and modules the docs tell a user to run exist. A result's README also records the commands that made
    it at its cited commit (the bash recipes before fire_rl.protocol): those name that commit's scripts."""
    text = " ".join(path.read_text() for path in DOCS)
    current = " ".join(path.read_text() for path in DOCS if "results" not in path.parts)
    scripts = set(re.findall(r"(?:bash|python) (?:\$main/|\"\$main/)?(scripts/[\w./-]+)", current))
    modules = set(re.findall(r"python -m ([\w.]+)", text))
    assert {"fire_rl.protocol", "fire_rl.compare", "fire_rl.carry"} <= modules
    assert [s for s in sorted(scripts) if not (REPO / s).is_file()] == []
    assert [m for m in sorted(modules) if importlib.util.find_spec(m) is None] == []


def test_the_docs_hold_the_commands_people_run():
    commands = " ".join(c for _, c in train_commands())
    assert len(train_commands()) >= 20 and "+reset=fire" in commands and "+experiment=minatar_midpoint" in commands


def test_the_readme_figure_draws_from_the_committed_results(tmp_path):
    """scripts/regimes_figure.py reads every packed result it names (a renamed or repacked result breaks it here)."""
    spec = importlib.util.spec_from_file_location("regimes_figure", REPO / "scripts" / "regimes_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "regimes.png"
    module.main(["--out", str(out), "--reps", "20"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match=r"no runs of \['fire'\]; it holds \['full', 'none'\]"):
        module.draw_panel(None, "t", module.PANELS[3][1], ["none", "fire"], 20)
