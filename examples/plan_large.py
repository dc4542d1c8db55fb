"""Train small, plan large (IDPlan Fig. 10): a planner trained on small mazes, evaluated on larger
generated mazes with its forward run to convergence (the cap grows with the map: max(200, 2 m*m)).
Prints a table, writes a plot of success against size, and ends with a JSON line.

    idplan demo --out runs/demo                     # a GatedVIN trained on 15x15 mazes
    python examples/plan_large.py runs/demo/checkpoint.pt --sizes 15 27 49 99 --n 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from idplan.agents.cli import device
from idplan.agents.training.checkpoints import load_checkpoint
from idplan.agents.training.evaluation import evaluate_planner
from idplan.envs import generate_splits
from idplan.envs.atomic import atomic_path
from idplan.envs.records import add_record_argument, emit_result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 27, 49, 99])
    parser.add_argument("--n", type=int, default=100, help="test mazes per size")
    parser.add_argument("--seed", type=int, default=20_000, help="seeds the test mazes (apart from training seeds)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--plot", type=Path, default=None, help="default: plan_large.png beside the checkpoint")
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    planner, extra = load_checkpoint(args.checkpoint, args.device)
    trained_on = extra.get("size")
    rows = []
    print(f"{args.checkpoint}: {type(planner).__name__} trained on {trained_on}x{trained_on} mazes")
    print("| size | success | optimal | SPL | forward iterations | rel. residual | converged | seconds |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        data = generate_splits(size, 1, 1, args.n, seed=args.seed + size, progress=False)["test"]
        start = time.perf_counter()
        metrics = evaluate_planner(planner, data, batch_size=args.batch_size, device=args.device)
        row = {"size": size, "maps": args.n, "seconds": round(time.perf_counter() - start, 1), **metrics}
        rows.append(row)
        print(
            f"| {size} | {row['success']:.4f} | {row['optimal']:.4f} | {row['spl']:.4f} | {row['forward_iterations']:.0f} "
            f"| {row['forward_rel_residual']:.1e} | {row['forward_converged']:.3f} | {row['seconds']} |",
            flush=True,
        )
    plot(rows, args.plot or args.checkpoint.parent / "plan_large.png", trained_on, type(planner).__name__)
    emit_result(
        {"example": "plan_large", "checkpoint": str(args.checkpoint), "trained_on": trained_on, "rows": rows},
        args.record,
        script=__file__,
        argv=argv,
    )


def plot(rows: list[dict], path: Path, trained_on: int | None, name: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    sizes = [r["size"] for r in rows]
    ax.plot(sizes, [r["success"] for r in rows], "-o", label="success")
    ax.plot(sizes, [r["optimal"] for r in rows], "--s", label="optimal")
    if trained_on:
        ax.axvline(trained_on, color="grey", lw=0.8, ls=":", label=f"trained on {trained_on}x{trained_on}")
    ax.set_xlabel("test maze size m")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{name}: train small, plan large")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)


if __name__ == "__main__":
    main()
