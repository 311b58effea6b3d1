"""Multi-run recipes, written once: `python -m fire_rl.protocol STAGE PROTOCOL [key=value ...] [-- overrides]`.

A protocol (configs/protocol/<name>.yaml) is a preset, the games and seeds it runs on, and the methods it compares.
With a `midpoint`, it is the FIRE paper's shared-checkpoint recipe: per game and seed a stage-1 run trains to the
midpoint and stops with a checkpoint, then every method loads that same checkpoint (networks, optimizer, theta0,
replay, RNGs), intervenes once and trains to the end. Without one, every method trains from scratch (its reset
firing where its config says, e.g. at every task switch). `yardsticks` are extra arms from scratch (priming's
unprimed runs). The stages:

- `pilot`: from-scratch runs to the end with the pilot's overrides, to choose a protocol's settings before any
  method runs;
- `sweep`: restores carried runs, then stage 1, then the methods, then the yardsticks, then `report`;
- `report`: `python -m fire_rl.compare` over the sweep into the protocol's `report` folder;
- `carry`: the sweep's run directories, trimmed to what resuming needs, into the `carry` folder (fire_rl/carry.py).

Each group of runs is one Hydra multirun (`python -m fire_rl.train -m`) over games x seeds (x methods) into fixed
directories `<out>/<game>/seed<k>/<stage1|method|yardstick>`, launched `jobs` at a time on this machine
(`launcher=local`: hydra/launcher=parallel) or as one Slurm job array per group (`launcher=slurm`:
hydra/launcher=slurm; its settings after `--`, e.g. `hydra.launcher.partition=gpu`); a group starts when the one
before it has finished, so no branch starts before its stage 1. Re-running a stage resumes: a finished run is left
alone, an unfinished one continues from its last checkpoint.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from core.config import ConfigError, check_choice, check_positive
from envs.sequence import task_label
from fire_rl import carry

PROTOCOL_DIR = Path(__file__).resolve().parents[1] / "configs" / "protocol"
STAGES = ("pilot", "sweep", "report", "carry")
LAUNCHERS = ("local", "slurm")
QUIET = ["logger.progress_bar=false", "logger.wandb_mode=disabled"]


@dataclass(frozen=True)
class Protocol:
    """A protocol's settings (configs/protocol/<name>.yaml; any of them can be set on the command line)."""

    name: str
    experiment: str  # the +experiment= preset every run starts from
    game_key: str  # the config key a game sets (env.tasks.0.env_id; env.levels.env_id for level sequences)
    games: list[str]  # env ids, one multirun dimension
    seeds: list[int]
    methods: list[str]  # reset configs (configs/reset/<name>.yaml)
    midpoint: int | None = None  # stage 1 stops here and every method branches from it; None: all from scratch
    overrides: list[str] = field(default_factory=list)  # given to every run (budget, reset_at_steps, ...)
    yardsticks: dict[str, list[str]] = field(default_factory=dict)  # name -> overrides of a from-scratch arm
    pilot_seeds: list[int] = field(default_factory=list)
    pilot_overrides: list[str] = field(default_factory=list)
    baseline: str = "none"  # compare's --baseline
    gap_to: str | None = None  # compare's --gap-to
    out: str = "runs/protocol"  # where the runs go
    report: str | None = None  # where the report goes (default <out>/report)
    carry: str | None = None  # where `carry` puts the trimmed runs, and `sweep` restores them from
    jobs: int = 2  # local runs at a time
    launcher: str = "local"  # local | slurm

    def check(self) -> None:
        """Refuse bad values before anything runs."""
        check_choice("launcher", self.launcher, LAUNCHERS)
        check_positive("jobs", self.jobs)
        for key in ("games", "seeds", "methods"):
            if not getattr(self, key):
                raise ConfigError(f"protocol {self.name}: `{key}` is empty")
        known = sorted(p.stem for p in (PROTOCOL_DIR.parent / "reset").glob("*.yaml"))
        for method in self.methods:
            check_choice(f"method of protocol {self.name}", method, known)
        if self.midpoint is not None:
            check_positive("midpoint", self.midpoint)

    def game_dirs(self) -> list[Path]:
        """One folder per game under `out`: what the report reads and `carry` keeps."""
        return [Path(self.out) / game_dir(game) for game in self.games]


def game_dir(env_id: str) -> str:
    """The folder name of a game: its short task name ('MinAtar/SpaceInvaders-v0' -> 'SpaceInvaders')."""
    return task_label(env_id, {})


def load_protocol(name: str, settings: Sequence[str]) -> Protocol:
    """configs/protocol/<name>.yaml with `key=value` settings on top; unknown names and keys are refused."""
    path = PROTOCOL_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = ", ".join(sorted(p.stem for p in PROTOCOL_DIR.glob("*.yaml")))
        raise ConfigError(f"unknown protocol {name!r}; valid choices: {valid}")
    merged = OmegaConf.merge(OmegaConf.load(path), OmegaConf.from_dotlist(list(settings)))
    values: dict[str, Any] = OmegaConf.to_container(merged, resolve=True)
    valid_keys = [f.name for f in fields(Protocol) if f.name != "name"]
    unknown = sorted(set(values) - set(valid_keys))
    if unknown:
        raise ConfigError(f"protocol {name}: unknown key {unknown[0]!r}; valid keys: {', '.join(valid_keys)}")
    protocol = Protocol(name=name, **values)
    protocol.check()
    return protocol


# --- the groups of runs -------------------------------------------------------------------------------------------


def leaf_path(protocol: Protocol, leaf: str) -> str:
    """A run's directory under `out`, as a Hydra interpolation over its job config: <game>/seed<k>/<leaf>."""
    return f"${{game:{protocol.game_key}}}/seed${{seed}}" + (f"/{leaf}" if leaf else "")


def multirun(protocol: Protocol, sweeps: list[str], leaf: str, extra: Sequence[str], seeds: list[int]) -> None:
    """One Hydra multirun over games x seeds (x whatever `sweeps` sweeps), into <out>/<game>/seed<k>/<leaf>."""
    command = multirun_command(protocol, sweeps, leaf, extra, seeds)
    print(f"fire_rl.protocol: {' '.join(command[2:])}", flush=True)
    if subprocess.run(command).returncode != 0:
        raise SystemExit(f"fire_rl.protocol: a run of `{leaf}` failed; its run directory's train.log says why")


def multirun_command(protocol: Protocol, sweeps: list[str], leaf: str, extra: Sequence[str], seeds: list[int]):
    """The argv of that multirun."""
    if protocol.launcher == "local":
        launcher = ["hydra/launcher=parallel", f"hydra.launcher.n_jobs={protocol.jobs}"]
    else:
        launcher = ["hydra/launcher=slurm"]
    return [
        *(sys.executable, "-m", "fire_rl.train", "-m", f"+experiment={protocol.experiment}"),
        f"{protocol.game_key}={','.join(protocol.games)}",
        f"seed={','.join(map(str, seeds))}",
        *protocol.overrides,
        *QUIET,
        *extra,  # before the group's own overrides: a yardstick's `prime_updates=0` wins over a priming override
        *sweeps,
        *launcher,
        f"hydra.sweep.dir={Path(protocol.out).resolve()}",
        f"hydra.sweep.subdir={leaf_path(protocol, leaf)}",
    ]


def pilot(protocol: Protocol, extra: Sequence[str]) -> None:
    """From-scratch runs to the end on the pilot seeds, into <out>/pilot/<game>/seed<k>."""
    pilot_out = dataclasses.replace(protocol, out=str(Path(protocol.out) / "pilot"))
    multirun(pilot_out, list(protocol.pilot_overrides), "", extra, protocol.pilot_seeds or protocol.seeds)


def sweep(protocol: Protocol, extra: Sequence[str]) -> None:
    """Carried runs restored, stage 1, every method (branched from stage 1, or from scratch), the yardsticks."""
    if protocol.carry and Path(protocol.carry).is_dir():
        print(carry.summary("restore", carry.restore(Path(protocol.carry), Path(protocol.out)), Path(protocol.out)))
    methods = [f"+reset={','.join(protocol.methods)}"]
    if protocol.midpoint is not None:
        multirun(protocol, [f"stop_at_step={protocol.midpoint}"], "stage1", extra, protocol.seeds)
        stage1 = f"{Path(protocol.out).resolve()}/{leaf_path(protocol, 'stage1')}"
        methods.append(f"branch_from={stage1}/checkpoints/step_{protocol.midpoint:012d}")
    multirun(protocol, methods, "${reset.name}", extra, protocol.seeds)
    for name, overrides in protocol.yardsticks.items():
        multirun(protocol, list(overrides), name, extra, protocol.seeds)


def report(protocol: Protocol) -> None:
    """fire_rl.compare over every game's runs (the pilot left out) into the protocol's report folder."""
    from fire_rl.compare import main as compare_main

    args = [*map(str, protocol.game_dirs()), "--out", protocol.report or str(Path(protocol.out) / "report")]
    args += ["--baseline", protocol.baseline] + (["--gap-to", protocol.gap_to] if protocol.gap_to else [])
    compare_main(args)


def carry_runs(protocol: Protocol) -> None:
    if not protocol.carry:
        raise SystemExit(f"fire_rl.protocol: protocol {protocol.name} names no `carry` folder (set carry=<folder>)")
    copied = carry.save(Path(protocol.out), Path(protocol.carry), skip=("pilot", "report"))
    print(carry.summary("save", copied, Path(protocol.carry)), flush=True)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    head = argv[: argv.index("--")] if "--" in argv else argv
    if len(head) < 2 or head[0] in ("-h", "--help"):
        sys.exit(__doc__.split("\n\n", 1)[0] + f"\nstages: {', '.join(STAGES)}; protocols: configs/protocol/")
    stage, name, settings = head[0], head[1], head[2:]
    try:
        check_choice("stage", stage, STAGES)
        protocol = load_protocol(name, settings)
    except ConfigError as err:
        sys.exit(f"fire_rl.protocol: error: {err}")
    started = time.time()
    if stage == "pilot":
        pilot(protocol, extra)
    elif stage == "sweep":
        sweep(protocol, extra)
        report(protocol)
    elif stage == "report":
        report(protocol)
    else:
        carry_runs(protocol)
    print(f"fire_rl.protocol {stage} {name}: {time.time() - started:.0f} s", flush=True)


if __name__ == "__main__":
    main()
