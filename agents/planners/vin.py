"""Value iteration network (Tamar et al. 2016) as a fixed-point planner."""

from __future__ import annotations

import torch
from torch import nn

from .base import Planner
from .contraction import bound_kernel, check_below_one
from .max_conv import max_conv

#: VIN's default ``value_bound`` in implicit mode: a max-norm contraction factor (value iteration's discount)
DEFAULT_VALUE_BOUND = 0.99


def bound_value_kernel(conv: nn.Module, value_bound: float | None | str, mode: str) -> float | None:
    """Bound the L1 norm of each Q channel's value kernel (input 1 of a ``[out, 2, ...]`` weight)
    by ``value_bound`` (:class:`~idplan.agents.planners.contraction.KernelL1Bound`); ``"auto"``:
    :data:`DEFAULT_VALUE_BOUND` in implicit mode, none in explicit. Returns the bound applied.

    With a bound below 1 the step ``v' = max(W_r * r + W_v * v)`` is a contraction in the max
    norm (as value iteration with that discount), so its fixed point exists and forward iteration
    finds it whatever the weights.
    """
    if value_bound == "auto":
        value_bound = DEFAULT_VALUE_BOUND if mode == "implicit" else None
    if value_bound is not None:
        check_below_one("value_bound", value_bound)
    bound_kernel(conv, value_bound, inputs=slice(1, 2))
    return value_bound


class VIN(Planner):
    """VIN: ``v' = max_a (W_r * r + W_v * v)_a`` over ``q_channels`` Q channels, ``F x F`` kernels.

    The policy reads ``Q(v*)`` through a 1x1 convolution to the ``A`` action logits. The value map
    is ``v*`` itself. Other arguments: see :class:`~idplan.agents.planners.Planner`.

    Args:
        q_channels: ``l_q`` (paper: 100).
        value_bound: if set (in (0, 1)), each Q channel's value kernel is kept at L1 norm at most
            this (:func:`bound_value_kernel`): the step is then a contraction for any weights.
            ``"auto"`` (default): 0.99 in implicit mode, unbounded in explicit mode.
    """

    def __init__(self, *, q_channels: int = 100, value_bound: float | None | str = "auto", **kwargs):
        super().__init__(**kwargs)
        self.q_channels = q_channels
        self.encoder = self.default_encoder()
        self.q = self.conv(2, q_channels, bias=False)  # one convolution of [r, v]
        self.policy = nn.Conv2d(q_channels, self.actions, 1, bias=False)
        with torch.no_grad():  # start contractive: each Q channel's value kernel has L1 norm ~0.5
            bound = 1.0 / self.kernel_size**2
            self.q.weight[:, 1].uniform_(-bound, bound)
        self.value_bound = bound_value_kernel(self.q, value_bound, self.mode)

    @property
    def contraction_bound(self) -> float | None:
        return self.value_bound

    def initial_state(self, r: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(r)

    def q_values(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``[B, l_q, m, m]``."""
        return self.q(torch.cat([r, v], dim=1))

    def step(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return max_conv(torch.cat([r, v], dim=1), self.q.weight, self.padding)

    def policy_logits(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.policy(self.q_values(v, r))

    def value_map(self, v: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return v
