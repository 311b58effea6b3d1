"""Reset strategies: the protocol every strategy meets, and the machinery of the layer-wise ones.

`ResetStrategy` is all the loop sees (Dopamine's recycler is the model: one per-update hook and one "is this a
reset step"): `resolve` once, when the run is built (capabilities checked, per-agent defaults settled, what was
settled returned for resolved.json); `after_update` after every gradient update (CBP's work); `due` and `apply`
for a scheduled intervention, which returns a `ResetReport`. `ScheduledReset` adds the triggers (`Schedule`);
`LayerwiseReset` adds layer selection, the optimizer-state policy and the per-layer bookkeeping that FIRE, S&P,
full reset, DASH and ReDo share: a subclass implements `transform` (and `prepare`).
"""

from __future__ import annotations

import fnmatch
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from agents.protocol import ResetDefaults, missing_capabilities
from agents.shared import clear_optimizer_state
from core.steps import crossed, reached
from fire_rl.resets.isometry import deviation_from_isometry, raw_deviation_from_isometry

# "agent" defers to the agent's `reset_defaults.optimizer` (the paper's choice for that agent; DQN: keep).
OPTIMIZER_POLICIES = ("keep", "clear_all", "clear_touched", "agent")
# Draws one replay batch (the agent's own batch format); gradient- and activation-aware resets (DASH, ReDo) use it.
BatchSource = Callable[[], dict]
LAYER_TYPES = (nn.Conv2d, nn.Linear)
LAYER_TYPE_NAMES = {"conv": nn.Conv2d, "linear": nn.Linear}
# Normalisation layers: only strategies that move EVERY parameter (full reset, S&P in the paper's SAC code) touch them.
NORM_TYPES = (nn.LayerNorm,)


class ResettableAgent(Protocol):
    """The part of the agent contract (agents/protocol.py `Agent`) every reset strategy uses."""

    reset_defaults: ResetDefaults

    def networks(self) -> dict[str, tuple[nn.Module, torch.optim.Optimizer]]: ...

    def initial_params(self) -> dict[str, dict[str, Tensor]]: ...

    def after_reset(self) -> None: ...


@dataclass
class ResetReport:
    """What one reset did: the `reset/...` values for its metrics row and the layers it changed (`net/layer`)."""

    logs: dict[str, float] = field(default_factory=dict)
    touched: list[str] = field(default_factory=list)
    sfe_total: float = 0.0

    def add_layer(
        self, net_name: str, layer_name: str, pre: dict[str, Tensor], module: nn.Module, theta0: dict[str, Tensor]
    ) -> None:
        """Record a layer the reset changed: its SFE, normalised SFE and DfI (`layer_logs`) from its weights before."""
        sfe = _sq_dist(pre, {k: p.detach() for k, p in layer_params(module).items()})
        self.sfe_total += sfe
        self.logs.update(layer_logs(f"reset/{net_name}/{layer_name}", pre, module, theta0, sfe))
        self.touched.append(f"{net_name}/{layer_name}")

    def close(self, step: int, start: float) -> ResetReport:
        """Add the per-reset totals every strategy logs (`summary_logs`); returns the report."""
        self.logs.update(summary_logs(self.sfe_total, self.touched, step, start))
        return self


class CapabilityError(ValueError):
    """The agent lacks a capability the strategy needs (build turns it into a one-line configuration error)."""


class Schedule:
    """When a reset fires: at task switches, at listed steps, every N steps (any combination)."""

    def __init__(
        self, at_switch: bool = True, at_steps: Sequence[int] | int = (), every_steps: int | None = None
    ) -> None:
        self.at_switch = bool(at_switch)
        # A config may give one step as a bare number (`at_steps: 1250000`).
        self.at_steps = (int(at_steps),) if isinstance(at_steps, int) else tuple(int(s) for s in at_steps)
        for s in self.at_steps:
            if s < 0:
                raise ValueError(f"at_steps must be >= 0 environment steps, got {s}")
        if every_steps is not None and int(every_steps) <= 0:
            raise ValueError(f"every_steps must be a positive number of environment steps or null, got {every_steps}")
        self.every_steps = None if every_steps is None else int(every_steps)

    def with_steps(self, extra: Sequence[int]) -> Schedule:
        """The same schedule with more `at_steps` (an experiment preset's `reset_at_steps`)."""
        steps = sorted({*self.at_steps, *(int(s) for s in extra)})
        return Schedule(self.at_switch, steps, self.every_steps)

    def due(self, prev_step: int, step: int, switched: bool) -> bool:
        """True if a trigger lies in (prev_step, step]; steps jump by num_envs, so exact equality would miss them."""
        if self.at_switch and switched:
            return True
        return any(reached(prev_step, step, s) for s in self.at_steps) or crossed(prev_step, step, self.every_steps)


def _sq_dist(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    """Squared Frobenius distance summed over the tensors both dicts hold (weight and bias)."""
    return float(sum(((a[k].double() - b[k].double()) ** 2).sum() for k in a if k in b))


def _as_list(value: Sequence[str] | str | None) -> list[str] | None:
    """A bare string from a config override means one item, not a sequence of characters."""
    return [value] if isinstance(value, str) else (None if value is None else [str(v) for v in value])


class ResetStrategy:
    """The protocol: what every strategy is to the loop. The defaults do nothing, so a strategy overrides only
    what it has: a scheduled intervention (`due`, `apply`), per-update work (`after_update`), `train`-row values
    (`log_values`) and state a checkpoint must hold (`state_dict`)."""

    # False for a strategy with no scheduled intervention at all (no reset; CBP, whose work is per update): the
    # loop then neither probes around nor logs a reset.
    intervenes: ClassVar[bool] = True
    # Optional agent capabilities (agents/protocol.py) the strategy needs; checked by resolve().
    requires: ClassVar[tuple[type, ...]] = ()
    resolved: bool = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def resolve(self, agent: ResettableAgent) -> dict[str, Any]:
        """Check the agent can take this strategy and settle per-agent defaults, once; returns what was settled.

        Raises CapabilityError (a missing capability) or ValueError (e.g. a `layers` pattern matching nothing).
        """
        missing = missing_capabilities(agent, self.requires)
        if missing:
            raise CapabilityError(
                f"{self.name} needs the agent capability {', '.join(missing)} (agents/protocol.py), which "
                f"{type(agent).__name__} does not offer"
            )
        settled = {"strategy": self.name, **self.settle(agent)}
        self.resolved = True
        return settled

    def resolve_once(self, agent: ResettableAgent) -> None:
        """Resolve a strategy used outside a built run (a test, a notebook); a built run has resolved it already."""
        if not self.resolved:
            self.resolve(agent)

    def settle(self, agent: ResettableAgent) -> dict[str, Any]:
        """Settle the subclass's per-agent options (a `policy: agent`); returns them for resolved.json."""
        return {}

    def due(self, prev_step: int, step: int, switched: bool) -> bool:
        """Whether a scheduled intervention falls in the step interval (prev_step, step]; default never."""
        return False

    def apply(self, agent: ResettableAgent, step: int, sample_batch: BatchSource | None = None) -> ResetReport:
        """The intervention; default nothing."""
        return ResetReport()

    def after_update(self, agent: ResettableAgent, step: int) -> None:
        """Work done after every gradient update (CBP's unit replacement); default none."""

    def log_values(self) -> dict[str, float]:
        """Values for the `train` rows (CBP: units replaced since the last row); default none."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint must hold to resume the strategy exactly (CBP: utilities, ages); default nothing."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of state_dict."""


class ScheduledReset(ResetStrategy):
    """A strategy whose intervention fires on a `Schedule`: at task switches, at listed steps, every N steps."""

    def __init__(self, at_switch: bool = True, at_steps: Sequence[int] = (), every_steps: int | None = None) -> None:
        self.schedule = Schedule(at_switch=at_switch, at_steps=at_steps, every_steps=every_steps)

    def resolve(self, agent: ResettableAgent) -> dict[str, Any]:
        schedule = self.schedule
        return {
            **super().resolve(agent),
            "at_switch": schedule.at_switch,
            "at_steps": list(schedule.at_steps),
            "every_steps": schedule.every_steps,
        }

    def due(self, prev_step: int, step: int, switched: bool) -> bool:
        return self.schedule.due(prev_step, step, switched)


class LayerwiseReset(ScheduledReset):
    """Base of the strategies that change selected layers one by one (FIRE, S&P, full reset, DASH, ReDo): `apply`
    snapshots each selected layer, calls `transform` on it, records what moved (SFE, DfI) and applies the optimizer
    policy; a subclass implements `transform` and, if it needs data first, `prepare`."""

    # The agent's after_reset() re-syncs target networks etc.; strategies that keep the function (ReDo) skip it.
    calls_after_reset: ClassVar[bool] = True
    # Full reset and S&P move every parameter, LayerNorm scale/bias included (docs/paper-notes.md §2.2); FIRE
    # keeps norms.
    touches_norms: ClassVar[bool] = False

    def __init__(
        self,
        at_switch: bool = True,
        at_steps: Sequence[int] = (),
        every_steps: int | None = None,
        optimizer: str = "agent",
        layers: Sequence[str] | str | None = None,
        layer_types: Sequence[str] | str | None = None,
    ) -> None:
        super().__init__(at_switch=at_switch, at_steps=at_steps, every_steps=every_steps)
        if optimizer not in OPTIMIZER_POLICIES:
            raise ValueError(f"optimizer={optimizer!r} is not one of {list(OPTIMIZER_POLICIES)}")
        self.optimizer = optimizer
        self.layers, self.layer_types = _as_list(layers), layer_type_names(layer_types)

    def resolve(self, agent: ResettableAgent) -> dict[str, Any]:
        resolved = super().resolve(agent)  # capabilities first: the selection may use them (ReDo's unit graph)
        selected = self.select_layers(agent)
        return {
            **resolved,
            "optimizer": self.optimizer_policy(agent),
            "layers": [f"{net}/{layer}" for net, layers in selected.items() for layer, _ in layers],
        }

    def prepare(
        self, agent: ResettableAgent, step: int, selected: dict, sample_batch: BatchSource | None, logs: dict
    ) -> None:
        """Work done once before the per-layer transforms (DASH gradients, ReDo dormant masks); default none."""

    def transform(
        self, net_name: str, layer_name: str, module: nn.Module, theta0: dict[str, Tensor], logs: dict[str, float]
    ) -> bool:
        """Change the layer in place (under no_grad), adding any strategy-specific values to `logs`; return whether
        it was changed."""
        raise NotImplementedError(f"{self.name} must implement transform()")

    def select_layers(self, agent: ResettableAgent) -> dict[str, list[tuple[str, nn.Module]]]:
        """The layers `layers` and `layer_types` pick (with LayerNorm for a strategy that touches norms)."""
        return select_layers(agent, self.layers, self.layer_types, with_norms=self.touches_norms)

    def optimizer_policy(self, agent: ResettableAgent) -> str:
        """The policy in force: the configured one, or the agent's paper default when it is `agent`."""
        return agent.reset_defaults.optimizer if self.optimizer == "agent" else self.optimizer

    def apply(self, agent: ResettableAgent, step: int, sample_batch: BatchSource | None = None) -> ResetReport:
        """Reset the agent's selected layers in place; return what was done."""
        start = time.perf_counter()
        self.resolve_once(agent)
        init, networks = agent.initial_params(), agent.networks()
        selected = self.select_layers(agent)
        extra: dict[str, float] = {}  # strategy-specific values from prepare/transform, logged after the layers'
        self.prepare(agent, step, selected, sample_batch, extra)
        report, policy = ResetReport(), self.optimizer_policy(agent)
        for net_name, layers in selected.items():
            changed: list[nn.Parameter] = []
            for layer_name, module in layers:
                theta0 = _layer_theta0(init, net_name, layer_name)
                pre = {k: p.detach().clone() for k, p in layer_params(module).items()}
                with torch.no_grad():
                    touched = self.transform(net_name, layer_name, module, theta0, extra)
                if not touched:
                    continue
                changed += [p for k, p in layer_params(module).items() if not torch.equal(pre[k], p)]
                report.add_layer(net_name, layer_name, pre, module, theta0)
            apply_optimizer_policy(policy, networks[net_name][1], changed)
        if self.calls_after_reset:
            agent.after_reset()
        report.logs.update(extra)
        return report.close(step, start)


def layer_type_names(layer_types: Sequence[str] | str | None) -> list[str] | None:
    """The `layer_types` option checked against LAYER_TYPE_NAMES (None: every Conv2d and Linear)."""
    names = _as_list(layer_types)
    for name in names or []:
        if name not in LAYER_TYPE_NAMES:
            raise ValueError(f"layer_types entry {name!r} is not one of {list(LAYER_TYPE_NAMES)}")
    return names


def select_layers(
    agent: ResettableAgent,
    layers: Sequence[str] | str | None,
    layer_types: list[str] | None,
    with_norms: bool = False,
) -> dict[str, list[tuple[str, nn.Module]]]:
    """Layers of every network matching `layer_types` (checked by `layer_type_names`) and the fnmatch patterns
    `layers`; a selector matching nothing is an error. LayerNorm layers join (`with_norms`) only when no
    layer_types filter is given."""
    layers = _as_list(layers)
    types = LAYER_TYPES if layer_types is None else tuple(LAYER_TYPE_NAMES[n] for n in layer_types)
    types += NORM_TYPES if with_norms and layer_types is None else ()
    selected: dict[str, list[tuple[str, nn.Module]]] = {}
    all_names: list[str] = []
    used: set[str] = set()
    for net_name, (net, _) in agent.networks().items():
        chosen = []
        for name, module in net.named_modules():
            if not isinstance(module, types):
                continue
            all_names.append(name)
            hits = [p for p in layers or [] if fnmatch.fnmatchcase(name, p)]
            used.update(hits)
            if layers is None or hits:
                chosen.append((name, module))
        selected[net_name] = chosen
    of_types = "" if layer_types is None else f" of layer_types {layer_types}"
    if not all_names:
        raise ValueError(f"no layer{of_types} in networks {sorted(selected)}; types: {list(LAYER_TYPE_NAMES)}")
    unused = [p for p in layers or [] if p not in used]
    if unused:
        # A typo here would silently turn the reset into a no-op, so fail loudly.
        available = sorted(set(all_names))
        raise ValueError(f"layers patterns {unused} match no layer{of_types}; available layers: {available}")
    return selected


def restore_theta0(module: nn.Module, theta0: dict[str, Tensor]) -> None:
    """Put a layer's weight (and bias) back to its initial values, in place."""
    module.weight.copy_(theta0["weight"])
    if module.bias is not None:
        module.bias.copy_(theta0["bias"])


def policy_for(strategy: str, policy: str, agent: ResettableAgent, every_layer: str) -> str:
    """A layer policy in force: `agent` becomes the agent's paper form (`paper_dqn` where the agent's linear head goes
    back to theta0, else `every_layer`); `paper_dqn` is refused for an agent whose paper form treats every layer
    alike (SAC has no conv encoder to treat apart)."""
    head_to_theta0 = agent.reset_defaults.head_to_theta0
    if policy == "agent":
        return "paper_dqn" if head_to_theta0 else every_layer
    if policy == "paper_dqn" and not head_to_theta0:
        raise ValueError(
            f"{strategy} policy paper_dqn is the FIRE authors' DQN form (convs get the method, linear layers back to "
            f"theta0); {type(agent).__name__}'s paper form is {every_layer}: use policy=agent or {every_layer}"
        )
    return policy


def layer_logs(
    prefix: str, pre: dict[str, Tensor], module: nn.Module, theta0: dict[str, Tensor], sfe: float
) -> dict[str, float]:
    """Per-layer SFE, SFE relative to a full reset (back to theta0), and DfI before and after."""
    full = _sq_dist(pre, theta0)
    out = {f"{prefix}/sfe": sfe, f"{prefix}/sfe_normalised": sfe / full if full > 0 else math.nan}
    if pre["weight"].dim() >= 2:  # DfI is a matrix measure; a LayerNorm scale is a vector
        # dfi_*: FIRE's (paper) scale divided out first, so a converged FIRE projection reads 0; dfi_raw_*: the
        # paper's ||W^T W - I||_F^2 on the weight itself.
        for when, weight in (("before", pre["weight"]), ("after", module.weight.detach())):
            out[f"{prefix}/dfi_{when}"] = deviation_from_isometry(weight)
            out[f"{prefix}/dfi_raw_{when}"] = raw_deviation_from_isometry(weight)
    return out


def summary_logs(sfe_total: float, touched: list[str], step: int, start: float) -> dict[str, float]:
    """The per-reset totals every strategy logs."""
    return {
        "reset/sfe_total": sfe_total,
        "reset/layers_touched": float(len(touched)),
        "reset/step": float(step),
        "reset/wall_time_s": time.perf_counter() - start,
    }


def apply_optimizer_policy(policy: str, optimizer: torch.optim.Optimizer, changed: list[nn.Parameter]) -> None:
    """Keep, clear all, or clear the state of the changed parameters. Clearing writes a fresh optimizer's state
    (zeros, step 0) in place, which steps exactly as dropped state re-initialised lazily would, and leaves a
    captured update graph valid (agents/graphed.py)."""
    if not changed or policy == "keep":
        return
    if policy not in ("clear_all", "clear_touched"):
        raise ValueError(f"optimizer policy {policy!r} is not one of {list(OPTIMIZER_POLICIES[:3])}")
    clear_optimizer_state(optimizer, None if policy == "clear_all" else changed)


def named_layers(net: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """The Conv2d and Linear submodules, by their `named_modules` name."""
    return ((name, m) for name, m in net.named_modules() if isinstance(m, LAYER_TYPES))


def layer_params(module: nn.Module) -> dict[str, Tensor]:
    """The layer's own weight and (if present) bias."""
    return {k: p for k, p in (("weight", module.weight), ("bias", module.bias)) if p is not None}


def _layer_theta0(init: dict[str, dict[str, Tensor]], net_name: str, layer_name: str) -> dict[str, Tensor]:
    """The layer's initial weight/bias out of the network's stored initial state_dict."""
    state = init[net_name]
    prefix = f"{layer_name}." if layer_name else ""
    theta0 = {k: state[prefix + k] for k in ("weight", "bias") if prefix + k in state}
    if "weight" not in theta0:
        raise KeyError(f"initial_params()[{net_name!r}] has no {prefix}weight")
    return theta0
