"""Torque-limited pendulum swing-up: dynamics, observation and cost as pure torch functions.

The angle ``theta`` is 0 upright and grows counter-clockwise; the state is ``(theta, theta_dot)`` and the
observation ``(cos theta, sin theta, theta_dot)``. The same functions drive :class:`PendulumEnv` and
the controllers' models (:func:`observation_dynamics` is the model in observation coordinates).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from .base import ControlEnv, check_params, params_as_tensors


@dataclass(frozen=True)
class PendulumParams:
    """Physical and cost parameters (defaults: mpc.pytorch's pendulum; fields may be tensors to learn).

    Attributes:
        gravity: m/s^2 (10). mass: kg (1). length: m (1; a uniform rod, inertia ``m l^2 / 3``).
        dt: s per step (0.05). max_torque: N m (2). damping: 1/s, ``theta_ddot -= damping * theta_dot`` (0).
        angle_weight, velocity_weight, torque_weight: cost
            ``w_a ((cos - 1)^2 + sin^2) + w_v theta_dot^2 + w_u u^2`` (1, 0.1, 0.001).
    """

    gravity: float = 10.0
    mass: float = 1.0
    length: float = 1.0
    dt: float = 0.05
    max_torque: float = 2.0
    damping: float = 0.0
    angle_weight: float = 1.0
    velocity_weight: float = 0.1
    torque_weight: float = 0.001

    def __post_init__(self):
        check_params(
            self,
            positive=("mass", "length", "dt", "max_torque"),
            non_negative=("gravity", "damping", "angle_weight", "velocity_weight", "torque_weight"),
        )


def dynamics(state: torch.Tensor, torque: torch.Tensor, params: PendulumParams) -> torch.Tensor:
    """One semi-implicit Euler step: ``state [..., 2]`` (theta, theta_dot), ``torque [..., 1]`` -> ``[..., 2]``.

    ``theta_ddot = 3 g / (2 l) sin theta + 3 u / (m l^2) - damping theta_dot``; no clipping, so it is
    smooth in the state, the torque and the parameters.
    """
    p = params_as_tensors(params, state)
    theta, theta_dot = state[..., 0], state[..., 1]
    accel = 1.5 * p["gravity"] / p["length"] * torch.sin(theta) + 3.0 * torque[..., 0] / (p["mass"] * p["length"] ** 2)
    theta_dot = theta_dot + p["dt"] * (accel - p["damping"] * theta_dot)
    return torch.stack([theta + p["dt"] * theta_dot, theta_dot], -1)


def observe(state: torch.Tensor) -> torch.Tensor:
    """``(theta, theta_dot) -> (cos theta, sin theta, theta_dot)``."""
    return torch.stack([torch.cos(state[..., 0]), torch.sin(state[..., 0]), state[..., 1]], -1)


def state_from_observation(obs: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`observe` (theta in ``(-pi, pi]``)."""
    return torch.stack([torch.atan2(obs[..., 1], obs[..., 0]), obs[..., 2]], -1)


def observation_dynamics(obs: torch.Tensor, torque: torch.Tensor, params: PendulumParams) -> torch.Tensor:
    """:func:`dynamics` in observation coordinates, ``[..., 3] -> [..., 3]``: the controller's model."""
    return observe(dynamics(state_from_observation(obs), torque, params))


def cost(obs: torch.Tensor, torque: torch.Tensor, params: PendulumParams) -> torch.Tensor:
    """Stage cost ``[...]`` of observation ``[..., 3]`` and torque ``[..., 1]`` (the env's reward is its negative)."""
    p = params_as_tensors(params, obs)
    angle = (obs[..., 0] - 1) ** 2 + obs[..., 1] ** 2
    return (
        p["angle_weight"] * angle + p["velocity_weight"] * obs[..., 2] ** 2 + p["torque_weight"] * torque[..., 0] ** 2
    )


class PendulumEnv(ControlEnv):
    """## Description
    Swing a torque-limited pendulum up and balance it upright (Gymnasium's pendulum, written as
    differentiable torch functions of :class:`PendulumParams`).

    ## Action Space
    ``Box(-max_torque, max_torque, (1,), float32)``: the torque; out-of-range actions are clipped.

    ## Observation Space
    ``Box(3,)`` float32: ``(cos theta, sin theta, theta_dot)``; theta is 0 upright.

    ## Rewards
    ``-cost(obs, u)`` of the observation before the step (see :func:`cost`); 0 is upright and at rest.

    ## Starting State
    ``start="random"`` (default): theta uniform in ``[-pi, pi]``, theta_dot uniform in ``[-1, 1]``;
    ``start="down"``: hanging, theta = pi plus uniform noise of 0.1 rad, theta_dot in ``[-0.1, 0.1]``.
    ``reset(options={"state": (theta, theta_dot)})`` sets it exactly.

    ## Episode End
    Never terminates; truncated after 200 steps by the registered ``TimeLimit``.

    ## Arguments
    ``gym.make("idplan/Pendulum-v0", params=PendulumParams(...), start="down", render_mode="rgb_array")``.
    A controller may show its plan with :meth:`set_plan` (ghost poses).

    ## Version History
    - v0: initial version.
    """

    _dynamics = staticmethod(dynamics)
    _observe = staticmethod(observe)
    _cost = staticmethod(cost)
    state_names = ("theta", "theta_dot")

    def __init__(self, params: PendulumParams | None = None, start: str = "random", render_mode: str | None = None):
        self.params = params if params is not None else PendulumParams()
        if not isinstance(self.params, PendulumParams):
            raise ValueError(f"params must be a PendulumParams, got {type(self.params).__name__}")
        if start not in ("random", "down"):
            raise ValueError(f"start must be 'random' or 'down', got {start!r}")
        self.start = start
        self.action_bound = float(self.params.max_torque)
        super().__init__(render_mode)
        self.observation_space = gym.spaces.Box(
            np.array([-1, -1, -np.inf], dtype=np.float32), np.array([1, 1, np.inf], dtype=np.float32), dtype=np.float32
        )

    def _initial_state(self) -> np.ndarray:
        if self.start == "down":
            return np.array([math.pi + self.np_random.uniform(-0.1, 0.1), self.np_random.uniform(-0.1, 0.1)])
        return np.array([self.np_random.uniform(-math.pi, math.pi), self.np_random.uniform(-1.0, 1.0)])

    def _draw(self, surface, state: np.ndarray, ghost: bool) -> None:
        pg = self._pygame
        w, h = self.frame_size
        centre = np.array([w / 2, h / 2])
        scale = 0.4 * min(w, h)
        tip = centre + scale * np.array([-np.sin(state[0]), -np.cos(state[0])])  # 0 up, counter-clockwise
        colour = (190, 200, 225) if ghost else (200, 70, 50)
        pg.draw.line(surface, colour, centre, tip, 6 if ghost else 14)
        pg.draw.circle(surface, colour, tip.astype(int), 6 if ghost else 10)
        if not ghost:
            pg.draw.circle(surface, (40, 40, 40), centre.astype(int), 8)
            # torque indicator: an arc whose length is the applied torque
            radius = int(0.12 * min(w, h))
            extent = math.pi * self.last_action / self.action_bound
            if abs(extent) > 1e-3:
                start, stop = sorted((math.pi / 2, math.pi / 2 + extent))
                box = pg.Rect(centre[0] - radius, centre[1] - radius, 2 * radius, 2 * radius)
                pg.draw.arc(surface, (60, 120, 200), box, start, stop, 4)
