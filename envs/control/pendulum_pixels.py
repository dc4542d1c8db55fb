"""The pendulum seen from pixels: ``idplan/PendulumPixels-v0``.

:func:`pendulum_frames` draws the pendulum as an anti-aliased line from the image centre at its
angle (a pure function of the angle). :class:`PendulumFrameEnv` is :class:`~idplan.envs.control.PendulumEnv`
(the same dynamics, reward and starts) whose observation is that frame; the registered id wraps it
in Gymnasium's ``FrameStackObservation`` so velocity is observable: the observation is
``[frame_stack, size, size]`` uint8, **oldest frame first, newest last**; after ``reset`` the stack
holds copies of the first frame.

The DiLQR paper uses 224x224 RGB frames; the default here is 64x64 grayscale, which trains on a
CPU (any ``size`` >= 16 works).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import FrameStackObservation

from .._checks import check_int
from .pendulum import PendulumEnv, PendulumParams

ROD_LENGTH = 0.42  # of the image side, from the centre
ROD_WIDTH = 0.06  # of the image side


def pendulum_frames(theta: np.ndarray, size: int = 64) -> np.ndarray:
    """Frames ``[..., size, size]`` uint8 of pendulum angles ``theta [...]`` (0 upright, counter-clockwise).

    A rod of ``ROD_LENGTH * size`` pixels from the centre, ``ROD_WIDTH * size`` wide, white on black,
    with a one-pixel linear edge ramp (anti-aliasing); row 0 is the top of the image.
    """
    theta = np.asarray(theta, dtype=np.float64)
    centre = size / 2
    coords = np.arange(size) + 0.5
    x, y = coords[None, :], coords[:, None]  # pixel centres, y down
    direction = np.stack([-np.sin(theta), -np.cos(theta)], -1)[..., None, None, :]  # (dx, dy), image axes
    length = ROD_LENGTH * size
    offset = np.stack(np.broadcast_arrays(x - centre, y - centre), -1)  # [size, size, 2]
    along = np.clip((offset * direction).sum(-1), 0.0, length)
    distance = np.linalg.norm(offset - along[..., None] * direction, axis=-1)
    intensity = np.clip(ROD_WIDTH * size / 2 + 0.5 - distance, 0.0, 1.0)
    return np.round(255 * intensity).astype(np.uint8)


class PendulumFrameEnv(PendulumEnv):
    """:class:`~idplan.envs.control.PendulumEnv` observed through one ``[size, size]`` uint8 frame.

    Everything else (dynamics, reward, starts, ``info["state"]``, ``options["state"]``) is the
    pendulum's. ``render()`` returns the frame itself (RGB, scaled up to at least 256 pixels).
    ``idplan/PendulumPixels-v0`` stacks ``frame_stack`` of these frames (:func:`make_pendulum_pixels`).
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 20}

    def __init__(
        self,
        params: PendulumParams | None = None,
        start: str = "random",
        size: int = 64,
        render_mode: str | None = None,
    ):
        size = check_int(size, "size", 16)
        super().__init__(params, start, render_mode)
        self.size = size
        self.observation_space = gym.spaces.Box(0, 255, (self.size, self.size), dtype=np.uint8)

    def observation(self) -> np.ndarray:
        return pendulum_frames(self.state[0], self.size)

    def render(self):
        """The current frame as ``[H, W, 3]`` uint8 (``"rgb_array"``), or shown in a window (``"human"``)."""
        if self.render_mode is None or self.state is None:
            return super().render()
        scale = max(1, 256 // self.size)
        frame = np.repeat(np.repeat(self.observation(), scale, 0), scale, 1)
        rgb = np.ascontiguousarray(np.repeat(frame[..., None], 3, -1))
        if self.render_mode == "rgb_array":
            return rgb
        if self._window is None:
            from ..rendering import HumanWindow, import_pygame

            self._pygame = import_pygame()
            self._window = HumanWindow("idplan PendulumPixels", self.metadata["render_fps"])
        self._window.show(self._pygame.surfarray.make_surface(rgb.transpose(1, 0, 2)))
        return None


def make_pendulum_pixels(frame_stack: int = 4, **kwargs) -> gym.Env:
    """``idplan/PendulumPixels-v0``'s entry point: :class:`PendulumFrameEnv` (``params``, ``start``,
    ``size``, ``render_mode``) under ``FrameStackObservation(frame_stack)``: observations
    ``[frame_stack, size, size]`` uint8, oldest frame first."""
    return FrameStackObservation(PendulumFrameEnv(**kwargs), stack_size=check_int(frame_stack, "frame_stack", 1))
