"""Closed-form problems shared by the solver tests (float64)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

DT = torch.float64


@dataclass
class Problem:
    """A batched problem with parameters ``params`` and its exact solution ``exact(*params)``."""

    name: str
    kind: str  # fixed_point | root_find | argmin
    fn: Callable  # fn(z, params)
    z0: Callable[[], torch.Tensor]
    params: tuple[torch.Tensor, ...]
    exact: Callable[..., torch.Tensor]


def linear(batch: int = 3, n: int = 4, seed: int = 0) -> Problem:
    """``z = A z + b`` with ``||A||_2 = 0.5``: ``z* = (I - A)^{-1} b``."""
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(batch, n, n, generator=g, dtype=DT)
    a = 0.5 * a / torch.linalg.matrix_norm(a, ord=2)[:, None, None]
    b = torch.randn(batch, n, generator=g, dtype=DT)
    return Problem(
        "linear",
        "fixed_point",
        lambda z, p: torch.einsum("bij,bj->bi", p[0], z) + p[1],
        lambda: torch.zeros(batch, n, dtype=DT),
        (a.requires_grad_(), b.requires_grad_()),
        lambda a, b: torch.linalg.solve(torch.eye(n, dtype=DT) - a, b),
    )


def cosine(batch: int = 3) -> Problem:
    """``z = a cos(z) + c`` (``|a| < 1``); exact answer by a 200-step Newton solve, itself differentiable."""
    a = torch.linspace(0.3, 0.9, batch, dtype=DT)[:, None]
    c = torch.linspace(-0.5, 0.5, batch, dtype=DT)[:, None]

    def exact(a, c):
        z = torch.zeros_like(a)
        with torch.no_grad():
            for _ in range(200):
                z = z - (z - a * torch.cos(z) - c) / (1 + a * torch.sin(z))
        # one differentiable Newton step at the solution gives the exact first derivatives
        return z - (z - a * torch.cos(z) - c) / (1 + a * torch.sin(z)).detach()

    return Problem(
        "cosine",
        "fixed_point",
        lambda z, p: p[0] * torch.cos(z) + p[1],
        lambda: torch.zeros(batch, 1, dtype=DT),
        (a.requires_grad_(), c.requires_grad_()),
        exact,
    )


def quadratic(batch: int = 3, n: int = 4, seed: int = 1) -> Problem:
    """``argmin_y 1/2 y^T Q y - c^T y`` with ``Q`` positive definite: ``y* = Q^{-1} c``."""
    g = torch.Generator().manual_seed(seed)
    m = torch.randn(batch, n, n, generator=g, dtype=DT)
    q = m @ m.transpose(1, 2) + n * torch.eye(n, dtype=DT)
    c = torch.randn(batch, n, generator=g, dtype=DT)
    return Problem(
        "quadratic",
        "argmin",
        lambda y, p: 0.5 * torch.einsum("bi,bij,bj->b", y, p[0], y) - (p[1] * y).sum(1),
        lambda: torch.zeros(batch, n, dtype=DT),
        (q.requires_grad_(), c.requires_grad_()),
        lambda q, c: torch.linalg.solve(0.5 * (q + q.transpose(1, 2)), c),  # the score sees sym(Q)
    )


def kepler(batch: int = 3) -> Problem:
    """Kepler's equation ``E - e sin E - M = 0``; ``dE/de = sin E / (1 - e cos E)``."""
    e = torch.linspace(0.1, 0.7, batch, dtype=DT)[:, None]
    m = torch.linspace(0.4, 2.5, batch, dtype=DT)[:, None]

    def exact(e, m):
        z = m.clone()
        with torch.no_grad():
            for _ in range(100):
                z = z - (z - e * torch.sin(z) - m) / (1 - e * torch.cos(z))
        return z - (z - e * torch.sin(z) - m) / (1 - e * torch.cos(z)).detach()

    return Problem(
        "kepler",
        "root_find",
        lambda z, p: z - p[0] * torch.sin(z) - p[1],
        lambda: torch.full((batch, 1), 1.0, dtype=DT),
        (e.requires_grad_(), m.requires_grad_()),
        exact,
    )
