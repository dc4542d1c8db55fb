"""Agents in the Gymnasium loop, all on one protocol (:class:`Agent`: a torch ``forward`` where the
agent is learned, a numpy ``act``/``predict``, ``reset``, ``draw_on``): planner agents, controller
agents, baselines; ``idplan play`` (interactive pygame window or GIF); and the Stable-Baselines3
policies (``idplan.agents.runtime.sb3_policies``, imported on use: it needs stable-baselines3)."""

from .agent import Agent
from .baseline_agents import MazeExpert, RandomAgent
from .control_agents import MPCAgent, PixelMPCAgent, TrueStateAgent
from .interactive import make_agent, play, record_rollout
from .planner_agents import MappedPlannerAgent, PlannerAgent

__all__ = [
    "Agent",
    "PlannerAgent",
    "MappedPlannerAgent",
    "MPCAgent",
    "PixelMPCAgent",
    "TrueStateAgent",
    "RandomAgent",
    "MazeExpert",
    "make_agent",
    "play",
    "record_rollout",
]
