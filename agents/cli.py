"""The ``idplan`` command line: ``idplan demo``, ``idplan train``, ``idplan eval``, ``idplan play``.

    idplan demo --out runs/demo                       # small maze, trained and evaluated in minutes on CPU
    idplan train --planner vin --mode implicit --size 15 --epochs 30 --out runs/vin15
    idplan train --dataset ../shared/data/diffplan_m15_4abs-cc_10k.npz --planner conv_gppn --out runs/cc
    idplan train --task arm --size 18 --planner sym_vin --out runs/arm18   # C-space of a 2-link arm (torus)
    idplan eval runs/vin15/checkpoint.pt --dataset ../shared/data/diffplan_m15_4abs-cc_10k.npz
    idplan eval runs/demo/checkpoint.pt --size 27 --n 500     # generalisation to larger generated mazes
    idplan play idplan/GridMaze-v0 --agent runs/demo/checkpoint.pt   # a window (space, right, r, v, q)
    idplan play idplan/Pendulum-v0 --agent mpc --start down --record runs/pendulum.gif

Every command ends its standard output with one JSON line of its results.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..envs.arm_dataset import ArmDataset, generate_arm_splits
from ..envs.maze_dataset import MazeDataset, generate_splits, load_maze_file
from . import MODES, PLANNERS
from .checkpoint import build_planner, load_checkpoint, planner_config, save_checkpoint
from .evaluation import evaluate_planner
from .imitation import BestEpoch, TrainConfig, TrainingDiverged, train_planner
from .planner import Planner
from .planner_agent import PlannerAgent


def positive_int(value: str) -> int:
    """An argparse type: an integer >= 1 (a bad value ends in argparse's ``error:`` line, exit 2)."""
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {number}")
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


def _add_planner_options(p: argparse.ArgumentParser, planner: str, epochs: int, n_train: int, lr: float) -> None:
    p.add_argument("--planner", choices=sorted(PLANNERS), default=planner)
    p.add_argument("--mode", choices=MODES, default="implicit")
    p.add_argument(
        "--task",
        choices=["maze", "arm"],
        default="maze",
        help="maze: 2D navigation; arm: the 2-link arm's C-space (a torus; planners use circular padding)",
    )
    p.add_argument("--size", type=positive_int, default=15, help="map size of generated datasets (arm: bins per joint)")
    p.add_argument("--generator", choices=["maze", "obstacles"], default="maze", help="generated map kind")
    p.add_argument("--dataset", type=Path, help="train on this file (ours or community format) instead of generating")
    p.add_argument("--n-train", type=positive_int, default=n_train)
    p.add_argument("--n-valid", type=positive_int, default=200)
    p.add_argument("--n-test", type=positive_int, default=500)
    p.add_argument(
        "--iterations",
        type=positive_int,
        default=None,
        help="explicit: unrolled steps K (default 5 m); implicit: forward cap (default max(200, 2 m*m))",
    )
    p.add_argument(
        "--tol", type=float, default=None, help="implicit forward relative tolerance (default: the planner's)"
    )
    p.add_argument(
        "--solver", default=None, help="implicit forward solver: forward, anderson, broyden (default: the planner's)"
    )
    p.add_argument(
        "--backward-solver", default=None, help="implicit adjoint solver: gmres, anderson, ... (default: the planner's)"
    )
    p.add_argument(
        "--backward-iterations",
        type=positive_int,
        default=None,
        help="implicit adjoint cap K_bwd (default: the forward cap, so that the adjoint runs to tolerance)",
    )
    p.add_argument("--q-channels", type=positive_int, default=None, help="Q / hidden channels (default: the planner's)")
    p.add_argument("--kernel-size", type=positive_int, default=3)
    p.add_argument(
        "--value-bound",
        type=float,
        default=None,
        help="vin/sym_vin: keep each value kernel's L1 norm below this (< 1: a contraction; default 0.99 in implicit mode)",
    )
    p.add_argument(
        "--free-step",
        action="store_true",
        help="vin, sym_vin, conv_gppn, gppn: the papers' unbounded step, which need not contract (default in explicit mode)",
    )
    p.add_argument("--epochs", type=positive_int, default=epochs)
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument(
        "--jacobian-weight",
        type=float,
        default=0.0,
        help="Jacobian regularisation: weight of the step's ||df/dz||_F^2 / N (pushes it to contract)",
    )
    p.add_argument("--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _datasets(args) -> dict[str, MazeDataset | ArmDataset]:
    if args.task == "arm":
        if args.dataset is not None:
            raise ValueError("--dataset reads maze files; arm datasets are generated (--size is the bins per joint)")
        return generate_arm_splits(
            args.size, args.n_train, args.n_valid, args.n_test, seed=args.seed, progress=not args.quiet
        )
    if args.dataset is not None:
        return {split: load_maze_file(args.dataset, split) for split in ("train", "valid", "test")}
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


def _train(args) -> tuple[Planner, dict[str, Any], dict[str, MazeDataset | ArmDataset]]:
    """Build, train and test a planner from the parsed options; writes checkpoint and metrics to ``args.out``."""
    data = _datasets(args)
    tasks = {split: _tasks(d) for split, d in data.items()}
    options = dict(
        padding="circular" if tasks["train"].torus else "zeros",
        mode=args.mode,
        iterations=args.iterations,
        tol=args.tol,
        solver=args.solver,
        backward_solver=args.backward_solver,
        backward_iterations=args.backward_iterations,
        kernel_size=args.kernel_size,
    )
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
    config = planner_config(args.planner, **options)
    torch.manual_seed(args.seed)
    planner = build_planner(config)
    args.out.mkdir(parents=True, exist_ok=True)
    train_config = TrainConfig(
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        device=args.device,
        jacobian_weight=args.jacobian_weight,
    )
    best = BestEpoch(planner)

    checkpoint = args.out / "checkpoint.pt"
    start = time.perf_counter()
    try:
        history = train_planner(
            planner, tasks["train"], tasks["valid"], train_config, args.out, not args.quiet, on_epoch_end=best
        )
    except TrainingDiverged as error:
        if best.state is None:
            raise
        save_checkpoint(checkpoint, planner, config, epochs=best.restore(), size=tasks["test"].size)
        raise TrainingDiverged(f"{error}; the best weights (epoch {best.epoch}) are saved in {checkpoint}") from error
    train_seconds = time.perf_counter() - start
    best.restore()  # test the epoch with the best validation success
    test = evaluate_planner(planner, tasks["test"], device=args.device)
    save_checkpoint(checkpoint, planner, config, test=test, epochs=best.epoch, size=tasks["test"].size)
    summary = {
        "task": args.task,
        "planner": args.planner,
        "mode": args.mode,
        "iterations": args.iterations,
        "size": tasks["test"].size,
        "train_maps": len(tasks["train"]),
        "epochs": args.epochs,
        "best_epoch": best.epoch,
        "train_seconds": round(train_seconds, 1),
        "test": {k: round(v, 4) if isinstance(v, float) else v for k, v in test.items()},
        "final_loss": round(history[-1]["loss"], 4),
        "checkpoint": str(checkpoint),
        "metrics": str(args.out / "metrics.csv"),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
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
    from .play import record_rollout

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
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def cmd_eval(args) -> dict[str, Any]:
    planner, extra = load_checkpoint(args.checkpoint, args.device)
    if (args.dataset is None) == (args.size is None):
        raise ValueError("give either --dataset FILE or --size N (generated test mazes)")
    if args.dataset is not None:
        data = load_maze_file(args.dataset, args.split)
        source = str(args.dataset)
    else:
        # seeded apart from the default training seeds, so these mazes are new
        data = generate_splits(args.size, 1, 1, args.n, seed=args.seed + 10_000, progress=False)["test"]
        source = f"{args.n} generated {args.size}x{args.size} mazes (seed {args.seed + 10_000})"
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="idplan", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train and evaluate a small implicit planner, render a rollout GIF")
    _add_planner_options(demo, planner="gated_vin", epochs=6, n_train=2000, lr=2e-3)
    demo.add_argument("--out", type=Path, default=Path("runs/demo"))
    demo.set_defaults(run=cmd_demo)
    train = commands.add_parser("train", help="train a planner by imitation")
    _add_planner_options(train, planner="vin", epochs=30, n_train=10_000, lr=1e-3)
    train.add_argument("--out", type=Path, default=Path("runs/train"))
    train.set_defaults(run=cmd_train)
    evaluate = commands.add_parser("eval", help="evaluate a checkpoint on a dataset file")
    evaluate.add_argument("checkpoint", type=Path)
    evaluate.add_argument("--dataset", type=Path, help="ours or the community format")
    evaluate.add_argument(
        "--size", type=positive_int, help="instead of --dataset: evaluate on generated mazes of this size"
    )
    evaluate.add_argument("--n", type=positive_int, default=500, help="number of generated mazes (with --size)")
    evaluate.add_argument("--seed", type=int, default=0)
    evaluate.add_argument("--split", default="test", help="split of a community file (train, valid, test)")
    evaluate.add_argument("--limit", type=positive_int, default=None, help="evaluate on the first N maps only")
    evaluate.add_argument("--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu")
    evaluate.set_defaults(run=cmd_eval)
    play = commands.add_parser("play", help="run an agent in a pygame window, or record it to a GIF")
    play.add_argument("env_id", help="e.g. idplan/GridMaze-v0, idplan/ArmCSpace-v0, idplan/Pendulum-v0")
    play.add_argument("--agent", default="expert", help="a planner checkpoint, expert, random or mpc")
    play.add_argument("--record", type=Path, default=None, help="write a GIF here instead of opening a window")
    play.add_argument("--seed", type=int, default=0)
    play.add_argument("--episodes", type=int, default=1)
    play.add_argument("--max-steps", type=int, default=500)
    play.add_argument("--size", type=int, default=None, help="GridMaze map size, or the arm's bins per joint")
    play.add_argument("--start", default=None, help="Pendulum/CartPole start: random, down, up")
    play.set_defaults(run=cmd_play)
    return parser


def cmd_play(args) -> dict[str, Any]:
    from .play import play

    env_kwargs = {}
    if args.size is not None:
        env_kwargs["bins" if args.env_id.startswith("idplan/Arm") else "size"] = args.size
    if args.start is not None:
        env_kwargs["start"] = args.start
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
    for key, value in result.items():
        if not isinstance(value, dict):
            print(f"{key}: {value}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
