"""The ``idplan`` command line: ``idplan demo``, ``idplan train``, ``idplan eval``, ``idplan play``.

    idplan demo --out runs/demo                       # small maze, trained and evaluated in minutes on CPU
    idplan train --planner vin --mode implicit --size 15 --epochs 30 --out runs/vin15
    idplan train --dataset ../shared/data/diffplan_m15_4abs-cc_10k.npz --planner conv_gppn --out runs/cc
    idplan train --task arm --size 18 --planner sym_vin --out runs/arm18   # C-space of a 2-link arm (torus)
    idplan eval runs/vin15/checkpoint.pt --dataset ../shared/data/diffplan_m15_4abs-cc_10k.npz
    idplan eval runs/demo/checkpoint.pt --size 27 --n 500     # generalisation to larger generated mazes
    idplan eval runs/demo/checkpoint.pt                       # generated mazes of the checkpoint's own size
    idplan play idplan/GridMaze-v0 --agent runs/demo/checkpoint.pt   # a window (space, right, r, v, q)
    idplan play idplan/Pendulum-v0 --agent mpc --start down --record runs/pendulum.gif

Every command ends its standard output with one JSON line of its results. Options are checked
before any data is generated or any file written; a bad one ends in one ``error:`` line (exit 2).
A run refuses an ``--out`` directory that holds files unless ``--overwrite`` is given (which first
deletes that directory's run files); files are written atomically. Ctrl-C during training saves the
best epoch's weights (``checkpoint.pt``), the last completed epoch's (``last.pt``) and the summary,
marked interrupted, and exits with 130.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..envs import SPLITS, ArmDataset, MazeDataset, generate_arm_splits, generate_splits, load_maze_file, task_nbytes
from ..envs.atomic import atomic_write_text
from ..solvers import LINEAR_SOLVERS, SOLVERS
from .planners import MODES, PLANNERS
from .planners.base import Planner
from .runtime.planner_agents import PlannerAgent
from .training.checkpoints import build_planner, load_checkpoint, planner_config, save_checkpoint
from .training.evaluation import evaluate_planner
from .training.imitation import BestEpoch, TrainConfig, TrainingDiverged, train_planner

# the files a run writes in its --out directory (--overwrite removes exactly these)
RUN_FILES = ("checkpoint.pt", "last.pt", "summary.json", "metrics.csv", "metrics.jsonl", "rollout.gif")
ARM_PIXELS, ARM_MAX_OBSTACLES = 96, 5  # generate_arm_dataset's workspace images and obstacle rows


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training, after what could be saved was saved; the message says what."""


def positive_int(value: str) -> int:
    """An argparse type: an integer >= 1 (a bad value ends in argparse's ``error:`` line, exit 2)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
    return number


def _finite_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value!r}")
    return number


def positive_float(value: str) -> float:
    """An argparse type: a finite number > 0."""
    number = _finite_float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def non_negative_float(value: str) -> float:
    """An argparse type: a finite number >= 0."""
    number = _finite_float(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return number


def device(value: str) -> str:
    """An argparse type: a torch device this machine has."""
    try:
        parsed = torch.device(value)
    except RuntimeError as error:
        raise argparse.ArgumentTypeError(f"unknown device {value!r} ({error})") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{value!r}: this torch build sees no CUDA device; use --device cpu")
    return value


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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written; every option's help ends with its default (where it has one)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if default in (None, False, argparse.SUPPRESS) or "%(default)" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _add_planner_options(p: argparse.ArgumentParser, planner: str, epochs: int, n_train: int, lr: float) -> None:
    p.add_argument("--planner", choices=sorted(PLANNERS), default=planner, help="the planner to train")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="implicit",
        help="implicit: solve the fixed point, implicit gradients; explicit: K unrolled steps, backpropagated",
    )
    p.add_argument(
        "--task",
        choices=["maze", "arm"],
        default="maze",
        help="maze: 2D navigation; arm: the 2-link arm's C-space (a torus; planners use circular padding)",
    )
    p.add_argument("--size", type=positive_int, default=15, help="map size of generated datasets (arm: bins per joint)")
    p.add_argument("--generator", choices=["maze", "obstacles"], default="maze", help="generated map kind")
    p.add_argument("--dataset", type=Path, help="train on this file (ours or community format) instead of generating")
    p.add_argument("--n-train", type=positive_int, default=n_train, help="generated training maps")
    p.add_argument("--n-valid", type=positive_int, default=200, help="generated validation maps (picks the best epoch)")
    p.add_argument("--n-test", type=positive_int, default=500, help="generated test maps")
    p.add_argument(
        "--iterations",
        type=positive_int,
        default=None,
        help="explicit: unrolled steps K (default 5 m); implicit: forward cap (default max(200, 2 m*m))",
    )
    p.add_argument(
        "--tol", type=positive_float, default=None, help="implicit forward relative tolerance (default: the planner's)"
    )
    p.add_argument(
        "--solver", choices=sorted(SOLVERS), default=None, help="implicit forward solver (default: the planner's)"
    )
    p.add_argument(
        "--backward-solver",
        choices=sorted(LINEAR_SOLVERS),
        default=None,
        help="implicit adjoint's linear solver (default: the planner's)",
    )
    p.add_argument(
        "--backward-iterations",
        type=positive_int,
        default=None,
        help="implicit adjoint cap K_bwd (default: the forward cap, so that the adjoint runs to tolerance)",
    )
    p.add_argument("--q-channels", type=positive_int, default=None, help="Q / hidden channels (default: the planner's)")
    p.add_argument("--kernel-size", type=positive_int, default=3, help="convolution kernel size (odd)")
    p.add_argument(
        "--value-bound",
        type=positive_float,
        default=None,
        help="vin/sym_vin: keep each value kernel's L1 norm below this (< 1: a contraction; default 0.99 in implicit mode)",
    )
    p.add_argument(
        "--free-step",
        action="store_true",
        help="vin, sym_vin, conv_gppn, gppn: the papers' unbounded step, which need not contract (default in explicit mode)",
    )
    p.add_argument("--epochs", type=positive_int, default=epochs, help="training epochs")
    p.add_argument("--batch-size", type=positive_int, default=32, help="maps per training step")
    p.add_argument("--lr", type=positive_float, default=lr, help="RMSprop learning rate")
    p.add_argument(
        "--jacobian-weight",
        type=non_negative_float,
        default=0.0,
        help="Jacobian regularisation: weight of the step's ||df/dz||_F^2 / N (pushes it to contract)",
    )
    p.add_argument("--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data and of the initial weights")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"reuse a non-empty --out: first delete the previous run's files there ({', '.join(RUN_FILES)})",
    )


def _datasets(args) -> dict[str, MazeDataset | ArmDataset]:
    if args.task == "arm":
        return generate_arm_splits(
            args.size, args.n_train, args.n_valid, args.n_test, seed=args.seed, progress=not args.quiet
        )
    if args.dataset is not None:
        return {split: load_maze_file(args.dataset, split) for split in SPLITS}
    return generate_splits(
        args.size,
        args.n_train,
        args.n_valid,
        args.n_test,
        generator=args.generator,
        seed=args.seed,
        progress=not args.quiet,
    )


def _tasks(data: MazeDataset | ArmDataset) -> MazeDataset:
    """The planning tasks of a dataset (an arm dataset's C-space tasks)."""
    return data.tasks if isinstance(data, ArmDataset) else data


def _planner_config(args, torus: bool) -> dict[str, Any]:
    """The planner's rebuild recipe from the parsed options (``ValueError`` for options that do not fit)."""
    options = dict(
        padding="circular" if torus else "zeros",
        mode=args.mode,
        iterations=args.iterations,
        tol=args.tol,
        solver=args.solver,
        kernel_size=args.kernel_size,
    )
    adjoint = {"linear_solver": args.backward_solver, "max_iter": args.backward_iterations}
    options["adjoint"] = {key: value for key, value in adjoint.items() if value is not None}
    if args.q_channels is not None:
        options["q_channels"] = args.q_channels
    if args.value_bound is not None:
        if args.planner not in ("vin", "sym_vin"):
            raise ValueError(f"--value-bound applies to vin and sym_vin, not {args.planner}")
        options["value_bound"] = args.value_bound
    if args.free_step:
        if args.planner in ("vin", "sym_vin") and args.value_bound is None:
            options["value_bound"] = None
        elif args.planner in ("conv_gppn", "gppn"):
            options["contractive"] = False
        else:
            raise ValueError(
                f"--free-step applies to vin, sym_vin (without --value-bound), conv_gppn and gppn, not {args.planner}"
            )
    return planner_config(args.planner, **options)


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
        stem, suffix = os.path.splitext(name)
        for path in (out / name, *out.glob(f".{stem}.*.tmp{suffix}")):
            path.unlink(missing_ok=True)


def _validate_train(args) -> TrainConfig:
    """Every check of the training options that needs no data, before any file or directory is made;
    returns the training configuration."""
    if args.task == "arm" and args.dataset is not None:
        raise ValueError("--dataset reads maze files; arm datasets are generated (--size is the bins per joint)")
    if args.dataset is not None and not args.dataset.is_file():
        raise FileNotFoundError(f"--dataset {args.dataset}: no such file")
    if args.command == "demo":
        try:
            import imageio.v3  # noqa: F401
        except ImportError:
            raise ValueError('the demo writes a GIF, which needs imageio: pip install "idplan[render]"') from None
    _check_out(args.out, args.overwrite)
    build_planner(_planner_config(args, torus=args.task == "arm"))  # options the planner refuses
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        jacobian_weight=args.jacobian_weight,
    )
    if args.dataset is None:
        counts = (args.n_train, args.n_valid, args.n_test)
        check_memory(counts, args.size, f"idplan {args.command}", arm=args.task == "arm")
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


def _summary(args, tasks: dict[str, MazeDataset], best: BestEpoch, seconds: float) -> dict[str, Any]:
    return {
        "task": args.task,
        "planner": args.planner,
        "mode": args.mode,
        "iterations": args.iterations,
        "size": tasks["test"].size,
        "train_maps": len(tasks["train"]),
        "epochs": args.epochs,
        "epochs_completed": best.last_epoch,
        "interrupted": False,
        "best_epoch": best.epoch,
        "train_seconds": round(seconds, 1),
    }


def _save_interrupted(args, planner, config, best: BestEpoch, tasks, seconds: float) -> Interrupted:
    """After Ctrl-C: save the best epoch's weights (``checkpoint.pt``, as a finished run) and the last
    completed epoch's (``last.pt``) and the summary, marked interrupted; returns the one-line report."""
    checkpoint, last = args.out / "checkpoint.pt", args.out / "last.pt"
    summary = _summary(args, tasks, best, seconds)
    summary.update(interrupted=True, metrics=str(args.out / "metrics.csv"))
    size = tasks["test"].size
    with _no_interrupts():
        if best.state is not None:
            save_checkpoint(last, planner, config, epochs=best.restore_last(), size=size, interrupted=True)
            save_checkpoint(checkpoint, planner, config, epochs=best.restore(), size=size, interrupted=True)
            summary.update(checkpoint=str(checkpoint), last_checkpoint=str(last))
        atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2))
    if best.state is None:
        return Interrupted(f"interrupted during epoch 1 of {args.epochs}: no epoch completed, no checkpoint saved")
    return Interrupted(
        f"interrupted after epoch {best.last_epoch} of {args.epochs}: best checkpoint (epoch {best.epoch}) "
        f"saved to {checkpoint}, the last epoch's weights to {last}"
    )


def _train(args) -> tuple[Planner, dict[str, Any], dict[str, MazeDataset | ArmDataset]]:
    """Build, train and test a planner from the parsed options; writes checkpoint and metrics to ``args.out``.

    All options are checked before any data is generated or any directory made."""
    train_config = _validate_train(args)
    data = _datasets(args)
    tasks = {split: _tasks(d) for split, d in data.items()}
    config = _planner_config(args, torus=tasks["train"].torus)
    torch.manual_seed(args.seed)
    planner = build_planner(config)
    _prepare_out(args.out, args.overwrite)
    best = BestEpoch(planner)

    checkpoint = args.out / "checkpoint.pt"
    start = time.perf_counter()
    try:
        history = train_planner(
            planner, tasks["train"], tasks["valid"], train_config, args.out, not args.quiet, on_epoch_end=best
        )
        train_seconds = time.perf_counter() - start
        best.restore()  # test the epoch with the best validation success
        test = evaluate_planner(planner, tasks["test"], device=args.device)
    except TrainingDiverged as error:
        if best.state is None:
            raise
        save_checkpoint(checkpoint, planner, config, epochs=best.restore(), size=tasks["test"].size)
        raise TrainingDiverged(f"{error}; the best weights (epoch {best.epoch}) are saved in {checkpoint}") from error
    except KeyboardInterrupt:
        raise _save_interrupted(args, planner, config, best, tasks, time.perf_counter() - start) from None
    save_checkpoint(checkpoint, planner, config, test=test, epochs=best.epoch, size=tasks["test"].size)
    summary = {
        **_summary(args, tasks, best, train_seconds),
        "test": {k: round(v, 4) if isinstance(v, float) else v for k, v in test.items()},
        "final_loss": round(history[-1]["loss"], 4),
        "checkpoint": str(checkpoint),
        "metrics": str(args.out / "metrics.csv"),
    }
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2))
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
        raise SystemExit('writing the GIF needs imageio: pip install "idplan[render]"') from error
    from .runtime.play import record_rollout

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


def cmd_train(args) -> dict[str, Any]:
    _, summary, _ = _train(args)
    return summary


def cmd_demo(args) -> dict[str, Any]:
    planner, summary, data = _train(args)
    summary["rollout"] = render_rollout(planner, data["test"], args.out / "rollout.gif", args.device, args.seed)
    atomic_write_text(args.out / "summary.json", json.dumps(summary, indent=2))
    return summary


def cmd_eval(args) -> dict[str, Any]:
    if args.dataset is not None and args.size is not None:
        raise ValueError("give --dataset FILE or --size N (generated test mazes), not both")
    if args.dataset is not None and not args.dataset.is_file():
        raise FileNotFoundError(f"--dataset {args.dataset}: no such file")
    if args.size is not None:
        check_memory((1, 1, args.n), args.size, "idplan eval --size")
    planner, extra = load_checkpoint(args.checkpoint, args.device)
    if args.dataset is not None:
        data = load_maze_file(args.dataset, args.split)
        source = str(args.dataset)
    else:
        size, own = args.size, ""
        if size is None:  # the map size the checkpoint was trained on
            size = extra.get("size")
            if not isinstance(size, int) or size < 1:
                raise ValueError(
                    f"{args.checkpoint} does not record its map size: give --dataset FILE or --size N (generated mazes)"
                )
            check_memory((1, 1, args.n), size, "idplan eval")
            own = "; the checkpoint's own map size, as neither --dataset nor --size was given"
        # seeded apart from the default training seeds, so these mazes are new
        data = generate_splits(size, 1, 1, args.n, seed=args.seed + 10_000, progress=False)["test"]
        source = f"{args.n} generated {size}x{size} mazes (seed {args.seed + 10_000}{own})"
    if args.limit is not None:
        data = data[: args.limit]
    metrics = evaluate_planner(planner, data, device=args.device)
    return {
        "checkpoint": str(args.checkpoint),
        "dataset": source,
        "split": args.split,
        "maps": len(data),
        **{k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()},
    }


def _version() -> str:
    try:
        return metadata.version("idplan")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="idplan", description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="train and evaluate a small implicit planner, render a rollout GIF",
        description="Train an implicit GatedVIN on 2,000 generated 15x15 mazes for 6 epochs, test it on 500 "
        "held-out mazes and render a rollout GIF (minutes on a CPU).",
        formatter_class=HelpFormatter,
    )
    _add_planner_options(demo, planner="gated_vin", epochs=6, n_train=2000, lr=2e-3)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"), help="directory of the run's files")
    demo.set_defaults(run=cmd_demo)
    train = commands.add_parser(
        "train",
        help="train a planner by imitation",
        description="Train a planner by imitation of shortest paths. A bare `idplan train` generates 10,000 "
        "15x15 training mazes (plus 200 validation and 500 test mazes) and trains the implicit VIN for "
        "30 epochs into runs/train; the options below change each of these.",
        formatter_class=HelpFormatter,
    )
    _add_planner_options(train, planner="vin", epochs=30, n_train=10_000, lr=1e-3)
    train.add_argument("--out", type=Path, default=Path("runs/train"), help="directory of the run's files")
    train.set_defaults(run=cmd_train)
    evaluate = commands.add_parser(
        "eval",
        help="evaluate a checkpoint on a dataset file or on generated mazes",
        description="Evaluate a checkpoint on a dataset file (--dataset), on generated mazes of a size "
        "(--size), or, with neither, on generated mazes of the checkpoint's own map size.",
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument("checkpoint", type=Path, help="a checkpoint written by idplan train or demo")
    evaluate.add_argument("--dataset", type=Path, help="ours or the community format")
    evaluate.add_argument(
        "--size",
        type=positive_int,
        help="instead of --dataset: evaluate on generated mazes of this size (neither: the checkpoint's size)",
    )
    evaluate.add_argument("--n", type=positive_int, default=500, help="number of generated mazes")
    evaluate.add_argument("--seed", type=int, default=0, help="generated mazes use seed + 10000")
    evaluate.add_argument("--split", choices=SPLITS, default="test", help="split of a community file")
    evaluate.add_argument("--limit", type=positive_int, default=None, help="evaluate on the first N maps only")
    evaluate.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    evaluate.set_defaults(run=cmd_eval)
    play = commands.add_parser(
        "play",
        help="run an agent in a pygame window, or record it to a GIF",
        description="Run an agent in an environment: in a pygame window (space pauses, right steps, r resets, "
        "v toggles the overlay, q quits) or, with --record or without a display, to a GIF.",
        formatter_class=HelpFormatter,
    )
    play.add_argument("env_id", help="e.g. idplan/GridMaze-v0, idplan/ArmCSpace-v0, idplan/Pendulum-v0")
    play.add_argument("--agent", default="expert", help="a planner checkpoint, expert, random or mpc")
    play.add_argument("--record", type=Path, default=None, help="write a GIF here instead of opening a window")
    play.add_argument("--seed", type=int, default=0, help="seed of the first episode (then +1 per episode)")
    play.add_argument("--episodes", type=positive_int, default=1, help="episodes to run")
    play.add_argument("--max-steps", type=positive_int, default=500, help="steps per episode at most")
    play.add_argument(
        "--size",
        type=positive_int,
        default=None,
        help="GridMaze/MiniWorldNav map size, the arm's bins per joint, PendulumPixels' frame pixels",
    )
    play.add_argument("--start", default=None, help="Pendulum: random or down; CartPole: down or up")
    play.set_defaults(run=cmd_play)
    return parser


def cmd_play(args) -> dict[str, Any]:
    from .runtime.play import check_env_id, play, play_env_kwargs

    check_env_id(args.env_id)
    env_kwargs = play_env_kwargs(args.env_id, size=args.size, start=args.start)
    if args.record is not None and args.record.suffix.lower() != ".gif":
        raise ValueError(f"--record {args.record}: the recording is a GIF; name a .gif file")
    return play(
        args.env_id,
        args.agent,
        record=args.record,
        seed=args.seed,
        episodes=args.episodes,
        max_steps=args.max_steps,
        env_kwargs=env_kwargs,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except (ValueError, FileNotFoundError, TrainingDiverged) as error:
        print(f"idplan {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line, no traceback, the shell's code for SIGINT
        print(f"idplan {args.command}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    for key, value in result.items():
        if not isinstance(value, dict):
            print(f"{key}: {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
