"""The one training loop: every trainer (planners by imitation, mappers, mapped planners end to end,
control from pixels) configures :func:`fit` with its batches, its loss and its epoch-end evaluation.

What the loop owns, so that no trainer repeats it: the epoch and step loop with a progress bar (on a
terminal only); gradient clipping; the skip rule (a step whose fixed point failed, whose adjoint
raised because it missed its tolerance, or whose loss or gradient is not finite takes no update, and
is counted); :class:`TrainingDiverged` when most of an epoch's steps are skipped; the per-epoch
metrics row (weighted means of the step metrics, skip counts, wall time, evaluation); the metrics
files (``metrics.jsonl`` appended, ``metrics.csv`` replaced atomically, optionally the same rows as
TensorBoard scalars: :class:`MetricsLog`); and the epoch-end callbacks (e.g.
:class:`~idplan.agents.training.imitation.BestEpoch`).

Under a ``torch.distributed`` process group (:mod:`.distributed`) the same loop trains a
``DistributedDataParallel`` module: the ranks agree on every skip (so their parameters stay equal),
an adjoint that misses its tolerance poisons the gradient instead of raising (so every rank reaches
DDP's all-reduces), the epoch's metrics are summed over the ranks, and rank 0 alone shows progress
and writes the metrics files.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ...envs.atomic import atomic_write_text
from ...envs.progress import progress_bar
from ...solvers import ConvergenceError, NonConvergenceWarning
from ...solvers.core.implicit import defer_adjoint_failures
from . import distributed


class TrainingDiverged(RuntimeError):
    """Training stopped: most steps of an epoch had a diverged fixed point, an adjoint that missed
    its tolerance, or a non-finite loss."""


@dataclass
class StepResult:
    """What a trainer's step function returns for one batch.

    Attributes:
        loss: the scalar to backpropagate.
        metrics: plain numbers to average over the epoch (the loss to report among them).
        failed: the forward already failed (a diverged or non-finite fixed point): no update.
        weight: the batch's weight in the epoch means (1: a mean over batches; the batch size: a
            mean over samples).
        after_backward: more metrics, read after ``backward()`` (e.g. the adjoint's statistics).
    """

    loss: torch.Tensor
    metrics: dict[str, float] = field(default_factory=dict)
    failed: bool = False
    weight: float = 1.0
    after_backward: Callable[[], dict[str, float]] | None = None


def fit(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Callable[[int], Iterable[Any]],
    step: Callable[[Any], StepResult],
    *,
    epochs: int,
    grad_clip: float | None = None,
    evaluate: Callable[[], dict[str, float]] | None = None,
    on_epoch_end: Sequence[Callable[[dict[str, float]], None]] = (),
    train_mode: Callable[[], None] | None = None,
    log_dir: str | Path | None = None,
    tensorboard: bool = False,
    desc: str = "epoch",
    progress: bool = True,
    shown: Sequence[str] | None = None,
    stop_when_diverged: bool = True,
    diverged_hint: str = "lower the learning rate",
) -> list[dict[str, float]]:
    """Train ``module`` for ``epochs`` epochs; returns one metrics row per epoch.

    Args:
        module: what is trained (its parameters are clipped; ``module.train()`` at each epoch's start
            unless ``train_mode`` says otherwise, e.g. to keep a frozen part in eval mode).
        optimizer: over ``module``'s parameters (or the part being trained).
        batches: ``epoch -> iterable of batches`` (1-based epochs).
        step: ``batch -> StepResult``; the loop backpropagates ``loss`` and updates, or skips.
        epochs: number of epochs (>= 1).
        grad_clip: max gradient norm (``None``: no clipping, only the finiteness check).
        evaluate: epoch-end metrics added to the row as they are named (e.g. ``valid_success``);
            run after ``train_seconds`` is taken.
        on_epoch_end: callbacks given each row, in order, after evaluation and logging.
        log_dir: with it, ``metrics.jsonl`` (one JSON row per epoch, appended) and ``metrics.csv``;
            a directory that already holds another run's ``metrics.jsonl`` is a ``ValueError``.
        tensorboard: also write each row as TensorBoard scalars to ``log_dir/tensorboard`` (needs
            ``log_dir`` and the tensorboard package; see :class:`MetricsLog`).
        desc: the progress bar's and the progress line's label.
        progress: progress bars and a line per epoch (on a terminal only).
        shown: the row's keys the progress line shows (``None``: all).
        stop_when_diverged: raise :class:`TrainingDiverged` when more than half of an epoch's steps
            are skipped; ``diverged_hint`` ends its message (what to change).

    Under a process group of several ranks, ``module`` must be the ``DistributedDataParallel``
    wrapper (:func:`~.distributed.data_parallel`), every rank calls ``fit`` with its shard of the
    batches (the same number of them), and ``evaluate`` must reduce over the ranks itself.

    Each row holds the weighted means of the steps' metrics, ``skipped_steps`` and
    ``adjoint_failed_steps`` (steps whose adjoint raised after a sound forward), ``train_seconds``
    and the evaluation. An epoch whose implicit adjoint stopped short of its tolerance on a chosen
    budget (``backward_converged < 1`` in the metrics) ends with one ``NonConvergenceWarning``.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if distributed.world_size() > 1 and not isinstance(module, torch.nn.parallel.DistributedDataParallel):
        raise ValueError(
            f"{desc}: training under a process group of {distributed.world_size()} ranks needs the module wrapped in "
            "DistributedDataParallel (training.distributed.data_parallel), or the ranks' gradients are not averaged"
        )
    progress = progress and distributed.is_main()
    if tensorboard and log_dir is None:
        raise ValueError(f"{desc}: tensorboard=True needs a log_dir to write the event files to")
    log = MetricsLog(log_dir, tensorboard) if log_dir is not None and distributed.is_main() else None
    with log if log is not None else nullcontext():
        history: list[dict[str, float]] = []
        for epoch in range(1, epochs + 1):
            (train_mode or module.train)()
            start = time.perf_counter()
            sums: dict[str, float] = {}
            total_weight = 0.0
            batches_seen = skipped = adjoint_failed_steps = 0
            bar = progress_bar(batches(epoch), desc=f"{desc} {epoch}/{epochs}", leave=False, show=progress)
            for batch in bar:
                result = step(batch)
                optimizer.zero_grad(set_to_none=True)
                adjoint_failed = False
                # an adjoint that stops short on a chosen budget: counted below; one that misses its
                # tolerance: no exact gradient (a NaN one, so that the backward, DDP's all-reduces included, ends)
                with warnings.catch_warnings(), defer_adjoint_failures() as adjoint_errors:
                    warnings.simplefilter("ignore", NonConvergenceWarning)
                    try:
                        result.loss.backward()
                    except ConvergenceError:  # another adjoint solved to tolerance that missed it
                        adjoint_failed = True
                loss_value = float(result.loss.detach())
                failed, adjoint_failed, bad_loss = distributed.agree(
                    [result.failed, adjoint_failed or bool(adjoint_errors), not math.isfinite(loss_value)]
                )
                if failed or adjoint_failed or bad_loss or not _clip(module, grad_clip):
                    skipped += 1
                    adjoint_failed_steps += adjoint_failed and not failed
                else:
                    optimizer.step()
                metrics = {**result.metrics, **(result.after_backward() if result.after_backward else {})}
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value * result.weight
                total_weight += result.weight
                batches_seen += 1
                bar.set_postfix(loss=f"{loss_value:.3f}")
            if batches_seen == 0:
                raise ValueError(f"{desc} {epoch}: no batches to train on")
            sums, total_weight = distributed.gather_sums(sums, total_weight)
            row: dict[str, float] = {"epoch": epoch, **{k: v / total_weight for k, v in sums.items()}}
            row["skipped_steps"] = skipped
            row["adjoint_failed_steps"] = adjoint_failed_steps
            row["train_seconds"] = time.perf_counter() - start
            _warn_truncated_adjoint(epoch, row)
            if stop_when_diverged:
                _check_diverged(epoch, row, batches_seen, diverged_hint)
            if evaluate is not None:
                row.update(evaluate())
            history.append(row)
            for callback in on_epoch_end:
                callback(row)
            if progress:
                keys = [k for k in row if k not in ("epoch", "train_seconds")] if shown is None else shown
                values = {k: round(row[k], 4) for k in keys if k in row}
                tqdm.write(f"{desc} {epoch}: {values}  ({row['train_seconds']:.1f} s)")
            if log is not None:
                log.write(history)
        return history


def _clip(module: nn.Module, grad_clip: float | None) -> bool:
    """Clip the gradient norm (if asked); whether it is finite."""
    parameters = [p for p in module.parameters() if p.grad is not None]
    if not parameters:
        return True
    if grad_clip is not None:
        return bool(torch.nn.utils.clip_grad_norm_(parameters, grad_clip).isfinite())
    return all(bool(torch.isfinite(p.grad).all()) for p in parameters)


def _warn_truncated_adjoint(epoch: int, row: dict[str, float]) -> None:
    if row.get("backward_converged", 1.0) < 1.0:
        warnings.warn(
            f"epoch {epoch}: the implicit adjoint stopped short of its tolerance on "
            f"{1 - row['backward_converged']:.2%} of the samples (worst relative residual per batch "
            f"{row['backward_rel_residual']:.2g} on average, after {row['backward_iterations']:.0f} steps): those "
            "gradients are approximate; give the adjoint more iterations, or make the step contract",
            NonConvergenceWarning,
            stacklevel=3,
        )


def _check_diverged(epoch: int, row: dict[str, float], batches: int, hint: str) -> None:
    if row["adjoint_failed_steps"] > batches // 2:
        raise TrainingDiverged(
            f"epoch {epoch}: {row['adjoint_failed_steps']} of {batches} steps skipped because the implicit adjoint, "
            f"solved to its tolerance, missed it (worst relative residual {row.get('backward_rel_residual', float('nan')):.3g}): "
            "those gradients would not be exact; give the planner more adjoint iterations, an adjoint solver "
            "that converges (e.g. anderson), or a contractive step"
        )
    if row["skipped_steps"] > batches // 2:
        raise TrainingDiverged(
            f"epoch {epoch}: {row['skipped_steps']} of {batches} steps skipped because the fixed point diverged "
            f"(forward relative residual {row.get('forward_rel_residual', float('nan')):.3g}) or the loss or "
            f"gradient was not finite; the learned step has stopped contracting: {hint}"
        )


TENSORBOARD_DIR = "tensorboard"  # the event files' folder in a log directory


def summary_writer_class() -> type:
    """``torch.utils.tensorboard.SummaryWriter``; a ``ValueError`` naming the extra to install where
    the tensorboard package is missing."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ValueError("--tensorboard needs the tensorboard package: pip install 'idplan[tensorboard]'") from None
    return SummaryWriter


class MetricsLog:
    """A run's metrics files in ``log_dir``, one row per epoch: ``metrics.jsonl`` (appended),
    ``metrics.csv`` (rewritten atomically) and, with ``tensorboard``, TensorBoard event files in
    ``log_dir/tensorboard`` holding every column but ``epoch`` as a scalar of that name at step
    ``epoch``. Refuses (``ValueError``) a directory that holds another run's metrics or events; a
    context manager that closes the event file."""

    def __init__(self, log_dir: str | Path, tensorboard: bool = False):
        self.jsonl = Path(log_dir) / "metrics.jsonl"
        events = Path(log_dir) / TENSORBOARD_DIR
        if self.jsonl.is_file() and self.jsonl.stat().st_size > 0:
            raise ValueError(
                f"{self.jsonl} holds another run's metrics: log to an empty directory so that runs do not mix"
            )
        if tensorboard and any(events.glob("events.out.tfevents.*")):
            raise ValueError(f"{events} holds another run's events: log to an empty directory so that runs do not mix")
        writer = summary_writer_class() if tensorboard else None
        self.jsonl.parent.mkdir(parents=True, exist_ok=True)
        self.jsonl.touch()
        self.writer = writer(str(events)) if writer is not None else None

    def write(self, history: list[dict[str, float]]) -> None:
        """Log the newest row of ``history`` (append to ``metrics.jsonl``, TensorBoard scalars);
        rewrite ``metrics.csv`` with every row."""
        row = history[-1]
        with self.jsonl.open("a") as file:
            file.write(json.dumps(row) + "\n")
        keys = list(dict.fromkeys(k for r in history for k in r))
        buffer = io.StringIO(newline="")
        table = csv.DictWriter(buffer, fieldnames=keys)
        table.writeheader()
        table.writerows(history)
        atomic_write_text(self.jsonl.with_name("metrics.csv"), buffer.getvalue())
        if self.writer is not None:
            for key, value in row.items():
                if key != "epoch":
                    self.writer.add_scalar(key, value, global_step=int(row["epoch"]))
            self.writer.flush()

    def __enter__(self) -> MetricsLog:
        return self

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            self.writer.close()
