"""The exact Bellman operator of a deterministic grid world, as a pure torch function.

Cells are ``free`` or obstacles; moves follow :func:`~idplan.envs.maze.transition.grid_step` (into an
obstacle or off the map the agent stays in place; on a torus the map wraps around).
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

from .transition import grid_step, move_offsets


def grid_bellman_operator(
    free: torch.Tensor, goal: torch.Tensor, gamma: float = 0.99, moves: int = 4, torus: bool = False
) -> Callable[[torch.Tensor, torch.Tensor | float], torch.Tensor]:
    """Build ``f(v, cost) -> v'`` for maps ``free`` and ``goal`` (``[B, 1, m, m]`` bool).

    Args:
        free: ``True`` on free cells.
        goal: ``True`` on the goal cell (one per map, on a free cell).
        gamma: discount in ``(0, 1)``.
        moves: 4 (N, W, S, E) or 8 (adds the diagonals).
        torus: the maps wrap around at their edges.

    Returns:
        ``f(v, cost)``: ``v`` is ``[B, 1, m, m]``; ``cost`` a float or a ``[B, 1, m, m]`` map.
    """
    if free.dim() != 4 or free.shape[1] != 1 or goal.shape != free.shape:
        raise ValueError(f"free and goal must both be [B, 1, m, m]; got {tuple(free.shape)} and {tuple(goal.shape)}")
    if free.dtype != torch.bool or goal.dtype != torch.bool:
        raise ValueError("free and goal must be bool tensors")
    if not 0.0 < gamma < 1.0:
        raise ValueError(f"gamma must lie in (0, 1), got {gamma}")
    move_offsets(moves)  # a bad move set raises here, not at the first call
    if bool((goal & ~free).any()):
        raise ValueError("a goal lies on an obstacle")
    cells = torch.arange(free.numel(), device=free.device).view(free.shape)
    actions = torch.arange(moves, device=free.device).view(1, moves, 1, 1, 1)
    successor = grid_step(free, cells[:, None], actions, moves, torus)  # [B, moves, 1, m, m] flat cell indices
    free_not_goal = free & ~goal

    def bellman(v: torch.Tensor, cost: torch.Tensor | float = 1.0) -> torch.Tensor:
        if v.shape != free.shape:
            raise ValueError(f"v must have the maps' shape {tuple(free.shape)}, got {tuple(v.shape)}")
        best = v.reshape(-1)[successor].amax(dim=1)
        return torch.where(free_not_goal, gamma * best - cost, torch.zeros_like(v))

    return bellman
