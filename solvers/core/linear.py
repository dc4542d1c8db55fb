"""Krylov solvers for the adjoint system ``A^T w = v`` (``A = dF/dz`` at the solution).

Each works matrix-free on a :class:`~idplan.solvers.LinearOperator`, batched over ``[B, N]``
with per-sample stopping through the :class:`~idplan.solvers.Tracker`. The nonlinear
solvers of :mod:`idplan.solvers.core.forward` (forward iteration, Anderson, Broyden) solve the same
system too; these are the choices for root and argmin problems, where ``A`` is not ``I - J``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from .forward import LinearOperator
from .tracker import Tracker


def _dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a * b).sum(1)


def _safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    ok = den.abs() > torch.finfo(den.dtype).tiny
    return torch.where(ok, num / torch.where(ok, den, 1.0), 0.0)


def _cg(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor, tracker: Tracker) -> None:
    """Conjugate gradients for a symmetric positive definite ``M x = b`` (batched)."""
    x = x0
    res = b - matvec(x)
    tracker.start(x, -res)
    p, rr = res, _dot(res, res)
    while tracker.keep_going():
        mp = matvec(p)
        alpha = _safe_div(rr, _dot(p, mp))[:, None]
        x, neg_res = tracker.update(x + alpha * p, -(res - alpha * mp))
        res = -neg_res
        rr_new = _dot(res, res)
        p = res + _safe_div(rr_new, rr)[:, None] * p
        rr = rr_new


@dataclass(frozen=True)
class CG:
    """Conjugate gradients on ``(A^T + ridge I) w = v``, for symmetric ``A`` (argmin Hessians).

    Args:
        ridge: the epsilon-ridge added to a singular or indefinite Hessian (>= 0).
    """

    ridge: float = 0.0

    def __post_init__(self):
        if self.ridge < 0:
            raise ValueError(f"CG: ridge must be >= 0, got {self.ridge}")

    def solve_linear(self, op: LinearOperator, v: torch.Tensor, w0: torch.Tensor, tracker: Tracker) -> None:
        if self.ridge:
            _cg(lambda x: op.t_matvec(x) + self.ridge * x, v, w0, tracker)
        else:
            _cg(op.t_matvec, v, w0, tracker)


@dataclass(frozen=True)
class CGNormal:
    """Conjugate gradients on the normal equations ``A A^T w = A v`` for a non-symmetric ``A``.

    Each iteration costs one vector-Jacobian and one Jacobian-vector product. The tolerance applies
    to the normal equations' residual ``||A v - A A^T w||`` relative to ``||A v||``.
    """

    def solve_linear(self, op: LinearOperator, v: torch.Tensor, w0: torch.Tensor, tracker: Tracker) -> None:
        b = op.matvec(v)
        tracker.fixed_scale = torch.linalg.vector_norm(b.detach(), dim=1)
        _cg(lambda x: op.matvec(op.t_matvec(x)), b, w0, tracker)


@dataclass(frozen=True)
class GMRES:
    """Restarted GMRES for ``A^T w = v`` with a non-symmetric ``A``; one product per iteration.

    Args:
        restart: Krylov subspace size before a restart (>= 1).
    """

    restart: int = 20

    def __post_init__(self):
        if self.restart < 1:
            raise ValueError(f"GMRES: restart must be >= 1, got {self.restart}")

    def solve_linear(self, op: LinearOperator, v: torch.Tensor, w0: torch.Tensor, tracker: Tracker) -> None:
        w = w0
        res = v - op.t_matvec(w)
        tracker.start(w, -res)
        batch = v.shape[0]
        while tracker.keep_going():
            w_start, res_start = w, res
            beta = torch.linalg.vector_norm(res_start, dim=1)
            basis = [res_start / beta.clamp_min(torch.finfo(v.dtype).tiny)[:, None]]
            hess = v.new_zeros(batch, self.restart + 1, self.restart)
            for j in range(self.restart):
                q = op.t_matvec(basis[j])
                for i in range(j + 1):  # modified Gram-Schmidt
                    h = _dot(basis[i], q)
                    hess[:, i, j] = h
                    q = q - h[:, None] * basis[i]
                norm = torch.linalg.vector_norm(q, dim=1)
                hess[:, j + 1, j] = norm
                basis.append(q * _safe_div(torch.ones_like(norm), norm)[:, None])
                h_j = hess[:, : j + 2, : j + 1]
                rhs = torch.zeros(batch, j + 2, dtype=v.dtype, device=v.device)
                rhs[:, 0] = beta
                normal = torch.bmm(h_j.transpose(1, 2), h_j)
                # a ridge at the dtype's precision keeps the least-squares solve defined after a
                # (lucky) breakdown; a sample whose system is all zeros (v = 0) takes no step
                eps = torch.finfo(v.dtype).eps
                ridge = eps * torch.diagonal(normal, dim1=1, dim2=2).sum(1)
                normal = normal + ridge[:, None, None] * torch.eye(j + 1, dtype=v.dtype, device=v.device)
                y, info = torch.linalg.solve_ex(normal, torch.bmm(h_j.transpose(1, 2), rhs[:, :, None]))
                y = torch.where((info == 0)[:, None], y.squeeze(-1), 0.0)
                q_j = torch.stack(basis[: j + 1], dim=2)  # [B, N, j+1]
                q_j1 = torch.stack(basis[: j + 2], dim=2)
                w_new = w_start + torch.bmm(q_j, y[:, :, None]).squeeze(-1)
                res_new = res_start - torch.bmm(q_j1, torch.bmm(h_j, y[:, :, None])).squeeze(-1)
                w, neg_res = tracker.update(w_new, -res_new)
                res = -neg_res
                if j + 1 < self.restart and not tracker.keep_going():
                    return
            res = v - op.t_matvec(w)  # true residual for the restart


@dataclass(frozen=True)
class Dense:
    """The naive IFT: build ``A^T`` densely from ``N`` vector-Jacobian products and solve it directly.

    ``O(N)`` products and an ``O(N^3)`` solve per sample; the baseline the Krylov solvers beat on
    larger systems. ``max_dim`` guards against building a huge matrix by accident.
    """

    max_dim: int = 2048

    def solve_linear(self, op: LinearOperator, v: torch.Tensor, w0: torch.Tensor, tracker: Tracker) -> None:
        batch, n = v.shape
        if n > self.max_dim:
            raise ValueError(f"Dense: a {n}x{n} matrix per sample exceeds max_dim={self.max_dim}; use GMRES or CG")
        eye = torch.eye(n, dtype=v.dtype, device=v.device)
        columns = [op.t_matvec(eye[i].expand(batch, n)) for i in range(n)]  # A^T e_i
        w, info = torch.linalg.solve_ex(torch.stack(columns, dim=2), v.unsqueeze(-1))
        w = torch.where((info == 0)[:, None], w.squeeze(-1), 0.0)
        tracker.start(w, op.t_matvec(w) - v)
