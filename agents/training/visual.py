"""Training and scoring control from pixels (:class:`~idplan.agents.control.VisualILQR`), on :func:`~.loop.fit`:
:func:`warm_up` supervises encoder and decoder with the true states, :func:`train_visual_controller`
trains encoder and controller parameters on the frame loss alone; :func:`prediction_error`,
:func:`state_error` and :func:`swing_up_success` score the result."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

from ...envs import pendulum
from ...solvers import NonConvergenceWarning
from ..control.ilqr_controller import ILQRController
from ..control.pixel_episodes import PixelEpisodes
from ..control.receding import shift_plan
from ..control.visual import FrameEncoder, VisualILQR
from .loop import StepResult, fit


def module_device(module: torch.nn.Module) -> torch.device:
    """Where ``module``'s parameters live (its batches are built there)."""
    return next(module.parameters()).device


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
    true observations (frame BCE). The controller is not involved. Adam, on :func:`~idplan.agents.training.loop`."""
    stacks, obs, _ = data.windows(model.encoder.frames, 1, module_device(model))
    targets = stacks[:, -1]  # the newest frame shows the observation at t
    parameters = list(model.encoder.parameters()) + list(model.decoder.parameters())
    generator = torch.Generator().manual_seed(seed)

    def batches(epoch: int):
        order = torch.randperm(len(obs), generator=generator, device=generator.device)
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
    dILQR by its adjoint, on :func:`~idplan.agents.training.loop`. Per epoch: the mean frame BCE, the
    learned parameters, the fraction of converged plans and the wall time.

    The learned physics (log-parameters) take ``physics_lr``, the networks the smaller ``lr``: with
    one rate for all, the encoder's velocity absorbed the physics error faster than the physics
    moved. The decoder stays as the warm-up left it by default: trained along, it lets the encoder's
    state drift to any code the pair agrees on (measured: the encoder's state error rose 15-fold
    while the frame error fell), and a controller planning from that code no longer swings up.
    """
    horizon = model.controller.horizon
    stacks, _, future = data.windows(model.encoder.frames, horizon, module_device(model))
    networks = [model.encoder] + ([model.decoder] if train_decoder else [])
    optimizer = torch.optim.Adam(
        [
            {"params": [p for module in networks for p in module.parameters()], "lr": lr},
            {"params": list(model.controller.parameters()), "lr": physics_lr},
        ]
    )
    generator = torch.Generator().manual_seed(seed)

    def batches(epoch: int):
        order = torch.randperm(len(stacks), generator=generator, device=generator.device)
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
    stacks, _, future = data.windows(model.encoder.frames, horizon, module_device(model))
    total = torch.zeros(horizon, dtype=torch.float64, device=stacks.device)
    for start in range(0, len(stacks), batch_size):
        _, _, predicted = model(stacks[start : start + batch_size])
        error = (predicted.transpose(0, 1).double() - future[start : start + batch_size].double() / 255.0) ** 2
        total += error.mean(dim=(2, 3)).sum(0)
    return (total / len(stacks)).cpu().numpy()


@torch.no_grad()
def state_error(encoder: FrameEncoder, data: PixelEpisodes, batch_size: int = 256) -> float:
    """Mean squared error of the encoded observation against the true one over all windows of ``data``."""
    encoder.eval()
    stacks, obs, _ = data.windows(encoder.frames, 1, module_device(encoder))
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
    device = module_device(encoder) if encoder is not None else torch.device("cpu")
    if encoder is not None:
        encoder.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)
        while not done:
            obs = (
                encoder(torch.from_numpy(frames).to(device))
                if encoder is not None
                else pendulum.observe(torch.from_numpy(states))
            )
            plan = controller(obs, u_init)
            u_init = shift_plan(plan.u)
            steps = [env.step(u.cpu().numpy().astype(np.float32)) for env, u in zip(envs, plan.u[0])]
            frames = np.stack([step[0] for step in steps])
            states = np.stack([step[4]["state"] for step in steps])
            totals += [step[1] for step in steps]
            angles.append(np.abs(np.remainder(states[:, 0] + np.pi, 2 * np.pi) - np.pi))
            done = steps[0][3]  # the registered TimeLimit truncates every episode at the same step
    success = np.max(angles[-last:], axis=0) < upright
    return {"success": float(success.mean()), "mean_return": float(totals.mean())}
