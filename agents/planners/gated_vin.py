"""Gated VIN: value iteration on a learned grid MDP, a max-norm contraction for any weights."""

from __future__ import annotations

import torch
from torch import nn

from ...envs import grid_neighbours
from .base import Planner
from .max_conv import max_over_channels


class GatedVIN(Planner):
    """Value iteration on a grid MDP whose rewards and transition gates are read off the map.

    For every cell ``x`` and move ``a`` the encoder (3x3 convolution, ReLU, 1x1 convolution)
    predicts a reward ``R_a(x)`` and, by a softmax over three outcomes, the probabilities that
    the move succeeds (``P_a``), fails and leaves the agent in place (``S_a``) or ends the
    episode (``1 - P_a - S_a``). The step is the Bellman operator of that MDP::

        Q_a(x) = R_a(x) + gamma * (P_a(x) v(x + a) + S_a(x) v(x)),    v'(x) = max_a Q_a(x)

    (``x + a`` stays in place off the map, wraps around on a torus). Each ``Q_a`` is ``R`` plus
    ``gamma`` times a sub-convex combination of values, so the step is a contraction in the max
    norm with factor at most ``gamma`` whatever the weights: the fixed point exists, is unique,
    and forward iteration reaches it. The move structure is fixed (a max over neighbours, as in
    value iteration), so the goal's signal crosses the map in as many steps as its shortest
    paths are long, and the same weights plan on maps of any size. The action logits are
    ``Q_a(v*)`` themselves; the value map is ``v*``.

    Args:
        discount: ``gamma`` in (0, 1), the contraction factor.
        hidden: channels of the encoder's hidden layer.
        **kwargs (Any): the other arguments: see :class:`~idplan.agents.planners.Planner` (``actions``:
            4 or 8 moves).
    """

    # with factor 0.99 a residual of 1e-4 leaves the iterate up to 1e-2 from the fixed point: the
    # trained demo planner's gradient had cosine 0.9975 to the exact one at 1e-4, 0.99989 at 1e-5,
    # 1.0 at 1e-6 (204 Anderson steps instead of 107; benchmarks/gradient_quality.py)
    default_tol = 1e-6
    default_solver = "anderson"  # on this contraction: 3x fewer steps than forward iteration (15x15)
    default_backward_solver = "anderson"  # reaches 1e-4 in ~120 steps where GMRES(1000) did not

    def __init__(self, *, discount: float = 0.99, hidden: int = 64, **kwargs):
        super().__init__(hidden=hidden, **kwargs)
        if not 0.0 < discount < 1.0:
            raise ValueError(f"discount must lie in (0, 1), got {discount}")
        if self.actions not in (4, 8):
            raise ValueError(f"GatedVIN plans over 4 or 8 grid moves, got actions={self.actions}")
        self.discount = discount
        self.encoder = nn.Sequential(
            self.conv(self.in_channels, hidden, 3), nn.ReLU(), nn.Conv2d(hidden, 4 * self.actions, 1)
        )

    @property
    def contraction_bound(self) -> float:
        return self.discount

    def encode(self, maps: torch.Tensor) -> torch.Tensor:
        """``[B, 3A, m, m]``: rewards ``R``, then ``gamma P`` (move) and ``gamma S`` (stay)."""
        features = self.encoder(maps)
        reward, outcomes = features[:, : self.actions], features[:, self.actions :]
        b, _, m, n = outcomes.shape
        move, stay, _ = (self.discount * outcomes.view(b, 3, self.actions, m, n).softmax(dim=1)).unbind(1)
        return torch.cat([reward, move, stay], dim=1)

    def initial_state(self, r: torch.Tensor) -> torch.Tensor:
        return r.new_zeros(r.shape[0], 1, *r.shape[2:])

    def q_values(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """``[B, A, m, m]``."""
        reward, move, stay = r.chunk(3, dim=1)  # move and stay carry the discount
        ahead = grid_neighbours(v, self.actions, torus=self.padding == "circular")[:, :, 0]
        return reward + move * ahead + stay * v

    def step(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return max_over_channels(self.q_values(v, r), dim=1)

    def policy_logits(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return self.q_values(v, r)

    def value_map(self, v: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return v
