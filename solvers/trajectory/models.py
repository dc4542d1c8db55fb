"""The problems the trajectory solvers take: a protocol and its two implementations (time first,
``X [T, B, n]``, ``U [T, B, m]``, ``N = n + m``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch


class TrajectoryModel(Protocol):
    """What the trajectory solvers need of a problem (all tensors time first, see :mod:`.riccati`)."""

    def step(self, t: int, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """``x_{t+1}`` from ``x_t [..., B, n]`` and ``u_t [..., B, m]``."""

    def transitions(self, X: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """``f_t(x_t, u_t)`` for ``t < T - 1`` at once: ``[T-1, B, n]``."""

    def stage_costs(self, X: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
        """``g_t(x_t, u_t)``: ``[..., T, B]`` from ``X [..., T, B, n]``, ``U [..., T, B, m]``."""

    def first_order(self, X: torch.Tensor, U: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(q, A, Bu)``: the stage-cost gradients ``[T, B, N]`` and the dynamics Jacobians."""

    def hessians(self, X: torch.Tensor, U: torch.Tensor, costates: torch.Tensor | None = None) -> tuple:
        """``([T, B, N, N] stage-cost Hessians,)`` or, with ``costates``, also the Hessians of the
        Lagrangian's stage terms ``g_t + lambda_{t+1}^T f_t`` (second derivatives of the dynamics included)."""


class NonlinearModel:
    """Time-invariant ``f(x [B, n], u [B, m]) -> [B, n]`` and ``g(x, u) -> [B]``; any leading axes are
    flattened into that one batch axis before a call.

    Derivatives use that samples are independent: the gradient of ``sum_b f_i(z_b)`` w.r.t. the batch
    holds row ``i`` of every sample's Jacobian, so one backward pass through ``n`` stacked copies of
    the batch (copy ``i`` keeping output ``i``) gives all of them; Hessians likewise by a double backward.
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

    def _copies(self, X, U, copies):
        """``copies`` stacked copies of the flattened ``X`` and ``U`` (``[copies * T * B, n]`` and
        ``[copies * T * B, m]``), each a tensor to differentiate with respect to."""
        return tuple(_leaf(torch.cat([V.reshape(-1, V.shape[-1])] * copies)) for V in (X, U))

    def first_order(self, X, U):
        """One backward pass through ``n`` stacked copies of the trajectory for the dynamics (copy ``i``
        keeps only output ``i``: its gradient is row ``i`` of every Jacobian) and one for the cost."""
        T, batch, n = X.shape
        rows = T * batch
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():
            inputs = self._copies(X, U, n) + self._copies(X, U, 1)
            outputs = (self.dynamics(*inputs[:2]).reshape(n, rows, n), self.cost(*inputs[2:]))
            pick = torch.eye(n, dtype=X.dtype, device=X.device)[:, None].expand(n, rows, n)  # copy i: output i
            grads = _vjp(outputs, inputs, (pick, torch.ones_like(outputs[1])), differentiable)
        jac = torch.cat(grads[:2], -1).view(n, T, batch, n + self.m)
        AB = jac[:, :-1].permute(1, 2, 0, 3)  # [T-1, B, n, N]
        return torch.cat(grads[2:], -1).view(T, batch, n + self.m), AB[..., :n], AB[..., n:]

    def hessians(self, X, U, costates=None):
        """``(H_cost,)``, or with ``costates`` ``(H_cost, H_cost + sum_i lambda_i d^2 f_i)``.

        Double backward through ``N`` stacked copies of the trajectory per function (the cost, and the
        costate-weighted dynamics): copy ``j`` differentiates the ``j``-th gradient entry again, which
        gives row ``j`` of every sample's Hessian."""
        T, batch, n = X.shape
        N, rows = n + self.m, T * batch
        differentiable = torch.is_grad_enabled()
        with torch.enable_grad():
            inputs = self._copies(X, U, N)
            outputs, weights = (self.cost(*inputs),), (torch.ones(N * rows, dtype=X.dtype, device=X.device),)
            if costates is not None:  # lambda_{t+1} weights f at step t; nothing follows the last state
                inputs = inputs + self._copies(X, U, N)
                outputs = outputs + (self.dynamics(*inputs[2:]).reshape(N, rows, n),)
                lam = torch.cat([costates[1:], torch.zeros_like(costates[:1])]).reshape(rows, n)
                weights = weights + (lam.expand(N, rows, n),)
            grads = tuple(g.reshape(N, rows, -1) for g in _vjp(outputs, inputs, weights, True))
            pick = torch.eye(N, dtype=X.dtype, device=X.device)[:, None].expand(N, rows, N).split([n, self.m], -1)
            H = _vjp(grads, inputs, pick * len(outputs), differentiable)
        H = [torch.cat(H[i : i + 2], -1).view(N, T, batch, N).permute(1, 2, 0, 3) for i in range(0, len(H), 2)]
        return (H[0],) if costates is None else (H[0], H[0] + H[1])


def _leaf(V: torch.Tensor) -> torch.Tensor:
    """``V`` itself if autograd tracks it (its graph is kept), else a detached copy that requires grad."""
    return V if V.requires_grad else V.detach().requires_grad_()


def _vjp(outputs, inputs, cotangents, create_graph: bool) -> tuple[torch.Tensor, ...]:
    """``sum_k <cotangents_k, d outputs_k / d input>`` for each input (zero where no output depends on
    it), with a graph if ``create_graph``."""
    used = [(out, cot) for out, cot in zip(outputs, cotangents) if out.requires_grad]
    if not used:
        return tuple(torch.zeros_like(v) for v in inputs)
    outs, cots = zip(*used)
    return torch.autograd.grad(outs, inputs, cots, create_graph=create_graph, allow_unused=True, materialize_grads=True)


class LinearQuadraticModel:
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
