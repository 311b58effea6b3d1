"""SAC (Haarnoja et al. 2018): twin critics, Polyak targets, learned temperature. Two network presets:
`mlp` (CleanRL's 2x256 ReLU trunks) and `simba` (the FIRE paper's SimBa-SAC, docs/paper-notes.md §4).

Update order follows the paper's code: actor, then temperature, then critic (with the updated actor and alpha),
then the Polyak target. Actions live in [-1, 1]^d; the env wrapper rescales them to the env's bounds.
"""

from __future__ import annotations

import copy
import functools
import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.compiled import compile_mode, maybe_compile
from agents.graphed import UpdateCapture, optimizer_tensors
from agents.protocol import Regularizer, ResetDefaults
from agents.shared import clear_optimizer_state, match_capturable, match_injection, seeded_init, to_device
from agents.simba import MLPEncoder, RunningNorm, SimbaEncoder, orthogonal_linear
from core.config import ConfigError, check_choice, check_positive
from core.spaces import Spaces

NETWORKS = ("mlp", "simba")
LOSS_KEYS = ("losses/actor", "losses/critic", "losses/temperature", "losses/alpha", "losses/entropy")


def make_encoder(network: str, in_dim: int, hidden: int, blocks: int) -> nn.Module:
    """The trunk of either preset: `blocks` hidden layers (mlp) or residual blocks (simba)."""
    return MLPEncoder(in_dim, hidden, blocks) if network == "mlp" else SimbaEncoder(in_dim, hidden, blocks)


def head(network: str, in_dim: int, out_dim: int) -> nn.Linear:
    """Output layer: SimBa initialises it orthogonally; CleanRL keeps PyTorch's default."""
    return orthogonal_linear(in_dim, out_dim) if network == "simba" else nn.Linear(in_dim, out_dim)


class Actor(nn.Module):
    """Tanh-squashed diagonal Gaussian policy; log-std squashed into [log_std_min, log_std_max]."""

    def __init__(self, network: str, obs_dim: int, action_dim: int, hidden: int, blocks: int, log_std_range):
        super().__init__()
        self.encoder = make_encoder(network, obs_dim, hidden, blocks)
        self.mean, self.log_std = head(network, hidden, action_dim), head(network, hidden, action_dim)
        self.log_std_min, self.log_std_max = log_std_range

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(mean, log_std, encoder features) of the pre-squash Gaussian."""
        features = self.encoder.features(obs)
        x = next(reversed(features.values()))
        squashed = (torch.tanh(self.log_std(x)) + 1) / 2
        return self.mean(x), self.log_std_min + (self.log_std_max - self.log_std_min) * squashed, features

    def sample(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A reparameterised action and its log-probability under the squashed Gaussian."""
        mean, log_std, _ = self(obs)
        return self.squash(mean, log_std)

    @staticmethod
    def squash(mean: torch.Tensor, log_std: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """tanh of a reparameterised draw from N(mean, exp(log_std)), and its log-probability."""
        u = mean + log_std.exp() * torch.randn_like(mean)
        # validate_args=False: the check reads a value back to the host, which a CUDA-graph capture forbids.
        log_prob = torch.distributions.Normal(mean, log_std.exp(), validate_args=False).log_prob(u)
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), stable for large |u|
        log_prob = log_prob - 2 * (math.log(2) - u - F.softplus(-2 * u))
        return torch.tanh(u), log_prob.sum(-1)


class QHead(nn.Module):
    """One Q-function: trunk on concat(obs, action), scalar output."""

    def __init__(self, network: str, in_dim: int, hidden: int, blocks: int):
        super().__init__()
        self.encoder = make_encoder(network, in_dim, hidden, blocks)
        self.out = head(network, hidden, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        features = self.encoder.features(x)
        return self.out(next(reversed(features.values()))).squeeze(-1), features


class Critic(nn.Module):
    """Twin Q-heads (clipped double-Q); both live in this one module, so resets and optimizers see them together."""

    def __init__(self, network: str, obs_dim: int, action_dim: int, hidden: int, blocks: int):
        super().__init__()
        self.q1 = QHead(network, obs_dim + action_dim, hidden, blocks)
        self.q2 = QHead(network, obs_dim + action_dim, hidden, blocks)
        # Set by plasticity injection: the frozen trained heads, and frozen copies of the new heads.
        self.old: nn.ModuleDict | None = None
        self.ref: nn.ModuleDict | None = None

    @property
    def injected(self) -> bool:
        return self.old is not None

    def add_injection_heads(self) -> None:
        """Frozen copies of both Q-heads as the old and the reference heads (values set by the caller)."""
        copies = [nn.ModuleDict({q: copy.deepcopy(getattr(self, q)) for q in ("q1", "q2")}) for _ in range(2)]
        for heads in copies:
            heads.requires_grad_(False)
        self.old, self.ref = copies

    def forward(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        q1, q2, _ = self.with_features(obs, action)
        return q1, q2

    def with_features(self, obs: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(q1, q2, features of both trainable heads keyed q1.<layer> / q2.<layer>). Injected: each head is
        old(x) + (new(x) - ref(x)); new and ref are bit-identical at injection, so the output is unchanged."""
        x = torch.cat([obs, action], dim=-1)
        (q1, f1), (q2, f2) = self.q1(x), self.q2(x)
        if self.old is not None:
            q1 = self.old["q1"](x)[0] + (q1 - self.ref["q1"](x)[0])
            q2 = self.old["q2"](x)[0] + (q2 - self.ref["q2"](x)[0])
        return q1, q2, {**{f"q1.{k}": v for k, v in f1.items()}, **{f"q2.{k}": v for k, v in f2.items()}}

    def features(self, obs: torch.Tensor, action: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features of both heads, keyed q1.<layer> / q2.<layer>."""
        return self.with_features(obs, action)[2]


def linear_weights(net: nn.Module) -> dict[str, torch.Tensor]:
    """Every trainable Linear weight by module name (for the weight-norm metrics; injected frozen heads left out)."""
    return {n: m.weight for n, m in net.named_modules() if isinstance(m, nn.Linear) and m.weight.requires_grad}


class SACAgent:
    """SAC behind the agent contract (agents/protocol.py); `after_reset()` applies the paper's SAC reset semantics
    (docs/paper-notes.md §1.6). Capabilities: GradientLosses, FreshInit, UnitGraph (MLP preset), UpdateFeatures,
    Regularizable, PlasticityInjectable (critic only)."""

    # The paper's SAC resets treat every dense layer alike; after_reset rebuilds every optimizer anyway.
    reset_defaults = ResetDefaults(head_to_theta0=False, optimizer="clear_all")

    def __init__(
        self,
        spaces: Spaces,
        device: str | torch.device = "cpu",
        seed: int = 0,
        *,
        network: str = "mlp",
        actor_hidden: int = 256,
        actor_blocks: int = 2,
        critic_hidden: int = 256,
        critic_blocks: int = 2,
        obs_norm: bool = False,
        gamma: float = 0.99,
        tau: float = 0.005,
        actor_lr: float = 3e-4,
        critic_lr: float = 1e-3,
        temperature_lr: float = 1e-3,
        weight_decay: float = 0.0,
        init_temperature: float = 1.0,
        target_entropy_scale: float = -1.0,
        log_std_min: float = -5.0,
        log_std_max: float = 2.0,
        learning_starts: int = 5_000,
        compile: str = "auto",
    ):
        if spaces.discrete or len(spaces.obs_shape) != 1:
            raise ConfigError(f"SAC needs flat observations and continuous actions, got {spaces}")
        obs_dim, action_dim = spaces.obs_shape[0], spaces.action_shape[0]
        check_choice("agent.network", network, NETWORKS)
        sizes = dict(
            actor_hidden=actor_hidden,
            actor_blocks=actor_blocks,
            critic_hidden=critic_hidden,
            critic_blocks=critic_blocks,
        )
        rates = dict(actor_lr=actor_lr, critic_lr=critic_lr, temperature_lr=temperature_lr)
        for name, value in {**sizes, **rates, "init_temperature": init_temperature}.items():
            check_positive(f"agent.{name}", value)
        check_positive("agent.learning_starts", learning_starts, allow_zero=True)
        if not 0 < tau <= 1 or not 0 <= gamma <= 1:
            raise ConfigError(f"agent.tau must be in (0, 1] and agent.gamma in [0, 1], got {tau} and {gamma}")
        self.device, self.action_dim = torch.device(device), action_dim
        self.gamma, self.tau, self.learning_starts = gamma, tau, learning_starts
        self.lrs, self.weight_decay = (actor_lr, critic_lr, temperature_lr), weight_decay
        self.init_temperature = init_temperature
        self.target_entropy = target_entropy_scale * action_dim
        torch.manual_seed(seed)
        self.seed, self.rng = seed, np.random.default_rng(seed)
        log_std_range = (log_std_min, log_std_max)
        self.network = network
        self._shapes = (obs_dim, action_dim, actor_hidden, actor_blocks, critic_hidden, critic_blocks, log_std_range)
        self.actor, self.critic = (net.to(self.device) for net in self._new_networks())
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.obs_norm = RunningNorm(obs_dim, enabled=obs_norm).to(self.device)
        self.log_alpha = torch.tensor(math.log(init_temperature), device=self.device, requires_grad=True)
        self.theta0 = {name: _clone(net.state_dict()) for name, net in (("actor", self.actor), ("critic", self.critic))}
        self.compile = compile_mode(compile, self.device)
        self.capture = UpdateCapture(self._step_on, self._captured_state, graphed=self.compile == "graph")
        self._build_optimizers()
        self.regularizer: Regularizer | None = None
        self._update_features: dict[str, dict[str, torch.Tensor]] = {}
        # Training steps run the compiled losses; `losses` (for resets such as DASH) uses the eager ones, see DQNAgent.
        self._train_actor_loss = maybe_compile(self._actor_loss, self.compile)
        self._train_critic_loss = maybe_compile(self._critic_loss, self.compile)

    def _build_optimizers(self) -> None:
        """Fresh AdamW optimizers over the trainable parameters; weight decay on actor and critic (not the
        temperature). New optimizers are new state tensors, so a captured update is dropped."""
        actor_lr, critic_lr, temperature_lr = self.lrs
        wd, capturable = self.weight_decay, self.compile == "graph"
        critic = [p for p in self.critic.parameters() if p.requires_grad]  # injected frozen heads left out
        adamw = functools.partial(torch.optim.AdamW, capturable=capturable)
        self.actor_opt = adamw(self.actor.parameters(), lr=actor_lr, weight_decay=wd)
        self.critic_opt = adamw(critic, lr=critic_lr, weight_decay=wd)
        self.temperature_opt = adamw([self.log_alpha], lr=temperature_lr, weight_decay=0.0)
        self.capture.invalidate("new optimizers")

    @property
    def optimizers(self) -> tuple[torch.optim.Optimizer, ...]:
        return self.actor_opt, self.critic_opt, self.temperature_opt

    def _captured_state(self) -> list[torch.Tensor]:
        """Every tensor a captured update reads or writes besides its batch: the networks, the target, the
        observation statistics, the temperature, optimizer state and theta0 (the L2-init penalty's anchor)."""
        modules = (self.actor, self.critic, self.target, self.obs_norm)
        return [
            *(t for m in modules for t in m.state_dict().values()),
            self.log_alpha,
            *(t for opt in self.optimizers for t in optimizer_tensors(opt)),
            *(t for net in self.theta0.values() for t in net.values()),
        ]

    def _new_networks(self) -> tuple[Actor, Critic]:
        """A freshly initialised actor and critic of this agent's architecture."""
        obs_dim, action_dim, actor_hidden, actor_blocks, critic_hidden, critic_blocks, log_std_range = self._shapes
        actor = Actor(self.network, obs_dim, action_dim, actor_hidden, actor_blocks, log_std_range)
        return actor, Critic(self.network, obs_dim, action_dim, critic_hidden, critic_blocks)

    @property
    def loss_keys(self) -> tuple[str, ...]:
        if self.regularizer is None:
            return LOSS_KEYS
        return LOSS_KEYS + tuple(f"losses/{self.regularizer.name}/{net}" for net in ("actor", "critic"))

    def set_regularizer(self, regularizer: Regularizer) -> None:
        self.regularizer = regularizer
        self.capture.invalidate("a regulariser was set")

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def log_values(self, step: int) -> dict[str, float]:
        """Nothing beyond the losses (alpha is among them)."""
        return {}

    # --- acting -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, explore: bool = True) -> np.ndarray:
        """Uniform random before learning_starts, then a sampled action; tanh(mean) when explore=False."""
        obs_t = torch.as_tensor(np.asarray(obs), dtype=torch.float32, device=self.device)
        if explore:
            self.obs_norm.update(obs_t)  # SimBa's statistics follow every training-time observation
            if step < self.learning_starts:
                return self.rng.uniform(-1.0, 1.0, size=(len(obs), self.action_dim)).astype(np.float32)
        mean, log_std, _ = self.actor(self.obs_norm(obs_t))
        if explore:
            mean = mean + log_std.exp() * torch.randn_like(mean)
        return torch.tanh(mean).cpu().numpy()

    # --- learning ---------------------------------------------------------------------------------------------
    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Batch arrays as float32 device tensors."""
        keys = ("obs", "actions", "rewards", "next_obs", "terminated")
        return {k: torch.as_tensor(batch[k], dtype=torch.float32, device=self.device) for k in keys}

    def _normalised(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, ...]:
        """(obs, actions, rewards, next_obs, terminated), observations normalised with the current statistics."""
        obs, next_obs = self.obs_norm(batch["obs"]), self.obs_norm(batch["next_obs"])
        return obs, batch["actions"], batch["rewards"], next_obs, batch["terminated"]

    def _actor_loss(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(actor loss, log-probs, the actor's hidden features on obs)."""
        mean, log_std, features = self.actor(obs)
        action, log_prob = self.actor.squash(mean, log_std)
        q1, q2 = self.critic(obs, action)
        return (self.log_alpha.exp().detach() * log_prob - torch.min(q1, q2)).mean(), log_prob, features

    def _critic_loss(self, obs, actions, rewards, next_obs, terminated) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(critic loss, both heads' hidden features on (obs, actions))."""
        with torch.no_grad():
            next_action, next_log_prob = self.actor.sample(next_obs)
            q1_next, q2_next = self.target(next_obs, next_action)
            soft_value = torch.min(q1_next, q2_next) - self.log_alpha.exp() * next_log_prob
            # Only true terminations stop the bootstrap; time-limit truncations are bootstrapped.
            target = rewards + self.gamma * (1.0 - terminated) * soft_value
        q1, q2, features = self.critic.with_features(obs, actions)
        return 0.5 * (F.mse_loss(q1, target) + F.mse_loss(q2, target)), features  # mean over heads, as the paper's

    def losses(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """Differentiable actor and critic losses on a batch (gradient-aware resets such as DASH use them)."""
        obs, actions, rewards, next_obs, terminated = self._normalised(self._tensors(batch))
        return {
            "actor": self._actor_loss(obs)[0],
            "critic": self._critic_loss(obs, actions, rewards, next_obs, terminated)[0],
        }

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, torch.Tensor]:
        """One SAC step: actor, temperature, critic, Polyak target (each network's loss + the regulariser's penalty).
        Returns detached device tensors: nothing is read back here. Under agent.compile=graph the step is a
        replayed CUDA graph (agents/graphed.py); its reparameterisation noise is drawn afresh at every replay."""
        return self.capture(self._tensors(batch))

    def _step_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The whole update on device tensors: what a CUDA graph captures."""
        obs, actions, rewards, next_obs, terminated = self._normalised(batch)
        actor_loss, log_prob, actor_features = self._train_actor_loss(obs)
        actor_penalty = self._step_with_penalty(self.actor_opt, actor_loss, self.actor, "actor")
        entropy = -log_prob.detach().mean()
        temperature_loss = self.log_alpha.exp() * (entropy - self.target_entropy)
        _step(self.temperature_opt, temperature_loss, [self.log_alpha])
        critic_loss, critic_features = self._train_critic_loss(obs, actions, rewards, next_obs, terminated)
        critic_penalty = self._step_with_penalty(self.critic_opt, critic_loss, self.critic, "critic")
        with torch.no_grad():
            for target, online in zip(self.target.parameters(), self.critic.parameters(), strict=True):
                target.lerp_(online, self.tau)
        self._update_features = {
            "actor": {k: v.detach() for k, v in actor_features.items()},
            "critic": {k: v.detach() for k, v in critic_features.items()},
        }
        losses = (actor_loss, critic_loss, temperature_loss, self.log_alpha.exp(), entropy)
        values = {key: value.detach() for key, value in zip(LOSS_KEYS, losses, strict=True)}
        for net, penalty in (("actor", actor_penalty), ("critic", critic_penalty)):
            if penalty is not None:
                values[f"losses/{self.regularizer.name}/{net}"] = penalty.detach()
        return values

    def prime_update(
        self, batch: dict[str, np.ndarray], index: int, steps_per_update: float
    ) -> dict[str, torch.Tensor]:
        """A priming update is an ordinary update: nothing in SAC's rules is keyed on agent steps. The Polyak target
        (tau per update) follows the primed critic as it would in training: after N updates, what is left of the
        target it started from weighs (1 - tau)^N."""
        return self.update(batch, 0)

    def _step_with_penalty(self, optimizer, loss: torch.Tensor, net: nn.Module, name: str) -> torch.Tensor | None:
        """Step one network on its loss plus the regulariser's penalty on it; returns the penalty (None without)."""
        penalty = self.regularizer.penalty(net, self.theta0[name]) if self.regularizer is not None else None
        trainable = [p for p in net.parameters() if p.requires_grad]  # injected frozen heads left out
        _step(optimizer, loss if penalty is None else loss + penalty, trainable)
        return penalty

    @property
    def update_features(self) -> dict[str, dict[str, torch.Tensor]]:
        return self._update_features

    # --- what resets and metrics see --------------------------------------------------------------------------
    def networks(self) -> dict[str, tuple[nn.Module, torch.optim.Optimizer]]:
        return {"actor": (self.actor, self.actor_opt), "critic": (self.critic, self.critic_opt)}

    def initial_params(self) -> dict[str, dict[str, torch.Tensor]]:
        return self.theta0

    @property
    def injected(self) -> bool:
        """Whether plasticity injection has happened (at most once)."""
        return self.critic.injected

    def inject_plasticity(self) -> None:
        """Plasticity injection (Nikishin et al. 2023) on both Q-networks as wholes (fire_rl's choice: the authors'
        code has none): each Q = Q_old + Q_new - Q_ref, Q_old the trained head frozen, Q_new (trainable) and Q_ref
        (frozen) at theta0; the actor is not injected. Then the paper's SAC reset semantics: target critic <- the
        injected critic, alpha <- its initial value, fresh AdamW state (the trainable parameters are the same
        tensors as before: the new heads are the old modules put back to theta0)."""
        self.critic.add_injection_heads()  # old and ref start as copies of the trained heads
        with torch.no_grad():
            self.critic.ref.load_state_dict(self.theta0["critic"])
            for q in ("q1", "q2"):
                getattr(self.critic, q).load_state_dict(
                    {k[3:]: v for k, v in self.theta0["critic"].items() if k.startswith(f"{q}.")}
                )
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.capture.invalidate("plasticity injection")  # new heads in the forward pass, a new target module
        self.after_reset()

    def after_reset(self) -> None:
        """The paper's SAC semantics after any weight transform: target <- critic, alpha <- initial, every AdamW
        state back to a fresh one (in place, so a captured update stays valid); a captured update is dropped if
        the reset moved a state tensor instead of writing into it."""
        self.target.load_state_dict(self.critic.state_dict())
        with torch.no_grad():
            self.log_alpha.fill_(math.log(self.init_temperature))
        for optimizer in self.optimizers:
            clear_optimizer_state(optimizer)
        self.capture.refresh("a reset moved a state tensor")

    def unit_graph(self) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
        """MLP preset: each hidden layer feeds the next, the last one both heads; SimBa's residual blocks are left out
        (a unit of the residual stream feeds every later block, not one next layer)."""
        if self.network != "mlp":
            return {}
        trunk = [f"encoder.layers.{name}" for name in self.actor.encoder.layers]
        graph = {"actor": _chain(trunk, ("mean", "log_std"), key=lambda m: m.rsplit(".", 1)[-1])}
        critic = {}
        for q in ("q1", "q2"):
            layers = [f"{q}.{m}" for m in trunk]
            critic.update(_chain(layers, (f"{q}.out",), key=lambda m, q=q: f"{q}.{m.rsplit('.', 1)[-1]}"))
        return {**graph, "critic": critic}

    def fresh_params(self, draw: int) -> dict[str, dict[str, torch.Tensor]]:
        """Freshly initialised actor and critic states (their own initialisers), reproducible from (seed, draw)."""
        actor, critic = seeded_init(self.seed, draw, self._new_networks)
        return {"actor": actor.state_dict(), "critic": critic.state_dict()}

    @torch.no_grad()
    def probe(self, batch_obs: np.ndarray) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """{net: (features, weights)} on normalised observations; the critic at the actor's deterministic action."""
        obs = self.obs_norm(torch.as_tensor(np.asarray(batch_obs), dtype=torch.float32, device=self.device))
        mean, _, actor_features = self.actor(obs)
        critic_features = self.critic.features(obs, torch.tanh(mean))
        return {
            "actor": (actor_features, linear_weights(self.actor)),
            "critic": (critic_features, linear_weights(self.critic)),
        }

    # --- checkpoints --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "target": self.target.state_dict(),
            "obs_norm": self.obs_norm.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "theta0": self.theta0,
            "optimizers": [opt.state_dict() for opt in (self.actor_opt, self.critic_opt, self.temperature_opt)],
            "rng": self.rng.bit_generator.state,
            "injected": self.injected,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        match_injection(state, self.injected, (self.critic, self.target), self._build_optimizers)
        for name in ("actor", "critic", "target", "obs_norm"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.theta0 = to_device(state["theta0"], self.device)  # checkpoints load onto the CPU
        for opt, opt_state in zip(self.optimizers, state["optimizers"], strict=True):
            opt.load_state_dict(opt_state)
            match_capturable(opt, self.compile == "graph")
        self.rng.bit_generator.state = state["rng"]
        self.capture.invalidate("checkpoint loaded")  # optimizer and theta0 tensors are new objects


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor, params: list[torch.Tensor]) -> None:
    """Backward into `params` only (the actor loss must not leave gradients in the critic), then step."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward(inputs=params)
    optimizer.step()


def _chain(layers: list[str], heads: tuple[str, ...], key) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Unit graph of a trunk: each layer feeds the next, the last one feeds `heads`; keyed by feature name."""
    successors = [(nxt,) for nxt in layers[1:]] + [heads]
    return {key(layer): (layer, nxt) for layer, nxt in zip(layers, successors, strict=True)}


def _clone(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}
