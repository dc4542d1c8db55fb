"""Expert episodes on the pendulum from pixels: states, controls and the frames that show them."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ...envs import pendulum, pendulum_frames
from ...envs.progress import progress_bar
from ...solvers import NonConvergenceWarning
from .ilqr_controller import ILQRController
from .receding import shift_plan


@dataclass
class PixelEpisodes:
    """Recorded episodes: ``states [E, L + 1, 2]`` (theta, theta_dot), ``controls [E, L]`` and
    ``frames [E, L + 1, H, W]`` uint8 (frame ``t`` shows state ``t``)."""

    states: np.ndarray
    controls: np.ndarray
    frames: np.ndarray

    def windows(
        self, stack: int, horizon: int, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training samples on ``device``: input stacks ``[N, stack, H, W]`` (frames ``t - stack + 1 .. t``;
        before the episode's start, copies of its first frame, as ``FrameStackObservation`` gives
        after a reset), the true observation at ``t`` ``[N, 3]`` and the true future frames
        ``[N, horizon, H, W]``."""
        length = self.frames.shape[1]
        starts = np.arange(0, length - horizon)
        e, t = np.meshgrid(np.arange(len(self.frames)), starts, indexing="ij")
        e, t = e.ravel(), t.ravel()
        past = self.frames[e[:, None], np.maximum(t[:, None] + np.arange(-stack + 1, 1), 0)]
        future = self.frames[e[:, None], t[:, None] + np.arange(1, horizon + 1)]
        obs = pendulum.observe(torch.from_numpy(self.states[e, t]))
        return torch.from_numpy(past).to(device), obs.to(device), torch.from_numpy(future).to(device)


def collect_episodes(
    episodes: int,
    steps: int,
    size: int = 64,
    horizon: int = 20,
    noise: float = 0.0,
    seed: int = 0,
    progress: bool = True,
) -> PixelEpisodes:
    """Expert episodes on the pendulum (true parameters): iLQR MPC over ``horizon`` steps for all
    episodes at once (one batched solve per time step, warm-started). Half of the episodes start
    hanging (the env's ``start="down"``: theta = pi + U[-0.1, 0.1], theta_dot in [-0.1, 0.1]), the
    others at the env's random starts (theta uniform in [-pi, pi], theta_dot in [-1, 1]). The
    applied torque may be perturbed by Gaussian noise of std ``noise`` (clipped to the bound).
    Frames come from :func:`pendulum_frames`."""
    rng = np.random.default_rng(seed)
    params = pendulum.PendulumParams()
    controller = ILQRController.for_task("pendulum", params, horizon=horizon, max_iter=30)
    hanging = np.arange(episodes) < episodes // 2
    theta = np.where(hanging, np.pi + rng.uniform(-0.1, 0.1, episodes), rng.uniform(-np.pi, np.pi, episodes))
    theta_dot = np.where(hanging, rng.uniform(-0.1, 0.1, episodes), rng.uniform(-1, 1, episodes))
    state = torch.from_numpy(np.stack([theta, theta_dot], 1))
    states, controls = [state], []
    u_init = None
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)
        for _ in progress_bar(range(steps), desc="expert episodes", show=progress):
            plan = controller(pendulum.observe(state), u_init)
            u_init = shift_plan(plan.u)
            noisy = plan.u[0] + noise * torch.from_numpy(rng.standard_normal((episodes, 1)))
            u = noisy.clamp(-params.max_torque, params.max_torque)
            state = pendulum.dynamics(state, u, params)
            states.append(state)
            controls.append(u[:, 0])
    states_np = torch.stack(states, 1).numpy()
    return PixelEpisodes(states_np, torch.stack(controls, 1).numpy(), pendulum_frames(states_np[..., 0], size))
