"""Mappers: networks that turn raw observations (MiniWorld panoramas, the arm's workspace image)
into the occupancy maps a planner plans on, and :class:`MappedPlanner`, the pair (trained by
:mod:`idplan.agents.training.mapped`)."""

from .mapped import MappedPlanner, occupancy_loss
from .panorama import PanoramaMapper
from .workspace import WorkspaceMapper

__all__ = ["MappedPlanner", "PanoramaMapper", "WorkspaceMapper", "occupancy_loss"]
