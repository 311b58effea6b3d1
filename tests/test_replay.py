"""FrameReplay tests: hand-built frame streams whose frames encode (env, time), and a real ALE vector env."""

from collections import deque

import numpy as np
import pytest
import torch

from core.replay import FrameReplay

STACK = 4


def frame(e: int, k: int) -> np.ndarray:
    """A 2-pixel frame that encodes env e and global frame index k."""
    return np.array([e, k], dtype=np.uint8)


class Stream:
    """Frame stream with gymnasium 1.x next-step autoreset and FrameStack's reset-frame padding.

    ends maps (env, k) -> "term" | "trunc": frame k of env e is an episode's final obs. k counts every frame the
    stream emits (reset or step), so it equals the replay slot before the buffer wraps.
    """

    def __init__(self, num_envs: int, ends: dict | None = None):
        self.E, self.ends, self.k = num_envs, ends or {}, -1
        self.done = np.zeros(num_envs, dtype=bool)
        self.stacks: list[deque] = []
        self.records: list[dict] = []  # every real transition, keyed by the frame index of its obs

    def obs(self) -> np.ndarray:
        """Current stacked obs, shape (E, STACK, 2)."""
        return np.stack([np.stack(s) for s in self.stacks])

    def reset(self) -> np.ndarray:
        """Reset every env (first obs of a task)."""
        self.k += 1
        self.stacks = [deque([frame(e, self.k)] * STACK, maxlen=STACK) for e in range(self.E)]
        self.done[:] = False
        return self.obs()

    def step(self, actions: np.ndarray) -> tuple:
        """One vector step; envs whose last obs was final return their reset obs with reward 0."""
        obs, self.k = self.obs(), self.k + 1
        rewards = np.where(self.done, 0.0, self.k + 0.5).astype(np.float32)
        kinds = [None if self.done[e] else self.ends.get((e, self.k)) for e in range(self.E)]
        term, trunc = np.array([x == "term" for x in kinds]), np.array([x == "trunc" for x in kinds])
        for e in range(self.E):
            if self.done[e]:
                self.stacks[e].extend([frame(e, self.k)] * STACK)
            else:
                self.stacks[e].append(frame(e, self.k))
        next_obs = self.obs()
        for e in np.flatnonzero(~self.done):
            rec = dict(obs=obs[e], action=actions[e], reward=rewards[e], terminated=term[e], next_obs=next_obs[e])
            self.records.append(dict(k=self.k - 1, e=e, **rec))
        self.done = term | trunc
        return rewards, term, trunc, next_obs


def run(buf: FrameReplay, stream: Stream, steps: int, seed: int = 0) -> None:
    """Drive stream for `steps` steps with random actions, feeding the replay."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        actions = rng.integers(0, 18, size=stream.E)
        rewards, term, trunc, next_obs = stream.step(actions)
        buf.add(actions, rewards, term, trunc, next_obs)


def check_all(buf: FrameReplay, stream: Stream) -> dict:
    """Every valid transition equals the stream's record and the valid set is exactly the retained real ones.

    Returns {(env, frame index of obs): row in buf._batch(*buf._valid_indices())}.
    """
    oldest = stream.k + 1 - buf.T + (buf.stack - 1 if stream.k + 1 > buf.T else 0)
    expected = {(r["k"], r["e"]): r for r in stream.records if r["k"] >= oldest}
    t, e = buf._valid_indices()
    batch = buf._batch(t, e)
    assert len(buf) == len(t) == len(expected)
    for i in range(len(t)):
        k = stream.k - (buf.pos - t[i]) % buf.T  # frame index held in slot t[i]
        rec = expected[(k, e[i])]
        np.testing.assert_array_equal(batch["obs"][i], rec["obs"])
        np.testing.assert_array_equal(batch["next_obs"][i], rec["next_obs"])
        assert batch["actions"][i] == rec["action"] and batch["rewards"][i] == rec["reward"]
        assert batch["terminated"][i] == float(rec["terminated"])
    return {(int(ei), int(stream.k - (buf.pos - ti) % buf.T)): i for i, (ti, ei) in enumerate(zip(t, e, strict=True))}


def times(stacks: np.ndarray) -> list:
    """Frame indices of one stack, oldest first."""
    return [int(x) for x in stacks[:, 1]]


def make(num_envs: int = 1, slots: int = 64, device: str | None = None) -> FrameReplay:
    return FrameReplay(slots * num_envs, num_envs, STACK, frame_shape=(2,), seed=0, device=device)


def host(batch: dict) -> dict:
    """A batch as numpy arrays, whether the replay is numpy or device tensors (`device="cpu"` runs that path)."""
    return {k: v.cpu().numpy() if torch.is_tensor(v) else v for k, v in batch.items()}


def test_episode_end_stacks_pad_with_reset_frame():
    buf, stream = make(), Stream(1, {(0, 5): "term"})
    buf.start(stream.reset())
    run(buf, stream, 10)
    at = check_all(buf, stream)
    batch = buf._batch(*buf._valid_indices())
    assert (0, 5) not in at and (0, 10) not in at  # final obs, newest slot
    last = at[(0, 4)]  # last real transition of the episode
    assert times(batch["obs"][last]) == [1, 2, 3, 4] and times(batch["next_obs"][last]) == [2, 3, 4, 5]
    assert batch["terminated"][last] == 1.0
    assert times(batch["obs"][at[(0, 0)]]) == [0, 0, 0, 0]
    assert times(batch["obs"][at[(0, 6)]]) == [6, 6, 6, 6] and times(batch["next_obs"][at[(0, 6)]]) == [6, 6, 6, 7]
    assert times(batch["obs"][at[(0, 8)]]) == [6, 6, 7, 8]
    sampled = buf.sample(500)
    assert 5 not in sampled["obs"][:, -1, 1]  # the final obs is never an obs
    assert sampled["obs"].dtype == np.uint8 and sampled["actions"].dtype == np.int64
    assert sampled["rewards"].dtype == np.float32 and sampled["terminated"].dtype == np.float32


def test_truncation_is_a_valid_non_terminal_transition():
    buf, stream = make(), Stream(1, {(0, 5): "trunc"})
    buf.start(stream.reset())
    run(buf, stream, 8)
    at = check_all(buf, stream)
    batch = buf._batch(*buf._valid_indices())
    assert batch["terminated"][at[(0, 4)]] == 0.0 and times(batch["next_obs"][at[(0, 4)]]) == [2, 3, 4, 5]
    assert (0, 5) not in at and times(batch["obs"][at[(0, 6)]]) == [6, 6, 6, 6]


def test_task_switch_via_start_cuts_episodes():
    buf, stream = make(), Stream(1)
    buf.start(stream.reset())
    run(buf, stream, 6)  # frames 0..6; frame 6 never gets an action
    buf.start(stream.reset())  # frame 7 starts the new task
    run(buf, stream, 6)
    at = check_all(buf, stream)
    batch = buf._batch(*buf._valid_indices())
    assert (0, 6) not in at
    assert times(batch["next_obs"][at[(0, 5)]]) == [3, 4, 5, 6]
    assert times(batch["obs"][at[(0, 7)]]) == [7, 7, 7, 7] and times(batch["obs"][at[(0, 9)]]) == [7, 7, 8, 9]
    for key in ("obs", "next_obs"):
        old = batch[key][:, :, 1] <= 6
        assert np.all(old.all(1) | (~old).all(1))  # no stack straddles the switch


def test_wrap_around_excludes_overwritten_history():
    buf, stream = make(num_envs=2, slots=10), Stream(2, {(1, 12): "term", (0, 15): "trunc"})
    buf.start(stream.reset())
    run(buf, stream, 24)  # frames 0..24 per env; 15..24 are kept
    check_all(buf, stream)
    # kept 15..24; 15-17 excluded (stacks reach overwritten slots), 24 newest; nothing ends in 18..23
    assert len(buf) == 2 * 6
    batch = buf.sample(400)
    assert batch["obs"][:, :, 1].min() >= 15 and batch["next_obs"][:, :, 1].min() >= 15
    assert batch["obs"][:, -1, 1].min() == 18 and batch["obs"][:, -1, 1].max() == 23


def test_multiple_envs_interleave_independently():
    buf, stream = make(num_envs=2), Stream(2, {(0, 4): "term", (1, 7): "term"})
    buf.start(stream.reset())
    run(buf, stream, 12)
    at = check_all(buf, stream)
    batch = buf._batch(*buf._valid_indices())
    assert (0, 4) not in at and (1, 4) in at and (1, 7) not in at and (0, 7) in at
    assert times(batch["obs"][at[(0, 5)]]) == [5, 5, 5, 5] and times(batch["obs"][at[(1, 5)]]) == [2, 3, 4, 5]
    assert times(batch["obs"][at[(1, 9)]]) == [8, 8, 8, 9] and times(batch["obs"][at[(0, 9)]]) == [6, 7, 8, 9]
    assert np.all(batch["obs"][:, :, 0] == batch["obs"][:, :1, 0]) and set(batch["obs"][:, 0, 0]) == {0, 1}


@pytest.mark.parametrize("device", [None, "cpu"])
def test_state_dict_round_trip_gives_identical_samples(device):
    buf, stream = make(num_envs=2, slots=16, device=device), Stream(2, {(0, 9): "term", (1, 20): "trunc"})
    buf.start(stream.reset())
    run(buf, stream, 30)
    other = make(num_envs=2, slots=16, device=device)
    other.load_state_dict({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in buf.state_dict().items()})
    assert len(other) == len(buf) and other.nbytes == buf.nbytes
    for _ in range(3):
        a, b = host(buf.sample(64)), host(other.sample(64))
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(host({"o": buf.sample_obs(16)})["o"], host({"o": other.sample_obs(16)})["o"])
    actions = np.array([1, 2])
    for r in (buf, other):  # both keep going identically after the restore
        r.add(actions, np.ones(2), np.zeros(2, bool), np.zeros(2, bool), np.zeros((2, STACK, 2), np.uint8))
    np.testing.assert_array_equal(host(buf.sample(64))["next_obs"], host(other.sample(64))["next_obs"])


def test_sample_before_any_transition_raises():
    buf = make()
    buf.start(Stream(1).reset())
    with pytest.raises(ValueError, match="no valid transitions"):
        buf.sample(4)


@pytest.mark.parametrize("device", [None, "cpu"])
def test_rebuilt_stacks_match_real_ale_vector_env(device):
    gym = pytest.importorskip("gymnasium")
    ale_py = pytest.importorskip("ale_py")
    gym.register_envs(ale_py)

    def make_env(limit: int):
        def thunk():
            env = gym.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0, full_action_space=True,
                           max_episode_steps=limit)  # fmt: skip
            env = gym.wrappers.AtariPreprocessing(env, noop_max=0, frame_skip=4, screen_size=84)
            return gym.wrappers.FrameStackObservation(env, STACK)

        return thunk

    envs = gym.vector.SyncVectorEnv([make_env(50), make_env(70)])  # raw frames: ~13 and ~18 agent steps per episode
    buf = FrameReplay(2 * 150, 2, STACK, seed=1, device=device)  # 200 steps wrap the 150 slots per env
    obs, _ = envs.reset(seed=0)
    buf.start(obs)
    records, done, k, rng = {}, np.zeros(2, bool), 0, np.random.default_rng(0)
    for _ in range(200):
        actions = rng.integers(0, 18, size=2)
        next_obs, rewards, term, trunc, _ = envs.step(actions)
        buf.add(actions, rewards, term, trunc, next_obs)
        for e in np.flatnonzero(~done):
            records[(k, int(e))] = (obs[e], actions[e], rewards[e], term[e], next_obs[e])
        obs, done, k = next_obs, term | trunc, k + 1
    envs.close()
    t, e = buf._valid_indices()
    batch, ks = host(buf._batch(t, e)), k - (buf.pos - t) % buf.T
    expected = [key for key in records if key[0] >= k + 1 - buf.T + STACK - 1]
    assert sorted(zip(ks.tolist(), e.tolist(), strict=True)) == sorted(expected) and len(buf) == len(expected)
    assert (batch["obs"][:, 0] != batch["obs"][:, -1]).any()  # real motion inside stacks, not just padding
    for i, key in enumerate(zip(ks.tolist(), e.tolist(), strict=True)):
        o, a, r, term, o2 = records[key]
        np.testing.assert_array_equal(batch["obs"][i], o)
        np.testing.assert_array_equal(batch["next_obs"][i], o2)
        assert batch["actions"][i] == a and batch["rewards"][i] == r and batch["terminated"][i] == float(term)


def test_state_dict_saves_only_written_rows_before_the_first_wrap():
    """A checkpoint early in a run must not carry the whole (mostly empty) capacity."""
    replay = FrameReplay(capacity=1000, num_envs=2)
    obs = np.zeros((2, 4, 84, 84), dtype=np.uint8)
    replay.start(obs)
    for _ in range(9):
        replay.add(np.zeros(2), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool), obs)
    state = replay.state_dict()
    assert len(state["frames"]) == 10 and replay.T == 500
    other = FrameReplay(capacity=1000, num_envs=2)
    other.load_state_dict(state)
    assert len(other) == len(replay) and other.pos == replay.pos
