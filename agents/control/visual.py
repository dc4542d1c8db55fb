"""Control from pixels through dILQR (the DiLQR paper's visual pendulum, section 5.3 and appendix A.3).

stacked frames ``[B, F, H, W]`` -> :class:`FrameEncoder` -> observation ``x0 [B, 3]`` (cos, sin,
theta_dot) -> :class:`~idplan.agents.control.ILQRController` (learnable physics, implicit
gradients) -> planned observations ``[T, B, 3]`` -> :class:`FrameDecoder` -> predicted frames
``[T, B, H, W]``, compared with the true future frames. :func:`collect_episodes` records expert
MPC episodes (true model, with exploration noise) with their frames; :func:`warm_up` supervises
encoder and decoder with the true states (reported separately); :func:`train_visual_controller` trains
encoder, controller parameters and decoder on the frame loss alone;
:class:`~idplan.agents.runtime.PixelMPCAgent` acts from the env's frame stack.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ...envs import pendulum, pendulum_frames
from ...envs.progress import progress_bar
from ...solvers import NonConvergenceWarning
from ..training.fit import StepResult, fit
from .ilqr_controller import ILQRController
from .receding import shift_plan


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True), nn.MaxPool2d(2)
    )


def _up_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)
    )


class FrameEncoder(nn.Module):
    """Stacked frames ``[B, F, H, W]`` (uint8 or float in [0, 1]) -> observation ``[B, 3]``
    ``(cos theta, sin theta, theta_dot)``.

    Convolution, batch norm, ReLU and 2x max pooling per block down to 4x4 (four blocks at 64x64;
    the paper has five at 224x224), then three linear layers. The ``(cos, sin)`` pair is normalised
    onto the unit circle.
    """

    def __init__(self, frames: int = 4, size: int = 64, width: int = 16):
        super().__init__()
        blocks = int(math.log2(size // 4))
        if size < 16 or 4 * 2**blocks != size:
            raise ValueError(f"size must be 4 times a power of two (>= 16), got {size}")
        channels = [frames] + [min(width * 2**k, 128) for k in range(blocks)]
        self.frames, self.size = frames, size
        self.features = nn.Sequential(*[_conv_block(a, b) for a, b in zip(channels, channels[1:])])
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels[-1] * 16, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, 3),
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[1:] != (self.frames, self.size, self.size):
            raise ValueError(
                f"FrameEncoder expects [B, {self.frames}, {self.size}, {self.size}], got {tuple(frames.shape)}"
            )
        x = frames.float() / 255.0 if frames.dtype == torch.uint8 else frames.float()
        out = self.head(self.features(x)).double()
        angle = F.normalize(out[:, :2], dim=1, eps=1e-6)
        return torch.cat([angle, out[:, 2:]], 1)


class FrameDecoder(nn.Module):
    """Observation ``[..., 3]`` -> frame ``[..., H, W]`` in [0, 1]: three linear layers to a 4x4 map,
    then transposed convolutions (batch norm, ReLU) doubling the side up to ``size``, and a sigmoid."""

    def __init__(self, size: int = 64, width: int = 16):
        super().__init__()
        blocks = int(math.log2(size // 4))
        if size < 16 or 4 * 2**blocks != size:
            raise ValueError(f"size must be 4 times a power of two (>= 16), got {size}")
        channels = [min(width * 2**k, 128) for k in reversed(range(blocks))]
        self.size, self.top = size, channels[0]
        self.head = nn.Sequential(
            nn.Linear(3, 64),
            nn.ReLU(inplace=True),
            nn.Linear(64, 256),
            nn.ReLU(inplace=True),
            nn.Linear(256, channels[0] * 16),
        )
        ups = [_up_block(a, b) for a, b in zip(channels, channels[1:])]
        self.up = nn.Sequential(*ups, nn.ConvTranspose2d(channels[-1], 1, 4, stride=2, padding=1))

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        lead = obs.shape[:-1]
        x = self.head(obs.reshape(-1, 3).float()).view(-1, self.top, 4, 4)
        return torch.sigmoid(self.up(x)).view(*lead, self.size, self.size)


class VisualILQR(nn.Module):
    """Encoder -> dILQR -> decoder. ``forward(frames)`` returns the encoded observation ``[B, 3]``,
    the planned observations after it ``[T, B, 3]`` and their decoded frames ``[T, B, H, W]``."""

    def __init__(self, encoder: FrameEncoder, controller: ILQRController, decoder: FrameDecoder):
        super().__init__()
        self.encoder, self.controller, self.decoder = encoder, controller, decoder

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x0 = self.encoder(frames)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NonConvergenceWarning)  # counted in the plan's stats instead
            plan = self.controller(x0)
        params = self.controller.params(like=x0)
        last = self.controller.dynamics(plan.x[-1], plan.u[-1], params)
        future = torch.cat([plan.x[1:], last[None]])  # x_1 .. x_T (plan.x[0] is x0)
        return x0, future, self.decoder(future)


@dataclass
class PixelEpisodes:
    """Recorded episodes: ``states [E, L + 1, 2]`` (theta, theta_dot), ``controls [E, L]`` and
    ``frames [E, L + 1, H, W]`` uint8 (frame ``t`` shows state ``t``)."""

    states: np.ndarray
    controls: np.ndarray
    frames: np.ndarray

    def windows(self, stack: int, horizon: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training samples: input stacks ``[N, stack, H, W]`` (frames ``t - stack + 1 .. t``; before
        the episode's start, copies of its first frame, as ``FrameStackObservation`` gives after a
        reset), the true observation at ``t`` ``[N, 3]`` and the true future frames ``[N, horizon, H, W]``."""
        length = self.frames.shape[1]
        starts = np.arange(0, length - horizon)
        e, t = np.meshgrid(np.arange(len(self.frames)), starts, indexing="ij")
        e, t = e.ravel(), t.ravel()
        past = self.frames[e[:, None], np.maximum(t[:, None] + np.arange(-stack + 1, 1), 0)]
        future = self.frames[e[:, None], t[:, None] + np.arange(1, horizon + 1)]
        obs = pendulum.observe(torch.from_numpy(self.states[e, t]))
        return torch.from_numpy(past), obs, torch.from_numpy(future)


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


def frame_loss(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of predicted frames in [0, 1] against uint8 targets (same shape)."""
    return F.binary_cross_entropy(predicted.float().clamp(1e-6, 1 - 1e-6), target.float() / 255.0)


def warm_up(
    model: VisualILQR,
    data: PixelEpisodes,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
) -> list[dict[str, float]]:
    """State supervision: the encoder regresses the true observation (MSE) and the decoder renders
    true observations (frame BCE). The controller is not involved. Adam, on :func:`~idplan.agents.training.fit`."""
    stacks, obs, _ = data.windows(model.encoder.frames, 1)
    targets = stacks[:, -1]  # the newest frame shows the observation at t
    parameters = list(model.encoder.parameters()) + list(model.decoder.parameters())
    generator = torch.Generator().manual_seed(seed)

    def batches(epoch: int):
        order = torch.randperm(len(obs), generator=generator)
        return [order[start : start + batch_size] for start in range(0, len(obs), batch_size)]

    def step(i) -> StepResult:
        state_mse = F.mse_loss(model.encoder(stacks[i]), obs[i])
        bce = frame_loss(model.decoder(obs[i]), targets[i])
        metrics = {"state_mse": float(state_mse.detach()), "frame_bce": float(bce.detach())}
        return StepResult(state_mse + bce, metrics, weight=len(i))

    optimizer = torch.optim.Adam(parameters, lr=lr)
    return fit(
        model, optimizer, batches, step, epochs=epochs, desc="warm-up", progress=progress, stop_when_diverged=False
    )


def train_visual_controller(
    model: VisualILQR,
    data: PixelEpisodes,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 1e-4,
    physics_lr: float = 1e-2,
    seed: int = 0,
    max_batches: int | None = None,
    train_decoder: bool = False,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train the encoder and the controller's parameters (and, with ``train_decoder``, the decoder)
    on the frame loss of the predicted future (``horizon`` = the controller's), gradients through
    dILQR by its adjoint, on :func:`~idplan.agents.training.fit`. Per epoch: the mean frame BCE, the
    learned parameters, the fraction of converged plans and the wall time.

    The learned physics (log-parameters) take ``physics_lr``, the networks the smaller ``lr``: with
    one rate for all, the encoder's velocity absorbed the physics error faster than the physics
    moved. The decoder stays as the warm-up left it by default: trained along, it lets the encoder's
    state drift to any code the pair agrees on (measured: the encoder's state error rose 15-fold
    while the frame error fell), and a controller planning from that code no longer swings up.
    """
    horizon = model.controller.horizon
    stacks, _, future = data.windows(model.encoder.frames, horizon)
    networks = [model.encoder] + ([model.decoder] if train_decoder else [])
    optimizer = torch.optim.Adam(
        [
            {"params": [p for module in networks for p in module.parameters()], "lr": lr},
            {"params": list(model.controller.parameters()), "lr": physics_lr},
        ]
    )
    generator = torch.Generator().manual_seed(seed)

    def batches(epoch: int):
        order = torch.randperm(len(stacks), generator=generator)
        starts = range(0, len(stacks), batch_size)
        return [order[start : start + batch_size] for start in starts[:max_batches]]

    def train_mode() -> None:
        model.train()
        if not train_decoder:
            model.decoder.eval()  # frozen, batch-norm statistics included

    def step(i) -> StepResult:
        _, _, predicted = model(stacks[i])
        loss = frame_loss(predicted.transpose(0, 1), future[i])
        converged = float(model.controller.last.stats.converged.float().mean())
        return StepResult(loss, {"frame_bce": float(loss.detach()), "plans_converged": converged})

    if not train_decoder:
        model.decoder.requires_grad_(False)
    try:
        return fit(
            model,
            optimizer,
            batches,
            step,
            epochs=epochs,
            grad_clip=10.0,
            evaluate=model.controller.learned,
            train_mode=train_mode,
            desc="end to end",
            progress=progress,
            stop_when_diverged=False,
        )
    finally:
        model.decoder.requires_grad_(True)


@torch.no_grad()
def prediction_error(model: VisualILQR, data: PixelEpisodes, batch_size: int = 64) -> np.ndarray:
    """Mean squared pixel error (frames in [0, 1]) of the predicted frames at each step of the
    horizon: ``[T]``, averaged over all windows of ``data``."""
    model.eval()
    horizon = model.controller.horizon
    stacks, _, future = data.windows(model.encoder.frames, horizon)
    total = torch.zeros(horizon, dtype=torch.float64)
    for start in range(0, len(stacks), batch_size):
        _, _, predicted = model(stacks[start : start + batch_size])
        error = (predicted.transpose(0, 1).double() - future[start : start + batch_size].double() / 255.0) ** 2
        total += error.mean(dim=(2, 3)).sum(0)
    return (total / len(stacks)).numpy()


@torch.no_grad()
def state_error(encoder: FrameEncoder, data: PixelEpisodes, batch_size: int = 256) -> float:
    """Mean squared error of the encoded observation against the true one over all windows of ``data``."""
    encoder.eval()
    stacks, obs, _ = data.windows(encoder.frames, 1)
    total = sum(
        float(((encoder(stacks[i : i + batch_size]) - obs[i : i + batch_size]) ** 2).mean(1).sum())
        for i in range(0, len(stacks), batch_size)
    )
    return total / len(stacks)


@torch.no_grad()
def swing_up_success(
    controller: ILQRController,
    encoder: FrameEncoder | None = None,
    episodes: int = 20,
    seed: int = 0,
    size: int = 64,
    upright: float = 0.3,
    last: int = 20,
) -> dict:
    """Receding-horizon iLQR on ``idplan/PendulumPixels-v0`` from hanging starts, all episodes side
    by side (one batched, warm-started plan per step, as :class:`~idplan.agents.runtime.PixelMPCAgent` plans for one).

    With ``encoder`` the controller plans from the encoded frame stacks; without, from the true
    state (the privileged baseline). An episode succeeds when the pendulum stays within
    ``upright`` rad of vertical for its ``last`` steps. Returns the success rate and mean return.
    """
    envs = [gym.make("idplan/PendulumPixels-v0", start="down", size=size) for _ in range(episodes)]
    resets = [env.reset(seed=seed + e) for e, env in enumerate(envs)]
    frames = np.stack([frame for frame, _ in resets])
    states = np.stack([info["state"] for _, info in resets])
    totals, angles, u_init, done = np.zeros(episodes), [], None, False
    if encoder is not None:
        encoder.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)
        while not done:
            obs = (
                encoder(torch.from_numpy(frames)) if encoder is not None else pendulum.observe(torch.from_numpy(states))
            )
            plan = controller(obs, u_init)
            u_init = shift_plan(plan.u)
            steps = [env.step(u.numpy().astype(np.float32)) for env, u in zip(envs, plan.u[0])]
            frames = np.stack([step[0] for step in steps])
            states = np.stack([step[4]["state"] for step in steps])
            totals += [step[1] for step in steps]
            angles.append(np.abs(np.remainder(states[:, 0] + np.pi, 2 * np.pi) - np.pi))
            done = steps[0][3]  # the registered TimeLimit truncates every episode at the same step
    success = np.max(angles[-last:], axis=0) < upright
    return {"success": float(success.mean()), "mean_return": float(totals.mean())}
