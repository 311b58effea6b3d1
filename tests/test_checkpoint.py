"""Checkpoint files and env snapshots: atomic, complete, exact."""

from __future__ import annotations

import collections
import json
import os
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import TINY, run_train

from agents.shared import to_device
from envs import mujoco
from envs.atari import ALE_STATE, AtariSettings, make_vector_env
from envs.sequence import Task, build_sequence
from envs.snapshot import restore_env, restore_vector_env, snapshot_env, snapshot_vector_env
from fire_rl.checkpoint import (
    CheckpointError,
    check_fingerprint,
    decode,
    encode,
    list_checkpoints,
    load_checkpoint,
    load_latest,
    load_tree,
    save_checkpoint,
    save_tree,
)


def _rollout(envs, actions):
    out = []
    for a in actions:
        obs, reward, terminated, truncated, _ = envs.step(a)
        out.append((obs.copy(), reward.copy(), terminated.copy(), truncated.copy()))
    return out


def test_atari_vector_env_snapshot_continues_exactly():
    """Sticky actions, frame stacks, time limits and autoresets all continue as if never interrupted."""
    task = build_sequence([{"env_id": "ALE/Asterix-v5", "steps": 10}]).visits[0]
    settings = AtariSettings(max_episode_steps=150)  # episodes end (truncate) inside the rollout
    envs = make_vector_env(task, settings, num_envs=2)
    envs.reset(seed=3)
    rng = np.random.default_rng(0)
    _rollout(envs, [rng.integers(18, size=2) for _ in range(40)])
    snapshot = pickle.loads(pickle.dumps(snapshot_vector_env(envs, ALE_STATE)))  # it must survive a trip through a file
    fresh = make_vector_env(task, settings, num_envs=2)
    fresh.reset(seed=12345)  # a different seed: everything must come from the snapshot
    restore_vector_env(fresh, snapshot, ALE_STATE)
    actions = [rng.integers(18, size=2) for _ in range(400)]
    original, restored = _rollout(envs, actions), _rollout(fresh, actions)
    assert sum(step[3].sum() for step in original) >= 2  # the comparison covered episode ends
    for a, b in zip(original, restored, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_mujoco_env_snapshot_continues_exactly():
    env = gym.make("HalfCheetah-v5")
    env.reset(seed=0)
    rng = np.random.default_rng(1)
    for _ in range(20):
        env.step(rng.uniform(-1, 1, 6))
    snapshot = pickle.loads(pickle.dumps(snapshot_env(env, mujoco.MUJOCO_STATE)))
    fresh = gym.make("HalfCheetah-v5")
    fresh.reset(seed=99)
    restore_env(fresh, snapshot, mujoco.MUJOCO_STATE)
    for _ in range(50):
        action = rng.uniform(-1, 1, 6)
        a, b = env.step(action), fresh.step(action)
        assert np.array_equal(a[0], b[0]) and a[1] == b[1]


def test_ale_vector_backend_refuses_snapshots():
    task = build_sequence([{"env_id": "ALE/Pong-v5", "steps": 10}]).visits[0]
    envs = make_vector_env(task, AtariSettings(backend="ale_vector"), num_envs=1)
    with pytest.raises(NotImplementedError, match="backend=gymnasium"):
        snapshot_vector_env(envs, ALE_STATE)


def _save(run_dir, step, keep=2):
    replay = {"frames": np.full((4, 2), step, dtype=np.int64), "cursor": step}
    return save_checkpoint(run_dir, step, {"step": step}, replay, {"agent": "dqn"}, keep=keep)


def test_save_load_round_trip_and_keep_last_k(tmp_path):
    for step in (100, 200, 300):
        _save(tmp_path, step)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000000000200", "step_000000000300"]
    state, replay, manifest = load_checkpoint(list_checkpoints(tmp_path)[-1])
    assert state == {"step": 300} and replay["cursor"] == 300 and replay["frames"][0, 0] == 300
    assert manifest["fingerprint"] == {"agent": "dqn"}


def test_truncated_checkpoint_is_rejected_and_the_previous_one_used(tmp_path):
    _save(tmp_path, 100)
    newest = _save(tmp_path, 200)
    data = (newest / "replay.npz").read_bytes()
    (newest / "replay.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt: replay.npz"):
        load_checkpoint(newest)
    with pytest.warns(UserWarning, match="trying the previous checkpoint"):
        path, state, _, _ = load_latest(tmp_path)
    assert path.name == "step_000000000100" and state == {"step": 100}


def test_a_temporary_directory_is_never_loaded(tmp_path):
    _save(tmp_path, 100)
    (tmp_path / "checkpoints" / ".tmp_step_000000000200").mkdir()  # a kill in the middle of a write
    assert load_latest(tmp_path)[0].name == "step_000000000100"


def test_missing_and_foreign_checkpoints_are_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match="agent: checkpoint 'sac' vs now 'dqn'"):
        check_fingerprint({"agent": "sac"}, {"agent": "dqn"}, tmp_path)


# --- loading runs no code from the checkpoint ----------------------------------------------------------------


class _RunsCodeWhenUnpickled:
    """What a hostile shared checkpoint could carry: unpickling it would run a shell command."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant(checkpoint, payload) -> None:
    """Replace state.pt with a plain (unsafe) torch.save of `payload`, keeping the manifest consistent."""
    torch.save(payload, checkpoint / "state.pt")
    manifest = json.loads((checkpoint / "manifest.json").read_text())
    manifest["files"]["state.pt"] = (checkpoint / "state.pt").stat().st_size
    (checkpoint / "manifest.json").write_text(json.dumps(manifest))


def test_a_checkpoint_that_would_run_code_is_refused_and_the_code_never_runs(tmp_path):
    checkpoint, marker = _save(tmp_path, 100), tmp_path / "code_ran"
    _plant(checkpoint, {"loop": _RunsCodeWhenUnpickled(marker)})
    with pytest.raises(CheckpointError, match=r"state\.pt holds something outside the allowlist"):
        load_checkpoint(checkpoint)
    assert not marker.exists()


def test_branching_from_a_hostile_checkpoint_exits_with_one_line_and_writes_nothing(tmp_path):
    checkpoint, marker = _save(tmp_path / "shared", 100), tmp_path / "code_ran"
    _plant(checkpoint, {"loop": _RunsCodeWhenUnpickled(marker)})
    run_dir = tmp_path / "branch"
    result = run_train(*TINY, f"branch_from={checkpoint}", f"hydra.run.dir={run_dir}", timeout=300)
    assert result.returncode != 0 and not marker.exists()
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("fire_rl: error: checkpoint file") and "state.pt" in last and "allowlist" in last
    assert not (run_dir / "metrics.jsonl").exists() and not (run_dir / "config.yaml").exists()


def test_the_allowlist_codec_round_trips_what_a_run_holds():
    generator = np.random.default_rng(3)
    tree = {
        "array": np.arange(6, dtype=np.uint8).reshape(2, 3),
        "scalar": np.int64(7),
        "generator": generator,
        "legacy": np.random.get_state(),
        "queue": collections.deque([np.zeros(2), 1.5], maxlen=4),
        "tensor": torch.arange(3),
        "plain": (1, "a", None, [2.0, b"x"]),
    }
    back = decode(encode(tree))
    assert back["array"].dtype == np.uint8 and np.array_equal(back["array"], tree["array"])
    assert type(back["scalar"]) is np.int64 and back["scalar"] == 7
    assert back["generator"].random() == np.random.default_rng(3).random()
    assert back["queue"].maxlen == 4 and np.array_equal(back["queue"][0], np.zeros(2))
    assert back["legacy"][0] == "MT19937" and np.array_equal(back["legacy"][1], tree["legacy"][1])
    assert torch.equal(back["tensor"], tree["tensor"]) and back["plain"] == tree["plain"]
    with pytest.raises(TypeError, match=r"state\['bad'\]: builtins.object is not allowed"):
        encode({"bad": object()})


@pytest.mark.parametrize("game", ["ALE/Pong-v5", "HalfCheetah-v5"])
def test_env_snapshots_continue_exactly_through_a_checkpoint_file(game, tmp_path):
    task_type = Task if game.startswith("ALE") else mujoco.MujocoTask
    task = build_sequence([{"env_id": game, "steps": 10}], task_type=task_type).visits[0]
    if game.startswith("ALE"):
        make = lambda: make_vector_env(task, AtariSettings(backend="gymnasium"), num_envs=2)  # noqa: E731
        simulator = ALE_STATE
    else:
        make = lambda: mujoco.make_vector_env(task, mujoco.MujocoSettings(), 2)  # noqa: E731
        simulator = mujoco.MUJOCO_STATE
    envs = make()
    envs.reset(seed=0)
    actions = [envs.action_space.sample() for _ in range(12)]
    _rollout(envs, actions[:4])
    save_tree(snapshot_vector_env(envs, simulator), tmp_path / "envs.pt")
    expected = _rollout(envs, actions[4:])
    fresh = make()
    restore_vector_env(fresh, load_tree(tmp_path / "envs.pt"), simulator)
    for a, b in zip(expected, _rollout(fresh, actions[4:]), strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_async_vector_env_snapshot_continues_exactly_across_episode_ends(tmp_path):
    """The async backend (a process per env) resumes step for step, including an env whose episode just ended."""
    task = build_sequence([{"env_id": "ALE/Pong-v5", "steps": 10}]).visits[0]
    settings = AtariSettings(backend="async", max_episode_steps=9)  # episodes end every 9 agent steps
    envs = make_vector_env(task, settings, num_envs=2)
    envs.reset(seed=0)
    actions = [np.array([i % 6, (i * 5) % 6]) for i in range(40)]
    _rollout(envs, actions[:9])  # both episodes ended at this step: the next step is their autoreset step
    save_tree(snapshot_vector_env(envs, ALE_STATE), tmp_path / "envs.pt")
    expected = _rollout(envs, actions[9:])
    envs.close()
    fresh = make_vector_env(task, settings, num_envs=2)
    restore_vector_env(fresh, load_tree(tmp_path / "envs.pt"), ALE_STATE)
    got = _rollout(fresh, actions[9:])
    fresh.close()
    for a, b in zip(expected, got, strict=True):
        assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_to_device_moves_every_tensor_of_a_nested_state():
    """A checkpoint's theta0 is read onto the CPU; agents move it to their own device (a CUDA run's resets compare
    the live weights with it). The meta device stands in for a GPU here."""
    state = {"actor": {"w": torch.ones(2), "step": 3}, "critic": {"w": torch.zeros(1, 2)}}
    moved = to_device(state, torch.device("meta"))
    assert moved["actor"]["w"].device.type == "meta" and moved["critic"]["w"].shape == (1, 2)
    assert moved["actor"]["step"] == 3 and state["actor"]["w"].device.type == "cpu"


def test_pending_losses_are_packed_compactly_and_restored_exactly():
    """At 8 updates per agent step a checkpoint between two `train` rows holds tens of thousands of pending loss
    tensors; they are stored as one 1-d tensor per key and come back as the same values (the same mean)."""
    import io

    from fire_rl.run_state import LoopState
    from fire_rl.train import mean_of

    loop = LoopState()
    values = torch.randn(40_000, generator=torch.Generator().manual_seed(0))
    loop.losses["losses/td_loss"] = [v.clone() for v in values]
    buffer = io.BytesIO()
    torch.save(loop.state_dict(env_snapshot=None), buffer)
    assert buffer.tell() < 400_000  # 160 kB of values; unpacked the 40k 0-d tensors took about 17 MB
    buffer.seek(0)
    restored = LoopState.from_state(torch.load(buffer, weights_only=False))
    assert len(restored.losses["losses/td_loss"]) == 40_000
    assert mean_of(restored.losses["losses/td_loss"]) == mean_of(loop.losses["losses/td_loss"])
    restored.losses["losses/td_loss"].append(torch.tensor(1.0))  # training goes on appending after a resume
    assert mean_of(restored.losses["losses/td_loss"]) == mean_of([*values, torch.tensor(1.0)])
