"""Level sequences of shifted views (envs/shift.py) on the real MinAtar games: a permutation is a bijection of cells,
an offset is fixed per level, rewards, actions and episode ends pass through untouched, bad shifts are refused
before training, and a run stopped inside a level resumes on that level to the same metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import compose_cfg, run_train

from core.config import ConfigError
from envs.minatar import MinatarSuite
from envs.shift import ViewShift
from fire_rl.build import build_components

pytest.importorskip("minatar")
GAME = "MinAtar/SpaceInvaders-v0"


def levels_suite(kind: str, count: int = 3, **levels) -> MinatarSuite:
    spec = {"env_id": GAME, "count": count, "steps": 100, "kind": kind, **levels}
    return MinatarSuite({"kind": "minatar", "levels": spec})


def plain_suite() -> MinatarSuite:
    return MinatarSuite({"kind": "minatar", "tasks": [{"env_id": GAME, "steps": 100}]})


def rollout(suite: MinatarSuite, visit: int, steps: int = 1500, seed: int = 7) -> list[tuple]:
    """(obs, reward, terminated, truncated) of a seeded random-action rollout, resetting at every episode end."""
    env = suite.make_eval_env(suite.sequence.visits[visit], 10_000)
    actions = np.random.default_rng(seed).integers(0, 6, size=steps)
    obs, _ = env.reset(seed=seed)
    out = [(obs, 0.0, False, False)]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset()
            out.append((obs, 0.0, False, False))
    return out


# --- the transforms against constructed observations ------------------------------------------------------------


def test_a_permutation_is_a_bijection_of_cells_the_same_for_every_channel():
    channels, side = 10, 10
    ids = np.arange(side * side).reshape(side, side)
    obs = np.stack([ids + 1000 * c for c in range(channels)])  # every cell of every channel holds its own id
    view = ViewShift("permute", seed=3).transform(obs.shape)(obs)
    for c in range(channels):
        assert sorted(view[c].ravel()) == sorted(obs[c].ravel())  # each cell shown exactly once
        assert np.array_equal(view[c] - 1000 * c, view[0])  # the same shuffle in every channel
    assert not np.array_equal(view, obs)
    other = ViewShift("permute", seed=4).transform(obs.shape)(obs)
    assert not np.array_equal(other, view)
    assert np.array_equal(ViewShift("permute", seed=3).transform(obs.shape)(obs), view)  # the seed fixes it


def test_an_offset_is_a_fixed_draw_of_its_sigma():
    obs = np.zeros((10, 10, 10), dtype=np.uint8)
    first = ViewShift("offset", seed=3, sigma=2.0).transform(obs.shape)
    offset = first(obs)
    assert offset.dtype == np.float32 and abs(offset.std() - 2.0) < 0.15 and abs(offset.mean()) < 0.2
    ones = np.ones_like(obs)
    assert np.allclose(first(ones) - offset, 1.0)  # added, whatever the observation
    assert np.array_equal(ViewShift("offset", seed=3, sigma=2.0).transform(obs.shape)(obs), offset)
    assert not np.allclose(ViewShift("offset", seed=4, sigma=2.0).transform(obs.shape)(obs), offset)
    assert not ViewShift("offset", seed=3, sigma=0.0).transform(obs.shape)(obs).any()  # sigma 0: the plain view


# --- on the real game -------------------------------------------------------------------------------------------


def test_a_levels_block_is_one_game_with_a_shift_seed_per_level():
    suite = levels_suite("offset", count=4, sigma=2.0, seed=10)
    visits = suite.sequence.visits
    assert [t.name for t in visits] == [f"SpaceInvaders-offset2-s{10 + i}" for i in range(4)]
    assert [dict(t.shift) for t in visits] == [{"kind": "offset", "seed": 10 + i, "sigma": 2.0} for i in range(4)]
    assert suite.spaces().obs_dtype == "float32" and levels_suite("permute").spaces().obs_dtype == "uint8"
    assert [task["shift"]["seed"] for task in suite.record()["tasks"]] == [10, 11, 12, 13]


def test_an_offset_is_fixed_within_a_level_and_differs_between_levels():
    plain = rollout(plain_suite(), 0)
    suite = levels_suite("offset")
    offsets = []
    for visit in (0, 1):
        shifted = rollout(suite, visit)
        diffs = np.stack([s[0] - p[0] for s, p in zip(shifted, plain, strict=True)])
        assert np.allclose(diffs, diffs[0], atol=1e-6)  # the same offset at every step, across episode resets
        offsets.append(diffs[0])
    assert not np.allclose(offsets[0], offsets[1])


@pytest.mark.parametrize("kind", ["offset", "permute"])
def test_rewards_actions_and_episode_ends_are_the_games_own(kind):
    plain, shifted = rollout(plain_suite(), 0), rollout(levels_suite(kind), 2)
    assert len(shifted) == len(plain) and any(p[2] for p in plain)  # the same episodes, and at least one ended
    for (obs, *rest), (plain_obs, *plain_rest) in zip(shifted, plain, strict=True):
        assert rest == plain_rest
        if kind == "permute":  # the same cells, shuffled: per channel, the same count of lit cells
            assert np.array_equal(obs.reshape(10, -1).sum(1), plain_obs.reshape(10, -1).sum(1))


BAD = {
    "unknown kind": (
        {"tasks": [{"env_id": GAME, "steps": 9, "shift": {"kind": "blur", "seed": 0}}]},
        "offset, permute",
    ),
    "no seed": ({"tasks": [{"env_id": GAME, "steps": 9, "shift": {"kind": "permute"}}]}, "no 'seed'"),
    "sigma on a permutation": (
        {"tasks": [{"env_id": GAME, "steps": 9, "shift": {"kind": "permute", "seed": 0, "sigma": 1}}]},
        "unknown key 'sigma'; a permute shift takes kind, seed",
    ),
    "negative sigma": (
        {"tasks": [{"env_id": GAME, "steps": 9, "shift": {"kind": "offset", "seed": 0, "sigma": -1}}]},
        "must be non-negative, got -1",
    ),
    "an offset beside a plain view": (
        {"tasks": [{"env_id": GAME, "steps": 9, "shift": {"kind": "offset", "seed": 0}}, {"env_id": GAME, "steps": 9}]},
        "give every task of the sequence an offset (sigma: 0 for the plain view)",
    ),
    "levels and tasks": ({"tasks": [{"env_id": GAME, "steps": 9}], "levels": {"env_id": GAME}}, "not both"),
    "levels without a kind": ({"levels": {"env_id": GAME, "count": 2, "steps": 9}}, "no 'kind'"),
    "levels with an unknown key": (
        {"levels": {"env_id": GAME, "count": 2, "steps": 9, "kind": "offset", "sigmas": 2}},
        "unknown key 'sigmas'",
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_shifts_are_refused_before_training(name):
    env_cfg, expected = BAD[name]
    with pytest.raises(ConfigError) as err:
        MinatarSuite({"kind": "minatar", **env_cfg}).spaces()
    assert expected in str(err.value)


def test_a_bad_shift_on_the_command_line_is_refused_in_one_line(tmp_path):
    cfg = compose_cfg(["+experiment=minatar_levels", "env.levels.kind=blur"])
    with pytest.raises(ConfigError, match="unknown shift kind of task SpaceInvaders-blur-s0 'blur'"):
        build_components(cfg, tmp_path)
    assert not (tmp_path / "metrics.jsonl").exists()


# --- a run through the levels, stopped inside one and resumed ---------------------------------------------------

LEVELS = [
    "+experiment=minatar_levels",
    "+reset=full",
    "env.levels.count=3",
    "env.levels.steps=300",
    "agent.learning_starts=100",
    "loop.buffer_size=2000",
    "eval_every=150",
    "eval_episodes=2",
    "eval_max_episode_steps=50",
    "metrics_every=150",
    "metrics_probe_size=32",
    "log_every=150",
    "checkpoint_every=150",
]


def metric_rows(run_dir) -> list[dict]:
    volatile = {"time_s", "charts/sps", "reset/wall_time_s"}
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k not in volatile} for line in lines]


@pytest.mark.slow
def test_a_run_stopped_inside_a_level_resumes_on_that_level_to_the_same_rows(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert run_train(*LEVELS, f"hydra.run.dir={whole}").returncode == 0
    stopped = run_train(*LEVELS, "stop_at_step=450", f"hydra.run.dir={split}")
    assert stopped.returncode == 0, stopped.stderr[-2000:]
    assert [r["task"] for r in metric_rows(split) if r["event"] == "switch"][-1] == "SpaceInvaders-offset1-s1"
    resumed = run_train(*LEVELS, f"hydra.run.dir={split}")
    assert resumed.returncode == 0 and "at step 450" in resumed.stderr, resumed.stderr[-2000:]
    rows = metric_rows(whole)
    assert metric_rows(split) == rows
    # Every evaluation covers the level being trained, and only it; the full reset fires at both switches.
    evals = [r for r in rows if r["event"] == "eval"]
    assert all(list(r)[3:] == [f"eval/{r['task']}/return", f"eval/{r['task']}/return_std"] for r in evals)
    assert [r["task"] for r in evals][::2] == [f"SpaceInvaders-offset1-s{i}" for i in range(3)]
    assert [r["step"] for r in rows if r["event"] == "reset"] == [300, 600]
