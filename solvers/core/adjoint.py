"""Adjoints: how a solution's gradient is computed, chosen independently of the forward solver.

An adjoint is a value passed to every solve (``adjoint=``); it carries its own application,
``apply(optimality, z_star, flagged, backward_stats)``, called by the solve with the optimality
condition ``F(z, args) = 0`` (:class:`~idplan.solvers.core.implicit.Optimality`) and the solution
the forward found. :class:`ImplicitAdjoint` applies the implicit function theorem
(:mod:`.implicit`), :class:`UnrolledAdjoint` keeps the forward's own graph (``records_forward``),
:class:`PhantomAdjoint` differentiates a few damped steps from the solution. A new adjoint is a new
object with these two members; nothing else changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .forward import Anderson, Broyden, ForwardIteration
from .implicit import AdjointBudget, Optimality, implicit_vjp, residual_without_flagged
from .linear import CG, GMRES, CGNormal, Dense
from .options import check_tolerances
from .registry import resolve
from .solution import BackwardStats

LINEAR_SOLVERS: dict[str, Callable[[], Any]] = {
    "forward": ForwardIteration,
    "anderson": Anderson,
    "broyden": Broyden,
    "cg": CG,
    "cg_normal": CGNormal,
    "gmres": GMRES,
    "dense": Dense,
}
"""The linear solvers of the adjoint system by name (``ImplicitAdjoint(linear_solver="gmres")``)."""


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
        atol: absolute backward tolerance.
        rtol: relative backward tolerance.
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

    records_forward = False

    def budget(self) -> AdjointBudget:
        """The linear solve's cap, tolerances and failure policy."""
        return AdjointBudget(self.iterations, self.atol, self.rtol, self.raises, self.warn)

    def apply(
        self, optimality: Optimality, z_star: torch.Tensor, flagged: torch.Tensor, backward_stats: BackwardStats
    ) -> torch.Tensor:
        """``z*`` (``[B, N]``) carrying the implicit gradient (:func:`~.implicit.implicit_vjp`)."""
        linear = make_linear_solver(self.linear_solver if self.linear_solver is not None else optimality.default_linear)
        return implicit_vjp(optimality, z_star, linear, self.budget(), backward_stats, flagged)


@dataclass(frozen=True)
class UnrolledAdjoint:
    """Autograd through every forward iteration ("algorithmic differentiation", the baseline).

    Memory and backward time grow with the number of forward iterations.
    """

    records_forward = True

    def apply(
        self, optimality: Optimality, z_star: torch.Tensor, flagged: torch.Tensor, backward_stats: BackwardStats
    ) -> torch.Tensor:
        return z_star  # the forward ran with autograd on: its graph is the gradient


@dataclass(frozen=True)
class PhantomAdjoint:
    """Phantom gradient (Geng et al. 2021): autograd through ``steps`` damped steps from ``z*``.

    From ``z_0 = z*`` (detached) it applies ``z <- z - damping * F(z)`` ``steps`` times with
    autograd on; ``steps=1, damping=1`` is the one-step (Jacobian-free) gradient. Cheap and
    approximate; the returned value is the last of these steps.
    """

    steps: int = 1
    damping: float = 1.0

    records_forward = False

    def apply(
        self, optimality: Optimality, z_star: torch.Tensor, flagged: torch.Tensor, backward_stats: BackwardStats
    ) -> torch.Tensor:
        """``steps`` damped steps ``z <- z - damping F(z)`` from ``z*`` with autograd on (flagged
        samples are left at ``z*``)."""
        z = z_star.detach()
        with torch.enable_grad():
            for _ in range(self.steps):
                z = z - self.damping * residual_without_flagged(optimality, z, flagged)
        return z

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
"""The adjoints by the names the entry points take (``adjoint="implicit"``)."""


def make_adjoint(name_or_adjoint: Any, registry: dict[str, Callable[[], Any]] = ADJOINTS) -> Any:
    """Resolve an adjoint given by name (see ``registry``, default ``ADJOINTS``) or pass an adjoint
    object (one with ``apply`` and ``records_forward``) through."""
    return resolve(
        name_or_adjoint,
        registry,
        "adjoint",
        lambda a: callable(getattr(a, "apply", None)) and hasattr(a, "records_forward"),
        "an adjoint object such as ImplicitAdjoint(...), UnrolledAdjoint() or PhantomAdjoint(...)",
    )
