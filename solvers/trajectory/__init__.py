"""Trajectory optimisation: batched box-constrained LQR and iLQR (:mod:`.solve`, on the Riccati
iteration of :mod:`.iteration`), their KKT conditions and O(T) Riccati solve (:mod:`.kkt`), the
adjoints (:mod:`.adjoints`) and the sensitivities ``d tau*/d theta`` (:mod:`.sensitivity`)."""

from .adjoints import TRAJECTORY_ADJOINTS, LastLayerAdjoint, RiccatiAdjoint
from .riccati import box_qp
from .sensitivity import trajectory_jacobian
from .solution import TrajectorySolution, TrajectoryStats
from .solve import ilqr, lqr

__all__ = [
    "ilqr",
    "lqr",
    "trajectory_jacobian",
    "RiccatiAdjoint",
    "LastLayerAdjoint",
    "TRAJECTORY_ADJOINTS",
    "box_qp",
    "TrajectorySolution",
    "TrajectoryStats",
]
