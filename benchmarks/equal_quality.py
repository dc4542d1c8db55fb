"""Training-step time at equal gradient quality (not a test): ours with defaults against the
authors' DE scheme at the smallest budgets whose gradient reaches the same cosine to the exact one.

On each trained checkpoint and a batch of validation maps, the exact gradient is the float64
reference of ``gradient_quality.py`` (forward and adjoint to 1e-12). Then, in float32:

- ours: the planner's defaults (its forward solver to its ``tol`` under a cap that grows with the
  map, adjoint to 1e-4 to convergence);
- the authors' scheme (``DE-VIN``: plain forward iteration, Anderson adjoint with memory 5), run
  in idplan's implementation of the same planner, with forward cap ``K_f`` and adjoint cap
  ``K_b`` on doubling ladders and their stopping tolerance (1e-4, or 1e-6 where 1e-4 cannot
  reach the target). For each ``K_f`` the smallest ``K_b`` that reaches the target is kept; the
  ladder stops once the smallest ``K_b`` suffices. Of the settings that reach it, the fastest
  (by the median of the timed steps) is theirs.

A training step is the forward and backward of the imitation loss; both sides are timed on the
same batch with interleaved repetitions, medians. Since the authors' scheme runs on our kernels
(``vs_authors.py`` measures our per-step speed against theirs), the ratio isolates the solvers.

    python benchmarks/equal_quality.py --checkpoint runs/gq/gated_vin/checkpoint.pt [more checkpoints]
"""

from __future__ import annotations

import argparse
import statistics

import torch
from gradient_quality import exact_gradient, gradient

from idplan.agents.planners.base import Planner
from idplan.agents.training.checkpoints import load_checkpoint
from idplan.envs import MazeTorchDataset, generate_splits
from idplan.envs.records import add_record_argument, emit_result

FORWARD_LADDER = (30, 60, 120, 240, 480, 960, 1920)
BACKWARD_LADDER = (15, 30, 60, 120, 240, 480)
TOLERANCES = (1e-4, 1e-6)


def authors_settings(forward: int, backward: int, tol: float) -> dict:
    """The DE-VIN scheme with the given caps and stopping tolerance (theirs: 1e-4 for both)."""
    adjoint = {"linear_solver": "anderson", "rtol": tol, "max_iter": backward}
    return {"iterations": forward, "tol": tol, "solver": "forward", "adjoint": adjoint}


def cosine(g: torch.Tensor, exact: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(g, exact, dim=0))


def search_authors(planner: Planner, inputs, actions, exact, target: float) -> tuple[list[dict], dict | None]:
    """Every setting tried (with its cosine and one step's time) and the fastest that reaches ``target``."""
    tried, reached = [], []
    for tol in TOLERANCES:
        for forward in FORWARD_LADDER:
            for backward in BACKWARD_LADDER:
                settings = authors_settings(forward, backward, tol)
                g, stats = gradient(planner, inputs, actions, **settings)
                row = {"tol": tol, "forward_cap": forward, "backward_cap": backward, "cosine": cosine(g, exact)}
                row.update(
                    {k: stats[k] for k in ("seconds", "forward_iterations", "backward_iterations") if k in stats}
                )
                tried.append(row)
                print(
                    f"    authors' scheme tol {tol:.0e} K_f {forward:5d} K_b {backward:4d}: cosine {row['cosine']:.6f}"
                    f"  ({row['seconds']:.3f} s)",
                    flush=True,
                )
                if row["cosine"] >= target:
                    reached.append(row)
                    break
            if reached and reached[-1]["tol"] == tol and reached[-1]["backward_cap"] == BACKWARD_LADDER[0]:
                break  # a larger forward cap cannot be cheaper
        if reached:
            break  # a tighter tolerance only adds steps
    return tried, min(reached, key=lambda row: row["seconds"]) if reached else None


def compare(source: str, planner: Planner, inputs, actions, target: float, repeats: int) -> dict:
    exact, _, converged = exact_gradient(planner, inputs, actions)
    planner = planner.float()
    g, ours_stats = gradient(planner, inputs, actions)
    ours = {"cosine": cosine(g, exact), **ours_stats}
    print(f"{source} ({type(planner).__name__}): reference converged {converged}; ours (defaults): cosine "
          f"{ours['cosine']:.6f}, forward {ours['forward_iterations']} steps, adjoint {ours.get('backward_iterations')} steps")  # fmt: skip
    tried, best = search_authors(planner, inputs, actions, exact, target)
    result = {"planner": source, "kind": type(planner).__name__, "reference_converged": converged, "ours": ours}
    result.update({"authors_tried": tried, "authors_best": best})
    if best is None:
        top = max(tried, key=lambda row: row["cosine"])
        print(f"  authors' scheme: target {target} NOT reached; best cosine {top['cosine']:.6f} at "
              f"K_f {top['forward_cap']}, K_b {top['backward_cap']}, tol {top['tol']:.0e}")  # fmt: skip
        return result
    theirs_settings = authors_settings(best["forward_cap"], best["backward_cap"], best["tol"])
    times = {"ours": [], "theirs": []}
    for _ in range(repeats):  # interleaved
        times["ours"].append(gradient(planner, inputs, actions)[1]["seconds"])
        times["theirs"].append(gradient(planner, inputs, actions, **theirs_settings)[1]["seconds"])
    result["ours_s"], result["theirs_s"] = statistics.median(times["ours"]), statistics.median(times["theirs"])
    result["speedup"] = result["theirs_s"] / result["ours_s"]
    print(f"  at cosine >= {target}: ours {result['ours_s']:.3f} s (cosine {ours['cosine']:.6f}), authors' scheme "
          f"{result['theirs_s']:.3f} s (K_f {best['forward_cap']}, K_b {best['backward_cap']}, tol {best['tol']:.0e}, "
          f"cosine {best['cosine']:.6f}): speed-up {result['speedup']:.2f}x")  # fmt: skip
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", nargs="+", required=True, help="trained planners")
    parser.add_argument("--size", type=int, default=15)
    parser.add_argument("--maps", type=int, default=32, help="validation maps in the batch")
    parser.add_argument("--target", type=float, default=0.999, help="cosine to the exact gradient")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    add_record_argument(parser)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    splits = generate_splits(
        args.size, 2000, args.maps, 8, seed=args.seed, progress=False
    )  # gradient_quality.py's maps
    view = MazeTorchDataset(splits["valid"])
    results = []
    for path in args.checkpoint:
        planner = load_checkpoint(path)[0]
        results.append(compare(path, planner, view.inputs, view.actions, args.target, args.repeats))
    summary = {"benchmark": "equal_quality", "target": args.target, "maps": args.maps, "size": args.size}
    emit_result({**summary, "results": results}, args.record, script=__file__, argv=argv)


if __name__ == "__main__":
    main()
