"""The adjoints of the trajectory solvers: values passed as ``adjoint=`` to :func:`ilqr` and :func:`lqr`.

Beside the core's :class:`~idplan.solvers.ImplicitAdjoint` (a Krylov solve of the KKT adjoint
system) and :class:`~idplan.solvers.UnrolledAdjoint` (autograd through every iteration):

- :class:`RiccatiAdjoint` (default): the implicit function theorem on the KKT conditions, its
  adjoint system solved exactly by one O(T) Riccati pass (:class:`~.kkt.RiccatiSolve`);
- :class:`LastLayerAdjoint`: DiffMPC's approximation (Amos et al. 2018), differentiating only the
  LQR approximation at the solution, its linearisation point held constant.

Both read the solve's ``structure`` (:class:`TrajectoryStructure`), which the trajectory solvers
hand to :func:`~idplan.solvers.implicit_solution`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from ..core.adjoint import ImplicitAdjoint, UnrolledAdjoint, make_adjoint
from ..core.implicit import Optimality
from ..core.solution import BackwardStats
from .kkt import KKTSystem, RiccatiSolve


class TrajectoryStructure(Protocol):
    """What the trajectory adjoints read of a solved problem."""

    def kkt_system(self) -> KKTSystem:
        """The KKT Jacobian at the solution, in the structure one Riccati pass solves."""

    def lqr_approximation(self) -> torch.Tensor:
        """The flat ``[B, N]`` solution of the LQR approximation at the solution, differentiable
        with the linearisation point held constant."""


@dataclass(frozen=True)
class RiccatiAdjoint:
    """Exact implicit gradients of a trajectory problem by one Riccati pass (O(T), direct).

    Args:
        rtol: the relative residual the pass must reach (default ``sqrt(eps)`` of the dtype: 1.5e-8
            in float64, a direct solve's rounding on a well-posed problem is far below); a miss (an
            ill-conditioned or singular KKT system) raises in ``backward()``.
    """

    rtol: float | None = None
    records_forward = False

    def apply(
        self, optimality: Optimality, z_star: torch.Tensor, flagged: torch.Tensor, backward_stats: BackwardStats
    ) -> torch.Tensor:
        rtol = self.rtol if self.rtol is not None else float(torch.finfo(z_star.dtype).eps) ** 0.5
        linear = RiccatiSolve(optimality.structure.kkt_system())
        adjoint = ImplicitAdjoint(linear_solver=linear, max_iter=1, rtol=rtol, throw=True)
        return adjoint.apply(optimality, z_star, flagged, backward_stats)


@dataclass(frozen=True)
class LastLayerAdjoint:
    """DiffMPC's gradient: the LQR approximation at the solution, differentiated exactly with the
    linearisation point held constant (misses how the linearisation moves with the parameters)."""

    records_forward = False

    def apply(
        self, optimality: Optimality, z_star: torch.Tensor, flagged: torch.Tensor, backward_stats: BackwardStats
    ) -> torch.Tensor:
        return optimality.structure.lqr_approximation()


TRAJECTORY_ADJOINTS: dict[str, Callable[[], Any]] = {
    "riccati": RiccatiAdjoint,
    "implicit": ImplicitAdjoint,
    "last_layer": LastLayerAdjoint,
    "unrolled": UnrolledAdjoint,
}
"""The adjoints of :func:`ilqr` and :func:`lqr` by the names they take (``adjoint="riccati"``)."""


def make_trajectory_adjoint(name_or_adjoint: Any) -> Any:
    """Resolve a trajectory adjoint given by name (see ``TRAJECTORY_ADJOINTS``) or pass an object through."""
    return make_adjoint(name_or_adjoint, TRAJECTORY_ADJOINTS)
