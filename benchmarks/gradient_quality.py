"""Gradient quality of implicit planners on *trained* checkpoints (not a test): prints a table per
checkpoint and a final JSON line.

The reference is the exact gradient of the loss at the true fixed point: in float64, the forward
is run to relative residual 1e-12 and the adjoint to 1e-12 (checked), on a batch of validation
maps. Against it, the cosine similarity and norm ratio of:

- ``default``: the planner's default implicit settings in float32 (forward to rel. residual 1e-4
  under a cap that grows with the map, adjoint to 1e-4 under the same cap);
- ``kbwd15``: the defaults with the adjoint truncated at the papers' K_bwd = 15;
- ``authors``: the authors' DE-VIN settings (30 forward iterations, Anderson adjoint stopped at 1e-2);
- ``explicit-30``, ``explicit-80``, ``explicit-5m``: autograd through K unrolled steps (the ADP
  gradient, of a different function unless K reaches the fixed point).

Each checkpoint's line also gives its contraction bound (from the parametrisation) and the
measured max-norm gain of its step at the fixed points of the batch.

    python benchmarks/gradient_quality.py --checkpoint runs/demo/checkpoint.pt [more checkpoints]
    python benchmarks/gradient_quality.py            # trains a VIN for ~1 minute first
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import time

import torch

from idplan.agents.planners.base import Planner
from idplan.agents.training.checkpoints import build_planner, load_checkpoint, planner_config
from idplan.agents.training.imitation import TrainConfig, imitation_loss, train_planner
from idplan.envs import MazeTorchDataset, generate_splits
from idplan.envs.records import add_record_argument, emit_result


def gradient(planner: Planner, inputs: torch.Tensor, actions: torch.Tensor, **settings) -> tuple[torch.Tensor, dict]:
    """The flattened parameter gradient of the imitation loss under the given planner settings."""
    planner = copy.deepcopy(planner)
    settings = dict(settings)
    mode = settings.pop("mode", "implicit")
    adjoint_changes = settings.pop("adjoint", {})  # ImplicitAdjoint options to change
    planner.adjoint = dataclasses.replace(planner.adjoint, **adjoint_changes)
    for key, value in settings.items():
        setattr(planner, key, value)
    planner.zero_grad()
    inputs = inputs.to(next(planner.parameters()).dtype)
    start = time.perf_counter()
    out = planner(inputs, mode=mode)
    imitation_loss(out.logits, actions).backward()
    seconds = time.perf_counter() - start
    flat = torch.cat([p.grad.flatten() for p in planner.parameters() if p.grad is not None]).double()
    return flat, {**out.stats, **out.backward_stats(), "seconds": seconds}


def exact_gradient(planner: Planner, inputs: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, dict, bool]:
    """The reference: float64, forward and adjoint to 1e-12 (caps 20000); and whether both converged."""
    exact, stats = gradient(
        copy.deepcopy(planner).double(),
        inputs,
        actions,
        iterations=20000,
        tol=1e-12,
        adjoint={"max_iter": 20000, "rtol": 1e-12},
    )
    return exact, stats, stats["forward_converged"] == 1.0 and stats.get("backward_converged", 0.0) == 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", help="trained planners (default: train a VIN first)")
    parser.add_argument("--size", type=int, default=15)
    parser.add_argument("--maps", type=int, default=32, help="validation maps in the batch")
    parser.add_argument("--train-maps", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--train-backward-solver", default="gmres", help="adjoint used while training the VIN (conditioning differs)"
    )
    add_record_argument(parser)
    args = parser.parse_args()
    splits = generate_splits(args.size, args.train_maps, args.maps, 8, seed=args.seed, progress=False)
    if args.checkpoint:
        planners = {path: load_checkpoint(path)[0] for path in args.checkpoint}
    else:
        torch.manual_seed(args.seed)
        planner = build_planner(planner_config("vin", adjoint={"linear_solver": args.train_backward_solver}))
        start = time.perf_counter()
        history = train_planner(
            planner, splits["train"], splits["valid"], TrainConfig(epochs=args.epochs, lr=3e-3), progress=False
        )
        source = (
            f"VIN trained ({args.train_backward_solver} adjoint) {args.epochs} epochs on {args.train_maps} {args.size}x{args.size} mazes "
            f"({time.perf_counter() - start:.0f} s, valid success {history[-1]['valid_success']:.3f})"
        )
        planners = {source: planner}
    view = MazeTorchDataset(splits["valid"])
    results = [compare(source, planner, view.inputs, view.actions) for source, planner in planners.items()]
    emit_result({"maps": args.maps, "size": args.size, "results": results}, args.record)


def compare(source: str, planner: Planner, inputs: torch.Tensor, actions: torch.Tensor) -> dict:
    """Cosine of each setting's gradient to the exact one, for one planner."""
    gain = planner.contraction_factor(inputs)
    contraction = {
        "bound": planner.contraction_bound,
        "measured_max": float(gain.max()),
        "measured_mean": float(gain.mean()),
    }
    print(f"planner: {source} ({type(planner).__name__}); contraction bound {contraction['bound']}, "
          f"measured max-norm gain at the fixed points {contraction['measured_max']:.4f} (max), {contraction['measured_mean']:.4f} (mean)")  # fmt: skip
    exact, exact_stats, converged = exact_gradient(planner, inputs, actions)
    print(f"reference: float64, forward rel. residual {exact_stats['forward_rel_residual']:.1e} "
          f"in {exact_stats['forward_iterations']} steps, adjoint {exact_stats.get('backward_rel_residual', float('nan')):.1e}"
          f" in {exact_stats.get('backward_iterations')} steps{'' if converged else '  (NOT CONVERGED: no exact reference)'}")  # fmt: skip
    size = inputs.shape[-1]
    variants = {
        "default": {},
        "kbwd15": {"adjoint": {"max_iter": 15}},
        "authors": {
            "iterations": 30,
            "tol": 1e-30,
            "solver": "forward",
            "adjoint": {"linear_solver": "anderson", "rtol": 1e-2, "max_iter": 50},
        },
        "explicit-30": {"mode": "explicit", "iterations": 30},
        "explicit-80": {"mode": "explicit", "iterations": 80},
        f"explicit-5m ({5 * size})": {"mode": "explicit", "iterations": None},
    }
    rows = {}
    for name, settings in variants.items():
        g, stats = gradient(planner.float(), inputs, actions, **settings)
        cosine = float(torch.nn.functional.cosine_similarity(g, exact, dim=0))
        rows[name] = {"cosine": cosine, "norm_ratio": float(g.norm() / exact.norm()), **stats}
        print(
            f"  {name:16s} cosine {cosine:.6f}  |g|/|g*| {rows[name]['norm_ratio']:.4f}  "
            f"forward {stats['forward_iterations']} steps, rel.res {stats['forward_rel_residual']:.1e}"
            + (
                f"; adjoint {stats['backward_iterations']} steps, rel.res {stats['backward_rel_residual']:.1e}"
                if "backward_iterations" in stats
                else ""
            )
        )
    return {
        "planner": source,
        "kind": type(planner).__name__,
        "contraction": contraction,
        "reference_converged": converged,
        "reference": exact_stats,
        "rows": rows,
    }


if __name__ == "__main__":
    main()
