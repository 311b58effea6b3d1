"""Replay buffers. FrameReplay: Atari replay that stores each uint8 frame once and rebuilds stacks by index.
TransitionReplay: flat observations (MuJoCo), each stored once, next obs read from the following slot."""

from __future__ import annotations

import numpy as np
import torch

_ARRAYS = ("frames", "actions", "rewards", "terminated", "episode_start", "valid")


class _TimeMajorReplay:
    """What both buffers share: the (T, E) slot cursor under next-step autoreset, and checkpoint state.

    Subclasses allocate their arrays and say how one new observation per env is stored (`_store`).
    """

    _arrays: tuple[str, ...]

    def _init_slots(self, shape: tuple[int, int], seed: int) -> None:
        """The per-slot arrays and cursor state both buffers keep (lazily mapped zeros)."""
        self.rewards = np.zeros(shape, dtype=np.float32)
        self.terminated = np.zeros(shape, dtype=bool)
        self.valid = np.zeros(shape, dtype=bool)
        self.final = np.zeros(shape[1], dtype=bool)  # the newest slot is an episode's final obs
        self.pos = -1  # newest slot; -1 before start()
        self.full = False  # some slot has been overwritten
        self.rng = np.random.default_rng(seed)

    @property
    def nbytes(self) -> int:
        """Total bytes of all storage arrays."""
        return sum(getattr(self, name).nbytes for name in self._arrays)

    def start(self, obs: np.ndarray) -> None:
        """Write the first obs of a task for every env as an episode start (a task switch cuts running episodes)."""
        self._write(np.asarray(obs), np.ones(self.num_envs, dtype=bool))
        self.final[:] = False

    def add(self, actions, rewards, terminated, truncated, next_obs: np.ndarray) -> None:
        """Record a_t, r_t, terminated_t for the newest slot, then write next_obs as slot t+1."""
        if self.pos < 0:
            raise RuntimeError(f"{type(self).__name__}.add() called before start(obs)")
        t = self.pos
        self.actions[t] = actions
        self.rewards[t] = rewards
        self.terminated[t] = terminated
        self.valid[t] = ~self.final  # the step from a final obs is the autoreset step, not a transition
        starts = self.final.copy()  # the obs after a final obs is the reset obs
        self.final = np.asarray(terminated, dtype=bool) | np.asarray(truncated, dtype=bool)
        self._write(np.asarray(next_obs), starts)

    def _write(self, obs: np.ndarray, starts: np.ndarray) -> None:
        """Advance the cursor and store one obs per env; the new slot has no action yet."""
        nxt = (self.pos + 1) % self.T
        self._store(nxt, obs, starts)
        self.full = self.full or self.pos == self.T - 1
        self.valid[nxt] = False
        self.pos = nxt

    def _store(self, slot: int, obs: np.ndarray, starts: np.ndarray) -> None:
        raise NotImplementedError

    def _ok(self, t: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Whether each (t, e) is a sampleable transition."""
        return self.valid[t, e]

    def _draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Draw n (t, e) uniformly over sampleable transitions by rejection (valid slots are the vast majority)."""
        rows = self.T if self.full else self.pos + 1
        kept, count = [np.zeros(0, dtype=np.int64)], 0
        while count < n:
            flat = rng.integers(0, max(rows, 1) * self.num_envs, size=2 * n + 16)
            flat = flat[self._ok(*np.divmod(flat, self.num_envs))]
            if flat.size == 0 and len(self) == 0:  # len() scans the flags: only on an empty round
                raise ValueError(f"{type(self).__name__} has no valid transitions to sample")
            kept.append(flat)
            count += flat.size
        return np.divmod(np.concatenate(kept)[:n], self.num_envs)

    def state_dict(self) -> dict:
        """Everything needed to restore exactly; arrays are views (no copy) of the written rows."""
        rows = None if self.full else self.pos + 1
        d = {name: getattr(self, name)[:rows] for name in self._arrays}
        d.update(final=self.final, pos=self.pos, full=self.full, rng=self.rng.bit_generator.state)
        return d

    def load_state_dict(self, d: dict) -> None:
        """Restore from state_dict() output, copying arrays into this buffer's storage."""
        for name in (*self._arrays, "final"):
            dst, src = getattr(self, name), np.asarray(d[name])
            if src.shape[1:] != dst.shape[1:] or len(src) > len(dst):
                raise ValueError(f"state_dict[{name!r}] has shape {src.shape}, this buffer has {dst.shape}")
            dst[: len(src)] = torch.as_tensor(src).to(dst.device) if torch.is_tensor(dst) else src
            dst[len(src) :] = 0
        self.pos, self.full = int(d["pos"]), bool(d["full"])
        self.rng.bit_generator.state = d["rng"]


class FrameReplay(_TimeMajorReplay):
    """Time-major (T, E) frame replay for vector envs with gymnasium 1.x next-step autoreset.

    Slot (t, e) holds the newest frame of obs o_t plus a_t, r_t, terminated_t. A slot is a transition
    (o_t, a_t, r_t, terminated_t, o_{t+1}) when its action is known, o_t is not an episode's final obs (the step
    from a final obs is the autoreset step), it is not the newest slot, and, once the buffer has wrapped, its stack
    does not reach into overwritten slots (the oldest stack-1 slots are excluded).
    """

    _arrays = _ARRAYS

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        stack: int = 4,
        frame_shape: tuple[int, ...] = (84, 84),
        seed: int = 0,
        device: str | None = None,
    ):
        self.num_envs, self.stack, self.frame_shape = num_envs, stack, tuple(frame_shape)
        self.T = capacity // num_envs  # slots per env; capacity counts transitions over all envs
        if self.T <= stack:
            raise ValueError(
                f"capacity={capacity} gives {self.T} slots per env for num_envs={num_envs}; need more than {stack}"
            )
        shape = (self.T, num_envs)
        # On a torch device the frames live there (one frame per env crosses the bus per step, stacks are gathered
        # there); the small per-slot arrays and the sampling bookkeeping stay numpy on the host.
        self.device = None if device is None else torch.device(device)
        if self.device is None:
            self.frames = np.zeros(shape + self.frame_shape, dtype=np.uint8)  # np.zeros: pages are mapped lazily
        else:
            self.frames = torch.zeros(shape + self.frame_shape, dtype=torch.uint8, device=self.device)
        self.actions = np.zeros(shape, dtype=np.int64)
        self.episode_start = np.zeros(shape, dtype=bool)
        self._init_slots(shape, seed)

    def _store(self, slot: int, obs: np.ndarray, starts: np.ndarray) -> None:
        """Only the newest frame of each stack is stored; stacks are rebuilt by index."""
        if obs.shape[:1] + obs.shape[2:] != (self.num_envs, *self.frame_shape):
            raise ValueError(f"obs must be (E, stack, *frame) = ({self.num_envs}, {self.stack}, {self.frame_shape})")
        newest = obs[:, -1]
        self.frames[slot] = newest if self.device is None else torch.as_tensor(newest).to(self.device)
        self.episode_start[slot] = starts

    def _ok(self, t: np.ndarray, e: np.ndarray) -> np.ndarray:
        """As the base class, and once the buffer has wrapped, not a slot whose stack reaches overwritten slots."""
        ok = self.valid[t, e]
        if self.full:  # the oldest stack-1 slots' stacks reach into overwritten slots
            ok &= (t - self.pos - 1) % self.T >= self.stack - 1
        return ok

    def __len__(self) -> int:
        """Number of valid transitions."""
        n = int(self.valid.sum())
        if self.full:
            n -= int(self.valid[(self.pos + 1 + np.arange(self.stack - 1)) % self.T].sum())
        return n

    def _valid_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """All sampleable (t, e), in storage order."""
        t, e = np.nonzero(self.valid)
        keep = self._ok(t, e)
        return t[keep], e[keep]

    def _stacks(self, t: np.ndarray, e: np.ndarray) -> np.ndarray:
        """Rebuild (B, stack, *frame) stacks ending at slot t, repeating the episode-start frame like FrameStack."""
        back = np.arange(self.stack)  # 0 = newest frame
        starts = self.episode_start[(t[:, None] - back) % self.T, e[:, None]]
        starts[:, -1] = True  # never walk back further than stack-1
        stop = starts.argmax(axis=1)  # steps back to the first episode start met
        rows = (t[:, None] - np.minimum(back, stop[:, None])) % self.T
        if self.device is None:
            return self.frames[rows[:, ::-1], e[:, None]]
        index = torch.as_tensor(np.ascontiguousarray(rows[:, ::-1])), torch.as_tensor(e[:, None])
        return self.frames[index[0].to(self.device), index[1].to(self.device)]

    def _batch(self, t: np.ndarray, e: np.ndarray) -> dict:
        """Transitions at (t, e): numpy arrays, or tensors on the replay's device."""
        small = {
            "actions": self.actions[t, e],
            "rewards": self.rewards[t, e],
            "terminated": self.terminated[t, e].astype(np.float32),
        }
        if self.device is not None:
            small = {k: torch.as_tensor(v).to(self.device) for k, v in small.items()}
        return {"obs": self._stacks(t, e), **small, "next_obs": self._stacks((t + 1) % self.T, e)}

    def state_dict(self) -> dict:
        """As the base class; device frames come to the host (a checkpoint is written from host memory)."""
        d = super().state_dict()
        if self.device is not None:
            d["frames"] = d["frames"].cpu().numpy()
        return d

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """Sample a batch uniformly over valid transitions."""
        return self._batch(*self._draw(batch_size, self.rng))

    def sample_obs(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Sample n stacked observations uniformly over valid slots (for plasticity probes)."""
        return self._stacks(*self._draw(n, self.rng if rng is None else rng))


_FLAT_ARRAYS = ("obs", "actions", "rewards", "terminated", "valid")


class TransitionReplay(_TimeMajorReplay):
    """Time-major (T, E) replay of flat observations for vector envs with gymnasium 1.x next-step autoreset.

    Slot (t, e) holds o_t and, once known, a_t, r_t, terminated_t; it is a transition (o_t, a_t, r_t, terminated_t,
    o_{t+1}) when its action is known and o_t is not an episode's final obs (the step from a final obs is the
    autoreset step). The newest slot is never valid, so o_{t+1} is always the obs that followed o_t.
    """

    _arrays = _FLAT_ARRAYS

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: tuple[int, ...] = (),
        seed: int = 0,
        action_dtype: type = np.float32,
        obs_dtype: type = np.float32,
    ):
        self.num_envs, self.obs_shape = num_envs, tuple(obs_shape)
        self.T = capacity // num_envs  # slots per env; capacity counts transitions over all envs
        if self.T < 2:
            raise ValueError(f"capacity={capacity} gives {self.T} slots per env for num_envs={num_envs}; need 2+")
        shape = (self.T, num_envs)
        self.obs = np.zeros(shape + self.obs_shape, dtype=obs_dtype)  # np.zeros: pages are mapped lazily
        self.actions = np.zeros(shape + tuple(action_shape), dtype=action_dtype)
        self._init_slots(shape, seed)

    def _store(self, slot: int, obs: np.ndarray, starts: np.ndarray) -> None:
        """Each flat observation is stored once; the next obs of slot t is slot t+1's."""
        if obs.shape != (self.num_envs, *self.obs_shape):
            raise ValueError(f"obs must be (E, *obs_shape) = ({self.num_envs}, {self.obs_shape}), got {obs.shape}")
        self.obs[slot] = obs

    def __len__(self) -> int:
        """Number of valid transitions."""
        return int(self.valid.sum())

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """Sample a batch uniformly over valid transitions."""
        t, e = self._draw(batch_size, self.rng)
        return {
            "obs": self.obs[t, e],
            "actions": self.actions[t, e],
            "rewards": self.rewards[t, e],
            "terminated": self.terminated[t, e].astype(np.float32),
            "next_obs": self.obs[(t + 1) % self.T, e],
        }

    def sample_obs(self, n: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """Sample n observations uniformly over valid slots (for plasticity probes)."""
        return self.obs[self._draw(n, self.rng if rng is None else rng)]
