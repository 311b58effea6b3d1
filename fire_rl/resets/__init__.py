"""Reset strategies for continual RL: when (Schedule), what (transform), which layers, optimizer-state policy."""

from fire_rl.resets.base import ResetStrategy, Schedule
from fire_rl.resets.fire import FIRE, deviation_from_isometry, fire_project, fire_scale, newton_schulz
from fire_rl.resets.full import FullReset
from fire_rl.resets.none import NoReset
from fire_rl.resets.shrink_perturb import ShrinkPerturb

__all__ = [
    "FIRE",
    "FullReset",
    "NoReset",
    "ResetStrategy",
    "Schedule",
    "ShrinkPerturb",
    "deviation_from_isometry",
    "fire_project",
    "fire_scale",
    "newton_schulz",
]
