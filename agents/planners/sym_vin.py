"""SymVIN (Zhao et al. 2022): a value iteration network equivariant to the grid's rotations
(C4) or rotations and reflections (D4), built from the group convolutions of :mod:`.group_conv`."""

from __future__ import annotations

import torch

from .base import Planner
from .group_conv import GroupConv, LiftingConv, group_elements
from .max_conv import max_over_channels
from .vin import bound_value_kernel


class SymVIN(Planner):
    """VIN with regular-field group convolutions: ``v' = max_fields GroupConv([r, v])``.

    The input maps (trivial fields) are lifted to ``hidden`` regular fields by a 3x3 lifting
    convolution, then mapped to one regular reward field ``r`` by a 1x1 group convolution. The
    step convolves ``[r, v]`` (two regular fields) to ``q_channels`` regular Q fields with an
    ``F x F`` group kernel and takes the max over fields, so ``v`` stays one regular field and the
    whole step commutes with the group. The policy maps the Q fields to one regular field with a
    1x1 group convolution and reads the four action logits N, W, S, E off it: for C4 the field's
    channels are the four directions; for D4 each direction pools (max) the two elements that
    send North to it. Rotating or reflecting the map thus rotates the value map and permutes the
    logits. Anderson acceleration preserves this (its coefficients come from inner products,
    which the group's permutations leave unchanged).

    Args:
        group: ``"D4"`` (default) or ``"C4"``.
        hidden: regular fields of the encoder (default 16: 128 channels for D4).
        q_channels: regular Q fields (default 16).
        value_bound: as :class:`~idplan.agents.VIN`'s: a bound below 1 on the L1 norm of each Q
            field's value kernel makes the step a contraction; ``"auto"`` (default): 0.99 in
            implicit mode, unbounded in explicit mode.
        **kwargs (Any): the other arguments: see :class:`~idplan.agents.planners.Planner` (``actions``
            must be 4).
    """

    def __init__(
        self,
        *,
        group: str = "D4",
        hidden: int = 16,
        q_channels: int = 16,
        value_bound: float | None | str = "auto",
        **kwargs,
    ):
        super().__init__(hidden=hidden, **kwargs)
        if self.actions != 4:
            raise ValueError(f"SymVIN plans over the 4 moves N, W, S, E; got actions={self.actions}")
        self.group, self.q_channels = group, q_channels
        self.order = len(group_elements(group))
        conv = dict(group=group, padding=self.padding)
        self.lift = LiftingConv(self.in_channels, hidden, 3, **conv)
        self.reward = GroupConv(hidden, 1, 1, bias=False, **conv)
        self.q = GroupConv(2, q_channels, self.kernel_size, bias=False, **conv)
        self.policy = GroupConv(q_channels, 1, 1, bias=False, **conv)
        with torch.no_grad():  # start contractive (as VIN): each Q field's value kernel has L1 norm ~0.5
            bound = 1.0 / (self.order * self.kernel_size**2)
            self.q.weight[:, 1].uniform_(-bound, bound)
        self.value_bound = bound_value_kernel(self.q, value_bound, self.mode)

    @property
    def contraction_bound(self) -> float | None:
        return self.value_bound

    def encode(self, maps: torch.Tensor) -> torch.Tensor:
        return self.reward(self.lift(maps))

    def initial_state(self, r: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(r)

    def step(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        q = self.q(torch.cat([r, v], dim=1))
        b, _, height, width = q.shape
        return max_over_channels(q.view(b, self.q_channels, self.order, height, width), dim=1).squeeze(1)

    def policy_logits(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        field = self.policy(self.q(torch.cat([r, v], dim=1)))  # [B, |G|, m, m]
        if self.order == 4:
            return field
        return torch.maximum(field[:, :4], field[:, 4:])  # D4: element (k, 0) and (k, 1) both send N to action k

    def value_map(self, v: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return v.max(dim=1, keepdim=True).values  # invariant over the group axis


__all__ = ["SymVIN"]
