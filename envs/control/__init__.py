"""Continuous control: the pendulum (from state and from pixels) and the cart-pole swing-up.

Each task's dynamics, observation and cost are pure torch functions of a frozen parameter
dataclass in its module (``pendulum.dynamics(state, torque, params)``, ``cartpole.cost(obs, force,
params)``, ...); :class:`ControlEnv` steps exactly those functions, so an env and a model-based
controller cannot disagree::

    from idplan.envs.control import pendulum
    model, cost = pendulum.observation_dynamics, pendulum.cost
"""

from dataclasses import dataclass
from types import ModuleType

from . import cartpole, pendulum
from .base import ControlEnv, check_params, params_as_tensors
from .cartpole import CartPoleEnv, CartPoleParams
from .pendulum import PendulumEnv, PendulumParams
from .pendulum_pixels import PendulumFrameEnv, make_pendulum_pixels, pendulum_frames


@dataclass(frozen=True)
class ControlTask:
    """A control task as a model-based controller sees it: the module of its pure functions
    (``observation_dynamics``, ``cost``, ``state_from_observation``), its parameter dataclass and
    the field of that dataclass that bounds the control."""

    module: ModuleType
    params: type
    bound_field: str


CONTROL_TASKS: dict[str, ControlTask] = {
    "pendulum": ControlTask(pendulum, PendulumParams, "max_torque"),
    "cartpole": ControlTask(cartpole, CartPoleParams, "max_force"),
}
"""The control tasks by name (``"pendulum"``, ``"cartpole"``), as a model-based controller looks them up."""

__all__ = [
    "CONTROL_TASKS",
    "ControlTask",
    "pendulum",
    "cartpole",
    "ControlEnv",
    "check_params",
    "params_as_tensors",
    "PendulumEnv",
    "PendulumParams",
    "CartPoleEnv",
    "CartPoleParams",
    "PendulumFrameEnv",
    "make_pendulum_pixels",
    "pendulum_frames",
]
