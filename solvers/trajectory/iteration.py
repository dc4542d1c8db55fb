"""The Riccati iteration of iLQR and LQR: rollouts for every line-search step at once, per-sample
Levenberg-Marquardt regularisation and stopping, control bounds by the box QP of the Riccati pass."""

from __future__ import annotations

import torch

from .kkt import costates, lagrangian_grad_u
from .riccati import RiccatiPass, riccati

_STEP_SIZES = 0.5 ** torch.arange(10, dtype=torch.float64)


def broadcast_bounds(lower, upper, T, batch, m, like):
    if lower is None and upper is None:
        return None, None
    inf = torch.tensor(float("inf"), dtype=like.dtype, device=like.device)
    lo = -inf if lower is None else torch.as_tensor(lower, dtype=like.dtype, device=like.device)
    hi = inf if upper is None else torch.as_tensor(upper, dtype=like.dtype, device=like.device)
    try:
        lo, hi = torch.broadcast_to(lo, (T, batch, m)), torch.broadcast_to(hi, (T, batch, m))
    except RuntimeError as err:
        raise ValueError(
            f"control bounds must broadcast to [T, B, m] = [{T}, {batch}, {m}]; got lower {tuple(lo.shape)}, "
            f"upper {tuple(hi.shape)}"
        ) from err
    if bool((lo > hi).any()):
        t, b, i = (lo > hi).nonzero()[0].tolist()
        raise ValueError(
            f"lower bound above upper bound at t={t}, sample {b}, control {i}: {float(lo[t, b, i]):g} > {float(hi[t, b, i]):g}"
        )
    if bool(lo.isnan().any() or hi.isnan().any()):
        raise ValueError("control bounds contain NaN")
    return lo, hi


def _clamp(U, lower, upper):
    return U if lower is None else torch.clamp(U, lower, upper)


def _rollout(model, x_init, X, U, gains: RiccatiPass | None, steps, lower, upper):
    """Closed-loop rollouts for every step size at once: ``X [L, T, B, n]``, ``U [L, T, B, m]``
    (``gains`` None: the open-loop rollout of ``U``, ``[T, B, n]``, ``[T, B, m]``).

    The step sizes are folded into the batch (``[L * B, ...]``), so that the feedback
    ``u_t = U_t + a k_t + K_t (x_t - X_t)`` is one batched product per step."""
    T, batch, m = U.shape
    if gains is None:
        xs, us = _closed_loop(model, x_init, U, None, None, lower, upper, ())
        return torch.stack(xs), torch.stack(us)
    L = len(steps)

    def fold(V):  # [T, B, ...] -> [T, L * B, ...], the same for every step size
        return V.unsqueeze(1).expand(V.shape[0], L, *V.shape[1:]).reshape(V.shape[0], L * batch, *V.shape[2:])

    feedforward = (U.unsqueeze(1) + steps[:, None, None] * gains.k.unsqueeze(1)).reshape(T, L * batch, m)
    bounds = (None, None) if lower is None else (fold(lower), fold(upper))
    xs, us = _closed_loop(model, x_init.repeat(L, 1), feedforward, fold(X), fold(gains.K), *bounds, (L,))
    return tuple(torch.stack(v).view(T, L, batch, -1).transpose(0, 1) for v in (xs, us))


def _closed_loop(model, x, feedforward, X, K, lower, upper, lead) -> tuple[list, list]:
    """Roll ``u_t = feedforward_t + K_t (x_t - X_t)`` (``K`` None: open loop) through the dynamics from
    ``x [R, n]`` (all ``[T, R, ...]``; ``R = prod(lead) * B``, the model sees ``[*lead, B, ...]``).
    Returns the lists of the states and controls at each step."""
    T, R, m = feedforward.shape
    xs, us = [], []
    for t, u in enumerate(feedforward.unbind(0)):
        if K is not None:
            u = torch.baddbmm(u.unsqueeze(-1), K[t], (x - X[t]).unsqueeze(-1)).squeeze(-1)
        u = u if lower is None else torch.clamp(u, lower[t], upper[t])
        xs.append(x)
        us.append(u)
        if t < T - 1:
            x = model.step(t, x.view(*lead, -1, x.shape[-1]), u.view(*lead, -1, m)).reshape(R, -1)
    return xs, us


def _check_finite(X, what):
    if not bool(torch.isfinite(X).all()):
        bad = (~torch.isfinite(X)).nonzero()[0].tolist()
        raise ValueError(f"{what} produced a non-finite value (NaN or inf) at index {bad} (time, batch, dim)")


def optimise(model, x_init, U0, lower, upper, max_iter, tol, newton):
    """The Riccati iteration; runs with whatever grad mode is current (on: the unrolled graph).

    ``newton``: use the Hessian of the Lagrangian (costates from the current trajectory) instead of
    the cost Hessian alone (Gauss-Newton, classic iLQR): quadratic instead of linear convergence."""
    X, U = _rollout(model, x_init, None, _clamp(U0, lower, upper), None, None, lower, upper)
    _check_finite(X, "the dynamics, rolled out from u_init,")
    J = model.stage_costs(X, U).sum(0)
    _check_finite(J, "the cost, at the initial trajectory,")
    batch = x_init.shape[0]
    dtype, device = x_init.dtype, x_init.device
    steps = _STEP_SIZES.to(dtype=dtype, device=device)
    reg = torch.zeros(batch, dtype=dtype, device=device)
    converged = torch.zeros(batch, dtype=torch.bool, device=device)
    iterations = torch.zeros(batch, dtype=torch.long, device=device)
    for _ in range(max_iter):
        q, A, Bu = model.first_order(X, U)
        lam = costates(q, A, model.n)
        with torch.no_grad():  # convergence: the KKT residual (X and Lambda satisfy theirs exactly)
            grad_u = lagrangian_grad_u(q, Bu, lam, model.n)
            r_u = grad_u if lower is None else U - torch.clamp(U - grad_u, lower, upper)
            stationary = r_u.abs().amax(dim=(0, 2)) <= tol * (1 + U.abs().amax(dim=(0, 2)))
        lo, hi = (None, None) if lower is None else (lower - U, upper - U)
        gains, reg = _regularised_pass(model, X, U, q, A, Bu, lam if newton else None, lo, hi, reg)
        small_step = gains.k.abs().amax(dim=(0, 2)) <= tol * (1 + U.detach().abs().amax(dim=(0, 2)))
        iterations = iterations + (~converged).long()
        if tol > 0:  # tol = 0: a fixed budget of exactly max_iter iterations
            converged = converged | (stationary & small_step.detach())
            if bool(converged.all()):  # X, U unchanged since lam and r_u were computed: reuse them
                return X, U, J, converged, iterations, reg, (lam.detach(), r_u)
        Xs, Us = _rollout(model, x_init, X, U, gains, steps, lower, upper)
        Js = model.stage_costs(Xs, Us).sum(1)  # [L, B]
        predicted = steps[:, None] * gains.expected_linear + steps[:, None] ** 2 * gains.expected_quadratic
        rounding = 10 * torch.finfo(dtype).eps * J.detach().abs()  # decreases below this are noise
        ok = torch.isfinite(Js) & (
            ((J - Js >= -1e-4 * predicted) & (Js <= J)) | ((-predicted <= rounding) & (Js <= J + rounding))
        )
        accepted = ok.any(0) & ~converged
        first = torch.argmax(ok.to(torch.int8), dim=0)
        pick = torch.arange(batch, device=device)
        X = torch.where(accepted[None, :, None], Xs[first, :, pick].transpose(0, 1), X)
        U = torch.where(accepted[None, :, None], Us[first, :, pick].transpose(0, 1), U)
        J = torch.where(accepted, Js[first, pick], J)
        reg = torch.where(accepted, reg / 4, torch.clamp(reg * 10, min=1e-6)).detach()
        reg = torch.where(reg < 1e-8, 0.0, reg)
        if model.exact_quadratic and lower is None:  # one full Newton step solves an LQ problem
            converged = converged | (accepted & (first == 0))
    return X, U, J, converged, iterations, reg, None


def _regularised_pass(model, X, U, q, A, Bu, lam, lo, hi, reg) -> tuple[RiccatiPass, torch.Tensor]:
    """A Riccati pass with the Newton Hessian (``lam`` given) where it is positive definite on the
    controls, else the Gauss-Newton one, else Gauss-Newton with more regularisation (per sample).
    Returns the pass and the regularisation actually used (``[B]``)."""
    hessians = model.hessians(X, U, lam)
    H_gn = hessians[0]
    if lam is not None:  # the Newton pass and its Gauss-Newton fallback as one pass over twice the batch
        twice = (torch.cat([hessians[1], H_gn], 1),) + tuple(
            None if v is None else torch.cat([v, v], 1) for v in (q, A, Bu)
        )
        lo2, hi2 = (None, None) if lo is None else (torch.cat([lo, lo], 1), torch.cat([hi, hi], 1))
        gains, gn = _halves(riccati(*twice, lower=lo2, upper=hi2, reg=torch.cat([reg, reg])), len(reg))
        if not bool(gains.indefinite.any()):
            return gains, reg
        fallback = gains.indefinite
    else:
        gn = riccati(H_gn, q, A, Bu, lower=lo, upper=hi, reg=reg)
    for _retry in range(8):  # raise the regularisation where Quu is still not positive definite
        if not bool(gn.indefinite.any()):
            break
        reg = torch.where(gn.indefinite, torch.clamp(reg * 10, min=1e-6), reg)
        gn = riccati(H_gn, q, A, Bu, lower=lo, upper=hi, reg=reg)
    if lam is None:
        return gn, reg
    merged = RiccatiPass(
        *(
            torch.where(_expand(fallback, getattr(gains, name)), getattr(gn, name), getattr(gains, name))
            for name in RiccatiPass.__dataclass_fields__
        )
    )
    return merged, reg


def _halves(gains: RiccatiPass, batch: int) -> tuple[RiccatiPass, RiccatiPass]:
    """Split a pass over ``2 * batch`` samples into those of the first and second ``batch``."""
    fields = [getattr(gains, name) for name in RiccatiPass.__dataclass_fields__]
    return tuple(RiccatiPass(*(v.narrow(min(v.dim() - 1, 1), start, batch) for v in fields)) for start in (0, batch))


def _expand(mask, like):
    """A ``[B]`` mask shaped to broadcast against ``like`` (``[B]`` or ``[T, B, ...]``)."""
    if like.dim() == 1:
        return mask
    return mask.view(1, -1, *([1] * (like.dim() - 2)))


def final_costates(model, X, U):
    with torch.no_grad():
        q, A, _ = model.first_order(X.detach(), U.detach())
        return costates(q, A, model.n)
