"""Value iteration network (Tamar et al. 2016) as a fixed-point planner."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from .planner import Planner


def max_over_channels(q: torch.Tensor, dim: int) -> torch.Tensor:
    """``max`` over ``dim`` (kept). Without autograd, ``amax`` (about 10x faster on CPU than ``max``,
    which also finds the indices); with autograd, ``max``, whose backward saves only the indices."""
    if torch.is_grad_enabled() and q.requires_grad:
        return q.max(dim=dim, keepdim=True).values
    return q.amax(dim=dim, keepdim=True)


class ValueKernelBound(nn.Module):
    """A parametrisation of a Q convolution's weight ``[out, 2, ...]`` (input 0 the reward, input 1
    the value) that rescales each output's value kernel to L1 norm at most ``bound``.

    With ``bound < 1`` the step ``v' = max(W_r * r + W_v * v)`` is a contraction in the max norm
    (as value iteration with discount ``bound``), so its fixed point exists and forward iteration
    finds it whatever the weights: needed where no wall absorbs value, as on a torus.
    """

    def __init__(self, bound: float):
        super().__init__()
        if not 0 < bound < 1:
            raise ValueError(f"value_bound must be in (0, 1), got {bound}")
        self.bound = bound

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        value = weight[:, 1:2]
        norm = value.abs().sum(dim=tuple(range(1, value.dim())), keepdim=True)
        scale = torch.clamp(self.bound / norm.clamp_min(1e-12), max=1.0)
        return torch.cat([weight[:, :1], value * scale], dim=1)


def bound_value_kernel(conv: nn.Module, bound: float | None) -> None:
    """Apply :class:`ValueKernelBound` to ``conv.weight`` (no-op for ``bound=None``)."""
    if bound is not None:
        parametrize.register_parametrization(conv, "weight", ValueKernelBound(bound))


class VIN(Planner):
    """VIN: ``v' = max_a (W_r * r + W_v * v)_a`` over ``q_channels`` Q channels, ``F x F`` kernels.

    The policy reads ``Q(v*)`` through a 1x1 convolution to the ``A`` action logits. The value map
    is ``v*`` itself. Other arguments: see :class:`~idplan.agents.planner.Planner`.

    Args:
        q_channels: ``l_q`` (paper: 100).
        value_bound: if set (in (0, 1)), each Q channel's value kernel is kept at L1 norm at most
            this (:class:`ValueKernelBound`): the step is then a contraction for any weights.
    """

    def __init__(self, *, q_channels: int = 100, value_bound: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.q_channels = q_channels
        self.encoder = self.default_encoder()
        self.q = self.conv(2, q_channels, bias=False)  # one convolution of [r, v]
        self.policy = nn.Conv2d(q_channels, self.actions, 1, bias=False)
        with torch.no_grad():  # start contractive: each Q channel's value kernel has L1 norm ~0.5
            bound = 1.0 / self.kernel_size**2
            self.q.weight[:, 1].uniform_(-bound, bound)
        bound_value_kernel(self.q, value_bound)

    def initial_state(self, r: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(r)

    def q_values(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``[B, l_q, m, m]``."""
        return self.q(torch.cat([r, v], dim=1))

    def step(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return max_over_channels(self.q_values(v, r), dim=1)

    def policy_logits(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.policy(self.q_values(v, r))

    def value_map(self, v: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return v
