"""How far the golden rows move under legitimate environment changes, and under real behaviour changes.

Each variant reruns a golden case (tests/test_golden.py) and prints, per kind of quantity (tests/golden_rows.py),
the largest relative difference from the committed golden rows, next to that kind's tolerance:
- environment variants emulate another machine: other CPU kernels for torch's own ops (ATEN_CPU_CAPABILITY),
  for oneDNN's convolutions (ONEDNN_MAX_CPU_ISA) and for MKL's matrix products (MKL_ENABLE_INSTRUCTIONS), or an
  older major version of a dependency (installed with `pip install --target` into a cache folder);
- behaviour variants are changes the test must catch: a different Huber delta, MSE instead of Huber, a different
  FIRE layer list, one extra gradient update.

  python scripts/dev/golden_drift.py                       # every variant of both cases (about 15 minutes, 2 cores)
  python scripts/dev/golden_drift.py --only isa_default,huber_delta
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from golden_rows import ABSOLUTE_KINDS, KINDS, differences, largest_by_kind, read_rows, structure_differences  # noqa: E402
from test_golden import ENV, GOLDEN, NUMBERS_UNTIL_STEP, RUNS  # noqa: E402

CACHE = Path(os.environ.get("GOLDEN_DRIFT_CACHE", Path(tempfile.gettempdir()) / "fire_rl_golden_drift"))

# Code run before fire_rl.train's main, to change one behaviour without touching the repository.
HUBER_HALF = (
    "import torch.nn.functional as F; _f = F.smooth_l1_loss; F.smooth_l1_loss = lambda a, b, **k: _f(a, b, beta=0.5)"
)
EXTRA_UPDATE = (
    "import importlib; m = importlib.import_module('agents.{module}'); cls = getattr(m, '{cls}'); _u = cls.update\n"
    "def update(self, batch, step):\n"
    "    if not getattr(self, '_extra_done', False):\n"
    "        self._extra_done = True; _u(self, batch, step)\n"
    "    return _u(self, batch, step)\n"
    "cls.update = update"
)

# name: (cases, kind, extra environment, pip requirement for a --target folder, patch code, extra overrides)
VARIANTS = {
    "rerun": (("dqn_atari3_fire", "sac_halfcheetah_gravity_fire"), "environment", {}, None, None, []),
    "isa_default": (
        ("dqn_atari3_fire", "sac_halfcheetah_gravity_fire"),
        "environment",
        {"ATEN_CPU_CAPABILITY": "default"},
        None,
        None,
        [],
    ),
    "onednn_sse41": (("dqn_atari3_fire",), "environment", {"ONEDNN_MAX_CPU_ISA": "SSE41"}, None, None, []),
    "mkl_avx": (
        ("dqn_atari3_fire", "sac_halfcheetah_gravity_fire"),
        "environment",
        {"MKL_ENABLE_INSTRUCTIONS": "AVX"},
        None,
        None,
        [],
    ),
    "opencv_4": (("dqn_atari3_fire",), "environment", {}, "opencv-python-headless==4.13.0.92", None, []),
    "mujoco_3": (("sac_halfcheetah_gravity_fire",), "environment", {}, "mujoco==3.3.7", None, []),
    "huber_delta": (("dqn_atari3_fire",), "behaviour", {}, None, HUBER_HALF, []),
    "mse_loss": (("dqn_atari3_fire",), "behaviour", {}, None, None, ["+agent.loss=mse"]),
    "fire_layers": (("dqn_atari3_fire",), "behaviour", {}, None, None, ["reset.layers=[conv1,conv2,fc1,fc2]"]),
    "extra_update_dqn": (
        ("dqn_atari3_fire",),
        "behaviour",
        {},
        None,
        EXTRA_UPDATE.format(module="dqn", cls="DQNAgent"),
        [],
    ),
    "extra_update_sac": (
        ("sac_halfcheetah_gravity_fire",),
        "behaviour",
        {},
        None,
        EXTRA_UPDATE.format(module="sac", cls="SACAgent"),
        [],
    ),
}


def target_folder(requirement: str) -> Path:
    """A folder holding `requirement` alone (no dependencies), put first on PYTHONPATH to shadow the venv's copy."""
    folder = CACHE / requirement.replace("==", "-")
    if not folder.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(folder), requirement],
            check=True,
        )
    return folder


def run_variant(
    case: str, env_extra: dict, requirement: str | None, patch: str | None, overrides: list[str], run_dir: Path
) -> list[dict]:
    env = {**ENV, **env_extra}
    if requirement:
        env["PYTHONPATH"] = os.pathsep.join([str(target_folder(requirement)), str(REPO)])
    args = [*RUNS[case], *overrides, f"hydra.run.dir={run_dir}"]
    if patch:
        main = (
            "import sys, runpy; sys.argv = ['fire_rl.train', *sys.argv[1:]]; "
            "runpy.run_module('fire_rl.train', run_name='__main__')"
        )
        command = [sys.executable, "-c", f"{patch}\n{main}", *args]
    else:
        command = [sys.executable, "-m", "fire_rl.train", *args]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{result.stderr[-2000:]}")
    return read_rows(run_dir / "metrics.jsonl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(VARIANTS), help=f"comma-separated variants of {list(VARIANTS)}")
    parser.add_argument("--keep", type=Path, help="write each variant's rows to this folder")
    args = parser.parse_args()
    names = args.only.split(",")
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; valid: {list(VARIANTS)}")
    kinds = [kind for kind, *_ in KINDS]
    tolerances = [f"{abs_tol:g} (abs)" if kind in ABSOLUTE_KINDS else f"{rel:g}" for kind, _, rel, abs_tol in KINDS]
    print("| variant | kind of change | case | " + " | ".join(kinds) + " | verdict |")
    print("|---" * (4 + len(kinds)) + "|")
    print("| tolerance | | | " + " | ".join(tolerances) + " | |")
    for name in names:
        cases, change, env_extra, requirement, patch, overrides = VARIANTS[name]
        for case in cases:
            golden = read_rows(GOLDEN / f"{case}.jsonl")
            with tempfile.TemporaryDirectory() as tmp:
                rows = run_variant(case, env_extra, requirement, patch, overrides, Path(tmp))
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                (args.keep / f"{name}-{case}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
            cells = verdict_cells(golden, rows, NUMBERS_UNTIL_STEP[case])
            print(f"| {name} | {change} | {case} | " + " | ".join(cells) + " |", flush=True)


def verdict_cells(golden: list[dict], rows: list[dict], until_step: float) -> list[str]:
    """The largest difference per kind (up to `until_step`, as the test compares) and the verdict: passes or
    fails, with the worst ratio to a tolerance."""
    structure = structure_differences(golden, rows)
    if structure:
        return ["-"] * len(KINDS) + [f"fails on structure: {structure[0][:140]}"]
    largest = largest_by_kind(golden, rows, until_step)
    cells = ["0" if largest[kind] == 0 else f"{largest[kind]:.2g}" for kind, *_ in KINDS]
    ratios = [largest[kind] / (abs_tol if kind in ABSOLUTE_KINDS else rel) for kind, _, rel, abs_tol in KINDS]
    worst = max(ratios)
    failed = differences(golden, rows, until_step)
    verdict = f"fails, worst {worst:.3g} x its tolerance" if failed else f"passes, worst {worst:.3g} x its tolerance"
    return cells + [verdict]


if __name__ == "__main__":
    main()
