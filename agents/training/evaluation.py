"""Scoring planners on maze datasets by batched greedy rollouts (the community's metrics)."""

from __future__ import annotations

import numpy as np
import torch

from ...envs import MazeDataset, MazeTorchDataset, greedy_rollouts
from ..planners.base import Planner
from . import distributed


def rollout_metrics(data: MazeDataset, actions: np.ndarray) -> dict[str, float]:
    """%Optimal, %Success and SPL of a greedy per-cell policy ``actions`` ``[n, m, m]``.

    Every free cell that can reach its goal (the goal excluded) is a start:

    - ``optimal``: fraction of starts from which the policy reaches the goal in exactly the
      shortest-path length;
    - ``success``: fraction that reach the goal at all (within ``m * m`` steps);
    - ``spl``: success weighted by ``shortest / max(taken, shortest)``.

    Also ``accuracy``: fraction of starts whose action is one of the optimal ones.
    """
    starts = data.distances > 0
    steps = greedy_rollouts(data.free, data.goals, actions, starts, data.moves, torus=data.torus)[starts]
    shortest = data.distances[starts]
    success = steps >= 0
    chosen = np.take_along_axis(data.optimal, actions.clip(0, data.moves - 1).astype(np.int64)[:, None], axis=1)[:, 0]
    return {
        "optimal": float((steps == shortest).mean()),
        "success": float(success.mean()),
        "spl": float(np.where(success, shortest / np.maximum(steps, shortest), 0.0).mean()),
        "accuracy": float(chosen[starts].mean()),
        "starts": int(starts.sum()),
    }


@torch.no_grad()
def predict_actions(
    planner: Planner, data: MazeDataset, batch_size: int = 64, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, dict[str, float]]:
    """Greedy actions ``[n, m, m]`` of ``planner`` on every map, and its mean forward stats."""
    view = MazeTorchDataset(data)
    actions, stats = [], []
    planner.eval()
    for start in range(0, len(view), batch_size):
        inputs = view.inputs[start : start + batch_size].to(device)
        out = planner(inputs)
        actions.append(out.logits.argmax(dim=1).cpu().numpy())
        stats.append(out.stats)
    mean = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
    return np.concatenate(actions), mean


def evaluate_planner(
    planner: Planner, data: MazeDataset, batch_size: int = 64, device: str | torch.device = "cpu"
) -> dict[str, float]:
    """:func:`rollout_metrics` of the planner's greedy policy, with its forward solver stats.

    Under a process group every rank must call it: each scores its shard of the maps
    (:func:`~.distributed.shard`) and the metrics are reduced over the ranks (means over starts,
    the solver stats over maps)."""
    if distributed.active():
        data = data[distributed.shard(len(data))]
    actions, stats = predict_actions(planner, data, batch_size, device)
    return sharded_rollout_metrics(data, actions, stats)


def sharded_rollout_metrics(data: MazeDataset, actions: np.ndarray, extra: dict[str, float]) -> dict[str, float]:
    """:func:`rollout_metrics` of ``actions`` ``[n, m, m]`` on ``data`` plus ``extra`` (means over
    this rank's maps), reduced over the ranks of a process group (alone: as they are)."""
    metrics = {**rollout_metrics(data, actions), **extra}
    per_start = {k: float(metrics["starts"]) for k in ("optimal", "success", "spl", "accuracy")}
    reduced = distributed.weighted_means(metrics, {**{k: float(len(data)) for k in extra}, **per_start})
    reduced["starts"] = int(reduced["starts"])
    return reduced
