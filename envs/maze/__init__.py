"""Grid mazes: the environment (``idplan/GridMaze-v0``), the one move rule (:func:`grid_step`), map
generation, BFS experts, datasets, batched greedy rollouts, the exact Bellman operator and rendering.

    from idplan.envs.maze import generate_splits, grid_bellman_operator, greedy_rollouts
"""

from .bellman import grid_bellman_operator
from .dataset import (
    IGNORE_INDEX,
    SPLITS,
    MazeDataset,
    MazeTorchDataset,
    concatenate,
    generate_dataset,
    generate_splits,
    label_tasks,
    load_maze_file,
    load_maze_shards,
    map_digests,
    random_free_cells,
    read_community,
    save_maze_shards,
    task_nbytes,
    write_community,
)
from .env import BUMP_PENALTY, GOAL_REWARD, STEP_REWARD, GridMazeEnv
from .generation import GENERATORS, generate_maps
from .rendering import MazeRenderer
from .rollouts import greedy_rollouts
from .shortest_paths import UNREACHABLE, bfs_distances, check_maps, optimal_actions, pick_action
from .transition import MOVES_4, MOVES_8, grid_neighbours, grid_step, move_offsets

__all__ = [
    # the environment
    "GridMazeEnv",
    "STEP_REWARD",
    "BUMP_PENALTY",
    "GOAL_REWARD",
    # the move rule
    "MOVES_4",
    "MOVES_8",
    "move_offsets",
    "grid_step",
    "grid_neighbours",
    # maps, shortest paths, rollouts, the Bellman operator
    "GENERATORS",
    "generate_maps",
    "check_maps",
    "UNREACHABLE",
    "bfs_distances",
    "optimal_actions",
    "pick_action",
    "greedy_rollouts",
    "grid_bellman_operator",
    # datasets
    "MazeDataset",
    "MazeTorchDataset",
    "SPLITS",
    "IGNORE_INDEX",
    "generate_dataset",
    "generate_splits",
    "label_tasks",
    "concatenate",
    "map_digests",
    "random_free_cells",
    "task_nbytes",
    "read_community",
    "write_community",
    "load_maze_file",
    "save_maze_shards",
    "load_maze_shards",
    # rendering
    "MazeRenderer",
]
