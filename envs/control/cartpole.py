"""Cart-pole swing-up with a continuous force: dynamics, observation and cost as pure torch functions.

State ``(x, x_dot, theta, theta_dot)`` with theta 0 upright (the classic Barto-Sutton-Anderson
equations, as in Gymnasium and mpc.pytorch); observation ``(x, x_dot, cos theta, sin theta, theta_dot)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .base import ControlEnv, check_params, params_as_tensors


@dataclass(frozen=True)
class CartPoleParams:
    """Physical and cost parameters (defaults: mpc.pytorch's cartpole; fields may be tensors to learn).

    Attributes:
        gravity: m/s^2 (9.8). cart_mass, pole_mass: kg (1.0, 0.1). pole_length: m, half the pole's
            length as in Gymnasium (0.5). dt: s (0.05). max_force: N (20).
        track_limit: the episode terminates when ``|x|`` exceeds it (3 m).
        weights: cost weights on ``(x, x_dot, cos theta - 1, sin theta, theta_dot)``
            (0.1, 0.1, 1, 1, 0.1, mpc.pytorch's goal weights) and ``force_weight`` on ``u^2`` (1e-4).

    The DIL paper's setting is :meth:`dil_preset`.
    """

    gravity: float = 9.8
    cart_mass: float = 1.0
    pole_mass: float = 0.1
    pole_length: float = 0.5
    dt: float = 0.05
    max_force: float = 20.0
    track_limit: float = 3.0
    position_weight: float = 0.1
    velocity_weight: float = 0.1
    angle_weight: float = 1.0
    angular_velocity_weight: float = 0.1
    force_weight: float = 1e-4

    def __post_init__(self):
        check_params(
            self,
            positive=("cart_mass", "pole_mass", "pole_length", "dt", "max_force", "track_limit"),
            non_negative=(
                "gravity",
                "position_weight",
                "velocity_weight",
                "angle_weight",
                "angular_velocity_weight",
                "force_weight",
            ),
        )

    @classmethod
    def dil_preset(cls) -> CartPoleParams:
        """The DIL paper's cart-pole: 0.6 m pole, 0.5 kg cart, 0.5 kg pole, dt 0.1 s."""
        return cls(cart_mass=0.5, pole_mass=0.5, pole_length=0.3, dt=0.1)


def dynamics(state: torch.Tensor, force: torch.Tensor, params: CartPoleParams) -> torch.Tensor:
    """One semi-implicit Euler step: ``state [..., 4]``, ``force [..., 1]`` -> ``[..., 4]``."""
    p = params_as_tensors(params, state)
    x, x_dot, theta, theta_dot = state.unbind(-1)
    sin, cos = torch.sin(theta), torch.cos(theta)
    total = p["cart_mass"] + p["pole_mass"]
    pole_moment = p["pole_mass"] * p["pole_length"]
    temp = (force[..., 0] + pole_moment * theta_dot**2 * sin) / total
    theta_acc = (p["gravity"] * sin - cos * temp) / (p["pole_length"] * (4.0 / 3.0 - p["pole_mass"] * cos**2 / total))
    x_acc = temp - pole_moment * theta_acc * cos / total
    x_dot = x_dot + p["dt"] * x_acc
    theta_dot = theta_dot + p["dt"] * theta_acc
    return torch.stack([x + p["dt"] * x_dot, x_dot, theta + p["dt"] * theta_dot, theta_dot], -1)


def observe(state: torch.Tensor) -> torch.Tensor:
    """``(x, x_dot, theta, theta_dot) -> (x, x_dot, cos theta, sin theta, theta_dot)``."""
    x, x_dot, theta, theta_dot = state.unbind(-1)
    return torch.stack([x, x_dot, torch.cos(theta), torch.sin(theta), theta_dot], -1)


def state_from_observation(obs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`observe` (theta in ``(-pi, pi]``)."""
    return torch.stack([obs[..., 0], obs[..., 1], torch.atan2(obs[..., 3], obs[..., 2]), obs[..., 4]], -1)


def observation_dynamics(obs: torch.Tensor, force: torch.Tensor, params: CartPoleParams) -> torch.Tensor:
    """:func:`dynamics` in observation coordinates, ``[..., 5] -> [..., 5]``: the controller's model."""
    return observe(dynamics(state_from_observation(obs), force, params))


def cost(obs: torch.Tensor, force: torch.Tensor, params: CartPoleParams) -> torch.Tensor:
    """Stage cost ``[...]`` (the env's reward is its negative); zero upright at rest at ``x = 0``."""
    p = params_as_tensors(params, obs)
    return (
        p["position_weight"] * obs[..., 0] ** 2
        + p["velocity_weight"] * obs[..., 1] ** 2
        + p["angle_weight"] * ((obs[..., 2] - 1) ** 2 + obs[..., 3] ** 2)
        + p["angular_velocity_weight"] * obs[..., 4] ** 2
        + p["force_weight"] * force[..., 0] ** 2
    )


def tip_cost(obs: torch.Tensor, params: CartPoleParams, width: float = 0.25) -> torch.Tensor:
    """Saturating swing-up cost ``[...]`` in ``[0, 1)``: ``1 - exp(-d^2 / (2 width^2))`` with ``d`` the
    distance of the pole's tip to its upright position above ``x = 0`` (PILCO's cart-pole cost, the
    task of Gal et al. 2016 that the DIL paper replicates; ``width`` 0.25 m). ``obs [..., 5]``.
    Bounded, so a diverging episode costs at most one per step."""
    if width <= 0:
        raise ValueError(f"width must be positive, got {width}")
    length = 2 * params_as_tensors(params, obs)["pole_length"]
    x, cos, sin = obs[..., 0], obs[..., 2], obs[..., 3]
    squared_distance = (x + length * sin) ** 2 + (length * (cos - 1)) ** 2
    cost = 1 - torch.exp(-squared_distance / (2 * width**2))
    return torch.where(torch.isnan(cost), torch.ones_like(cost), cost)


class CartPoleEnv(ControlEnv):
    """## Description
    Swing the pole of a cart-pole up from hanging and balance it, pushing the cart with a bounded
    continuous force (the classic equations as differentiable torch functions of :class:`CartPoleParams`).

    ## Action Space
    ``Box(-max_force, max_force, (1,), float32)``; out-of-range actions are clipped.

    ## Observation Space
    ``Box(5,)`` float32: ``(x, x_dot, cos theta, sin theta, theta_dot)``; theta is 0 upright.

    ## Rewards
    ``-cost(obs, u)`` of the observation before the step (see :func:`cost`).

    ## Starting State
    ``start="down"`` (default): hanging, theta = pi plus uniform noise of 0.1 rad, other entries
    uniform in ``[-0.05, 0.05]``; ``start="up"``: all four uniform in ``[-0.05, 0.05]`` (balancing).
    ``reset(options={"state": (x, x_dot, theta, theta_dot)})`` sets it exactly.

    ## Episode End
    Terminates when ``|x| > track_limit``; truncated after 200 steps by the registered ``TimeLimit``.

    ## Arguments
    ``gym.make("idplan/CartPole-v0", params=CartPoleParams.dil_preset(), start="down", render_mode=...)``.

    ## Version History
    - v0: initial version.
    """

    _dynamics = staticmethod(dynamics)
    _observe = staticmethod(observe)
    _cost = staticmethod(cost)
    state_names = ("x", "x_dot", "theta", "theta_dot")

    def __init__(self, params: CartPoleParams | None = None, start: str = "down", render_mode: str | None = None):
        self.params = params if params is not None else CartPoleParams()
        if not isinstance(self.params, CartPoleParams):
            raise ValueError(f"params must be a CartPoleParams, got {type(self.params).__name__}")
        if start not in ("down", "up"):
            raise ValueError(f"start must be 'down' or 'up', got {start!r}")
        self.start = start
        self.action_bound = float(self.params.max_force)
        super().__init__(render_mode)
        high = np.array([np.inf, np.inf, 1, 1, np.inf], dtype=np.float32)
        self.observation_space = gym.spaces.Box(-high, high, dtype=np.float32)

    def _initial_state(self) -> np.ndarray:
        state = self.np_random.uniform(-0.05, 0.05, size=4)
        if self.start == "down":
            state[2] = math.pi + self.np_random.uniform(-0.1, 0.1)
        return state

    def _terminated(self) -> bool:
        return bool(abs(self.state[0]) > self.params.track_limit)

    def _draw(self, surface, state: np.ndarray, ghost: bool) -> None:
        pg = self._pygame
        w, h = self.frame_size
        limit = float(self.params.track_limit)
        scale = 0.47 * w / limit
        ground = 0.6 * h
        cart = np.array([w / 2 + scale * state[0], ground])
        tip = cart + 2 * float(self.params.pole_length) * scale * np.array([np.sin(state[2]), -np.cos(state[2])])
        if not ghost:
            pg.draw.line(surface, (90, 90, 90), (w / 2 - scale * limit, ground), (w / 2 + scale * limit, ground), 2)
        cart_colour, pole_colour = ((200, 205, 215), (190, 200, 225)) if ghost else ((60, 60, 70), (200, 130, 60))
        box = pg.Rect(0, 0, int(0.5 * scale), int(0.25 * scale))
        box.center = cart.astype(int)
        pg.draw.rect(surface, cart_colour, box, 0 if not ghost else 2)
        pg.draw.line(surface, pole_colour, cart, tip, 4 if ghost else 9)
        if not ghost:
            pg.draw.circle(surface, (30, 30, 30), cart.astype(int), 5)
