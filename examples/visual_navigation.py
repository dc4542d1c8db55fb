"""Visual navigation in MiniWorld 3D mazes (the implicit differentiable planning paper's Table 1, last column).

The planner never sees the maze: a visual mapper (appendix D.1) turns the panoramas of every cell,
rendered live by MiniWorld, into an occupancy map, and a planner (implicit or explicit VIN, SymVIN,
ConvGPPN) plans on it. Mapper and planner are trained together from scratch on the expert's
actions (the mapper by autograd, an implicit planner by its implicit adjoint), with an auxiliary
map loss (``--map-weight``, 0 to turn it off); the epoch with the best validation success is kept
and tested on unseen mazes, from every start cell, seeing only panoramas.

    python examples/visual_navigation.py                                   # 15x15, six planners, K = 30
    python examples/visual_navigation.py --planners conv_gppn,vin --modes implicit --implicit-iterations 100
    python examples/visual_navigation.py --planners conv_gppn --modes implicit --n-train 200 --epochs 3

The dataset (GPPN-style mazes, distinct across splits) is rendered once and cached in
``--data-dir``, beside a checkpoint of each trained pair (``idplan play idplan/MiniWorldNav-v0
--agent runs/visual_nav/ID-conv_gppn.pt --record nav.gif`` plays one). Writes a GIF of a test rollout (first-person view, MiniWorld's top view, the
predicted map with the value overlay; the first test maze the model solves from its farthest start)
and ends with a JSON line of all results.
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
from idplan.agents.mappers.panorama import PanoramaMapper
from idplan.agents.runtime.interactive import record_rollout
from idplan.agents.runtime.planner_agents import MappedPlannerAgent
from idplan.agents.training import evaluate_mapped, train_end_to_end
from idplan.agents.training.checkpoints import planner_config, save_checkpoint
from idplan.agents.training.imitation import BestEpoch, TrainConfig
from idplan.envs import SPLITS, VisualNavDataset, generate_visual_nav_splits, greedy_rollouts
from idplan.envs.records import add_record_argument, emit_result


def load_or_generate(args) -> dict[str, VisualNavDataset]:
    """The three splits, from ``--data-dir`` when rendered before with the same settings."""
    directory = Path(args.data_dir)
    counts = dict(zip(SPLITS, (args.n_train, args.n_valid, args.n_test)))
    paths = {
        name: directory / f"visual_nav{args.size}_seed{args.data_seed}_{name}{counts[name]}.npz" for name in SPLITS
    }
    if all(p.is_file() for p in paths.values()):
        return {name: VisualNavDataset.load(path) for name, path in paths.items()}
    start = time.perf_counter()
    data = generate_visual_nav_splits(args.size, *counts.values(), seed=args.data_seed, workers=args.workers)
    print(f"rendered {sum(counts.values())} mazes in {time.perf_counter() - start:.0f} s", flush=True)
    directory.mkdir(parents=True, exist_ok=True)
    for name, path in paths.items():
        data[name].save(path)
    return data


def train_best(model: MappedPlanner, data, config: TrainConfig, map_weight: float) -> int:
    """Train end to end, keep the weights of the epoch with the best validation success; returns that epoch."""
    best = BestEpoch(model)

    def keep(row):
        best(row)
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)

    train_end_to_end(model, data["train"], data["valid"], config, map_weight, progress=False, on_epoch_end=keep)
    return best.restore()


@torch.no_grad()
def showcase_maze(model: MappedPlanner, data: VisualNavDataset, device: str, limit: int = 20) -> int:
    """The first of the first ``limit`` test mazes that the model (on ``device``) solves from its
    farthest start (0 if none): the model sees only panoramas, the rollout runs on the true map."""
    model.eval()
    view = data.torch_dataset()
    for i in range(min(limit, len(data))):
        out, _ = model(view.observations[i : i + 1].to(device), view.inputs[i : i + 1, 1:].to(device))
        tasks = data.tasks[i]
        farthest = tasks.distances == tasks.distances.max()
        actions = out.logits.argmax(1).cpu().numpy()
        steps = greedy_rollouts(tasks.free, tasks.goals, actions, farthest, tasks.moves)
        if (steps[farthest] >= 0).all():
            return i
    return 0


def render_visual_rollout(model: MappedPlanner, data: VisualNavDataset, path: Path, device: str, seed: int = 0) -> dict:
    """Play the model in ``idplan/MiniWorldNav-v0`` on a test maze (:func:`showcase_maze`) from its
    farthest start cell and write a GIF; the rollout stops at the goal or when the greedy policy
    revisits a cell."""
    import gymnasium as gym

    import idplan.envs  # noqa: F401  (registers the environments)

    maze, tasks = showcase_maze(model, data, device), data.tasks
    start = np.unravel_index(int(tasks.distances[maze].argmax()), tasks.distances[maze].shape)
    options = {"map": (~tasks.free[maze]).astype(np.int8), "goal": tuple(tasks.goals[maze]), "start": start}
    env = gym.make("idplan/MiniWorldNav-v0", size=data.size, view_size=data.view_size, render_mode="rgb_array")
    summary = record_rollout(env, MappedPlannerAgent(model, device=device), options, path, seed)
    env.close()
    return {**summary, "test_maze": maze}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=15)
    parser.add_argument("--planners", type=lambda s: s.split(","), default=["conv_gppn", "vin", "sym_vin"])
    parser.add_argument("--modes", type=lambda s: s.split(","), default=["implicit", "explicit"])
    parser.add_argument("--iterations", type=int, default=30, help="K: explicit unrolled steps, implicit forward cap")
    parser.add_argument(
        "--implicit-iterations",
        type=int,
        default=None,
        help="forward cap of the implicit planners, if not K (they stop earlier at relative residual 1e-4)",
    )
    parser.add_argument(
        "--value-bound",
        type=float,
        default=None,
        help="implicit VIN/SymVIN: keep each value kernel's L1 norm below this (a contraction), e.g. 0.95",
    )
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-valid", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--map-weight", type=float, default=1.0, help="weight of the auxiliary map BCE (0: off)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="rendering processes")
    parser.add_argument("--data-dir", default="runs/visual_nav")
    parser.add_argument("--gif", type=Path, default=Path("runs/visual_nav_rollout.gif"))
    parser.add_argument("--gif-planner", default="conv_gppn", help="the implicit planner whose rollout is recorded")
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)

    data = load_or_generate(args)
    rows = []
    for name in args.planners:
        for mode in args.modes:
            torch.manual_seed(args.seed)
            iterations = (
                args.implicit_iterations if mode == "implicit" and args.implicit_iterations else args.iterations
            )
            options = {"mode": mode, "iterations": iterations}
            if mode == "implicit" and name in ("vin", "sym_vin") and args.value_bound is not None:
                options["value_bound"] = args.value_bound
            model = MappedPlanner(PanoramaMapper(data["train"].view_size), make_planner(name, **options))
            config = TrainConfig(
                epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed, device=args.device
            )
            start = time.perf_counter()
            epoch = train_best(model, data, config, args.map_weight)
            seconds = time.perf_counter() - start
            test = evaluate_mapped(model, data["test"], device=args.device)
            row = {
                "planner": ("ID-" if mode == "implicit" else "") + name,
                "K": iterations,
                "value_bound": options.get("value_bound"),
                "seed": args.seed,
                "best_epoch": epoch,
                "test_success": round(test["success"], 4),
                "test_optimal": round(test["optimal"], 4),
                "test_map_cell_accuracy": round(test["map_cell_accuracy"], 4),
                "train_seconds": round(seconds, 1),
            }
            checkpoint = Path(args.data_dir) / f"{row['planner']}.pt"
            save_checkpoint(
                checkpoint,
                model.planner,
                planner_config(name, **options),
                mapper=model.mapper,
                mapper_config={"name": "panorama", "view_size": data["train"].view_size},
                test=test,
            )
            row["checkpoint"] = str(checkpoint)
            if args.gif and mode == "implicit" and name == args.gif_planner:
                row["rollout"] = render_visual_rollout(model, data["test"], args.gif, args.device, args.seed)
            rows.append(row)
            print(json.dumps(row), flush=True)
    sizes = {name: len(d) for name, d in data.items()}
    emit_result(
        {"task": "visual_navigation", "size": args.size, "mazes": sizes, "epochs": args.epochs, "runs": rows},
        args.record,
        script=__file__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
