"""The three entry points: :func:`fixed_point`, :func:`root_find` and :func:`argmin`.

Each builds the optimality function ``F`` of its problem over a flat ``[B, N]`` state, runs the
chosen forward solver (without a graph unless the adjoint is unrolled) and hands ``F`` to the
adjoint: one implicit-gradient core (:func:`~idplan.solvers.adjoint.attach_gradient`) for all three.

Functions are called as ``fn(z, args)`` with ``z`` shaped like the starting point (a tensor with a
leading batch axis, or a tuple of such tensors). Batch elements must not interact inside ``fn``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from ._registry import resolve
from ._state import State, StateSpec, pack, select_rows, state_spec, unpack
from ._tracker import Tracker
from .adjoint import (
    ImplicitAdjoint,
    PhantomAdjoint,
    UnrolledAdjoint,
    attach_gradient,
    check_tolerances,
    default_check_every,
    failure_message,
    make_adjoint,
    phantom_output,
)
from .forward import Anderson, Broyden, ForwardIteration, Newton, dense_jacobian
from .solution import ConvergenceError, NonConvergenceWarning, Solution

SOLVERS: dict[str, Callable[[], Any]] = {
    "forward": ForwardIteration,
    "anderson": Anderson,
    "broyden": Broyden,
    "newton": Newton,
}


def make_solver(name_or_solver: Any) -> Any:
    """Resolve a forward solver given by name (see ``SOLVERS``); objects and callables pass through."""
    return resolve(
        name_or_solver,
        SOLVERS,
        "solver",
        lambda s: hasattr(s, "solve") or callable(s),
        "a solver object such as Anderson(), or a callable (fn, z0, args) -> z",
    )


def fixed_point(
    f: Callable[[State, Any], State],
    z0: State,
    args: Any = None,
    *,
    solver: Any = "forward",
    adjoint: Any = "implicit",
    max_iter: int = 100,
    atol: float = 0.0,
    rtol: float = 1e-5,
    throw: bool = True,
    return_best: bool = False,
    divergence_factor: float = 1e4,
    check_every: int | None = None,
    refine: int = 0,
) -> Solution:
    """Solve ``z = f(z, args)`` for a batch of states.

    The solution satisfies ``||f(z, args) - z|| <= atol + rtol ||z||`` per sample (2-norms over
    each sample's entries). With the implicit adjoint its gradient is
    ``dL/dtheta = (df/dtheta)^T w`` where ``w = (df/dz)^T w + dL/dz*`` (Anderson by default,
    ``K_bwd = 15``).

    Args:
        f: the map, ``f(z, args)`` returning a state shaped like ``z0``.
        z0: starting point, ``[B, ...]`` or a tuple of such tensors (e.g. an LSTM's ``(h, c)``).
        args: anything ``f`` needs; tensors in it (and parameters ``f`` closes over) get gradients.
        solver: ``"forward"``, ``"anderson"``, ``"broyden"``, ``"newton"``, a solver object
            (:class:`ForwardIteration`, :class:`Anderson`, ...) or a callable ``(f, z0, args) -> z``.
        adjoint: ``"implicit"``, ``"unrolled"``, ``"phantom"`` or an adjoint object.
        max_iter: cap on forward iterations.
        atol, rtol: per-sample tolerances (>= 0, at least one positive).
        throw: on failure (``max_iter`` reached, divergence, NaN) raise :class:`ConvergenceError`;
            if False, warn with :class:`NonConvergenceWarning` and return a flagged solution.
        return_best: return each sample's lowest-residual iterate instead of its last.
        divergence_factor: a residual above this times the starting residual counts as divergence.
        check_every: steps between host synchronisations (default 1 on CPU, 8 on accelerators).
        refine: with a callable forward solver, up to this many Newton steps from its answer (an
            inexact or non-differentiable forward, e.g. random shooting, made stationary before the
            implicit gradient, which assumes stationarity); 0 checks the answer as it is.

    Returns:
        :class:`Solution` with ``value``, forward ``stats`` and (after backward) ``backward`` stats.
    """
    spec = state_spec(z0, "z0")

    def residual(z: torch.Tensor, args: Any, spec: StateSpec) -> torch.Tensor:
        return z - pack(f(unpack(z, spec), args), spec, "f(z, args)")

    return _solve(
        "fixed_point",
        f,
        residual,
        z0,
        spec,
        args,
        solver,
        adjoint,
        Anderson(),
        max_iter,
        atol,
        rtol,
        throw,
        return_best,
        divergence_factor,
        check_every,
        refine,
    )


def root_find(
    g: Callable[[State, Any], State],
    z0: State,
    args: Any = None,
    *,
    solver: Any = "newton",
    adjoint: Any = "implicit",
    max_iter: int = 50,
    atol: float | None = None,
    rtol: float | None = None,
    throw: bool = True,
    return_best: bool = False,
    divergence_factor: float = 1e4,
    check_every: int | None = None,
    refine: int = 0,
) -> Solution:
    """Solve ``g(z, args) = 0``; the solution satisfies ``||g(z)|| <= atol + rtol ||z||``.

    ``atol``/``rtol`` default to the dtype's reach (:func:`default_tolerances`: 1e-10/1e-8 in float64).

    With the implicit adjoint, ``dL/dtheta = -(dg/dtheta)^T w`` with ``(dg/dz)^T w = dL/dz*``
    (GMRES by default). Arguments as in :func:`fixed_point`; the default solver is Newton's method.
    """
    spec = state_spec(z0, "z0")

    def residual(z: torch.Tensor, args: Any, spec: StateSpec) -> torch.Tensor:
        return pack(g(unpack(z, spec), args), spec, "g(z, args)")

    return _solve(
        "root_find",
        g,
        residual,
        z0,
        spec,
        args,
        solver,
        adjoint,
        "gmres",
        max_iter,
        atol,
        rtol,
        throw,
        return_best,
        divergence_factor,
        check_every,
        refine,
    )


def argmin(
    score: Callable[[State, Any], torch.Tensor],
    y0: State,
    args: Any = None,
    *,
    solver: Any = "newton",
    adjoint: Any = "implicit",
    max_iter: int = 50,
    atol: float | None = None,
    rtol: float | None = None,
    throw: bool = True,
    return_best: bool = False,
    divergence_factor: float = 1e4,
    check_every: int | None = None,
    refine: int = 0,
) -> Solution:
    """Minimise ``score(y, args)`` (``[B]`` scores) over ``y``: a stationary point ``grad_y score = 0``.

    The forward may be any minimiser, including a non-differentiable callable
    ``(score, y0, args) -> y`` (random shooting, scipy); the stationarity residual of its answer is
    measured and a non-stationary answer is reported like any failure. With the implicit adjoint
    ``dL/dtheta = -(d^2 score/dy dtheta)^T w`` with ``H w = dL/dy*`` solved by conjugate gradients
    on Hessian-vector products. Arguments as in :func:`fixed_point`; tolerances default as in
    :func:`root_find`.

    Second-order conditions are checked where a dense Hessian is affordable (``N <= 256``): a
    stationary point whose Hessian is not positive definite (a maximum, a saddle, an inflection) is
    not converged (``stats.not_minimum``, ``stats.curvature``), so it raises, or with
    ``throw=False`` warns and gets a zero gradient. A score linear in ``y`` is a ``ValueError``.
    """
    spec = state_spec(y0, "y0")

    def residual(y: torch.Tensor, args: Any, spec: StateSpec) -> torch.Tensor:
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():
            yy = y if y.requires_grad else y.detach().requires_grad_()
            value = score(unpack(yy, spec), args)
            if not isinstance(value, torch.Tensor) or value.shape != (spec.batch,):
                shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
                raise ValueError(f"score(y, args) must return one score per sample, shape ({spec.batch},); got {shape}")
            if not value.requires_grad:
                raise ValueError("argmin: score(y, args) does not depend on y, so it has no minimiser")
            (grad,) = torch.autograd.grad(value.sum(), yy, create_graph=differentiable)
        return grad

    _check_curvature(residual, y0, args, spec)
    return _solve(
        "argmin",
        score,
        residual,
        y0,
        spec,
        args,
        solver,
        adjoint,
        "cg",
        max_iter,
        atol,
        rtol,
        throw,
        return_best,
        divergence_factor,
        check_every,
        refine,
    )


def default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for :func:`root_find` and :func:`argmin` when the caller gives none:
    ``rtol = max(1e-8, eps**0.75)`` of the dtype (1e-8 in float64, 6.4e-6 in float32) and
    ``atol = rtol / 100``, so that every floating dtype can reach its own default."""
    rtol = max(1e-8, float(torch.finfo(dtype).eps) ** 0.75)
    return rtol / 100, rtol


def _check_curvature(residual, y0, args, spec) -> None:
    """Refuse a score whose gradient does not depend on ``y`` (linear in ``y``: no minimiser)."""
    with torch.enable_grad():
        y = pack(y0, spec, "y0").detach().requires_grad_()
        grad = residual(y, args, spec)
    if not grad.requires_grad:
        raise ValueError(
            "argmin: the score's gradient does not depend on y (the score is linear in y, with no "
            "curvature), so it has no minimiser; add a term that grows with y (e.g. a quadratic)"
        )


def _second_order(residual, z_star: torch.Tensor, stats, atol: float, rtol: float, max_dim: int = 256) -> None:
    """Flag converged argmin samples that are not a strict minimum within their tolerance.

    With the symmetrised dense Hessian ``H`` at ``z_star`` (``N`` Hessian-vector products, for
    ``N <= max_dim``), a sample passes when its smallest eigenvalue ``lam`` (eigenvector ``v``)
    exceeds ``sqrt(eps) * max(1, |H|)``, and the curvature along ``v`` stays above it at
    ``z_star +- 2 (tol / lam) v``: the points the gradient tolerance ``tol = atol + rtol ||z||``
    cannot tell from the true stationary point. A maximum or a saddle fails the first test; a point
    near a degenerate one (``y**3`` near its inflection, where ``lam`` shrinks with the tolerance)
    the second.
    """
    if z_star.shape[1] > max_dim:
        return
    with torch.enable_grad():
        z = z_star.detach().requires_grad_()
        hessian = dense_jacobian(residual(z), z).detach()
    eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (hessian + hessian.transpose(1, 2)))
    smallest, direction = eigenvalues[:, 0], eigenvectors[:, :, 0]
    threshold = float(torch.finfo(z_star.dtype).eps) ** 0.5 * eigenvalues.abs().max(dim=1).values.clamp_min(1.0)
    not_minimum = smallest <= threshold
    tol = atol + rtol * torch.linalg.vector_norm(z_star.detach(), dim=1)
    reach = (2 * tol / smallest.clamp_min(torch.finfo(z_star.dtype).tiny))[:, None] * direction
    for sign in (1.0, -1.0):
        with torch.enable_grad():
            probe = (z_star.detach() + sign * reach).requires_grad_()
            (hv,) = torch.autograd.grad(residual(probe), probe, direction, allow_unused=True)
        curvature = (hv * direction).sum(1) if hv is not None else torch.zeros_like(smallest)
        not_minimum |= torch.isfinite(curvature) & (curvature <= threshold)
    not_minimum &= stats.converged
    stats.curvature = smallest
    stats.not_minimum = not_minimum
    stats.converged = stats.converged & ~not_minimum


def _solve(
    kind,
    user_fn,
    residual,
    z0,
    spec,
    args,
    solver,
    adjoint,
    default_linear,
    max_iter,
    atol,
    rtol,
    throw,
    return_best,
    divergence_factor,
    check_every,
    refine=0,
) -> Solution:
    solver = make_solver(solver)
    adjoint = make_adjoint(adjoint)
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"{kind}: max_iter must be a positive int, got {max_iter!r}")
    default_atol, default_rtol = default_tolerances(spec.dtype)
    atol = default_atol if atol is None else atol
    rtol = default_rtol if rtol is None else rtol
    check_tolerances(atol, rtol, kind)
    if not isinstance(refine, int) or refine < 0:
        raise ValueError(f"{kind}: refine must be an int >= 0, got {refine!r}")
    user_forward = not hasattr(solver, "solve")
    if not divergence_factor > 1:
        raise ValueError(f"{kind}: divergence_factor must be > 1, got {divergence_factor}")

    def full_residual(z: torch.Tensor) -> torch.Tensor:
        return residual(z, args, spec)

    def residual_of_rows(rows: torch.Tensor):
        rows_args, rows_spec = select_rows(args, rows, spec.batch), spec.rows(int(rows.numel()))
        return lambda z: residual(z, rows_args, rows_spec)

    tracker = Tracker(
        max_iter=refine if user_forward and refine else max_iter,
        atol=atol,
        rtol=rtol,
        divergence_factor=divergence_factor,
        check_every=check_every if check_every is not None else default_check_every(spec.device),
    )
    flat0 = pack(z0, spec, "z0").detach()
    unrolled = isinstance(adjoint, UnrolledAdjoint)
    with torch.set_grad_enabled(unrolled and torch.is_grad_enabled()):
        if hasattr(solver, "solve"):
            solver.solve(full_residual, flat0, tracker)
        else:  # a user's callable forward: its answer is checked (and refined by Newton steps if asked)
            answer = pack(solver(user_fn, z0, args), spec, "the solver's answer")
            if refine:
                Newton().solve(full_residual, answer, tracker)
            else:
                tracker.start(answer, full_residual(answer))
        z_star, stats = tracker.result(return_best)
    if kind == "argmin":
        _second_order(full_residual, z_star, stats, atol, rtol)

    if not bool(stats.converged.all()):
        message = failure_message(f"{kind}", stats, rtol, atol, max_iter if not user_forward else None)
        if throw:
            raise ConvergenceError(message, stats)
        warnings.warn(message, NonConvergenceWarning, stacklevel=3)

    solution = Solution(value=None, stats=stats)
    if torch.is_grad_enabled():
        excluded = stats.nonfinite if stats.not_minimum is None else stats.nonfinite | stats.not_minimum
        if isinstance(adjoint, ImplicitAdjoint):
            z_star = attach_gradient(
                full_residual,
                residual_of_rows,
                z_star,
                adjoint,
                default_linear,
                solution.backward,
                divergence_factor,
                excluded,
            )
        elif isinstance(adjoint, PhantomAdjoint):
            z_star = phantom_output(full_residual, residual_of_rows, z_star, adjoint, excluded)
    solution.value = unpack(z_star, spec)
    return solution


__all__ = ["fixed_point", "root_find", "argmin", "make_solver", "SOLVERS", "ConvergenceError", "NonConvergenceWarning"]
