"""A grid maze built as a MiniWorld 3D world, and the egocentric views rendered in it.

This module imports MiniWorld (and through it pyglet and OpenGL), so nothing imports it at package
import: :mod:`.env` loads it when the first world is built. With no display (no
``DISPLAY``/``WAYLAND_DISPLAY`` on Linux) it switches pyglet to headless rendering first (Mesa's EGL
renders off-screen; Debian packages ``libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglu1-mesa``);
where there is a display, pyglet keeps its windowed default. ``PYGLET_HEADLESS=true`` forces headless.

Geometry: the maze's cell ``(row, column)`` is the unit square ``x in [column, column + 1]``,
``z in [row, row + 1]`` of the floor; obstacle cells are textured wall blocks
(:class:`WallBlock`), the goal is a green box, and views are taken from the cell's centre at
:data:`HEADINGS` (North, West, South, East: GridMaze's action order), 90 degrees wide and high, so a
cell's four views cover the full circle.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import sys

import numpy as np
import pyglet

if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
    pyglet.options["headless"] = True  # before pyglet.window is imported (by MiniWorld below)

from miniworld.entity import Box, Entity  # noqa: E402
from miniworld.miniworld import MiniWorldEnv  # noqa: E402
from miniworld.opengl import Texture  # noqa: E402
from miniworld.params import DEFAULT_PARAMS  # noqa: E402
from pyglet.gl import (  # noqa: E402
    GL_QUADS,
    GL_TEXTURE_2D,
    glBegin,
    glColor3f,
    glEnable,
    glEnd,
    glNormal3f,
    glTexCoord2f,
    glVertex3f,
)

# camera headings (MiniWorld's ``dir``, radians; forward is (cos, 0, -sin)) of GridMaze's actions
# N (row - 1 = -z), W (column - 1 = -x), S (+z), E (+x)
HEADINGS = (math.pi / 2, math.pi, 3 * math.pi / 2, 0.0)
WALL_HEIGHT = 1.5  # metres; the camera (at half of it) cannot see over the walls
CAMERA_HEIGHT = 0.75
WALL_TEXTURE = "brick_wall"
FLOOR_TEXTURE = "floor_tiles_bw"
GOAL_SIZE = 0.4
GOAL_COLOUR = "green"  # the agent in the top view is red


class WallBlock(Entity):
    """A static ``1 x height x 1`` textured block filling the maze cell ``(row, column)``.

    Its four sides and top are drawn counter-clockwise from outside (so back faces are culled) with
    the texture's ``u`` running left to right as seen from outside on every side: the block looks
    the same from each of the four directions.
    """

    def __init__(self, row: int, column: int, height: float = WALL_HEIGHT, texture: str = WALL_TEXTURE):
        super().__init__()
        self.row, self.column = int(row), int(column)
        self.pos = np.array([column + 0.5, 0.0, row + 0.5])
        self.dir = 0.0
        self.height = height
        self.texture = Texture.get(texture)

    @property
    def is_static(self) -> bool:
        return True

    def render(self) -> None:
        x0, x1, z0, z1, h = self.column, self.column + 1, self.row, self.row + 1, self.height
        faces = (  # (normal, corners: top-right, top-left, bottom-left, bottom-right seen from outside)
            ((0, 0, 1), ((x1, h, z1), (x0, h, z1), (x0, 0, z1), (x1, 0, z1))),
            ((0, 0, -1), ((x0, h, z0), (x1, h, z0), (x1, 0, z0), (x0, 0, z0))),
            ((-1, 0, 0), ((x0, h, z1), (x0, h, z0), (x0, 0, z0), (x0, 0, z1))),
            ((1, 0, 0), ((x1, h, z0), (x1, h, z1), (x1, 0, z1), (x1, 0, z0))),
            ((0, 1, 0), ((x1, h, z1), (x1, h, z0), (x0, h, z0), (x0, h, z1))),
        )
        glEnable(GL_TEXTURE_2D)
        self.texture.bind()
        glColor3f(1, 1, 1)
        glBegin(GL_QUADS)
        for normal, corners in faces:
            glNormal3f(*normal)
            for (u, v), corner in zip(((1, 1), (0, 1), (0, 0), (1, 0)), corners):
                glTexCoord2f(u, v * h)
                glVertex3f(*corner)
        glEnd()


class MazeWorld(MiniWorldEnv):
    """MiniWorld's env subclassed to build its world from a grid-maze occupancy map.

    One open room covers the ``m x m`` floor; each obstacle cell holds a :class:`WallBlock`; the goal
    cell holds a red box. The agent does not move by MiniWorld's physics: :meth:`egocentric_view` places the
    camera at a cell's centre facing one of :data:`HEADINGS`. Rendering is deterministic (no domain
    randomisation; the light hangs above the map's centre, so the lighting is symmetric).

    Args:
        free: ``[m, m]`` bool, ``True`` on free cells.
        goal: ``(row, column)`` of the goal.
        view_size: side of the egocentric views in pixels (32 as in GPPN and the paper).
        panel: side of the rendering views (:meth:`top_view`, :meth:`first_person`) in pixels.
    """

    def __init__(self, free: np.ndarray, goal: tuple[int, int], view_size: int = 32, panel: int = 240):
        self._set_task(free, goal)  # MiniWorldEnv.__init__ calls reset(), which builds the world
        self.view_size, self.panel = view_size, panel
        params = DEFAULT_PARAMS.no_random()
        m = self.free.shape[0]
        params.set("light_pos", [m / 2, 2 * m, m / 2])
        with contextlib.redirect_stdout(io.StringIO()):  # MiniWorld prints its multisampling fallback
            super().__init__(
                obs_width=view_size, obs_height=view_size, window_width=panel, window_height=panel, params=params
            )

    def _set_task(self, free: np.ndarray, goal: tuple[int, int]) -> None:
        free = np.asarray(free)
        if free.ndim != 2 or free.shape[0] != free.shape[1] or free.dtype != np.bool_:
            raise ValueError(f"free must be a square [m, m] bool map, got {free.shape} {free.dtype}")
        row, column = (int(v) for v in goal)
        if not (0 <= row < free.shape[0] and 0 <= column < free.shape[1]) or not free[row, column]:
            raise ValueError(f"goal {(row, column)} is not a free cell of the {free.shape[0]}x{free.shape[0]} map")
        self.free, self.goal = free.copy(), (row, column)

    def set_maze(self, free: np.ndarray, goal: tuple[int, int]) -> None:
        """Rebuild the world for another maze in the same OpenGL context."""
        self._set_task(free, goal)
        self.reset()

    def _gen_world(self) -> None:
        m = self.free.shape[0]
        self.add_rect_room(0, m, 0, m, wall_tex=WALL_TEXTURE, floor_tex=FLOOR_TEXTURE, no_ceiling=True)
        for row, column in zip(*np.nonzero(~self.free)):
            self.entities.append(WallBlock(row, column))
        goal = Box(GOAL_COLOUR, GOAL_SIZE)
        goal.pos, goal.dir = self.cell_centre(self.goal), 0.0
        self.entities.append(goal)
        self.agent.pos, self.agent.dir = self.cell_centre(self.goal), HEADINGS[0]
        self.agent.cam_fov_y, self.agent.cam_height, self.agent.cam_fwd_disp, self.agent.cam_pitch = (
            90.0,
            CAMERA_HEIGHT,
            0.0,
            0.0,
        )

    @staticmethod
    def cell_centre(cell: tuple[int, int]) -> np.ndarray:
        """The floor point ``[3]`` (x, y = 0, z) at the centre of a maze cell."""
        return np.array([cell[1] + 0.5, 0.0, cell[0] + 0.5])

    def place(self, cell: tuple[int, int], heading: int) -> None:
        """Put the agent (camera) at ``cell``'s centre facing ``HEADINGS[heading]``."""
        self.agent.pos, self.agent.dir = self.cell_centre(cell), HEADINGS[heading]

    def egocentric_view(self, cell: tuple[int, int], heading: int) -> np.ndarray:
        """The ``[view_size, view_size, 3]`` uint8 egocentric view from ``cell`` facing ``HEADINGS[heading]``."""
        self.place(cell, heading)
        return self.render_obs()

    def panorama(self, cell: tuple[int, int]) -> np.ndarray:
        """The four views ``[4, S, S, 3]`` uint8 from ``cell`` (N, W, S, E)."""
        return np.stack([self.egocentric_view(cell, k) for k in range(len(HEADINGS))])

    def panoramas(self) -> np.ndarray:
        """Panoramas of every cell, obstacles included: ``[m, m, 4, S, S, 3]`` uint8.

        From an obstacle cell the camera sits inside its block, whose faces are culled from
        inside: it sees the neighbouring blocks, as in GPPN's renders.
        """
        m, s = self.free.shape[0], self.view_size
        out = np.empty((m, m, len(HEADINGS), s, s, 3), dtype=np.uint8)
        for row in range(m):
            for column in range(m):
                for k in range(len(HEADINGS)):
                    out[row, column, k] = self.egocentric_view((row, column), k)
        return out

    def first_person(self, cell: tuple[int, int], heading: int) -> np.ndarray:
        """A ``[panel, panel, 3]`` uint8 egocentric view (for display)."""
        self.place(cell, heading)
        return self.render_obs(self.vis_fb)

    def top_view(self, cell: tuple[int, int], heading: int) -> np.ndarray:
        """MiniWorld's ``[panel, panel, 3]`` uint8 top view, with the agent drawn at ``cell`` facing ``heading``."""
        self.place(cell, heading)
        return self.render_top_view(self.vis_fb)

    def wall_cells(self) -> set[tuple[int, int]]:
        """The cells that hold a :class:`WallBlock` in the built world."""
        return {(e.row, e.column) for e in self.entities if isinstance(e, WallBlock)}

    def close(self) -> None:
        super().close()
        self.shadow_window.close()
