"""Infinite-horizon discrete-time LQR through the discrete algebraic Riccati equation (DARE).

The stabilising solution ``P`` of

    A^T P A - P - A^T P B (R + B^T P B)^{-1} B^T P A + Q = 0

gives the optimal feedback ``u = -K x`` with ``K = (R + B^T P B)^{-1} B^T P A``. The forward solve is the
structured doubling algorithm (quadratic convergence, batched, any device); the gradient comes from the
solver core's implicit adjoint on the DARE residual (:func:`~idplan.solvers.implicit_solution`) (DIL appendix C). Its Jacobian in ``P`` is the
Stein operator ``X -> A_cl^T X A_cl - X`` with the closed loop ``A_cl = A - B K``, nonsingular when
``A_cl`` is stable, so the adjoint is exact (GMRES on ``n^2`` unknowns per sample).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..core import GMRES, ConvergenceError, ImplicitAdjoint, Solution, default_tolerances, implicit_solution
from ..core.adjoint import make_adjoint


@dataclass
class DARESolution:
    """``P`` (``[B, n, n]``) and the gain ``K`` (``[B, m, n]``), both differentiable w.r.t. A, B, Q, R;
    ``solution`` holds the core's forward statistics (residual) and, after backward, the adjoint's."""

    P: torch.Tensor
    K: torch.Tensor
    solution: Solution


def dare_residual(P: torch.Tensor, A: torch.Tensor, B: torch.Tensor, Q: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """The DARE's left-hand side, ``[B, n, n]`` (zero at a solution)."""
    At = A.transpose(-1, -2)
    PB = P @ B
    # B^T P A, not (P B)^T A: the two agree for a symmetric P, but the adjoint differentiates in every
    # direction of R^{n x n}, and only this form has the Stein operator as its Jacobian there
    gain = torch.linalg.solve(R + B.transpose(-1, -2) @ PB, B.transpose(-1, -2) @ P @ A)
    return At @ P @ A - P - At @ PB @ gain + Q


def lqr_gain(P: torch.Tensor, A: torch.Tensor, B: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """``K = (R + B^T P B)^{-1} B^T P A`` (``[B, m, n]``)."""
    Bt = B.transpose(-1, -2)
    return torch.linalg.solve(R + Bt @ P @ B, Bt @ P @ A)


def structured_doubling(A, B, Q, R, max_iter: int = 60, rtol: float | None = None) -> torch.Tensor:
    """The stabilising DARE solution by the structured doubling algorithm (Chu et al. 2004), batched.

    ``A_{k+1} = A_k W^{-1} A_k``, ``G_{k+1} = G_k + A_k W^{-1} G_k A_k^T``, ``H_{k+1} = H_k + A_k^T H_k W^{-1} A_k``
    with ``W = I + G_k H_k``, from ``A_0 = A``, ``G_0 = B R^{-1} B^T``, ``H_0 = Q``; ``H_k -> P``.
    """
    rtol = float(torch.finfo(A.dtype).eps) * 10 if rtol is None else rtol
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    Ak, G, H = A, B @ torch.linalg.solve(R, B.transpose(-1, -2)), Q
    for _ in range(max_iter):
        W = eye + G @ H
        W_inv_A = torch.linalg.solve(W, Ak)
        H_next = H + Ak.transpose(-1, -2) @ H @ W_inv_A
        G = G + Ak @ torch.linalg.solve(W, G) @ Ak.transpose(-1, -2)
        Ak = Ak @ W_inv_A
        change = torch.linalg.matrix_norm(H_next - H) / torch.linalg.matrix_norm(H_next).clamp_min(1e-300)
        H = H_next
        if bool((change <= rtol).all()):
            break
    return 0.5 * (H + H.transpose(-1, -2))


def dare(
    A: torch.Tensor,
    B: torch.Tensor,
    Q: torch.Tensor,
    R: torch.Tensor,
    *,
    rtol: float | None = None,
    adjoint: Any = "implicit",
) -> DARESolution:
    """Solve the DARE for a batch and return ``P`` and ``K`` with implicit (IFT) gradients.

    Args:
        A: ``[B, n, n]``; B: ``[B, n, m]``; Q: ``[B, n, n]`` symmetric PSD; R: ``[B, m, m]`` symmetric PD.
        rtol: tolerance on the relative DARE residual (default ``1e3 * eps`` of the dtype).
        adjoint: ``"implicit"`` (default: the IFT on the DARE residual, GMRES restarted every
            ``n^2`` steps, at most ``10 n^2`` of them, to the dtype's tolerance; a miss raises), an
            :class:`~idplan.solvers.ImplicitAdjoint` of your own (e.g. ``linear_solver="dense"``,
            the naive IFT with the ``n^2 x n^2`` Jacobian built; a ``max_iter`` you give warns on a
            miss instead), or ``"unrolled"`` (autograd through the doubling iterations, the baseline).

    Raises:
        ValueError: shapes that do not fit together, or non-finite inputs.
        ConvergenceError: no stabilising solution was found (e.g. ``(A, B)`` not stabilisable); the
            message gives the residual. In ``backward()``: the adjoint missed its tolerance.
    """
    if A.dim() != 3 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"A must be [B, n, n], got {tuple(A.shape)}")
    batch, n, _ = A.shape
    if B.dim() != 3 or B.shape[:2] != (batch, n):
        raise ValueError(f"B must be [B, n, m] = [{batch}, {n}, m], got {tuple(B.shape)}")
    m = B.shape[-1]
    if Q.shape != (batch, n, n):
        raise ValueError(f"Q must be [B, n, n] = [{batch}, {n}, {n}], got {tuple(Q.shape)}")
    if R.shape != (batch, m, m):
        raise ValueError(f"R must be [B, m, m] = [{batch}, {m}, {m}], got {tuple(R.shape)}")
    for name, value in (("A", A), ("B", B), ("Q", Q), ("R", R)):
        if not bool(torch.isfinite(value).all()):
            raise ValueError(f"{name} contains NaN or inf")
    if adjoint == "implicit":  # restarts recover what the first cycle's rounding leaves
        adjoint = ImplicitAdjoint(GMRES(restart=n * n), 10 * n * n, rtol=default_tolerances(A.dtype)[1], throw=True)
    adjoint = make_adjoint(adjoint)
    rtol = 1e3 * float(torch.finfo(A.dtype).eps) if rtol is None else rtol
    with torch.set_grad_enabled(adjoint.records_forward and torch.is_grad_enabled()):
        P_star = structured_doubling(A, B, Q, R)

    def residual(P, args):
        return dare_residual(P, *args)

    # the residual is checked either way; an unrolled gradient is the doubling's own graph
    with torch.set_grad_enabled(torch.is_grad_enabled() and not adjoint.records_forward):
        try:
            sol = implicit_solution(
                residual,
                P_star.detach(),
                (A, B, Q, R),
                adjoint="implicit" if adjoint.records_forward else adjoint,
                atol=0.0,
                rtol=rtol,
            )
        except ConvergenceError as error:
            raise ConvergenceError(
                f"DARE: no stabilising solution to tolerance (is (A, B) stabilisable and (A, Q) detectable?): {error}",
                error.stats,
            ) from error
    P = P_star if adjoint.records_forward else sol.value
    return DARESolution(P=P, K=lqr_gain(P, A, B, R), solution=sol)
