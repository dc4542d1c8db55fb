"""Agents in the Gymnasium loop: planner and controller agents, ``idplan play`` (interactive pygame
window or GIF), and the Stable-Baselines3 policies (``idplan.agents.runtime.sb3_policies``, imported on
use: it needs stable-baselines3)."""

from .planner_agents import MappedPlannerAgent, PlannerAgent
from .play import play, record_rollout

__all__ = ["PlannerAgent", "MappedPlannerAgent", "play", "record_rollout"]
