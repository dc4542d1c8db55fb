"""Neural ODEs integrated by the backward (implicit) Euler scheme, each step an implicit layer (DIL 3.1).

``dx/dt = h(x, args)`` becomes, per step, the root problem ``x_{t+1} - x_t - dt h(x_{t+1}, args) = 0``,
solved by :func:`~idplan.solvers.root_find` (fixed-point iteration for non-stiff dynamics, Newton or
Broyden for stiff ones) and differentiated by the implicit function theorem at each step: the graph
holds one evaluation of ``h`` per step, never the inner iterations. The default adjoint is conjugate
gradients on the normal equations (two products per iteration; the step's Jacobian
``I - dt dh/dx`` is not symmetric), as the DIL paper proposes; ``"gmres"`` and ``"dense"`` (the
naive IFT) are the alternatives.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core import ConvergenceError, ImplicitAdjoint, default_tolerances, root_find


@dataclass
class EulerTrajectory:
    """``x``: ``[steps + 1, B, n]`` (``x[0] = x0``); per step ``iterations`` and ``rel_residual`` (``[steps, B]``)."""

    x: torch.Tensor
    iterations: torch.Tensor
    rel_residual: torch.Tensor


def backward_euler(
    h: Callable[[torch.Tensor, Any], torch.Tensor],
    x0: torch.Tensor,
    dt: float,
    steps: int,
    args: Any = None,
    *,
    solver: Any = "forward",
    adjoint: Any = "implicit",
    max_iter: int = 100,
    rtol: float | None = None,
    atol: float | None = None,
) -> EulerTrajectory:
    """Integrate ``dx/dt = h(x, args)`` over ``steps`` backward-Euler steps of size ``dt``.

    Args:
        h: the vector field, ``h(x [B, n], args) -> [B, n]`` (an ``nn.Module`` closure works too).
        x0: ``[B, n]`` initial states.
        dt: step size (> 0); backward Euler is L-stable, so stiff dynamics allow large steps.
        steps: number of steps (>= 1).
        solver: each step's forward solver: ``"forward"`` (``z <- x_t + dt h(z)``, contracting when
            ``dt Lip(h) < 1``), ``"newton"``, ``"broyden"``, ``"anderson"``, or a solver object.
        adjoint: each step's adjoint: ``"implicit"`` (default: CG on the normal equations, to the
            dtype's tolerance within 100 iterations; a miss raises), an
            :class:`~idplan.solvers.ImplicitAdjoint` of your own (``linear_solver="gmres"``,
            ``"dense"``: the naive IFT, ...; a ``max_iter`` you give warns on a miss instead), or
            ``"unrolled"`` (autograd through each step's iterations).
        max_iter: each step's forward budget.
        rtol: each step's forward relative tolerance (default: the dtype's reach,
            :func:`~idplan.solvers.default_tolerances`).
        atol: each step's forward absolute tolerance (default: likewise).

    Raises:
        ValueError: bad shapes or ``dt``/``steps``; ``ConvergenceError`` naming the step that failed.
    """
    if x0.dim() != 2:
        raise ValueError(f"x0 must be [B, n], got shape {tuple(x0.shape)}")
    if not dt > 0 or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"need dt > 0 and an int steps >= 1, got dt={dt}, steps={steps}")
    if adjoint == "implicit":
        adjoint = ImplicitAdjoint(linear_solver="cg_normal", rtol=default_tolerances(x0.dtype)[1])

    def step_residual(z, step_args):
        x_prev, user_args = step_args
        return z - x_prev - dt * h(z, user_args)

    xs, iterations, residuals = [x0], [], []
    for t in range(steps):
        with torch.no_grad():  # explicit Euler predictor as the starting point
            guess = xs[-1] + dt * h(xs[-1], args)
        try:
            sol = root_find(
                step_residual,
                guess,
                (xs[-1], args),
                solver=solver,
                adjoint=adjoint,
                max_iter=max_iter,
                rtol=rtol,
                atol=atol,
            )
        except ConvergenceError as error:
            raise ConvergenceError(
                f"backward Euler step {t} of {steps} (t = {t * dt:g}): {error}", error.stats
            ) from error
        xs.append(sol.value)
        iterations.append(sol.stats.iterations)
        residuals.append(sol.stats.rel_residual)
    return EulerTrajectory(torch.stack(xs), torch.stack(iterations), torch.stack(residuals))
