"""The workspace mapper of the arm task.

:class:`WorkspaceMapper` maps the ``[B, 1, 96, 96]`` top-down obstacle image to ``[B, 1, bins, bins]``
C-space occupancy logits (a U-Net with residual blocks, as in the implicit differentiable planning
paper's Fig. 8). Training follows the paper (appendix D.1), with :mod:`idplan.agents.training.mapped`:
``train_mapper`` pre-trains the mapper by binary cross-entropy against the true C-space, the planner
is pre-trained on true C-spaces (:func:`idplan.agents.training.train_planner`), then
``train_end_to_end`` trains both together with the mapper's output as the planner's map; at test
time (``evaluate_mapped``) the pair sees only the workspace, and is scored by rollouts on the true
C-space.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a skip connection (1x1 where channels change)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
        )
        self.skip = nn.Identity() if c_in == c_out else nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.skip(x))


class WorkspaceMapper(nn.Module):
    """Workspace image ``[B, 1, P, P]`` -> C-space occupancy logits ``[B, 1, bins, bins]``.

    A residual U-Net: four encoder stages (``P`` -> ``P/16``), a fully connected mixing layer at the
    bottleneck (squeezed to 32 channels; a C-space cell depends on obstacles anywhere along the
    arm, so the map is non-local), three decoder stages with skip connections back to ``P/2``, then resampling to
    ``bins x bins`` and two circularly padded convolutions (the C-space is a torus).

    Args:
        bins: bins per joint of the output map.
        pixels: side ``P`` of the input image (divisible by 16; default 96).
        width: channels of the first stage (doubled at each stage down).
    """

    def __init__(self, bins: int = 18, pixels: int = 96, width: int = 16):
        super().__init__()
        if pixels % 16:
            raise ValueError(f"pixels must be divisible by 16, got {pixels}")
        self.bins, self.pixels = bins, pixels
        c = [width * 2**k for k in range(4)]
        self.down = nn.ModuleList([ResidualBlock(1, c[0])] + [ResidualBlock(c[k - 1], c[k]) for k in range(1, 4)])
        side = pixels // 16
        squeeze = 32  # channels of the fully connected mixing
        self.mix = nn.Sequential(
            nn.Conv2d(c[3], squeeze, 1),
            nn.Flatten(),
            nn.Linear(squeeze * side * side, squeeze * side * side),
            nn.ReLU(inplace=True),
            nn.Unflatten(1, (squeeze, side, side)),
            nn.Conv2d(squeeze, c[3], 1),
        )
        self.up = nn.ModuleList([ResidualBlock(c[k] + c[k - 1], c[k - 1]) for k in (3, 2, 1)])
        self.head = nn.Sequential(
            nn.Conv2d(c[0], c[0], 3, padding=1, padding_mode="circular"),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[0], 1, 3, padding=1, padding_mode="circular"),
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if image.dim() != 4 or image.shape[1:] != (1, self.pixels, self.pixels):
            raise ValueError(f"WorkspaceMapper expects [B, 1, {self.pixels}, {self.pixels}], got {tuple(image.shape)}")
        skips, x = [], image
        for block in self.down:
            x = F.max_pool2d(block(x), 2)  # P/2, P/4, P/8, P/16
            skips.append(x)
        x = F.relu(self.mix(x) + x)
        for block, skip in zip(self.up, reversed(skips[:-1])):
            x = block(torch.cat([F.interpolate(x, size=skip.shape[-2:], mode="nearest"), skip], 1))
        x = F.interpolate(x, size=(self.bins, self.bins), mode="bilinear", align_corners=False)
        return self.head(x)
