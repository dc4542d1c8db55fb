"""Random grid maps, generated for a whole batch at once with numpy.

Two generators, both with a wall border:

- ``"maze"`` (GPPN's generator, used by the community 2D-maze datasets): a depth-first
  backtracker maze on the cells at odd coordinates, then every interior wall cell (pillars
  included) is removed with a per-maze probability drawn from U[0, 1]. The backtracker runs for
  all mazes of the batch in lock step (one numpy step pushes or pops every maze's stack).
- ``"obstacles"`` (VIN's generator): random axis-aligned rectangles, up to ``size // 4`` cells on a
  side, about one rectangle per 20 cells of area.

Every function takes a ``numpy.random.Generator`` and draws from it only.
"""

from __future__ import annotations

import numpy as np

GENERATORS = ("maze", "obstacles")
"""The map generators of :func:`generate_maps`: ``"maze"`` (GPPN's depth-first backtracker maze with
some interior walls removed) and ``"obstacles"`` (VIN's random rectangular obstacles)."""


def generate_maps(n: int, size: int, rng: np.random.Generator, generator: str = "maze") -> np.ndarray:
    """Draw ``n`` maps of ``size x size`` cells.

    Args:
        n: number of maps.
        size: side length (>= 5; odd sizes give classic mazes, an even size leaves a double wall
            on the bottom and right).
        rng: the only source of randomness.
        generator: ``"maze"`` or ``"obstacles"``.

    Returns:
        ``[n, size, size]`` bool, ``True`` on free cells. Every map has at least one free cell.
    """
    if not isinstance(size, (int, np.integer)) or size < 5:
        raise ValueError(f"size must be an int >= 5, got {size!r}")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if generator == "maze":
        return _backtracker_mazes(n, size, rng)
    if generator == "obstacles":
        return _rectangle_obstacles(n, size, rng)
    raise ValueError(f"generator must be one of {GENERATORS}, got {generator!r}")


def _backtracker_mazes(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    rows = cols = (size - 1) // 2  # maze cells sit at (2i+1, 2j+1)
    cells = rows * cols
    free = np.zeros((n, size, size), dtype=bool)
    free[:, 1 : 2 * rows : 2, 1 : 2 * cols : 2] = True
    visited = np.zeros((n, cells), dtype=bool)
    stack = np.zeros((n, cells), dtype=np.int64)
    depth = np.ones(n, dtype=np.int64)
    batch = np.arange(n)
    start = rng.integers(cells, size=n)
    stack[:, 0] = start
    visited[batch, start] = True
    d_row = np.array([-1, 0, 1, 0])
    d_col = np.array([0, -1, 0, 1])
    # every maze pushes each cell once and pops it once: 2 * cells - 1 lock-step iterations
    for _ in range(2 * cells - 1):
        alive = depth > 0
        top = stack[batch, np.maximum(depth - 1, 0)]
        r, c = np.divmod(top, cols)
        nr, nc = r[:, None] + d_row, c[:, None] + d_col  # [n, 4]
        inside = (nr >= 0) & (nr < rows) & (nc >= 0) & (nc < cols)
        nbr = np.where(inside, nr * cols + nc, 0)
        options = inside & ~visited[batch[:, None], nbr]
        score = np.where(options, rng.random((n, 4)), -1.0)
        pick = score.argmax(axis=1)
        push = alive & options.any(axis=1)
        pop = alive & ~push
        if push.any():
            b = batch[push]
            new = nbr[b, pick[push]]
            free[b, 2 * r[push] + 1 + d_row[pick[push]], 2 * c[push] + 1 + d_col[pick[push]]] = True
            visited[b, new] = True
            stack[b, depth[push]] = new
        depth = depth + push - pop
    interior = np.zeros((size, size), dtype=bool)
    interior[1:-1, 1:-1] = True
    removal_rate = rng.random(n)
    remove = interior & ~free & (rng.random((n, size, size)) < removal_rate[:, None, None])
    return free | remove


def _rectangle_obstacles(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    count = max(1, size * size // 20)
    side = max(1, size // 4)
    top = rng.integers(1, size - 1, size=(n, count))
    left = rng.integers(1, size - 1, size=(n, count))
    height = rng.integers(1, side + 1, size=(n, count))
    width = rng.integers(1, side + 1, size=(n, count))
    coord = np.arange(size)
    in_rows = (coord >= top[..., None]) & (coord < (top + height)[..., None])  # [n, count, size]
    in_cols = (coord >= left[..., None]) & (coord < (left + width)[..., None])
    blocked = np.zeros((n, size, size), dtype=bool)
    for k in range(count):  # one rectangle per step keeps memory at [n, size, size]
        blocked |= in_rows[:, k, :, None] & in_cols[:, k, None, :]
    free = np.zeros((n, size, size), dtype=bool)
    free[:, 1:-1, 1:-1] = True
    free &= ~blocked
    # a map buried under rectangles keeps its centre cell, so every map has a free cell
    free[~free.any(axis=(1, 2)), size // 2, size // 2] = True
    return free
