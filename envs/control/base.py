"""The shared shape of the continuous-control environments (pendulum, cartpole).

Each task is a set of pure torch functions of a frozen parameter dataclass: ``dynamics(state, action,
params)``, ``observe(state)``, ``cost(observation, action, params)`` and the same dynamics in
observation coordinates, which is what a controller models. :class:`ControlEnv` runs exactly those
functions (float64) in ``step``, so the env and a model-based controller cannot disagree.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .._checks import check_reset_options
from ..rendering import HumanWindow, import_pygame, surface_array


def check_params(params: Any, positive: tuple[str, ...], non_negative: tuple[str, ...]) -> None:
    """Raise ``ValueError`` naming the first field of ``params`` that breaks its sign constraint."""
    for name in positive:
        value = getattr(params, name)
        if not bool(value > 0):
            raise ValueError(f"{type(params).__name__}.{name} must be > 0, got {value}")
    for name in non_negative:
        value = getattr(params, name)
        if not bool(value >= 0):
            raise ValueError(f"{type(params).__name__}.{name} must be >= 0, got {value}")


def params_as_tensors(params: Any, like: torch.Tensor) -> dict[str, torch.Tensor]:
    """The dataclass's fields as tensors of ``like``'s dtype and device (tensors pass through)."""
    return {
        f.name: torch.as_tensor(getattr(params, f.name), dtype=like.dtype, device=like.device) for f in fields(params)
    }


class ControlEnv(gym.Env):
    """Base class: a torch-dynamics environment with bounded scalar actions and pygame rendering.

    Subclasses set ``params`` and ``state_names`` and define :meth:`_initial_state` (a random start),
    :meth:`_draw` and the pure functions ``_dynamics``, ``_observe``, ``_cost`` (static, from their
    module). ``reset(options={"state": ...})`` sets the state exactly; ``options`` that are not a dict
    raise ``TypeError``, an unknown key ``ValueError``.
    """

    metadata = {"render_modes": ["human", "rgb_array"], "render_fps": 20}
    _dynamics: Callable
    _observe: Callable
    _cost: Callable
    state_names: tuple[str, ...]
    action_bound: float
    frame_size = (500, 500)

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self.action_space = gym.spaces.Box(-self.action_bound, self.action_bound, (1,), dtype=np.float32)
        self.state: np.ndarray | None = None
        self.last_action = 0.0
        self._plan: np.ndarray | None = None
        self._pygame = None
        self._window: HumanWindow | None = None

    def _initial_state(self) -> np.ndarray:
        raise NotImplementedError

    def _draw(self, surface, state: np.ndarray, ghost: bool) -> None:
        raise NotImplementedError

    def state_observation(self) -> np.ndarray:
        """The observation vector of the current state (float32), whatever the env shows (frames)."""
        return self._observe(torch.as_tensor(self.state)).numpy().astype(np.float32)

    def observation(self) -> np.ndarray:
        """What the env returns from ``reset`` and ``step``: here :meth:`state_observation`."""
        return self.state_observation()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        options = check_reset_options(options, ("state",))
        if "state" in options:
            state = np.asarray(options["state"], dtype=np.float64)
            if state.shape != (len(self.state_names),) or not np.isfinite(state).all():
                names = ", ".join(self.state_names)
                raise ValueError(f"options['state'] must be a finite ({names}), got {options['state']!r}")
            self.state = state
        else:
            self.state = np.asarray(self._initial_state(), dtype=np.float64)
        self.last_action = 0.0
        self._plan = None
        if self.render_mode == "human":
            self.render()
        return self.observation(), {"state": self.state.copy()}

    def step(self, action):
        if self.state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (1,) or not np.isfinite(action).all():
            raise ValueError(f"action must be one finite number, got {action!r}")
        u = torch.as_tensor(np.clip(action, -self.action_bound, self.action_bound))
        state = torch.as_tensor(self.state)
        reward = -float(self._cost(self._observe(state), u, self.params))
        self.state = self._dynamics(state, u, self.params).numpy()
        self.last_action = float(u[0])
        terminated = self._terminated()
        if self.render_mode == "human":
            self.render()
        return self.observation(), reward, terminated, False, {"state": self.state.copy()}

    def _terminated(self) -> bool:
        return False

    def set_plan(self, states: np.ndarray | None) -> None:
        """Show a controller's planned states (``[H, state_dim]``, in state coordinates) as ghost poses."""
        self._plan = None if states is None else np.asarray(states, dtype=np.float64)

    def render(self):
        """``[H, W, 3]`` uint8 in ``"rgb_array"`` mode; drawn in a window in ``"human"`` mode."""
        if self.render_mode is None:
            gym.logger.warn(
                f'{type(self).__name__}.render() without a render_mode: pass render_mode="rgb_array" or "human"'
            )
            return None
        if self.state is None:
            raise RuntimeError(f"{type(self).__name__}: call reset() before render()")
        pg = self._pygame = self._pygame or import_pygame()
        surface = pg.Surface(self.frame_size)
        surface.fill((250, 250, 247))
        if self._plan is not None:
            for ghost in self._plan:
                self._draw(surface, ghost, ghost=True)
        self._draw(surface, self.state, ghost=False)
        if self.render_mode == "rgb_array":
            return surface_array(surface)
        if self._window is None:
            self._window = HumanWindow(f"idplan {type(self).__name__}", self.metadata["render_fps"])
        self._window.show(surface)
        return None

    def close(self):
        if self._window is not None:
            self._window.close()
            self._window = None

    def __getstate__(self):
        state = self.__dict__.copy()
        state.update(_pygame=None, _window=None)  # pygame objects do not pickle
        return state
