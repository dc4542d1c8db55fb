"""The ``idplan`` command line: argument parsing for ``idplan demo``, ``idplan train``, ``idplan eval``,
``idplan play``; the runs themselves are :mod:`idplan.agents.training.runs` and :mod:`idplan.agents.runtime.interactive`.

    idplan demo --out runs/demo                       # small maze, trained and evaluated in minutes on CPU
    idplan train --planner vin --mode implicit --size 15 --epochs 30 --out runs/vin15
    idplan train --dataset ../shared/data/diffplan_m15_4abs-cc_10k.npz --planner conv_gppn --out runs/cc
    idplan train --task arm --size 18 --planner sym_vin --out runs/arm18   # C-space of a 2-link arm (torus)
    idplan sweep --size 15 --seeds 5 --grid mode=implicit,explicit --out runs/sweep   # Ray Tune: pip install 'idplan[tune]'
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
import sys
from dataclasses import fields
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from ..envs import SPLITS
from ..solvers import LINEAR_SOLVERS, SOLVERS
from .planners import MODES, PLANNERS
from .training.distributed import DEFAULT_TIMEOUT, DistributedError, launcher_rank
from .training.loop import TrainingDiverged
from .training.runs import RUN_FILES, TrainRun, evaluate_checkpoint, train_run


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
    p.add_argument(
        "--dataset", type=Path, help="train on this file (ours, community) or shard directory, not generated data"
    )
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
        "--tensorboard",
        action="store_true",
        help="also log metrics.csv's columns as TensorBoard scalars in OUT/tensorboard "
        "(tensorboard --logdir OUT; pip install 'idplan[tensorboard]')",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help=f"reuse a non-empty --out: first delete the previous run's files there ({', '.join(RUN_FILES)})",
    )
    p.add_argument(
        "--dist-timeout",
        type=positive_float,
        default=DEFAULT_TIMEOUT,
        help="under torchrun: seconds a process waits for the others before the run ends with an error",
    )


def _train_run(args) -> TrainRun:
    """The parsed ``train``/``demo`` options as a :class:`~idplan.agents.training.runs.TrainRun`."""
    names = [f.name for f in fields(TrainRun) if f.name != "rollout"]
    return TrainRun(**{name: getattr(args, name) for name in names}, rollout=args.command == "demo")


def cmd_train(args) -> dict[str, Any]:
    return train_run(_train_run(args))[1]


def cmd_sweep(args) -> dict[str, Any]:
    from .training.sweep import parse_grid, sweep

    if args.gpus_per_trial is None:  # one trial per GPU where trials train on CUDA
        args.gpus_per_trial = 1.0 if torch.device(args.device).type == "cuda" else 0.0
    elif args.gpus_per_trial == 0 and torch.device(args.device).type == "cuda":
        raise ValueError(
            f"--device {args.device} with --gpus-per-trial 0: a trial trains on a GPU only if Ray gives it one"
        )
    seeds = range(args.seed, args.seed + args.seeds)
    result = sweep(
        _train_run(args),
        seeds,
        parse_grid(args.grid, args.parser),
        address=args.address,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        progress=not args.quiet,
    )
    print(result.pop("markdown"))
    return result


def cmd_plot(args) -> dict[str, Any]:
    from .training.plots import plot_training

    return {"figure": str(plot_training(args.run_dir, args.out))}


def cmd_eval(args) -> dict[str, Any]:
    return evaluate_checkpoint(
        args.checkpoint, args.dataset, args.size, args.n, args.seed, args.split, args.limit, args.device
    )


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
    demo.set_defaults(run=cmd_train)
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
    sweep = commands.add_parser(
        "sweep",
        help="train a configuration over seeds and a grid of options on Ray Tune (pip install 'idplan[tune]')",
        description="Run `idplan train` with the options below over --seeds seeds (--seed, --seed + 1, ...) and "
        "every combination of the --grid values, as Ray Tune trials: on a local Ray instance (one trial per core, "
        "or per GPU) or on an existing Ray cluster (--address). Each trial writes its own run files to "
        "OUT/trials/<config>/seed<k>; OUT/sweep.json and OUT/sweep.md hold every trial and, per configuration, "
        "the mean and standard error over seeds (printed as a table). On a cluster of several machines, OUT "
        "must be on a file system every node shares.",
        formatter_class=HelpFormatter,
    )
    _add_planner_options(sweep, planner="vin", epochs=30, n_train=10_000, lr=1e-3)
    sweep.add_argument("--out", type=Path, default=Path("runs/sweep"), help="directory of the sweep's files")
    sweep.add_argument("--seeds", type=positive_int, default=3, help="seeds per configuration, from --seed up")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="OPTION=V1,V2",
        help="a training option and its values (repeat for several: every combination runs), e.g. lr=1e-3,2e-3",
    )
    sweep.add_argument("--address", default=None, help="an existing Ray cluster's address (auto: this node's)")
    sweep.add_argument("--cpus-per-trial", type=positive_float, default=1.0, help="CPU cores Ray reserves per trial")
    sweep.add_argument(
        "--gpus-per-trial",
        type=non_negative_float,
        default=None,
        help="GPUs per trial, may be a fraction (default: 1 when --device is cuda, else 0)",
    )
    sweep.set_defaults(run=cmd_sweep, parser=sweep)
    evaluate = commands.add_parser(
        "eval",
        help="evaluate a checkpoint on a dataset file or on generated mazes",
        description="Evaluate a checkpoint on a dataset file (--dataset), on generated mazes of a size "
        "(--size), or, with neither, on generated mazes of the checkpoint's own map size.",
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument("checkpoint", type=Path, help="a checkpoint written by idplan train or demo")
    evaluate.add_argument("--dataset", type=Path, help="ours, the community format or a shard directory")
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
    play.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    play.set_defaults(run=cmd_play)
    plot = commands.add_parser(
        "plot",
        help="draw a run's training curves (loss, success, solver iterations and residuals) to a PNG",
        formatter_class=HelpFormatter,
    )
    plot.add_argument("run_dir", type=Path, help="a run directory (idplan train/demo --out), with its metrics.csv")
    plot.add_argument("--out", type=Path, default=None, help="the PNG to write (default: RUN_DIR/training.png)")
    plot.set_defaults(run=cmd_plot)
    return parser


def cmd_play(args) -> dict[str, Any]:
    from .runtime.interactive import check_env_id, play, play_env_kwargs

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
        device=args.device,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result = args.run(args)
    except (ValueError, FileNotFoundError, TrainingDiverged, DistributedError) as error:
        print(f"idplan {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:  # Ctrl-C: one line, no traceback, the shell's code for SIGINT
        print(f"idplan {args.command}: {str(interrupt) or 'interrupted'}", file=sys.stderr)
        return 130
    if launcher_rank() != 0:  # under torchrun, rank 0 alone reports
        return 0
    for key, value in result.items():
        if not isinstance(value, dict):
            print(f"{key}: {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
