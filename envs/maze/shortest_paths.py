"""Shortest paths on batches of grid maps: breadth-first search vectorised over the batch.

All functions take and return numpy arrays over a batch of maps ``free`` (``[n, m, m]`` bool,
``True`` on free cells). Moves are :mod:`~idplan.envs.maze.transition`'s (:func:`grid_step` for the
search, its dense form :func:`grid_neighbours` for the optimal actions): a move is allowed when its
destination is a free cell on the map (a diagonal may pass between two obstacles); every move costs
one step. With ``torus=True`` the map wraps around (a move off one edge enters on the opposite one),
as the configuration space of two revolute joints does. The move set is symmetric, so the distance
*to* the goal is the BFS distance *from* the goal.

The BFS keeps the frontier as a flat array of cell indices over the whole batch, so each level
costs time proportional to the frontier (not to ``n * m * m``), and the total work is linear in the
number of cells, with one numpy pass per BFS level for the whole batch.
"""

from __future__ import annotations

import numpy as np
import torch

from .transition import grid_neighbours, grid_step

UNREACHABLE = -1
"""The distance :func:`bfs_distances` gives obstacles and free cells with no path to the goal."""


def check_maps(free: np.ndarray, name: str = "free") -> np.ndarray:
    """Validate a batch of maps ``[n, m, m]`` (bool, or 0/1 integers); returns it as a contiguous bool array."""
    free = np.ascontiguousarray(free)
    if free.ndim != 3 or free.shape[1] != free.shape[2]:
        raise ValueError(f"{name} must be a batch of square maps [n, m, m], got shape {free.shape}")
    if free.dtype != np.bool_:
        if not (np.issubdtype(free.dtype, np.integer) or np.issubdtype(free.dtype, np.floating)):
            raise ValueError(f"{name} must be bool or 0/1 numbers, got dtype {free.dtype}")
        if not np.isin(free, (0, 1)).all():
            raise ValueError(f"{name} must hold only 0 and 1")
        free = free.astype(bool)
    return free


def bfs_distances(free: np.ndarray, goals: np.ndarray, moves: int = 4, torus: bool = False) -> np.ndarray:
    """Shortest-path distance (in steps) from every cell to its map's goal.

    Args:
        free: ``[n, m, m]`` bool, ``True`` on free cells.
        goals: ``[n, 2]`` integer ``(row, column)`` of each goal (a free cell).
        moves: 4 or 8.
        torus: the map wraps around at its edges.

    Returns:
        ``[n, m, m]`` int32: the distance, 0 at the goal, :data:`UNREACHABLE` (-1) on obstacles and
        on free cells with no path to the goal.
    """
    free = check_maps(free)
    n, m, _ = free.shape
    goals = np.asarray(goals)
    if goals.shape != (n, 2) or not np.issubdtype(goals.dtype, np.integer):
        raise ValueError(f"goals must be integer [n, 2] = [{n}, 2] (row, column), got {goals.shape} {goals.dtype}")
    if ((goals < 0) | (goals >= m)).any():
        raise ValueError(f"a goal lies outside the {m}x{m} map")
    if not free[np.arange(n), goals[:, 0], goals[:, 1]].all():
        raise ValueError("a goal lies on an obstacle")

    dist = np.full(n * m * m, UNREACHABLE, dtype=np.int32)
    actions = np.arange(moves)
    frontier = (np.arange(n, dtype=np.int64) * m + goals[:, 0]) * m + goals[:, 1]
    dist[frontier] = 0
    first_seen = np.empty(dist.shape, dtype=np.int64)  # scratch for de-duplication
    level = 0
    while frontier.size:
        level += 1
        nbr = grid_step(free, frontier[:, None], actions, moves, torus).ravel()
        nbr = nbr[dist[nbr] == UNREACHABLE]  # a bump stays on the frontier, which has its distance
        # keep one copy of each cell: the entry whose position the scratch array remembers
        order = np.arange(nbr.size)
        first_seen[nbr] = order
        nbr = nbr[first_seen[nbr] == order]
        dist[nbr] = level
        frontier = nbr
    return dist.reshape(n, m, m)


def optimal_actions(free: np.ndarray, dist: np.ndarray, moves: int = 4, torus: bool = False) -> np.ndarray:
    """The set of optimal actions in every cell, as a multi-hot ``[n, moves, m, m]`` bool array.

    An action is optimal in a free cell at distance ``d > 0`` when it leads to a free cell at
    distance ``d - 1``; the goal, obstacles and cells that cannot reach the goal have none.
    ``torus``: the map wraps around (as in :func:`bfs_distances`).
    """
    free = check_maps(free)
    if dist.shape != free.shape:
        raise ValueError(f"dist must have the maps' shape {free.shape}, got {dist.shape}")
    # the distance each move leads to, obstacles aside: an obstacle's -1 (or a move off the map, which
    # stays on the cell's own distance) is never d - 1 for d > 0
    dist = torch.from_numpy(np.ascontiguousarray(dist))[:, None]
    ahead = grid_neighbours(dist, moves, torus)[:, :, 0]
    return ((dist > 0) & (ahead == dist - 1)).numpy()


def pick_action(multi_hot: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One optimal action per cell, ties broken uniformly at random with ``rng``.

    Args:
        multi_hot: ``[n, A, m, m]`` bool, from :func:`optimal_actions`.
        rng: the source of the tie-breaking.

    Returns:
        ``[n, m, m]`` int8 action index, -1 where no action is optimal.
    """
    scores = rng.random(multi_hot.shape, dtype=np.float32)
    scores[~multi_hot] = -1.0
    action = scores.argmax(axis=1).astype(np.int8)
    action[~multi_hot.any(axis=1)] = -1
    return action
