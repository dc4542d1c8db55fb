"""The workspace mapper of the arm task, and planning on the map it predicts.

:class:`WorkspaceMapper` maps the ``[B, 1, 96, 96]`` top-down obstacle image to ``[B, 1, bins, bins]``
C-space occupancy logits (a U-Net with residual blocks, as in the implicit differentiable planning
paper's Fig. 8). :class:`MappedPlanner` feeds its occupancy and the goal map to a planner.
Training follows the paper (appendix D.1): :func:`train_mapper` pre-trains the mapper by binary
cross-entropy against the true C-space, the planner is pre-trained on true C-spaces
(:func:`idplan.agents.imitation.train_planner`), then :func:`train_end_to_end` trains both together
with the mapper's output as the planner's map; at test time (:func:`evaluate_mapped`) the pair sees
only the workspace, and is scored by rollouts on the true C-space.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..envs.arm_dataset import ArmDataset, ArmTorchDataset
from .evaluation import rollout_metrics
from .imitation import TrainConfig, imitation_loss
from .planner import Planner, PlanOutput


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


class MappedPlanner(nn.Module):
    """A planner on the C-space map a :class:`WorkspaceMapper` predicts from the workspace image."""

    def __init__(self, mapper: WorkspaceMapper, planner: Planner):
        super().__init__()
        self.mapper, self.planner = mapper, planner

    def forward(self, workspace: torch.Tensor, goal: torch.Tensor) -> tuple[PlanOutput, torch.Tensor]:
        """``workspace [B, 1, P, P]``, ``goal [B, 1, bins, bins]`` -> (the plan, occupancy logits ``[B, 1, bins, bins]``)."""
        occupancy = self.mapper(workspace)
        return self.planner(torch.cat([torch.sigmoid(occupancy), goal], 1)), occupancy


def occupancy_loss(logits: torch.Tensor, obstacle_map: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of occupancy logits ``[B, 1, m, m]`` against the true map ``[B, 1, m, m]`` (1 = collision)."""
    return F.binary_cross_entropy_with_logits(logits, obstacle_map)


def _batches(data: ArmDataset, config: TrainConfig):
    generator = torch.Generator().manual_seed(config.seed)
    return torch.utils.data.DataLoader(
        ArmTorchDataset(data), batch_size=config.batch_size, shuffle=True, generator=generator
    )


def train_mapper(
    mapper: WorkspaceMapper,
    train: ArmDataset,
    valid: ArmDataset | None = None,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
) -> list[dict[str, float]]:
    """Pre-train the mapper by BCE against the true C-space maps; one metrics dict per epoch
    (``bce``; with ``valid``: ``valid_bce`` and ``valid_cell_accuracy``, thresholded at 0.5)."""
    device = torch.device(config.device)
    mapper.to(device)
    optimizer = torch.optim.Adam(mapper.parameters(), lr=config.lr)
    history = []
    for epoch in range(1, config.epochs + 1):
        mapper.train()
        start, total, count = time.perf_counter(), 0.0, 0
        for batch in tqdm(
            _batches(train, config), desc=f"mapper {epoch}/{config.epochs}", leave=False, disable=not progress
        ):
            loss = occupancy_loss(mapper(batch["workspace"].to(device)), batch["input"][:, :1].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, count = total + float(loss.detach()) * len(batch["input"]), count + len(batch["input"])
        row = {"epoch": epoch, "bce": total / count, "train_seconds": time.perf_counter() - start}
        if valid is not None:
            row.update({f"valid_{k}": v for k, v in mapper_metrics(mapper, valid, device=device).items()})
        history.append(row)
        if progress:
            tqdm.write(f"mapper epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch"))
    return history


@torch.no_grad()
def mapper_metrics(mapper: WorkspaceMapper, data: ArmDataset, batch_size: int = 128, device="cpu") -> dict[str, float]:
    """Mean BCE and per-cell accuracy (threshold 0.5) of the mapper on ``data``."""
    mapper.eval()
    view = ArmTorchDataset(data)
    bce, correct = 0.0, 0.0
    for start in range(0, len(view), batch_size):
        logits = mapper(view.workspace[start : start + batch_size].to(device))
        target = view.inputs[start : start + batch_size, :1].to(device)
        bce += float(F.binary_cross_entropy_with_logits(logits, target, reduction="sum"))
        correct += float(((logits > 0).float() == target).sum())
    cells = len(view) * data.bins**2
    return {"bce": bce / cells, "cell_accuracy": correct / cells}


def train_end_to_end(
    model: MappedPlanner,
    train: ArmDataset,
    valid: ArmDataset | None = None,
    config: TrainConfig = TrainConfig(),
    map_weight: float = 0.0,
    progress: bool = True,
) -> list[dict[str, float]]:
    """Train mapper and planner together from the imitation loss on the predicted map (plus
    ``map_weight`` times the mapper's BCE, an optional auxiliary loss). RMSprop, gradient
    clipping as :func:`~idplan.agents.imitation.train_planner`; a step with a non-finite loss or a
    diverged fixed point is skipped and counted."""
    device = torch.device(config.device)
    model.to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=config.lr)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        start, sums, batches, skipped = time.perf_counter(), {"loss": 0.0, "bce": 0.0}, 0, 0
        for batch in tqdm(
            _batches(train, config), desc=f"end to end {epoch}/{config.epochs}", leave=False, disable=not progress
        ):
            out, occupancy = model(batch["workspace"].to(device), batch["goal"].to(device))
            imitation = imitation_loss(out.logits, batch["action"].to(device))
            bce = occupancy_loss(occupancy, batch["input"][:, :1].to(device))
            loss = imitation + map_weight * bce
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            if (
                out.stats.get("forward_failed", 0.0) > 0
                or not math.isfinite(float(loss.detach()))
                or not bool(grad_norm.isfinite())
            ):
                skipped += 1
            else:
                optimizer.step()
            sums["loss"] += float(imitation.detach())
            sums["bce"] += float(bce.detach())
            batches += 1
        row = {"epoch": epoch, **{k: v / batches for k, v in sums.items()}, "skipped_steps": skipped}
        row["train_seconds"] = time.perf_counter() - start
        if valid is not None:
            row.update({f"valid_{k}": v for k, v in evaluate_mapped(model, valid, device=device).items()})
        history.append(row)
        if progress:
            tqdm.write(
                f"end-to-end epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch")
            )
    return history


@torch.no_grad()
def evaluate_mapped(model: MappedPlanner, data: ArmDataset, batch_size: int = 64, device="cpu") -> dict[str, float]:
    """Rollout metrics (:func:`~idplan.agents.evaluation.rollout_metrics`) on the *true* C-space of
    the greedy policy the pair computes from the workspace alone, with the mapper's cell accuracy."""
    model.eval()
    view = ArmTorchDataset(data)
    actions = []
    for start in range(0, len(view), batch_size):
        workspace = view.workspace[start : start + batch_size].to(device)
        goal = view.inputs[start : start + batch_size, 1:].to(device)
        out, _ = model(workspace, goal)
        actions.append(out.logits.argmax(1).cpu().numpy())
    metrics = rollout_metrics(data.tasks, np.concatenate(actions))
    metrics["map_cell_accuracy"] = mapper_metrics(model.mapper, data, device=device)["cell_accuracy"]
    return metrics
