"""Runs of ``idplan train``, ``idplan demo`` and ``idplan eval``: the pipeline behind the command line.

:class:`TrainRun` holds a run's options (the command line's, one field per option; messages name
them as flags); :func:`train_run` checks every option before any data is generated or any directory
made, builds the data and the planner, trains (best epoch kept), tests, and writes the run's files
atomically into ``run.out``, never mixing runs there; Ctrl-C saves the best and last epochs and the
summary and raises :class:`Interrupted` with a one-line report. :func:`evaluate_checkpoint` is
``idplan eval``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...envs import SPLITS, ArmDataset, MazeDataset, generate_arm_splits, generate_splits, load_maze_file, task_nbytes
from ...envs.atomic import atomic_write_text
from ..planners.base import Planner
from ..runtime.planner_agents import PlannerAgent
from . import distributed
from .checkpoints import build_planner, load_checkpoint, planner_config, save_checkpoint
from .evaluation import evaluate_planner
from .imitation import BestEpoch, TrainConfig, train_planner
from .loop import TENSORBOARD_DIR, TrainingDiverged, summary_writer_class
from .plots import plot_training

# the files (and the TensorBoard folder) a run writes in its --out directory (--overwrite removes exactly these)
RUN_FILES = (
    "checkpoint.pt",
    "last.pt",
    "summary.json",
    "metrics.csv",
    "metrics.jsonl",
    "rollout.gif",
    "training.png",
    TENSORBOARD_DIR,
)
ARM_PIXELS, ARM_MAX_OBSTACLES = 96, 5  # generate_arm_dataset's workspace images and obstacle rows


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training, after what could be saved was saved; the message says what."""


@dataclass(frozen=True)
class TrainRun:
    """One training run (``idplan train``; ``rollout=True``: ``idplan demo``, which also renders a
    rollout GIF). Fields mirror the command line's options; see ``idplan train --help``."""

    out: Path
    planner: str = "vin"
    mode: str = "implicit"
    task: str = "maze"
    size: int = 15
    generator: str = "maze"
    dataset: Path | None = None
    n_train: int = 10_000
    n_valid: int = 200
    n_test: int = 500
    iterations: int | None = None
    tol: float | None = None
    solver: str | None = None
    backward_solver: str | None = None
    backward_iterations: int | None = None
    q_channels: int | None = None
    kernel_size: int = 3
    value_bound: float | None = None
    free_step: bool = False
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    jacobian_weight: float = 0.0
    device: str = "cpu"
    seed: int = 0
    quiet: bool = False
    overwrite: bool = False
    dist_timeout: float = distributed.DEFAULT_TIMEOUT
    tensorboard: bool = False
    rollout: bool = False


def available_memory() -> int | None:
    """Bytes of memory a new allocation can get: ``MemAvailable`` of ``/proc/meminfo`` (Linux),
    else the physical memory (``os.sysconf``); ``None`` where neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.3g} GiB"


def check_memory(counts: tuple[int, ...], size: int, what: str, arm: bool = False) -> None:
    """Refuse (``ValueError``) to generate datasets of ``counts`` tasks of ``size x size`` whose
    arrays would not fit in the available memory: each split's arrays, the copy made while joining
    a split's chunks, and the tensors training and evaluation make of them."""
    per_task = task_nbytes(size)
    arrays = per_task["arrays"] + (ARM_PIXELS**2 + ARM_MAX_OBSTACLES * 5 * 8 if arm else 0)
    needed = sum(counts) * (arrays + per_task["tensors"]) + max(counts) * arrays
    available = available_memory()
    if available is not None and needed > available:
        raise ValueError(
            f"{what} would need about {_gib(needed)} of memory for {sum(counts):,} {size}x{size} tasks; "
            f"{_gib(available)} is available: lower --size or the number of maps"
        )


def _datasets(run: TrainRun) -> dict[str, MazeDataset | ArmDataset]:
    if run.task == "arm":
        return generate_arm_splits(
            run.size, run.n_train, run.n_valid, run.n_test, seed=run.seed, progress=not run.quiet
        )
    if run.dataset is not None:
        return {split: load_maze_file(run.dataset, split) for split in SPLITS}
    return generate_splits(
        run.size,
        run.n_train,
        run.n_valid,
        run.n_test,
        generator=run.generator,
        seed=run.seed,
        progress=not run.quiet,
    )


def _tasks(data: MazeDataset | ArmDataset) -> MazeDataset:
    """The planning tasks of a dataset (an arm dataset's C-space tasks)."""
    return data.tasks if isinstance(data, ArmDataset) else data


def _planner_config(run: TrainRun, torus: bool) -> dict[str, Any]:
    """The planner's rebuild recipe from the parsed options (``ValueError`` for options that do not fit)."""
    options = dict(
        padding="circular" if torus else "zeros",
        mode=run.mode,
        iterations=run.iterations,
        tol=run.tol,
        solver=run.solver,
        kernel_size=run.kernel_size,
    )
    adjoint = {"linear_solver": run.backward_solver, "max_iter": run.backward_iterations}
    options["adjoint"] = {key: value for key, value in adjoint.items() if value is not None}
    if run.q_channels is not None:
        options["q_channels"] = run.q_channels
    if run.value_bound is not None:
        if run.planner not in ("vin", "sym_vin"):
            raise ValueError(f"--value-bound applies to vin and sym_vin, not {run.planner}")
        options["value_bound"] = run.value_bound
    if run.free_step:
        if run.planner in ("vin", "sym_vin") and run.value_bound is None:
            options["value_bound"] = None
        elif run.planner in ("conv_gppn", "gppn"):
            options["contractive"] = False
        else:
            raise ValueError(
                f"--free-step applies to vin, sym_vin (without --value-bound), conv_gppn and gppn, not {run.planner}"
            )
    return planner_config(run.planner, **options)


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse an ``--out`` that is a file, or a directory holding files, unless ``overwrite``."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a directory")
    if out.is_dir() and not overwrite:
        held = sorted(p.name for p in out.iterdir())
        if held:
            shown = ", ".join(held[:5]) + (", ..." if len(held) > 5 else "")
            raise ValueError(
                f"--out {out} already holds files ({shown}): choose another --out, or pass --overwrite "
                "to replace the previous run's files"
            )


def _prepare_out(out: Path, overwrite: bool) -> None:
    """Create ``out``; with ``overwrite``, delete a previous run's files (and half-written temporary
    files) from it. Checks ``out`` again: another run may have claimed it while the data were made."""
    _check_out(out, overwrite)
    out.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (out / name).is_dir():  # the TensorBoard folder
            shutil.rmtree(out / name)
            continue
        stem, suffix = os.path.splitext(name)
        for path in (out / name, *out.glob(f".{stem}.*.tmp{suffix}")):
            path.unlink(missing_ok=True)


def validate(run: TrainRun) -> TrainConfig:
    """Every check of the training options that needs no data, before any file or directory is made;
    returns the training configuration."""
    if run.task == "arm" and run.dataset is not None:
        raise ValueError("--dataset reads maze files; arm datasets are generated (--size is the bins per joint)")
    if run.dataset is not None and not run.dataset.exists():
        raise FileNotFoundError(f"--dataset {run.dataset}: no such file")
    if run.rollout:
        try:
            import imageio.v3  # noqa: F401
        except ImportError:
            raise ValueError('the demo writes a GIF, which needs imageio: pip install "idplan[render]"') from None
    if run.tensorboard:
        summary_writer_class()  # the tensorboard package, or a ValueError naming the extra
    if distributed.is_main():  # rank 0 alone writes the run's files
        _check_out(run.out, run.overwrite)
    distributed.per_rank_batch(run.batch_size)  # --batch-size divides among the processes
    build_planner(_planner_config(run, torus=run.task == "arm"))  # options the planner refuses
    train_config = TrainConfig(
        epochs=run.epochs,
        batch_size=run.batch_size,
        lr=run.lr,
        seed=run.seed,
        device=run.device,
        jacobian_weight=run.jacobian_weight,
    )
    if run.dataset is None:
        counts = (run.n_train, run.n_valid, run.n_test)
        check_memory(counts, run.size, f"idplan {'demo' if run.rollout else 'train'}", arm=run.task == "arm")
    return train_config


@contextmanager
def _no_interrupts():
    """Ignore Ctrl-C while the block runs (saving what an interrupt asked to save)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _summary(run: TrainRun, tasks: dict[str, MazeDataset], best: BestEpoch, seconds: float) -> dict[str, Any]:
    return {
        "task": run.task,
        "planner": run.planner,
        "mode": run.mode,
        "iterations": run.iterations,
        "size": tasks["test"].size,
        "train_maps": len(tasks["train"]),
        "epochs": run.epochs,
        "epochs_completed": best.last_epoch,
        "interrupted": False,
        "best_epoch": best.epoch,
        "train_seconds": round(seconds, 1),
    }


def _save_interrupted(run: TrainRun, planner, config, best: BestEpoch, tasks, seconds: float) -> Interrupted:
    """After Ctrl-C: save the best epoch's weights (``checkpoint.pt``, as a finished run) and the last
    completed epoch's (``last.pt``) and the summary, marked interrupted; returns the one-line report."""
    checkpoint, last = run.out / "checkpoint.pt", run.out / "last.pt"
    summary = _summary(run, tasks, best, seconds)
    summary.update(interrupted=True, metrics=str(run.out / "metrics.csv"))
    size = tasks["test"].size
    with _no_interrupts():
        if best.state is not None:
            save_checkpoint(last, planner, config, epochs=best.restore_last(), size=size, interrupted=True)
            save_checkpoint(checkpoint, planner, config, epochs=best.restore(), size=size, interrupted=True)
            summary.update(checkpoint=str(checkpoint), last_checkpoint=str(last))
        atomic_write_text(run.out / "summary.json", json.dumps(summary, indent=2))
    if best.state is None:
        return Interrupted(f"interrupted during epoch 1 of {run.epochs}: no epoch completed, no checkpoint saved")
    return Interrupted(
        f"interrupted after epoch {best.last_epoch} of {run.epochs}: best checkpoint (epoch {best.epoch}) "
        f"saved to {checkpoint}, the last epoch's weights to {last}"
    )


def train_run(run: TrainRun) -> tuple[Planner, dict[str, Any], dict[str, MazeDataset | ArmDataset]]:
    """Build, train and test a planner as ``run`` says; writes checkpoint, metrics and summary to
    ``run.out`` (with ``run.rollout``, also the rollout GIF). Returns the planner, the summary and
    the data. Every option is checked before any data is generated or any directory made.

    Started by ``torchrun`` (one process per device), the ranks train one planner data-parallel
    (:mod:`.distributed`; ``run.batch_size`` is the global batch, ``run.dist_timeout`` the seconds a
    rank waits for the others): each rank builds the same data and initial weights from the seed,
    the evaluations are sharded, and rank 0 alone writes the run's files."""
    with distributed.process_group(run.device, run.dist_timeout) as device:
        run = replace(run, device=str(device), quiet=run.quiet or not distributed.is_main())
        return _train_on_this_rank(run)


def _train_on_this_rank(run: TrainRun) -> tuple[Planner, dict[str, Any], dict[str, MazeDataset | ArmDataset]]:
    train_config = validate(run)
    data = _datasets(run)
    tasks = {split: _tasks(d) for split, d in data.items()}
    config = _planner_config(run, torus=tasks["train"].torus)
    torch.manual_seed(run.seed)
    planner = build_planner(config)
    main = distributed.is_main()
    if main:
        _prepare_out(run.out, run.overwrite)
    best = BestEpoch(planner)

    checkpoint = run.out / "checkpoint.pt"
    start = time.perf_counter()
    try:
        history = train_planner(
            planner,
            tasks["train"],
            tasks["valid"],
            train_config,
            run.out,
            not run.quiet,
            on_epoch_end=best,
            tensorboard=run.tensorboard,
        )
        train_seconds = time.perf_counter() - start
        best.restore()  # test the epoch with the best validation success
        test = evaluate_planner(planner, tasks["test"], device=run.device)
    except TrainingDiverged as error:
        if best.state is None:
            raise
        if main:
            save_checkpoint(checkpoint, planner, config, epochs=best.restore(), size=tasks["test"].size)
        raise TrainingDiverged(f"{error}; the best weights (epoch {best.epoch}) are saved in {checkpoint}") from error
    except KeyboardInterrupt:
        if not main:
            raise
        raise _save_interrupted(run, planner, config, best, tasks, time.perf_counter() - start) from None
    summary = {
        **_summary(run, tasks, best, train_seconds),
        "processes": distributed.world_size(),
        "test": {k: round(v, 4) if isinstance(v, float) else v for k, v in test.items()},
        "final_loss": round(history[-1]["loss"], 4),
        "checkpoint": str(checkpoint),
        "metrics": str(run.out / "metrics.csv"),
    }
    if run.tensorboard:
        summary["tensorboard"] = str(run.out / TENSORBOARD_DIR)
    if not main:
        return planner, summary, data
    save_checkpoint(checkpoint, planner, config, test=test, epochs=best.epoch, size=tasks["test"].size)
    if run.rollout:
        summary["rollout"] = render_rollout(planner, data["test"], run.out / "rollout.gif", run.device, run.seed)
        summary["training_figure"] = str(plot_training(run.out))
    atomic_write_text(run.out / "summary.json", json.dumps(summary, indent=2))
    return planner, summary, data


def render_rollout(
    planner: Planner, data: MazeDataset | ArmDataset, path: Path, device: str, seed: int = 0
) -> dict[str, Any]:
    """Play the planner on the first test task from its farthest start cell and write a GIF with
    the value overlay (GridMaze, or the arm's workspace and C-space). The rollout stops at the
    goal, or when the greedy policy revisits a cell (a deterministic policy then loops for ever)."""
    import gymnasium as gym

    try:
        import imageio.v3  # noqa: F401
    except ImportError as error:
        raise ValueError('writing the GIF needs imageio: pip install "idplan[render]"') from error
    from ..runtime.interactive import record_rollout

    task, tasks = 0, _tasks(data)
    start = np.unravel_index(int(tasks.distances[task].argmax()), tasks.distances[task].shape)
    options = {"goal": tuple(tasks.goals[task]), "start": start}
    if isinstance(data, ArmDataset):
        env = gym.make("idplan/ArmCSpace-v0", bins=data.bins, geometry=data.geometry, render_mode="rgb_array")
        options["obstacles"] = data.obstacles[task]
    else:
        env = gym.make("idplan/GridMaze-v0", size=data.size, moves=data.moves, render_mode="rgb_array")
        options["map"] = (~data.free[task]).astype(np.int8)
    summary = record_rollout(env, PlannerAgent(planner, device), options, path, seed)
    env.close()
    return summary


def evaluate_checkpoint(
    checkpoint: Path,
    dataset: Path | None = None,
    size: int | None = None,
    n: int = 500,
    seed: int = 0,
    split: str = "test",
    limit: int | None = None,
    device: str = "cpu",
) -> dict[str, Any]:
    """``idplan eval``: score a checkpoint on a dataset file, on ``n`` generated mazes of ``size``, or
    (neither) on generated mazes of the checkpoint's own size; returns the metrics and what was used."""
    if dataset is not None and size is not None:
        raise ValueError("give --dataset FILE or --size N (generated test mazes), not both")
    if dataset is not None and not dataset.exists():
        raise FileNotFoundError(f"--dataset {dataset}: no such file")
    if size is not None:
        check_memory((1, 1, n), size, "idplan eval --size")
    planner, extra = load_checkpoint(checkpoint, device)
    if dataset is not None:
        data = load_maze_file(dataset, split)
        source = str(dataset)
    else:
        size, own = size, ""
        if size is None:  # the map size the checkpoint was trained on
            size = extra.get("size")
            if not isinstance(size, int) or size < 1:
                raise ValueError(
                    f"{checkpoint} does not record its map size: give --dataset FILE or --size N (generated mazes)"
                )
            check_memory((1, 1, n), size, "idplan eval")
            own = "; the checkpoint's own map size, as neither --dataset nor --size was given"
        # seeded apart from the default training seeds, so these mazes are new
        data = generate_splits(size, 1, 1, n, seed=seed + 10_000, progress=False)["test"]
        source = f"{n} generated {size}x{size} mazes (seed {seed + 10_000}{own})"
    if limit is not None:
        data = data[:limit]
    metrics = evaluate_planner(planner, data, device=device)
    return {
        "checkpoint": str(checkpoint),
        "dataset": source,
        "split": split,
        "maps": len(data),
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
    }
