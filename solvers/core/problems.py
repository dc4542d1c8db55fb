"""The entry points: :func:`fixed_point`, :func:`root_find`, :func:`argmin`, and for a solution
found any other way :func:`implicit_solution` (reverse mode) and :func:`implicit_jvp` (forward mode).

Each builds the optimality condition ``F`` of its problem over a flat ``[B, N]`` state
(:class:`~idplan.solvers.core.implicit.Optimality`), runs the chosen forward solver (without a
graph unless the adjoint records the forward) and calls the adjoint's ``apply`` with ``F`` and the
solution: one implicit-gradient core (:mod:`.implicit`) for all of them.

Functions are called as ``fn(z, args)`` with ``z`` shaped like the starting point (a tensor with a
leading batch axis, or a tuple of such tensors). Batch elements must not interact inside ``fn``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch

from .adjoint import ImplicitAdjoint, make_adjoint, make_linear_solver
from .forward import Anderson, Broyden, ForwardIteration, Newton, SaddleFreeNewton, dense_jacobian
from .implicit import Optimality, implicit_jvp_flat
from .options import SolveOptions, default_tolerances  # noqa: F401 (re-exported)
from .registry import resolve
from .solution import ConvergenceError, NonConvergenceWarning, Solution, failure_message
from .state import State, StateSpec, pack, state_spec, unpack

SOLVERS: dict[str, Callable[[], Any]] = {
    "forward": ForwardIteration,
    "anderson": Anderson,
    "broyden": Broyden,
    "newton": Newton,
}
"""The forward solvers by the names the entry points take (``solver="anderson"``)."""


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
    ``dL/dtheta = (df/dtheta)^T w`` where ``w = (df/dz)^T w + dL/dz*``, solved by Anderson to the
    adjoint's tolerance (``ImplicitAdjoint()``: relative 1e-4 within 100 iterations, raising on a
    miss; ``ImplicitAdjoint(max_iter=15)`` is the papers' truncated ``K_bwd = 15``).

    Args:
        f: the map, ``f(z, args)`` returning a state shaped like ``z0``.
        z0: starting point, ``[B, ...]`` or a tuple of such tensors (e.g. an LSTM's ``(h, c)``).
        args: anything ``f`` needs; tensors in it (and parameters ``f`` closes over) get gradients.
        solver: ``"forward"``, ``"anderson"``, ``"broyden"``, ``"newton"``, a solver object
            (:class:`ForwardIteration`, :class:`Anderson`, ...) or a callable ``(f, z0, args) -> z``.
        adjoint: ``"implicit"``, ``"unrolled"``, ``"phantom"`` or an adjoint object.
        max_iter: cap on forward iterations.
        atol: absolute per-sample tolerance (>= 0; ``atol`` and ``rtol`` not both 0).
        rtol: relative per-sample tolerance (>= 0).
        throw: on failure (``max_iter`` reached, divergence, NaN) raise :class:`ConvergenceError`;
            if False, warn with :class:`NonConvergenceWarning` and return a flagged solution
            (diverged and non-finite samples get a zero gradient).
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

    options = SolveOptions(max_iter, atol, rtol, throw, return_best, divergence_factor, check_every, refine)
    return _solve("fixed_point", f, Optimality(residual, args, spec, Anderson()), z0, solver, adjoint, options)


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

    residual = _state_residual(g, "g(z, args)")
    options = SolveOptions(max_iter, atol, rtol, throw, return_best, divergence_factor, check_every, refine)
    return _solve("root_find", g, Optimality(residual, args, spec, "gmres"), z0, solver, adjoint, options)


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

    With a callable forward, ``refine=k`` takes up to ``k`` saddle-free Newton steps
    (:class:`~idplan.solvers.SaddleFreeNewton`: every accepted step lowers the score) from its
    answer, where the root finders take Newton steps.

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

    optimality = Optimality(residual, args, spec, "cg")
    _check_curvature(optimality, y0)
    options = SolveOptions(max_iter, atol, rtol, throw, return_best, divergence_factor, check_every, refine)
    refiner = SaddleFreeNewton(lambda y: score(unpack(y, spec), args))
    return _solve("argmin", score, optimality, y0, solver, adjoint, options, refiner)


def _state_residual(fn: Callable[[State, Any], State], what: str):
    """``F(z [B, N], args, spec)`` for a function ``fn(state, args)`` that returns a state laid out
    like ``z``: a root's ``g``, an optimality condition of the caller's."""

    def residual(z: torch.Tensor, args: Any, spec: StateSpec) -> torch.Tensor:
        return pack(fn(unpack(z, spec), args), spec, what)

    return residual


def _check_curvature(optimality: Optimality, y0: State) -> None:
    """Refuse a score whose gradient does not depend on ``y`` (linear in ``y``: no minimiser)."""
    with torch.enable_grad():
        grad = optimality(pack(y0, optimality.spec, "y0").detach().requires_grad_())
    if not grad.requires_grad:
        raise ValueError(
            "argmin: the score's gradient does not depend on y (the score is linear in y, with no "
            "curvature), so it has no minimiser; add a term that grows with y (e.g. a quadratic)"
        )


def _second_order(
    optimality: Optimality, z_star: torch.Tensor, stats, atol: float, rtol: float, max_dim: int = 256
) -> None:
    """Flag converged argmin samples that are not a strict minimum within their tolerance.

    With the symmetrised dense Hessian ``H`` at ``z_star`` (``N`` Hessian-vector products, for
    ``N <= max_dim``), a sample passes when its smallest eigenvalue ``lam`` (eigenvector ``v``)
    exceeds ``sqrt(eps) * max(1, |H|)``, and the curvature along ``v`` stays above it at
    ``z_star +- 2 (tol / lam) v``: the points the gradient tolerance ``tol = atol + rtol ||z||``
    cannot tell from the true stationary point. A maximum or a saddle fails the first test; a point
    near a degenerate one (``y**3`` near its inflection, where ``lam`` shrinks with the tolerance)
    the second.
    """
    if z_star.shape[1] > max_dim or not bool(stats.converged.any()):
        return
    with torch.enable_grad():
        z = z_star.detach().requires_grad_()
        hessian = dense_jacobian(optimality(z), z).detach()
    finite = torch.isfinite(hessian).all(-1).all(-1)  # the others are flagged already (not converged)
    hessian = torch.where(
        finite[:, None, None], hessian, torch.eye(hessian.shape[-1], dtype=hessian.dtype, device=hessian.device)
    )
    eigenvalues, eigenvectors = torch.linalg.eigh(0.5 * (hessian + hessian.transpose(1, 2)))
    smallest, direction = eigenvalues[:, 0], eigenvectors[:, :, 0]
    threshold = float(torch.finfo(z_star.dtype).eps) ** 0.5 * eigenvalues.abs().max(dim=1).values.clamp_min(1.0)
    not_minimum = smallest <= threshold
    tol = atol + rtol * torch.linalg.vector_norm(z_star.detach(), dim=1)
    reach = (2 * tol / smallest.clamp_min(torch.finfo(z_star.dtype).tiny))[:, None] * direction
    for sign in (1.0, -1.0):
        with torch.enable_grad():
            probe = (z_star.detach() + sign * reach).requires_grad_()
            (hv,) = torch.autograd.grad(optimality(probe), probe, direction, allow_unused=True)
        curvature = (hv * direction).sum(1) if hv is not None else torch.zeros_like(smallest)
        not_minimum |= torch.isfinite(curvature) & (curvature <= threshold)
    not_minimum &= stats.converged
    stats.curvature = smallest
    stats.not_minimum = not_minimum
    stats.converged = stats.converged & ~not_minimum


def _solve(
    kind: str,
    user_fn: Callable,
    optimality: Optimality,
    z0: State,
    solver: Any,
    adjoint: Any,
    options: SolveOptions,
    refiner: Any = None,
) -> Solution:
    """Run the forward (a callable's answer refined by ``refiner``, default :class:`Newton`, when
    ``options.refine``), check its answer (and an argmin's curvature), report failure as ``options``
    say, and let the adjoint attach the gradient."""
    spec = optimality.spec
    solver = make_solver(solver)
    adjoint = make_adjoint(adjoint)
    options = options.resolved(spec.dtype, kind)
    user_forward = not hasattr(solver, "solve")
    tracker = options.tracker(spec.device, options.refine if user_forward and options.refine else None)
    flat0 = pack(z0, spec, "z0").detach()
    with torch.set_grad_enabled(adjoint.records_forward and torch.is_grad_enabled()):
        if not user_forward:
            solver.solve(optimality, flat0, tracker)
        else:  # a user's callable forward: its answer is checked (and refined if asked)
            answer = pack(solver(user_fn, z0, optimality.args), spec, "the solver's answer")
            if options.refine:
                (refiner or Newton()).solve(optimality, answer, tracker)
            else:
                tracker.start(answer, optimality(answer))
        z_star, stats = tracker.result(options.return_best)
    if kind == "argmin":
        _second_order(optimality, z_star, stats, options.atol, options.rtol)

    if not bool(stats.converged.all()):
        budget = options.max_iter if not user_forward else None
        message = failure_message(kind, stats, options.rtol, options.atol, budget)
        if options.throw:
            raise ConvergenceError(message, stats)
        warnings.warn(message, NonConvergenceWarning, stacklevel=3)

    solution = Solution(value=None, stats=stats)
    if torch.is_grad_enabled():
        # no solution there, so no implicit gradient: these samples get a zero one (throw=False)
        flagged = stats.nonfinite | stats.diverged
        if stats.not_minimum is not None:
            flagged = flagged | stats.not_minimum
        z_star = adjoint.apply(optimality, z_star, flagged, solution.backward)
    solution.value = unpack(z_star, spec)
    return solution


def implicit_solution(
    F: Callable[[State, Any], State],
    z_star: State,
    args: Any = None,
    *,
    adjoint: Any = "implicit",
    atol: float | None = None,
    rtol: float = 0.0,
    throw: bool = True,
    structure: Any = None,
) -> Solution:
    """Attach the implicit gradient of ``F(z, args) = 0`` to a solution ``z_star`` found any way at all.

    The public entry to the core for solvers of their own (iLQR, the DARE's doubling algorithm):
    ``F`` is the optimality condition, shaped like ``z_star`` (a tensor with a leading batch axis
    or a tuple of them); the returned ``Solution.value`` equals ``z_star`` and is differentiable
    w.r.t. ``args`` and what ``F`` closes over through ``adjoint`` (an :class:`ImplicitAdjoint`, a
    structured adjoint such as the trajectory Riccati adjoint, which reads ``structure``, or a
    :class:`~idplan.solvers.PhantomAdjoint`; the default linear solver is GMRES).

    ``atol``/``rtol`` check that ``z_star`` solves ``F`` (``||F|| <= atol + rtol ||z||`` per
    sample; ``atol`` defaults to 0 when ``rtol`` is given, and neither given checks nothing): a miss
    raises :class:`ConvergenceError` or, with ``throw=False``, warns. The gradient assumes
    ``F(z_star) = 0``.

    Raises:
        ValueError: an adjoint that records the forward (there is none to record).
    """
    spec = state_spec(z_star, "z_star")
    adjoint = make_adjoint(adjoint)
    if adjoint.records_forward:
        raise ValueError("implicit_solution: an unrolled adjoint needs the forward's graph; differentiate it directly")

    residual = _state_residual(F, "F(z, args)")

    optimality = Optimality(residual, args, spec, "gmres", structure)
    if atol is None:
        atol = 0.0 if rtol > 0 else float("inf")
    options = SolveOptions(1, atol, rtol, throw)
    return _solve("implicit_solution", F, optimality, z_star, lambda fn, z, a: z, adjoint, options)


def implicit_jvp(
    F: Callable[[State, Any], State],
    z_star: State,
    args: Any,
    wrt: torch.Tensor,
    tangents: torch.Tensor,
    *,
    linear_solver: Any = "gmres",
    adjoint: ImplicitAdjoint | None = None,
    structure: Any = None,
) -> torch.Tensor:
    """Forward mode of the IFT: ``[K, B, N]`` directional derivatives ``dz*/dtheta t_k`` at a solution.

    ``theta`` is ``wrt``, any tensor that ``F(z, args)`` depends on (in ``args`` or by closure), and
    ``tangents`` ``[K, *wrt.shape]`` its directions (the identity's rows give the full Jacobian of a
    low-dimensional ``theta``, one linear solve each). Each solves ``(dF/dz) s = -(dF/dtheta) t``
    with ``linear_solver`` on the transposed operator, to the budget and tolerances of ``adjoint``
    (an :class:`ImplicitAdjoint`; default ``ImplicitAdjoint()``: a miss raises). ``N`` is the flat state size of ``z_star``; a structured
    solver (the trajectory Riccati solve) may read ``structure``.

    Raises:
        ValueError: tangents not shaped ``[K, *wrt.shape]``, or ``F`` not depending on ``wrt``.
    """
    spec = state_spec(z_star, "z_star")
    if tangents.dim() != wrt.dim() + 1 or tangents.shape[1:] != wrt.shape:
        raise ValueError(
            f"tangents must be [K, *wrt.shape] with wrt.shape = {tuple(wrt.shape)}, got {tuple(tangents.shape)}"
        )

    residual = _state_residual(F, "F(z, args)")

    optimality = Optimality(residual, args, spec, linear_solver, structure)
    flat = pack(z_star, spec, "z_star")
    budget = (adjoint if adjoint is not None else ImplicitAdjoint()).budget()
    return implicit_jvp_flat(optimality, flat, wrt, tangents, make_linear_solver(linear_solver), budget)


__all__ = ["fixed_point", "root_find", "argmin", "implicit_solution", "implicit_jvp", "make_solver", "SOLVERS"]
