"""Task sequences as data: an ordered list of tasks, repeated for some cycles, and the steps where they switch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from core.config import ConfigError, check_positive
from envs.shift import shift_label


@dataclass(frozen=True)
class Task:
    """One task: an env id, its extra make-kwargs (ALE mode/difficulty, ...) and its budget. A family whose tasks
    carry more subclasses it with mapping-valued fields, which the task's config entry sets under the same keys
    (MuJoCo's `dynamics`: envs/mujoco.py's MujocoTask); its suite names the subclass in `task_type`."""

    env_id: str
    steps: int
    name: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


def family_fields(task_type: type[Task]) -> list[str]:
    """The fields a family's Task subclass adds (none for Task itself)."""
    base = {f.name for f in fields(Task)}
    return [f.name for f in fields(task_type) if f.name not in base]


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def task_label(env_id: str, kwargs: Mapping[str, Any], *family_values: Mapping[str, Any]) -> str:
    """A short readable name: 'ALE/Breakout-v5' with mode 4 -> 'Breakout-m4'; 'Ant-floor_friction0.5'."""
    base = env_id.split("/")[-1].rsplit("-v", 1)[0]
    if kwargs.get("mode") is not None:
        base += f"-m{kwargs['mode']}"
    if kwargs.get("difficulty") is not None:
        base += f"-d{kwargs['difficulty']}"
    # Other make-kwargs and a family's values (MuJoCo's dynamics) enter the name too, so distinct tasks never share one.
    extras = {k: v for k, v in kwargs.items() if k not in ("mode", "difficulty")}
    for values in family_values:
        extras |= dict(values)
    return base + "".join(f"-{key}{_short(value)}" for key, value in sorted(extras.items()))


def parse_task(spec: Mapping[str, Any], task_type: type[Task] = Task) -> Task:
    """Build a task from a config entry {env_id, steps, name?, mode?, difficulty?, ...}: the family's own fields
    (MuJoCo's dynamics) by their keys, every other key a make-kwarg."""
    spec = dict(spec)
    if "env_id" not in spec or "steps" not in spec:
        raise ConfigError(f"task {spec} needs both 'env_id' and 'steps'")
    env_id, steps, name = spec.pop("env_id"), spec.pop("steps"), spec.pop("name", None)
    family = {key: dict(spec.pop(key, None) or {}) for key in family_fields(task_type)}
    check_positive(f"steps of task {env_id}", steps)
    kwargs = {k: v for k, v in spec.items() if v is not None}
    shift = family.get("shift")  # a view shift (envs/shift.py) names itself: '-offset1-s3', not its raw keys
    values = [v for key, v in family.items() if key != "shift"]
    label = name or task_label(env_id, kwargs, *values) + (shift_label(shift) if shift else "")
    return task_type(env_id=env_id, steps=steps, name=label, kwargs=kwargs, **family)


@dataclass(frozen=True)
class TaskSequence:
    """The tasks in the order they are visited (cycles already unrolled)."""

    visits: tuple[Task, ...]

    @property
    def switch_steps(self) -> list[int]:
        """Agent step at which each visit after the first begins."""
        starts, total = [], 0
        for task in self.visits[:-1]:
            total += task.steps
            starts.append(total)
        return starts

    @property
    def total_steps(self) -> int:
        return sum(task.steps for task in self.visits)

    @property
    def distinct_tasks(self) -> list[Task]:
        """Each task once, in first-visit order (what evaluation covers)."""
        seen: dict[str, Task] = {}
        for task in self.visits:
            seen.setdefault(task.name, task)
        return list(seen.values())

    def visit_at(self, step: int) -> int:
        """Index of the visit that owns agent step `step` (0-based; the last visit owns everything after)."""
        return sum(step >= s for s in self.switch_steps)


def build_sequence(tasks: Sequence[Mapping[str, Any]], cycles: int = 1, task_type: type[Task] = Task) -> TaskSequence:
    """Parse task entries (as `task_type`, the family's Task) and unroll `cycles` repetitions of the list."""
    if not tasks:
        raise ConfigError("the task sequence is empty: give at least one task under env.tasks")
    check_positive("env.cycles", cycles)
    parsed = [parse_task(t, task_type) for t in tasks]
    names: dict[str, Task] = {}
    for task in parsed:
        if names.setdefault(task.name, task) != task:
            raise ConfigError(f"two different tasks share the name {task.name!r}; give one of them a 'name'")
    return TaskSequence(visits=tuple(parsed) * cycles)


def sequence_record(sequence: TaskSequence) -> list[dict[str, Any]]:
    """Every visit as plain data, for env.json: what compare reads back to know exactly what a run trained on."""
    return [
        {"name": t.name, "env_id": t.env_id, "steps": t.steps, "kwargs": dict(t.kwargs)}
        | {key: dict(getattr(t, key)) for key in family_fields(type(t))}
        for t in sequence.visits
    ]


def sequence_from_record(visits: Sequence[Mapping[str, Any]], task_type: type[Task] = Task) -> TaskSequence:
    """Inverse of sequence_record (a record may hold keys `task_type` lacks: env.json of Atari and MinAtar runs
    written before dynamics left the neutral Task has an empty `dynamics` per visit)."""
    family = family_fields(task_type)
    return TaskSequence(
        visits=tuple(
            task_type(
                v["env_id"],
                int(v["steps"]),
                v["name"],
                dict(v.get("kwargs") or {}),
                **{key: dict(v.get(key) or {}) for key in family},
            )
            for v in visits
        )
    )
