"""Continuous-control tasks: gymnasium MuJoCo v5 envs whose dynamics (friction, gravity, mass) change per task, and
whose observations may be seen through a fixed offset per task (C-CHAIN's continual gym-control levels)."""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from core.config import ConfigError, check_positive
from core.replay import TransitionReplay
from core.spaces import Spaces
from envs.sequence import Task, TaskSequence, build_sequence
from envs.shift import ShiftedView, ViewShift, level_tasks
from envs.snapshot import SimulatorState
from envs.suite import EnvSuite

# The dynamics vocabulary. Scales are relative to the env's own XML values (each task builds a fresh model), so
# they never compound across tasks.
DYNAMICS = {
    "floor_friction": "sliding friction of every contact with the geom named 'floor' (Dohare et al.'s Slippery Ant)",
    "friction_scale": "every friction coefficient of every geom times this",
    "gravity": "z component of gravity in m/s^2 (default -9.81; negative points down)",
    "gravity_scale": "the gravity vector times this",
    "mass_scale": "every body's mass and rotational inertia times this (a uniform density change)",
    "damping_scale": "every joint's damping times this",
}
POSITIVE = ("floor_friction", "friction_scale", "mass_scale")
NON_NEGATIVE = ("gravity_scale", "damping_scale")
SCALES = ("friction_scale", "gravity_scale", "mass_scale", "damping_scale")
HUMANOID_BENCH_PREFIXES = ("h1-", "h1hand-", "h1strong-", "h1touch-", "g1-")
HUMANOID_BENCH_INSTALL = (
    "HumanoidBench is not on PyPI; install it from its git repository: "
    "`pip install git+https://github.com/carlosferrazza/humanoid-bench` (the FIRE authors used the fork "
    "isaac7778/humanoid-bench), or use the paper_sac default Humanoid-v5"
)


@dataclass(frozen=True)
class MujocoTask(Task):
    """A MuJoCo task: its model changes too (a task entry's `dynamics`, in the DYNAMICS vocabulary), and its
    observations may carry a fixed offset (a task entry's `shift: {kind: offset, sigma, seed}`, envs/shift.py)."""

    dynamics: Mapping[str, float] = field(default_factory=dict)
    shift: Mapping[str, Any] = field(default_factory=dict)


def view_shift(task: Task) -> ViewShift | None:
    """The task's observation offset, if it has one; a permutation of grid cells has no meaning for a state vector."""
    shift = getattr(task, "shift", None)
    if not shift:
        return None
    parsed = ViewShift.parse(shift, task.name)
    if parsed.kind != "offset":
        raise ConfigError(
            f"task {task.name}: a {parsed.kind} shift shuffles the cells of a grid; MuJoCo observations are flat "
            "state vectors: valid kinds here: offset"
        )
    return parsed


class MujocoSimulator(SimulatorState):
    """MuJoCo's integration state (positions, velocities, activations, time, ...); the model is rebuilt."""

    key = "mujoco"
    handles = frozenset({"model", "data", "mujoco_renderer"})
    parts = mujoco.mjtState.mjSTATE_INTEGRATION  # what mj_getState copies

    def read(self, base: Any) -> np.ndarray | None:
        if not isinstance(getattr(base, "data", None), mujoco.MjData):
            return None
        state = np.empty(mujoco.mj_stateSize(base.model, self.parts))
        mujoco.mj_getState(base.model, base.data, state, self.parts)
        return state

    def write(self, base: Any, state: Any) -> None:
        mujoco.mj_setState(base.model, base.data, state, self.parts)
        mujoco.mj_forward(base.model, base.data)


MUJOCO_STATE = MujocoSimulator()


@dataclass(frozen=True)
class MujocoSettings:
    """Wrapping shared by every task of a sequence; counts are env steps (one gymnasium `step`)."""

    action_repeat: int = 1  # env steps per agent decision, rewards summed (HumanoidBench protocol: 2)
    max_episode_steps: int | None = 1_000  # env steps before an episode is truncated (None: the env's own limit)
    rescale_action: bool = True  # the agent acts in [-1, 1]^d whatever the env's bounds

    def __post_init__(self) -> None:
        check_positive("env.settings.action_repeat", self.action_repeat)
        if self.max_episode_steps is not None:
            check_positive("env.settings.max_episode_steps", self.max_episode_steps)


class ActionRepeat(gym.Wrapper):
    """Repeat each action for `repeat` env steps and sum the rewards; stop early when the episode ends."""

    def __init__(self, env: gym.Env, repeat: int):
        super().__init__(env)
        self.repeat = repeat

    def step(self, action):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


# --- dynamics -----------------------------------------------------------------------------------------------------


def check_dynamics(name: str, dynamics: Mapping[str, Any]) -> None:
    """Known keys, numbers, positive frictions and masses, not both gravity and gravity_scale."""
    unknown = sorted(set(dynamics) - set(DYNAMICS))
    if unknown:
        raise ConfigError(f"task {name}: unknown dynamics key(s) {unknown}; valid keys: {', '.join(DYNAMICS)}")
    for key, value in dynamics.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise ConfigError(f"task {name}: dynamics {key} must be a finite number, got {value!r}")
        if key in POSITIVE:
            check_positive(f"task {name}: dynamics {key}", value)
        if key in NON_NEGATIVE:
            check_positive(f"task {name}: dynamics {key}", value, allow_zero=True)
    if "gravity" in dynamics and "gravity_scale" in dynamics:
        raise ConfigError(f"task {name}: give gravity or gravity_scale, not both")


def _floor(model: mujoco.MjModel) -> int:
    """Geom id of the floor, or -1 when the model has none."""
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")


def apply_dynamics(env: gym.Env, dynamics: Mapping[str, float]) -> None:
    """Write the task's dynamics into the MuJoCo model; they take effect at once and survive reset()."""
    model, data = getattr(env.unwrapped, "model", None), getattr(env.unwrapped, "data", None)
    if model is None:
        raise ConfigError(f"dynamics {dict(dynamics)} need a MuJoCo env; {env.spec.id} has no MuJoCo model")
    if "floor_friction" in dynamics and _floor(model) < 0:
        raise ConfigError(f"{env.spec.id} has no geom named 'floor' for floor_friction; use friction_scale instead")
    if "friction_scale" in dynamics:
        model.geom_friction[:] *= dynamics["friction_scale"]
    if "floor_friction" in dynamics:
        floor = _floor(model)
        model.geom_friction[floor, 0] = dynamics["floor_friction"]
        # MuJoCo takes the max of two geoms' frictions, which would hide a slippery floor under the body's own
        # friction; a higher priority makes the floor's value the contact's (same physics as Dohare's XML edit).
        model.geom_priority[floor] = model.geom_priority.max() + 1
    if "gravity" in dynamics:
        model.opt.gravity[2] = dynamics["gravity"]
    if "gravity_scale" in dynamics:
        model.opt.gravity[:] *= dynamics["gravity_scale"]
    if "mass_scale" in dynamics:
        model.body_mass[:] *= dynamics["mass_scale"]
        model.body_inertia[:] *= dynamics["mass_scale"]
        mujoco.mj_setConst(model, data)  # subtree masses and other derived constants follow the new masses
    if "damping_scale" in dynamics:
        model.dof_damping[:] *= dynamics["damping_scale"]


def dynamics_in_force(env: gym.Env, dynamics: Mapping[str, float]) -> dict[str, float]:
    """Every dynamics value in force, read back from the model (scales: as applied, 1.0 when not set)."""
    model = getattr(env.unwrapped, "model", None)
    if model is None:
        return {}
    values = {"gravity": float(model.opt.gravity[2]), "total_mass": float(model.body_mass.sum())}
    if _floor(model) >= 0:
        values["floor_friction"] = float(model.geom_friction[_floor(model), 0])
    values.update({key: float(dynamics.get(key, 1.0)) for key in SCALES})
    return values


def draw_tasks(tasks: Sequence[Mapping[str, Any]], draws: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Expand each task into `count` copies whose dynamics `key` is drawn from its own seeded generator.

    The generator's seed is `draws.seed`, not the run seed, so every method and run seed of a comparison sees the
    same values (set `env.draws.seed=${seed}` to tie them to the run seed instead).
    """
    tasks = [dict(t) for t in tasks]
    if not draws:
        return tasks
    check_positive("env.draws.count", draws["count"])
    low, high = float(draws["low"]), float(draws["high"])
    if not 0 < low <= high:
        raise ConfigError(f"env.draws needs 0 < low <= high, got low={low}, high={high}")
    rng = np.random.default_rng(int(draws["seed"]))
    if draws.get("log", True):  # log-uniform, as in Slippery Ant
        values = np.exp(rng.uniform(np.log(low), np.log(high), size=int(draws["count"])))
    else:
        values = rng.uniform(low, high, size=int(draws["count"]))
    return [{**t, "dynamics": {**dict(t.get("dynamics") or {}), draws["key"]: float(v)}} for t in tasks for v in values]


# --- envs ---------------------------------------------------------------------------------------------------------


def _make_base(task: MujocoTask, max_episode_steps: int | None) -> gym.Env:
    if task.env_id.startswith(HUMANOID_BENCH_PREFIXES) and task.env_id not in gym.registry:
        try:
            import humanoid_bench  # noqa: F401  (registers the h1-*/g1-* ids)
        except ImportError as err:
            raise ConfigError(f"{task.env_id} is a HumanoidBench id. {HUMANOID_BENCH_INSTALL}") from err
    env = gym.make(task.env_id, max_episode_steps=max_episode_steps, **task.kwargs)
    if task.dynamics:
        apply_dynamics(env, task.dynamics)
    return env


def make_env(task: MujocoTask, settings: MujocoSettings) -> gym.Env:
    """One env with the task's dynamics: time limit, actions rescaled to [-1, 1], action repeat, the task's
    observation offset; raw rewards."""
    env = _make_base(task, settings.max_episode_steps)
    if settings.rescale_action:
        bound = np.ones(env.action_space.shape, dtype=env.action_space.dtype)  # the env's dtype: no precision warning
        env = gym.wrappers.RescaleAction(env, -bound, bound)
    if settings.action_repeat > 1:
        env = ActionRepeat(env, settings.action_repeat)
    shift = view_shift(task)
    return ShiftedView(env, shift) if shift else env


def make_vector_env(task: MujocoTask, settings: MujocoSettings, num_envs: int) -> gym.vector.VectorEnv:
    """A vector env for one task with gymnasium's next-step autoreset."""
    return gym.vector.SyncVectorEnv([lambda: make_env(task, settings) for _ in range(num_envs)])


class MujocoSuite(EnvSuite):
    """Gymnasium MuJoCo v5 tasks whose dynamics (friction, gravity, mass, damping) or make-kwargs change per task."""

    kind = "mujoco"
    agent_family = "sac"
    settings_type = MujocoSettings
    config_keys = (*EnvSuite.config_keys, "draws", "levels")
    task_type = MujocoTask
    make_env = staticmethod(make_env)
    simulator = MUJOCO_STATE

    def build_sequence(self, env_cfg: Mapping[str, Any]) -> TaskSequence:
        """The listed tasks, or the N offset levels of one task that `env.levels` describes (not both), each copied
        once per seeded dynamics draw when `env.draws` is given."""
        if env_cfg.get("levels") and env_cfg.get("tasks"):
            raise ConfigError("env.levels generates the task list: give env.levels or env.tasks, not both")
        self.draws = dict(env_cfg["draws"]) if env_cfg.get("draws") else None
        listed = level_tasks(env_cfg["levels"]) if env_cfg.get("levels") else list(env_cfg.get("tasks") or [])
        tasks = draw_tasks(listed, self.draws)
        return build_sequence(tasks, env_cfg.get("cycles", 1), MujocoTask)

    def spaces(self) -> Spaces:
        """Check ids, make-kwargs, dynamics and spaces; every task shares one observation and action shape."""
        shapes = {}
        for task in self.sequence.distinct_tasks:
            check_dynamics(task.name, task.dynamics)
            view_shift(task)
            env = _checked_base(task, self.settings)
            obs_space, act_space = env.observation_space, env.action_space
            env.close()
            if not isinstance(act_space, gym.spaces.Box):
                raise ConfigError(
                    f"{task.env_id} has a discrete action space {act_space}; SAC needs continuous (Box) actions "
                    "(for Atari use agent=dqn with an Atari env config such as env=atari3)"
                )
            if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
                raise ConfigError(f"{task.env_id} has observation space {obs_space}; SAC here needs flat vectors")
            shapes[task.name] = (tuple(obs_space.shape), tuple(act_space.shape))
        for i, what in enumerate(("observation", "action")):
            if len({s[i] for s in shapes.values()}) > 1:
                per_task = {name: s[i] for name, s in shapes.items()}
                raise ConfigError(
                    f"the task sequence mixes {what} shapes {per_task}; fire_rl does not pad observations or "
                    "actions, so every task of a sequence needs the same shapes"
                )
        return Spaces.box_actions(*next(iter(shapes.values())))

    def make_vector_env(self, task: Task, num_envs: int) -> gym.vector.VectorEnv:
        return make_vector_env(task, self.settings, num_envs)

    @property
    def steps_per_act(self) -> int:
        return self.settings.action_repeat

    def switch_values(self, task: Task, envs: gym.vector.VectorEnv) -> dict[str, Any]:
        """The make-kwargs and every dynamics value in force, read back from the model of an env built as the
        training envs are (whatever kind of vector env holds those)."""
        env = make_env(task, self.settings)
        in_force = dynamics_in_force(env, task.dynamics)
        env.close()
        shift = {f"task/shift_{key}": value for key, value in task.shift.items()}
        return {**super().switch_values(task, envs), **{f"task/{k}": v for k, v in in_force.items()}, **shift}

    def family_record(self) -> dict[str, Any]:
        """Every setting, make-kwarg and dynamics value in force, per task, and the draw settings."""
        tasks = []
        for task in self.sequence.distinct_tasks:
            env = make_env(task, self.settings)
            tasks.append(
                {
                    "name": task.name,
                    "env_id": task.env_id,
                    "make_kwargs": dict(env.spec.kwargs) if env.spec else dict(task.kwargs),
                    "dynamics_requested": dict(task.dynamics),
                    "dynamics_in_force": dynamics_in_force(env, task.dynamics),
                    "shift": dict(task.shift) or None,
                    "obs_shape": list(env.observation_space.shape),
                    "action_shape": list(env.action_space.shape),
                    "env_action_low": env.unwrapped.action_space.low.tolist(),  # before rescaling to [-1, 1]
                    "env_action_high": env.unwrapped.action_space.high.tolist(),
                }
            )
            env.close()
        versions = {"gymnasium_version": gym.__version__, "mujoco_version": mujoco.__version__}
        return {**versions, "settings": asdict(self.settings), "draws": dict(self.draws or {}), "tasks": tasks}

    def make_replay(
        self, spaces: Spaces, capacity: int, num_envs: int, seed: int, device: str | None = None
    ) -> TransitionReplay:
        return TransitionReplay(capacity, num_envs, spaces.obs_shape, spaces.action_shape, seed=seed)


def _checked_base(task: MujocoTask, settings: MujocoSettings) -> gym.Env:
    """The unwrapped-by-us env with its dynamics; unknown ids and bad make-kwargs become ConfigErrors."""
    if task.env_id not in gym.registry and not task.env_id.startswith(HUMANOID_BENCH_PREFIXES):
        close = difflib.get_close_matches(task.env_id, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown env id {task.env_id!r}{hint} (MuJoCo ids look like HalfCheetah-v5, Ant-v5)")
    try:
        return _make_base(task, settings.max_episode_steps)
    except TypeError as err:
        raise ConfigError(f"task {task.name}: {task.env_id} rejects make-kwargs {dict(task.kwargs)}: {err}") from err
