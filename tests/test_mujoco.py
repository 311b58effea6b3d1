"""MuJoCo task sequences on real gymnasium v5 envs: dynamics in the model, seeded draws, validation, flat replay."""

from __future__ import annotations

import json
import os
import tempfile
import xml.etree.ElementTree as ET

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from conftest import SAC_TINY, compose_cfg, run_train

from core.config import ConfigError
from core.replay import TransitionReplay
from envs.mujoco import (
    DYNAMICS,
    MujocoSettings,
    MujocoSuite,
    MujocoTask,
    draw_tasks,
    make_env,
    make_vector_env,
)
from envs.sequence import build_sequence
from fire_rl.build import build_components
from fire_rl.run_state import open_run

SETTINGS = MujocoSettings()


def task(env_id: str = "HalfCheetah-v5", **spec):
    return build_sequence([{"env_id": env_id, "steps": 10, **spec}], task_type=MujocoTask).visits[0]


def rollout(env: gym.Env, steps: int = 60, seed: int = 0) -> np.ndarray:
    """Observations under a fixed random action sequence (resetting at episode ends)."""
    obs, _ = env.reset(seed=seed)
    rng, out = np.random.default_rng(seed), [obs]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        out.append(obs)
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + 1)
    return np.array(out)


def floor_id(model) -> int:
    return mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, "floor")


# --- dynamics -------------------------------------------------------------------------------------------------


def test_each_dynamics_key_shows_in_the_model_and_survives_reset():
    base = make_env(task(), SETTINGS).unwrapped.model
    checks = {
        "gravity": (-3.0, lambda m: m.opt.gravity[2] == -3.0),
        "gravity_scale": (0.5, lambda m: np.allclose(m.opt.gravity, 0.5 * base.opt.gravity)),
        "friction_scale": (0.25, lambda m: np.allclose(m.geom_friction, 0.25 * base.geom_friction)),
        "floor_friction": (0.1, lambda m: m.geom_friction[floor_id(m), 0] == 0.1 and m.geom_priority[floor_id(m)] > 0),
        "mass_scale": (
            1.5,
            lambda m: (
                np.allclose(m.body_mass, 1.5 * base.body_mass)
                and np.allclose(m.body_inertia, 1.5 * base.body_inertia)
                and np.allclose(m.body_subtreemass, 1.5 * base.body_subtreemass)
            ),
        ),
        "damping_scale": (2.0, lambda m: np.allclose(m.dof_damping, 2.0 * base.dof_damping)),
    }
    assert set(checks) == set(DYNAMICS)
    for key, (value, holds) in checks.items():
        env = make_env(task(dynamics={key: value}), SETTINGS)
        assert holds(env.unwrapped.model), key
        rollout(env, steps=5)
        assert holds(env.unwrapped.model), f"{key} after reset"


@pytest.mark.parametrize(
    "env_id,dynamics",
    [
        ("HalfCheetah-v5", {"gravity_scale": 0.5}),
        ("HalfCheetah-v5", {"mass_scale": 1.5}),
        ("HalfCheetah-v5", {"friction_scale": 0.1}),
        ("HalfCheetah-v5", {"damping_scale": 3.0}),
        ("Ant-v5", {"floor_friction": 0.05}),
    ],
)
def test_dynamics_change_the_rollout(env_id, dynamics):
    plain = rollout(make_env(task(env_id), SETTINGS))
    changed = rollout(make_env(task(env_id, dynamics=dynamics), SETTINGS))
    np.testing.assert_array_equal(plain[0], changed[0])  # same seed, same start
    assert np.abs(plain - changed).max() > 1e-3


def test_floor_friction_is_dohare_slippery_ant_physics():
    """Oracle: Dohare et al. edit the XML's default geom friction; our floor-priority route must match it exactly."""
    source = os.path.join(os.path.dirname(gym.envs.mujoco.ant_v5.__file__), "assets", "ant.xml")
    tree = ET.parse(source)
    tree.getroot().find("default").find("geom").attrib["friction"] = "0.05 0.5 0.5"
    with tempfile.NamedTemporaryFile("w", suffix=".xml", delete=False) as f:
        tree.write(f.name)
    oracle = rollout(make_env(task("Ant-v5", xml_file=f.name), SETTINGS), steps=150)
    ours = rollout(make_env(task("Ant-v5", dynamics={"floor_friction": 0.05}), SETTINGS), steps=150)
    os.unlink(f.name)
    np.testing.assert_array_equal(ours, oracle)


def test_switching_tasks_switches_the_model():
    tasks = [{"env_id": "HalfCheetah-v5", "steps": 5, "dynamics": {"gravity": g}} for g in (-9.81, -2.0)]
    seq = build_sequence(tasks, task_type=MujocoTask)
    gravities = []
    for visit in seq.visits:
        envs = make_vector_env(visit, SETTINGS, 2)
        envs.reset(seed=0)
        gravities.append([e.unwrapped.model.opt.gravity[2] for e in envs.envs])
    assert gravities == [[-9.81, -9.81], [-2.0, -2.0]]
    assert [t.name for t in seq.visits] == ["HalfCheetah-gravity-9.81", "HalfCheetah-gravity-2"]


def test_action_repeat_sums_rewards_and_rescales_actions():
    humanoid = task("Humanoid-v5")
    repeated, plain = make_env(humanoid, MujocoSettings(action_repeat=2)), make_env(humanoid, SETTINGS)
    assert repeated.action_space.low.min() == -1.0 and repeated.unwrapped.action_space.high.max() == 0.4
    repeated.reset(seed=0), plain.reset(seed=0)
    action = np.full(17, 0.5, dtype=np.float32)
    obs, reward, *_ = repeated.step(action)
    expected = sum(plain.step(action)[1] for _ in range(2))
    assert reward == pytest.approx(expected) and np.allclose(obs, plain.unwrapped._get_obs())


# --- seeded friction draws ----------------------------------------------------------------------------------


def test_friction_draws_are_reproducible_and_log_uniform():
    spec = {"key": "floor_friction", "count": 4000, "low": 0.02, "high": 2.0, "log": True, "seed": 7}
    template = [{"env_id": "Ant-v5", "steps": 10}]
    values = [t["dynamics"]["floor_friction"] for t in draw_tasks(template, spec)]
    assert values == [t["dynamics"]["floor_friction"] for t in draw_tasks(template, spec)]
    assert values != [t["dynamics"]["floor_friction"] for t in draw_tasks(template, {**spec, "seed": 8})]
    assert 0.02 <= min(values) and max(values) <= 2.0
    decades = np.histogram(np.log10(values), bins=2, range=(np.log10(0.02), np.log10(2.0)))[0]
    assert abs(decades[0] - decades[1]) < 0.1 * len(values)  # log-uniform: each decade holds half


def test_slippery_ant_frictions_do_not_depend_on_the_run_seed(tmp_path):
    frictions = []
    for seed in (0, 3):
        cfg = compose_cfg(["+experiment=slippery_ant", f"seed={seed}"])
        (tmp_path / str(seed)).mkdir()
        run, _ = open_run(build_components(cfg, tmp_path / str(seed)))
        run.close()
        frictions.append([t.dynamics["floor_friction"] for t in run.sequence.visits])
        record = json.loads((tmp_path / str(seed) / "env.json").read_text())
        assert [t["dynamics_in_force"]["floor_friction"] for t in record["tasks"]] == frictions[-1]
    assert frictions[0] == frictions[1] and len(set(frictions[0])) == 10
    assert run.sequence.total_steps == 20_000_000


# --- bad input, refused before training -------------------------------------------------------------------------

SAC = ["agent=sac", "env=halfcheetah_gravity"]
BAD = {
    "unknown dynamics key": (["+env.tasks.0.dynamics.viscosity=2"], "valid keys: floor_friction, friction_scale"),
    "zero friction scale": (["+env.tasks.1.dynamics.friction_scale=0"], "friction_scale must be positive"),
    "negative mass scale": (["+env.tasks.1.dynamics.mass_scale=-1.5"], "mass_scale must be positive"),
    "negative floor friction": (["+env.tasks.1.dynamics.floor_friction=-0.1"], "floor_friction must be positive"),
    "both gravities": (["+env.tasks.1.dynamics.gravity=-3"], "not both"),
    "mixed observation shapes": (["env.tasks.1.env_id=Ant-v5"], "mixes observation"),
    "discrete env under SAC": (["env.tasks.0.env_id=CartPole-v1", "~env.tasks.0.dynamics"], "discrete action"),
    "no floor": (["env.tasks.0.env_id=InvertedPendulum-v5", "+env.tasks.0.dynamics.floor_friction=1"], "no geom"),
    "dynamics without MuJoCo": (["env.tasks.0.env_id=Pendulum-v1"], "need a MuJoCo env"),
    "bad make-kwarg": (["+env.tasks.0.forward_weight=2"], "rejects make-kwargs"),
    "unknown env id": (["env.tasks.0.env_id=HalfCheeta-v5"], "did you mean HalfCheetah-v5"),
    "SAC on Atari": (["env=atari3"], "valid choices: dqn (pairings by env.kind: atari -> dqn, mujoco -> sac"),
    "DQN on MuJoCo": (["agent=dqn"], "valid choices: sac (pairings"),
    "unknown env kind": (["env.kind=dmc"], "valid choices: atari, mujoco"),
    "bad network preset": (["agent.network=resnet"], "valid choices: mlp, simba"),
    "non-positive draw bound": (["env=slippery_ant", "env.draws.low=0"], "0 < low <= high"),
    "Atari setting on MuJoCo": (["+env.settings.frame_skip=4"], "valid keys for mujoco: action_repeat"),
    # A strategy needing a capability the agent lacks is refused at build, naming both.
    "ReDo under SimBa": (["agent=sac_simba", "+reset=redo"], "SimBa's residual blocks are not a feed-forward chain"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_mujoco_input_is_refused_before_training(name, tmp_path):
    overrides, expected = BAD[name]
    with pytest.raises(ConfigError) as err:
        build_components(compose_cfg(SAC + overrides), tmp_path)
    assert expected in str(err.value)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_dynamics_on_an_atari_task_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="only MuJoCo task sequences"):
        build_components(compose_cfg(["+env.tasks.0.dynamics.gravity=-1"]), tmp_path)


def test_dynamics_draws_outside_mujoco_are_refused_naming_the_valid_keys(tmp_path):
    """Only the MuJoCo suite takes env.draws; another family's suite refuses it (and any other stray env key)."""
    draws = "+env.draws={key: floor_friction, low: 0.1, high: 1.0, count: 2, seed: 0}"
    with pytest.raises(ConfigError, match="env.draws is not a setting of env.kind minatar sequences; valid keys: kind"):
        build_components(compose_cfg(["env=minatar3", "agent=dqn_minatar", draws]), tmp_path)
    with pytest.raises(ConfigError, match="env.cycle is not a setting of env.kind atari"):
        build_components(compose_cfg(["+env.cycle=2"]), tmp_path)


def test_humanoid_bench_ids_say_how_to_install():
    try:
        import humanoid_bench  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match="not on PyPI.*git"):
            MujocoSuite({"tasks": [{"env_id": "h1-walk-v0", "steps": 10}]}).spaces()
    else:
        assert MujocoSuite({"tasks": [{"env_id": "h1-walk-v0", "steps": 10}]}).spaces()


# --- flat replay on a real env ------------------------------------------------------------------------------


def drive(replay: TransitionReplay, steps: int, seed: int = 0) -> dict[bytes, dict]:
    """Hopper (terminations) with a short time limit (truncations), 2 envs; returns every real transition by obs."""
    envs = make_vector_env(task("Hopper-v5"), MujocoSettings(max_episode_steps=12), 2)
    obs, _ = envs.reset(seed=seed)
    replay.start(obs)
    rng, records, done = np.random.default_rng(seed), {}, np.zeros(2, dtype=bool)
    for _ in range(steps):
        actions = rng.uniform(-1, 1, (2, 3)).astype(np.float32)
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        replay.add(actions, rewards, terminated, truncated, next_obs)
        for e in np.flatnonzero(~done):  # the step after an episode end is the autoreset step
            records[obs[e].astype(np.float32).tobytes()] = dict(
                action=actions[e], reward=rewards[e], terminated=terminated[e], next_obs=next_obs[e]
            )
        obs, done = next_obs, terminated | truncated
    return records


def check_batch(batch: dict, records: dict) -> None:
    for i in range(len(batch["obs"])):
        rec = records[batch["obs"][i].tobytes()]
        np.testing.assert_array_equal(batch["actions"][i], rec["action"])
        np.testing.assert_allclose(batch["next_obs"][i], rec["next_obs"].astype(np.float32))
        assert batch["rewards"][i] == np.float32(rec["reward"]) and batch["terminated"][i] == rec["terminated"]


def test_transition_replay_matches_the_real_env_across_autoreset():
    replay = TransitionReplay(1_000, 2, (11,), (3,), seed=0)
    records = drive(replay, 80)
    assert len(replay) == len(records)
    batch = replay.sample(500)
    check_batch(batch, records)
    assert batch["terminated"].any() and not batch["terminated"].all()
    assert batch["obs"].dtype == np.float32 and batch["actions"].shape == (500, 3)


def test_transition_replay_wraps_and_round_trips():
    replay = TransitionReplay(40, 2, (11,), (3,), seed=1)
    records = drive(replay, 90)
    assert replay.full and len(replay) <= 19 * 2
    check_batch(replay.sample(300), records)
    other = TransitionReplay(40, 2, (11,), (3,), seed=1)
    other.load_state_dict({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in replay.state_dict().items()})
    assert len(other) == len(replay) and other.nbytes == replay.nbytes
    a, b = replay.sample(64), other.sample(64)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_array_equal(replay.sample_obs(8), other.sample_obs(8))


# --- the real command ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_slippery_ant_command_produces_run_directory(tmp_path):
    tiny = [
        "env.tasks.0.steps=300",
        "env.draws.count=3",
        "agent.learning_starts=100",
        "loop.buffer_size=2000",
        "loop.batch_size=32",
        "eval_every=300",
        "eval_max_episode_steps=40",
        "metrics_every=150",
        "metrics_probe_size=32",
        "log_every=100",
    ]
    result = run_train("+experiment=slippery_ant", "+reset=fire", *tiny, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("config.yaml", "env.json", "metrics.jsonl", "returns.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    switches = [row for row in rows if row["event"] == "switch"]
    frictions = [row["task/floor_friction"] for row in switches]
    assert len(set(frictions)) == 3 and [row["step"] for row in switches] == [0, 300, 600]
    assert all(row["task"] == f"Ant-floor_friction{f:.4g}" for row, f in zip(switches, frictions, strict=True))
    resets = [row for row in rows if row["event"] == "reset"]
    assert [row["step"] for row in resets] == [300, 600]
    assert "critic/q1.out" in resets[0]["layers"] and "actor/mean" in resets[0]["layers"]
    assert json.loads((tmp_path / "resolved.json").read_text())["reset"]["policy"] == "project_all"
    assert "policy: agent" in (tmp_path / "config.yaml").read_text()  # the config stays as composed
    final_eval = [row for row in rows if row["event"] == "eval"][-1]
    assert {f"eval/{row['task']}/return" for row in switches} <= set(final_eval)
    trains = [row for row in rows if row["event"] == "train" and row["losses/critic"] is not None]
    assert trains and all(np.isfinite(row["losses/actor"]) for row in trains)
    assert {"plasticity/actor/dormant_0.1/fc1", "plasticity/critic/srank/q2.fc2"} <= {
        key for row in rows if row["event"] == "plasticity" for key in row
    }


# --- observation offsets (C-CHAIN's continual gym-control levels) -------------------------------------------------


def steps_of(env: gym.Env, steps: int = 80, seed: int = 0) -> list[tuple]:
    """(obs, reward, terminated, truncated) under a fixed random action sequence, resetting at episode ends."""
    obs, _ = env.reset(seed=seed)
    rng, out = np.random.default_rng(seed), [(obs, 0.0, False, False)]
    for _ in range(steps):
        obs, reward, terminated, truncated, _ = env.step(rng.uniform(-1, 1, env.action_space.shape))
        out.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            obs, _ = env.reset(seed=seed + 1)
            out.append((obs, 0.0, False, False))
    return out


def test_an_observation_offset_is_the_seeded_draw_added_to_every_state_and_nothing_else_changes():
    settings = MujocoSettings(max_episode_steps=30)  # episode ends inside the rollout
    shift = {"kind": "offset", "sigma": 2.0, "seed": 3}
    plain = steps_of(make_env(task(), settings))
    shifted = steps_of(make_env(task(shift=shift), settings))
    expected = (2.0 * np.random.default_rng(3).standard_normal(17)).astype(np.float32)  # the oracle: the draw itself
    for (obs, *rest), (view, *view_rest) in zip(plain, shifted, strict=True):
        assert view.dtype == np.float32
        np.testing.assert_allclose(view - obs.astype(np.float32), expected, atol=1e-5)
        assert view_rest == rest  # rewards, terminations and truncations are the env's own
    assert task(shift=shift).name == "HalfCheetah-offset2-s3"


def test_offset_levels_of_a_mujoco_task_are_recorded_and_a_permutation_is_refused():
    levels = {"env_id": "HalfCheetah-v5", "count": 3, "steps": 100, "kind": "offset", "sigma": 1.0, "seed": 5}
    suite = MujocoSuite({"levels": levels})
    visits = suite.sequence.visits
    assert [t.name for t in visits] == [f"HalfCheetah-offset1-s{5 + i}" for i in range(3)]
    assert suite.spaces().obs_shape == (17,)
    assert [t["shift"]["seed"] for t in suite.record()["tasks"]] == [5, 6, 7]
    assert suite.switch_values(visits[1], None)["task/shift_seed"] == 6
    with pytest.raises(ConfigError, match="MuJoCo observations are flat state vectors: valid kinds here: offset"):
        MujocoSuite({"levels": {**levels, "kind": "permute"}}).spaces()
    with pytest.raises(ConfigError, match="give env.levels or env.tasks, not both"):
        MujocoSuite({"levels": levels, "tasks": [{"env_id": "HalfCheetah-v5", "steps": 9}]})


@pytest.mark.slow
def test_sac_trains_through_offset_levels_with_a_reset_at_each(tmp_path):
    levels = "{env_id: HalfCheetah-v5, count: 2, steps: 150, kind: offset, sigma: 1.0, seed: 4}"
    tiny = [arg for arg in SAC_TINY if not arg.startswith("env.tasks")]
    result = run_train(*tiny, "env.tasks=null", f"+env.levels={levels}", "+reset=full", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    switches = [r for r in rows if r["event"] == "switch"]
    assert [(r["task"], r["task/shift_seed"], r["task/shift_sigma"]) for r in switches] == [
        ("HalfCheetah-offset1-s4", 4, 1.0),
        ("HalfCheetah-offset1-s5", 5, 1.0),
    ]
    assert [r["step"] for r in rows if r["event"] == "reset"] == [150] and rows[-1]["event"] == "end"
