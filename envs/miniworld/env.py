"""Visual navigation in a MiniWorld 3D maze (``idplan/MiniWorldNav-v0``).

MiniWorld is an optional extra (``pip install "idplan[miniworld]"``) and is imported only when the
first world is built (:func:`load_maze_world`), never when :mod:`idplan.envs` is imported: on a
machine with no display, importing it needs pyglet's headless mode, which
:mod:`.world` sets before the import.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .._checks import check_int
from ..maze.env import GridMazeEnv

SYSTEM_PACKAGES = "libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglu1-mesa"
"""The Debian/Ubuntu packages MiniWorld needs to render headless through Mesa's EGL (``apt-get install``)."""
VIEWS = 4
"""The views of a panorama, one per direction: N, W, S, E."""


def load_maze_world():
    """The :class:`~idplan.envs.miniworld.world.MazeWorld` class (imports MiniWorld), or an
    ``ImportError`` that says what to install."""
    try:
        from .world import MazeWorld
    except ImportError as error:
        raise ImportError(
            "idplan/MiniWorldNav-v0 needs MiniWorld: pip install 'idplan[miniworld]' "
            f"(and, with no display, the EGL/OpenGL libraries: apt-get install {SYSTEM_PACKAGES}); {error}"
        ) from error
    except Exception as error:  # pyglet's display and GL-loading errors are not ImportErrors
        raise ImportError(
            f"MiniWorld could not start OpenGL ({type(error).__name__}: {error}). With no display it renders "
            f"through Mesa's EGL: apt-get install {SYSTEM_PACKAGES}; PYGLET_HEADLESS=true forces headless mode"
        ) from error
    return MazeWorld


class MiniWorldNavEnv(GridMazeEnv):
    """Navigate a 3D maze seen only through egocentric panoramas.

    ## Description
    The task is GridMaze's (a maze drawn by GPPN's generator, a goal, a start, the BFS expert), but
    the map is hidden: the maze is built as a MiniWorld 3D world (textured wall blocks on obstacle
    cells, a green box on the goal; :class:`~idplan.envs.miniworld.world.MazeWorld`) and the agent
    sees RGB views from the cells' centres. This is the visual-navigation task of GPPN and of the
    implicit differentiable planning paper: a mapper learns the map from the panoramas of all
    cells, and a planner plans on it.

    ## Action Space
    ``Discrete(4)``: 0 North, 1 West, 2 South, 3 East, as GridMaze (a move into a wall is a bump).

    ## Observation Space
    A ``Dict``:

    - ``"panorama"``: ``Box(0, 255, (4, S, S, 3), uint8)``: the views from the agent's cell facing
      N, W, S, E (``S = view_size``, 32 by default; each view 90 degrees wide).
    - ``"panoramas"``: ``Box(0, 255, (m, m, 4, S, S, 3), uint8)``: the panoramas of every cell
      (obstacle cells included), rendered once per maze and cached; the mapper's input.
    - ``"goal"``: ``MultiBinary((m, m))`` int8, one-hot goal.
    - ``"position"``: ``MultiDiscrete([m, m])``, the agent's ``(row, column)``.

    ## Rewards, Starting State, Episode End, Info
    As GridMaze's. ``info["map"]`` (``[m, m]`` int8, 1 on walls) carries the hidden map for
    supervision and evaluation. ``options`` may fix ``"map"``, ``"goal"`` and ``"start"``.

    ## Rendering
    ``"rgb_array"`` and ``"human"`` (a pygame window) frames show MiniWorld's first-person view
    (facing the last move's direction), its top view (the agent as a red triangle), and the map
    with the path: the true map, or the map an agent predicts (``set_overlay(occupancy=...)``) with
    its value map and policy.

    ## Arguments
    - ``size``: maze side ``m`` (default 15).
    - ``view_size``: side of each view (default 32).
    - ``panel``: side of each rendered panel in pixels (default 240).
    - ``max_episode_steps``: default ``2 * m * m``.

    Rendering the 900 views of a 15x15 maze takes about 0.35 s on a CPU core (Mesa's llvmpipe; see
    ``benchmarks/miniworld_render.py``); the first world of a process about 1.5 s more (imports,
    EGL and the OpenGL context).

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 4}

    def __init__(
        self,
        size: int = 15,
        view_size: int = 32,
        panel: int = 240,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ):
        super().__init__(size=size, moves=4, max_episode_steps=max_episode_steps, render_mode=render_mode)
        self.view_size = check_int(view_size, "view_size", 8)
        self.panel = check_int(panel, "panel", 32)
        m, s = self.size, self.view_size
        self.observation_space = spaces.Dict(
            {
                "panorama": spaces.Box(0, 255, (VIEWS, s, s, 3), np.uint8),
                "panoramas": spaces.Box(0, 255, (m, m, VIEWS, s, s, 3), np.uint8),
                "goal": spaces.MultiBinary((m, m)),
                "position": spaces.MultiDiscrete([m, m]),
            }
        )
        self.world = None
        self.heading = 0
        self._panoramas: np.ndarray | None = None
        self._overlay_occupancy: np.ndarray | None = None

    # ------------------------------------------------------------------ episode
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._panoramas = None
        self.heading = 0
        return super().reset(seed=seed, options=options)

    def step(self, action):
        if self.free is not None and self.action_space.contains(action):
            self.heading = int(action)  # the camera turns to the move's direction, bump or not
        return super().step(action)

    def _build_world(self) -> None:
        """Build (or rebuild) the 3D world of the current maze and render its panoramas."""
        if self.world is None:
            self.world = load_maze_world()(self.free, self.goal, self.view_size, self.panel)
        else:
            self.world.set_maze(self.free, self.goal)
        self._panoramas = self.world.panoramas()

    def _observation(self) -> dict[str, np.ndarray]:
        if self._panoramas is None:
            self._build_world()
        grid = super()._observation()  # GridMaze's goal and position; its map stays hidden
        return {
            "panorama": self._panoramas[self.position].copy(),
            "panoramas": self._panoramas.copy(),  # 2.8 MB at 15x15: a memcpy, well below a render
            "goal": grid["goal"],
            "position": grid["position"],
        }

    def _info(self, bumped: bool) -> dict[str, Any]:
        return {**super()._info(bumped), "map": (~self.free).astype(np.int8)}

    # ------------------------------------------------------------------ rendering
    def set_overlay(self, values=None, policy=None, value_label="value", occupancy: np.ndarray | None = None) -> None:
        """GridMaze's value/policy overlay, drawn on ``occupancy`` (``[m, m]`` obstacle
        probabilities an agent predicts, shown thresholded at 0.5) instead of the true map when given."""
        super().set_overlay(values, policy, value_label)
        if occupancy is not None and np.shape(occupancy) != (self.size, self.size):
            raise ValueError(f"occupancy must be [{self.size}, {self.size}], got {np.shape(occupancy)}")
        self._overlay_occupancy = None if occupancy is None else np.asarray(occupancy)

    def clear_overlay(self) -> None:
        super().clear_overlay()
        self._overlay_occupancy = None

    def _make_renderer(self):
        from .rendering import NavigationRenderer

        return NavigationRenderer(self.size, self.panel)

    def _draw_frame(self):
        if self._panoramas is None:  # a new maze not built yet (human mode renders before observing), or unpickled
            self._build_world()
        free = self.free if self._overlay_occupancy is None else self._overlay_occupancy < 0.5
        return self._renderer.draw(
            self.world.first_person(self.position, self.heading),
            self.world.top_view(self.position, self.heading),
            free,
            self.goal,
            self.position,
            self.trail,
            **self._overlay,
        )

    def _caption(self) -> str:
        return f"idplan MiniWorldNav {self.size}x{self.size}"

    def close(self):
        super().close()
        if self.world is not None:
            self.world.close()
            self.world = None
            self._panoramas = None

    def __getstate__(self):
        state = super().__getstate__()
        state.update(world=None, _panoramas=None)  # the OpenGL world is rebuilt on the next observation
        return state
