"""Atari tasks: the FIRE paper's DQN preprocessing on ALE v5 envs, as a gymnasium vector env per task."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any

import ale_py
import gymnasium as gym
import numpy as np
from ale_py.vector_env import AtariVectorEnv

from core.config import ConfigError, check_choice, check_positive
from core.replay import FrameReplay
from core.spaces import Spaces
from envs.atari_wrappers import AuthorsPreprocessing, EpisodicLife, FireReset, NoopReset, has_fire
from envs.sequence import Task
from envs.snapshot import Resumable, SimulatorState
from envs.suite import EnvSuite

gym.register_envs(ale_py)

STICKY_LEVELS = ("agent_step", "frame")
BACKENDS = ("auto", "gymnasium", "async", "ale_vector")  # async: gymnasium's AsyncVectorEnv, one process per env
# gymnasium: AtariPreprocessing (ALE's grayscale, max over the last two frames, resize).
# authors: the FIRE authors' CleanRL wrappers: max over the last two RGB frames, resize (INTER_AREA), grayscale.
PREPROCESSING = ("gymnasium", "authors")


@dataclass(frozen=True)
class AtariSettings:
    """Preprocessing shared by every task of a sequence (docs/paper-notes.md §3)."""

    frame_skip: int = 4  # frames per agent step; max-pooled over the last two
    screen_size: int = 84
    frame_stack: int = 4
    sticky_action_prob: float = 0.25
    sticky_actions_per: str = "agent_step"  # the paper's code decides once per agent step; "frame" = ALE/Machado
    full_action_space: bool = True  # 18 actions for every game: one Q-head serves the whole sequence
    max_episode_steps: int = 27_000  # agent steps per episode before truncation
    noop_max: int = 0  # random no-op frames at reset (CleanRL: 30)
    terminal_on_life_loss: bool = False  # gymnasium's: a lost life ends the game
    episodic_life: bool = False  # CleanRL's: a lost life ends the learning episode; the game goes on
    fire_reset: bool = False  # CleanRL's: press FIRE after every reset in games that have it
    backend: str = "auto"  # auto | gymnasium (one process) | async (a process per env) | ale_vector (C++ threads)
    preprocessing: str = "gymnasium"  # gymnasium | authors (the FIRE authors' order: RGB max, resize, grayscale)

    def __post_init__(self) -> None:
        check_choice("env.sticky_actions_per", self.sticky_actions_per, STICKY_LEVELS)
        check_choice("env.preprocessing", self.preprocessing, PREPROCESSING)
        if self.preprocessing == "authors" and (self.terminal_on_life_loss or self.backend == "ale_vector"):
            raise ConfigError(
                "env.preprocessing=authors is CleanRL's wrapper order: use episodic_life (not terminal_on_life_loss) "
                "and the gymnasium or async backend"
            )
        if self.episodic_life and self.terminal_on_life_loss:
            raise ConfigError("env.episodic_life and env.terminal_on_life_loss exclude each other; choose one")
        check_choice("env.backend", self.backend, BACKENDS)
        for name in ("frame_skip", "screen_size", "frame_stack", "max_episode_steps"):
            check_positive(f"env.{name}", getattr(self, name))
        if not 0.0 <= self.sticky_action_prob <= 1.0:
            raise ConfigError(f"env.sticky_action_prob must be in [0, 1], got {self.sticky_action_prob!r}")


class ALESimulator(SimulatorState):
    """The emulator's whole system state with its RNG, as the bytes of a serialized ALEState."""

    key = "ale"
    handles = frozenset({"ale", "_action_set"})  # the emulator handle and the game's action list, rebuilt

    def read(self, base: Any) -> bytes | None:
        return base.ale.cloneState(include_rng=True).serialize() if hasattr(base, "ale") else None

    def write(self, base: Any, state: Any) -> None:
        # An ALEState itself: a checkpoint written before states were stored as bytes (the codec decodes those).
        base.ale.restoreState(state if isinstance(state, ale_py.ALEState) else ale_py.ALEState(state))


ALE_STATE = ALESimulator()


def ale_ids() -> list[str]:
    """Every registered ALE v5 id (ROMs ship inside ale-py)."""
    return sorted(k for k in gym.registry if k.startswith("ALE/") and k.endswith("-v5"))


def uses_ale_vector(task: Task, settings: AtariSettings) -> bool:
    """ale-py's vector env is faster but has no mode/difficulty argument and only per-frame sticky actions."""
    if settings.backend != "auto":
        return settings.backend == "ale_vector"
    return not task.kwargs and settings.sticky_actions_per == "frame" and settings.preprocessing == "gymnasium"


def _base_env(task: Task, settings: AtariSettings) -> gym.Env:
    per_frame = settings.sticky_actions_per == "frame"
    return gym.make(
        task.env_id,
        frameskip=1,
        repeat_action_probability=settings.sticky_action_prob if per_frame else 0.0,
        full_action_space=settings.full_action_space,
        max_num_frames_per_episode=settings.frame_skip * settings.max_episode_steps,
        **task.kwargs,
    )


def _preprocessed(task: Task, settings: AtariSettings) -> gym.Env:
    """Frame skip with a max over the last two frames, grayscale, resize: in gymnasium's or the authors' order."""
    if settings.preprocessing == "authors":
        base = _base_env(task, settings)
        base = NoopReset(base, settings.noop_max) if settings.noop_max else base
        return AuthorsPreprocessing(base, settings.frame_skip, settings.screen_size)
    return gym.wrappers.AtariPreprocessing(
        _base_env(task, settings),
        noop_max=settings.noop_max,
        frame_skip=settings.frame_skip,
        screen_size=settings.screen_size,
        terminal_on_life_loss=settings.terminal_on_life_loss,
    )


def make_env(task: Task, settings: AtariSettings) -> gym.Env:
    """One preprocessed env: skip+max, 84x84 gray, sticky actions, time limit, frame stack; raw rewards."""
    env = _preprocessed(task, settings)
    if settings.episodic_life:  # the time limit counts a whole game, so it sits inside the episodic-life wrapper
        env = EpisodicLife(gym.wrappers.TimeLimit(env, max_episode_steps=settings.max_episode_steps))
    if settings.fire_reset and has_fire(env):
        env = FireReset(env)
    if settings.sticky_actions_per == "agent_step" and settings.sticky_action_prob > 0:
        env = gym.wrappers.StickyAction(env, repeat_action_probability=settings.sticky_action_prob)
    if not settings.episodic_life:
        env = gym.wrappers.TimeLimit(env, max_episode_steps=settings.max_episode_steps)
    return gym.wrappers.FrameStackObservation(env, settings.frame_stack)


def make_vector_env(task: Task, settings: AtariSettings, num_envs: int) -> gym.vector.VectorEnv:
    """A vector env for one task with gymnasium's next-step autoreset; rewards are the raw game score."""
    if uses_ale_vector(task, settings):
        if task.kwargs:
            raise ConfigError(f"env.backend=ale_vector cannot set {sorted(task.kwargs)} for {task.name}")
        return AtariVectorEnv(
            gym.spec(task.env_id).kwargs["game"],
            num_envs,
            frameskip=settings.frame_skip,
            img_height=settings.screen_size,
            img_width=settings.screen_size,
            stack_num=settings.frame_stack,
            repeat_action_probability=settings.sticky_action_prob,
            full_action_space=settings.full_action_space,
            max_num_frames_per_episode=settings.frame_skip * settings.max_episode_steps,
            noop_max=settings.noop_max,
            episodic_life=settings.terminal_on_life_loss,
            reward_clipping=False,
            use_fire_reset=False,
        )
    if settings.backend == "async":  # exact snapshots through the Resumable wrapper, inside the workers
        return gym.vector.AsyncVectorEnv(
            [lambda: Resumable(make_env(task, settings), ALE_STATE) for _ in range(num_envs)]
        )
    return gym.vector.SyncVectorEnv([lambda: make_env(task, settings) for _ in range(num_envs)])


class AtariSuite(EnvSuite):
    """ALE v5 games (and their modes and difficulties) with the FIRE paper's DQN preprocessing."""

    kind = "atari"
    agent_family = "dqn"
    settings_type = AtariSettings
    make_env = staticmethod(make_env)
    simulator = ALE_STATE

    def spaces(self) -> Spaces:
        """Check ids, modes, difficulties and action spaces; every task shares one action count."""
        valid_ids = ale_ids()
        counts = {}
        for task in self.sequence.distinct_tasks:
            if "dynamics" in task.kwargs:
                raise ConfigError(f"task {task.name} sets dynamics, which only MuJoCo task sequences have")
            if task.env_id not in valid_ids:
                _reject_env_id(task.env_id, valid_ids)
            unknown = set(task.kwargs) - {"mode", "difficulty"}
            if unknown:
                raise ConfigError(
                    f"task {task.name}: unknown Atari task keys {sorted(unknown)}; valid: mode, difficulty"
                )
            env = gym.make(task.env_id, frameskip=1, full_action_space=self.settings.full_action_space)
            ale = env.unwrapped.ale
            _check_in(task, "mode", task.kwargs.get("mode"), list(ale.getAvailableModes()))
            _check_in(task, "difficulty", task.kwargs.get("difficulty"), list(ale.getAvailableDifficulties()))
            counts[task.name] = int(env.action_space.n)
            env.close()
        if len(set(counts.values())) > 1:
            raise ConfigError(f"the task sequence mixes action spaces {counts}; set env.full_action_space=true")
        side, stack = self.settings.screen_size, self.settings.frame_stack
        return Spaces.discrete_actions((stack, side, side), next(iter(counts.values())))

    def check_run(self, needs_exact_snapshots: bool) -> None:
        """Exact snapshots (checkpoint_every, stop_at_step) need the gymnasium backend."""
        if needs_exact_snapshots and any(uses_ale_vector(t, self.settings) for t in self.sequence.distinct_tasks):
            raise ConfigError(
                "checkpoint_every / stop_at_step need exact env snapshots, which env.settings.backend=ale_vector "
                "cannot give (its state lives in C++ threads); use env.settings.backend=gymnasium"
            )

    def make_vector_env(self, task: Task, num_envs: int) -> gym.vector.VectorEnv:
        return make_vector_env(task, self.settings, num_envs)

    def game_over(self, done: np.ndarray, infos: dict[str, Any]) -> np.ndarray:
        """With episodic life a lost life ends the learning episode, not the game: EpisodicLife's `game_over`."""
        return np.asarray(done, dtype=bool) & np.asarray(infos.get("game_over", True), dtype=bool)

    def family_record(self) -> dict[str, Any]:
        """Every ALE setting in force, per task."""
        tasks = []
        for task in self.sequence.distinct_tasks:
            env = _base_env(task, self.settings)
            ale = env.unwrapped.ale
            tasks.append(
                {
                    "name": task.name,
                    "env_id": task.env_id,
                    "make_kwargs": dict(env.spec.kwargs),
                    "mode": task.kwargs.get("mode"),  # None: the game's default mode
                    "difficulty": task.kwargs.get("difficulty"),
                    "available_modes": [int(m) for m in ale.getAvailableModes()],
                    "available_difficulties": [int(d) for d in ale.getAvailableDifficulties()],
                    "num_actions": int(env.action_space.n),
                    "backend": "ale_vector" if uses_ale_vector(task, self.settings) else "gymnasium",
                }
            )
            env.close()
        return {"ale_py_version": ale_py.__version__, "settings": asdict(self.settings), "tasks": tasks}

    def make_replay(
        self, spaces: Spaces, capacity: int, num_envs: int, seed: int, device: str | None = None
    ) -> FrameReplay:
        """Each 84x84 frame stored once (on `device` when given); stacks rebuilt by index."""
        frame_shape, stack = spaces.obs_shape[1:], self.settings.frame_stack
        return FrameReplay(capacity, num_envs, stack=stack, frame_shape=frame_shape, seed=seed, device=device)

    def replay_bytes(self, spaces: Spaces, capacity: int) -> int:
        return capacity * int(np.prod(spaces.obs_shape[1:]))


def _check_in(task: Task, key: str, value: Any, valid: list[int]) -> None:
    if value is not None and value not in valid:
        raise ConfigError(f"{task.env_id} has no {key} {value!r}; valid {key} values: {valid}")


def _reject_env_id(env_id: str, valid_ids: list[str]) -> None:
    if env_id.startswith("MinAtar/"):
        raise ConfigError(
            f"{env_id} is a MinAtar game, not an ALE one: MinAtar tasks form their own sequence with env.kind: "
            "minatar (e.g. env=minatar3 agent=dqn_minatar)"
        )
    if env_id in gym.registry:
        space = gym.make(env_id).action_space
        raise ConfigError(
            f"{env_id} is not an Atari env (action space {space}); DQN needs a discrete-action ALE id like ALE/Pong-v5"
        )
    close = difflib.get_close_matches(env_id, valid_ids, n=3)
    hint = f" did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(
        f"unknown Atari env id {env_id!r};{hint} valid ids are the {len(valid_ids)} ALE/<Game>-v5 ids: "
        + ", ".join(valid_ids)
    )
