"""idplan.envs: Gymnasium environments (grid maze, MiniWorld visual navigation, arm, pendulum from state
and from pixels, cartpole), their datasets and their dynamics as pure functions.

Importing this package registers the environments, so ``gym.make("idplan/GridMaze-v0")`` works
(or, without importing it first, ``gym.make("idplan.envs:idplan/GridMaze-v0")``). MiniWorld (an
optional extra) is imported only when ``idplan/MiniWorldNav-v0`` builds its first world.

Subpackages: :mod:`.maze` (the grid maze, its one move rule :func:`grid_step`, BFS experts,
datasets, rollouts, the Bellman operator), :mod:`.arm` (the two-link arm on its C-space torus),
:mod:`.miniworld` (visual navigation), :mod:`.control` (pendulum and cart-pole as pure torch
functions); :mod:`.rendering` holds the pygame helpers they share. Their public names are
re-exported here::

    from idplan.envs import GridMazeEnv, generate_splits, grid_step, pendulum
"""

from gymnasium.envs.registration import register, registry

from .arm import *  # noqa: F403
from .arm import __all__ as _arm
from .control import *  # noqa: F403
from .control import __all__ as _control
from .maze import *  # noqa: F403
from .maze import __all__ as _maze
from .miniworld import *  # noqa: F403
from .miniworld import __all__ as _miniworld

_ENVS = {
    "idplan/GridMaze-v0": ("idplan.envs.maze:GridMazeEnv", None),
    "idplan/ArmCSpace-v0": ("idplan.envs.arm:ArmCSpaceEnv", None),
    "idplan/ArmWorkspace-v0": ("idplan.envs.arm:ArmWorkspaceEnv", None),
    "idplan/MiniWorldNav-v0": ("idplan.envs.miniworld:MiniWorldNavEnv", None),
    "idplan/Pendulum-v0": ("idplan.envs.control:PendulumEnv", 200),
    "idplan/PendulumPixels-v0": ("idplan.envs.control:make_pendulum_pixels", 200),
    "idplan/CartPole-v0": ("idplan.envs.control:CartPoleEnv", 200),
}

ENV_IDS = tuple(_ENVS)  # the environments idplan registers

for _env_id, (_entry_point, _max_steps) in _ENVS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_entry_point, max_episode_steps=_max_steps)

__all__ = ["ENV_IDS", *_maze, *_arm, *_miniworld, *_control]
