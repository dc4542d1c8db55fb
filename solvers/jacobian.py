"""Jacobian regularisation (Bai et al. 2021): a stochastic estimate of ``||df/dz||_F^2``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from ._state import State, pack, state_spec, unpack


def jacobian_frobenius_sq(
    f: Callable[[State, Any], State],
    z: State,
    args: Any = None,
    *,
    num_samples: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Hutchinson estimate of ``||df/dz (z)||_F^2`` per sample, ``[B]``, usable as a loss term.

    ``E_eps ||eps^T J||^2 = ||J||_F^2`` for ``eps ~ N(0, I)``; the estimate averages
    ``num_samples`` probes and is differentiable w.r.t. the parameters of ``f`` (double backward).
    Divide by the state size ``N`` for Bai et al.'s normalised form. Evaluate it at the solution
    (``solution.value``); the probes are drawn from ``generator`` (on the state's device).
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    spec = state_spec(z, "z")
    flat = pack(z, spec, "z").detach().requires_grad_()
    with torch.enable_grad():
        fz = pack(f(unpack(flat, spec), args), spec, "f(z, args)")
        total = fz.new_zeros(spec.batch)
        for _ in range(num_samples):
            probe = torch.randn(fz.shape, generator=generator, dtype=fz.dtype, device=fz.device)
            (vjp,) = torch.autograd.grad(fz, flat, probe, create_graph=True, retain_graph=True)
            total = total + vjp.pow(2).sum(1)
    return total / num_samples
