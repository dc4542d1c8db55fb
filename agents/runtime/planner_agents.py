"""A planner as an agent in a GridMaze loop: plans once per task, then reads actions off the plan."""

from __future__ import annotations

import inspect

import numpy as np
import torch

from ..planners.base import Planner
from .agent import Agent


def observation_to_input(observation: dict[str, np.ndarray]) -> torch.Tensor:
    """A GridMaze observation as the planner input ``[1, 2, m, m]`` (obstacles, goal)."""
    return torch.from_numpy(np.stack([observation["map"], observation["goal"]]).astype(np.float32))[None]


class PlannerAgent(Agent):
    """Acts greedily with a planner on ``idplan/GridMaze-v0`` observations.

    The plan (logits and value map of every cell) is computed once per map and goal and cached,
    so an episode costs one planner call.

    Args:
        planner: a trained :class:`~idplan.agents.planners.Planner`.
        device: where the planner runs.
    """

    def __init__(self, planner: Planner, device: str | torch.device = "cpu"):
        self.planner = planner.to(device).eval()
        self.device = torch.device(device)
        self._key: bytes | None = None
        self.logits: np.ndarray | None = None
        self.values: np.ndarray | None = None

    @torch.no_grad()
    def forward(self, inputs: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """Greedy actions ``[B]`` from planner inputs ``[B, 2, m, m]`` at ``positions [B, 2]`` (row, col)."""
        logits = self.planner(inputs.to(self.device)).logits
        rows, cols = positions[:, 0].to(self.device), positions[:, 1].to(self.device)
        return logits[torch.arange(len(logits), device=self.device), :, rows, cols].argmax(1)

    @torch.no_grad()
    def plan(self, observation: dict[str, np.ndarray]) -> None:
        """Plan for the observation's map and goal (no-op if already planned)."""
        key = observation["map"].tobytes() + observation["goal"].tobytes()
        if key == self._key:
            return
        out = self.planner(observation_to_input(observation).to(self.device))
        self.logits = out.logits[0].cpu().numpy()
        self.values = out.values[0, 0].cpu().numpy()
        self._key = key

    def reset(self) -> None:
        """Forget the plan (a new episode draws nothing until it plans)."""
        self._key, self.logits, self.values = None, None, None

    def act(self, observation: dict[str, np.ndarray]) -> int:
        """The greedy action at the agent's position (the plan is cached per map and goal)."""
        self.plan(observation)
        row, col = observation["position"]
        return int(self.logits[:, row, col].argmax())

    def draw_on(self, env) -> None:
        """Overlay the current plan's value map and policy arrows on a GridMaze env's frames."""
        if self.logits is None:
            raise RuntimeError("PlannerAgent.draw_on: no plan yet (call act or plan first)")
        free = env.unwrapped.free
        env.unwrapped.set_overlay(values=np.where(free, self.values, np.nan), policy=self.logits)


class MappedPlannerAgent(PlannerAgent):
    """Acts greedily with a :class:`~idplan.agents.mappers.MappedPlanner` that sees only
    observations (``idplan/MiniWorldNav-v0``'s panoramas, ``idplan/ArmWorkspace-v0``'s workspace
    image) and the goal, never the true map.

    Args:
        model (MappedPlanner): the mapper and planner.
        observation_key: the observation entry the mapper reads (``"panoramas"``, ``"workspace"``).
        device: where the model runs.
    """

    def __init__(self, model, observation_key: str = "panoramas", device: str | torch.device = "cpu"):
        super().__init__(model.planner, device)
        self.model = model.to(device).eval()
        self.observation_key = observation_key
        self.occupancy: np.ndarray | None = None

    @torch.no_grad()
    def plan(self, observation: dict[str, np.ndarray]) -> None:
        """Map and plan for the observation and goal (no-op if already planned).

        The observation goes to the mapper as the datasets give it: MiniWorldNav's panoramas
        ``[m, m, 4, S, S, 3]`` uint8 as they are, ArmWorkspace's image ``[P, P]`` as ``[1, P, P]``
        float; the goal as a one-hot map ``[1, m, m]`` (ArmWorkspace gives its cell ``(q1, q2)``)."""
        seen = observation[self.observation_key]
        key = seen.tobytes() + observation["goal"].tobytes()
        if key == self._key:
            return
        image = torch.from_numpy(np.ascontiguousarray(seen))
        if image.dim() == 2:  # a workspace image: one float channel
            image = image.float()[None]
        goal = np.asarray(observation["goal"])
        if goal.ndim == 1:  # a goal cell: its one-hot map over the mapper's bins
            cell, goal = goal, np.zeros((self.model.mapper.bins,) * 2, np.float32)
            goal[tuple(cell)] = 1.0
        goal = torch.from_numpy(goal.astype(np.float32))[None, None].to(self.device)
        out, occupancy = self.model(image[None].to(self.device), goal)
        self.logits = out.logits[0].cpu().numpy()
        self.values = out.values[0, 0].cpu().numpy()
        self.occupancy = torch.sigmoid(occupancy)[0, 0].cpu().numpy()
        self._key = key

    def draw_on(self, env) -> None:
        """Overlay the predicted map, with the value map and policy on its free cells."""
        if self.logits is None:
            raise RuntimeError("MappedPlannerAgent.draw_on: no plan yet (call act or plan first)")
        free = self.occupancy < 0.5
        values = np.where(free, self.values, np.nan)
        if "occupancy" in inspect.signature(env.unwrapped.set_overlay).parameters:  # MiniWorldNav draws it
            env.unwrapped.set_overlay(values=values, policy=self.logits, occupancy=self.occupancy)
        else:  # ArmWorkspace: on its C-space panel
            env.unwrapped.set_overlay(values=values, policy=self.logits)
