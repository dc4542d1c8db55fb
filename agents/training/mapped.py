"""Training and scoring a :class:`~idplan.agents.mappers.MappedPlanner` (both on :func:`~.loop.fit`).

:func:`train_mapper` pre-trains a mapper by binary cross-entropy against the true maps,
:func:`train_end_to_end` trains mapper and planner together from the imitation loss on the predicted
map (with an optional auxiliary map loss), and :func:`evaluate_mapped` scores the pair by rollouts on
the *true* map, the pair seeing only the observations.

The functions work on any dataset with ``.tasks`` (a :class:`~idplan.envs.maze.MazeDataset`)
and ``.torch_dataset()`` (a view whose items add ``"observation"``, the mapper's input, and
``"goal"``, and with the stacked ``observations`` and ``inputs`` tensors):
:class:`~idplan.envs.arm.ArmDataset` (workspace images to C-space) and
:class:`~idplan.envs.miniworld.VisualNavDataset` (panoramas to the maze map).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..mappers.mapped import MappedPlanner, occupancy_loss
from . import distributed
from .evaluation import sharded_rollout_metrics
from .imitation import TrainConfig, batch_imitation_loss, shuffled_batches
from .loop import StepResult, fit


def train_mapper(
    mapper: nn.Module,
    train,
    valid=None,
    config: TrainConfig = TrainConfig(),
    progress: bool = True,
) -> list[dict[str, float]]:
    """Pre-train the mapper by BCE against the true maps (Adam, no clipping); one metrics dict per
    epoch (``bce``; with ``valid``: ``valid_bce`` and ``valid_cell_accuracy``, thresholded at 0.5)."""
    device = torch.device(config.device)
    mapper.to(device)
    model = distributed.data_parallel(mapper)
    batches = shuffled_batches(train.torch_dataset(), config)

    def step(batch) -> StepResult:
        loss = occupancy_loss(model(batch["observation"].to(device)), batch["input"][:, :1].to(device))
        return StepResult(loss, {"bce": float(loss.detach())}, weight=len(batch["input"]))

    def evaluate() -> dict[str, float]:
        return {f"valid_{k}": v for k, v in mapper_metrics(mapper, valid, device=device).items()}

    return fit(
        model,
        torch.optim.Adam(mapper.parameters(), lr=config.lr),
        batches,
        step,
        epochs=config.epochs,
        evaluate=evaluate if valid is not None else None,
        desc="mapper",
        progress=progress,
    )


@torch.no_grad()
def mapper_metrics(mapper: nn.Module, data, batch_size: int = 128, device="cpu") -> dict[str, float]:
    """Mean BCE and per-cell accuracy (threshold 0.5) of the mapper on ``data``; under a process
    group, every rank scores its shard and the means are reduced over the ranks."""
    mapper.eval()
    view = data.torch_dataset()
    rows = distributed.shard(len(view))
    observations, maps = view.observations[rows], view.inputs[rows, :1]
    bce, correct = 0.0, 0.0
    for start in range(0, len(maps), batch_size):
        logits = mapper(observations[start : start + batch_size].to(device))
        target = maps[start : start + batch_size].to(device)
        bce += float(F.binary_cross_entropy_with_logits(logits, target, reduction="sum"))
        correct += float(((logits > 0).float() == target).sum())
    cells = float(maps.numel())
    return distributed.weighted_means(
        {"bce": bce / cells, "cell_accuracy": correct / cells}, dict.fromkeys(("bce", "cell_accuracy"), cells)
    )


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
    ``map_weight`` times the mapper's BCE, an optional auxiliary loss). RMSprop and gradient
    clipping as :func:`~idplan.agents.training.train_planner`, and the loop's skip rule.
    ``on_epoch_end(row)`` sees each epoch's metrics (to keep the best epoch's weights, say)."""
    device = torch.device(config.device)
    model.to(device)
    trained = distributed.data_parallel(model)
    batches = shuffled_batches(train.torch_dataset(), config)

    def step(batch) -> StepResult:
        out, occupancy = trained(batch["observation"].to(device), batch["goal"].to(device))
        imitation = batch_imitation_loss(out.logits, batch["action"].to(device))
        bce = occupancy_loss(occupancy, batch["input"][:, :1].to(device))
        metrics = {"loss": float(imitation.detach()), "bce": float(bce.detach())}
        return StepResult(imitation + map_weight * bce, metrics, out.stats.get("forward_failed", 0.0) > 0)

    def evaluate() -> dict[str, float]:
        return {f"valid_{k}": v for k, v in evaluate_mapped(model, valid, device=device).items()}

    return fit(
        trained,
        torch.optim.RMSprop(model.parameters(), lr=config.lr),
        batches,
        step,
        epochs=config.epochs,
        grad_clip=config.grad_clip,
        evaluate=evaluate if valid is not None else None,
        on_epoch_end=[on_epoch_end] if on_epoch_end is not None else [],
        desc="end-to-end",
        progress=progress,
        stop_when_diverged=False,
    )


@torch.no_grad()
def evaluate_mapped(model: MappedPlanner, data, batch_size: int = 64, device="cpu") -> dict[str, float]:
    """Rollout metrics (:func:`~idplan.agents.training.rollout_metrics`) on the *true* map of the
    greedy policy the pair computes from the observations alone, with the mapper's cell accuracy.
    Under a process group, every rank scores its shard of the maps and the metrics are reduced."""
    model.eval()
    view = data.torch_dataset()
    rows = distributed.shard(len(view))
    observations, all_inputs = view.observations[rows], view.inputs[rows]
    actions, correct = [], 0.0
    for start in range(0, len(all_inputs), batch_size):
        observation = observations[start : start + batch_size].to(device)
        inputs = all_inputs[start : start + batch_size].to(device)
        out, occupancy = model(observation, inputs[:, 1:])
        actions.append(out.logits.argmax(1).cpu().numpy())
        correct += float(((occupancy > 0).float() == inputs[:, :1]).sum())  # the map this pass predicted
    tasks = data.tasks[rows] if distributed.active() else data.tasks
    accuracy = {"map_cell_accuracy": correct / all_inputs[:, :1].numel()}
    return sharded_rollout_metrics(tasks, np.concatenate(actions), accuracy)


__all__ = ["train_mapper", "mapper_metrics", "train_end_to_end", "evaluate_mapped"]
