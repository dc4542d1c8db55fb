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


def _solve_spd(M: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Solve ``M X = rhs`` for a batch of matrices meant to be positive definite (``M [..., m, m]``).

    By Cholesky; where that fails (see :func:`_not_positive_definite`), by LU for the whole batch,
    which still works for a nonsingular indefinite matrix.
    """
    if M.shape[-1] == 1:
        return rhs / M
    chol, info = torch.linalg.cholesky_ex(M)
    if not bool((info != 0).any()):
        return torch.cholesky_solve(rhs, chol)
    return torch.linalg.solve(M, rhs)


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
        lower: ``[B, m]`` lower bounds (``-inf`` allowed), ``lower <= upper``.
        upper: ``[B, m]`` upper bounds (``inf`` allowed).
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

    Works in the augmented coordinates ``y = [dx; 1]`` (see :func:`_augmented_stage`), so that one
    fused product per step propagates the value function's Hessian and gradient together, and one
    solve gives the gains ``G_t = [K_t, k_t]``.

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
    unregularised = reg is None or not bool(reg.any())
    shift = None if unregularised else torch.diag_embed(reg[:, None].expand(batch, m))  # [B, m, m]: reg I
    P, F = _augmented_stage(H, q, A, Bu, d, shift)
    P, F, Ft = P.unbind(0), F.unbind(0), F.transpose(-1, -2).unbind(0)  # per step, without indexing in the loop
    free_all = torch.ones(T, batch, m, dtype=torch.bool, device=H.device) if pinned is None else ~pinned
    bounds = [None] * T
    if lower is not None:
        bounds = list(zip(torch.where(free_all, lower, 0.0).unbind(0), torch.where(free_all, upper, 0.0).unbind(0)))
    free_all = free_all.unbind(0)
    V = None  # [B, n+1, n+1]: the value function in y, [[Vxx, Vx], [Vx^T, const]]
    out_G, out_V, out_free, out_Q = [], [], [], []
    for t in reversed(range(T)):
        Q = P[t] if V is None else torch.baddbmm(P[t], Ft[t], V @ F[t])
        G, free = _step_gains(Q, n, free_all[t], bounds[t], pinned is not None)
        V = _value_update(Q, G, n, shift)
        out_G.append(G)
        out_V.append(V)
        out_free.append(free)
        out_Q.append(Q[:, n:, n:])  # [B, m+1, m+1]: the constant row and the control block
    return _collect(out_G[::-1], out_V[::-1], out_free[::-1], out_Q[::-1], n, shift, bounds[0] is not None)


def _augmented_stage(H, q, A, Bu, d, shift) -> tuple[torch.Tensor, torch.Tensor]:
    """The stage costs and dynamics in augmented coordinates ordered ``(x, 1, u)``.

    Returns ``P [T, B, N+1, N+1] = [[Hxx, qx, Hxu], [qx^T, 0, qu^T], [Hux, qu, Huu + reg I]]`` and
    ``F [T-1, B, n+1, N+1] = [[A, d, Bu], [0, 1, 0]]``, so that ``Q_t = P_t + F_t^T V_{t+1} F_t``
    (``shift = reg I``, ``[B, m, m]``, or None).
    """
    n = A.shape[-1]
    Hu = H[..., n:, n:] if shift is None else H[..., n:, n:] + shift
    rows_x = torch.cat([H[..., :n, :n], q[..., :n, None], H[..., :n, n:]], -1)
    row_1 = torch.cat([q[..., None, :n], torch.zeros_like(q[..., None, :1]), q[..., None, n:]], -1)
    rows_u = torch.cat([H[..., n:, :n], q[..., n:, None], Hu], -1)
    P = torch.cat([rows_x, row_1, rows_u], -2)
    defect = torch.zeros_like(A[..., :1]) if d is None else d[..., None]
    last = torch.zeros_like(P[:-1, :, :1, :])
    last[..., 0, n] = 1.0
    F = torch.cat([torch.cat([A, defect, Bu], -1), last], -2)
    return P, F


def _step_gains(Q, n, free, bounds, pinned) -> tuple[torch.Tensor, torch.Tensor]:
    """The gains ``G = [K, k]`` (``[B, m, n+1]``) at one step from ``Q [B, N+1, N+1]``, and the mask of
    free controls (``[B, m]``). Bounds go through the box QP (which needs ``Quu`` positive definite on
    all controls); clamped or pinned controls get zero feedback rows."""
    Quu, Quy = Q[:, n + 1 :, n + 1 :], Q[:, n + 1 :, : n + 1]
    if bounds is not None and Quu.shape[-1] == 1:
        return _one_control_gains(Quu, Quy, n, free, bounds)
    if bounds is None:
        if pinned:
            Quu, Quy = _pinned_matrix(Quu, free), torch.where(free[:, :, None], Quy, 0.0)
        return -_solve_spd(Quu, Quy), free
    k, in_box = box_qp(0.5 * (Quu + Quu.transpose(-1, -2)), Quy[..., n], *bounds)
    free = free & in_box
    K = -_solve_spd(_pinned_matrix(Quu, free), torch.where(free[:, :, None], Quy[..., :n], 0.0))
    return torch.cat([K, k.unsqueeze(-1)], -1), free


def _one_control_gains(Quu, Quy, n, free, bounds) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_step_gains` for one bounded control (``Quu [B, 1, 1]``, ``Quy [B, 1, n+1]``): the box QP's
    answer is the clamped Newton point, free where strictly inside its bounds (``[B, 1]`` each)."""
    newton = -(Quy / Quu)  # the unconstrained [K, k]
    lower, upper = bounds
    k = torch.clamp(newton[..., n], lower, upper)
    free = free & (k > lower) & (k < upper)
    return torch.cat([torch.where(free[..., None], newton[..., :n], 0.0), k[..., None]], -1), free


def _value_update(Q, G, n, shift) -> torch.Tensor:
    """``V = Q_yy + G^T Quu G + G^T Q_uy + Q_yu G`` (``Quu`` without the regularisation ``shift``),
    symmetrised: the value function under the policy ``du = G y`` (``[B, n+1, n+1]``)."""
    Quu, Quy = Q[:, n + 1 :, n + 1 :], Q[:, n + 1 :, : n + 1]
    if shift is not None:
        Quu = Quu - shift
    V = torch.baddbmm(Q[:, : n + 1, : n + 1], G.transpose(-1, -2), torch.baddbmm(Quy, Quu, G))
    V = torch.baddbmm(V, Q[:, : n + 1, n + 1 :], G)
    return 0.5 * (V + V.transpose(-1, -2))


def _collect(G, V, free, Q, n, shift, bounded) -> RiccatiPass:
    """Stack the per-step results (time first) into a :class:`RiccatiPass`."""
    G, V, free, Q = (torch.stack(x) for x in (G, V, free, Q))
    k, qu, Quu = G[..., n], Q[..., 1:, 0], Q[..., 1:, 1:]
    solved = Quu if bounded else _pinned_matrix(Quu, free)  # what the box QP / the gains needed positive definite
    if shift is not None:
        Quu = Quu - shift
    return RiccatiPass(
        K=G[..., :n],
        k=k,
        Vx=V[..., :n, n],
        Vxx=V[..., :n, :n],
        free=free,
        expected_linear=(k * qu).sum((0, 2)),
        expected_quadratic=0.5 * (k * _mv(Quu, k)).sum((0, 2)),
        indefinite=_not_positive_definite(solved).any(0),
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
