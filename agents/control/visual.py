"""Control from pixels through dILQR (the DiLQR paper's visual pendulum, section 5.3 and appendix A.3).

stacked frames ``[B, F, H, W]`` -> :class:`FrameEncoder` -> observation ``x0 [B, 3]`` (cos, sin,
theta_dot) -> :class:`~idplan.agents.control.ILQRController` (learnable physics, implicit
gradients) -> planned observations ``[T, B, 3]`` -> :class:`FrameDecoder` -> predicted frames
``[T, B, H, W]``, compared with the true future frames. :func:`~.pixel_episodes.collect_episodes` records expert
MPC episodes (true model, with exploration noise) with their frames; the trainers and scores are in
:mod:`idplan.agents.training.visual`; :class:`~idplan.agents.runtime.PixelMPCAgent` acts from the
env's frame stack. This module holds the networks.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from ...solvers import NonConvergenceWarning
from .ilqr_controller import ILQRController


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
