"""The MinAtar family on the real games: padding, action set, seeding, time limits, exact snapshots, bad input, the
MinAtar network under every reset strategy and metric, and a learning check (slow)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import compose_cfg, run_train
from test_resets import conv_oracle

from agents.dqn import DQNAgent
from core.config import ConfigError
from core.spaces import Spaces
from envs import minatar
from envs.minatar import GAMES, MinatarEnv, MinatarSettings, MinatarSuite, make_env
from envs.sequence import build_sequence
from fire_rl.build import agent_arguments, build_components
from fire_rl.checkpoint import load_tree, save_tree
from fire_rl.metrics import plasticity_metrics
from fire_rl.resets import DASH, FIRE, FullReset, PlasticityInjection, ReDo, ShrinkPerturb
from fire_rl.resets.isometry import deviation_from_isometry

minatar_package = pytest.importorskip("minatar")
SPACES = Spaces.discrete_actions((10, 10, 10), 6)


def task(env_id: str = "MinAtar/Breakout-v0"):
    return build_sequence([{"env_id": env_id, "steps": 10}]).visits[0]


def suite(*games: str, **settings) -> MinatarSuite:
    return MinatarSuite({"kind": "minatar", "tasks": [{"env_id": g, "steps": 10} for g in games], "settings": settings})


# --- the env ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", list(GAMES))
def test_observations_are_the_games_channels_first_and_zero_padded_to_ten(env_id):
    env = MinatarEnv(GAMES[env_id])
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        obs, *_ = env.step(env.action_space.sample())
    native = env.game.state()  # (10, 10, C) bool, the package's own
    channels = native.shape[2]
    assert obs.shape == (10, 10, 10) and obs.dtype == np.uint8 and env.action_space.n == 6
    assert np.array_equal(obs[:channels], native.transpose(2, 0, 1).astype(np.uint8))
    assert not obs[channels:].any()


def test_every_game_takes_the_full_action_set():
    # The package maps our action index straight to its own 6 actions (no minimal-set remapping).
    assert {MinatarEnv(g).action_space.n for g in GAMES.values()} == {6}
    assert suite(*GAMES).spaces() == SPACES


def test_seeds_reach_the_env_and_make_rollouts_reproducible():
    def rollout(seed: int) -> list[float]:
        env, out = make_env(task("MinAtar/SpaceInvaders-v0"), MinatarSettings()), []
        obs, _ = env.reset(seed=seed)
        rng = np.random.default_rng(0)
        for _ in range(200):
            obs, reward, terminated, truncated, _ = env.step(int(rng.integers(6)))
            out.append(float(obs.sum()) + reward)
            if terminated or truncated:
                obs, _ = env.reset()
        return out

    assert rollout(3) == rollout(3) and rollout(3) != rollout(4)


def test_episode_cap_truncates_and_freeways_own_end_is_a_truncation():
    env = make_env(task("MinAtar/Seaquest-v0"), MinatarSettings(max_episode_steps=50))
    env.reset(seed=0)
    ends = [env.step(0)[2:4] for _ in range(50)]  # no-op: the sub stays at the surface, nothing ends the game
    assert ends[-1] == (False, True) and not any(t or u for t, u in ends[:-1])
    freeway = make_env(task("MinAtar/Freeway-v0"), MinatarSettings())
    freeway.reset(seed=0)
    steps, (terminated, truncated) = 1, freeway.step(0)[2:4]
    while not (terminated or truncated):
        terminated, truncated = freeway.step(0)[2:4]
        steps += 1
    assert (steps, terminated, truncated) == (2501, False, True)  # the game's 2,500-step clock: bootstrapped


def test_sticky_actions_and_ramping_are_settings_recorded_in_env_json():
    record = suite("MinAtar/Asterix-v0", sticky_action_prob=0.0, difficulty_ramping=False).record()
    assert record["kind"] == "minatar" and record["settings"]["sticky_action_prob"] == 0.0
    assert record["settings"]["difficulty_ramping"] is False and record["minatar_version"]
    env = make_env(task("MinAtar/Asterix-v0"), MinatarSettings(sticky_action_prob=0.0, difficulty_ramping=False))
    assert env.unwrapped.game.sticky_action_prob == 0.0 and env.unwrapped.game.env.ramping is False
    assert record["tasks"][0]["native_channels"] == 4 and record["tasks"][0]["padded_to"] == 10
    freeway = suite("MinAtar/Freeway-v0").record()["tasks"][0]
    assert "truncation" in freeway["time_limit"]


def test_snapshot_through_a_checkpoint_file_continues_exactly(tmp_path):
    envs = suite("MinAtar/Seaquest-v0").make_vector_env(task("MinAtar/Seaquest-v0"), 2)
    envs.reset(seed=5)
    actions = [envs.action_space.sample() for _ in range(60)]
    for a in actions[:20]:
        envs.step(a)
    save_tree(suite("MinAtar/Seaquest-v0").snapshot(envs), tmp_path / "envs.pt")
    expected = [envs.step(a)[:4] for a in actions[20:]]
    fresh = suite("MinAtar/Seaquest-v0").make_vector_env(task("MinAtar/Seaquest-v0"), 2)
    suite("MinAtar/Seaquest-v0").restore(fresh, load_tree(tmp_path / "envs.pt"))
    assert fresh.envs[0].unwrapped.game.random is fresh.envs[0].unwrapped.game.env.random  # one shared RNG again
    for a, want in zip(actions[20:], expected, strict=True):
        got = fresh.step(a)[:4]
        assert all(np.array_equal(x, y) for x, y in zip(got, want, strict=True))


# --- bad input ----------------------------------------------------------------------------------------------------

MINATAR = ["env=minatar3", "agent=dqn_minatar"]
BAD = {
    "unknown game": (["env.tasks.0.env_id=MinAtar/SpaceInvader-v0"], "did you mean MinAtar/SpaceInvaders-v0"),
    "sticky probability": (["env.settings.sticky_action_prob=1.5"], "sticky_action_prob must be in [0, 1]"),
    "a mode": (["+env.tasks.0.mode=2"], "MinAtar tasks take no options ['mode']"),
    "MinAtar task in an Atari sequence": (
        ["env=atari3", "agent=dqn", "env.tasks.1.env_id=MinAtar/Breakout-v0"],
        "is a MinAtar game, not an ALE one",
    ),
    "Nature CNN on MinAtar": (["agent=dqn"], "agent.network nature expects observations (channels, 84, 84)"),
    "unknown optimizer": (["agent.optimizer=sgd"], "valid choices: adam, rmsprop_centered"),
}


@pytest.mark.parametrize("name", BAD)
def test_bad_minatar_input_is_refused_before_training(name, tmp_path):
    overrides, expected = BAD[name]
    with pytest.raises(ConfigError) as err:
        build_components(compose_cfg(MINATAR + overrides), tmp_path)
    assert expected in str(err.value)
    assert not (tmp_path / "metrics.jsonl").exists()


def test_a_missing_minatar_package_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_minatar(name, *args, **kwargs):
        if name == "minatar" or name.startswith("minatar."):
            raise ImportError("No module named 'minatar'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_minatar)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[minatar\]"'):
        suite("MinAtar/Breakout-v0").spaces()


# --- the MinAtar network under every reset strategy and metric ----------------------------------------------------


def minatar_batch(n: int = 32, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "obs": (rng.random((n, 10, 10, 10)) < 0.1).astype(np.uint8),
        "next_obs": (rng.random((n, 10, 10, 10)) < 0.1).astype(np.uint8),
        "actions": rng.integers(0, 6, n),
        "rewards": rng.integers(0, 2, n).astype(np.float32),
        "terminated": (rng.random(n) < 0.1).astype(np.float32),
    }


def preset_agent(**overrides) -> DQNAgent:
    cfg = compose_cfg(["env=minatar3", "agent=dqn_minatar"])
    return DQNAgent(SPACES, **{**agent_arguments(cfg.agent), **overrides})


def trained_minatar_agent(updates: int = 5) -> DQNAgent:
    agent = preset_agent(learning_starts=0)
    for i in range(updates):
        agent.update(minatar_batch(seed=i), step=i)
    return agent


def test_the_reference_experiment_composes_continual_and_single_task_runs():
    continual = compose_cfg(["+experiment=minatar_continual"])
    steps = [(t.env_id, t.steps) for t in continual.env.tasks]
    assert steps == [(f"MinAtar/{g}-v0", 50_000) for g in ("SpaceInvaders", "Asterix", "Seaquest")]
    assert continual.agent.network == "minatar" and continual.torch_threads == 1
    alone = compose_cfg(["+experiment=minatar_continual", "env=minatar_asterix"])  # the from-scratch yardstick
    assert [(t.env_id, t.steps) for t in alone.env.tasks] == [("MinAtar/Asterix-v0", 50_000)]


def test_the_preset_is_the_minatar_papers_network_and_optimizer():
    agent = preset_agent()
    shapes = [tuple(p.shape) for p in agent.q.parameters()]
    assert shapes == [(16, 10, 3, 3), (16,), (128, 16 * 8 * 8), (128,), (6, 128), (6,)]
    opt = agent.optimizer
    assert isinstance(opt, torch.optim.RMSprop) and opt.defaults["centered"]
    assert (opt.defaults["lr"], opt.defaults["alpha"], opt.defaults["eps"]) == (2.5e-4, 0.95, 0.01)
    assert agent.target_update_every == 1000 and agent.epsilon(5_000) == 1.0 and agent.epsilon(105_000) == 0.1
    assert agent.epsilon(55_000) == pytest.approx(0.55)


def test_fire_paper_form_on_the_minatar_network():
    agent = trained_minatar_agent()
    before = {k: v.clone() for k, v in agent.q.state_dict().items()}
    report = FIRE().apply(agent, step=10)
    conv = agent.q.conv1.weight.detach().double().numpy()
    np.testing.assert_allclose(conv, conv_oracle(before["conv1.weight"].double().numpy()), atol=1e-5)
    assert torch.equal(agent.q.conv1.bias, before["conv1.bias"])
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        assert torch.equal(agent.q.state_dict()[name], agent.theta0[name])
    assert report.touched == ["q/conv1", "q/fc1", "q/fc2"]
    assert report.logs["reset/q/conv1/dfi_after"] == pytest.approx(deviation_from_isometry(agent.q.conv1.weight))


def test_shrink_perturb_and_full_reset_on_the_minatar_network():
    agent = trained_minatar_agent()
    before = {k: v.clone() for k, v in agent.q.state_dict().items()}
    ShrinkPerturb().apply(agent, step=10)  # the DQN paper form: conv interpolated, linear layers back to theta0
    expected = 0.2 * before["conv1.weight"] + 0.8 * agent.theta0["conv1.weight"]
    torch.testing.assert_close(agent.q.conv1.weight.detach(), expected)
    assert torch.equal(agent.q.fc1.weight, agent.theta0["fc1.weight"])
    FullReset().apply(agent, step=11)
    assert all(torch.equal(v, agent.theta0[k]) for k, v in agent.q.state_dict().items())


def test_dash_redo_and_injection_run_on_the_minatar_network():
    agent = trained_minatar_agent()
    batch = minatar_batch(seed=9)
    dash = DASH(num_batches=2).apply(agent, step=10, sample_batch=lambda: batch).logs
    assert all(0.05 - 1e-6 <= dash[f"reset/q/{n}/scale_mean"] <= 1.0 for n in ("conv1", "fc1", "fc2"))
    with torch.no_grad():
        agent.q.fc1.weight[7] = 0.0
        agent.q.fc1.bias[7] = -1.0  # one dead fc1 unit
    redo = ReDo(tau=0.0, num_batches=1).apply(agent, step=11, sample_batch=lambda: batch).logs
    assert redo["reset/q/fc1/units_reset"] >= 1 and torch.all(agent.q.fc2.weight[:, 7] == 0)
    obs = torch.as_tensor(batch["obs"])
    q_before = agent.q(obs).detach()
    PlasticityInjection().apply(agent, step=12, sample_batch=lambda: batch)
    assert agent.injected and torch.equal(agent.q(obs), q_before)


def test_every_plasticity_metric_on_the_minatar_network():
    agent = trained_minatar_agent()
    acts, weights = agent.probe(minatar_batch()["obs"])["q"]
    assert set(acts) == {"conv1", "fc1"} and acts["conv1"].shape == (32, 16, 8, 8)
    values = plasticity_metrics("q", acts, weights)
    for metric in ("dormant_0.1", "effective_rank", "srank", "feature_rank", "pca99_rank", "feature_norm"):
        assert math.isfinite(values[f"plasticity/q/{metric}/fc1"]), metric
    assert values["plasticity/q/weight_norm/all"] > 0


# --- real runs ----------------------------------------------------------------------------------------------------

TINY_MINATAR = [
    "env=minatar3",
    "agent=dqn_minatar",
    "+reset=fire",
    *(f"env.tasks.{i}.steps=300" for i in range(3)),
    "agent.learning_starts=100",
    "loop.buffer_size=2000",
    "eval_every=300",
    "eval_episodes=1",
    "eval_max_episode_steps=50",
    "metrics_every=150",
    "metrics_probe_size=32",
    "log_every=150",
]


@pytest.mark.slow
def test_the_minatar3_command_switches_resets_and_records(tmp_path):
    result = run_train(*TINY_MINATAR, f"hydra.run.dir={tmp_path}", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    switches = [(r["step"], r["task"]) for r in rows if r["event"] == "switch"]
    assert switches == [(0, "SpaceInvaders"), (300, "Asterix"), (600, "Seaquest")]
    resets = [r for r in rows if r["event"] == "reset"]
    assert [r["step"] for r in resets] == [300, 600] and resets[0]["layers"] == ["q/conv1", "q/fc1", "q/fc2"]
    final = [r for r in rows if r["event"] == "eval"][-1]
    assert {"eval/SpaceInvaders/return", "eval/Asterix/return", "eval/Seaquest/return"} <= set(final)
    record = json.loads((tmp_path / "env.json").read_text())
    assert record["kind"] == "minatar" and [v["name"] for v in record["sequence"]] == [n for _, n in switches]
    assert json.loads((tmp_path / "resolved.json").read_text())["reset"]["policy"] == "paper_dqn"


def random_breakout_return(episodes: int = 50) -> float:
    env, total = make_env(task(), MinatarSettings()), 0.0
    rng = np.random.default_rng(0)
    for episode in range(episodes):
        env.reset(seed=episode)
        done = False
        while not done:
            _, reward, terminated, truncated, _ = env.step(int(rng.integers(6)))
            total, done = total + reward, terminated or truncated
    return total / episodes


@pytest.mark.slow
def test_dqn_minatar_learns_breakout(tmp_path):
    """A broken learner fails here: dqn_minatar beats random play on Breakout by far within about 75 s.

    The preset's network, loss, replay and update, with a faster optimizer (Adam 1e-3, target copy every 250) and a
    short schedule so that it fits a CI minute: measured here, 4.5 and 4.7 (seeds 0 and 3) after 12k steps, random
    play 0.56; the paper's RMSprop 2.5e-4 is still near random at 15k steps.
    """
    args = [
        "env=minatar_breakout",
        "agent=dqn_minatar",
        "env.tasks.0.steps=12000",
        "agent.learning_starts=500",
        "agent.epsilon_decay_steps=5000",
        "agent.optimizer=adam",
        "agent.lr=1e-3",
        "agent.target_update_every=250",
        "eval_every=12000",
        "eval_episodes=50",
        "eval_max_episode_steps=2000",
        "metrics_every=12000",
        "log_every=4000",
        f"hydra.run.dir={tmp_path}",
    ]
    result = run_train(*args, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    learned = [r for r in rows if r["event"] == "eval"][-1]["eval/Breakout/return"]
    random = random_breakout_return()
    assert learned > max(4 * random, 2.0), (learned, random)


def test_minatar_module_names_its_license():
    assert "GPL-3.0" in minatar.__doc__
