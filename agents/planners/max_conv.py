"""Maxima over channels: :func:`max_over_channels` of a given ``Q`` (GatedVIN, SymVIN), and
:func:`max_conv`, ``max_a conv(x, W)_a``, the VIN step's core, with a backward that never
materialises ``dQ``.

Autograd differentiates ``conv2d`` then ``max`` through a dense ``[B, l_q, m, m]`` gradient that is
zero but for one channel per cell, and a full convolution backward over it. The max picks a single
channel ``a*`` per cell, so the step is, locally, a per-cell linear map with that channel's kernel:
its backward gathers ``W[a*]`` (``[B, P, C F F]``), scatters it back over the ``F x F`` window
(:func:`unpatch`) and adds each cell's patch to ``dW[a*]``. On the 15x15, ``l_q = 150`` training step
that replaces the convolution backward, the largest item of the profile.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def patches(x: torch.Tensor, k: int) -> torch.Tensor:
    """``[B, C, H + k - 1, W + k - 1]`` (padded) -> ``[B, H W, C k k]``: every cell's ``k x k`` window,
    flattened in ``conv2d``'s weight order."""
    b, c, hp, wp = x.shape
    h, w = hp - k + 1, wp - k + 1
    sb, sc, sh, sw = x.stride()
    return x.as_strided((b, h, w, c, k, k), (sb, sh, sw, sc, sh, sw)).reshape(b, h * w, c * k * k)


def unpatch(windows: torch.Tensor, shape: torch.Size, k: int) -> torch.Tensor:
    """The adjoint of :func:`patches`: ``[B, H W, C k k]`` -> ``[B, C, H + k - 1, W + k - 1]``, each
    window added back where it was read."""
    b, c, hp, wp = shape
    h, w = hp - k + 1, wp - k + 1
    windows = windows.view(b, h, w, c, k, k).permute(0, 3, 4, 5, 1, 2)  # [B, C, k, k, H, W]
    out = windows.new_zeros(shape)
    for i in range(k):
        for j in range(k):
            out[:, :, i : i + h, j : j + w] += windows[:, :, i, j]
    return out


class _MaxConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        value, channel = F.conv2d(x, weight).max(dim=1, keepdim=True)
        ctx.save_for_backward(x, weight, channel)
        return value

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, channel = ctx.saved_tensors
        k = weight.shape[-1]
        flat = weight.reshape(weight.shape[0], -1)  # [O, C k k]
        chosen = channel.flatten()  # [B H W]
        grad = grad.reshape(-1, 1)  # [B H W, 1]
        grad_x = grad_weight = None
        # under autocast x, weight and grad may differ in dtype: each gradient takes its input's
        if ctx.needs_input_grad[0]:
            windows = (grad * flat[chosen]).to(x.dtype)
            grad_x = unpatch(windows.view(x.shape[0], -1, flat.shape[1]), x.shape, k)
        if ctx.needs_input_grad[1]:
            windows = (grad * patches(x, k).reshape(-1, flat.shape[1])).to(flat.dtype)
            grad_weight = torch.zeros_like(flat).index_add(0, chosen, windows).view_as(weight)
        return grad_x, grad_weight


def max_over_channels(q: torch.Tensor, dim: int) -> torch.Tensor:
    """``max`` over ``dim`` (kept). Without autograd, ``amax`` (about 10x faster on CPU than ``max``,
    which also finds the indices); with autograd, ``max``, whose backward saves only the indices."""
    if torch.is_grad_enabled() and q.requires_grad:
        return q.max(dim=dim, keepdim=True).values
    return q.amax(dim=dim, keepdim=True)


def max_conv(x: torch.Tensor, weight: torch.Tensor, padding_mode: str = "zeros") -> torch.Tensor:
    """``max_a (W * x)_a`` over the output channels of a "same" convolution, without bias.

    Args:
        x: ``[B, C, m, n]``.
        weight: ``[O, C, k, k]``, ``k`` odd.
        padding_mode: ``"zeros"`` or ``"circular"``.

    Returns:
        ``[B, 1, m, n]``. Without autograd, ``amax`` of the convolution; with it, the sparse
        backward of the module docstring (double-differentiable: the channel choice is locally constant).
    """
    pad = weight.shape[-1] // 2
    x = F.pad(x, (pad,) * 4, mode="constant" if padding_mode == "zeros" else padding_mode)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return _MaxConv.apply(x, weight)
    return F.conv2d(x, weight).amax(dim=1, keepdim=True)
