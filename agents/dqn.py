"""DQN (Mnih et al. 2015) as in the FIRE paper's CleanRL code: Nature CNN, Huber TD loss, Adam, hard target copies."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.networks import ARCHITECTURES, QNetwork
from agents.protocol import ResetDefaults
from envs.suite import Spaces
from fire_rl.config import ConfigError, check_choice, check_loop_keys, check_positive

LOSS_KEYS = ("losses/td_loss",)
# adam: the FIRE authors' DQN (and C-CHAIN's, with lr 3e-4); rmsprop_centered: the MinAtar paper's DQN.
OPTIMIZERS = ("adam", "rmsprop_centered")
LOSSES = ("huber", "mse")  # huber: DQN (Mnih et al. 2015), FIRE, MinAtar; mse: CleanRL's dqn_atari.py, C-CHAIN


def make_optimizer(name: str, params, lr: float, adam_eps: float, alpha: float, rms_eps: float):
    """Adam(lr, eps) or centered RMSprop(lr, alpha, eps)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=adam_eps)
    return torch.optim.RMSprop(params, lr=lr, alpha=alpha, eps=rms_eps, centered=True)


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


class DQNAgent:
    """Epsilon-greedy DQN behind the agent contract (agents/protocol.py), with the optional capabilities
    GradientLosses (`losses`), FreshInit (`fresh_params`) and PlasticityInjectable (`inject_plasticity`)."""

    loss_keys = LOSS_KEYS
    # The FIRE authors' DQN: encoder gets the method, linear head back to theta0 (FIRE, S&P); Adam state kept.
    reset_defaults = ResetDefaults(head_to_theta0=True, optimizer="keep")

    def __init__(
        self,
        spaces: Spaces,
        device: str | torch.device = "cpu",
        seed: int = 0,
        *,
        network: str = "nature",
        optimizer: str = "adam",
        lr: float = 6.25e-5,
        adam_eps: float = 1.5e-4,
        rmsprop_alpha: float = 0.95,
        rmsprop_eps: float = 0.01,
        loss: str = "huber",
        gamma: float = 0.99,
        batch_size: int = 32,
        target_update_every: int = 2_000,
        epsilon_start: float = 1.0,
        epsilon_end: float = 0.01,
        epsilon_decay_steps: int = 250_000,
        learning_starts: int = 20_000,
        eval_epsilon: float = 0.001,
        reward_clip: bool = True,
        **loop_settings: Any,  # num_envs, buffer_size, ... are read by the training loop, not the learner
    ):
        check_loop_keys("dqn", loop_settings)
        check_choice("agent.network", network, ARCHITECTURES)
        check_choice("agent.optimizer", optimizer, OPTIMIZERS)
        check_choice("agent.loss", loss, LOSSES)
        for name, value in [("lr", lr), ("batch_size", batch_size), ("target_update_every", target_update_every)]:
            check_positive(f"agent.{name}", value)
        for name, value in [("epsilon_decay_steps", epsilon_decay_steps), ("learning_starts", learning_starts)]:
            check_positive(f"agent.{name}", value, allow_zero=True)
        check_fits(spaces, network)
        self.num_actions, self.obs_shape, self.network = spaces.num_actions, spaces.obs_shape, network
        self.device, self.seed = torch.device(device), seed
        self.gamma, self.batch_size, self.reward_clip, self.loss = gamma, batch_size, reward_clip, loss
        self.target_update_every, self.learning_starts, self.eval_epsilon = (
            target_update_every,
            learning_starts,
            eval_epsilon,
        )
        self.epsilon_start, self.epsilon_end, self.epsilon_decay_steps = epsilon_start, epsilon_end, epsilon_decay_steps
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        # Evaluation draws from its own stream, so how often one evaluates does not change the training trajectory.
        self.eval_rng = np.random.default_rng([seed, 1])
        self.q = self._new_network().to(self.device)
        self.target = copy.deepcopy(self.q)
        self.theta0 = {k: v.detach().clone() for k, v in self.q.state_dict().items()}
        self.optimizer = make_optimizer(optimizer, self.q.parameters(), lr, adam_eps, rmsprop_alpha, rmsprop_eps)
        self.last_target_sync = 0

    # --- acting -----------------------------------------------------------------------------------------------
    def epsilon(self, step: int) -> float:
        """Held at epsilon_start until learning_starts, then linear to epsilon_end over epsilon_decay_steps."""
        progress = (step - self.learning_starts) / max(self.epsilon_decay_steps, 1)
        return float(
            np.clip(
                self.epsilon_start + progress * (self.epsilon_end - self.epsilon_start),
                min(self.epsilon_start, self.epsilon_end),
                max(self.epsilon_start, self.epsilon_end),
            )
        )

    def log_values(self, step: int) -> dict[str, float]:
        return {"charts/epsilon": self.epsilon(step)}

    @torch.no_grad()
    def act(self, obs: np.ndarray, step: int, explore: bool = True) -> np.ndarray:
        """Epsilon-greedy actions for a batch of stacked uint8 observations."""
        epsilon, rng = (self.epsilon(step), self.rng) if explore else (self.eval_epsilon, self.eval_rng)
        greedy = self.q(torch.as_tensor(obs, device=self.device)).argmax(1).cpu().numpy()
        random = rng.integers(self.num_actions, size=len(obs))
        return np.where(rng.random(len(obs)) < epsilon, random, greedy)

    # --- learning ---------------------------------------------------------------------------------------------
    def losses(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One-step TD loss (Huber or MSE) on a replay batch (differentiable; gradient-aware resets use it too)."""
        obs, next_obs = (torch.as_tensor(batch[k], device=self.device) for k in ("obs", "next_obs"))
        actions = torch.as_tensor(batch["actions"], device=self.device).long()
        rewards = torch.as_tensor(batch["rewards"], device=self.device)
        terminated = torch.as_tensor(batch["terminated"], device=self.device)
        if self.reward_clip:
            rewards = torch.sign(rewards)
        with torch.no_grad():
            target = rewards + self.gamma * (1.0 - terminated) * self.target(next_obs).max(1).values
        q = self.q(obs).gather(1, actions[:, None]).squeeze(1)
        return {"q": F.smooth_l1_loss(q, target) if self.loss == "huber" else F.mse_loss(q, target)}

    def update(self, batch: dict[str, np.ndarray], step: int) -> dict[str, float]:
        """One gradient step, and a hard target copy whenever `step` crosses a multiple of target_update_every."""
        loss = self.losses(batch)["q"]
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if step // self.target_update_every > self.last_target_sync // self.target_update_every:
            self.target.load_state_dict(self.q.state_dict())
            self.last_target_sync = step
        return {LOSS_KEYS[0]: loss.item()}

    # --- what resets and metrics see --------------------------------------------------------------------------
    def _new_network(self) -> QNetwork:
        """A freshly initialised Q-network for this agent's observations and actions."""
        return QNetwork(self.num_actions, in_channels=self.obs_shape[0], architecture=self.network)

    def networks(self) -> dict[str, tuple[nn.Module, torch.optim.Optimizer]]:
        return {"q": (self.q, self.optimizer)}

    def initial_params(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"q": self.theta0}

    def after_reset(self) -> None:
        """Keep the target consistent with the reset online network until the next hard copy."""
        self.target.load_state_dict(self.q.state_dict())

    def fresh_params(self, draw: int) -> dict[str, dict[str, torch.Tensor]]:
        """State of a freshly initialised Q-network (the layers' own initialisers), reproducible from (seed, draw)."""
        seed = int(np.random.SeedSequence([self.seed, draw]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):  # leave the training RNG stream untouched
            torch.manual_seed(seed)
            net = self._new_network()
        return {"q": net.state_dict()}

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
        if state.get("injected", False) and not self.injected:
            # Rebuild the injected structure first; the values come from the checkpoint.
            self.q.add_injection_heads()
            self.target.add_injection_heads()
            self._rebuild_optimizer()
        self.q.load_state_dict(state["q"])
        self.target.load_state_dict(state["target"])
        self.theta0 = state["theta0"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.last_target_sync = state["last_target_sync"]
        self.rng.bit_generator.state = state["rng"]
        if "eval_rng" in state:
            self.eval_rng.bit_generator.state = state["eval_rng"]
