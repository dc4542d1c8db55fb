"""Greedy rollouts of a per-cell policy on batches of maze maps, from every start cell at once."""

from __future__ import annotations

import numpy as np

from .shortest_paths import check_maps
from .transition import grid_step, move_offsets


def greedy_rollouts(
    free: np.ndarray,
    goals: np.ndarray,
    actions: np.ndarray,
    starts: np.ndarray,
    moves: int = 4,
    max_steps: int | None = None,
    torus: bool = False,
) -> np.ndarray:
    """Follow a deterministic per-cell policy from every start cell of every map, in parallel.

    A move into an obstacle or off the map leaves the walker in place (as in ``GridMaze``); on a
    torus (``torus=True``) a move off one edge enters on the opposite one.

    Args:
        free: ``[n, m, m]`` bool maps.
        goals: ``[n, 2]`` goal cells.
        actions: ``[n, m, m]`` integer action per cell (out-of-range actions count as staying).
        starts: ``[n, m, m]`` bool, the cells to start from.
        moves: 4 or 8.
        max_steps: step budget (default ``m * m``: a deterministic walker that has not arrived
            by then loops forever).
        torus: the maps wrap around at their edges.

    Returns:
        ``[n, m, m]`` int32: steps to reach the goal from each start, -1 if it never arrives
        (and -1 on cells that are not starts).
    """
    free = check_maps(free)
    n, m, _ = free.shape
    if actions.shape != free.shape or starts.shape != free.shape:
        raise ValueError(
            f"actions and starts must have the maps' shape {free.shape}, got {actions.shape}, {starts.shape}"
        )
    move_offsets(moves)  # a bad move set raises before any walking
    policy = np.ascontiguousarray(actions).reshape(-1)  # indexed by flat cell
    budget = m * m if max_steps is None else max_steps
    b, r, c = np.nonzero(starts)
    steps = np.full(b.shape, -1, dtype=np.int32)
    goal_cells = (np.arange(n) * m + goals[:, 0]) * m + goals[:, 1]
    walkers = (b * m + r) * m + c  # flat cell indices (grid_step's)
    walking = walkers != goal_cells[b]
    steps[~walking] = 0
    idx = np.flatnonzero(walking)
    cells = walkers[idx]
    for t in range(1, budget + 1):
        if idx.size == 0:
            break
        cells = grid_step(free, cells, policy[cells], moves, torus)
        arrived = cells == goal_cells[b[idx]]
        steps[idx[arrived]] = t
        idx, cells = idx[~arrived], cells[~arrived]
    out = np.full(free.shape, -1, dtype=np.int32)
    out[b, r, c] = steps
    return out
