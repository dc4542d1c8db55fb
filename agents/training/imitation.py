"""Imitation training of planners on maze datasets (the papers' setup).

Cross-entropy of the policy logits against the expert action on every labelled cell (free, can
reach the goal, not the goal), RMSprop (lr 1e-3), batch 32, gradient-norm clipping. Each epoch
logs the training loss and accuracy, the planner's forward/backward solver statistics, the
validation rollout metrics (%Optimal, %Success, SPL) and the wall time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ...envs import MazeDataset, MazeTorchDataset
from ...solvers import jacobian_frobenius_sq
from ..planners.base import Planner
from . import distributed
from .evaluation import evaluate_planner
from .loop import StepResult, TrainingDiverged, fit


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_planner` (defaults: the papers')."""

    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    grad_clip: float = 40.0
    seed: int = 0
    device: str = "cpu"
    jacobian_weight: float = 0.0  # Jacobian regularisation (Bai et al. 2021): weight of ||df/dz||_F^2 / N

    def __post_init__(self):
        if self.epochs < 1 or self.batch_size < 1 or not self.lr > 0 or not self.grad_clip > 0:
            raise ValueError(f"TrainConfig: epochs, batch_size, lr and grad_clip must be positive, got {self}")
        if not self.jacobian_weight >= 0:
            raise ValueError(f"TrainConfig: jacobian_weight must be >= 0, got {self.jacobian_weight}")


class BestEpoch:
    """An ``on_epoch_end`` callback that keeps a copy of ``module``'s weights at the epoch with the
    best ``valid_success`` and at the last completed epoch; :meth:`restore` loads the best back and
    returns that epoch (0: none kept), :meth:`restore_last` the last.

    Each record (epoch, success, weights) is stored by one assignment, so an interrupt
    (``KeyboardInterrupt``) that lands in the callback leaves the epoch and its weights consistent.
    """

    def __init__(self, module: torch.nn.Module):
        self.module = module
        self._best: tuple[float, int, dict | None] = (-1.0, 0, None)  # valid_success, epoch, weights
        self._last: tuple[int, dict | None] = (0, None)  # epoch, weights

    @property
    def success(self) -> float:
        return self._best[0]

    @property
    def epoch(self) -> int:
        """The best epoch so far (0: none)."""
        return self._best[1]

    @property
    def state(self) -> dict[str, torch.Tensor] | None:
        """The best epoch's weights (``None``: none kept)."""
        return self._best[2]

    @property
    def last_epoch(self) -> int:
        """The last completed epoch (0: none)."""
        return self._last[0]

    def __call__(self, row: dict[str, float]) -> None:
        state = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
        if row["valid_success"] > self.success:
            self._best = (row["valid_success"], row["epoch"], state)
        self._last = (row["epoch"], state)

    def restore(self) -> int:
        if self.state is not None:
            self.module.load_state_dict(self.state)
        return self.epoch

    def restore_last(self) -> int:
        if self._last[1] is not None:
            self.module.load_state_dict(self._last[1])
        return self.last_epoch


def shuffled_batches(view: torch.utils.data.Dataset, config: TrainConfig) -> Callable[[int], Iterable]:
    """``epoch -> batches`` of ``config.batch_size`` from a dataset's torch view, shuffled each epoch
    by a generator seeded with ``config.seed`` (the data order every trainer reproduces). Under a
    process group, ``config.batch_size`` is the global batch and each rank gets its share
    (:func:`~.distributed.sharded_batches`)."""
    if distributed.active():
        return distributed.sharded_batches(view, config.batch_size, config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(view, batch_size=config.batch_size, shuffle=True, generator=generator)
    return lambda epoch: loader


def imitation_loss(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled cells (``actions`` is -100 elsewhere); ``logits`` ``[B, A, m, m]``,
    ``actions`` ``[B, m, m]``."""
    return F.cross_entropy(logits, actions, ignore_index=-100)


def batch_imitation_loss(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """:func:`imitation_loss` of a training step: under a process group, this rank's share of the
    mean over every rank's labelled cells (:func:`~.distributed.global_mean`), so that DDP's
    averaged gradient is that of the global batch; alone, the mean itself."""
    if not distributed.active():
        return imitation_loss(logits, actions)
    total = F.cross_entropy(logits, actions, ignore_index=-100, reduction="sum")
    return distributed.global_mean(total, (actions != -100).sum())


def train_planner(
    planner: Planner,
    train: MazeDataset,
    valid: MazeDataset | None = None,
    config: TrainConfig = TrainConfig(),
    log_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
    tensorboard: bool = False,
) -> list[dict[str, float]]:
    """Train ``planner`` by imitation (RMSprop, the papers' settings) on :func:`~.loop.fit`; returns
    one metrics dict per epoch.

    Each step's loss is the cross-entropy to the expert's actions (plus ``config.jacobian_weight``
    times the Jacobian penalty, which pushes a learned step towards a contraction). The loop's rules
    hold (see :func:`~.loop.fit`): skipped steps for failed fixed points, adjoints that miss their
    tolerance and non-finite losses, :class:`TrainingDiverged`, ``metrics.jsonl``/``metrics.csv`` in
    ``log_dir`` (which must not hold another run's metrics), with ``tensorboard`` also as TensorBoard
    scalars in ``log_dir/tensorboard``. Deterministic for a given
    ``config.seed`` (data order and probes). ``on_epoch_end(row)`` is called with each epoch's
    metrics, validation included (e.g. to keep the best weights).
    """
    device = torch.device(config.device)
    planner.to(device)
    model = distributed.data_parallel(planner)
    batches = shuffled_batches(MazeTorchDataset(train), config)
    probe_generator = torch.Generator(device=device).manual_seed(config.seed + 1 + distributed.rank())

    def step(batch) -> StepResult:
        inputs, actions = batch["input"].to(device), batch["action"].to(device)
        out = model(inputs)
        loss = imitation = batch_imitation_loss(out.logits, actions)
        labelled = actions != -100
        correct = (out.logits.argmax(1) == actions)[labelled].float().mean()
        metrics = {"loss": float(imitation.detach()), "train_accuracy": float(correct), **out.stats}
        if config.jacobian_weight > 0:
            penalty = jacobian_frobenius_sq(planner.step, out.state, out.reward, generator=probe_generator)
            size = sum(t[0].numel() for t in (out.state if isinstance(out.state, tuple) else (out.state,)))
            jacobian_term = penalty.mean() / size
            loss = loss + config.jacobian_weight * jacobian_term
            metrics["jacobian_frobenius_sq"] = float(jacobian_term.detach())
        failed = out.stats.get("forward_failed", 0.0) > 0
        return StepResult(loss, metrics, failed, after_backward=out.backward_stats)

    def evaluate() -> dict[str, float]:
        metrics = evaluate_planner(planner, valid, device=device)
        return {f"valid_{k}": v for k, v in metrics.items()}

    hint = f"lower the learning rate (now {config.lr:g}) or " + (
        "use explicit mode" if planner.mode == "implicit" else "train the implicit mode's contractive step"
    )
    return fit(
        model,
        torch.optim.RMSprop(planner.parameters(), lr=config.lr),
        batches,
        step,
        epochs=config.epochs,
        grad_clip=config.grad_clip,
        evaluate=evaluate if valid is not None else None,
        on_epoch_end=[on_epoch_end] if on_epoch_end is not None else [],
        log_dir=log_dir,
        tensorboard=tensorboard,
        desc="epoch",
        progress=progress,
        shown=("loss", "valid_success", "valid_optimal"),
        diverged_hint=hint,
    )


__all__ = ["BestEpoch", "TrainConfig", "TrainingDiverged", "train_planner", "imitation_loss"]
