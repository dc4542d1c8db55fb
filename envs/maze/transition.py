"""The grid's one move rule: the action offsets, :func:`grid_step` (the batched transition) and
:func:`grid_neighbours` (a dense map's value at each move's cell).

A move of action ``a`` goes from ``(row, column)`` to ``(row, column) + MOVES[a]`` when that cell is
free; a move into an obstacle or off the map leaves the walker in place (a bump). On a torus the map
wraps around: a move off one edge enters on the opposite one (the configuration space of two revolute
joints). Only the destination is looked at, so a diagonal may pass between two obstacles.

:func:`grid_step` is the transition that :class:`~idplan.envs.maze.GridMazeEnv`, the rollouts
(:func:`~idplan.envs.maze.greedy_rollouts`), the breadth-first search
(:mod:`~idplan.envs.maze.shortest_paths`) and the exact Bellman operator
(:func:`~idplan.envs.maze.grid_bellman_operator`) all take their moves from.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

MOVES_4 = ((-1, 0), (0, -1), (1, 0), (0, 1))
"""The four moves N, W, S, E as ``(row, column)`` offsets, in action order."""
MOVES_8 = MOVES_4 + ((-1, -1), (1, -1), (1, 1), (-1, 1))
"""The eight moves: :data:`MOVES_4`, then NW, SW, SE, NE."""
# grid_step's offset tables: one row per action, then a last (0, 0) row for actions outside the move set
_STEP_OFFSETS = {4: np.array(MOVES_4 + ((0, 0),)), 8: np.array(MOVES_8 + ((0, 0),))}


def move_offsets(moves: int) -> tuple[tuple[int, int], ...]:
    """The ``(row, column)`` offsets of the ``moves`` (4 or 8) actions, in action order."""
    if moves == 4:
        return MOVES_4
    if moves == 8:
        return MOVES_8
    raise ValueError(f"moves must be 4 or 8, got {moves!r}")


def grid_step(
    free: np.ndarray | torch.Tensor,
    cells: np.ndarray | torch.Tensor,
    actions: int | np.ndarray | torch.Tensor,
    moves: int = 4,
    torus: bool = False,
) -> np.ndarray | torch.Tensor:
    """The cell each walker reaches with its action, for any number of walkers on a batch of maps.

    Cells are flat indices into ``free.reshape(-1)``: cell ``(row, column)`` of map ``k`` (the
    ``k``-th ``m x m`` map of ``free``'s leading dimensions, in C order) is ``(k * m + row) * m + column``,
    so one integer array addresses walkers on different maps. A move leads to the free cell at
    ``(row, column) + MOVES[action]``; into an obstacle or off the map it stays (on a ``torus`` it wraps
    around instead of leaving the map). An action outside ``[0, moves)`` stays.

    Args:
        free: ``[..., m, m]`` bool maps, ``True`` on free cells; numpy or torch, as ``cells``.
        cells: integer flat indices of the walkers' cells (numpy array or torch tensor).
        actions: integer actions, broadcast against ``cells`` (an int, an array or a tensor).
        moves: 4 (N, W, S, E) or 8 (then NW, SW, SE, NE).
        torus: the maps wrap around at their edges.

    Returns:
        The flat indices of the cells reached, in the broadcast shape of ``cells`` and ``actions`` and
            the array type (and device) of ``cells``. A cell equal to the one it left is a bump (or a
            stay).
    """
    m = free.shape[-1]
    if free.ndim < 2 or free.shape[-2] != m:
        raise ValueError(f"free must be square maps [..., m, m], got shape {tuple(free.shape)}")
    move_offsets(moves)  # 4 or 8, else ValueError
    table = _STEP_OFFSETS[moves]
    if isinstance(cells, torch.Tensor):
        table = torch.as_tensor(table, device=cells.device)
        actions = torch.as_tensor(actions, device=cells.device).long()
        where = torch.where
    else:
        actions = np.asarray(actions)
        where = np.where
    offset = table[where((actions >= 0) & (actions < moves), actions, moves)]  # [..., 2]
    map_row, col = cells // m, cells % m  # map_row = map index * m + row
    row = map_row % m
    new_row, new_col = row + offset[..., 0], col + offset[..., 1]
    if torus:
        new_row, new_col = new_row % m, new_col % m
    target = (map_row - row + new_row) * m + new_col
    if not torus:  # off the map: stay
        target = where((new_row >= 0) & (new_row < m) & (new_col >= 0) & (new_col < m), target, cells)
    return where(free.reshape(-1)[target], target, cells)


def grid_neighbours(x: torch.Tensor, moves: int = 4, torus: bool = False) -> torch.Tensor:
    """``x`` at the cell each move leads to on an obstacle-free map: ``[B, C, m, m]`` -> ``[B, moves, C, m, m]``.

    Entry ``[b, a, c, i, j]`` is ``x[b, c]`` at ``(i, j) + MOVES[a]``. A move off the map stays in
    place (``x`` of the cell itself), or wraps around on a ``torus``: :func:`grid_step`'s rule on a map
    without obstacles, written as shifts of the whole map (the dense form a learned planner's step
    applies to its value map every iteration). Obstacles are not looked at: callers gate the moves they
    block. Device, dtype and autograd follow ``x``.
    """
    if x.dim() != 4:
        raise ValueError(f"grid_neighbours expects [B, C, m, m], got {tuple(x.shape)}")
    offsets = move_offsets(moves)
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
