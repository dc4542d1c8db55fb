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

from dataclasses import dataclass

from gymnasium.envs.registration import register, registry

from .arm import *  # noqa: F403
from .arm import __all__ as _arm
from .control import *  # noqa: F403
from .control import __all__ as _control
from .maze import *  # noqa: F403
from .maze import __all__ as _maze
from .miniworld import *  # noqa: F403
from .miniworld import __all__ as _miniworld


@dataclass(frozen=True)
class EnvInfo:
    """What the library knows of one registered environment.

    Attributes:
        entry_point: the Gymnasium entry point.
        max_episode_steps: Gymnasium's time limit (``None``: the env ends its own episodes).
        control_task: the :data:`CONTROL_TASKS` entry a model-based controller plans with.
        size_keyword: the constructor keyword that sets its size (maps, bins, frame pixels).
        starts: the values its ``start`` keyword takes.
    """

    entry_point: str
    max_episode_steps: int | None = None
    control_task: str | None = None
    size_keyword: str | None = None
    starts: tuple[str, ...] = ()


ENVS: dict[str, EnvInfo] = {
    "idplan/GridMaze-v0": EnvInfo("idplan.envs.maze:GridMazeEnv", size_keyword="size"),
    "idplan/ArmCSpace-v0": EnvInfo("idplan.envs.arm:ArmCSpaceEnv", size_keyword="bins"),
    "idplan/ArmWorkspace-v0": EnvInfo("idplan.envs.arm:ArmWorkspaceEnv", size_keyword="bins"),
    "idplan/MiniWorldNav-v0": EnvInfo("idplan.envs.miniworld:MiniWorldNavEnv", size_keyword="size"),
    "idplan/Pendulum-v0": EnvInfo(
        "idplan.envs.control:PendulumEnv", 200, control_task="pendulum", starts=("random", "down")
    ),
    "idplan/PendulumPixels-v0": EnvInfo(
        "idplan.envs.control:make_pendulum_pixels", 200, "pendulum", size_keyword="size", starts=("random", "down")
    ),
    "idplan/CartPole-v0": EnvInfo(
        "idplan.envs.control:CartPoleEnv", 200, control_task="cartpole", starts=("down", "up")
    ),
}
"""What the library knows of each environment it registers, by environment id."""

ENV_IDS = tuple(ENVS)
"""The ids of the environments idplan registers with Gymnasium."""

for _env_id, _info in ENVS.items():
    if _env_id not in registry:
        register(id=_env_id, entry_point=_info.entry_point, max_episode_steps=_info.max_episode_steps)

__all__ = ["ENV_IDS", "ENVS", "EnvInfo", *_maze, *_arm, *_miniworld, *_control]
