"""Batched finite-horizon LQR with control bounds: the Riccati pass shared by LQR, iLQR and their adjoints.

Layout (time first, as mpc.pytorch): a horizon-``T`` problem has states ``x_0 .. x_{T-1}`` and
controls ``u_0 .. u_{T-1}``, ``tau_t = [x_t; u_t]`` of size ``N = n + m``::

    X [T, B, n],  U [T, B, m],  H [T, B, N, N],  q [T, B, N],  A [T-1, B, n, n],  Bu [T-1, B, n, m]

The step problem solved by :func:`riccati` is, for deviations ``(dx, du)`` from a nominal trajectory,

    minimise  sum_t 1/2 dtau_t^T H_t dtau_t + q_t^T dtau_t
    s.t.      dx_{t+1} = A_t dx_t + Bu_t du_t + d_t,   lo_t <= du_t <= hi_t,   some du_t pinned to 0

and its answer is the affine policy ``du_t = k_t + K_t dx_t`` with the value function
``V_t(dx) = 1/2 dx^T Vxx_t dx + Vx_t^T dx + const``. Control bounds are handled per time step by a
projected-Newton box QP (Tassa, Mansard and Todorov 2014): clamped controls get zero feedback rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def _mv(M: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return (M @ v.unsqueeze(-1)).squeeze(-1)


def _pinned_matrix(M: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """``M`` restricted to the free coordinates, the identity on the others (``M [..., m, m]``)."""
    both = free.unsqueeze(-1) & free.unsqueeze(-2)
    eye = torch.eye(M.shape[-1], dtype=M.dtype, device=M.device)
    return torch.where(both, M, eye)


def _solve_spd(M: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``M X = rhs`` for a batch of matrices meant to be positive definite.

    Returns the solution and a ``[...]`` mask of the matrices whose Cholesky factorisation failed
    (those are solved by LU instead, which still works for a nonsingular indefinite matrix).
    """
    if M.shape[-1] == 1:
        return rhs / M[..., :1, :], _not_positive_definite(M)
    chol, info = torch.linalg.cholesky_ex(M)
    failed = info != 0
    if not bool(failed.any()):
        return torch.cholesky_solve(rhs, chol), failed
    return torch.linalg.solve(M, rhs), failed


def _not_positive_definite(M: torch.Tensor) -> torch.Tensor:
    if M.shape[-1] == 1:
        return M[..., 0, 0] <= 0
    return torch.linalg.cholesky_ex(M)[1] != 0


def box_qp(
    H: torch.Tensor, g: torch.Tensor, lower: torch.Tensor, upper: torch.Tensor, max_iter: int = 30
) -> tuple[torch.Tensor, torch.Tensor]:
    """Minimise ``1/2 x^T H x + g^T x`` subject to ``lower <= x <= upper``, batched.

    Projected Newton with an Armijo search along the projected arc (all step sizes tried at once).

    Args:
        H: ``[B, m, m]`` symmetric positive definite.
        g: ``[B, m]``.
        lower, upper: ``[B, m]`` bounds (``-inf``/``inf`` allowed), ``lower <= upper``.
        max_iter: cap on Newton steps (an active set of size ``m`` needs at most about ``m + 1``).

    Returns:
        ``x`` (``[B, m]``) and the free mask (``[B, m]`` bool, False where a bound is active).
    """
    if g.shape[-1] == 1:  # one control: the clamped Newton point is the answer
        x = torch.clamp(-g / H[..., 0], lower, upper)
        return x, (x > lower) & (x < upper)
    x = torch.clamp(torch.zeros_like(g), lower, upper)
    steps = 0.5 ** torch.arange(12, dtype=g.dtype, device=g.device)
    tiny = torch.finfo(g.dtype).eps

    def value(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (z * _mv(H, z)).sum(-1) + (g * z).sum(-1)

    def free_set(z: torch.Tensor) -> torch.Tensor:
        grad = g + _mv(H, z)
        return ~(((z <= lower) & (grad > 0)) | ((z >= upper) & (grad < 0)))

    done = torch.zeros(g.shape[:-1], dtype=torch.bool, device=g.device)
    for _ in range(max_iter):
        grad = g + _mv(H, x)
        free = free_set(x)
        step = torch.linalg.solve(_pinned_matrix(H, free), torch.where(free, -grad, 0.0))
        trial = torch.clamp(x + steps[:, None, None] * step, lower, upper)  # [L, B, m]
        decrease = value(trial) <= value(x) + 1e-4 * (grad * (trial - x)).sum(-1)
        first = torch.argmax(decrease.to(torch.int8), dim=0)  # first accepted step size
        accepted = decrease.any(0)
        new = torch.where(accepted[:, None], trial.gather(0, first[None, :, None].expand(1, *x.shape))[0], x)
        moved = (new - x).abs().amax(-1) > 10 * tiny * (1 + x.abs().amax(-1))
        x = torch.where(done[:, None], x, new)
        done = done | ~moved
        if bool(done.all()):
            break
    return x, free_set(x)


@dataclass
class RiccatiPass:
    """Output of :func:`riccati` (all time first).

    Attributes:
        K: ``[T, B, m, n]`` feedback gains (zero rows for clamped or pinned controls).
        k: ``[T, B, m]`` feed-forward terms.
        Vx, Vxx: ``[T, B, n]``, ``[T, B, n, n]`` value-function gradient and Hessian at ``dx = 0``.
        free: ``[T, B, m]`` controls not held at a bound or pinned.
        expected_linear, expected_quadratic: ``[B]``; the model predicts the cost change
            ``a * expected_linear + a^2 * expected_quadratic`` for the step ``a * k``.
        indefinite: ``[B]`` samples where some ``Quu`` was not positive definite.
    """

    K: torch.Tensor
    k: torch.Tensor
    Vx: torch.Tensor
    Vxx: torch.Tensor
    free: torch.Tensor
    expected_linear: torch.Tensor
    expected_quadratic: torch.Tensor
    indefinite: torch.Tensor


def riccati(
    H: torch.Tensor,
    q: torch.Tensor,
    A: torch.Tensor,
    Bu: torch.Tensor,
    d: torch.Tensor | None = None,
    lower: torch.Tensor | None = None,
    upper: torch.Tensor | None = None,
    pinned: torch.Tensor | None = None,
    reg: torch.Tensor | None = None,
) -> RiccatiPass:
    """One backward Riccati pass of the step problem in the module docstring, in O(T).

    Args:
        H: ``[T, B, N, N]`` stage Hessians; ``q``: ``[T, B, N]`` stage gradients.
        A, Bu: ``[T-1, B, n, n]``, ``[T-1, B, n, m]`` dynamics Jacobians.
        d: ``[T-1, B, n]`` dynamics defects (None: zero, the nominal trajectory is feasible).
        lower, upper: ``[T, B, m]`` bounds on the deviation ``du`` (None: unbounded).
        pinned: ``[T, B, m]`` bool, controls held at ``du = 0`` (the adjoint's active bounds).
        reg: ``[B]`` Levenberg-Marquardt term added to the diagonal of ``Quu`` (None: 0).
    """
    T, batch, N, _ = H.shape
    n = A.shape[-1]
    m = N - n
    if m < 1 or Bu.shape[-1] != m:
        raise ValueError(f"riccati: H is [T, B, {N}, {N}] but A, Bu give n={n}, m={Bu.shape[-1]}")
    dtype, device = H.dtype, H.device
    Vx = torch.zeros(batch, n, dtype=dtype, device=device)
    Vxx = torch.zeros(batch, n, n, dtype=dtype, device=device)
    eye_m = torch.eye(m, dtype=dtype, device=device)
    ABt = torch.cat([A, Bu], dim=-1).transpose(-1, -2)  # [T-1, B, N, n]
    # Without regularisation K solves (Quu K + Qux) = 0 on the free rows and is zero elsewhere (same for k),
    # so the value-function update simplifies; with it, the full (Tassa et al.) form is kept.
    exact_gains = reg is None or not bool(reg.any())
    all_free = torch.ones(batch, m, dtype=torch.bool, device=device)
    out_K, out_k, out_Vx, out_Vxx, out_free, out_qu, out_Quu = [], [], [], [], [], [], []
    indefinite = torch.zeros(batch, dtype=torch.bool, device=device)
    for t in reversed(range(T)):
        Q, Qv = H[t], q[t]
        if t < T - 1:
            v = Vx if d is None else Vx + _mv(Vxx, d[t])
            Q = Q + ABt[t] @ Vxx @ ABt[t].transpose(-1, -2)
            Qv = Qv + _mv(ABt[t], v)
        Qxx, Qxu, Qux, Quu = Q[:, :n, :n], Q[:, :n, n:], Q[:, n:, :n], Q[:, n:, n:]
        qx, qu = Qv[:, :n], Qv[:, n:]
        Quu_reg = Quu if reg is None else Quu + reg[:, None, None] * eye_m
        free = all_free if pinned is None else ~pinned[t]
        if lower is not None:  # the box QP needs Quu positive definite on all controls, not just the free ones
            indefinite |= _not_positive_definite(Quu_reg)
            lo = torch.where(free, lower[t], 0.0)
            hi = torch.where(free, upper[t], 0.0)
            k, in_box = box_qp(0.5 * (Quu_reg + Quu_reg.transpose(-1, -2)), qu, lo, hi)
            free = free & in_box
            k = torch.where(free, k, 0.0) if pinned is not None else k
        if free is all_free:
            sol, failed = _solve_spd(Quu_reg, torch.cat([qu.unsqueeze(-1), Qux], -1))
        else:
            rhs = torch.cat([torch.where(free, qu, 0.0).unsqueeze(-1), torch.where(free[:, :, None], Qux, 0.0)], -1)
            sol, failed = _solve_spd(_pinned_matrix(Quu_reg, free), rhs)
        indefinite |= failed
        K = -sol[..., 1:]
        if lower is None:
            k = -sol[..., 0]
        if exact_gains:
            Vx = qx + _mv(Qux.transpose(-1, -2), k)
            Vxx = Qxx + Qxu @ K
        else:
            Vx = qx + _mv(K.transpose(-1, -2), _mv(Quu, k) + qu) + _mv(Qux.transpose(-1, -2), k)
            Vxx = Qxx + K.transpose(-1, -2) @ Quu @ K + K.transpose(-1, -2) @ Qux + Qxu @ K
        Vxx = 0.5 * (Vxx + Vxx.transpose(-1, -2))
        out_K.append(K)
        out_k.append(k)
        out_Vx.append(Vx)
        out_Vxx.append(Vxx)
        out_free.append(free)
        out_qu.append(qu)
        out_Quu.append(Quu)
    k_all, qu_all, Quu_all = (torch.stack(x[::-1]) for x in (out_k, out_qu, out_Quu))
    return RiccatiPass(
        K=torch.stack(out_K[::-1]),
        k=k_all,
        Vx=torch.stack(out_Vx[::-1]),
        Vxx=torch.stack(out_Vxx[::-1]),
        free=torch.stack(out_free[::-1]),
        expected_linear=(k_all * qu_all).sum((0, 2)),
        expected_quadratic=0.5 * (k_all * _mv(Quu_all, k_all)).sum((0, 2)),
        indefinite=indefinite,
    )


def linear_rollout(
    gains: RiccatiPass, A: torch.Tensor, Bu: torch.Tensor, dx0: torch.Tensor, d: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Roll the affine policy of ``gains`` through the linear dynamics from ``dx0`` (``[B, n]``).

    Returns ``dX [T, B, n]``, ``dU [T, B, m]`` and the costates ``dLambda = Vxx dx + Vx`` (``[T, B, n]``),
    the multipliers of the dynamics constraints of the step problem.
    """
    T = gains.k.shape[0]
    xs, us = [], []
    dx = dx0
    for t in range(T):
        du = gains.k[t] + _mv(gains.K[t], dx)
        xs.append(dx)
        us.append(du)
        if t < T - 1:
            dx = _mv(A[t], dx) + _mv(Bu[t], du) + (0.0 if d is None else d[t])
    dX, dU = torch.stack(xs), torch.stack(us)
    return dX, dU, _mv(gains.Vxx, dX) + gains.Vx
