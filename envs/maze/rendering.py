"""Drawing grid-maze frames with pygame: walls, free cells, goal, agent, trail, and overlays.

An agent can overlay its value map (a heat map over free cells) and its policy (an arrow per cell)
through :meth:`MazeRenderer.draw`'s ``values`` and ``policy`` arguments; the environment exposes
them as ``GridMazeEnv.set_overlay``. pygame is imported when a renderer is first built, so the
environment itself works without it.
"""

from __future__ import annotations

import numpy as np

from ..rendering import import_pygame, surface_array
from .transition import move_offsets

WALL = np.array([48, 52, 60], dtype=np.uint8)
FREE = np.array([236, 236, 232], dtype=np.uint8)
GOAL = (46, 160, 67)
AGENT = (31, 100, 220)
TRAIL = (120, 160, 235)
ARROW = (20, 20, 20)
# a perceptually ordered ramp (dark purple -> teal -> yellow) for value heat maps
HEAT_RAMP = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def heat_colours(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Map ``values`` ``[m, m]`` to RGB ``[m, m, 3]`` uint8 on ``mask``, scaled to its min..max."""
    colours = np.zeros(values.shape + (3,), dtype=np.uint8)
    shown = mask & np.isfinite(values)
    if not shown.any():
        return colours
    lo, hi = values[shown].min(), values[shown].max()
    t = np.clip((values - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    t = np.where(shown, t, 0.0) * (len(HEAT_RAMP) - 1)
    left = np.floor(t).astype(int).clip(0, len(HEAT_RAMP) - 2)
    frac = (t - left)[..., None]
    colours[:] = ((1 - frac) * HEAT_RAMP[left] + frac * HEAT_RAMP[left + 1]).round().astype(np.uint8)
    return colours


def contiguous_runs(trail) -> list[list[tuple[int, int]]]:
    """Split a path of cells into runs of neighbouring cells (one step apart in each coordinate)."""
    runs: list[list[tuple[int, int]]] = []
    for cell in trail:
        if runs and max(abs(cell[0] - runs[-1][-1][0]), abs(cell[1] - runs[-1][-1][1])) <= 1:
            runs[-1].append(cell)
        else:
            runs.append([cell])
    return runs


class MazeRenderer:
    """Draws frames of an ``m x m`` maze at ``cell`` pixels per cell.

    Args:
        size: the map side ``m``.
        cell: pixels per cell (default: about 480 pixels in all, at least 4 per cell).
    """

    def __init__(self, size: int, cell: int | None = None):
        self.pygame = import_pygame()
        self.size = size
        self.cell = cell if cell is not None else max(4, 480 // size)
        self.pixels = self.size * self.cell
        self.surface = self.pygame.Surface((self.pixels, self.pixels))

    def _centre(self, row: int, col: int) -> tuple[int, int]:
        return (col * self.cell + self.cell // 2, row * self.cell + self.cell // 2)

    def draw(
        self,
        free: np.ndarray,
        goal: tuple[int, int],
        position: tuple[int, int],
        trail: list[tuple[int, int]] = (),
        values: np.ndarray | None = None,
        policy: np.ndarray | None = None,
        moves: int = 4,
    ):
        """Draw one frame on ``self.surface`` and return the surface.

        Args:
            free: ``[m, m]`` bool map.
            goal: the goal's ``(row, column)`` cell.
            position: the agent's ``(row, column)`` cell.
            trail: visited cells in order, drawn as a polyline (broken where it jumps, as across
                the seam of a torus).
            values: optional ``[m, m]`` value map, drawn as a heat map over free cells.
            policy: optional ``[m, m]`` action per cell (-1 for none) or ``[moves, m, m]`` action
                scores (the best is drawn), drawn as arrows on free cells.
            moves: 4 or 8 (the meaning of policy's actions).
        """
        pg = self.pygame
        image = np.where(free[..., None], FREE, WALL)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape != free.shape:
                raise ValueError(f"values overlay must be [m, m] = {free.shape}, got {values.shape}")
            image = np.where(free[..., None], heat_colours(values, free), image)
        pixels = np.repeat(np.repeat(image, self.cell, axis=0), self.cell, axis=1)
        pg.surfarray.blit_array(self.surface, pixels.transpose(1, 0, 2))

        c = self.cell
        if policy is not None:
            self._draw_policy(np.asarray(policy), free, moves)
        goal_rect = pg.Rect(goal[1] * c + c // 6, goal[0] * c + c // 6, c - 2 * (c // 6), c - 2 * (c // 6))
        pg.draw.rect(self.surface, GOAL, goal_rect)  # on top of any arrow
        for run in contiguous_runs(trail):  # a torus path leaves one edge and enters the opposite one
            if len(run) > 1:
                pg.draw.lines(self.surface, TRAIL, False, [self._centre(*p) for p in run], max(1, c // 8))
        pg.draw.circle(self.surface, AGENT, self._centre(*position), max(2, c // 3))
        return self.surface

    def _draw_policy(self, policy: np.ndarray, free: np.ndarray, moves: int) -> None:
        m = free.shape[0]
        if policy.shape == (moves, m, m):
            policy = policy.argmax(axis=0)
        if policy.shape != (m, m):
            raise ValueError(f"policy overlay must be [m, m] actions or [{moves}, m, m] scores, got {policy.shape}")
        offsets = move_offsets(moves)
        half = 0.38 * self.cell
        width = max(1, self.cell // 10)
        for row, col in zip(*np.nonzero(free & (policy >= 0) & (policy < moves))):
            dr, dc = offsets[int(policy[row, col])]
            norm = (dr * dr + dc * dc) ** 0.5
            x0, y0 = self._centre(row, col)
            tip = (x0 + half * dc / norm, y0 + half * dr / norm)
            tail = (x0 - half * dc / norm, y0 - half * dr / norm)
            self.pygame.draw.line(self.surface, ARROW, tail, tip, width)
            side = (-dr / norm * half * 0.5, dc / norm * half * 0.5)  # perpendicular, for the head
            back = (tip[0] - half * 0.5 * dc / norm, tip[1] - half * 0.5 * dr / norm)
            head = [tip, (back[0] + side[0], back[1] + side[1]), (back[0] - side[0], back[1] - side[1])]
            self.pygame.draw.polygon(self.surface, ARROW, head)

    def to_array(self) -> np.ndarray:
        """The current frame as ``[H, W, 3]`` uint8."""
        return surface_array(self.surface)
