"""idplan.agents: planners and controllers built on the solver core, and agents that use them.

Subpackages: :mod:`.planners`, :mod:`.mappers`, :mod:`.control`, :mod:`.training`, :mod:`.runtime`;
``cli`` parses the ``idplan`` command line. The names below are the public API.
"""

from .control import ILQRController, ShootingMPC
from .mappers import MappedPlanner, PanoramaMapper, WorkspaceMapper
from .planners import GPPN, MODES, PLANNERS, VIN, ConvGPPN, GatedVIN, Planner, PlanOutput, SymVIN, make_planner
from .runtime import Agent, MappedPlannerAgent, MPCAgent, PlannerAgent
from .training import (
    TrainConfig,
    build_planner,
    evaluate_planner,
    load_checkpoint,
    planner_config,
    save_checkpoint,
    train_planner,
)

__all__ = [
    "PLANNERS",
    "MODES",
    "Planner",
    "PlanOutput",
    "GatedVIN",
    "VIN",
    "SymVIN",
    "ConvGPPN",
    "GPPN",
    "make_planner",
    "MappedPlanner",
    "PanoramaMapper",
    "WorkspaceMapper",
    "ILQRController",
    "MPCAgent",
    "ShootingMPC",
    "Agent",
    "PlannerAgent",
    "MappedPlannerAgent",
    "TrainConfig",
    "train_planner",
    "evaluate_planner",
    "planner_config",
    "build_planner",
    "save_checkpoint",
    "load_checkpoint",
]
