"""Imitation training of planners on maze datasets (the papers' setup).

Cross-entropy of the policy logits against the expert action on every labelled cell (free, can
reach the goal, not the goal), RMSprop (lr 1e-3), batch 32, gradient-norm clipping. Each epoch
logs the training loss and accuracy, the planner's forward/backward solver statistics, the
validation rollout metrics (%Optimal, %Success, SPL) and the wall time.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..envs import MazeDataset, MazeTorchDataset
from ..envs.atomic import atomic_write_text
from ..envs.progress import progress_bar
from ..solvers import ConvergenceError, NonConvergenceWarning, jacobian_frobenius_sq
from .evaluation import evaluate_planner
from .planner import Planner


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


class TrainingDiverged(RuntimeError):
    """Training stopped: most steps of an epoch had a diverged fixed point or a non-finite loss."""


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


def imitation_loss(logits: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over labelled cells (``actions`` is -100 elsewhere)."""
    return F.cross_entropy(logits, actions, ignore_index=-100)


def train_planner(
    planner: Planner,
    train: MazeDataset,
    valid: MazeDataset | None = None,
    config: TrainConfig = TrainConfig(),
    log_dir: str | Path | None = None,
    progress: bool = True,
    on_epoch_end: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``planner`` by imitation; returns one metrics dict per epoch.

    With ``log_dir``, the metrics also go to ``metrics.csv`` (replaced atomically) and
    ``metrics.jsonl`` (appended) there, as each epoch ends; a ``log_dir`` that already holds another
    run's ``metrics.jsonl`` raises ``ValueError`` (runs must not mix). Deterministic for a given ``config.seed`` (data order and initial state).
    A step whose fixed point diverged, whose adjoint (solved to tolerance) missed it, or whose loss or
    gradient is not finite, is skipped (and
    counted in ``skipped_steps``, adjoint misses after a sound forward also in
    ``adjoint_failed_steps``); if more
    than half of an epoch's steps are skipped,
    :class:`TrainingDiverged` is raised rather than training on garbage. An epoch in which the
    implicit adjoint stopped short of its tolerance ends with one
    :class:`~idplan.solvers.NonConvergenceWarning` (its gradients were approximate). ``on_epoch_end(row)`` is
    called with each epoch's metrics (e.g. to keep the best weights).
    """
    device = torch.device(config.device)
    planner.to(device)
    generator = torch.Generator().manual_seed(config.seed)
    probe_generator = torch.Generator(device=device).manual_seed(config.seed + 1)
    loader = torch.utils.data.DataLoader(
        MazeTorchDataset(train), batch_size=config.batch_size, shuffle=True, generator=generator
    )
    optimizer = torch.optim.RMSprop(planner.parameters(), lr=config.lr)
    log_dir = Path(log_dir) if log_dir is not None else None
    if log_dir is not None:
        jsonl = log_dir / "metrics.jsonl"
        if jsonl.is_file() and jsonl.stat().st_size > 0:
            raise ValueError(f"{jsonl} holds another run's metrics: log to an empty directory so that runs do not mix")
        log_dir.mkdir(parents=True, exist_ok=True)
        jsonl.touch()
    history = []
    for epoch in range(1, config.epochs + 1):
        planner.train()
        start = time.perf_counter()
        sums: dict[str, float] = {}
        batches = skipped = adjoint_skipped = 0
        bar = progress_bar(loader, desc=f"epoch {epoch}/{config.epochs}", leave=False, show=progress)
        for batch in bar:
            inputs, actions = batch["input"].to(device), batch["action"].to(device)
            out = planner(inputs)
            loss = imitation = imitation_loss(out.logits, actions)
            if config.jacobian_weight > 0:  # push the learned step towards a contraction
                penalty = jacobian_frobenius_sq(planner.step, out.state, out.reward, generator=probe_generator)
                size = sum(t[0].numel() for t in (out.state if isinstance(out.state, tuple) else (out.state,)))
                jacobian_term = penalty.mean() / size
                loss = loss + config.jacobian_weight * jacobian_term
            optimizer.zero_grad(set_to_none=True)
            adjoint_failed = False
            with warnings.catch_warnings():  # an adjoint that stops short is counted per epoch, below
                warnings.simplefilter("ignore", NonConvergenceWarning)
                try:
                    loss.backward()
                except ConvergenceError:  # an adjoint solved to tolerance missed it: no exact gradient, no step
                    adjoint_failed = True
                    optimizer.zero_grad(set_to_none=True)
            grad_norm = torch.nn.utils.clip_grad_norm_(planner.parameters(), config.grad_clip)
            loss_value = float(imitation.detach())
            # a fixed point that blew up (diverged or non-finite samples), or a non-finite loss or
            # gradient, would train on garbage: skip the update and count it
            if (
                adjoint_failed
                or out.stats.get("forward_failed", 0.0) > 0
                or not math.isfinite(loss_value)
                or not bool(grad_norm.isfinite())
            ):
                skipped += 1
                adjoint_skipped += adjoint_failed and not out.stats.get("forward_failed", 0.0) > 0
            else:
                optimizer.step()
            labelled = actions != -100
            correct = (out.logits.argmax(1) == actions)[labelled].float().mean()
            step_stats = {"loss": loss_value, "train_accuracy": float(correct), **out.stats, **out.backward_stats()}
            if config.jacobian_weight > 0:
                step_stats["jacobian_frobenius_sq"] = float(jacobian_term.detach())
            for k, v in step_stats.items():
                sums[k] = sums.get(k, 0.0) + v
            batches += 1
            bar.set_postfix(loss=f"{loss_value:.3f}")
        row = {"epoch": epoch, **{k: v / batches for k, v in sums.items()}, "skipped_steps": skipped}
        row["adjoint_failed_steps"] = adjoint_skipped
        row["train_seconds"] = time.perf_counter() - start
        if row.get("backward_converged", 1.0) < 1.0:
            warnings.warn(
                f"epoch {epoch}: the implicit adjoint stopped short of its tolerance on "
                f"{1 - row['backward_converged']:.2%} of the samples (worst relative residual per batch "
                f"{row['backward_rel_residual']:.2g} on average, after {row['backward_iterations']:.0f} steps): those gradients "
                "are approximate; raise backward_iterations, or make the step contract",
                NonConvergenceWarning,
                stacklevel=2,
            )
        if adjoint_skipped > batches // 2:
            raise TrainingDiverged(
                f"epoch {epoch}: {adjoint_skipped} of {batches} steps skipped because the implicit adjoint, solved "
                f"to its tolerance, missed it (worst relative residual {row.get('backward_rel_residual', float('nan')):.3g}): "
                "those gradients would not be exact; give the planner a larger backward_iterations, an adjoint "
                "solver that converges (e.g. anderson), or a contractive step"
            )
        if skipped > batches // 2:
            raise TrainingDiverged(
                f"epoch {epoch}: {skipped} of {batches} steps skipped because the planner's fixed point diverged "
                f"(forward relative residual {row.get('forward_rel_residual', float('nan')):.3g}) or the loss or "
                f"gradient was not finite; the learned step has stopped contracting: lower the learning rate "
                f"(now {config.lr:g}) or "
                + ("use explicit mode" if planner.mode == "implicit" else "train the implicit mode's contractive step")
            )
        if valid is not None:
            metrics = evaluate_planner(planner, valid, device=device)
            row.update({f"valid_{k}": v for k, v in metrics.items()})
        history.append(row)
        if on_epoch_end is not None:
            on_epoch_end(row)
        if progress:
            shown = {k: round(v, 4) for k, v in row.items() if k in ("loss", "valid_success", "valid_optimal")}
            tqdm.write(f"epoch {epoch}: {shown}  ({row['train_seconds']:.1f} s)")
        if log_dir is not None:
            with open(log_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(row) + "\n")
            _write_csv(log_dir / "metrics.csv", history)
    return history


def _write_csv(path: Path, rows: list[dict[str, float]]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, text.getvalue())


__all__ = ["BestEpoch", "TrainConfig", "TrainingDiverged", "train_planner", "imitation_loss"]
