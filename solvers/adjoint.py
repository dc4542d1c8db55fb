"""Adjoints: how a solution's gradient is computed, chosen independently of the forward solver.

The one implicit-function-theorem core of the library lives here. At a solution ``z*`` of
``F(z*, theta) = 0`` the IFT gives, for a loss ``L``,

    dL/dtheta = -(dF/dtheta)^T w,   where   (dF/dz)^T w = dL/dz*,

with ``w`` found by a matrix-free linear solver using vector-Jacobian products of ``F`` at ``z*``.
Fixed points (``F = z - f``), roots (``F = g``) and argmins (``F = grad score``) all reach it
through :func:`attach_gradient`. For a fixed point the system reads ``w = J_f^T w + dL/dz*``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ._registry import resolve
from ._tracker import Tracker
from .forward import Anderson, Broyden, ForwardIteration, LinearOperator
from .jacobian import jvp_by_double_vjp
from .linear import CG, GMRES, CGNormal, Dense
from .solution import BackwardStats, ConvergenceError, NonConvergenceWarning

LINEAR_SOLVERS: dict[str, Callable[[], Any]] = {
    "forward": ForwardIteration,
    "anderson": Anderson,
    "broyden": Broyden,
    "cg": CG,
    "cg_normal": CGNormal,
    "gmres": GMRES,
    "dense": Dense,
}


def make_linear_solver(name_or_solver: Any) -> Any:
    """Resolve a linear solver given by name (see ``LINEAR_SOLVERS``) or pass an instance through."""
    return resolve(
        name_or_solver,
        LINEAR_SOLVERS,
        "linear solver",
        lambda s: hasattr(s, "solve_linear"),
        "a solver object such as Anderson() or GMRES()",
    )


DEFAULT_BACKWARD_ITERATIONS = 100


@dataclass(frozen=True)
class ImplicitAdjoint:
    """Exact gradients by the implicit function theorem, at a cost independent of the forward.

    No forward iterate is kept: memory is that of one evaluation of ``F`` at the solution. The
    adjoint system ``(dF/dz)^T w = dL/dz*`` is solved by ``linear_solver`` with per-sample
    stopping at ``||A^T w - v|| <= atol + rtol ||v||``; its stats are in ``Solution.backward``
    after ``backward()``.

    A gradient whose adjoint did not converge is not exact. By default (``max_iter=None``: solve
    to tolerance) that raises :class:`ConvergenceError`; a budget the caller chose (an int
    ``max_iter``, e.g. the papers' ``K_bwd = 15``) is a deliberate truncation and only warns.

    Args:
        linear_solver: ``None`` for the problem's default (Anderson for fixed points, GMRES for
            roots, CG for argmins), a name (``"forward"``, ``"anderson"``, ``"broyden"``, ``"cg"``,
            ``"cg_normal"``, ``"gmres"``, ``"dense"``: the naive IFT, a direct solve) or a solver object.
        max_iter: cap on backward iterations (``K_bwd``); ``None``: to tolerance, within
            ``DEFAULT_BACKWARD_ITERATIONS`` (100).
        atol, rtol: backward tolerances.
        throw: raise :class:`ConvergenceError` when the backward fails (``None``: raise unless
            ``max_iter`` was given).
        warn: when not raising, whether to warn; ``False`` suits a deliberately fixed budget:
            the outcome is still in ``Solution.backward``.
    """

    linear_solver: Any = None
    max_iter: int | None = None
    atol: float = 0.0
    rtol: float = 1e-4
    throw: bool | None = None
    warn: bool = True

    def __post_init__(self):
        if self.linear_solver is not None:
            make_linear_solver(self.linear_solver)
        if self.max_iter is not None and (not isinstance(self.max_iter, int) or self.max_iter < 1):
            raise ValueError(f"ImplicitAdjoint: max_iter must be an int >= 1 or None, got {self.max_iter!r}")
        check_tolerances(self.atol, self.rtol, "ImplicitAdjoint")

    @property
    def iterations(self) -> int:
        """The backward iteration cap in force."""
        return DEFAULT_BACKWARD_ITERATIONS if self.max_iter is None else self.max_iter

    @property
    def raises(self) -> bool:
        """Whether a backward that misses its tolerance raises (see ``throw``)."""
        return self.max_iter is None if self.throw is None else self.throw


@dataclass(frozen=True)
class UnrolledAdjoint:
    """Autograd through every forward iteration ("algorithmic differentiation", the baseline).

    Memory and backward time grow with the number of forward iterations.
    """


@dataclass(frozen=True)
class PhantomAdjoint:
    """Phantom gradient (Geng et al. 2021): autograd through ``steps`` damped steps from ``z*``.

    From ``z_0 = z*`` (detached) it applies ``z <- z - damping * F(z)`` ``steps`` times with
    autograd on; ``steps=1, damping=1`` is the one-step (Jacobian-free) gradient. Cheap and
    approximate; the returned value is the last of these steps.
    """

    steps: int = 1
    damping: float = 1.0

    def __post_init__(self):
        if self.steps < 1:
            raise ValueError(f"PhantomAdjoint: steps must be >= 1, got {self.steps}")
        if not 0.0 < self.damping <= 1.0:
            raise ValueError(f"PhantomAdjoint: damping must lie in (0, 1], got {self.damping}")


ADJOINTS: dict[str, Callable[[], Any]] = {
    "implicit": ImplicitAdjoint,
    "unrolled": UnrolledAdjoint,
    "phantom": PhantomAdjoint,
    "one_step": PhantomAdjoint,
}


def make_adjoint(name_or_adjoint: Any) -> Any:
    """Resolve an adjoint given by name (see ``ADJOINTS``) or pass an instance through."""
    return resolve(
        name_or_adjoint,
        ADJOINTS,
        "adjoint",
        lambda a: isinstance(a, (ImplicitAdjoint, UnrolledAdjoint, PhantomAdjoint)),
        "ImplicitAdjoint(...), UnrolledAdjoint() or PhantomAdjoint(...)",
    )


def check_tolerances(atol: float, rtol: float, where: str) -> None:
    """Raise ``ValueError`` unless ``atol, rtol >= 0`` and at least one is positive."""
    if not (atol >= 0 and rtol >= 0) or not (atol > 0 or rtol > 0):
        raise ValueError(f"{where}: tolerances must be >= 0 with at least one positive, got atol={atol}, rtol={rtol}")


def default_check_every(device: torch.device) -> int:
    """Host synchronisations are free on the CPU; on an accelerator check every 8 steps."""
    return 1 if device.type == "cpu" else 8


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


def attach_gradient(
    residual: Callable[[torch.Tensor], torch.Tensor],
    residual_of_rows: Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
    z_star: torch.Tensor,
    adjoint: ImplicitAdjoint,
    default_linear: Any,
    backward_stats: BackwardStats,
    divergence_factor: float,
    nonfinite: torch.Tensor,
) -> torch.Tensor:
    """Return ``z*`` (``[B, N]``) carrying the implicit gradient of ``F(z*, theta) = 0``.

    The value is exactly ``z_star``; its gradient w.r.t. everything ``residual`` depends on is
    ``-(dF/dtheta)^T w`` with ``(dF/dz)^T w = dL/dz*`` solved by the adjoint's linear solver.
    Samples flagged in ``nonfinite`` (``[B]`` bool) get a zero gradient, and contribute nothing,
    not a NaN, to parameters they share with the others (see :func:`residual_without_flagged`).
    """
    linear = make_linear_solver(adjoint.linear_solver if adjoint.linear_solver is not None else default_linear)
    z_leaf = z_star.detach().requires_grad_()
    with torch.enable_grad():
        res = residual_without_flagged(residual, residual_of_rows, z_leaf, nonfinite)
    if not res.requires_grad:  # every sample flagged: a zero gradient
        return z_star.detach() + (z_leaf - z_leaf.detach())
    matvec = jvp_by_double_vjp(res, z_leaf)  # A u, built on first use (only some solvers need it)

    def t_matvec(w: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(res, z_leaf, w, retain_graph=True)[0]

    def solve(v: torch.Tensor) -> torch.Tensor:
        v = torch.where(nonfinite[:, None], 0.0, v.detach())  # flagged samples: w = 0, a zero gradient
        tracker = Tracker(
            max_iter=adjoint.iterations,
            atol=adjoint.atol,
            rtol=adjoint.rtol,
            divergence_factor=divergence_factor,
            check_every=default_check_every(v.device),
            scale=torch.linalg.vector_norm(v, dim=1),
        )
        linear.solve_linear(LinearOperator(t_matvec, matvec), v, v.clone(), tracker)
        w, stats = tracker.result(return_best=True)
        backward_stats.calls += 1
        backward_stats.linear = stats
        if not bool(stats.converged.all()):
            message = failure_message("backward (adjoint) solve", stats, adjoint.rtol, adjoint.atol)
            if adjoint.raises:
                raise ConvergenceError(
                    message + "; the gradient would not be exact (give ImplicitAdjoint(max_iter=K) to accept a "
                    "truncated adjoint, with a warning)",
                    stats,
                )
            if adjoint.warn:
                warnings.warn(message, NonConvergenceWarning, stacklevel=2)
        return w

    # value z*, gradient -dF/dtheta routed through the adjoint solve
    out = z_star.detach() - (res - res.detach())
    return _AdjointSolve.apply(out, solve)


def residual_without_flagged(
    residual: Callable[[torch.Tensor], torch.Tensor],
    residual_of_rows: Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
    z: torch.Tensor,
    flagged: torch.Tensor,
) -> torch.Tensor:
    """``F(z)`` (``[B, N]``) with the rows of ``flagged`` samples zero and outside the graph.

    Masking after the fact (``where(flagged, 0, F(z))``) is not enough: a flagged sample's infinite
    partial derivatives still meet the mask's zero in the backward (``0 * inf = NaN``) and poison the
    parameters every sample shares. So the function is evaluated on the other samples alone
    (``residual_of_rows``: tensors in ``args`` whose leading axis is the batch are cut to them); a
    function that cannot be evaluated on a sub-batch (batched tensors it closes over) falls back to
    the mask, as does one whose sub-batch values differ from the full batch's (it treats samples by
    their position).
    """
    if not bool(flagged.any()):
        return residual(z)
    rows = (~flagged).nonzero().flatten()
    if rows.numel() == 0:
        return torch.zeros_like(z).detach()
    full = residual(z)
    try:
        part = residual_of_rows(rows)(z[rows])
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


def phantom_output(
    residual: Callable[[torch.Tensor], torch.Tensor],
    residual_of_rows: Callable[[torch.Tensor], Callable[[torch.Tensor], torch.Tensor]],
    z_star: torch.Tensor,
    adjoint: PhantomAdjoint,
    nonfinite: torch.Tensor,
) -> torch.Tensor:
    """``steps`` damped steps ``z <- z - damping F(z)`` from ``z*`` with autograd on (samples flagged
    in ``nonfinite`` are left at ``z*``)."""
    z = z_star.detach()
    with torch.enable_grad():
        for _ in range(adjoint.steps):
            z = z - adjoint.damping * residual_without_flagged(residual, residual_of_rows, z, nonfinite)
    return z


def failure_message(what: str, stats, rtol: float, atol: float, max_iter: int | None = None) -> str:
    """A readable account of which samples failed and why."""
    failed = (~stats.converged).nonzero().flatten().tolist()
    shown = failed[:10] + (["..."] if len(failed) > 10 else [])
    parts = [f"{what} failed for {len(failed)} of {stats.converged.numel()} samples {shown}"]
    nonfinite = stats.nonfinite.nonzero().flatten().tolist()
    if nonfinite:
        parts.append(
            f"non-finite value (NaN/inf) in samples {nonfinite[:10]} at iterations "
            f"{stats.failed_at[nonfinite[:10]].tolist()}"
        )
    diverged = stats.diverged.nonzero().flatten().tolist()
    if diverged:
        parts.append(
            f"residual diverged in samples {diverged[:10]} at iterations {stats.failed_at[diverged[:10]].tolist()}"
        )
    if stats.not_minimum is not None and bool(stats.not_minimum.any()):
        saddles = stats.not_minimum.nonzero().flatten().tolist()
        parts.append(
            f"stationary but not a minimum (a maximum, saddle or degenerate point: the Hessian's smallest "
            f"eigenvalue is {[round(float(c), 6) for c in stats.curvature[saddles[:10]]]}) in samples {saddles[:10]}"
        )
        failed = [i for i in failed if i not in set(saddles)]
    if failed:
        rel = stats.rel_residual[failed]
        worst = int(torch.argmax(torch.nan_to_num(rel, nan=float("inf"))))
        parts.append(
            f"worst relative residual {float(rel[worst]):.3g} (absolute {float(stats.abs_residual[failed][worst]):.3g}) "
            f"in sample {failed[worst]} after {stats.steps} iterations; tolerance rtol={rtol:g}, atol={atol:g}"
        )
    if max_iter is not None and stats.steps >= max_iter:
        parts.append(f"max_iter={max_iter} reached: raise max_iter, loosen the tolerance or change the solver")
    return "; ".join(parts)
