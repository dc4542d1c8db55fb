"""GridMaze: 2D navigation to a goal on a grid map (``idplan/GridMaze-v0``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .._checks import check_reset_options
from .dataset import random_free_cells
from .generation import GENERATORS, generate_maps
from .shortest_paths import bfs_distances
from .transition import grid_step, move_offsets

STEP_REWARD = -0.01
"""GridMaze's reward for each step (reaching the goal gives :data:`GOAL_REWARD` instead)."""
BUMP_PENALTY = -0.1
"""Added to the step reward for a move into an obstacle or off the map."""
GOAL_REWARD = 1.0
"""The reward of the step that reaches the goal."""


class GridMazeEnv(gym.Env):
    """Navigate a grid maze to its goal.

    ## Description
    The agent sits on a cell of an ``m x m`` grid of free cells and obstacles (the border is
    always obstacle) and must reach the goal cell. Maps come from GPPN's maze generator (a
    depth-first backtracker maze with interior walls removed at a per-maze rate drawn from
    U[0, 1]) or VIN's random rectangular obstacles. This is the 2D-navigation task of the
    implicit differentiable planning papers; datasets of the same tasks with expert labels come
    from :func:`idplan.envs.maze.generate_dataset`.

    ## Action Space
    ``Discrete(4)``: 0 North (row - 1), 1 West (column - 1), 2 South (row + 1), 3 East
    (column + 1). With ``moves=8``, ``Discrete(8)`` adds 4 North-West, 5 South-West, 6 South-East,
    7 North-East. A move into an obstacle or off the map leaves the agent in place (a bump); moves
    are :func:`~idplan.envs.maze.transition.grid_step`'s, as in the datasets and rollouts.

    ## Observation Space
    A ``Dict``:

    - ``"map"``: ``MultiBinary((m, m))`` int8, 1 on obstacles, 0 on free cells.
    - ``"goal"``: ``MultiBinary((m, m))`` int8, one-hot: 1 on the goal cell.
    - ``"position"``: ``MultiDiscrete([m, m])`` int64, the agent's ``(row, column)``.

    ## Rewards
    -0.01 per step; -0.1 more for a bump; reaching the goal gives +1 (instead of the step cost).

    ## Starting State
    On ``reset`` a map is drawn, then a goal uniformly among its free cells, then a start
    uniformly among the other free cells with a path to the goal, all from ``self.np_random``.
    ``options`` may fix any of them (see :meth:`reset`).

    ## Episode End
    Terminated when the agent reaches the goal; truncated after ``max_episode_steps`` steps.

    ## Info
    ``"distance"``: shortest-path length (in steps) from the agent's cell to the goal;
    ``"optimal_length"``: that length from the start of the episode; ``"bumped"``: whether the last
    move hit an obstacle; ``"is_success"``: whether the goal is reached (Stable-Baselines3's key).

    ## Arguments
    - ``size``: map side ``m`` (default 15; any int >= 5, odd sizes give classic mazes).
    - ``generator``: ``"maze"`` (default) or ``"obstacles"``.
    - ``moves``: 4 (default) or 8.
    - ``max_episode_steps``: default ``2 * m * m``.
    - ``render_mode``: ``None``, ``"human"`` (a pygame window) or ``"rgb_array"``.

    Rendering needs pygame (``pip install "idplan[render]"``). An agent may draw its value map and
    policy on the frames with :meth:`set_overlay`; :meth:`true_overlay` is the task's own value map
    (minus the shortest-path steps to the goal). A legend strip under the map names the value map
    and gives its colour bar's minimum and maximum.

    ## Version History
    - v0: initial version.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 8}
    _MAX_DRAWS = 1000  # maps drawn to satisfy given options before giving up
    torus = False  # whether the map wraps around at its edges (subclasses on a torus set it)
    _task_option = "map"  # the reset option that fixes the map
    _blocked = "lies on an obstacle"  # how errors describe a cell that is not free

    def __init__(
        self,
        size: int = 15,
        generator: str = "maze",
        moves: int = 4,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ):
        if not isinstance(size, (int, np.integer)) or size < 5:
            raise ValueError(f"size must be an int >= 5, got {size!r}")
        if generator not in GENERATORS:
            raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")
        move_offsets(moves)  # 4 or 8, else ValueError
        if max_episode_steps is None:
            max_episode_steps = 2 * size * size
        if not isinstance(max_episode_steps, (int, np.integer)) or max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be a positive int, got {max_episode_steps!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.size, self.generator, self.moves = int(size), generator, moves
        self.max_episode_steps = int(max_episode_steps)
        self.render_mode = render_mode
        self.action_space = spaces.Discrete(moves)
        self.observation_space = spaces.Dict(
            {
                "map": spaces.MultiBinary((size, size)),
                "goal": spaces.MultiBinary((size, size)),
                "position": spaces.MultiDiscrete([size, size]),
            }
        )
        self.free: np.ndarray | None = None
        self._renderer = None
        self._window = None
        self._overlay: dict[str, Any] = {}

    # ------------------------------------------------------------------ episode
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start an episode on a new task.

        Args:
            seed: seeds ``self.np_random`` (first reset, or to replay).
            options: may fix the task, each entry validated:

                - ``"map"``: ``(m, m)`` array of 0/1 (or bool), 1 on obstacles;
                - ``"goal"``: ``(row, column)`` of a free cell;
                - ``"start"``: ``(row, column)`` of a free cell with a path to the goal.

                Unset entries are drawn. A bad or unknown entry raises ``ValueError`` naming it;
                ``options`` that are not a dict raise ``TypeError``.
        """
        super().reset(seed=seed)
        options = check_reset_options(options, (self._task_option, "goal", "start"))
        free = self._option_task(options[self._task_option]) if self._task_option in options else None
        goal, start = (self._option_cell(options, name) for name in ("goal", "start"))
        if goal is not None and goal == start:
            raise ValueError(f"options['start'] {start} is the goal")
        for _ in range(self._MAX_DRAWS):
            task_free = free if free is not None else self._draw_task()
            blocked = [
                (name, cell)
                for name, cell in (("goal", goal), ("start", start))
                if cell is not None and not task_free[cell]
            ]
            if blocked:
                if free is not None:
                    raise ValueError(f"options['{blocked[0][0]}'] {blocked[0][1]} {self._blocked}")
                continue  # a drawn map covers a given cell: draw another
            task_goal = goal
            if task_goal is None:  # uniform over free cells, or over those a given start can reach
                near = None if start is None else self._distances(task_free, start) > 0
                if near is not None and not near.any():
                    if free is not None:
                        raise ValueError(f"options['start'] {start} has no path to any other cell")
                    continue
                task_goal = tuple(random_free_cells(task_free[None], self.np_random, where=near)[0])
            distance = self._distances(task_free, task_goal)[0]
            if (distance[start] > 0) if start is not None else (distance > 0).any():
                break
            if free is not None and (goal is not None or start is not None):
                raise ValueError(
                    f"options['start'] {start} has no path to the goal"
                    if start is not None
                    else f"options['{self._task_option}']/['goal']: no free cell has a path to the goal"
                )
        else:
            raise ValueError(f"no task satisfying options {sorted(options)} found in {self._MAX_DRAWS} draws")
        self.free, self.goal, self.distance = task_free, (int(task_goal[0]), int(task_goal[1])), distance
        if start is None:
            start = tuple(random_free_cells(task_free[None], self.np_random, where=(distance > 0)[None])[0])
        self.position = (int(start[0]), int(start[1]))
        self.optimal_length = int(distance[self.position])
        self.steps = 0
        self.trail = [self.position]
        self.clear_overlay()
        if self.render_mode == "human":
            self.render()
        return self._observation(), self._info(bumped=False)

    def step(self, action):
        if self.free is None:
            raise RuntimeError("GridMazeEnv: call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an int in [0, {self.moves}), got {action!r}")
        cell = self.position[0] * self.size + self.position[1]
        reached = int(grid_step(self.free, cell, int(action), self.moves, self.torus))
        bumped = reached == cell
        if not bumped:
            self.position = divmod(reached, self.size)
            self.trail.append(self.position)
        self.steps += 1
        terminated = self.position == self.goal
        if terminated:
            reward = GOAL_REWARD
        else:
            reward = STEP_REWARD + (BUMP_PENALTY if bumped else 0.0)
        truncated = not terminated and self.steps >= self.max_episode_steps
        if self.render_mode == "human":
            self.render()
        return self._observation(), reward, terminated, truncated, self._info(bumped)

    def _observation(self) -> dict[str, np.ndarray]:
        goal = np.zeros((self.size, self.size), dtype=np.int8)
        goal[self.goal] = 1
        return {
            "map": (~self.free).astype(np.int8),
            "goal": goal,
            "position": np.array(self.position, dtype=np.int64),
        }

    def _info(self, bumped: bool) -> dict[str, Any]:
        return {
            "distance": int(self.distance[self.position]),
            "optimal_length": self.optimal_length,
            "bumped": bumped,
            "is_success": self.position == self.goal,
        }

    # ------------------------------------------------------------------ tasks
    def _draw_task(self) -> np.ndarray:
        """Draw a task from ``self.np_random``; returns its ``[m, m]`` free map."""
        return generate_maps(1, self.size, self.np_random, self.generator)[0]

    def _distances(self, free: np.ndarray, cell: tuple[int, int]) -> np.ndarray:
        """``[1, m, m]`` shortest-path distances to ``cell`` on ``free``."""
        return bfs_distances(free[None], np.array([cell]), self.moves, self.torus)

    def _option_task(self, value) -> np.ndarray:
        """The free map of ``options["map"]`` (validated)."""
        grid = np.asarray(value)
        if grid.shape != (self.size, self.size):
            raise ValueError(f"options['map'] must have shape ({self.size}, {self.size}), got {grid.shape}")
        if grid.dtype != np.bool_ and not np.issubdtype(grid.dtype, np.integer):
            raise ValueError(f"options['map'] must be bool or integer 0/1 (1 = obstacle), got dtype {grid.dtype}")
        if not np.isin(grid, (0, 1)).all():
            raise ValueError("options['map'] must hold only 0 (free) and 1 (obstacle)")
        free = grid == 0
        if not free.any():
            raise ValueError("options['map'] has no free cell")
        return free

    def _option_cell(self, options: dict, name: str) -> tuple[int, int] | None:
        if name not in options:
            return None
        cell = np.asarray(options[name])
        if cell.shape != (2,) or not np.issubdtype(cell.dtype, np.integer):
            raise ValueError(f"options['{name}'] must be an integer (row, column) pair, got {options[name]!r}")
        row, col = int(cell[0]), int(cell[1])
        if not (0 <= row < self.size and 0 <= col < self.size):
            raise ValueError(f"options['{name}'] {(row, col)} lies outside the {self.size}x{self.size} map")
        return row, col

    # ------------------------------------------------------------------ rendering
    def set_overlay(
        self, values: np.ndarray | None = None, policy: np.ndarray | None = None, value_label: str = "value"
    ) -> None:
        """Draw an agent's value map (``[m, m]``, heat map; its legend names it ``value_label``) and/or
        policy (``[m, m]`` actions or ``[moves, m, m]`` scores, arrows) on the following frames, until
        the next reset."""
        m = self.size
        if values is not None and np.shape(values) != (m, m):
            raise ValueError(f"values must be [{m}, {m}], got {np.shape(values)}")
        if policy is not None and np.shape(policy) not in ((m, m), (self.moves, m, m)):
            raise ValueError(f"policy must be [{m}, {m}] or [{self.moves}, {m}, {m}], got {np.shape(policy)}")
        self._overlay = {"values": values, "policy": policy, "value_label": value_label}

    def clear_overlay(self) -> None:
        """Remove the value and policy overlays."""
        self._overlay = {}

    def true_overlay(self) -> dict[str, Any]:
        """The task's own value map, for :meth:`set_overlay`: ``values [m, m]`` float, minus the
        shortest-path steps from each cell to the goal (the exact Bellman fixed point with unit step
        costs; NaN on obstacles and cells with no path), and its ``value_label``. It depends on the
        task alone, not on any agent."""
        if self.free is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before true_overlay()")
        values = np.where(self.distance >= 0, -self.distance, np.nan).astype(np.float64)
        return {"values": values, "value_label": "true value (-steps)"}

    def render(self):
        """The current frame: ``[H, W, 3]`` uint8 in ``"rgb_array"`` mode; drawn in a window in ``"human"``."""
        if self.render_mode is None:
            gym.logger.warn('GridMazeEnv.render() without a render_mode: pass render_mode="rgb_array" or "human"')
            return None
        if self.free is None:
            raise RuntimeError("GridMazeEnv: call reset() before render()")
        if self._renderer is None:
            self._renderer = self._make_renderer()
        surface = self._draw_frame()
        if self.render_mode == "rgb_array":
            return self._renderer.to_array()
        if self._window is None:
            from ..rendering import HumanWindow

            self._window = HumanWindow(self._caption(), self.metadata["render_fps"])
        self._window.show(surface)
        return None

    def _make_renderer(self):
        from .rendering import MazeRenderer

        return MazeRenderer(self.size)

    def _draw_frame(self):
        """Draw the current frame with ``self._renderer``; returns the pygame surface."""
        return self._renderer.draw(self.free, self.goal, self.position, self.trail, moves=self.moves, **self._overlay)

    def _caption(self) -> str:
        return f"idplan GridMaze {self.size}x{self.size}"

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None
        self._renderer = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_renderer=None, _window=None)  # pygame objects do not pickle
        return state
