"""Drawing grid-maze frames with pygame: walls, free cells, goal, agent, trail, and overlays.

An agent can overlay its value map (a heat map over free cells) and its policy (an arrow per cell)
through :meth:`MazeRenderer.draw`'s ``values`` and ``policy`` arguments; the environment exposes
them as ``GridMazeEnv.set_overlay``. A legend strip under the map says what the heat map's colours
mean: the value map's name, its minimum, the colour bar and its maximum (blank without a value
map, so that every frame of an episode has the same size). pygame is imported when a renderer is
first built, so the environment itself works without it.
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
LEGEND_HEIGHT = 16  # pixels of the legend strip under the map
LEGEND_BACKGROUND = (255, 255, 255)
LEGEND_TEXT = (20, 20, 20)
MIN_BAR = 24  # the colour bar's least width in pixels; narrower legends drop their text


def value_range(values: np.ndarray, mask: np.ndarray) -> tuple[float, float] | None:
    """``(min, max)`` of the finite ``values [m, m]`` on ``mask [m, m]``; ``None`` where there are none."""
    shown = mask & np.isfinite(values)
    if not shown.any():
        return None
    return float(values[shown].min()), float(values[shown].max())


def ramp_colours(t: np.ndarray) -> np.ndarray:
    """Positions ``t [...]`` in ``[0, 1]`` on :data:`HEAT_RAMP` (0: its first colour) as RGB ``[..., 3]`` uint8."""
    t = np.clip(t, 0.0, 1.0) * (len(HEAT_RAMP) - 1)
    left = np.floor(t).astype(int).clip(0, len(HEAT_RAMP) - 2)
    frac = (t - left)[..., None]
    return ((1 - frac) * HEAT_RAMP[left] + frac * HEAT_RAMP[left + 1]).round().astype(np.uint8)


def heat_colours(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Map ``values`` ``[m, m]`` to RGB ``[m, m, 3]`` uint8 on ``mask``, scaled to its min..max."""
    span = value_range(values, mask)
    if span is None:
        return np.zeros(values.shape + (3,), dtype=np.uint8)
    lo, hi = span
    t = (values - lo) / (hi - lo if hi > lo else 1.0)
    return ramp_colours(np.where(mask & np.isfinite(values), t, 0.0))


def value_legend(width: int, span: tuple[float, float] | None, label: str = "value") -> np.ndarray:
    """The legend strip ``[LEGEND_HEIGHT, width, 3]`` uint8 of a heat map over ``span = (min, max)``:
    ``label`` and the minimum, the colour bar (:data:`HEAT_RAMP` from left to right), the maximum.
    Where the text would leave the bar under :data:`MIN_BAR` pixels the label goes, then all text; a
    ``None`` span gives a blank strip."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (width, LEGEND_HEIGHT), LEGEND_BACKGROUND)
    if span is None:
        return np.asarray(image)
    draw = ImageDraw.Draw(image)
    low, high = f"{span[0]:.3g}", f"{span[1]:.3g}"
    for left, right in ((f"{label}: {low}", high), (low, high), ("", "")):
        start = int(draw.textlength(left)) + 6 if left else 0
        end = width - (int(draw.textlength(right)) + 6 if right else 0)
        if end - start >= MIN_BAR or not left:
            break
    draw.text((3, 3), left, fill=LEGEND_TEXT)
    draw.text((end + 3, 3), right, fill=LEGEND_TEXT)
    bar = ramp_colours(np.linspace(0.0, 1.0, max(end - start, 1)))
    image.paste(Image.fromarray(np.ascontiguousarray(np.broadcast_to(bar, (8, *bar.shape)))), (start, 4))
    return np.asarray(image)


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
    """Draws ``[m * cell + LEGEND_HEIGHT, m * cell, 3]`` frames of an ``m x m`` maze at ``cell``
    pixels per cell: the map above the value legend strip.

    Args:
        size: the map side ``m``.
        cell: pixels per cell (default: about 480 pixels in all, at least 4 per cell).
    """

    def __init__(self, size: int, cell: int | None = None):
        self.pygame = import_pygame()
        self.size = size
        self.cell = cell if cell is not None else max(4, 480 // size)
        self.pixels = self.size * self.cell
        self.surface = self.pygame.Surface((self.pixels, self.pixels + LEGEND_HEIGHT))

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
        value_label: str = "value",
    ):
        """Draw one frame on ``self.surface`` and return the surface.

        Args:
            free: ``[m, m]`` bool map.
            goal: the goal's ``(row, column)`` cell.
            position: the agent's ``(row, column)`` cell.
            trail: visited cells in order, drawn as a polyline (broken where it jumps, as across
                the seam of a torus).
            values: optional ``[m, m]`` value map, drawn as a heat map over free cells, with its
                legend (``value_label``, the minimum, the colour bar, the maximum) under the map.
            policy: optional ``[m, m]`` action per cell (-1 for none) or ``[moves, m, m]`` action
                scores (the best is drawn), drawn as arrows on free cells.
            moves: 4 or 8 (the meaning of policy's actions).
        """
        pg = self.pygame
        image, span = np.where(free[..., None], FREE, WALL), None
        if values is not None:
            values = np.asarray(values, dtype=np.float64)
            if values.shape != free.shape:
                raise ValueError(f"values overlay must be [m, m] = {free.shape}, got {values.shape}")
            image = np.where(free[..., None], heat_colours(values, free), image)
            span = value_range(values, free)
        pixels = np.repeat(np.repeat(image, self.cell, axis=0), self.cell, axis=1)
        pixels = np.concatenate([pixels, value_legend(self.pixels, span, value_label)])
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
