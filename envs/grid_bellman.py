"""The exact Bellman operator of a deterministic grid world, as a pure torch function.

Cells are ``free`` or obstacles; moving into an obstacle or off the map leaves the agent in place.
Each move out of a free non-goal cell costs ``cost`` (a scalar or a per-cell ``[B, 1, m, m]`` map),
the goal is absorbing with value 0, and obstacles hold value 0 (they are never entered)::

    v(s) = max_a ( -cost(s) + gamma * v(next(s, a)) )   for free s != goal,   v(goal) = 0.

With unit cost the fixed point is ``v(s) = -(1 - gamma**d(s)) / (1 - gamma)`` for a cell at
shortest-path distance ``d(s)`` from the goal, and ``-1 / (1 - gamma)`` where the goal is
unreachable. Device and dtype follow the inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

MOVES_4 = ((-1, 0), (0, -1), (1, 0), (0, 1))  # N, W, S, E as (row, column) offsets
MOVES_8 = MOVES_4 + ((-1, -1), (1, -1), (1, 1), (-1, 1))  # then NW, SW, SE, NE


def grid_neighbours(x: torch.Tensor, moves: int = 4, torus: bool = False) -> torch.Tensor:
    """``x`` at the cell each move leads to: ``[B, C, m, m]`` -> ``[B, moves, C, m, m]``.

    Entry ``[b, a, c, i, j]`` is ``x[b, c]`` at ``(i, j) + MOVES[a]``. A move off the map stays in
    place (``x`` of the cell itself), or wraps around on a ``torus``. Obstacles are not looked at:
    callers gate the moves they block. Device, dtype and autograd follow ``x``.
    """
    if x.dim() != 4:
        raise ValueError(f"grid_neighbours expects [B, C, m, m], got {tuple(x.shape)}")
    if moves not in (4, 8):
        raise ValueError(f"moves must be 4 or 8, got {moves}")
    offsets = MOVES_4 if moves == 4 else MOVES_8
    rows, cols = x.shape[-2:]
    if torus:
        return torch.stack([torch.roll(x, shifts=(-dr, -dc), dims=(-2, -1)) for dr, dc in offsets], dim=1)
    if moves == 4 and x.is_floating_point():  # an edge-replicating border is "stay" for straight moves
        padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
        return torch.stack([padded[..., 1 + dr : 1 + dr + rows, 1 + dc : 1 + dc + cols] for dr, dc in offsets], dim=1)
    padded = F.pad(x, (1, 1, 1, 1))
    inside = F.pad(x.new_ones(1, 1, rows, cols, dtype=torch.bool), (1, 1, 1, 1), value=False)
    shifted = []
    for dr, dc in offsets:
        window = (..., slice(1 + dr, 1 + dr + rows), slice(1 + dc, 1 + dc + cols))
        shifted.append(torch.where(inside[window], padded[window], x))
    return torch.stack(shifted, dim=1)


def grid_bellman_operator(
    free: torch.Tensor, goal: torch.Tensor, gamma: float = 0.99, moves: int = 4
) -> Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]:
    """Build ``f(v, cost) -> v'`` for maps ``free`` and ``goal`` (``[B, 1, m, m]`` bool).

    Args:
        free: ``True`` on free cells.
        goal: ``True`` on the goal cell (one per map, on a free cell).
        gamma: discount in ``(0, 1)``.
        moves: 4 (N, W, S, E) or 8 (adds the diagonals).

    Returns:
        ``f(v, cost)``: ``v`` is ``[B, 1, m, m]``; ``cost`` a float or a ``[B, 1, m, m]`` map.
    """
    if free.dim() != 4 or free.shape[1] != 1 or goal.shape != free.shape:
        raise ValueError(f"free and goal must both be [B, 1, m, m]; got {tuple(free.shape)} and {tuple(goal.shape)}")
    if free.dtype != torch.bool or goal.dtype != torch.bool:
        raise ValueError("free and goal must be bool tensors")
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    if moves not in (4, 8):
        raise ValueError(f"moves must be 4 or 8, got {moves}")
    if bool((goal & ~free).any()):
        raise ValueError("a goal lies on an obstacle")
    can_move = grid_neighbours(free, moves)  # [B, moves, 1, m, m]: the cell a move leads to is free
    free_not_goal = free & ~goal

    def bellman(v: torch.Tensor, cost: torch.Tensor | float = 1.0) -> torch.Tensor:
        best = torch.where(can_move, grid_neighbours(v, moves), v[:, None]).amax(dim=1)
        return torch.where(free_not_goal, gamma * best - cost, torch.zeros_like(v))

    return bellman
