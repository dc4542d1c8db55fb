"""Weight parametrisations that make a planner's step a max-norm contraction for any weights.

A convolution ``y_o = sum_i W_oi * x_i`` changes by at most ``sum_i ||W_oi||_1 ||dx||_inf`` in
output channel ``o``: bounding each output's kernel L1 norm (over the inputs that carry the state)
bounds the step's gain in the max norm. :class:`KernelL1Bound` does so by rescaling, as a
``torch.nn.utils.parametrize`` parametrisation: the raw weights train freely, the used ones obey
the bound, and explicit and implicit modes share them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


class KernelL1Bound(nn.Module):
    """Rescale each output channel's kernel over input channels ``inputs`` (a slice of weight axis
    1; ``None``: all) to L1 norm at most ``bound``; the other inputs' kernels are left as they are.

    Args:
        bound: the L1 bound, in ``(0, 1]`` (``< 1`` where the kernel alone must contract).
        inputs: the input channels that carry the state.
    """

    def __init__(self, bound: float, inputs: slice | None = None):
        super().__init__()
        if not 0 < bound <= 1:
            raise ValueError(f"the kernel bound must lie in (0, 1], got {bound}")
        self.bound, self.inputs = bound, inputs if inputs is not None else slice(None)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        bounded = weight[:, self.inputs]
        norm = bounded.abs().sum(dim=tuple(range(1, bounded.dim())), keepdim=True)
        scaled = bounded * torch.clamp(self.bound / norm.clamp_min(1e-12), max=1.0)
        if self.inputs == slice(None):
            return scaled
        out = weight.clone()
        out[:, self.inputs] = scaled
        return out


def bound_kernel(conv: nn.Module, bound: float | None, inputs: slice | None = None) -> None:
    """Register :class:`KernelL1Bound` on ``conv.weight`` (no-op for ``bound=None``)."""
    if bound is not None:
        parametrize.register_parametrization(conv, "weight", KernelL1Bound(bound, inputs))


def check_below_one(name: str, value: float) -> float:
    if not 0 < value < 1:
        raise ValueError(f"{name} must lie in (0, 1), got {value}")
    return value


def resolve_contractive(contractive: bool | None, mode: str) -> bool:
    """``None`` means: contractive in implicit mode (where the fixed point must exist), free in explicit."""
    return mode == "implicit" if contractive is None else bool(contractive)
