"""Batched box-constrained iLQR and LQR with exact implicit gradients.

The problem, for a batch of initial states ``x_init [B, n]`` and a horizon ``T`` (layout of :mod:`.lqr`)::

    minimise_U  sum_{t<T} g(x_t, u_t)
    s.t.        x_0 = x_init,  x_{t+1} = f(x_t, u_t)  (t < T-1),  lower <= u_t <= upper

:func:`ilqr` takes any differentiable ``f`` and twice-differentiable ``g`` (Jacobians and Hessians by
``torch.func`` vmapped over time and batch); :func:`lqr` takes affine time-varying dynamics
``x_{t+1} = F_t tau_t + f_t`` and quadratic costs ``1/2 tau^T C_t tau + c_t^T tau``. Both run the same
Riccati iteration (Gauss-Newton iLQR with a parallel line search, per-sample Levenberg-Marquardt
regularisation and per-sample convergence), and both are differentiable in three ways (``gradient=``):

- ``"implicit"`` (default): exact gradients at the fixed point by the implicit function theorem on the
  KKT conditions (:mod:`.trajectory_kkt`), through the solver core's ``root_find`` adjoint. The
  adjoint system is an LQR problem with the Lagrangian's Hessian (second derivatives of ``f``
  included), solved by one O(T) Riccati pass: the cost does not depend on the forward iterations.
- ``"last_layer"``: DiffMPC's approximation (Amos et al. 2018): differentiate only the LQR
  approximation at the solution, treating the linearisation point as constant.
- ``"unrolled"``: autograd through every iteration (the baseline; memory grows with iterations).

Controls held at a bound get zero gradient. Gradients reach ``x_init``, ``lower``/``upper``, the
tensors of :func:`lqr` and every parameter ``f`` and ``g`` close over (e.g. an ``nn.Module``'s).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch.func import jacrev

from .adjoint import ImplicitAdjoint
from .lqr import RiccatiPass, riccati
from .problems import root_find
from .solution import BackwardStats, ConvergenceError, NonConvergenceWarning
from .trajectory_kkt import KKTSystem, RiccatiAdjoint, costates, join_flat, kkt_residual, lagrangian_grad_u, split_flat

GRADIENTS = ("implicit", "last_layer", "unrolled")
_STEP_SIZES = 0.5 ** torch.arange(10, dtype=torch.float64)


@dataclass
class TrajectoryStats:
    """Per-sample statistics of a trajectory solve (``[B]`` tensors).

    Attributes:
        iterations: Riccati iterations used (each: linearise, backward pass, line search).
        converged: the proposed step fell below the tolerance and the KKT residual is small.
        cost: total cost of the returned trajectory.
        kkt_residual: ``||R(z)|| / ||z||`` of the optimality conditions at the returned trajectory.
        regularisation: final Levenberg-Marquardt term on ``Quu``.
    """

    iterations: torch.Tensor
    converged: torch.Tensor
    cost: torch.Tensor
    kkt_residual: torch.Tensor
    regularisation: torch.Tensor

    def summary(self) -> str:
        b = self.converged.numel()
        return (
            f"{int(self.converged.sum())}/{b} converged, iterations max {int(self.iterations.max())}, "
            f"worst KKT residual {float(self.kkt_residual.max()):.3g}"
        )


@dataclass
class TrajectorySolution:
    """The optimal trajectories: ``x [T, B, n]``, ``u [T, B, m]`` (differentiable per ``gradient``),
    the costates ``costate [T, B, n]`` (no gradient), forward ``stats`` and, after ``backward()``,
    the adjoint's ``backward`` statistics (implicit mode)."""

    x: torch.Tensor
    u: torch.Tensor
    costate: torch.Tensor
    stats: TrajectoryStats
    backward: BackwardStats = field(default_factory=BackwardStats)
    _problem: tuple = field(default=(), repr=False)  # (model, x_init, lower, upper) for trajectory_jacobian


class _NonlinearModel:
    """Time-invariant ``f(x [B, n], u [B, m]) -> [B, n]`` and ``g(x, u) -> [B]``; any leading axes are
    flattened into that one batch axis before a call.

    Derivatives use that samples are independent: the Jacobian of ``sum_b f(z_b)`` w.r.t. the batch
    holds every sample's Jacobian, so ``n + 1`` vector-Jacobian products (vmapped) give all of them.
    """

    exact_quadratic = False

    def __init__(self, dynamics: Callable, cost: Callable, n: int, m: int):
        self.dynamics, self.cost, self.n, self.m = dynamics, cost, n, m

    def _flat(self, fn, x, u):
        lead = x.shape[:-1]
        out = fn(x.reshape(-1, x.shape[-1]), u.reshape(-1, u.shape[-1]))
        return out.reshape(*lead, *out.shape[1:])

    def step(self, t, x, u):
        return self._flat(self.dynamics, x, u)

    def transitions(self, X, U):
        return self._flat(self.dynamics, X[:-1], U[:-1])

    def stage_costs(self, X, U):
        return self._flat(self.cost, X, U)

    def first_order(self, X, U):
        T, batch, n = X.shape
        Z = torch.cat([X, U], -1).reshape(T * batch, n + self.m)

        def summed(Z):
            x, u = Z[:, :n], Z[:, n:]
            return torch.cat([self.dynamics(x, u).sum(0), self.cost(x, u).sum().reshape(1)])

        jac = jacrev(summed)(Z).reshape(n + 1, T, batch, n + self.m)
        AB = jac[:n, :-1].permute(1, 2, 0, 3)  # [T-1, B, n, N]
        return jac[n], AB[..., :n], AB[..., n:]

    def hessians(self, X, U, costates=None):
        """``(H_cost,)``, or with ``costates`` ``(H_cost, H_cost + sum_i lambda_i d^2 f_i)``, from one call."""
        T, batch, n = X.shape
        N = n + self.m
        Z = torch.cat([X, U], -1).reshape(T * batch, N)

        def cost_sum(Z):
            return self.cost(Z[:, :n], Z[:, n:]).sum()

        def gradients(Z):
            parts = [torch.func.grad(cost_sum)(Z)]
            if costates is not None:  # lambda_{t+1} weights f at step t; nothing follows the last state
                weights = torch.cat([costates[1:], torch.zeros_like(costates[:1])]).reshape(T * batch, n)
                parts.append(torch.func.grad(lambda Z: (weights * self.dynamics(Z[:, :n], Z[:, n:])).sum())(Z))
            return torch.cat(parts, 1).sum(0)

        H = jacrev(gradients)(Z).reshape(-1, N, T, batch, N).permute(0, 2, 3, 1, 4)  # [1 or 2, T, B, N, N]
        return (H[0],) if costates is None else (H[0], H[0] + H[1])


class _LinearQuadraticModel:
    """Affine time-varying dynamics ``F_t tau + f_t`` and quadratic costs ``1/2 tau^T C_t tau + c_t^T tau``."""

    exact_quadratic = True

    def __init__(self, C, c, F, f):
        self.C, self.c, self.F, self.f = C, c, F, f
        self.n = F.shape[-2]
        self.m = F.shape[-1] - self.n

    def step(self, t, x, u):
        return (self.F[t] @ torch.cat([x, u], -1).unsqueeze(-1)).squeeze(-1) + self.f[t]

    def transitions(self, X, U):
        return (self.F @ torch.cat([X[:-1], U[:-1]], -1).unsqueeze(-1)).squeeze(-1) + self.f

    def stage_costs(self, X, U):
        tau = torch.cat([X, U], -1)
        return 0.5 * (tau * (self.C @ tau.unsqueeze(-1)).squeeze(-1)).sum(-1) + (self.c * tau).sum(-1)

    def first_order(self, X, U):
        q = (self.C @ torch.cat([X, U], -1).unsqueeze(-1)).squeeze(-1) + self.c
        return q, self.F[..., : self.n], self.F[..., self.n :]

    def hessians(self, X, U, costates=None):
        return (self.C,) if costates is None else (self.C, self.C)


def _broadcast_bounds(lower, upper, T, batch, m, like):
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
    """Closed-loop rollouts for every step size at once: ``X [L, T, B, n]``, ``U [L, T, B, m]``."""
    T = U.shape[0]
    x = x_init.expand(len(steps), *x_init.shape) if steps is not None else x_init
    xs, us = [], []
    for t in range(T):
        if gains is None:
            u = U[t]
        else:
            u = U[t] + steps[:, None, None] * gains.k[t] + (gains.K[t] @ (x - X[t]).unsqueeze(-1)).squeeze(-1)
        u = u if lower is None else torch.clamp(u, lower[t], upper[t])
        xs.append(x)
        us.append(u)
        if t < T - 1:
            x = model.step(t, x, u)
    dim = 0 if steps is None else 1
    return torch.stack(xs, dim), torch.stack(us, dim)


def _check_finite(X, what):
    if not bool(torch.isfinite(X).all()):
        bad = (~torch.isfinite(X)).nonzero()[0].tolist()
        raise ValueError(f"{what} produced a non-finite value (NaN or inf) at index {bad} (time, batch, dim)")


def _optimise(model, x_init, U0, lower, upper, max_iter, tol, newton):
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
    if lam is not None:
        gains = riccati(hessians[1], q, A, Bu, lower=lo, upper=hi, reg=reg)
        if not bool(gains.indefinite.any()):
            return gains, reg
        fallback = gains.indefinite
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


def _expand(mask, like):
    """A ``[B]`` mask shaped to broadcast against ``like`` (``[B]`` or ``[T, B, ...]``)."""
    if like.dim() == 1:
        return mask
    return mask.view(1, -1, *([1] * (like.dim() - 2)))


def _final_costates(model, X, U):
    with torch.no_grad():
        q, A, _ = model.first_order(X.detach(), U.detach())
        return costates(q, A, model.n)


def _kkt_scale(X, U, Lam):
    return torch.sqrt(X.pow(2).sum((0, 2)) + U.pow(2).sum((0, 2)) + Lam.pow(2).sum((0, 2)))


def _default_tol(dtype):
    return float(torch.finfo(dtype).eps) ** 0.75


def _solve(model, x_init, u_init, lower, upper, gradient, max_iter, tol, adjoint_solver, throw, newton=False):
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
    T, batch, m = u_init.shape
    tol = _default_tol(x_init.dtype) if tol is None else tol
    if tol < 0:
        raise ValueError(f"tol must be >= 0, got {tol}")
    kkt_tol = _default_tol(x_init.dtype) if tol == 0 else tol
    lower, upper = _broadcast_bounds(lower, upper, T, batch, m, x_init)
    record = gradient == "unrolled" and torch.is_grad_enabled()
    with torch.set_grad_enabled(record):
        X, U, J, converged, iterations, reg, final = _optimise(
            model, x_init, u_init, lower, upper, max_iter, tol, newton
        )
    with torch.no_grad():
        if final is None:
            Lam = _final_costates(model, X, U)
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
    solution = TrajectorySolution(X, U, Lam, stats, _problem=(model, x_init, lower, upper))
    if not torch.is_grad_enabled() or gradient == "unrolled":
        return solution
    if gradient == "last_layer":
        solution.x, solution.u = _last_layer(model, x_init, X.detach(), U.detach(), lower, upper)
        return solution
    z_star = tuple(v.detach().transpose(0, 1) for v in (X, U, Lam))

    def residual_fn(z, args):
        x0, lo, hi = args
        Xz, Uz, Lz = (v.transpose(0, 1) for v in z)
        return tuple(r.transpose(0, 1) for r in kkt_residual(model, Xz, Uz, Lz, x0, lo, hi))

    linear = RiccatiAdjoint(KKTSystem(model, *(v.detach() for v in (X, U, Lam)), lower, upper))
    adjoint = ImplicitAdjoint(
        linear_solver=linear if adjoint_solver == "riccati" else adjoint_solver,
        max_iter=1 if adjoint_solver == "riccati" else 200,
        rtol=max(1e3 * float(torch.finfo(x_init.dtype).eps), 1e-10),
        throw=True,  # the Riccati solve is direct, GMRES given 200 steps: a miss is not an exact gradient
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)  # reported above in iLQR's own terms
        sol = root_find(
            residual_fn,
            z_star,
            (x_init, lower, upper),  # the model's own tensors and parameters reach the residual by closure
            solver=lambda fn, z0, args: z_star,
            adjoint=adjoint,
            throw=False,
            atol=float("inf"),
        )
    solution.x, solution.u = (v.transpose(0, 1) for v in sol.value[:2])
    solution.backward = sol.backward
    return solution


def _last_layer(model, x_init, X, U, lower, upper):
    """DiffMPC's gradient: the LQR approximation at the (constant) solution, differentiated exactly."""
    q, A, Bu = model.first_order(X, U)
    (H,) = model.hessians(X, U)
    tau = torch.cat([X, U], -1)
    F = torch.cat([A, Bu], -1)
    f = model.transitions(X, U) - (F @ tau[:-1].unsqueeze(-1)).squeeze(-1)
    c = q - (H @ tau.unsqueeze(-1)).squeeze(-1)
    sol = lqr(x_init, H, c, F, f, lower=lower, upper=upper, u_init=U)
    return sol.x, sol.u


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
    lower=None,
    upper=None,
    gradient: str = "implicit",
    max_iter: int = 100,
    tol: float | None = None,
    hessian: str = "newton",
    adjoint_solver="riccati",
    throw: bool = False,
) -> TrajectorySolution:
    """Solve the trajectory problem of the module docstring by iLQR, differentiably.

    Args:
        dynamics: ``f(x [B, n], u [B, m]) -> [B, n]`` (mpc.pytorch's convention), treating rows
            independently, written in torch ops that ``torch.func`` transforms accept (no ``.item()``,
            no data-dependent Python branches). Learned parameters may live in its closure (an
            ``nn.Module``).
        cost: ``g(x [B, n], u [B, m]) -> [B]``, likewise; twice differentiable.
        x_init: ``[B, n]`` initial states.
        u_init: ``[T, B, m]`` initial controls (the horizon; a warm start).
        lower, upper: control bounds broadcastable to ``[T, B, m]`` (``None``: unbounded).
        gradient: ``"implicit"``, ``"last_layer"`` or ``"unrolled"`` (module docstring).
        max_iter: cap on iterations.
        tol: stop a sample when its proposed control step ``max |k_t|`` is below
            ``tol * (1 + max |u|)`` and so is its KKT residual in ``u`` (default ``eps ** 0.75``:
            1.8e-12 in float64, 6.4e-6 in float32). ``tol=0`` runs exactly ``max_iter`` iterations.
        hessian: ``"newton"`` (the Lagrangian's Hessian, with the dynamics' second derivatives
            weighted by the current costates: quadratic convergence) or ``"gauss_newton"`` (the cost
            Hessian only: classic iLQR, linear convergence). Both have the same fixed point.
        adjoint_solver: ``"riccati"`` (the O(T) structured solve) or a core linear solver (``"gmres"``).
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
    model = _NonlinearModel(dynamics, cost, x_init.shape[1], m)
    return _solve(
        model, x_init, u_init, lower, upper, gradient, max_iter, tol, adjoint_solver, throw, hessian == "newton"
    )


def lqr(
    x_init: torch.Tensor,
    C: torch.Tensor,
    c: torch.Tensor,
    F: torch.Tensor,
    f: torch.Tensor,
    *,
    lower=None,
    upper=None,
    u_init: torch.Tensor | None = None,
    gradient: str = "implicit",
    max_iter: int = 50,
    tol: float | None = None,
    adjoint_solver="riccati",
    throw: bool = False,
) -> TrajectorySolution:
    """Finite-horizon LQR with optional control bounds, differentiable in all its data.

    Minimises ``sum_t 1/2 tau_t^T C_t tau_t + c_t^T tau_t`` subject to ``x_{t+1} = F_t tau_t + f_t``,
    ``x_0 = x_init`` and ``lower <= u_t <= upper``. Unbounded problems take one Riccati pass; bounded
    ones iterate projected-Newton Riccati passes until the active set settles.

    Args:
        x_init: ``[B, n]``.
        C: ``[T, B, N, N]`` symmetric, ``c``: ``[T, B, N]`` with ``N = n + m``.
        F: ``[T-1, B, n, N]``, ``f``: ``[T-1, B, n]``.
        lower, upper, gradient, max_iter, tol, adjoint_solver, throw: as in :func:`ilqr`.
        u_init: ``[T, B, m]`` warm start (default zeros).
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
    model = _LinearQuadraticModel(C, c, F, f)
    return _solve(model, x_init, u_init, lower, upper, gradient, max_iter, tol, adjoint_solver, throw)


def trajectory_jacobian(solution: TrajectorySolution, wrt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The full sensitivities ``d x*/d theta`` and ``d u*/d theta`` for a low-dimensional tensor ``theta``.

    ``theta`` is anything the solved problem depends on: a parameter the dynamics or cost close over,
    ``x_init``, a bound, or an :func:`lqr` tensor. Forward mode on the KKT conditions (the purpose of
    DiLQR's Algorithm 1): for each of the ``p`` entries of ``theta``, one product ``dR/dtheta e_j`` and
    one O(T) Riccati solve of ``(dR/dz) s = -dR/dtheta e_j``. Controls held at a bound have zero rows.

    Returns:
        ``dX [T, B, n, *theta.shape]`` and ``dU [T, B, m, *theta.shape]``.
    """
    if not solution._problem:
        raise ValueError("trajectory_jacobian needs a TrajectorySolution returned by ilqr() or lqr()")
    if not wrt.requires_grad:
        raise ValueError("wrt must require grad (the problem must depend on it through autograd)")
    model, x_init, lower, upper = solution._problem
    X, U, Lam = (v.detach() for v in (solution.x, solution.u, solution.costate))
    T, batch, n = X.shape
    m = U.shape[-1]
    system = KKTSystem(model, X, U, Lam, lower, upper)
    with torch.enable_grad():
        z = tuple(v.clone().requires_grad_() for v in (X, U, Lam))
        residual = join_flat(*kkt_residual(model, *z, x_init, lower, upper))
        probe = torch.zeros_like(residual, requires_grad=True)  # dR/dtheta e = d/dprobe <(dR/dtheta)^T probe, e>
        (vjp_theta,) = torch.autograd.grad(residual, wrt, probe, create_graph=True, allow_unused=True)
        if vjp_theta is None:
            raise ValueError("the solution does not depend on wrt")
        vjp_z = torch.autograd.grad(residual, z, probe, create_graph=True) if system.has_pinned else None
    columns_x, columns_u = [], []
    for j in range(wrt.numel()):
        (r,) = torch.autograd.grad(vjp_theta.flatten()[j], probe, retain_graph=True)
        r_x, r_u, r_lam = split_flat(r, T, n, m)
        if system.has_pinned:  # s_a = -r_a, then J_yy s_y = -r_y - J_ya s_a
            s_a = torch.where(system.pinned, -r_u, 0.0)
            direction = join_flat(torch.zeros_like(X), s_a, torch.zeros_like(Lam))
            coupling = torch.autograd.grad(vjp_z, probe, split_flat(direction, T, n, m), retain_graph=True)[0]
            c_x, c_u, c_lam = split_flat(coupling, T, n, m)
            dX, dU, _ = system.solve_free(-r_x - c_x, -r_u - c_u, -r_lam - c_lam)
            dU = torch.where(system.pinned, s_a, dU)
        else:
            dX, dU, _ = system.solve_free(-r_x, -r_u, -r_lam)
        columns_x.append(dX)
        columns_u.append(dU)
    shape = tuple(wrt.shape)
    return (
        torch.stack(columns_x, -1).reshape(T, batch, n, *shape),
        torch.stack(columns_u, -1).reshape(T, batch, m, *shape),
    )
