"""MPC as an argmin layer: random shooting forward, conjugate-gradient IFT backward (DIL section 3.2).

``ShootingMPC`` solves, for a batch of observed states ``x0 [B, n]``,

    U* = argmin_U  sum_{t=1..H} cost(x_t) + control_weight |u_t|^2,   x_t = dynamics(x_{t-1}, u_{t-1}),

with bounded controls ``u = bound * tanh(v)`` over unconstrained ``v`` (so stationary points are interior).
The forward is random shooting (``particles`` sequences, the best kept), refined by the core's
``argmin(refine=...)``: saddle-free Newton steps (:class:`~idplan.solvers.SaddleFreeNewton`:
``|eigenvalues|`` of the Hessian, backtracking on the score, since a plain Newton step from a
random-shooting answer can climb to a worse stationary point) towards a minimum; the backward is
the solver core's argmin adjoint (CG on Hessian-vector products), which needs nothing of the forward. Gradients reach the parameters of ``dynamics`` and ``cost``.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ...solvers import CG, ImplicitAdjoint, NonConvergenceWarning, argmin, default_tolerances


class MLPDynamics(nn.Module):
    """A learned model ``x' = x + MLP([x, u])`` (residual form)."""

    def __init__(self, n: int, m: int, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(n + m, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, n)
        )

    def forward(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x + self.net(torch.cat([x, u], -1))


class TargetCost(nn.Module):
    """``sum_i w_i (x_i - target_i)^2`` with a learnable target state.

    Args:
        weights: ``[n]`` non-negative weights (0 drops a component).
        target: ``[n]`` initial target.
        learn_weights: learn the positive weights too (as ``exp`` of a parameter, from ``weights``);
            zero weights stay zero.
    """

    def __init__(self, weights: torch.Tensor, target: torch.Tensor, learn_weights: bool = False):
        super().__init__()
        if weights.shape != target.shape or bool((weights < 0).any()):
            raise ValueError(f"weights must be non-negative and shaped like target {tuple(target.shape)}")
        self.register_buffer("mask", (weights > 0).to(weights.dtype))
        if learn_weights:
            self.log_weights = nn.Parameter(torch.where(weights > 0, weights, torch.ones_like(weights)).log())
        else:
            self.register_buffer("fixed_weights", weights.clone())
        self.target = nn.Parameter(target.clone())

    @property
    def weights(self) -> torch.Tensor:
        if hasattr(self, "log_weights"):
            return self.mask * self.log_weights.exp()
        return self.fixed_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.weights * (x - self.target) ** 2).sum(-1)


class ShootingMPC(nn.Module):
    """The argmin layer of the module docstring.

    Args:
        dynamics: ``(x [..., n], u [..., m]) -> x'``; cost: ``x [..., n] -> [...]``.
        horizon: ``H`` (may be changed between calls, e.g. grown during training).
        particles: random-shooting candidates per state (1000 in the paper).
        bound: control bound; control_weight: the ``|u|^2`` weight.
        refine: saddle-free Newton steps after shooting (at most; fewer once stationary);
            generator: for the candidates (reproducible).
        adjoint: ``"implicit"`` (default: CG on Hessian-vector products to the dtype's tolerance, a
            miss raises in ``backward()``) or an adjoint object, e.g.
            ``ImplicitAdjoint(linear_solver=CG(ridge=1e-6))`` for (nearly) singular Hessians.
        rtol: stationarity tolerance ``||grad|| <= 1e-8 + rtol ||v||`` reported in ``last.stats``.
    """

    def __init__(
        self,
        dynamics: nn.Module,
        cost: nn.Module,
        m: int,
        *,
        horizon: int = 10,
        particles: int = 1000,
        bound: float = 1.0,
        control_weight: float = 1e-3,
        refine: int = 5,
        adjoint: Any = "implicit",
        rtol: float = 1e-6,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.dynamics, self.cost, self.m = dynamics, cost, m
        self.horizon, self.particles, self.bound = horizon, particles, bound
        self.control_weight, self.refine, self.adjoint, self.rtol = control_weight, refine, adjoint, rtol
        self.generator = generator
        self.last = None

    def controls(self, V: torch.Tensor) -> torch.Tensor:
        return self.bound * torch.tanh(V)

    def score(self, V: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """``[...]`` cost of the plans ``V [..., H*m]`` from ``x0 [..., n]``."""
        U = self.controls(V).unflatten(-1, (self.horizon, self.m))
        x, total = x0, 0.0
        for t in range(self.horizon):
            x = self.dynamics(x, U[..., t, :])
            total = total + self.cost(x) + self.control_weight * U[..., t, :].pow(2).sum(-1)
        return total

    def shoot(self, x0: torch.Tensor, warm_start: torch.Tensor | None = None) -> torch.Tensor:
        """The best of ``particles`` random plans per state, ``[B, H*m]`` (no gradient); with
        ``warm_start`` (``[H, B, m]`` controls, e.g. the last plan shifted one step) among them."""
        batch = x0.shape[0]
        v = (
            torch.rand(
                batch,
                self.particles,
                self.horizon * self.m,
                generator=self.generator,
                dtype=x0.dtype,
                device=x0.device if self.generator is None else self.generator.device,
            )
            * 1.98
            - 0.99
        )
        if warm_start is not None:
            if warm_start.shape != (self.horizon, batch, self.m):
                raise ValueError(
                    f"warm_start must be [H, B, m] = [{self.horizon}, {batch}, {self.m}] controls (time first), "
                    f"got {tuple(warm_start.shape)}"
                )
            inside = (warm_start.detach().transpose(0, 1) / self.bound).clamp(-0.99, 0.99).to(v)
            v = torch.cat([inside.reshape(batch, 1, -1), v[:, 1:]], 1)
        V = torch.atanh(v).to(x0.device)  # controls uniform in the box
        with torch.no_grad():
            scores = self.score(V, x0[:, None].expand(-1, self.particles, -1))
        return V[torch.arange(batch, device=V.device), scores.argmin(1)]

    def _adjoint(self, dtype: torch.dtype) -> Any:
        if self.adjoint == "implicit":  # to tolerance (100 CG steps at most): a miss raises in backward()
            return ImplicitAdjoint(linear_solver=CG(), rtol=default_tolerances(dtype)[1])
        return self.adjoint

    def forward(self, x0: torch.Tensor, warm_start: torch.Tensor | None = None) -> torch.Tensor:
        """Optimal controls ``[H, B, m]`` (bounded; time first, as :func:`idplan.solvers.ilqr`),
        differentiable by the IFT. ``warm_start`` (``[H, B, m]`` controls) joins the random
        candidates: in a receding-horizon loop, pass :func:`~idplan.agents.control.shift_plan` of
        the last plan."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonConvergenceWarning)  # reported in self.last.stats
            self.last = argmin(
                lambda V, x: self.score(V, x),
                x0.new_zeros(x0.shape[0], self.horizon * self.m),
                x0,
                solver=lambda score, V0, x: self.shoot(x, warm_start),
                refine=self.refine,
                adjoint=self._adjoint(x0.dtype),
                rtol=self.rtol,
                atol=1e-8,
                throw=False,
            )
        return self.controls(self.last.value).unflatten(-1, (self.horizon, self.m)).transpose(0, 1)
