"""Agents without a learned model: uniformly random actions, and the BFS expert on GridMaze tasks.

Both draw the environment's own overlay where it has one (``true_overlay``: GridMaze, the arm's
C-space, MiniWorldNav): the task's true value map, with the expert's arrows on top for the expert.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ...envs import optimal_actions, pick_action
from .agent import Agent


class RandomAgent(Agent):
    """Uniformly random actions from the env's (seeded) action space.

    Its overlay is the env's true value map where the env has one (it depends on the task, not on
    the agent, so it shows how far from the goal the random walk wanders); no arrows, as a uniform
    policy prefers no action. Envs without their own overlay (the control envs) get none."""

    def __init__(self, env: gym.Env, seed: int):
        self.space = env.action_space
        self.space.seed(seed)

    def act(self, observation) -> Any:
        return self.space.sample()

    def draw_on(self, env) -> None:
        """Overlay ``env``'s true value map, when it has one."""
        if hasattr(env.unwrapped, "true_overlay"):
            env.unwrapped.set_overlay(**env.unwrapped.true_overlay())


class MazeExpert(Agent):
    """The BFS expert on a GridMaze task (GridMaze, the arm's C-space, MiniWorldNav's true map): a
    shortest-path action from the agent's cell. Ties are broken by ``rng`` once per task, so that
    the arrows it draws are the actions it takes."""

    def __init__(self, env: gym.Env, seed: int):
        self.env = env.unwrapped
        self.rng = np.random.default_rng(seed)
        self._key: bytes | None = None
        self.actions: np.ndarray | None = None

    def plan(self) -> np.ndarray:
        """``[m, m]`` int8: the expert's action in every cell of the env's current task (-1 on the
        goal, obstacles and cells with no path), drawn once per map and goal."""
        maze = self.env
        key = maze.free.tobytes() + bytes(str(maze.goal), "ascii")
        if key != self._key:
            optimal = optimal_actions(maze.free[None], maze.distance[None], maze.moves, maze.torus)
            self.actions, self._key = pick_action(optimal, self.rng)[0], key
        return self.actions

    def act(self, observation) -> int:
        row, col = observation["position"]
        return int(self.plan()[row, col])

    def draw_on(self, env) -> None:
        """Overlay the env's true value map and the expert's action in every cell (arrows)."""
        env.unwrapped.set_overlay(**env.unwrapped.true_overlay(), policy=self.plan())
