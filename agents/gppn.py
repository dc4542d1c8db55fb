"""Gated path planning networks (Lee et al. 2018) as fixed-point planners: ConvGPPN and GPPN."""

from __future__ import annotations

import torch
from torch import nn

from .planner import Planner


class ConvGPPN(Planner):
    """ConvGPPN: every step a ConvGRU cell ``h' = ConvGRU(h, r)`` with ``r`` injected, no max.

    ``z, g = sigmoid(W_zg * [r, h])``, ``n = tanh(W_n * [r, g h])``, ``h' = (1 - z) n + z h``;
    the policy is a 1x1 convolution of ``h*``. Other arguments: see
    :class:`~idplan.agents.planner.Planner`.

    Args:
        q_channels: hidden channels ``l_q`` of the recurrent state (paper: 40).
    """

    default_backward_solver = "anderson"  # see Planner: a truncated adjoint trains these better

    def __init__(self, *, q_channels: int = 40, **kwargs):
        super().__init__(**kwargs)
        self.q_channels = q_channels
        self.encoder = self.default_encoder()
        self.gates = self.conv(1 + q_channels, 2 * q_channels)
        self.candidate = self.conv(1 + q_channels, q_channels)
        self.policy = nn.Conv2d(q_channels, self.actions, 1)

    def initial_state(self, r: torch.Tensor) -> torch.Tensor:
        return r.new_zeros(r.shape[0], self.q_channels, *r.shape[2:])

    def step(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        update, reset = torch.sigmoid(self.gates(torch.cat([r, h], dim=1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([r, reset * h], dim=1)))
        return (1 - update) * candidate + update * h

    def policy_logits(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.policy(h)


class GPPN(Planner):
    """GPPN: a per-cell LSTM whose input is a convolution of the hidden map (and ``r``).

    State ``(h, c)``, each ``[B, l_q, m, m]``: ``x = [r, W_x * h]`` (``F x F`` kernel to one
    channel, as in GPPN), then the LSTM update of every cell from ``x`` and its own ``h``. Unlike
    the original, ``r`` is injected at every step so that the fixed point depends on the input.
    The policy is a 1x1 convolution of ``h*``.

    Args:
        q_channels: LSTM width ``l_q`` (paper: 40).
    """

    default_backward_solver = "anderson"

    def __init__(self, *, q_channels: int = 40, **kwargs):
        super().__init__(**kwargs)
        self.q_channels = q_channels
        self.encoder = self.default_encoder()
        self.neighbours = self.conv(q_channels, 1)
        self.lstm = nn.Conv2d(2 + q_channels, 4 * q_channels, 1)  # all four gates, per cell
        self.policy = nn.Conv2d(q_channels, self.actions, 1)

    def initial_state(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = r.new_zeros(r.shape[0], self.q_channels, *r.shape[2:])
        return zeros, zeros

    def step(self, state: tuple[torch.Tensor, torch.Tensor], r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        gates = self.lstm(torch.cat([r, self.neighbours(h), h], dim=1))
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def policy_logits(self, state: tuple[torch.Tensor, torch.Tensor], r: torch.Tensor) -> torch.Tensor:
        return self.policy(state[0])
