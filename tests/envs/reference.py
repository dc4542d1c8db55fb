"""Reference implementations the tests compare the library against: plain, per-cell, obviously right."""

from collections import deque

import torch


def bfs_distance(free, goal: tuple[int, int], moves, torus: bool = False) -> torch.Tensor:
    """Shortest-path lengths to ``goal`` on one ``[m, m]`` map (inf where unreachable), one cell at a
    time; on a torus, moves wrap around the edges."""
    m = free.shape[0]
    dist = torch.full((m, m), float("inf"), dtype=torch.float64)
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in moves:
            nr, nc = r + dr, c + dc
            if torus:
                nr, nc = nr % m, nc % m
            if 0 <= nr < m and 0 <= nc < m and free[nr, nc] and dist[nr, nc] == float("inf"):
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    return dist
