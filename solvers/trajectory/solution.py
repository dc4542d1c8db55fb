"""What :func:`ilqr` and :func:`lqr` return."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.solution import BackwardStats


@dataclass
class TrajectoryStats:
    """Per-sample statistics of a trajectory solve (``[B]`` tensors).

    Attributes:
        iterations: Riccati iterations used (each: linearise, backward pass, line search).
        converged: the proposed step fell below the tolerance and the KKT residual is small.
        cost: total cost of the returned trajectory.
        kkt_residual: ``||R(z)|| / ||z||`` of the optimality conditions at the returned trajectory.
        regularisation: final Levenberg-Marquardt term on ``Quu``.
    """

    iterations: torch.Tensor
    converged: torch.Tensor
    cost: torch.Tensor
    kkt_residual: torch.Tensor
    regularisation: torch.Tensor

    def summary(self) -> str:
        b = self.converged.numel()
        return (
            f"{int(self.converged.sum())}/{b} converged, iterations max {int(self.iterations.max())}, "
            f"worst KKT residual {float(self.kkt_residual.max()):.3g}"
        )


@dataclass
class TrajectorySolution:
    """The optimal trajectories: ``x [T, B, n]``, ``u [T, B, m]`` (differentiable per ``gradient``),
    the costates ``costate [T, B, n]`` (no gradient), forward ``stats`` and, after ``backward()``,
    the adjoint's ``backward`` statistics (implicit mode)."""

    x: torch.Tensor
    u: torch.Tensor
    costate: torch.Tensor
    stats: TrajectoryStats
    backward: BackwardStats = field(default_factory=BackwardStats)
    solved: Any = field(default=None, repr=False)  # the SolvedTrajectory, for trajectory_jacobian
