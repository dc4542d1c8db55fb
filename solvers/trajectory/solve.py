"""Batched box-constrained iLQR and LQR with exact implicit gradients.

The problem, for a batch of initial states ``x_init [B, n]`` and a horizon ``T`` (layout of :mod:`.riccati`)::

    minimise_U  sum_{t<T} g(x_t, u_t)
    s.t.        x_0 = x_init,  x_{t+1} = f(x_t, u_t)  (t < T-1),  lower <= u_t <= upper

:func:`ilqr` takes any differentiable ``f`` and twice-differentiable ``g`` (Jacobians and Hessians by
one backward or double-backward pass over stacked copies of all time steps and samples); :func:`lqr` takes affine time-varying dynamics
``x_{t+1} = F_t tau_t + f_t`` and quadratic costs ``1/2 tau^T C_t tau + c_t^T tau``. Both run the same
Riccati iteration (:mod:`.iteration`) and are differentiable through the adjoint given as ``adjoint=``
(:mod:`.adjoints`):

- :class:`RiccatiAdjoint` (``"riccati"``, default): exact gradients at the fixed point by the implicit
  function theorem on the KKT conditions (:mod:`.kkt`), through the core's
  :func:`~idplan.solvers.implicit_solution`. The adjoint system is an LQR problem with the
  Lagrangian's Hessian (second derivatives of ``f`` included), solved by one O(T) Riccati pass: the
  cost does not depend on the forward iterations. ``ImplicitAdjoint(linear_solver="gmres")``
  (``"implicit"``) solves the same system matrix-free.
- :class:`LastLayerAdjoint` (``"last_layer"``): DiffMPC's approximation (Amos et al. 2018):
  differentiate only the LQR approximation at the solution, the linearisation point held constant.
- ``UnrolledAdjoint()`` (``"unrolled"``): autograd through every iteration (the baseline; memory
  grows with iterations).

Controls held at a bound get zero gradient. Gradients reach ``x_init``, ``lower``/``upper``, the
tensors of :func:`lqr` and every parameter ``f`` and ``g`` close over (e.g. an ``nn.Module``'s).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..core.problems import implicit_solution
from ..core.solution import ConvergenceError, NonConvergenceWarning
from .adjoints import make_trajectory_adjoint
from .iteration import broadcast_bounds, final_costates, optimise
from .kkt import KKTSystem, join_flat, kkt_residual
from .models import LinearQuadraticModel, NonlinearModel
from .solution import TrajectorySolution, TrajectoryStats


@dataclass
class SolvedTrajectory:
    """A solved problem, as the trajectory adjoints (:class:`~.adjoints.TrajectoryStructure`) and
    :func:`~.sensitivity.trajectory_jacobian` read it: time-first ``X``, ``U``, ``Lam`` (detached)."""

    model: Any
    x_init: torch.Tensor
    lower: torch.Tensor | None
    upper: torch.Tensor | None
    X: torch.Tensor
    U: torch.Tensor
    Lam: torch.Tensor

    def kkt_system(self) -> KKTSystem:
        return KKTSystem(self.model, self.X, self.U, self.Lam, self.lower, self.upper)

    def residual(self, z: tuple[torch.Tensor, ...], x_init: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The KKT residual of batch-first ``z = (X, U, Lam)`` (the core's layout), batch first."""
        X, U, Lam = (v.transpose(0, 1) for v in z)
        return tuple(r.transpose(0, 1) for r in kkt_residual(self.model, X, U, Lam, x_init, self.lower, self.upper))

    def z_star(self) -> tuple[torch.Tensor, ...]:
        return tuple(v.transpose(0, 1) for v in (self.X, self.U, self.Lam))

    def lqr_approximation(self) -> torch.Tensor:
        model, X, U = self.model, self.X, self.U
        q, A, Bu = model.first_order(X, U)
        (H,) = model.hessians(X, U)
        tau = torch.cat([X, U], -1)
        F = torch.cat([A, Bu], -1)
        f = model.transitions(X, U) - (F @ tau[:-1].unsqueeze(-1)).squeeze(-1)
        c = q - (H @ tau.unsqueeze(-1)).squeeze(-1)
        sol = lqr(self.x_init, H, c, F, f, lower=self.lower, upper=self.upper, u_init=U)
        return join_flat(sol.x, sol.u, self.Lam)


def _kkt_scale(X, U, Lam):
    return torch.sqrt(X.pow(2).sum((0, 2)) + U.pow(2).sum((0, 2)) + Lam.pow(2).sum((0, 2)))


def _default_tol(dtype):
    return float(torch.finfo(dtype).eps) ** 0.75


def _solve(model, x_init, u_init, lower, upper, adjoint, max_iter, tol, throw, newton=False):
    adjoint = make_trajectory_adjoint(adjoint)
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    T, batch, m = u_init.shape
    tol = _default_tol(x_init.dtype) if tol is None else tol
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    kkt_tol = _default_tol(x_init.dtype) if tol == 0 else tol
    lower, upper = broadcast_bounds(lower, upper, T, batch, m, x_init)
    with torch.set_grad_enabled(adjoint.records_forward and torch.is_grad_enabled()):
        X, U, J, converged, iterations, reg, final = optimise(
            model, x_init, u_init, lower, upper, max_iter, tol, newton
        )
    with torch.no_grad():
        if final is None:
            Lam = final_costates(model, X, U)
            residual = kkt_residual(model, X.detach(), U.detach(), Lam, x_init.detach(), lower, upper)
        else:  # X and Lambda satisfy their conditions by construction (rollout, costate recursion)
            Lam, r_u = final
            residual = (r_u,)
        rel = torch.sqrt(sum(r.pow(2).sum((0, 2)) for r in residual)) / _kkt_scale(X, U, Lam).clamp_min(1e-30)
    kkt_ok = rel <= max(1e3 * kkt_tol, 1e3 * float(torch.finfo(x_init.dtype).eps))
    stats = TrajectoryStats(iterations, (converged if tol > 0 else True) & kkt_ok, J.detach(), rel, reg)
    if not bool(stats.converged.all()):
        failed = (~stats.converged).nonzero().flatten().tolist()
        message = (
            f"iLQR did not converge for {len(failed)} of {batch} samples {failed[:10]} "
            f"(max_iter={max_iter}, tol={tol:g}): {stats.summary()}; gradients there are approximate"
        )
        if throw:
            raise ConvergenceError(message, stats)
        warnings.warn(message, NonConvergenceWarning, stacklevel=3)
    solved = SolvedTrajectory(model, x_init, lower, upper, X.detach(), U.detach(), Lam)
    solution = TrajectorySolution(X, U, Lam, stats, solved=solved)
    if not torch.is_grad_enabled() or adjoint.records_forward:
        return solution
    # the model's own tensors and parameters reach the residual by closure
    sol = implicit_solution(
        lambda z, x0: solved.residual(z, x0), solved.z_star(), x_init, adjoint=adjoint, structure=solved
    )
    solution.x, solution.u = (v.transpose(0, 1) for v in sol.value[:2])
    solution.backward = sol.backward
    return solution


def _check_problem(x_init, u_init, n_expected=None):
    if x_init.dim() != 2:
        raise ValueError(f"x_init must be [B, n], got shape {tuple(x_init.shape)}")
    if u_init.dim() != 3 or u_init.shape[1] != x_init.shape[0]:
        raise ValueError(f"u_init must be [T, B, m] with B = {x_init.shape[0]}, got shape {tuple(u_init.shape)}")
    if u_init.shape[0] == 0:
        raise ValueError("the horizon T (u_init's first axis) must be >= 1, got 0: there is no control to optimise")
    if not (x_init.is_floating_point() and u_init.dtype == x_init.dtype and u_init.device == x_init.device):
        raise ValueError(
            f"x_init and u_init must be floating tensors of one dtype and device, got {x_init.dtype}, {u_init.dtype}"
        )
    if torch.finfo(x_init.dtype).bits < 32:
        raise ValueError(
            f"iLQR/LQR need float32 or float64, got {x_init.dtype}: with its {torch.finfo(x_init.dtype).resolution:g} "
            "resolution the Riccati pass and the KKT residual that certifies convergence are rounding noise; "
            "solve in float32 (x_init.float(), u_init.float()) and cast the result back"
        )
    if n_expected is not None and x_init.shape[1] != n_expected:
        raise ValueError(f"x_init has state dimension {x_init.shape[1]}, the dynamics have {n_expected}")


def ilqr(
    dynamics: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    cost: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x_init: torch.Tensor,
    u_init: torch.Tensor,
    *,
    lower: float | torch.Tensor | None = None,
    upper: float | torch.Tensor | None = None,
    adjoint: Any = "riccati",
    max_iter: int = 100,
    tol: float | None = None,
    hessian: str = "newton",
    throw: bool = False,
) -> TrajectorySolution:
    """Solve the trajectory problem of the module docstring by iLQR, differentiably.

    Args:
        dynamics: ``f(x [B, n], u [B, m]) -> [B, n]`` (mpc.pytorch's convention), treating rows
            independently (it is called on stacked copies of all time steps and samples, so no
            batch statistics, no ``.item()``, no data-dependent Python branches). Learned parameters
            may live in its closure (an ``nn.Module``).
        cost: ``g(x [B, n], u [B, m]) -> [B]``, likewise; twice differentiable.
        x_init: ``[B, n]`` initial states.
        u_init: ``[T, B, m]`` initial controls (the horizon; a warm start).
        lower: lower control bounds, broadcastable to ``[T, B, m]`` (``None``: unbounded).
        upper: upper control bounds, likewise.
        adjoint: how the solution is differentiated (module docstring): :class:`RiccatiAdjoint`
            (``"riccati"``, default), ``ImplicitAdjoint(linear_solver=...)`` (``"implicit"``: a
            Krylov solve of the same system), :class:`LastLayerAdjoint` (``"last_layer"``) or
            ``UnrolledAdjoint()`` (``"unrolled"``).
        max_iter: cap on iterations.
        tol: stop a sample when its proposed control step ``max |k_t|`` is below
            ``tol * (1 + max |u|)`` and so is its KKT residual in ``u`` (default ``eps ** 0.75``:
            1.8e-12 in float64, 6.4e-6 in float32). ``tol=0`` runs exactly ``max_iter`` iterations.
        hessian: ``"newton"`` (the Lagrangian's Hessian, with the dynamics' second derivatives
            weighted by the current costates: quadratic convergence) or ``"gauss_newton"`` (the cost
            Hessian only: classic iLQR, linear convergence). Both have the same fixed point.
        throw: raise :class:`ConvergenceError` instead of warning when a sample does not converge.

    Returns:
        :class:`TrajectorySolution`.

    Raises:
        ValueError: bad shapes or bounds, a horizon of 0, a half-precision dtype (float16 and bfloat16
            are refused: solve in float32), or non-finite values from the dynamics or cost.
        ConvergenceError (in ``backward()``): the implicit adjoint missed its tolerance.
    """
    _check_problem(x_init, u_init)
    T, batch, m = u_init.shape
    with torch.no_grad():
        try:
            probe = dynamics(x_init, u_init[0])
        except Exception as err:  # a wrong state dimension usually surfaces here
            raise ValueError(
                f"dynamics(x_init [B, n], u [B, m]) failed on shapes {tuple(x_init.shape)}, {tuple(u_init[0].shape)}: {err}"
            ) from err
    if probe.shape != x_init.shape:
        raise ValueError(
            f"dynamics(x, u) returned shape {tuple(probe.shape)} for x of shape {tuple(x_init.shape)}; wrong state dimension?"
        )
    with torch.no_grad():
        cost_probe = cost(x_init, u_init[0])
    if not isinstance(cost_probe, torch.Tensor) or cost_probe.shape != (batch,):
        shape = tuple(cost_probe.shape) if isinstance(cost_probe, torch.Tensor) else type(cost_probe).__name__
        raise ValueError(f"cost(x [B, n], u [B, m]) must return one cost per sample, shape ({batch},); got {shape}")
    if hessian not in ("newton", "gauss_newton"):
        raise ValueError(f"hessian must be 'newton' or 'gauss_newton', got {hessian!r}")
    model = NonlinearModel(dynamics, cost, x_init.shape[1], m)
    return _solve(model, x_init, u_init, lower, upper, adjoint, max_iter, tol, throw, hessian == "newton")


def lqr(
    x_init: torch.Tensor,
    C: torch.Tensor,
    c: torch.Tensor,
    F: torch.Tensor,
    f: torch.Tensor,
    *,
    lower: float | torch.Tensor | None = None,
    upper: float | torch.Tensor | None = None,
    u_init: torch.Tensor | None = None,
    adjoint: Any = "riccati",
    max_iter: int = 50,
    tol: float | None = None,
    throw: bool = False,
) -> TrajectorySolution:
    """Finite-horizon LQR with optional control bounds, differentiable in all its data.

    Minimises ``sum_t 1/2 tau_t^T C_t tau_t + c_t^T tau_t`` subject to ``x_{t+1} = F_t tau_t + f_t``,
    ``x_0 = x_init`` and ``lower <= u_t <= upper``. Unbounded problems take one Riccati pass; bounded
    ones iterate projected-Newton Riccati passes until the active set settles.

    Args:
        x_init: ``[B, n]``.
        C: ``[T, B, N, N]`` symmetric, with ``N = n + m``.
        c: ``[T, B, N]``.
        F: ``[T-1, B, n, N]``.
        f: ``[T-1, B, n]``.
        lower: as in :func:`ilqr`.
        upper: as in :func:`ilqr`.
        u_init: ``[T, B, m]`` warm start (default zeros).
        adjoint: as in :func:`ilqr`.
        max_iter: as in :func:`ilqr`.
        tol: as in :func:`ilqr`.
        throw: as in :func:`ilqr`.
    """
    if C.dim() != 4 or c.dim() != 3 or F.dim() != 4 or f.dim() != 3:
        raise ValueError(
            f"lqr expects C [T, B, N, N], c [T, B, N], F [T-1, B, n, N], f [T-1, B, n]; got shapes "
            f"{tuple(C.shape)}, {tuple(c.shape)}, {tuple(F.shape)}, {tuple(f.shape)}"
        )
    T, batch, N, _ = C.shape
    if T == 0:
        raise ValueError("the horizon T (C's first axis) must be >= 1, got 0: there is no control to optimise")
    n = F.shape[-2]
    m = N - n
    if m < 1 or F.shape != (T - 1, batch, n, N) or c.shape != (T, batch, N) or f.shape != (T - 1, batch, n):
        raise ValueError(
            f"lqr shapes disagree: C {tuple(C.shape)}, c {tuple(c.shape)}, F {tuple(F.shape)} (want [{T - 1}, {batch}, n, {N}]), "
            f"f {tuple(f.shape)}"
        )
    if u_init is None:
        u_init = torch.zeros(T, batch, m, dtype=x_init.dtype, device=x_init.device)
    _check_problem(x_init, u_init, n)
    model = LinearQuadraticModel(C, c, F, f)
    return _solve(model, x_init, u_init, lower, upper, adjoint, max_iter, tol, throw)


__all__ = ["ilqr", "lqr", "SolvedTrajectory"]
