"""Play one GridMaze episode with the BFS expert (or a random policy) and write it as a GIF.

    python examples/grid_maze_episode.py                        # expert on a 27x27 maze
    python examples/grid_maze_episode.py --policy random --size 15 --out runs/random.gif
    python examples/grid_maze_episode.py --overlay              # draw the expert's values and arrows

Needs the render extra: ``pip install -e ".[render]"``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np

import idplan.envs  # noqa: F401  (registers idplan/GridMaze-v0)
from idplan.agents.runtime.gif import write_gif
from idplan.envs import optimal_actions, pick_action
from idplan.envs.records import add_record_argument, emit_result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=27)
    parser.add_argument("--generator", choices=["maze", "obstacles"], default="maze")
    parser.add_argument("--moves", type=int, choices=[4, 8], default=4)
    parser.add_argument("--policy", choices=["expert", "random"], default="expert")
    parser.add_argument("--overlay", action="store_true", help="draw the expert's value map and policy arrows")
    parser.add_argument("--max-steps", type=int, default=200, help="frames to record at most")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/grid_maze_episode.gif"))
    add_record_argument(parser)
    args = parser.parse_args(argv)
    try:
        import imageio  # noqa: F401  (write_gif's writer)
    except ImportError as error:
        raise SystemExit('imageio is not installed: pip install "idplan[render]"') from error

    env = gym.make(
        "idplan/GridMaze-v0", size=args.size, generator=args.generator, moves=args.moves, render_mode="rgb_array"
    )
    maze = env.unwrapped
    rng = np.random.default_rng(args.seed)
    obs, info = env.reset(seed=args.seed)
    optimal = optimal_actions(maze.free[None], maze.distance[None], args.moves)
    expert = pick_action(optimal, rng)[0]
    if args.overlay:
        maze.set_overlay(**maze.true_overlay(), policy=expert)
    title = f"{args.policy}  idplan/GridMaze-v0"
    frames, titles = [env.render()], [f"step 0  {title}"]
    ret, steps, terminated, truncated = 0.0, 0, False, False
    while not (terminated or truncated) and steps < args.max_steps:
        row, col = maze.position
        action = int(expert[row, col]) if args.policy == "expert" else int(rng.integers(args.moves))
        obs, reward, terminated, truncated, info = env.step(action)
        ret += reward
        steps += 1
        frames.append(env.render())
        titles.append(f"step {steps}  {title}")
    env.close()
    write_gif(args.out, frames, titles, maze.metadata["render_fps"])
    summary = {
        "policy": args.policy,
        "size": args.size,
        "steps": steps,
        "optimal_length": info["optimal_length"],
        "success": bool(info["is_success"]),
        "return": round(ret, 4),
        "gif": str(args.out),
    }
    print(f"wrote {len(frames)} frames to {args.out}")
    emit_result(summary, args.record, script=__file__, argv=argv)


if __name__ == "__main__":
    main()
