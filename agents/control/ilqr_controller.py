"""Differentiable iLQR controllers (dILQR) with learnable dynamics and cost parameters.

:class:`ILQRController` maps initial observations ``[B, n]`` to optimal trajectories over a horizon
``T``, with gradients w.r.t. its learnable physical/cost parameters and the initial state by the
adjoint it is given (``"riccati"``, the default: exact, at a cost independent of the iLQR iterations). The model is
an environment's own pure functions (:mod:`idplan.envs.control.pendulum`, :mod:`idplan.envs.control.cartpole`), so a
controller with the true parameters plans with exactly the dynamics the environment steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from ...envs import CONTROL_TASKS
from ...solvers import TrajectorySolution, ilqr

SWING_UP_HORIZON = {"pendulum": 20, "cartpole": 30}
"""The MPC horizon that swings each control task up, by task name (``examples/mpc_swingup.py``)."""


class ILQRController(nn.Module):
    """iLQR over a model ``dynamics(x, u, params)`` / ``cost(x, u, params)`` with learnable fields of ``params``.

    Args:
        dynamics: a pure function of observation ``[..., n]``, control ``[..., m]`` and a params
            dataclass (e.g. :func:`idplan.envs.control.pendulum.observation_dynamics`).
        cost: a pure function of the same arguments (e.g. :func:`idplan.envs.control.pendulum.cost`).
        params: the parameter dataclass (initial values of the learned fields).
        learn: names of fields to learn; they are stored as ``log`` of their value (all must be > 0).
        horizon: ``T``, the number of planned controls.
        bound: symmetric control bound (``None``: unbounded).
        adjoint: how plans are differentiated: ``"riccati"`` (exact, the default), ``"last_layer"``,
            ``"unrolled"`` or an adjoint object (see :func:`idplan.solvers.ilqr`).
        max_iter: passed to :func:`idplan.solvers.ilqr`.
        hessian: passed to :func:`idplan.solvers.ilqr`.
        tol: passed to :func:`idplan.solvers.ilqr`.
        to_state: maps observations to the env's state coordinates (for drawing plans).
    """

    def __init__(
        self,
        dynamics: Callable,
        cost: Callable,
        params: Any,
        *,
        learn: Iterable[str] = (),
        horizon: int = 20,
        bound: float | None = None,
        adjoint: Any = "riccati",
        max_iter: int = 100,
        hessian: str = "newton",
        tol: float | None = None,
        to_state: Callable | None = None,
    ):
        super().__init__()
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        names = {f.name for f in dataclasses.fields(params)}
        self.learn = tuple(learn)
        for name in self.learn:
            if name not in names:
                raise ValueError(f"cannot learn {name!r}: {type(params).__name__} has fields {sorted(names)}")
            if not float(getattr(params, name)) > 0:
                raise ValueError(f"learned field {name!r} must start > 0, got {getattr(params, name)}")
        self.log_params = nn.ParameterDict(
            {
                name: nn.Parameter(torch.tensor(float(getattr(params, name)), dtype=torch.float64).log())
                for name in self.learn
            }
        )
        self.dynamics, self.cost, self.base_params = dynamics, cost, params
        self.horizon, self.bound, self.adjoint = int(horizon), bound, adjoint
        self.max_iter, self.hessian, self.tol = max_iter, hessian, tol
        self.to_state = to_state
        self.last: TrajectorySolution | None = None

    @classmethod
    def for_task(cls, task: str, params: Any = None, **kwargs) -> ILQRController:
        """A controller for ``"pendulum"`` or ``"cartpole"`` with the env's own model (default: true parameters)."""
        if task not in CONTROL_TASKS:
            raise ValueError(f"unknown control task {task!r}; choose from {sorted(CONTROL_TASKS)}")
        spec = CONTROL_TASKS[task]
        params = params if params is not None else spec.params()
        kwargs.setdefault("bound", float(getattr(params, spec.bound_field)))
        module = spec.module
        return cls(module.observation_dynamics, module.cost, params, to_state=module.state_from_observation, **kwargs)

    def params(self, like: torch.Tensor | None = None) -> Any:
        """The parameter dataclass with the learned fields as (differentiable) tensors."""
        learned = {name: value.exp() for name, value in self.log_params.items()}
        if like is not None:
            learned = {name: v.to(dtype=like.dtype, device=like.device) for name, v in learned.items()}
        return dataclasses.replace(self.base_params, **learned)

    def forward(self, x_init: torch.Tensor, u_init: torch.Tensor | None = None) -> TrajectorySolution:
        """Optimal trajectories from ``x_init [B, n]``: ``.x [T, B, n]``, ``.u [T, B, m]``, ``.stats``.

        ``u_init`` (``[T, B, m]``) warm-starts the solve (default zeros, ``m = 1``).
        """
        if x_init.dim() != 2:
            raise ValueError(f"x_init must be [B, n], got shape {tuple(x_init.shape)}")
        if u_init is None:
            u_init = x_init.new_zeros(self.horizon, x_init.shape[0], 1)
        params = self.params(like=x_init)
        bounds = {} if self.bound is None else {"lower": -self.bound, "upper": self.bound}
        self.last = ilqr(
            lambda x, u: self.dynamics(x, u, params),
            lambda x, u: self.cost(x, u, params),
            x_init,
            u_init,
            adjoint=self.adjoint,
            max_iter=self.max_iter,
            hessian=self.hessian,
            tol=self.tol,
            **bounds,
        )
        return self.last

    def learned(self) -> dict[str, float]:
        """Current values of the learned fields."""
        return {name: float(value.detach().exp()) for name, value in self.log_params.items()}
