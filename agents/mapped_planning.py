"""Planning on a learned map: a mapper turns observations into an occupancy map, a planner plans on it.

:class:`MappedPlanner` feeds a mapper's occupancy (``sigmoid`` of its logits) and the goal map to a
planner. The mapper is trained by ordinary autograd, the planner by its own gradient (the implicit
adjoint for the implicit planners): :func:`train_mapper` pre-trains a mapper by binary
cross-entropy against the true maps, :func:`train_end_to_end` trains both from the imitation loss on
the predicted map (with an optional auxiliary map loss), and :func:`evaluate_mapped` scores the pair
by rollouts on the *true* map, the pair seeing only the observations.

The functions work on any dataset with ``.tasks`` (a :class:`~idplan.envs.maze.MazeDataset`)
and ``.torch_dataset()`` (a view whose items add ``"observation"``, the mapper's input, and
``"goal"``, and with the stacked ``observations`` and ``inputs`` tensors):
:class:`~idplan.envs.arm.ArmDataset` (workspace images to C-space) and
:class:`~idplan.envs.miniworld.VisualNavDataset` (panoramas to the maze map).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..envs.progress import progress_bar
from .evaluation import rollout_metrics
from .imitation import TrainConfig, imitation_loss
from .planner import Planner, PlanOutput


class MappedPlanner(nn.Module):
    """A planner on the map a mapper predicts from observations.

    Args:
        mapper: observations ``[B, ...]`` -> occupancy logits ``[B, 1, m, m]``.
        planner: a planner on ``[B, 2, m, m]`` inputs (obstacle probability, goal).
    """

    def __init__(self, mapper: nn.Module, planner: Planner):
        super().__init__()
        self.mapper, self.planner = mapper, planner

    def forward(self, observation: torch.Tensor, goal: torch.Tensor) -> tuple[PlanOutput, torch.Tensor]:
        """``observation [B, ...]``, ``goal [B, 1, m, m]`` -> (the plan, occupancy logits ``[B, 1, m, m]``)."""
        occupancy = self.mapper(observation)
        return self.planner(torch.cat([torch.sigmoid(occupancy), goal], 1)), occupancy


def occupancy_loss(logits: torch.Tensor, obstacle_map: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of occupancy logits ``[B, 1, m, m]`` against the true map ``[B, 1, m, m]`` (1 = collision)."""
    return F.binary_cross_entropy_with_logits(logits, obstacle_map)


def _batches(data, config: TrainConfig):
    generator = torch.Generator().manual_seed(config.seed)
    return torch.utils.data.DataLoader(
        data.torch_dataset(), batch_size=config.batch_size, shuffle=True, generator=generator
    )


def train_mapper(
    mapper: nn.Module,
    train,
    valid=None,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
) -> list[dict[str, float]]:
    """Pre-train the mapper by BCE against the true maps; one metrics dict per epoch
    (``bce``; with ``valid``: ``valid_bce`` and ``valid_cell_accuracy``, thresholded at 0.5)."""
    device = torch.device(config.device)
    mapper.to(device)
    optimizer = torch.optim.Adam(mapper.parameters(), lr=config.lr)
    history = []
    for epoch in range(1, config.epochs + 1):
        mapper.train()
        start, total, count = time.perf_counter(), 0.0, 0
        for batch in progress_bar(
            _batches(train, config),
            desc=f"mapper {epoch}/{config.epochs}",
            leave=False,
            show=progress,
        ):
            loss = occupancy_loss(mapper(batch["observation"].to(device)), batch["input"][:, :1].to(device))
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
def mapper_metrics(mapper: nn.Module, data, batch_size: int = 128, device="cpu") -> dict[str, float]:
    """Mean BCE and per-cell accuracy (threshold 0.5) of the mapper on ``data``."""
    mapper.eval()
    view = data.torch_dataset()
    bce, correct = 0.0, 0.0
    for start in range(0, len(view), batch_size):
        logits = mapper(view.observations[start : start + batch_size].to(device))
        target = view.inputs[start : start + batch_size, :1].to(device)
        bce += float(F.binary_cross_entropy_with_logits(logits, target, reduction="sum"))
        correct += float(((logits > 0).float() == target).sum())
    cells = len(view) * data.tasks.size**2
    return {"bce": bce / cells, "cell_accuracy": correct / cells}


def train_end_to_end(
    model: MappedPlanner,
    train,
    valid=None,
    config: TrainConfig = TrainConfig(),
    map_weight: float = 0.0,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train mapper and planner together from the imitation loss on the predicted map (plus
    ``map_weight`` times the mapper's BCE, an optional auxiliary loss). RMSprop, gradient
    clipping as :func:`~idplan.agents.imitation.train_planner`; a step with a non-finite loss or a
    diverged fixed point is skipped and counted. ``on_epoch_end(row)`` sees each epoch's metrics
    (to keep the best epoch's weights, say)."""
    device = torch.device(config.device)
    model.to(device)
    optimizer = torch.optim.RMSprop(model.parameters(), lr=config.lr)
    history = []
    for epoch in range(1, config.epochs + 1):
        model.train()
        start, sums, batches, skipped = time.perf_counter(), {"loss": 0.0, "bce": 0.0}, 0, 0
        for batch in progress_bar(
            _batches(train, config),
            desc=f"end to end {epoch}/{config.epochs}",
            leave=False,
            show=progress,
        ):
            out, occupancy = model(batch["observation"].to(device), batch["goal"].to(device))
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
        if on_epoch_end is not None:
            on_epoch_end(row)
        if progress:
            tqdm.write(
                f"end-to-end epoch {epoch}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if k != "epoch")
            )
    return history


@torch.no_grad()
def evaluate_mapped(model: MappedPlanner, data, batch_size: int = 64, device="cpu") -> dict[str, float]:
    """Rollout metrics (:func:`~idplan.agents.evaluation.rollout_metrics`) on the *true* map of the
    greedy policy the pair computes from the observations alone, with the mapper's cell accuracy."""
    model.eval()
    view = data.torch_dataset()
    actions, correct = [], 0.0
    for start in range(0, len(view), batch_size):
        observation = view.observations[start : start + batch_size].to(device)
        inputs = view.inputs[start : start + batch_size].to(device)
        out, occupancy = model(observation, inputs[:, 1:])
        actions.append(out.logits.argmax(1).cpu().numpy())
        correct += float(((occupancy > 0).float() == inputs[:, :1]).sum())  # the map this pass predicted
    metrics = rollout_metrics(data.tasks, np.concatenate(actions))
    metrics["map_cell_accuracy"] = correct / (len(view) * data.tasks.size**2)
    return metrics
