"""Result objects, errors and warnings shared by every solver."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


class ConvergenceError(RuntimeError):
    """A solve failed (no convergence within ``max_iter``, divergence, or a non-finite value).

    Attributes:
        stats: the :class:`SolverStats` of the failed solve, for inspection.
    """

    def __init__(self, message: str, stats: SolverStats):
        super().__init__(message)
        self.stats = stats


class NonConvergenceWarning(RuntimeWarning):
    """Issued instead of :class:`ConvergenceError` when the caller passed ``throw=False``."""


@dataclass
class SolverStats:
    """Per-sample statistics of one solve. ``B`` is the batch size, ``K`` the steps taken.

    Attributes:
        iterations: ``[B]`` iterations each sample used before it stopped.
        abs_residual: ``[B]`` final ``||F(z)||_2`` of the returned value.
        rel_residual: ``[B]`` final ``||F(z)||_2 / ||scale||_2`` (``scale`` is ``z`` for nonlinear
            solves and the right-hand side for linear ones).
        converged: ``[B]`` bool, the tolerance was met.
        diverged: ``[B]`` bool, the residual grew past ``divergence_factor`` times its start.
        nonfinite: ``[B]`` bool, a NaN or inf appeared in the residual.
        history: ``[K + 1, B]`` absolute residual after every step (row 0 is the start).
        steps: number of batch-wide steps taken (``max(iterations)``).
        failed_at: ``[B]`` the iteration at which a sample diverged or went non-finite (-1 if never).
        not_minimum: ``[B]`` bool (argmin only): a stationary point whose Hessian is not positive
            definite (a maximum, a saddle, or a degenerate point); such a sample is not converged.
        curvature: ``[B]`` (argmin only) the smallest eigenvalue of the Hessian at the returned point.
    """

    iterations: torch.Tensor
    abs_residual: torch.Tensor
    rel_residual: torch.Tensor
    converged: torch.Tensor
    diverged: torch.Tensor
    nonfinite: torch.Tensor
    history: torch.Tensor
    steps: int
    failed_at: torch.Tensor
    not_minimum: torch.Tensor | None = None
    curvature: torch.Tensor | None = None

    def summary(self) -> str:
        """One line: converged count, iterations, worst relative residual among the samples that did
        not diverge or go non-finite, and how many did (theirs is no solution's residual)."""
        b = self.converged.numel()
        n_conv = int(self.converged.sum())
        broken = self.diverged | self.nonfinite
        rel = self.rel_residual[~broken]
        worst = float(rel.max()) if rel.numel() else float("nan")
        line = (
            f"{n_conv}/{b} converged, iterations max {int(self.iterations.max()) if b else 0}, "
            f"worst relative residual {worst:.3g}"
        )
        return line + (f", {int(broken.sum())} diverged or non-finite" if bool(broken.any()) else "")

    def __repr__(self) -> str:
        return f"SolverStats({self.summary()}, {self.steps} steps)"


@dataclass
class BackwardStats:
    """Statistics of the adjoint solve, filled in when ``backward()`` reaches the solution.

    ``calls`` counts backward passes through the solution; the other fields describe the last one.
    """

    calls: int = 0
    linear: SolverStats | None = None

    @property
    def iterations(self) -> torch.Tensor | None:
        return None if self.linear is None else self.linear.iterations

    @property
    def rel_residual(self) -> torch.Tensor | None:
        return None if self.linear is None else self.linear.rel_residual

    @property
    def converged(self) -> torch.Tensor | None:
        return None if self.linear is None else self.linear.converged

    def __repr__(self) -> str:
        return f"BackwardStats(calls={self.calls}, {'not run' if self.linear is None else self.linear.summary()})"


@dataclass
class Solution:
    """What :func:`fixed_point`, :func:`root_find` and :func:`argmin` return.

    Attributes:
        value: the solution, with the structure of the starting point (a tensor or a tuple).
            Differentiable w.r.t. the problem's parameters through the chosen adjoint.
        stats: forward :class:`SolverStats`.
        backward: :class:`BackwardStats`, filled in after ``backward()`` (implicit adjoint only).
    """

    value: Any
    stats: SolverStats
    backward: BackwardStats = field(default_factory=BackwardStats)

    @property
    def converged(self) -> bool:
        """True when every sample of the batch met the tolerance."""
        return bool(self.stats.converged.all())

    def __repr__(self) -> str:
        shapes = [tuple(v.shape) for v in self.value] if isinstance(self.value, (tuple, list)) else None
        value = shapes if shapes is not None else tuple(getattr(self.value, "shape", ()))
        return f"Solution(value {value}; forward: {self.stats!r}; backward: {self.backward!r})"


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
        kept = [f"{float(r):.3g}" for r in stats.abs_residual[diverged[:10]]]
        parts.append(
            f"residual diverged in samples {diverged[:10]} at iterations {stats.failed_at[diverged[:10]].tolist()} "
            f"(each kept at its lowest-residual iterate, absolute residual {kept})"
        )
    if stats.not_minimum is not None and bool(stats.not_minimum.any()):
        saddles = stats.not_minimum.nonzero().flatten().tolist()
        parts.append(
            f"stationary but not a minimum (a maximum, saddle or degenerate point: the Hessian's smallest "
            f"eigenvalue is {[round(float(c), 6) for c in stats.curvature[saddles[:10]]]}) in samples {saddles[:10]}"
        )
        failed = [i for i in failed if i not in set(saddles)]
    explained = set(diverged) | set(nonfinite)  # reported above, by their own residual or iteration
    failed = [i for i in failed if i not in explained]
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
