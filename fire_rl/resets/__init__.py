"""Reset strategies for continual RL: the protocol (ResetStrategy), scheduled and layer-wise bases, the strategies."""

from fire_rl.resets.base import LayerwiseReset, ResetReport, ResetStrategy, Schedule, ScheduledReset
from fire_rl.resets.cbp import CBP
from fire_rl.resets.dash import DASH, dash_scale
from fire_rl.resets.fire import FIRE
from fire_rl.resets.full import FullReset
from fire_rl.resets.isometry import (
    deviation_from_isometry,
    fire_project,
    fire_scale,
    isometry_sv_min,
    newton_schulz,
    polar_factor,
)
from fire_rl.resets.none import NoReset
from fire_rl.resets.plasticity_injection import PlasticityInjection
from fire_rl.resets.redo import ReDo
from fire_rl.resets.shrink_perturb import ShrinkPerturb

__all__ = [
    "CBP",
    "DASH",
    "FIRE",
    "FullReset",
    "LayerwiseReset",
    "NoReset",
    "PlasticityInjection",
    "ReDo",
    "ResetReport",
    "ResetStrategy",
    "Schedule",
    "ScheduledReset",
    "ShrinkPerturb",
    "dash_scale",
    "deviation_from_isometry",
    "fire_project",
    "fire_scale",
    "isometry_sv_min",
    "newton_schulz",
    "polar_factor",
]
