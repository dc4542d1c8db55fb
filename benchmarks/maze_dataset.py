"""Benchmark of the maze-dataset pipeline (not a test): prints a table and a final JSON line.

For map sizes 15, 27, 49 and 75: the time to generate ``n`` distinct GPPN mazes with goals and
expert labels (BFS distances, optimal-action sets, one action per cell) through
``generate_dataset``, split into its stages, and, side by side in the same process, a per-cell
baseline that runs a plain Python breadth-first search on each maze (what the papers' code does)
on a subset, as a per-task speed ratio.

    python benchmarks/maze_dataset.py             # 10,000 tasks per size (about a minute)
    python benchmarks/maze_dataset.py --n 1000    # quicker
"""

from __future__ import annotations

import argparse
import os
import time
from collections import deque

import numpy as np

from idplan.envs import MOVES_4, generate_dataset, generate_maps, label_tasks, random_free_cells
from idplan.envs.records import add_record_argument, emit_result


def per_cell_bfs(free: np.ndarray, goal: tuple[int, int]) -> np.ndarray:
    """The baseline: one maze, one cell at a time, then the labels cell by cell."""
    m = free.shape[0]
    dist = np.full((m, m), -1, dtype=np.int32)
    dist[goal] = 0
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in MOVES_4:
            nr, nc = r + dr, c + dc
            if 0 <= nr < m and 0 <= nc < m and free[nr, nc] and dist[nr, nc] < 0:
                dist[nr, nc] = dist[r, c] + 1
                queue.append((nr, nc))
    labels = np.zeros((4, m, m), dtype=bool)
    for r in range(m):
        for c in range(m):
            if dist[r, c] > 0:
                for a, (dr, dc) in enumerate(MOVES_4):
                    if dist[r + dr, c + dc] == dist[r, c] - 1:
                        labels[a, r, c] = True
    return labels


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def run_size(size: int, n: int, baseline_n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    total, data = timed(lambda: generate_dataset(n, size, seed=seed, progress=False))
    assert len(data) == n and len(set(data.digests())) == n
    # stage by stage on the same number of maps (without the uniqueness check)
    t_maps, free = timed(lambda: generate_maps(n, size, rng, "maze"))
    t_goals, goals = timed(lambda: random_free_cells(free, rng))
    t_labels, _ = timed(lambda: label_tasks(free, goals, 4, rng))
    sub = min(baseline_n, n)
    t_base, _ = timed(lambda: [per_cell_bfs(free[i], tuple(goals[i])) for i in range(sub)])
    t_ours_sub, _ = timed(lambda: label_tasks(free[:sub], goals[:sub], 4, rng))
    return {
        "size": size,
        "n": n,
        "pipeline_s": total,
        "tasks_per_s": n / total,
        "maps_s": t_maps,
        "goals_s": t_goals,
        "labels_s": t_labels,
        "baseline_tasks": sub,
        "baseline_labels_s": t_base,
        "ours_labels_same_tasks_s": t_ours_sub,
        "labels_speedup_vs_per_cell_bfs": t_base / t_ours_sub,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="tasks per size")
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 27, 49, 75])
    parser.add_argument("--baseline-n", type=int, default=200, help="tasks for the per-cell BFS baseline")
    parser.add_argument("--seed", type=int, default=0)
    add_record_argument(parser)
    args = parser.parse_args()
    print(f"maze dataset pipeline: {args.n} distinct GPPN mazes per size, 4 moves, {os.cpu_count()} CPUs")
    print(f"{'size':>5} {'total s':>8} {'tasks/s':>9} {'maps s':>7} {'goals s':>8} {'labels s':>9} {'BFS speedup':>12}")
    rows = []
    for size in args.sizes:
        row = run_size(size, args.n, args.baseline_n, args.seed)
        rows.append(row)
        print(
            f"{size:5d} {row['pipeline_s']:8.2f} {row['tasks_per_s']:9.0f} {row['maps_s']:7.2f} "
            f"{row['goals_s']:8.2f} {row['labels_s']:9.2f} {row['labels_speedup_vs_per_cell_bfs']:11.0f}x",
            flush=True,
        )
    emit_result({"maze_dataset": rows, "cpus": os.cpu_count()}, args.record)


if __name__ == "__main__":
    main()
