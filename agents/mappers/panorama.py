"""The visual mapper of visual navigation: panoramas of every cell -> the maze's occupancy map.

As in GPPN and the implicit differentiable planning paper (appendix D.1): each 32x32 RGB view goes
through a small CNN (32 filters 8x8 stride 4, 64 filters 4x4 stride 2, a linear layer to 256); the
four views' embeddings of a cell are concatenated (``[B, 4 * 256, m, m]``: which side a wall is on
matters), and two 3x3 convolutions (64 filters, then 1) predict the occupancy logits from each
cell's and its neighbours' embeddings. Train it with :mod:`idplan.agents.training.mapped` (jointly with a planner,
the planner by its implicit adjoint, with an optional auxiliary map loss).
"""

from __future__ import annotations

import torch
from torch import nn


class PanoramaMapper(nn.Module):
    """Panoramas ``[B, m, m, 4, S, S, 3]`` (uint8, or float in ``[0, 1]``) -> occupancy logits ``[B, 1, m, m]``.

    Args:
        view_size: side ``S`` of each view (32 in the paper; >= 24 for the CNN's strides).
        embedding: size of each view's embedding (256).
        hidden: channels of the first map convolution (64).
    """

    def __init__(self, view_size: int = 32, embedding: int = 256, hidden: int = 64, views: int = 4):
        super().__init__()
        if view_size < 24:
            raise ValueError(f"view_size must be >= 24 for the 8x8/4 and 4x4/2 convolutions, got {view_size}")
        self.view_size, self.views = view_size, views
        convolutions = nn.Sequential(
            nn.Conv2d(3, 32, 8, stride=4),
            nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(inplace=True),
            nn.Flatten(),
        )
        with torch.no_grad():
            features = convolutions(torch.zeros(1, 3, view_size, view_size)).shape[1]
        self.encoder = nn.Sequential(convolutions, nn.Linear(features, embedding), nn.ReLU(inplace=True))
        self.head = nn.Sequential(
            nn.Conv2d(views * embedding, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, 1, 3, padding=1),
        )

    def forward(self, panoramas: torch.Tensor) -> torch.Tensor:
        s, k = self.view_size, self.views
        if panoramas.dim() != 7 or panoramas.shape[3:] != (k, s, s, 3) or panoramas.shape[1] != panoramas.shape[2]:
            raise ValueError(f"PanoramaMapper expects [B, m, m, {k}, {s}, {s}, 3], got {tuple(panoramas.shape)}")
        if panoramas.dtype == torch.uint8:
            panoramas = panoramas.float() / 255.0
        elif not panoramas.is_floating_point():
            raise ValueError(f"panoramas must be uint8 or float, got {panoramas.dtype}")
        b, m = panoramas.shape[:2]
        views = panoramas.reshape(b * m * m * k, s, s, 3).permute(0, 3, 1, 2) - 0.5
        cells = self.encoder(views).reshape(b, m, m, -1).permute(0, 3, 1, 2)  # [B, k * embedding, m, m]
        return self.head(cells)
