"""First-order optimality (KKT) of a trajectory optimisation problem, and its O(T) adjoint solve.

For a model with stage costs ``g_t(x_t, u_t)``, transitions ``x_{t+1} = f_t(x_t, u_t)`` and control
bounds, a locally optimal trajectory ``(X*, U*)`` with costates ``Lambda*`` makes the residual

    R_X      = grad_X Lagr
    R_U      = U - clamp(U - grad_U Lagr, lower, upper)     (grad_U Lagr on unbounded problems)
    R_Lambda = (x_init - x_0,  f_t(x_t, u_t) - x_{t+1})
    Lagr     = sum_t g_t + sum_t lambda_{t+1}^T (f_t - x_{t+1}) + lambda_0^T (x_init - x_0)

vanish. This is the fixed point of iLQR (its step is zero exactly there), so the solver core's implicit
adjoint gives exact gradients on ``R`` (:func:`~idplan.solvers.implicit_solution`). The Jacobian ``dR/dz`` is the
Hessian of the Lagrangian (including the dynamics' second derivatives weighted by the costates)
bordered by the dynamics Jacobians, with identity rows for controls held at a bound: its adjoint system
is itself an LQR problem, solved by one Riccati pass (:class:`RiccatiSolve`) instead of a Krylov
method. Both are exact; the Krylov solvers (GMRES) remain available as a
cross-check.
"""

from __future__ import annotations

import torch

from ..core.forward import LinearOperator
from .models import TrajectoryModel
from .riccati import linear_rollout, riccati


def costates(q: torch.Tensor, A: torch.Tensor, n: int) -> torch.Tensor:
    """The multipliers ``lambda_t = d g_t/dx_t + A_t^T lambda_{t+1}`` (``lambda_T = 0``), ``[T, B, n]``."""
    T = q.shape[0]
    qx, At = q[..., :n, None].unbind(0), A.transpose(-1, -2).unbind(0)  # [B, n, 1], [B, n, n] per step
    out = [qx[T - 1]]
    for t in reversed(range(T - 1)):
        out.append(torch.baddbmm(qx[t], At[t], out[-1]))
    return torch.stack(out[::-1]).squeeze(-1)


def kkt_residual(
    model: TrajectoryModel,
    X: torch.Tensor,
    U: torch.Tensor,
    Lam: torch.Tensor,
    x_init: torch.Tensor,
    lower: torch.Tensor | None,
    upper: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(R_X, R_U, R_Lambda)`` of the module docstring, each shaped like its variable.

    Differentiable (with a graph) when grad mode is on; otherwise evaluated without one.
    """
    differentiable = torch.is_grad_enabled()
    with torch.enable_grad():
        Xg = X if X.requires_grad else X.detach().requires_grad_()
        Ug = U if U.requires_grad else U.detach().requires_grad_()
        nxt = model.transitions(Xg, Ug)
        lagrangian = model.stage_costs(Xg, Ug).sum() + (Lam[1:] * (nxt - Xg[1:])).sum()
        grad_x, grad_u = torch.autograd.grad(lagrangian, (Xg, Ug), create_graph=differentiable)
    if not differentiable:
        nxt = nxt.detach()
    r_x = torch.cat([(grad_x[0] - Lam[0]).unsqueeze(0), grad_x[1:]])
    r_u = grad_u if lower is None else U - torch.clamp(U - grad_u, lower, upper)
    r_lam = torch.cat([(x_init - X[0]).unsqueeze(0), nxt - X[1:]])
    return r_x, r_u, r_lam


def lagrangian_grad_u(q: torch.Tensor, Bu: torch.Tensor, Lam: torch.Tensor, n: int) -> torch.Tensor:
    """``d Lagr / d u_t = d g_t/du_t + Bu_t^T lambda_{t+1}`` (``[T, B, m]``)."""
    coupling = (Bu.transpose(-1, -2) @ Lam[1:].unsqueeze(-1)).squeeze(-1)
    return q[..., n:] + torch.cat([coupling, torch.zeros_like(q[-1:, :, n:])])  # nothing follows u_{T-1}


def active_bounds(
    U: torch.Tensor, grad_u: torch.Tensor, lower: torch.Tensor | None, upper: torch.Tensor | None
) -> torch.Tensor | None:
    """``[T, B, m]`` bool: controls held at a bound (the projection in ``R_U`` clamps them)."""
    if lower is None:
        return None
    trial = U - grad_u
    return (trial <= lower) | (trial >= upper)


class KKTSystem:
    """The Jacobian ``dR/dz`` of the KKT residual at a solution, in the structure the Riccati pass solves.

    With ``y`` the free variables and ``a`` the controls held at a bound, ``dR/dz = [[J_yy, J_ya], [0, I]]``
    where ``J_yy`` (the Hessian of the Lagrangian bordered by the dynamics Jacobians) is symmetric: the
    KKT matrix of an LQR problem. :meth:`solve_free` solves ``J_yy w_y = v_y`` by one Riccati pass.
    """

    def __init__(self, model: TrajectoryModel, X, U, Lam, lower, upper):
        n = X.shape[-1]
        with torch.no_grad():
            q, self.A, self.Bu = model.first_order(X, U)
            self.H = model.hessians(X, U, Lam)[-1]
            self.pinned = active_bounds(U, lagrangian_grad_u(q, self.Bu, Lam, n), lower, upper)
        self.shape = (X.shape[0], n, U.shape[-1])

    @property
    def has_pinned(self) -> bool:
        return self.pinned is not None and bool(self.pinned.any())

    def solve_free(self, v_x, v_u, v_lam):
        """``w_y`` with ``J_yy w_y = v_y`` (``v_u`` ignored on pinned controls, ``w_u`` zero there):
        the LQR problem with cost gradient ``-v_tau`` and defects ``-v_lambda``; the costates of its
        solution are the ``lambda`` part."""
        if self.pinned is not None:
            v_u = torch.where(self.pinned, 0.0, v_u)
        gains = riccati(self.H, -torch.cat([v_x, v_u], -1), self.A, self.Bu, d=-v_lam[1:], pinned=self.pinned)
        return linear_rollout(gains, self.A, self.Bu, -v_lam[0], d=-v_lam[1:])


class RiccatiSolve:
    """A linear solver for the core's implicit adjoint: ``(dR/dz)^T w = v`` of the trajectory KKT
    residual (or, on a transposed operator, ``(dR/dz) s = v``: the forward-mode IFT), solved exactly
    by one Riccati pass.

    ``w_y`` solves ``J_yy w_y = v_y`` (:meth:`KKTSystem.solve_free`; ``J_yy`` is symmetric); the
    controls at a bound take ``w_a = v_a - J_ya^T w_y`` (reverse) or ``s_a = v_a`` with
    ``J_yy s_y = v_y - J_ya s_a`` (forward), each coupling one product with the operator. The
    residual is measured and reported as the linear solve's statistics (``iterations`` = 1).
    """

    def __init__(self, system: KKTSystem):
        self.system = system

    def solve_linear(self, op: LinearOperator, v: torch.Tensor, w0: torch.Tensor, tracker) -> None:
        T, n, m = self.system.shape
        v_x, v_u, v_lam = split_flat(v, T, n, m)
        pinned = self.system.pinned if self.system.has_pinned else None
        if pinned is not None and op.transposed:  # s_a = v_a first, then the free part
            s_a = torch.where(pinned, v_u, 0.0)
            c_x, c_u, c_lam = split_flat(
                op.t_matvec(join_flat(torch.zeros_like(v_x), s_a, torch.zeros_like(v_lam))), T, n, m
            )
            dX, dU, dLam = self.system.solve_free(v_x - c_x, v_u - c_u, v_lam - c_lam)
            w = join_flat(dX, torch.where(pinned, s_a, dU), dLam)
        else:
            dX, dU, dLam = self.system.solve_free(v_x, v_u, v_lam)
            w = join_flat(dX, dU, dLam)
            if pinned is not None:
                coupling = split_flat(op.t_matvec(w), T, n, m)[1]
                w = join_flat(dX, torch.where(pinned, v_u - coupling, dU), dLam)
        tracker.start(w, op.t_matvec(w) - v)


def split_flat(flat: torch.Tensor, T: int, n: int, m: int):
    """Batch-first flat ``[B, T*n + T*m + T*n]`` -> time-first ``X``, ``U``, ``Lambda`` parts."""
    batch = flat.shape[0]
    x, u, lam = torch.split(flat, [T * n, T * m, T * n], dim=1)
    return (
        x.reshape(batch, T, n).transpose(0, 1),
        u.reshape(batch, T, m).transpose(0, 1),
        lam.reshape(batch, T, n).transpose(0, 1),
    )


def join_flat(X: torch.Tensor, U: torch.Tensor, Lam: torch.Tensor) -> torch.Tensor:
    batch = X.shape[1]
    return torch.cat([t.transpose(0, 1).reshape(batch, -1) for t in (X, U, Lam)], dim=1)
