"""Differentiable controllers: the dILQR controller, the random-shooting MPC argmin layer, and
control from pixels (encoder, dILQR, decoder)."""

from .ilqr_controller import SWING_UP_HORIZON, ILQRController
from .pixel_episodes import PixelEpisodes, collect_episodes
from .receding import shift_plan
from .shooting import MLPDynamics, ShootingMPC, TargetCost
from .visual import FrameDecoder, FrameEncoder, VisualILQR

__all__ = [
    "ILQRController",
    "SWING_UP_HORIZON",
    "ShootingMPC",
    "MLPDynamics",
    "TargetCost",
    "shift_plan",
    "FrameEncoder",
    "FrameDecoder",
    "VisualILQR",
    "PixelEpisodes",
    "collect_episodes",
]
