"""Benchmark of MiniWorld panorama rendering for visual navigation (not a test): a table and a JSON line.

For ``n`` GPPN mazes (15x15 by default), the time to render every cell's four 32x32 views
(``[m, m, 4, 32, 32, 3]``), three ways side by side in one process:

- baseline: a new MiniWorld world per maze (a new OpenGL context, textures and display list each
  time), as a script that makes one env per maze does;
- ``render_panoramas(workers=1)``: one world rebuilt for each maze (``MazeWorld.set_maze``);
- ``render_panoramas(workers=2)``: the same in two spawned processes.

    python benchmarks/miniworld_render.py            # 20 mazes
    python benchmarks/miniworld_render.py --n 50 --size 15

Needs MiniWorld (``pip install "idplan[miniworld]"``); headless through Mesa's EGL with no display.
"""

from __future__ import annotations

import argparse
import os
import time

from idplan.envs import generate_dataset, load_maze_world, render_panoramas
from idplan.envs.records import add_record_argument, emit_result


def fresh_world_per_maze(free, goals) -> float:
    MazeWorld = load_maze_world()
    start = time.perf_counter()
    for maze, goal in zip(free, goals):
        world = MazeWorld(maze, tuple(goal))
        world.panoramas()
        world.close()
    return time.perf_counter() - start


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--size", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    add_record_argument(parser)
    args = parser.parse_args()
    tasks = generate_dataset(args.n, args.size, seed=args.seed, progress=False)
    free, goals = tasks.free, tasks.goals
    views = args.n * args.size * args.size * 4
    render_panoramas(free[:1], goals[:1], progress=False)  # warm up: the first context, textures, imports
    seconds = {
        "new world per maze (baseline)": fresh_world_per_maze(free, goals),
        "render_panoramas, 1 process": timed(render_panoramas, free, goals, progress=False),
        "render_panoramas, 2 processes": timed(render_panoramas, free, goals, workers=2, chunk=5, progress=False),
    }
    baseline = seconds["new world per maze (baseline)"]
    print(f"{args.n} mazes {args.size}x{args.size}, {views} views of 32x32 ({os.cpu_count()} cores)")
    print(f"{'method':<32} {'s / maze':>9} {'ms / view':>10} {'speed-up':>9}")
    for name, total in seconds.items():
        print(f"{name:<32} {total / args.n:>9.3f} {1000 * total / views:>10.3f} {baseline / total:>8.2f}x")
    emit_result(
        {
            "benchmark": "miniworld_render",
            "mazes": args.n,
            "size": args.size,
            "seconds_per_maze": {k: round(v / args.n, 4) for k, v in seconds.items()},
            "speedup_vs_new_world": {k: round(baseline / v, 2) for k, v in seconds.items()},
        },
        args.record,
    )


if __name__ == "__main__":
    main()
