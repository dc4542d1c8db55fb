"""Agents that act by receding-horizon control: iLQR MPC on observations, from pixels, or on the
true state behind a pixel environment (an expert for demonstrations)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import torch

from ...solvers import NonConvergenceWarning, TrajectorySolution
from ..control.ilqr_controller import ILQRController
from ..control.receding import shift_plan
from ..control.visual import FrameEncoder
from .agent import Agent


class MPCAgent(Agent):
    """Receding-horizon control with an :class:`ILQRController`: plan, apply the first control, repeat.

    Each plan is warm-started with the previous one shifted by a step. ``act(obs)`` takes one
    observation (``[n]`` array) and returns the action (``[1]`` float32 array). A plan that hit the
    controller's iteration cap is still used (its best iterate, as MPC does); such steps are counted
    in ``unconverged_steps`` instead of warning at every step. ``device``: where the plans are solved
    (observations are moved there; actions come back as numpy arrays).
    """

    def __init__(self, controller: ILQRController, warm_start: bool = True, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.controller = controller.to(self.device)
        self.warm_start = warm_start
        self.plan: TrajectorySolution | None = None
        self.steps = 0
        self.unconverged_steps = 0

    def reset(self) -> None:
        self.plan = None

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The first planned controls ``[B, m]`` from observations ``x [B, n]``, warm-started by the
        last plan shifted one step (when its batch matches)."""
        u_init = None
        if self.warm_start and self.plan is not None and self.plan.u.shape[1] == x.shape[0]:
            u_init = shift_plan(self.plan.u.detach())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonConvergenceWarning)
            self.plan = self.controller(x, u_init)
        self.steps += 1
        self.unconverged_steps += int(not bool(self.plan.stats.converged.all()))
        return self.plan.u[0]

    def act(self, obs) -> np.ndarray:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float64, device=self.device).reshape(1, -1)
        return self.forward(x)[0].cpu().numpy().astype(np.float32)

    def planned_states(self) -> np.ndarray | None:
        """``[T, state_dim]``: the current plan in the env's state coordinates (None before ``act``)."""
        if self.plan is None:
            return None
        x = self.plan.x[:, 0].detach()
        return (self.controller.to_state(x) if self.controller.to_state is not None else x).cpu().numpy()

    def draw_on(self, env) -> None:
        """Show the current plan on ``env``'s frames as ghost poses."""
        env.unwrapped.set_plan(self.planned_states())


class PixelMPCAgent(MPCAgent):
    """Receding-horizon iLQR from pixels: ``act(frames)`` encodes the ``[F, H, W]`` frame stack to
    an observation and plans from it (warm-started as :class:`~idplan.agents.MPCAgent`)."""

    def __init__(
        self,
        encoder: FrameEncoder,
        controller: ILQRController,
        warm_start: bool = True,
        device: str | torch.device = "cpu",
    ):
        super().__init__(controller, warm_start, device)
        self.encoder = encoder.to(self.device).eval()

    @torch.no_grad()
    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """The first planned controls ``[B, m]`` from frame stacks ``[B, F, H, W]``."""
        return super().forward(self.encoder(frames).double())

    def act(self, frames) -> np.ndarray:
        frames = torch.as_tensor(np.asarray(frames), device=self.device)[None]
        return self.forward(frames)[0].cpu().numpy().astype(np.float32)


class TrueStateAgent(Agent):
    """An expert on a pixel environment: ``agent`` acts on the true state's observation (privileged
    information, for demonstrations), whatever frames it is shown."""

    def __init__(self, agent: MPCAgent, env: gym.Env):
        self.agent, self.env = agent, env.unwrapped

    def reset(self) -> None:
        self.agent.reset()

    def act(self, frames) -> np.ndarray:
        return self.agent.act(self.env.state_observation())

    def draw_on(self, env) -> None:
        self.agent.draw_on(env)
