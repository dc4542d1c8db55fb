"""Drawing arm frames with pygame: the workspace with the arm, beside its configuration space.

Left: the ``[-1, 1]^2`` workspace with the obstacles, the arm at its current configuration, the
goal pose as a translucent ghost and the trail of the end effector. Right: the C-space map (as a
maze frame: free and colliding configurations, the goal, the path, any value/policy overlay, and the
value legend under it).
"""

from __future__ import annotations

import numpy as np

from ..maze.rendering import AGENT, GOAL, TRAIL, MazeRenderer
from ..rendering import import_pygame, surface_array
from .geometry import DISC, RECTANGLE, ArmGeometry, bins_to_angles, forward_kinematics

BACKGROUND = (236, 236, 232)
OBSTACLE = (48, 52, 60)
BASE = (90, 90, 90)
GAP = 8  # pixels between the two panels


class ArmRenderer:
    """Draws ``[panel + LEGEND_HEIGHT, 2 * panel + GAP, 3]`` frames of an arm task (the C-space
    panel's value legend under it).

    Args:
        bins: bins per joint of the C-space.
        geometry: the arm and its workspace.
        panel: side of each panel in pixels (default: about 480).
    """

    def __init__(self, bins: int, geometry: ArmGeometry = ArmGeometry(), panel: int = 480):
        self.pygame = import_pygame()
        self.bins, self.geometry = bins, geometry
        self.cspace = MazeRenderer(bins, cell=max(4, panel // bins))
        self.panel = self.cspace.pixels
        self.surface = self.pygame.Surface((2 * self.panel + GAP, self.cspace.surface.get_height()))
        self.workspace = self.pygame.Surface((self.panel, self.panel), self.pygame.SRCALPHA)

    def _pixel(self, point) -> tuple[float, float]:
        """Workspace ``(x, y)`` to panel pixels (``y`` up)."""
        scale = self.panel / (2 * self.geometry.extent)
        return ((point[0] + self.geometry.extent) * scale, (self.geometry.extent - point[1]) * scale)

    def _arm(self, cell) -> list[tuple[float, float]]:
        elbow, tip = forward_kinematics(bins_to_angles(cell, self.bins), self.geometry)
        return [self._pixel((0.0, 0.0)), self._pixel(elbow), self._pixel(tip)]

    def draw(self, obstacles, free, goal, position, trail=(), values=None, policy=None, value_label="value"):
        """Draw one frame; ``obstacles [K, 5]``, ``free [bins, bins]``, cells as ``(q1 bin, q2 bin)``;
        the overlays as :meth:`MazeRenderer.draw`'s."""
        pg = self.pygame
        scale = self.panel / (2 * self.geometry.extent)
        ws = self.workspace
        ws.fill(BACKGROUND)
        for kind, x, y, a, b in obstacles:
            cx, cy = self._pixel((x, y))
            if kind == DISC:
                pg.draw.circle(ws, OBSTACLE, (cx, cy), a * scale)
            elif kind == RECTANGLE:
                pg.draw.rect(ws, OBSTACLE, pg.Rect(cx - a * scale, cy - b * scale, 2 * a * scale, 2 * b * scale))
        width = max(3, self.panel // 60)
        ghost = pg.Surface((self.panel, self.panel), pg.SRCALPHA)
        pg.draw.lines(ghost, GOAL + (110,), False, self._arm(goal), width)
        pg.draw.circle(ghost, GOAL + (110,), self._arm(goal)[-1], width)
        ws.blit(ghost, (0, 0))
        tips = [self._arm(cell)[-1] for cell in trail]
        if len(tips) > 1:
            pg.draw.lines(ws, TRAIL, False, tips, max(1, width // 2))
        joints = self._arm(position)
        pg.draw.lines(ws, AGENT, False, joints, width)
        for point in joints[1:]:
            pg.draw.circle(ws, AGENT, point, width * 0.8)
        pg.draw.circle(ws, BASE, joints[0], width * 1.2)

        self.surface.fill((255, 255, 255))
        self.surface.blit(ws, (0, 0))
        self.surface.blit(
            self.cspace.draw(free, goal, position, trail, values=values, policy=policy, value_label=value_label),
            (self.panel + GAP, 0),
        )
        return self.surface

    def to_array(self) -> np.ndarray:
        """The current frame as ``[H, W, 3]`` uint8."""
        return surface_array(self.surface)
