"""DQN (Mnih et al. 2015) as in the FIRE paper's CleanRL code: Nature CNN, Huber TD loss, Adam, hard target copies."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.compiled import compile_mode, maybe_compile
from agents.graphed import UpdateCapture, optimizer_tensors
from agents.networks import ARCHITECTURES, QNetwork
from agents.protocol import Regularizer, ResetDefaults
from agents.shared import match_capturable, match_injection, seeded_init, to_device
from core.config import ConfigError, check_choice, check_positive
from core.spaces import Spaces
from core.steps import crossed

LOSS_KEYS = ("losses/td_loss",)
# adam: the FIRE authors' DQN (and C-CHAIN's, with lr 3e-4); rmsprop_centered: the MinAtar paper's DQN.
OPTIMIZERS = ("adam", "rmsprop_centered")
LOSSES = ("huber", "mse")  # huber: DQN (Mnih et al. 2015), FIRE, MinAtar; mse: CleanRL's dqn_atari.py, C-CHAIN


def make_optimizer(
    name: str, params, lr: float, adam_eps: float, alpha: float, rms_eps: float, capturable: bool = False
):
    """Adam(lr, eps) or centered RMSprop(lr, alpha, eps); `capturable` keeps the step count on the device so the
    optimizer step can be captured in a CUDA graph."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=adam_eps, capturable=capturable)
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=rms_eps, centered=True, capturable=capturable)


def check_fits(spaces: Spaces, network: str) -> None:
    """A discrete action space and observations of the network's frame size."""
    if not spaces.discrete:
        raise ConfigError(f"DQN needs a discrete action space, got {spaces}")
    side = ARCHITECTURES[network].frame
    if len(spaces.obs_shape) != 3 or spaces.obs_shape[1:] != (side, side):
        raise ConfigError(
            f"agent.network {network} expects observations (channels, {side}, {side}), the env gives "
            f"{spaces.obs_shape}; choices: nature (84x84 Atari frames, agent=dqn), minatar (10x10, agent=dqn_minatar)"
        )


INITS = ("auto", "xavier", "torch")  # auto: the architecture's own (Nature: Xavier as FIRE; MinAtar: torch default)
EPSILON_FROM = ("learning_starts", "zero")  # the decay starts after the warm-up (FIRE, MinAtar) or at step 0 (CleanRL)
EPSILON_DRAWS = ("per_env", "per_vector_step")  # one coin per env, or one for all envs of a step (the FIRE authors')


@dataclass(frozen=True)
class EpsilonGreedy:
    """Linear epsilon schedule and how the exploration coin is drawn over a vector step."""

    start: float
    end: float
    decay_steps: int
    decay_from: int  # agent step where the linear decay begins; epsilon is `start` before it
    per_vector_step: bool

    def epsilon(self, step: int) -> float:
        progress = (step - self.decay_from) / max(self.decay_steps, 1)
        low, high = min(self.start, self.end), max(self.start, self.end)
        return float(np.clip(self.start + progress * (self.end - self.start), low, high))

    def choose(self, greedy: np.ndarray, num_actions: int, epsilon: float, rng: np.random.Generator) -> np.ndarray:
        """Greedy actions, each replaced by a uniform one where the coin (per env, or one per step) says explore."""
        random = rng.integers(num_actions, size=len(greedy))
        coins = rng.random(1 if self.per_vector_step else len(greedy))
        return np.where(coins < epsilon, random, greedy)


class DQNAgent:
    """Epsilon-greedy DQN behind the agent contract (agents/protocol.py), with the optional capabilities
    GradientLosses (`losses`), FreshInit (`fresh_params`), PlasticityInjectable (`inject_plasticity`), UnitGraph,
    UpdateFeatures and Regularizable."""

    # The FIRE authors' DQN: encoder gets the method, linear head back to theta0 (FIRE, S&P); Adam state kept.
    reset_defaults = ResetDefaults(head_to_theta0=True, optimizer="keep")

    def __init__(
        self,
        spaces: Spaces,
        device: str | torch.device = "cpu",
        seed: int = 0,
        *,
        network: str = "nature",
        init: str = "auto",
        optimizer: str = "adam",
        lr: float = 6.25e-5,
        adam_eps: float = 1.5e-4,
        rmsprop_alpha: float = 0.95,
        rmsprop_eps: float = 0.01,
        loss: str = "huber",
        gamma: float = 0.99,
        target_update_every: int = 2_000,
        epsilon_start: float = 1.0,
        epsilon_end: float = 0.01,
        epsilon_decay_steps: int = 250_000,
        epsilon_from: str = "learning_starts",
        epsilon_draw: str = "per_env",
        learning_starts: int = 20_000,
        eval_epsilon: float = 0.001,
        reward_clip: bool = True,
        compile: str = "auto",
    ):
        for key, value, valid in [
            ("network", network, ARCHITECTURES),
            ("init", init, INITS),
            ("optimizer", optimizer, OPTIMIZERS),
            ("loss", loss, LOSSES),
            ("epsilon_from", epsilon_from, EPSILON_FROM),
            ("epsilon_draw", epsilon_draw, EPSILON_DRAWS),
        ]:
            check_choice(f"agent.{key}", value, valid)
        for name, value in [("lr", lr), ("target_update_every", target_update_every)]:
            check_positive(f"agent.{name}", value)
        for name, value in [("epsilon_decay_steps", epsilon_decay_steps), ("learning_starts", learning_starts)]:
            check_positive(f"agent.{name}", value, allow_zero=True)
        check_fits(spaces, network)
        self.num_actions, self.obs_shape, self.network = spaces.num_actions, spaces.obs_shape, network
        self.xavier = None if init == "auto" else init == "xavier"
        self.device, self.seed = torch.device(device), seed
        self.gamma, self.reward_clip, self.loss = gamma, reward_clip, loss
        self.target_update_every, self.learning_starts = target_update_every, learning_starts
        decay_from = learning_starts if epsilon_from == "learning_starts" else 0
        per_step = epsilon_draw == "per_vector_step"
        self.exploration = EpsilonGreedy(epsilon_start, epsilon_end, epsilon_decay_steps, decay_from, per_step)
        self.eval_epsilon = eval_epsilon
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        # Evaluation draws from its own stream, so how often one evaluates does not change the training trajectory.
        self.eval_rng = np.random.default_rng([seed, 1])
        self.q = self._new_network().to(self.device)
        self.target = copy.deepcopy(self.q)
        self.theta0 = {k: v.detach().clone() for k, v in self.q.state_dict().items()}
        self.compile = compile_mode(compile, self.device)
        graphed = self.compile == "graph"
        self.optimizer = make_optimizer(
            optimizer, self.q.parameters(), lr, adam_eps, rmsprop_alpha, rmsprop_eps, capturable=graphed
        )
        self.last_target_sync = 0
        self.regularizer: Regularizer | None = None
        self._update_features: dict[str, torch.Tensor] = {}
        # Training steps run the compiled loss; `losses` itself stays eager for resets (DASH differentiates it more
        # than once per graph, which a compiled backward with donated buffers refuses; resets are rare).
        self._train_losses = maybe_compile(self._td_loss, self.compile)
        self.capture = UpdateCapture(self._step_on, self._captured_state, graphed=graphed)

    @property
    def loss_keys(self) -> tuple[str, ...]:
        return LOSS_KEYS + ((f"losses/{self.regularizer.name}/q",) if self.regularizer else ())

    # --- acting -----------------------------------------------------------------------------------------------
    def epsilon(self, step: int) -> float:
        """Held at epsilon_start until the decay begins, then linear to epsilon_end over epsilon_decay_steps."""
        return self.exploration.epsilon(step)

    def log_values(self, step: int) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(step)}

    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, explore: bool = True) -> np.ndarray:
        """Epsilon-greedy actions for a batch of observations (one per env)."""
        epsilon, rng = (self.epsilon(step), self.rng) if explore else (self.eval_epsilon, self.eval_rng)
        greedy = self.q(torch.as_tensor(obs, device=self.device)).argmax(1).cpu().numpy()
        return self.exploration.choose(greedy, self.num_actions, epsilon, rng)

    # --- learning ---------------------------------------------------------------------------------------------
    def losses(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One-step TD loss (Huber or MSE) on a replay batch (differentiable; gradient-aware resets use it too)."""
        return {"q": self._td_loss(self._tensors(batch))[0]}

    def _tensors(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """The batch as device tensors (actions as int64)."""
        tensors = {
            k: torch.as_tensor(batch[k], device=self.device) for k in ("obs", "next_obs", "rewards", "terminated")
        }
        return {**tensors, "actions": torch.as_tensor(batch["actions"], device=self.device).long()}

    def _td_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(TD loss on a batch of device tensors, the online network's detached hidden activations on its obs)."""
        obs, next_obs, actions = batch["obs"], batch["next_obs"], batch["actions"]
        rewards, terminated = batch["rewards"], batch["terminated"]
        if self.reward_clip:
            rewards = torch.sign(rewards)
        with torch.no_grad():
            target = rewards + self.gamma * (1.0 - terminated) * self.target(next_obs).max(1).values
        features = self.q.features(obs)
        q = features.pop("q").gather(1, actions[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, target) if self.loss == "huber" else F.mse_loss(q, target)
        return loss, {k: v.detach() for k, v in features.items()}

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, torch.Tensor]:
        """One gradient step on TD loss (+ the regulariser's penalty), and a hard target copy whenever `step` crosses
        a multiple of target_update_every. Returns detached device tensors: nothing is read back here."""
        values = self._gradient_step(batch)
        if crossed(self.last_target_sync, step, self.target_update_every):
            self.target.load_state_dict(self.q.state_dict())
            self.last_target_sync = step
        return values

    def prime_update(
        self, batch: dict[str, np.ndarray], index: int, steps_per_update: float
    ) -> dict[str, torch.Tensor]:
        """A priming update: the same gradient step, and a hard target copy after every target_update_every agent
        steps' worth of updates (MinAtar preset: every 1,000 updates), so priming does not regress onto the
        initial target. The training schedule's own last copy is left as it was."""
        values = self._gradient_step(batch)
        updates_per_copy = max(1, round(self.target_update_every / steps_per_update))
        if (index + 1) % updates_per_copy == 0:
            self.target.load_state_dict(self.q.state_dict())
        return values

    def _gradient_step(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """TD loss (+ the regulariser's penalty), one optimizer step; the detached losses. Under agent.compile=graph
        the step is a replayed CUDA graph (agents/graphed.py)."""
        return self.capture(self._tensors(batch))

    def _step_on(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The whole update on device tensors: what a CUDA graph captures."""
        # Only a training step sets the activations CBP reads: resets' own passes through `losses` leave them.
        td, self._update_features = self._train_losses(batch)
        loss, values = td, {LOSS_KEYS[0]: td.detach()}
        if self.regularizer is not None:
            penalty = self.regularizer.penalty(self.q, self.theta0)
            loss, values[self.loss_keys[1]] = loss + penalty, penalty.detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return values

    @property
    def update_features(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"q": self._update_features}

    def set_regularizer(self, regularizer: Regularizer) -> None:
        self.regularizer = regularizer
        self.capture.invalidate("a regulariser was set")

    def _captured_state(self) -> list[torch.Tensor]:
        """Every tensor a captured update reads or writes besides its batch: online and target weights, optimizer
        state, theta0 (the L2-init penalty's anchor)."""
        return [
            *self.q.state_dict().values(),
            *self.target.state_dict().values(),
            *optimizer_tensors(self.optimizer),
            *self.theta0.values(),
        ]

    # --- what resets and metrics see --------------------------------------------------------------------------
    def _new_network(self) -> QNetwork:
        """A freshly initialised Q-network for this agent's observations and actions."""
        return QNetwork(self.num_actions, self.obs_shape[0], architecture=self.network, xavier=self.xavier)

    def unit_graph(self) -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
        """Each hidden layer feeds the next one (through the flatten for the last conv)."""
        names = [*self.q.conv_names, "fc1", "fc2"]
        return {"q": {name: (name, (nxt,)) for name, nxt in zip(names, names[1:], strict=False)}}

    def networks(self) -> dict[str, tuple[nn.Module, torch.optim.Optimizer]]:
        return {"q": (self.q, self.optimizer)}

    def initial_params(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"q": self.theta0}

    def after_reset(self) -> None:
        """Keep the target consistent with the reset online network until the next hard copy; drop a captured
        update if the reset moved any state tensor instead of writing into it."""
        self.target.load_state_dict(self.q.state_dict())
        self.capture.refresh("a reset moved a state tensor")

    def fresh_params(self, draw: int) -> dict[str, dict[str, torch.Tensor]]:
        """State of a freshly initialised Q-network (the layers' own initialisers), reproducible from (seed, draw)."""
        return {"q": seeded_init(self.seed, draw, self._new_network).state_dict()}

    @property
    def injected(self) -> bool:
        """Whether plasticity injection has happened (it happens at most once)."""
        return self.q.injected

    def inject_plasticity(self) -> None:
        """Plasticity injection as the FIRE authors' `--pi 1`: online and target heads each injected, fresh Adam."""
        self.q.inject(self.theta0)
        self.target.inject(self.theta0)  # from the target's own encoder/head, so TD targets are unchanged too
        self._rebuild_optimizer()

    def _rebuild_optimizer(self) -> None:
        """A fresh optimizer of the same kind and settings over the trainable parameters only."""
        trainable = [p for p in self.q.parameters() if p.requires_grad]
        self.optimizer = type(self.optimizer)(trainable, **self.optimizer.defaults)
        self.capture.invalidate("new optimizer")

    @torch.no_grad()
    def probe(self, batch_obs: np.ndarray) -> dict[str, tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]]:
        """{net: (hidden activations, layer weights)} on a batch of observations, for plasticity metrics."""
        features = self.q.features(torch.as_tensor(batch_obs, device=self.device))
        features.pop("q")
        return {"q": (features, self.q.hidden_weights())}

    # --- checkpoints --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "q": self.q.state_dict(),
            "target": self.target.state_dict(),
            "theta0": self.theta0,
            "optimizer": self.optimizer.state_dict(),
            "last_target_sync": self.last_target_sync,
            "rng": self.rng.bit_generator.state,
            "eval_rng": self.eval_rng.bit_generator.state,
            "injected": self.injected,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        match_injection(state, self.injected, (self.q, self.target), self._rebuild_optimizer)
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.theta0 = to_device(state["theta0"], self.device)  # checkpoints load onto the CPU
        self.optimizer.load_state_dict(state["optimizer"])
        match_capturable(self.optimizer, self.compile == "graph")
        self.last_target_sync = state["last_target_sync"]
        self.rng.bit_generator.state = state["rng"]
        self.capture.invalidate("checkpoint loaded")  # optimizer and theta0 tensors are new objects
        if "eval_rng" in state:
            self.eval_rng.bit_generator.state = state["eval_rng"]
