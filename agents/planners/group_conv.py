"""Group convolutions for the square grid's symmetry groups: C4 (90-degree rotations) and D4
(rotations and reflections), on regular-representation feature fields.

These groups act on a square grid exactly (``torch.rot90``, ``torch.flip``: no interpolation), so
the layers build their full kernels from rotated and reflected copies of one learned kernel and
run a single ``conv2d``. A regular field has one channel per group element; a feature map of
``n`` fields has ``n * |G|`` channels laid out field-major (``[field, element]``).

Group element ``g = (k, f)`` acts on an image as ``T_g x = rot90(flip_columns^f x, k)``; on a
regular feature map as ``(g . F)_h = T_g F_{g^-1 h}``. With 0-indexed actions N, W, S, E, a
counter-clockwise quarter turn sends each action to the next.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GROUPS = ("C4", "D4")


def group_elements(group: str) -> list[tuple[int, int]]:
    """The elements ``(k, f)`` of ``group``: ``k`` quarter turns after ``f`` column flips."""
    if group == "C4":
        return [(k, 0) for k in range(4)]
    if group == "D4":
        return [(k, f) for f in (0, 1) for k in range(4)]
    raise ValueError(f"group must be one of {GROUPS}, got {group!r}")


def transform(x: torch.Tensor, element: tuple[int, int]) -> torch.Tensor:
    """``T_g x`` on the last two (square) dimensions."""
    k, f = element
    if f:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k, dims=(-2, -1))


def _identify(image: torch.Tensor, elements: list[tuple[int, int]]) -> int:
    """The index of the element whose transform of the probe gives ``image``."""
    probe = torch.arange(9.0).view(3, 3)
    for index, element in enumerate(elements):
        if torch.equal(transform(probe, element), image):
            return index
    raise AssertionError("not a group element")


def cayley_table(group: str) -> torch.Tensor:
    """``table[g, h]`` = index of ``g h`` (apply ``h`` first), found from the transforms themselves."""
    elements = group_elements(group)
    probe = torch.arange(9.0).view(3, 3)
    table = torch.empty(len(elements), len(elements), dtype=torch.long)
    for i, g in enumerate(elements):
        for j, h in enumerate(elements):
            table[i, j] = _identify(transform(transform(probe, h), g), elements)
    return table


def transform_regular(features: torch.Tensor, element_index: int, group: str) -> torch.Tensor:
    """Act on a regular feature map ``[B, n * |G|, H, W]`` with the group element of that index."""
    elements = group_elements(group)
    order = len(elements)
    table = cayley_table(group)
    inverse = int((table[element_index] == 0).nonzero())  # g^-1
    source = table[inverse]  # channel h of the result comes from channel g^-1 h
    b, c, height, width = features.shape
    fields = features.view(b, c // order, order, height, width)[:, :, source]
    return transform(fields, elements[element_index]).reshape(b, c, height, width)


class _GroupConvBase(nn.Module):
    def __init__(self, group: str, kernel_size: int, padding: str):
        super().__init__()
        self.group = group
        self.elements = group_elements(group)
        self.order = len(self.elements)
        self.kernel_size = kernel_size
        self.padding_mode = padding
        table = cayley_table(group)
        inverse = torch.tensor([int((table[g] == 0).nonzero()) for g in range(self.order)])
        # relative[g, h] = index of g^-1 h: which learned kernel slice feeds output g from input h
        self.register_buffer("relative", table[inverse], persistent=False)

    def _conv(self, x: torch.Tensor, kernel: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        pad = self.kernel_size // 2
        if self.padding_mode == "circular" and pad:
            x = F.pad(x, (pad, pad, pad, pad), mode="circular")
            pad = 0
        return F.conv2d(x, kernel, bias, padding=pad)


class LiftingConv(_GroupConvBase):
    """Trivial input channels ``[B, c_in, H, W]`` -> ``c_out`` regular fields ``[B, c_out |G|, H, W]``.

    Output element ``g`` is the cross-correlation with ``T_g W``.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int, group: str = "D4", padding: str = "zeros", bias=True):
        super().__init__(group, kernel_size, padding)
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel_size, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def full_kernel(self) -> torch.Tensor:
        kernels = torch.stack([transform(self.weight, g) for g in self.elements], dim=1)  # [out, G, in, k, k]
        return kernels.flatten(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.repeat_interleave(self.order) if self.bias is not None else None
        return self._conv(x, self.full_kernel(), bias)


class GroupConv(_GroupConvBase):
    """``c_in`` regular fields -> ``c_out`` regular fields: ``out_g = sum_h T_g W_{g^-1 h} * F_h``."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, group: str = "D4", padding: str = "zeros", bias=True):
        super().__init__(group, kernel_size, padding)
        self.weight = nn.Parameter(torch.empty(c_out, c_in, self.order, kernel_size, kernel_size))
        fan_in = c_in * self.order * kernel_size * kernel_size
        nn.init.uniform_(self.weight, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def full_kernel(self) -> torch.Tensor:
        c_out, c_in = self.weight.shape[:2]
        per_element = [transform(self.weight[:, :, self.relative[g]], self.elements[g]) for g in range(self.order)]
        kernels = torch.stack(per_element, dim=1)  # [out, G_out, in, G_in, k, k]
        return kernels.reshape(c_out * self.order, c_in * self.order, self.kernel_size, self.kernel_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = self.bias.repeat_interleave(self.order) if self.bias is not None else None
        return self._conv(x, self.full_kernel(), bias)
