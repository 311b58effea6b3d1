"""Run-directory logging: a JSON-lines metrics file flushed per row and read back, wandb (offline by default), a
progress bar."""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from collections import deque
from pathlib import Path
from typing import Any

from tqdm import tqdm

WANDB_MODES = ("offline", "online", "disabled")
METRICS_FILE = "metrics.jsonl"


def _jsonable(value: Any) -> Any:
    """NaN and infinities become null so every line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunLogger:
    """Writes one JSON object per line to <run_dir>/metrics.jsonl and mirrors it to wandb when enabled.

    Every row has `event` (what produced it), `step` (agent steps) and `time_s` (seconds since the run started).
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        wandb_mode: str = "offline",
        project: str = "fire_rl",
        wandb_id: str | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.start = time.perf_counter()
        self._file = open(self.run_dir / METRICS_FILE, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._wandb = _start_wandb(self.run_dir, config, wandb_mode, project, wandb_id)

    @property
    def wandb_id(self) -> str | None:
        return None if self._wandb is None else self._wandb.id

    def position(self) -> dict[str, float]:
        """Where the metrics file ends and how long the run has been going: what a checkpoint records."""
        return {"offset": self._file.tell(), "elapsed_s": time.perf_counter() - self.start}

    def continue_from(self, elapsed_s: float) -> None:
        """Keep `time_s` counting from a checkpoint's elapsed time after a resume."""
        self.start = time.perf_counter() - elapsed_s

    def log(self, event: str, step: int, **values: Any) -> None:
        """Append one row and flush it, so a kill never loses rows already logged."""
        row = {"event": event, "step": int(step), "time_s": round(time.perf_counter() - self.start, 3)}
        row.update({k: _jsonable(v) for k, v in values.items()})
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._wandb is not None:
            numeric = {k: v for k, v in values.items() if isinstance(v, int | float) and not isinstance(v, bool)}
            self._wandb.log(numeric, step=int(step))

    def close(self) -> None:
        self._file.close()
        if self._wandb is not None:
            self._wandb.finish()


def truncate_metrics(run_dir: Path, offset: int) -> None:
    """Drop rows written after a checkpoint, so a resumed run neither duplicates nor misses a row."""
    path = Path(run_dir) / METRICS_FILE
    if path.exists() and path.stat().st_size > offset:
        with open(path, "r+b") as f:
            f.truncate(offset)


def read_rows_checked(run_dir: Path) -> tuple[list[dict], list[str]]:
    """Every complete JSON line of the run's metrics file, and one note per line that could not be read."""
    rows, problems = [], []
    with open(Path(run_dir) / METRICS_FILE, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                cut = (
                    "cut off mid-line (no newline: the run was killed while writing)"
                    if not line.endswith("\n")
                    else "not valid JSON"
                )
                problems.append(f"{METRICS_FILE} line {number} skipped: {cut}")
    return rows, problems


def _start_wandb(run_dir: Path, config: dict[str, Any], mode: str, project: str, run_id: str | None):
    """A wandb run inside the run directory (the same one again on resume); falls back to offline, then none."""
    if mode == "disabled":
        return None
    import wandb

    for attempt in (mode, "offline"):
        try:
            return wandb.init(
                project=project,
                config=config,
                dir=str(run_dir),
                mode=attempt,
                reinit="create_new",
                id=run_id,
                resume="allow" if run_id else None,
            )
        except Exception as err:  # wandb raises many types when offline or misconfigured
            warnings.warn(f"wandb mode {attempt!r} failed ({err}); continuing", stacklevel=2)
    return None


class Progress:
    """A tqdm bar over agent steps showing the current task, steps/s and the mean of recent episode returns."""

    def __init__(self, total_steps: int, enabled: bool = True, initial: int = 0):
        self.bar = tqdm(
            total=total_steps,
            initial=initial,
            unit="step",
            dynamic_ncols=True,
            disable=not enabled,
            file=sys.stderr,
            mininterval=1.0,
        )
        self.returns: deque[float] = deque(maxlen=10)
        self.task = ""

    def episode(self, episodic_return: float) -> None:
        self.returns.append(episodic_return)

    def advance(self, steps: int, task: str) -> None:
        self.bar.update(steps)
        if task != self.task or self.bar.n % 1000 < steps:
            self.task = task
            recent = sum(self.returns) / len(self.returns) if self.returns else float("nan")
            self.bar.set_postfix(task=task, ret=f"{recent:.1f}", refresh=False)

    def close(self) -> None:
        self.bar.close()
