"""2-DOF arm manipulation (the implicit differentiable planning paper's Table 1, at CPU scale).

C-space task: planners trained by imitation on the arm's configuration space (a torus, circular
padding), implicit and explicit, each tested on held-out tasks (success from every start cell).
Workspace task: the workspace mapper (a residual U-Net, 96x96 image -> C-space) and a planner are
pre-trained separately, then trained end to end; at test time they see only the workspace image.

    python examples/arm_manipulation.py                               # C-space 18x18, K = 30
    python examples/arm_manipulation.py --bins 36 --iterations 50
    python examples/arm_manipulation.py --workspace --planners conv_gppn  # mapper + planner

Writes a rollout GIF of the best implicit planner (arm workspace beside its C-space) and ends with
a JSON line of all results.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from idplan.agents import make_planner
from idplan.agents.cli import device
from idplan.agents.mappers import MappedPlanner
from idplan.agents.mappers.workspace import WorkspaceMapper
from idplan.agents.training import (
    BestEpoch,
    TrainConfig,
    TrainingDiverged,
    evaluate_mapped,
    train_end_to_end,
    train_mapper,
    train_planner,
)
from idplan.agents.training.evaluation import evaluate_planner
from idplan.agents.training.runs import render_rollout
from idplan.envs import generate_arm_splits
from idplan.envs.records import add_record_argument, emit_result


def planner_options(name: str, mode: str, args) -> dict:
    """Circular padding (the C-space is a torus); implicit VIN and SymVIN get the value-kernel bound
    that makes their step a contraction (on a torus no wall absorbs value, and without it their
    fixed point blew up within the first epoch here)."""
    options = {"padding": "circular", "mode": mode, "iterations": args.iterations}
    if mode == "implicit" and name in ("vin", "sym_vin") and args.value_bound is not None:
        options["value_bound"] = args.value_bound
    return options


def train_best(planner, data, config: TrainConfig) -> tuple[int, bool]:
    """Train by imitation, keep the weights of the epoch with the best validation success; returns
    that epoch (0: none) and whether training diverged."""
    best = BestEpoch(planner)
    try:
        train_planner(planner, data["train"].tasks, data["valid"].tasks, config, progress=False, on_epoch_end=best)
        diverged = False
    except TrainingDiverged as error:  # reported as a diverged run (as the paper marks them), tested at its best epoch
        print(f"diverged: {error}", flush=True)
        diverged = True
    return best.restore(), diverged


def cspace_runs(args, data) -> list[dict]:
    rows = []
    for name in args.planners:
        for mode in args.modes:
            for seed in args.seeds:
                torch.manual_seed(seed)
                planner = make_planner(name, **planner_options(name, mode, args))
                start = time.perf_counter()
                config = TrainConfig(
                    epochs=args.epochs,
                    lr=args.lr,
                    seed=seed,
                    jacobian_weight=args.jacobian_weight if mode == "implicit" else 0.0,
                    device=args.device,
                )
                epoch, diverged = train_best(planner, data, config)
                test = evaluate_planner(planner, data["test"].tasks, device=args.device)
                row = {
                    "planner": ("ID-" if mode == "implicit" else "") + name,
                    "mode": mode,
                    "K": args.iterations,
                    "seed": seed,
                    "best_epoch": epoch,
                    "diverged": diverged,
                    "test_success": round(test["success"], 4),
                    "test_optimal": round(test["optimal"], 4),
                    "train_seconds": round(time.perf_counter() - start, 1),
                }
                rows.append(row)
                print(json.dumps(row), flush=True)
                if mode == "implicit" and args.gif and test["success"] >= max(r["test_success"] for r in rows):
                    rows[-1]["rollout"] = render_rollout(planner, data["test"], args.gif, args.device, seed)
    return rows


def workspace_runs(args, data) -> list[dict]:
    rows = []
    for name in args.planners:
        for seed in args.seeds:
            torch.manual_seed(seed)
            start = time.perf_counter()
            mapper = WorkspaceMapper(args.bins)
            mapper_history = train_mapper(
                mapper,
                data["train"],
                data["valid"],
                TrainConfig(epochs=args.mapper_epochs, lr=1e-3, seed=seed, device=args.device),
                progress=False,
            )
            planner = make_planner(name, **planner_options(name, "implicit", args))
            train_best(planner, data, TrainConfig(epochs=args.epochs, lr=args.lr, seed=seed, device=args.device))
            model = MappedPlanner(mapper, planner)
            pretrained = evaluate_mapped(model, data["test"], device=args.device)
            train_end_to_end(
                model,
                data["train"],
                data["valid"],
                TrainConfig(epochs=args.joint_epochs, lr=args.lr / 2, seed=seed, device=args.device),
                args.map_weight,
                progress=False,
            )
            test = evaluate_mapped(model, data["test"], device=args.device)
            row = {
                "planner": f"ID-{name} + mapper",
                "K": args.iterations,
                "seed": seed,
                "mapper_valid_cell_accuracy": round(mapper_history[-1]["valid_cell_accuracy"], 4),
                "test_success_pretrained": round(pretrained["success"], 4),
                "test_success": round(test["success"], 4),
                "test_map_cell_accuracy": round(test["map_cell_accuracy"], 4),
                "train_seconds": round(time.perf_counter() - start, 1),
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bins", type=int, default=18)
    parser.add_argument("--planners", type=lambda s: s.split(","), default=["vin", "sym_vin", "conv_gppn"])
    parser.add_argument("--modes", type=lambda s: s.split(","), default=["implicit", "explicit"])
    parser.add_argument("--iterations", type=int, default=30, help="K: explicit unrolled steps, implicit forward cap")
    parser.add_argument("--seeds", type=lambda s: [int(v) for v in s.split(",")], default=[0])
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-valid", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--value-bound", type=float, default=0.95, help="implicit VIN/SymVIN value-kernel L1 bound")
    parser.add_argument("--jacobian-weight", type=float, default=0.0, help="Jacobian regularisation of implicit runs")
    parser.add_argument("--workspace", action="store_true", help="the workspace task: mapper + planner")
    parser.add_argument("--mapper-epochs", type=int, default=15)
    parser.add_argument("--joint-epochs", type=int, default=5)
    parser.add_argument("--map-weight", type=float, default=1.0, help="auxiliary BCE weight in end-to-end training")
    parser.add_argument("--gif", type=Path, default=Path("examples/results/arm_rollout.gif"), help="'' for none")
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    args.gif = args.gif if str(args.gif) not in ("", ".") else None
    start = time.perf_counter()
    data = generate_arm_splits(args.bins, args.n_train, args.n_valid, args.n_test, seed=0, progress=False)
    if args.gif:
        args.gif.parent.mkdir(parents=True, exist_ok=True)
    rows = workspace_runs(args, data) if args.workspace else cspace_runs(args, data)
    print(f"\n{'planner':<26} {'K':>3} {'seed':>4} {'test success':>12}")
    for row in rows:
        print(f"{row['planner']:<26} {row['K']:>3} {row['seed']:>4} {100 * row['test_success']:>11.1f}%")
    summary = {
        "example": "arm_manipulation",
        "task": "workspace" if args.workspace else "cspace",
        "bins": args.bins,
        "train_tasks": args.n_train,
        "epochs": args.epochs,
        "results": rows,
        "wall_seconds": round(time.perf_counter() - start),
    }
    emit_result(summary, args.record, script=__file__, argv=argv)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
