"""A planar two-link arm among obstacles, planned on its configuration space: ``idplan/ArmCSpace-v0``."""

from __future__ import annotations

from typing import Any

import numpy as np

from .._checks import check_int
from ..maze.env import GridMazeEnv
from .geometry import (
    ArmGeometry,
    bins_to_angles,
    check_bins,
    check_obstacles,
    cspace_maps,
    forward_kinematics,
    random_obstacles,
)


class ArmCSpaceEnv(GridMazeEnv):
    """Move a planar two-link arm to a goal configuration, planning on its configuration space.

    ## Description
    A two-link arm (links 0.5 and 0.4 m, base at the centre of the ``[-1, 1]^2`` workspace; see
    :mod:`idplan.envs.arm.geometry`) shares the workspace with 0 to ``max_obstacles`` random discs
    and rectangles. Each joint angle is discretised into ``bins`` bins (18: 20 degrees per bin;
    36: 10 degrees); the configuration space (C-space) is the ``bins x bins`` torus of bin pairs,
    with a cell occupied when either link meets an obstacle (exact segment tests at the bin's
    configuration). Start and goal are collision-free configurations connected on the torus. This
    is the C-space manipulation task of the implicit differentiable planning paper: the same
    planners as on :class:`~idplan.envs.maze.GridMazeEnv` apply, with circular padding.

    ## Action Space
    ``Discrete(4)``: 0 ``q1 - 1 bin``, 1 ``q2 - 1 bin``, 2 ``q1 + 1 bin``, 3 ``q2 + 1 bin`` (GridMaze's
    N, W, S, E on the map whose rows index ``q1`` and columns ``q2``), wrapping around 0/360 degrees.
    A move into a colliding configuration leaves the arm in place (a bump).

    ## Observation Space
    As GridMaze's, on the C-space: ``"map"`` (``[bins, bins]`` int8, 1 where the arm collides),
    ``"goal"`` (one-hot goal configuration) and ``"position"`` (the ``(q1, q2)`` bins).

    ## Rewards, Episode End, Info
    As GridMaze's (-0.01 a step, -0.1 more for a bump, +1 at the goal; ``"distance"``,
    ``"optimal_length"``, ``"bumped"``, ``"is_success"``), distances measured on the torus. ``info``
    also has ``"obstacles"`` (``[max_obstacles, 5]``, see :mod:`.geometry`).

    ## Starting State
    On ``reset`` obstacles are drawn, then the goal and the start among the collision-free
    configurations connected to it. ``options`` may fix ``"obstacles"`` (``[K, 5]`` rows),
    ``"goal"`` and ``"start"`` (``(q1, q2)`` bins); a configuration in collision, or one with no
    path to the goal, raises ``ValueError``.

    ## Arguments
    - ``bins``: bins per joint (default 18; an int >= 5).
    - ``max_obstacles``: default 5.
    - ``geometry``: an :class:`~idplan.envs.arm.ArmGeometry` (link lengths, workspace).
    - ``max_episode_steps``: default ``2 * bins * bins``.
    - ``render_mode``: ``None``, ``"human"`` or ``"rgb_array"``: the workspace with the arm, its
      end-effector trail and the goal pose as a ghost, beside the C-space map with the path.

    ## Version History
    - v0: initial version.
    """

    torus = True
    _task_option = "obstacles"
    _blocked = "is in collision"

    def __init__(
        self,
        bins: int = 18,
        max_obstacles: int = 5,
        geometry: ArmGeometry = ArmGeometry(),
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ):
        bins = check_bins(bins)
        max_obstacles = check_int(max_obstacles, "max_obstacles", 0)
        super().__init__(size=bins, moves=4, max_episode_steps=max_episode_steps, render_mode=render_mode)
        self.bins, self.max_obstacles, self.geometry = bins, max_obstacles, geometry
        self.obstacles: np.ndarray | None = None

    # ------------------------------------------------------------------ tasks
    def _draw_task(self) -> np.ndarray:
        self.obstacles = random_obstacles(1, self.np_random, self.max_obstacles, self.geometry)[0]
        return ~cspace_maps(self.obstacles[None], self.bins, self.geometry)[0]

    def _option_task(self, value) -> np.ndarray:
        try:
            obstacles = check_obstacles(value)
        except ValueError as error:
            raise ValueError(f"options['obstacles']: {error}") from None
        free = ~cspace_maps(obstacles[None], self.bins, self.geometry)[0]
        if not free.any():
            raise ValueError("options['obstacles'] leave no collision-free configuration")
        self.obstacles = obstacles
        return free

    def _info(self, bumped: bool) -> dict[str, Any]:
        return {**super()._info(bumped), "obstacles": self.obstacles.copy()}

    def configuration(self, cell: tuple[int, int] | None = None) -> np.ndarray:
        """Joint angles ``[2]`` (radians) of a C-space cell (default: the arm's current one)."""
        return bins_to_angles(self.position if cell is None else cell, self.bins)

    def end_effector(self, cell: tuple[int, int] | None = None) -> np.ndarray:
        """Workspace position ``[2]`` of the tip at a C-space cell (default: the current one)."""
        return forward_kinematics(self.configuration(cell), self.geometry)[1]

    # ------------------------------------------------------------------ rendering
    # render() is GridMaze's: the frame shows the workspace (arm, end-effector trail, goal ghost)
    # beside the C-space map with the path and any overlay
    def _make_renderer(self):
        from .rendering import ArmRenderer

        return ArmRenderer(self.bins, self.geometry)

    def _draw_frame(self):
        return self._renderer.draw(self.obstacles, self.free, self.goal, self.position, self.trail, **self._overlay)

    def _caption(self) -> str:
        return f"idplan arm {self.bins}x{self.bins}"
