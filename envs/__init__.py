"""idplan.envs: Gymnasium environments (grid maze, arm, MiniWorld navigation, pendulum, cartpole).

Importing this package registers the environments, so ``gym.make("idplan/GridMaze-v0")`` works
(or, without importing it first, ``gym.make("idplan.envs:idplan/GridMaze-v0")``).
"""

from gymnasium.envs.registration import register, registry

_ENVS = {
    "idplan/GridMaze-v0": "idplan.envs.grid_maze:GridMazeEnv",
}

for _env_id, _entry_point in _ENVS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point)
