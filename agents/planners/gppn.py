"""Gated path planning networks (Lee et al. 2018) as fixed-point planners: ConvGPPN and GPPN.

Both come in two forms that share the constructor's other options:

- free (the papers'): gates that read the state, no bound on any kernel; the learned step need
  not contract, and after training it usually does not (the forward stalls at a relative
  residual of 1e-2 to 1);
- ``contractive`` (default in implicit mode): the gates read only the reward map ``r`` (so they
  are computed once per solve), the update / forget gate is capped at ``max_gate < 1``, and the
  kernels that read the state are L1-bounded by ``state_bound < 1``
  (:class:`~idplan.agents.planners.contraction.KernelL1Bound`). The step is then a max-norm contraction
  with factor at most ``1 - (1 - max_gate)(1 - state_bound)`` for any weights.
"""

from __future__ import annotations

import torch
from torch import nn

from .base import Planner
from .contraction import bound_kernel, check_below_one, resolve_contractive


class GatedRecurrentPlanner(Planner):
    """What ConvGPPN and GPPN share: the state width, the choice of the free or the contractive
    step, and the contractive step's caps and bound (module docstring).

    Args:
        q_channels: hidden channels ``l_q`` of the recurrent state (paper: 40).
        contractive: ``None`` (default): contractive in implicit mode, free in explicit mode.
        max_gate, state_bound: the contractive form's caps, in (0, 1).
        Other arguments: see :class:`~idplan.agents.planners.Planner`.
    """

    default_backward_solver = "anderson"

    def __init__(
        self,
        *,
        q_channels: int = 40,
        contractive: bool | None = None,
        max_gate: float = 0.9,
        state_bound: float = 0.9,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.q_channels = q_channels
        self.contractive = resolve_contractive(contractive, self.mode)
        self.max_gate = check_below_one("max_gate", max_gate)
        self.state_bound = check_below_one("state_bound", state_bound)

    @property
    def contraction_bound(self) -> float | None:
        return 1 - (1 - self.max_gate) * (1 - self.state_bound) if self.contractive else None


class ConvGPPN(GatedRecurrentPlanner):
    """ConvGPPN: every step a ConvGRU cell ``h' = ConvGRU(h, r)`` with ``r`` injected, no max.

    Free: ``z, g = sigmoid(W_zg * [r, h])``, ``n = tanh(W_n * [r, g h])``,
    ``h' = (1 - z) n + z h``. Contractive: ``z = max_gate sigmoid(W_z * r)``,
    ``g = sigmoid(W_g * r)``, ``n = tanh(W_nr * r + W_nh * (g h))`` with each output's ``W_nh``
    of L1 norm at most ``state_bound``; then ``|dn| <= state_bound |dh|`` and
    ``|dh'| <= (1 - z) state_bound |dh| + z |dh|`` cell by cell. The policy is a 1x1 convolution
    of ``h*``. Arguments: see :class:`GatedRecurrentPlanner`.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = self.default_encoder()
        self.policy = nn.Conv2d(self.q_channels, self.actions, 1)
        if self.contractive:
            self.gates = self.conv(1, 2 * self.q_channels)
            self.candidate_reward = self.conv(1, self.q_channels)
            self.candidate_state = self.conv(self.q_channels, self.q_channels, bias=False)
            bound_kernel(self.candidate_state, self.state_bound)
        else:
            self.gates = self.conv(1 + self.q_channels, 2 * self.q_channels)
            self.candidate = self.conv(1 + self.q_channels, self.q_channels)

    def encode(self, maps: torch.Tensor) -> torch.Tensor:
        """Free: ``r`` ``[B, 1, m, m]``. Contractive: ``[B, 1 + 3 l_q, m, m]``, ``r`` followed by
        what depends on it alone (update gate, reset gate, the candidate's reward term)."""
        r = self.encoder(maps)
        if not self.contractive:
            return r
        update, reset = torch.sigmoid(self.gates(r)).chunk(2, dim=1)
        return torch.cat([r, self.max_gate * update, reset, self.candidate_reward(r)], dim=1)

    def initial_state(self, r: torch.Tensor) -> torch.Tensor:
        return r.new_zeros(r.shape[0], self.q_channels, *r.shape[2:])

    def step(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        if self.contractive:
            update, reset, reward_term = r[:, 1:].chunk(3, dim=1)
            candidate = torch.tanh(reward_term + self.candidate_state(reset * h))
        else:
            update, reset = torch.sigmoid(self.gates(torch.cat([r, h], dim=1))).chunk(2, dim=1)
            candidate = torch.tanh(self.candidate(torch.cat([r, reset * h], dim=1)))
        return (1 - update) * candidate + update * h

    def policy_logits(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.policy(h)


class GPPN(GatedRecurrentPlanner):
    """GPPN: a per-cell LSTM whose input is a convolution of the hidden map (and ``r``).

    State ``(h, c)``, each ``[B, l_q, m, m]``. Free: ``x = [r, W_x * h]`` (``F x F`` kernel to
    one channel, as in GPPN), then the LSTM update of every cell from ``x`` and its own ``h``.
    Contractive: the forget and output gates read ``r`` only, the input gate is ``1 - f`` with
    ``f <= max_gate``, ``W_x`` has L1 norm at most 1 and the candidate's kernel over
    ``[W_x * h, h]`` at most ``state_bound``; then with ``d = max(|dh|, |dc|)``,
    ``|dc'| <= f |dc| + (1 - f) state_bound d`` and ``|dh'| <= |dc'|``. Unlike the original,
    ``r`` is injected at every step so that the fixed point depends on the input. The policy is a
    1x1 convolution of ``h*``. Arguments: see :class:`GatedRecurrentPlanner` (``l_q``: the LSTM width).
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.encoder = self.default_encoder()
        self.neighbours = self.conv(self.q_channels, 1)
        self.policy = nn.Conv2d(self.q_channels, self.actions, 1)
        if self.contractive:
            bound_kernel(self.neighbours, 1.0)
            self.gates = nn.Conv2d(1, 2 * self.q_channels, 1)  # forget, output: from r alone
            self.candidate_reward = nn.Conv2d(1, self.q_channels, 1)
            self.candidate_state = nn.Conv2d(1 + self.q_channels, self.q_channels, 1, bias=False)
            bound_kernel(self.candidate_state, self.state_bound)
        else:
            self.lstm = nn.Conv2d(2 + self.q_channels, 4 * self.q_channels, 1)  # all four gates, per cell

    def encode(self, maps: torch.Tensor) -> torch.Tensor:
        """Free: ``r``. Contractive: ``[B, 1 + 3 l_q, m, m]``: ``r``, the forget and output gates,
        the candidate's reward term."""
        r = self.encoder(maps)
        if not self.contractive:
            return r
        forget, output = torch.sigmoid(self.gates(r)).chunk(2, dim=1)
        return torch.cat([r, self.max_gate * forget, output, self.candidate_reward(r)], dim=1)

    def initial_state(self, r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        zeros = r.new_zeros(r.shape[0], self.q_channels, *r.shape[2:])
        return zeros, zeros

    def step(self, state: tuple[torch.Tensor, torch.Tensor], r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c = state
        if self.contractive:
            forget, output, reward_term = r[:, 1:].chunk(3, dim=1)
            g = torch.tanh(reward_term + self.candidate_state(torch.cat([self.neighbours(h), h], dim=1)))
            c = forget * c + (1 - forget) * g
            return output * torch.tanh(c), c
        gates = self.lstm(torch.cat([r, self.neighbours(h), h], dim=1))
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c

    def policy_logits(self, state: tuple[torch.Tensor, torch.Tensor], r: torch.Tensor) -> torch.Tensor:
        return self.policy(state[0])
