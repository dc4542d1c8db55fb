"""Full sensitivities ``d tau*/d theta`` of a solved trajectory problem (DiLQR's Algorithm 1), by the
core's forward-mode IFT (:func:`~idplan.solvers.implicit_jvp`) with the Riccati solve."""

from __future__ import annotations

import torch

from ..core.problems import implicit_jvp
from .kkt import RiccatiSolve, split_flat
from .solution import TrajectorySolution


def trajectory_jacobian(solution: TrajectorySolution, wrt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The full sensitivities ``d x*/d theta`` and ``d u*/d theta`` for a low-dimensional tensor ``theta``.

    ``theta`` is anything the solved problem depends on: a parameter the dynamics or cost close over,
    ``x_init``, a bound, or an :func:`lqr` tensor. Forward mode on the KKT conditions: one O(T)
    Riccati solve of ``(dR/dz) s = -dR/dtheta e_j`` per entry of ``theta``. Controls held at a bound
    have zero rows.

    Returns:
        ``dX [T, B, n, *theta.shape]`` and ``dU [T, B, m, *theta.shape]``.

    Raises:
        ValueError: a solution not from :func:`ilqr`/:func:`lqr`, or ``wrt`` the problem does not
            depend on through autograd.
    """
    solved = solution.solved
    if solved is None:
        raise ValueError("trajectory_jacobian needs a TrajectorySolution returned by ilqr() or lqr()")
    if not wrt.requires_grad:
        raise ValueError("wrt must require grad (the problem must depend on it through autograd)")
    T, batch, n = solved.X.shape
    m = solved.U.shape[-1]
    tangents = torch.eye(wrt.numel(), dtype=wrt.dtype, device=wrt.device).reshape(wrt.numel(), *wrt.shape)
    columns = implicit_jvp(
        lambda z, x0: solved.residual(z, x0),
        solved.z_star(),
        solved.x_init,
        wrt,
        tangents,
        linear_solver=RiccatiSolve(solved.kkt_system()),
    )  # [K, B, N]
    dX, dU, _ = zip(*(split_flat(column, T, n, m) for column in columns))
    shape = tuple(wrt.shape)
    return (
        torch.stack(dX, -1).reshape(T, batch, n, *shape),
        torch.stack(dU, -1).reshape(T, batch, m, *shape),
    )
