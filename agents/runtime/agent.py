"""The one agent protocol of the Gymnasium loop (``idplan play``, rollout GIFs, the examples).

As Stable-Baselines3's policies have it: a learned agent's ``forward`` maps a torch batch of
observations to a torch batch of actions, and ``act`` (or SB3's ``predict``) maps one environment
observation (numpy) to one action (numpy or int). ``reset`` starts an episode (forgets warm starts
and cached plans); ``draw_on`` overlays what the agent plans on the environment's frames.
"""

from __future__ import annotations

from typing import Any


class Agent:
    """Base of every agent: :class:`~.planner_agents.PlannerAgent`, :class:`~.planner_agents.MappedPlannerAgent`,
    :class:`~.control_agents.MPCAgent`, :class:`~.control_agents.PixelMPCAgent`,
    :class:`~.control_agents.TrueStateAgent`, :class:`~.baseline_agents.RandomAgent`,
    :class:`~.baseline_agents.MazeExpert`."""

    def act(self, observation: Any) -> Any:
        """The action for one environment observation."""
        raise NotImplementedError

    def predict(self, observation: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True):
        """SB3's signature: ``(action, state)`` for one observation (the agents keep their own state)."""
        return self.act(observation), state

    def reset(self) -> None:
        """Start of an episode (nothing to forget by default)."""

    def draw_on(self, env) -> None:
        """Overlay the agent's plan on ``env``'s frames (nothing to draw by default)."""
