"""Agents without a learned model: uniformly random actions, and the BFS expert on GridMaze."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from ...envs import optimal_actions, pick_action
from .agent import Agent


class RandomAgent(Agent):
    """Uniformly random actions from the env's (seeded) action space."""

    def __init__(self, env: gym.Env, seed: int):
        self.space = env.action_space
        self.space.seed(seed)

    def act(self, observation) -> Any:
        return self.space.sample()


class MazeExpert(Agent):
    """The BFS expert on GridMaze: a shortest-path action from the agent's cell (ties broken by ``rng``)."""

    def __init__(self, env: gym.Env, seed: int):
        self.env = env.unwrapped
        self.rng = np.random.default_rng(seed)

    def act(self, observation) -> int:
        maze = self.env
        optimal = optimal_actions(maze.free[None], maze.distance[None], maze.moves, maze.torus)
        row, col = observation["position"]
        return int(pick_action(optimal, self.rng)[0][row, col])
