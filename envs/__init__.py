"""idplan.envs: Gymnasium environments (grid maze, MiniWorld visual navigation, arm, pendulum from state
and from pixels, cartpole).

Importing this package registers the environments, so ``gym.make("idplan/GridMaze-v0")`` works
(or, without importing it first, ``gym.make("idplan.envs:idplan/GridMaze-v0")``). MiniWorld (an
optional extra) is imported only when ``idplan/MiniWorldNav-v0`` builds its first world.
"""

from gymnasium.envs.registration import register, registry

_ENVS = {
    "idplan/GridMaze-v0": ("idplan.envs.grid_maze:GridMazeEnv", None),
    "idplan/ArmCSpace-v0": ("idplan.envs.arm:ArmCSpaceEnv", None),
    "idplan/ArmWorkspace-v0": ("idplan.envs.arm:ArmWorkspaceEnv", None),
    "idplan/MiniWorldNav-v0": ("idplan.envs.miniworld_nav:MiniWorldNavEnv", None),
    "idplan/Pendulum-v0": ("idplan.envs.pendulum:PendulumEnv", 200),
    "idplan/PendulumPixels-v0": ("idplan.envs.pendulum_pixels:make_pendulum_pixels", 200),
    "idplan/CartPole-v0": ("idplan.envs.cartpole:CartPoleEnv", 200),
}

ENV_IDS = tuple(_ENVS)  # the environments idplan registers

for _env_id, (_entry_point, _max_steps) in _ENVS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps)
