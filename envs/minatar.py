"""MinAtar (Young & Tian 2019): five miniature Atari games on a 10x10 grid, as a continual-RL env family.

Observations are channel-first uint8 (10, 10, 10): the game's (10, 10, C) bool channels, zero-padded to 10 so one
network serves every game (C-CHAIN's convention). Every game uses the full set of 6 actions, so one Q-head serves a
sequence. Sticky actions and difficulty ramping are the package's own, as settings. Episodes are cut after
`max_episode_steps` (Seaquest never ends if the agent never dives, kenjyoung/MinAtar#19); Freeway's built-in end
after 2,500 steps is a time limit, so it is reported as a truncation (bootstrapped), not a termination.

The `minatar` package is GPL-3.0 and an optional extra: `pip install -e ".[minatar]"`.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import gymnasium as gym
import numpy as np

from core.config import ConfigError, check_positive
from core.replay import TransitionReplay
from core.spaces import Spaces
from envs.sequence import Task, TaskSequence, build_sequence
from envs.shift import ShiftedView, ViewShift, level_tasks
from envs.suite import EnvSuite

# The package's ids for the full action set (-v0), the version the MinAtar paper's results use; fire_rl makes its
# own env (padded, channel-first) rather than gym.make-ing them.
GAMES = {
    "MinAtar/Asterix-v0": "asterix",
    "MinAtar/Breakout-v0": "breakout",
    "MinAtar/Freeway-v0": "freeway",
    "MinAtar/Seaquest-v0": "seaquest",
    "MinAtar/SpaceInvaders-v0": "space_invaders",
}
CHANNELS = 10  # the most any game has (Seaquest): every game is padded to it
NUM_ACTIONS = 6  # noop, left, up, right, down, fire: the package's full action set
TIME_LIMIT_GAMES = ("freeway",)  # games whose only end is a built-in time limit
INSTALL = 'the MinAtar games need the optional `minatar` package (GPL-3.0): pip install -e ".[minatar]"'


@dataclass(frozen=True)
class MinatarTask(Task):
    """A MinAtar task: a game, seen through an optional view shift (a task entry's `shift`, envs/shift.py)."""

    shift: Mapping[str, Any] = field(default_factory=dict)


def view_shift(task: Task) -> ViewShift | None:
    """The task's view shift, if it has one (a plain Task, built without the family's task type, has none)."""
    shift = getattr(task, "shift", None)
    return ViewShift.parse(shift, task.name) if shift else None


@dataclass(frozen=True)
class MinatarSettings:
    """Shared by every task of a sequence; counts are agent steps (one MinAtar frame)."""

    sticky_action_prob: float = 0.1  # the package's default: repeat the previous action with this probability
    difficulty_ramping: bool = True  # the package's default: Asterix, Seaquest and SpaceInvaders speed up
    max_episode_steps: int = 10_000  # agent steps before an episode is truncated

    def __post_init__(self) -> None:
        if not 0.0 <= self.sticky_action_prob <= 1.0:
            raise ConfigError(f"env.settings.sticky_action_prob must be in [0, 1], got {self.sticky_action_prob!r}")
        check_positive("env.settings.max_episode_steps", self.max_episode_steps)


def _environment_class():
    try:
        from minatar import Environment
    except ImportError as err:
        raise ConfigError(INSTALL) from err
    return Environment


def game_name(env_id: str) -> str:
    """The package's name of a MinAtar game id; ConfigError with close matches for an unknown one."""
    if env_id in GAMES:
        return GAMES[env_id]
    close = difflib.get_close_matches(env_id, list(GAMES), n=2)
    hint = f" did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"unknown MinAtar game {env_id!r};{hint} valid ids: {', '.join(GAMES)}")


class MinatarEnv(gym.Env):
    """One MinAtar game behind gymnasium's API: padded channel-first uint8 observations, 6 actions."""

    metadata = {"render_modes": []}

    def __init__(self, game: str, sticky_action_prob: float = 0.1, difficulty_ramping: bool = True):
        self.game = _environment_class()(
            game, sticky_action_prob=sticky_action_prob, difficulty_ramping=difficulty_ramping
        )
        self.name = game
        self.observation_space = gym.spaces.Box(0, 1, (CHANNELS, 10, 10), dtype=np.uint8)
        self.action_space = gym.spaces.Discrete(NUM_ACTIONS)

    def _obs(self) -> np.ndarray:
        state = self.game.state()  # (10, 10, C) bool
        obs = np.zeros((CHANNELS, 10, 10), dtype=np.uint8)
        obs[: state.shape[2]] = state.transpose(2, 0, 1)
        return obs

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.game.seed(seed)  # the package's RandomState drives the game and its sticky actions
        self.game.reset()
        return self._obs(), {}

    def step(self, action):
        reward, done = self.game.act(int(action))
        time_limit = done and self.name in TIME_LIMIT_GAMES
        return self._obs(), float(reward), done and not time_limit, time_limit, {}

    # --- exact snapshots (envs/snapshot.py calls these) -------------------------------------------------------
    def snapshot_state(self) -> dict[str, Any]:
        """The game's whole state and its RandomState (shared by the wrapper and the game, restored as one)."""
        outer = {k: copy.deepcopy(v) for k, v in vars(self.game).items() if k not in ("env", "random")}
        inner = {k: copy.deepcopy(v) for k, v in vars(self.game.env).items() if k != "random"}
        return {"outer": outer, "inner": inner, "random": copy.deepcopy(self.game.random)}

    def restore_state(self, state: dict[str, Any]) -> None:
        vars(self.game).update(copy.deepcopy(state["outer"]))
        vars(self.game.env).update(copy.deepcopy(state["inner"]))
        self.game.random = copy.deepcopy(state["random"])
        self.game.env.random = self.game.random


def make_env(task: MinatarTask, settings: MinatarSettings) -> gym.Env:
    """One game with the settings' stickiness, ramping and time limit, seen through the task's view shift."""
    env = MinatarEnv(game_name(task.env_id), settings.sticky_action_prob, settings.difficulty_ramping)
    env = gym.wrappers.TimeLimit(env, max_episode_steps=settings.max_episode_steps)
    shift = view_shift(task)
    return ShiftedView(env, shift) if shift else env


class MinatarSuite(EnvSuite):
    """MinAtar games (and cycles through them); pairs with the DQN agent (`agent=dqn_minatar`)."""

    kind = "minatar"
    agent_family = "dqn"
    settings_type = MinatarSettings
    config_keys = (*EnvSuite.config_keys, "levels")
    task_type = MinatarTask
    make_env = staticmethod(make_env)  # MinAtar's env snapshots itself: the base SimulatorState

    def build_sequence(self, env_cfg: Mapping[str, Any]) -> TaskSequence:
        """The listed tasks, or the N shifted levels of one game that `env.levels` describes (not both)."""
        if env_cfg.get("levels") and env_cfg.get("tasks"):
            raise ConfigError("env.levels generates the task list: give env.levels or env.tasks, not both")
        tasks = level_tasks(env_cfg["levels"]) if env_cfg.get("levels") else list(env_cfg.get("tasks") or [])
        return build_sequence(tasks, env_cfg.get("cycles", 1), MinatarTask)

    def spaces(self) -> Spaces:
        """Every task a known game without extra options and with a valid shift; one observation dtype for all
        (offset views are float: then every task needs an offset, sigma 0 for the plain view); the package installed."""
        _environment_class()
        dtypes = {}
        for task in self.sequence.distinct_tasks:
            game_name(task.env_id)
            if task.kwargs:
                extra = sorted(task.kwargs)
                raise ConfigError(
                    f"task {task.name}: MinAtar tasks take no options {extra} (games have no modes; use cycles, "
                    "settings or a shift)"
                )
            shift = view_shift(task)
            dtypes[task.name] = shift.obs_dtype if shift else "uint8"
        if len(set(dtypes.values())) > 1:
            raise ConfigError(
                f"tasks give observations of different dtypes ({dtypes}): an offset shift makes float observations, "
                "so give every task of the sequence an offset (sigma: 0 for the plain view)"
            )
        return Spaces.discrete_actions((CHANNELS, 10, 10), NUM_ACTIONS, next(iter(dtypes.values())))

    def switch_values(self, task: MinatarTask, envs: gym.vector.VectorEnv) -> dict[str, Any]:
        """A switch row records the task's view shift (task/shift_kind, task/shift_seed, task/shift_sigma)."""
        return {f"task/shift_{key}": value for key, value in task.shift.items()}

    def make_vector_env(self, task: Task, num_envs: int) -> gym.vector.VectorEnv:
        return gym.vector.SyncVectorEnv([lambda: make_env(task, self.settings) for _ in range(num_envs)])

    def family_record(self) -> dict[str, Any]:
        """The package version, every setting, and per task its game, native channels and time-limit note."""
        environment = _environment_class()
        tasks = []
        for task in self.sequence.distinct_tasks:
            game = game_name(task.env_id)
            native = environment(game).state_shape()[2]
            note = "built-in end after 2,500 steps, recorded as truncation" if game in TIME_LIMIT_GAMES else None
            tasks.append(
                {
                    "name": task.name,
                    "env_id": task.env_id,
                    "game": game,
                    "native_channels": native,
                    "padded_to": CHANNELS,
                    "num_actions": NUM_ACTIONS,
                    "time_limit": note,
                    "shift": dict(task.shift) or None,
                }
            )
        return {"minatar_version": metadata.version("minatar"), "settings": asdict(self.settings), "tasks": tasks}

    def make_replay(
        self, spaces: Spaces, capacity: int, num_envs: int, seed: int, device: str | None = None
    ) -> TransitionReplay:
        """Each (10, 10, 10) observation stored once as the env gives it (uint8: 1 kB; an offset view's float32: 4 kB);
        next obs from the following slot."""
        obs_dtype = np.dtype(spaces.obs_dtype)
        return TransitionReplay(
            capacity, num_envs, spaces.obs_shape, (), seed=seed, action_dtype=np.int64, obs_dtype=obs_dtype
        )
