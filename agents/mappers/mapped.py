"""Planning on a learned map: a mapper turns observations into an occupancy map, a planner plans on it.

:class:`MappedPlanner` feeds a mapper's occupancy (``sigmoid`` of its logits) and the goal map to a
planner. The mapper is trained by ordinary autograd, the planner by its own gradient (the implicit
adjoint for the implicit planners); the trainers are in :mod:`idplan.agents.training.mapped`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..planners.base import Planner, PlanOutput


class MappedPlanner(nn.Module):
    """A planner on the map a mapper predicts from observations.

    Args:
        mapper: observations ``[B, ...]`` -> occupancy logits ``[B, 1, m, m]``.
        planner: a planner on ``[B, 2, m, m]`` inputs (obstacle probability, goal).
    """

    def __init__(self, mapper: nn.Module, planner: Planner):
        super().__init__()
        self.mapper, self.planner = mapper, planner

    def forward(self, observation: torch.Tensor, goal: torch.Tensor) -> tuple[PlanOutput, torch.Tensor]:
        """``observation [B, ...]``, ``goal [B, 1, m, m]`` -> (the plan, occupancy logits ``[B, 1, m, m]``)."""
        occupancy = self.mapper(observation)
        return self.planner(torch.cat([torch.sigmoid(occupancy), goal], 1)), occupancy


def occupancy_loss(logits: torch.Tensor, obstacle_map: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of occupancy logits ``[B, 1, m, m]`` against the true map ``[B, 1, m, m]`` (1 = collision)."""
    return F.binary_cross_entropy_with_logits(logits, obstacle_map)


__all__ = ["MappedPlanner", "occupancy_loss"]
