"""SAC on real MuJoCo transitions: the update, both network presets, the paper's SAC reset semantics, the loop."""

from __future__ import annotations

import copy
import io
import json
import math

import numpy as np
import pytest
import torch
from conftest import assert_sac_compiled_losses_match, box_spaces, compose_cfg, run_train
from omegaconf import OmegaConf
from torch import nn

from agents.sac import SACAgent
from agents.simba import LAYER_NORM_EPS, RunningNorm
from core.config import ConfigError
from core.replay import TransitionReplay
from envs.mujoco import MujocoSettings, MujocoTask, make_vector_env
from envs.sequence import build_sequence
from fire_rl.build import agent_arguments, build_components
from fire_rl.metrics import plasticity_metrics
from fire_rl.resets import FIRE, FullReset, ShrinkPerturb
from fire_rl.resets.isometry import fire_project
from fire_rl.run_state import open_run

# The paper's SimBa preset at a width that keeps CPU tests fast; the structure is the same.
SMALL_SIMBA = dict(
    network="simba",
    actor_hidden=16,
    actor_blocks=1,
    critic_hidden=32,
    critic_blocks=2,
    obs_norm=True,
    init_temperature=0.01,
    target_entropy_scale=-0.5,
    weight_decay=1e-2,
    log_std_min=-10.0,
)
PRESETS = {"mlp": dict(actor_hidden=32, critic_hidden=32), "simba": SMALL_SIMBA}


@pytest.fixture(scope="module")
def replay() -> TransitionReplay:
    """A few hundred real HalfCheetah-v5 transitions under random actions."""
    task = build_sequence([{"env_id": "HalfCheetah-v5", "steps": 10}], task_type=MujocoTask).visits[0]
    envs = make_vector_env(task, MujocoSettings(), 1)
    obs, _ = envs.reset(seed=0)
    buffer, rng = TransitionReplay(1_000, 1, (17,), (6,), seed=0), np.random.default_rng(0)
    buffer.start(obs)
    for _ in range(400):
        actions = rng.uniform(-1, 1, (1, 6)).astype(np.float32)
        obs, rewards, terminated, truncated, _ = envs.step(actions)
        buffer.add(actions, rewards, terminated, truncated, obs)
    return buffer


def trained(preset: str, replay: TransitionReplay, updates: int = 5, seed: int = 0) -> SACAgent:
    agent = SACAgent(box_spaces(17, 6), seed=seed, learning_starts=0, **PRESETS[preset])
    agent.act(replay.sample_obs(64), step=0)  # feeds the observation normaliser
    for i in range(updates):
        agent.update(replay.sample(32), i)
    return agent


def test_squashed_gaussian_log_prob_matches_torch():
    agent = SACAgent(box_spaces(17, 6), seed=0)
    obs = torch.randn(64, 17)
    torch.manual_seed(1)
    action, log_prob = agent.actor.sample(obs)
    mean, log_std, _ = agent.actor(obs)
    oracle = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.exp()), [torch.distributions.TanhTransform()]
    )
    clipped = action.clamp(-1 + 1e-6, 1 - 1e-6)
    np.testing.assert_allclose(log_prob.detach(), oracle.log_prob(clipped).sum(-1).detach(), rtol=1e-3, atol=1e-2)
    assert ((-5 <= log_std) & (log_std <= 2)).all()


def test_act_random_then_sampled_and_deterministic_for_evaluation(replay):
    agent = SACAgent(box_spaces(17, 6), seed=0, learning_starts=100)
    obs = replay.sample_obs(8)
    early = agent.act(obs, step=50)
    assert early.shape == (8, 6) and early.dtype == np.float32 and np.abs(early).max() <= 1.0
    assert not np.allclose(early, agent.act(obs, step=50))  # uniform random, fresh each call
    sampled, greedy = agent.act(obs, step=200), agent.act(obs, step=200, explore=False)
    np.testing.assert_array_equal(greedy, agent.act(obs, step=200, explore=False))
    mean = agent.actor(agent.obs_norm(torch.as_tensor(obs)))[0]
    np.testing.assert_allclose(greedy, torch.tanh(mean).detach().numpy(), rtol=1e-6)
    assert not np.allclose(sampled, greedy)


@pytest.mark.parametrize("preset", PRESETS)
def test_updates_move_losses_and_keep_them_finite(preset, replay):
    agent = trained(preset, replay, updates=0)
    batch = replay.sample(64)
    before = {k: v.item() for k, v in agent.losses(batch).items()}
    actor_before = [p.detach().clone() for p in agent.actor.parameters()]
    logs = [agent.update(replay.sample(64), step) for step in range(40)]
    after = {k: v.item() for k, v in agent.losses(batch).items()}
    assert set(logs[0]) == {"losses/actor", "losses/critic", "losses/temperature", "losses/alpha", "losses/entropy"}
    assert all(math.isfinite(v) for row in logs for v in row.values())
    assert after["critic"] < before["critic"] and after["actor"] != before["actor"]
    assert logs[-1]["losses/alpha"] != logs[0]["losses/alpha"]
    assert all(not torch.equal(a, b) for a, b in zip(actor_before, agent.actor.parameters(), strict=True))


def test_target_critic_follows_by_polyak(replay):
    agent = trained("mlp", replay, updates=2)
    old_target = [p.clone() for p in agent.target.parameters()]
    agent.update(replay.sample(32), 3)
    for old, new, online in zip(old_target, agent.target.parameters(), agent.critic.parameters(), strict=True):
        torch.testing.assert_close(new, (1 - agent.tau) * old + agent.tau * online)


def test_losses_are_differentiable_for_dash(replay):
    agent = trained("simba", replay, updates=0)
    losses = agent.losses(replay.sample(32))
    assert set(losses) == {"actor", "critic"}
    grads = torch.autograd.grad(losses["critic"], list(agent.critic.parameters()), allow_unused=True)
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    grads = torch.autograd.grad(losses["actor"], list(agent.actor.parameters()))
    assert all(torch.isfinite(g).all() for g in grads)


@pytest.mark.slow
def test_compiled_losses_equal_eager_on_cpu(replay):
    with torch._inductor.config.patch(fallback_random=True):  # compiled graphs draw from torch's generator too
        agent = SACAgent(box_spaces(), seed=0, learning_starts=0, compile="compile")
        for step in range(2):
            assert_sac_compiled_losses_match(agent, replay.sample(32))
            agent.update(replay.sample(32), step)


# --- the paper's SAC reset semantics (docs/paper-notes.md §1.6 and 2.2) -----------------------------------------------


def snapshot(agent: SACAgent) -> dict:
    return {
        "state": {net: {k: v.clone() for k, v in m.state_dict().items()} for net, (m, _) in agent.networks().items()},
        "optimizers": [agent.actor_opt, agent.critic_opt, agent.temperature_opt],
        "obs_norm": {k: v.clone() for k, v in agent.obs_norm.state_dict().items()},
    }


def modules(agent: SACAgent, kind: type) -> list[tuple[str, str, nn.Module]]:
    return [
        (net, name, m)
        for net, (mod, _) in agent.networks().items()
        for name, m in mod.named_modules()
        if isinstance(m, kind)
    ]


def check_sac_semantics(agent: SACAgent, before: dict) -> None:
    """A fresh AdamW state for actor, critic and temperature (written in place: every moment 0, step 0); alpha
    back to its initial value; target = critic."""
    for old, new in zip(before["optimizers"], agent.optimizers, strict=True):
        assert new is old and type(new) is torch.optim.AdamW and len(new.state) > 0
        for state in new.state.values():
            assert all(not value.any() for value in state.values())
    assert agent.alpha == pytest.approx(agent.init_temperature)
    for key, value in agent.critic.state_dict().items():
        torch.testing.assert_close(agent.target.state_dict()[key], value)
    for key, value in before["obs_norm"].items():  # the paper keeps the observation normaliser
        torch.testing.assert_close(agent.obs_norm.state_dict()[key], value)


@pytest.mark.parametrize("preset", PRESETS)
def test_fire_projects_every_dense_kernel_and_keeps_biases_and_layernorm(preset, replay):
    agent = trained(preset, replay)
    before = snapshot(agent)
    assert agent.alpha != agent.init_temperature and len(agent.critic_opt.state) > 0
    FIRE(policy="project_all").apply(agent, step=100)
    check_sac_semantics(agent, before)
    for net, name, layer in modules(agent, nn.Linear):
        old = before["state"][net]
        torch.testing.assert_close(layer.weight, fire_project(old[f"{name}.weight"]))
        torch.testing.assert_close(layer.bias, old[f"{name}.bias"])
    for net, name, norm in modules(agent, nn.LayerNorm):
        for key in ("weight", "bias"):
            torch.testing.assert_close(getattr(norm, key), before["state"][net][f"{name}.{key}"])


@pytest.mark.parametrize("preset", PRESETS)
def test_shrink_perturb_interpolates_dense_layers_toward_theta0(preset, replay):
    agent = trained(preset, replay)
    before, theta0 = snapshot(agent), agent.initial_params()
    ShrinkPerturb(c=0.8).apply(agent, step=100)
    check_sac_semantics(agent, before)
    for net, name, layer in modules(agent, nn.Linear):
        for key in ("weight", "bias"):
            expected = 0.2 * before["state"][net][f"{name}.{key}"] + 0.8 * theta0[net][f"{name}.{key}"]
            torch.testing.assert_close(getattr(layer, key), expected)


@pytest.mark.parametrize("preset", PRESETS)
def test_full_reset_returns_dense_layers_to_theta0(preset, replay):
    agent = trained(preset, replay)
    before, theta0 = snapshot(agent), agent.initial_params()
    FullReset().apply(agent, step=100)
    check_sac_semantics(agent, before)
    for net, name, layer in modules(agent, nn.Linear):
        torch.testing.assert_close(layer.weight, theta0[net][f"{name}.weight"])


def test_shrink_perturb_interpolates_layernorm_too(replay):
    """The paper's SAC S&P moves EVERY parameter, LayerNorm scale and bias included, 80% toward theta0."""
    agent = trained("simba", replay, updates=20)
    before, theta0 = snapshot(agent), agent.initial_params()
    ShrinkPerturb(c=0.8).apply(agent, step=100)
    for net, name, norm in modules(agent, nn.LayerNorm):
        for key in ("weight", "bias"):
            expected = 0.2 * before["state"][net][f"{name}.{key}"] + 0.8 * theta0[net][f"{name}.{key}"]
            torch.testing.assert_close(getattr(norm, key), expected)


def test_full_reset_returns_layernorm_to_theta0(replay):
    """The paper's full reset rebuilds the whole network: LayerNorm back to ones and zeros as well."""
    agent = trained("simba", replay, updates=20)
    FullReset().apply(agent, step=100)
    for net, name, norm in modules(agent, nn.LayerNorm):
        for key in ("weight", "bias"):
            torch.testing.assert_close(getattr(norm, key), agent.initial_params()[net][f"{name}.{key}"])


def test_loop_gives_sac_the_paper_sac_reset_modes(tmp_path):
    """policy: agent becomes the paper's SAC form; it and the preset's reset step are recorded in resolved.json,
    while config.yaml stays exactly what Hydra composed."""
    base = ["+experiment=paper_sac"]
    for reset, policy in (("fire", "project_all"), ("shrink_perturb", "all")):
        cfg = compose_cfg([*base, f"+reset={reset}", "reset.at_steps=[7]"])
        run, _ = open_run(build_components(cfg, tmp_path))
        run.close()
        assert run.reset.policy_in_force == policy and run.reset.schedule.at_steps == (7, 500_000)
        resolved = json.loads((tmp_path / "resolved.json").read_text())["reset"]
        assert resolved["policy"] == policy and resolved["at_steps"] == [7, 500_000]
        assert resolved["optimizer"] == "clear_all"
        written = (tmp_path / "config.yaml").read_text()
        assert "policy: agent" in written and written == OmegaConf.to_yaml(cfg, resolve=True)
    assert run.agent.alpha == pytest.approx(0.01)
    assert run.suite.steps_per_act == 2 and run.cfg.loop.updates_per_env_step == 1.0


def test_paper_dqn_policy_is_refused_for_sac(tmp_path):
    cfg = compose_cfg(["+experiment=paper_sac", "+reset=fire", "reset.policy=paper_dqn"])
    with pytest.raises(ConfigError, match="SACAgent's paper form is project_all"):
        build_components(cfg, tmp_path)


# --- networks, probes, checkpoints ----------------------------------------------------------------------------


def test_simba_preset_is_the_papers_architecture_and_optimizer():
    cfg = compose_cfg(["agent=sac_simba", "env=halfcheetah_gravity"])
    agent = SACAgent(box_spaces(17, 6), **agent_arguments(cfg.agent))
    assert [m.out_features for m in agent.actor.encoder.modules() if isinstance(m, nn.Linear)] == [128, 512, 128]
    assert len(agent.critic.q1.encoder.blocks) == 2 and agent.critic.q1.encoder.blocks[0].fc1.out_features == 2048
    assert all(m.eps == LAYER_NORM_EPS for m in agent.critic.modules() if isinstance(m, nn.LayerNorm))
    torch.testing.assert_close(agent.critic.q1.out.weight @ agent.critic.q1.out.weight.T, torch.eye(1))
    assert agent.alpha == pytest.approx(0.01) and agent.target_entropy == -3.0 and agent.obs_norm.enabled
    for opt, wd in ((agent.actor_opt, 1e-2), (agent.critic_opt, 1e-2), (agent.temperature_opt, 0.0)):
        assert opt.defaults["lr"] == 1e-4 and opt.defaults["weight_decay"] == wd


def test_running_norm_matches_numpy():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(300, 5))
    norm = RunningNorm(5)
    for chunk in np.array_split(data, 7):
        norm.update(torch.as_tensor(chunk))
    np.testing.assert_allclose(norm.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.var, data.var(0), rtol=1e-3)
    out = norm(torch.as_tensor(data, dtype=torch.float32))
    np.testing.assert_allclose(out.mean(0), 0, atol=1e-3) and np.testing.assert_allclose(out.std(0), 1, rtol=1e-2)


@pytest.mark.parametrize("preset", PRESETS)
def test_probe_covers_actor_and_critic_on_normalised_obs(preset, replay):
    agent = trained(preset, replay)
    obs = replay.sample_obs(32)
    probes = agent.probe(obs)
    actor_features, critic_features = probes["actor"][0], probes["critic"][0]
    if preset == "simba":  # docs/paper-notes.md §5.2 and §7.17: the input Dense sees normalised observations
        expected = agent.actor.encoder.input(agent.obs_norm(torch.as_tensor(obs)))
        torch.testing.assert_close(actor_features["input"], expected)
        assert list(actor_features) == ["input", "block1", "out_norm"]
    assert {k.split(".")[0] for k in critic_features} == {"q1", "q2"}
    for net, (features, weights) in probes.items():
        values = plasticity_metrics(net, features, weights)
        assert all(math.isfinite(v) for v in values.values())


def test_state_dict_round_trip_acts_and_learns_identically(replay):
    agent, other = (
        trained("simba", replay, seed=0),
        SACAgent(box_spaces(17, 6), seed=1, learning_starts=0, **SMALL_SIMBA),
    )
    other.load_state_dict(copy.deepcopy(agent.state_dict()))  # as from disk: no tensors shared
    obs = replay.sample_obs(8)
    np.testing.assert_array_equal(agent.act(obs, 10, explore=False), other.act(obs, 10, explore=False))
    batch = replay.sample(32)
    torch.manual_seed(5)
    a = agent.update(batch, 10)
    torch.manual_seed(5)
    assert other.update(batch, 10) == a


# --- real runs ----------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_paper_sac_intervenes_once_at_the_midpoint_with_action_repeat(tmp_path):
    tiny = [
        "env.tasks.0.steps=200",
        "reset_at_steps=[100]",
        "agent.learning_starts=40",
        "loop.batch_size=16",
        "agent.critic_hidden=32",
        "agent.actor_hidden=16",
        "eval_every=200",
        "eval_episodes=1",
        "eval_max_episode_steps=20",
        "metrics_every=100",
        "metrics_probe_size=16",
        "log_every=50",
    ]
    result = run_train("+experiment=paper_sac", "+reset=full", *tiny, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows if row["event"] == "reset"] == [100]
    assert [row["step"] for row in rows if row["event"] == "switch"] == [0]
    assert all(row["step"] % 2 == 0 for row in rows)  # action repeat 2: every agent decision is 2 env steps
    assert "eval/Humanoid/return" in [row for row in rows if row["event"] == "eval"][-1]


@pytest.mark.slow
def test_sac_learns_pendulum(tmp_path):
    """A learning check, not a unit test: about a minute of CPU."""
    overrides = [
        "agent=sac",
        "env=halfcheetah_gravity",
        "env.tasks=[{env_id:Pendulum-v1,steps:4000}]",
        "env.cycles=1",
        "env.settings.max_episode_steps=200",
        "agent.learning_starts=1000",
        "eval_every=1000",
        "eval_episodes=3",
        "eval_max_episode_steps=200",
        "metrics_every=4000",
        "log_every=1000",
    ]
    result = run_train(*overrides, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    returns = [row["eval/Pendulum/return"] for row in rows if row["event"] == "eval"]
    assert returns[-1] > returns[0] + 500 and returns[-1] > -700, returns


# --- plasticity injection (fire_rl's SAC form) ----------------------------------------------------------------------


@pytest.mark.parametrize("preset", PRESETS)
def test_sac_injection_keeps_q_and_trains_only_the_new_heads(preset, replay):
    from fire_rl.resets import PlasticityInjection

    agent = trained(preset, replay)
    batch = replay.sample(32)
    obs, actions = (torch.as_tensor(batch[k], dtype=torch.float32) for k in ("obs", "actions"))
    obs = agent.obs_norm(obs)
    q_before = [q.detach() for q in agent.critic(obs, actions)]
    actor_before = {k: v.clone() for k, v in agent.actor.state_dict().items()}
    report = PlasticityInjection().apply(agent, step=100, sample_batch=lambda: batch)
    assert agent.injected and report.logs["reset/injected"] == 1
    for before, after in zip(q_before, agent.critic(obs, actions), strict=True):
        assert torch.equal(before, after.detach())  # old + (new - ref): exactly unchanged
    theta0 = agent.initial_params()["critic"]
    assert all(torch.equal(v, theta0[k]) for k, v in agent.critic.state_dict().items() if k[:2] in ("q1", "q2"))
    assert all(torch.equal(v, actor_before[k]) for k, v in agent.actor.state_dict().items())  # actor not injected
    trainable = {id(p) for p in agent.critic.parameters() if p.requires_grad}
    assert {id(p) for g in agent.critic_opt.param_groups for p in g["params"]} == trainable
    assert agent.alpha == pytest.approx(agent.init_temperature)  # the paper's SAC semantics after a reset
    for k, v in agent.critic.state_dict().items():
        torch.testing.assert_close(agent.target.state_dict()[k], v)
    frozen = {k: v.clone() for k, v in agent.critic.state_dict().items() if k.startswith(("old.", "ref."))}
    for step in range(3):
        agent.update(replay.sample(32), step=101 + step)
    assert all(torch.equal(agent.critic.state_dict()[k], v) for k, v in frozen.items())
    assert PlasticityInjection().apply(agent, step=200).logs["reset/skipped"] == 1
    clone = SACAgent(box_spaces(17, 6), seed=1, learning_starts=0, **PRESETS[preset])
    buffer = io.BytesIO()
    torch.save(agent.state_dict(), buffer)
    buffer.seek(0)
    clone.load_state_dict(torch.load(buffer, weights_only=False))
    assert clone.injected and torch.equal(clone.critic(obs, actions)[0], agent.critic(obs, actions)[0])
