"""The implicit function theorem, once, in both directions.

At a solution ``z*`` of ``F(z*, theta) = 0`` (``F`` an :class:`Optimality`), for a loss ``L`` and a
tangent ``t`` of ``theta``:

    reverse:  dL/dtheta = -(dF/dtheta)^T w,   (dF/dz)^T w = dL/dz*      (:func:`implicit_vjp`)
    forward:  dz*/dtheta t = s,               (dF/dz) s = -(dF/dtheta) t (:func:`implicit_jvp_flat`)

with ``w`` and ``s`` found by a matrix-free linear solver from vector-Jacobian products of ``F`` at
``z*``. Fixed points (``F = z - f``), roots (``F = g``), argmins (``F = grad score``), the trajectory
KKT conditions and the DARE all reach their gradients here, through the adjoint objects of
:mod:`.adjoint`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from .forward import LinearOperator
from .jacobian import jvp_by_double_vjp
from .solution import BackwardStats, ConvergenceError, NonConvergenceWarning, failure_message
from .state import StateSpec, select_rows
from .tracker import Tracker, default_check_every


@dataclass(frozen=True)
class Optimality:
    """The optimality condition ``F(z, args) = 0`` of one solve, on the flat ``[B, N]`` state.

    Attributes:
        residual: ``(z [B, N], args, spec) -> F [B, N]``; ``spec`` describes the batch it is called on.
        args: what ``F`` takes besides ``z`` (tensors in it, and parameters ``F`` closes over, get
            gradients).
        spec: the layout of the full batch.
        default_linear: the adjoint's linear solver when the adjoint names none.
        structure: whatever a structured adjoint needs besides ``F`` (the trajectory KKT system).
    """

    residual: Callable[[torch.Tensor, Any, StateSpec], torch.Tensor]
    args: Any
    spec: StateSpec
    default_linear: Any = "gmres"
    structure: Any = None

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.residual(z, self.args, self.spec)

    def of_rows(self, rows: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """``F`` of the samples ``rows`` (``[b]`` indices) alone: tensors in ``args`` whose leading
        axis is the batch are cut to them."""
        args, spec = select_rows(self.args, rows, self.spec.batch), self.spec.rows(int(rows.numel()))
        return lambda z: self.residual(z, args, spec)


@dataclass(frozen=True)
class AdjointBudget:
    """How far an adjoint linear solve goes and what happens when it stops short."""

    max_iter: int
    atol: float
    rtol: float
    raises: bool
    warns: bool
    divergence_factor: float = 1e4


def residual_without_flagged(optimality: Optimality, z: torch.Tensor, flagged: torch.Tensor) -> torch.Tensor:
    """``F(z)`` (``[B, N]``) with the rows of ``flagged`` samples zero and outside the graph.

    Masking after the fact (``where(flagged, 0, F(z))``) is not enough: a flagged sample's infinite
    partial derivatives still meet the mask's zero in the backward (``0 * inf = NaN``) and poison the
    parameters every sample shares. So ``F`` is evaluated on the other samples alone
    (:meth:`Optimality.of_rows`); a function that cannot be evaluated on a sub-batch (batched
    tensors it closes over) falls back to the mask, as does one whose sub-batch values differ from
    the full batch's (it treats samples by their position).
    """
    if not bool(flagged.any()):
        return optimality(z)
    rows = (~flagged).nonzero().flatten()
    if rows.numel() == 0:
        return torch.zeros_like(z).detach()
    full = optimality(z)
    try:
        part = optimality.of_rows(rows)(z[rows])
    except (RuntimeError, ValueError, IndexError):
        part = None
    if part is None or not _same_values(part.detach(), full[rows].detach(), z.detach()[rows]):
        return torch.where(flagged[:, None], 0.0, full)
    return torch.zeros_like(z).detach().index_copy(0, rows, part)


def _same_values(part: torch.Tensor, full: torch.Tensor, z: torch.Tensor) -> bool:
    """``part`` equals ``full`` up to the rounding a different batch size may bring."""
    if part.shape != full.shape:
        return False
    tol = float(torch.finfo(z.dtype).eps) ** 0.5
    return bool(torch.allclose(part, full, rtol=tol, atol=tol * (1.0 + float(z.abs().max()))))


_deferred: list[list[ConvergenceError]] = []  # the open defer_adjoint_failures blocks, innermost last


@contextmanager
def defer_adjoint_failures() -> Iterator[list[ConvergenceError]]:
    """Within the block, an implicit adjoint that misses its tolerance where it would raise
    :class:`ConvergenceError` returns a NaN adjoint instead (every gradient it reaches is NaN) and
    appends the error to the yielded list, so that the backward pass runs to its end. Under
    ``DistributedDataParallel`` every rank must reach each gradient all-reduce of the backward; a
    rank whose backward raised would leave the others waiting. A module-level stack, not a context
    variable: autograd may run the backward on its own device threads."""
    errors: list[ConvergenceError] = []
    _deferred.append(errors)
    try:
        yield errors
    finally:
        _deferred.pop()


class _AdjointSolve(torch.autograd.Function):
    """Identity in the forward; in the backward, replaces ``v = dL/dz*`` by ``w`` solving
    ``A^T w = v`` (the solve is the closure given to ``forward``)."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, solve: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        ctx.solve = solve
        return z.clone()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.solve(grad), None


def _linear_solve(
    linear: Any, op: LinearOperator, v: torch.Tensor, budget: AdjointBudget, what: str
) -> tuple[torch.Tensor, Any]:
    """Solve ``op.t_matvec(w) = v`` per sample to the budget; raise or warn as it says on a miss."""
    tracker = Tracker(
        max_iter=budget.max_iter,
        atol=budget.atol,
        rtol=budget.rtol,
        divergence_factor=budget.divergence_factor,
        check_every=default_check_every(v.device),
        scale=torch.linalg.vector_norm(v, dim=1),
    )
    # the solver's own products stay in v's precision when backward() runs under autocast (the
    # vector-Jacobian products follow the dtypes the forward graph recorded either way)
    with torch.autocast(v.device.type, enabled=False):
        linear.solve_linear(op, v, v.clone(), tracker)
    w, stats = tracker.result(return_best=True)
    if not bool(stats.converged.all()):
        message = failure_message(what, stats, budget.rtol, budget.atol)
        if budget.raises:
            raise ConvergenceError(
                message + "; the gradient would not be exact (give ImplicitAdjoint(max_iter=K) to accept a "
                "truncated adjoint, with a warning)",
                stats,
            )
        if budget.warns:
            warnings.warn(message, NonConvergenceWarning, stacklevel=3)
    return w, stats


def implicit_vjp(
    optimality: Optimality,
    z_star: torch.Tensor,
    linear: Any,
    budget: AdjointBudget,
    backward_stats: BackwardStats,
    flagged: torch.Tensor,
) -> torch.Tensor:
    """Return ``z*`` (``[B, N]``) carrying the implicit gradient of ``F(z*, theta) = 0``.

    The value is exactly ``z_star``; its gradient w.r.t. everything ``F`` depends on is
    ``-(dF/dtheta)^T w`` with ``(dF/dz)^T w = dL/dz*`` solved by ``linear`` (a solver object with
    ``solve_linear``). The adjoint's statistics go to ``backward_stats``. Samples flagged in
    ``flagged`` (``[B]`` bool) get a zero gradient and contribute nothing, not a NaN, to
    parameters they share with the others (:func:`residual_without_flagged`).
    """
    z_leaf = z_star.detach().requires_grad_()
    with torch.enable_grad():
        res = residual_without_flagged(optimality, z_leaf, flagged)
    if not res.requires_grad:  # every sample flagged: a zero gradient
        return z_star.detach() + (z_leaf - z_leaf.detach())
    op = LinearOperator(
        lambda w: torch.autograd.grad(res, z_leaf, w, retain_graph=True)[0], jvp_by_double_vjp(res, z_leaf)
    )

    def solve(v: torch.Tensor) -> torch.Tensor:
        v = torch.where(flagged[:, None], 0.0, v.detach())  # flagged samples: w = 0, a zero gradient
        try:
            w, stats = _linear_solve(linear, op, v, budget, "backward (adjoint) solve")
        except ConvergenceError as error:
            if not _deferred:
                raise
            _deferred[-1].append(error)  # as when it raises, no statistics are recorded
            return torch.full_like(v, float("nan"))
        backward_stats.calls += 1
        backward_stats.linear = stats
        return w

    # value z*, gradient -dF/dtheta routed through the adjoint solve
    out = z_star.detach() - (res - res.detach())
    return _AdjointSolve.apply(out, solve)


def implicit_jvp_flat(
    optimality: Optimality,
    z_star: torch.Tensor,
    wrt: torch.Tensor,
    tangents: torch.Tensor,
    linear: Any,
    budget: AdjointBudget,
) -> torch.Tensor:
    """``[K, B, N]``: ``dz*/dtheta t_k`` for each tangent ``t_k`` of ``tangents`` (``[K, *wrt.shape]``),
    the forward-mode IFT ``(dF/dz) s = -(dF/dtheta) t``, solved by ``linear`` on the transposed
    operator (a structured solver sees ``op.transposed``)."""
    z_leaf = z_star.detach().requires_grad_()
    with torch.enable_grad():
        res = optimality(z_leaf)
        probe = torch.zeros_like(res, requires_grad=True)  # dF/dtheta t = d/dprobe <(dF/dtheta)^T probe, t>
        (vjp_theta,) = torch.autograd.grad(res, wrt, probe, create_graph=True, allow_unused=True)
    if vjp_theta is None:
        raise ValueError("the solution does not depend on wrt (no path from it to the optimality condition)")
    jvp = jvp_by_double_vjp(res, z_leaf)
    op = LinearOperator(
        jvp, lambda w: torch.autograd.grad(res, z_leaf, w, retain_graph=True)[0], transposed=True
    )  # solving op.t_matvec(s) = r now solves (dF/dz) s = r
    columns = []
    for tangent in tangents:
        (r,) = torch.autograd.grad(vjp_theta, probe, tangent, retain_graph=True)
        s, _ = _linear_solve(linear, op, -r.detach(), budget, "forward-mode (tangent) solve")
        columns.append(s)
    return torch.stack(columns)
