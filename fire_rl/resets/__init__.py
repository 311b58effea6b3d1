"""Reset strategies for continual RL: when (Schedule), what (transform), which layers, optimizer-state policy."""

from fire_rl.resets.base import ResetReport, ResetStrategy, Schedule
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
    "NoReset",
    "PlasticityInjection",
    "ReDo",
    "ResetReport",
    "ResetStrategy",
    "Schedule",
    "ShrinkPerturb",
    "dash_scale",
    "deviation_from_isometry",
    "fire_project",
    "fire_scale",
    "isometry_sv_min",
    "newton_schulz",
    "polar_factor",
]
