"""Continuous control: the pendulum (from state and from pixels) and the cart-pole swing-up.

Each task's dynamics, observation and cost are pure torch functions of a frozen parameter
dataclass in its module (``pendulum.dynamics(state, torque, params)``, ``cartpole.cost(obs, force,
params)``, ...); :class:`ControlEnv` steps exactly those functions, so an env and a model-based
controller cannot disagree::

    from idplan.envs.control import pendulum
    model, cost = pendulum.observation_dynamics, pendulum.cost
"""

from . import cartpole, pendulum
from .base import ControlEnv, check_params, params_as_tensors
from .cartpole import CartPoleEnv, CartPoleParams
from .pendulum import PendulumEnv, PendulumParams
from .pendulum_pixels import PendulumFrameEnv, make_pendulum_pixels, pendulum_frames

__all__ = [
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
