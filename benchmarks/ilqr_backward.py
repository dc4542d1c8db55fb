"""Backward time of iLQR gradients, implicit vs unrolled autodiff (DiLQR Fig. 2): prints a table, writes
a figure and ends with a JSON line.

Pendulum swing-up (``idplan.envs.control.pendulum``: observation dynamics and cost, torque bound 2), batch 20,
random initial states, gradient of a random linear function of the optimal controls w.r.t. the
physical parameters (g, m, l) and the initial states. Classic (Gauss-Newton) iLQR runs exactly K
iterations (``tol=0``) in both modes; "implicit" differentiates the KKT conditions at the result (one
O(T) Riccati adjoint), "unrolled" backpropagates through all K iterations. Both run in this process,
side by side; times are medians over ``--repeats``.

    python benchmarks/ilqr_backward.py                       # T = 5, 10, 20; K = 50 ... 300
    python benchmarks/ilqr_backward.py --horizons 10 --iterations 50 300 --repeats 1
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import math
import statistics
import time
import warnings
from pathlib import Path

import torch

from idplan.envs import pendulum
from idplan.envs.atomic import atomic_path
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import NonConvergenceWarning, ilqr


def problem(batch: int, horizon: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(batch, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi
    x0 = torch.stack([theta.cos(), theta.sin(), torch.rand(batch, generator=g, dtype=torch.float64) * 2 - 1], -1)
    weights = torch.randn(horizon, batch, 1, generator=g, dtype=torch.float64)
    return x0, weights


def timed_gradient(mode: str, x0: torch.Tensor, weights: torch.Tensor, iterations: int):
    """Forward and backward seconds, and the gradient w.r.t. (g, m, l, x0)."""
    physical = torch.tensor([10.0, 1.0, 1.0], dtype=torch.float64, requires_grad=True)
    x = x0.clone().requires_grad_()
    params = dataclasses.replace(pendulum.PendulumParams(), gravity=physical[0], mass=physical[1], length=physical[2])
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)  # a fixed budget: convergence is reported below
        sol = ilqr(
            lambda s, u: pendulum.observation_dynamics(s, u, params),
            lambda s, u: pendulum.cost(s, u, params),
            x,
            torch.zeros_like(weights),
            lower=-2.0,
            upper=2.0,
            adjoint="riccati" if mode == "implicit" else mode,
            hessian="gauss_newton",
            max_iter=iterations,
            tol=0.0,
        )
    forward = time.perf_counter() - start
    loss = (sol.u * weights).sum()
    gc.collect()  # freed unrolled graphs of earlier runs should not be collected inside the timed region
    start = time.perf_counter()
    loss.backward()
    backward = time.perf_counter() - start
    return forward, backward, torch.cat([physical.grad, x.grad.flatten()]), float(sol.stats.converged.float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--horizons", type=int, nargs="+", default=[5, 10, 20])
    parser.add_argument("--iterations", type=int, nargs="+", default=[50, 100, 150, 200, 250, 300])
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=Path("benchmarks/ilqr_backward_cpu.png"))
    add_record_argument(parser)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, float64")
    print(
        f"{'T':>3} {'K':>4} {'implicit bwd ms':>16} {'unrolled bwd ms':>16} {'ratio':>7} {'grad rel diff':>14} {'converged':>9}"
    )
    rows = []
    warm_x0, warm_weights = problem(args.batch, 5, args.seed)
    timed_gradient("implicit", warm_x0, warm_weights, 3)  # first-call costs (torch.func) out of the table
    timed_gradient("unrolled", warm_x0, warm_weights, 3)
    for horizon in args.horizons:
        x0, weights = problem(args.batch, horizon, args.seed)
        for iterations in args.iterations:
            implicit = [timed_gradient("implicit", x0, weights, iterations) for _ in range(args.repeats)]
            unrolled = [timed_gradient("unrolled", x0, weights, iterations) for _ in range(args.repeats)]
            imp_bwd = statistics.median(r[1] for r in implicit)
            unr_bwd = statistics.median(r[1] for r in unrolled)
            diff = float((implicit[0][2] - unrolled[0][2]).norm() / unrolled[0][2].norm())
            row = {
                "horizon": horizon,
                "iterations": iterations,
                "implicit_forward_s": round(statistics.median(r[0] for r in implicit), 4),
                "implicit_backward_s": round(imp_bwd, 5),
                "unrolled_forward_s": round(statistics.median(r[0] for r in unrolled), 4),
                "unrolled_backward_s": round(unr_bwd, 4),
                "backward_ratio": round(unr_bwd / imp_bwd, 1),
                "gradient_rel_diff": diff,
                "converged_fraction": implicit[0][3],
            }
            rows.append(row)
            print(
                f"{horizon:>3} {iterations:>4} {1e3 * imp_bwd:>16.2f} {1e3 * unr_bwd:>16.1f} {unr_bwd / imp_bwd:>6.1f}x "
                f"{diff:>14.2e} {implicit[0][3]:>9.2f}",
                flush=True,
            )
    plot(rows, args.plot)
    flat = {r["horizon"]: [x["implicit_backward_s"] for x in rows if x["horizon"] == r["horizon"]] for r in rows}
    summary = {
        "benchmark": "ilqr_backward",
        "rows": rows,
        "implicit_backward_max_over_min_per_horizon": {t: round(max(v) / min(v), 2) for t, v in flat.items()},
        "plot": str(args.plot),
    }
    emit_result(summary, args.record)


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for horizon in sorted({r["horizon"] for r in rows}):
        sel = [r for r in rows if r["horizon"] == horizon]
        ks = [r["iterations"] for r in sel]
        (line,) = ax.plot(ks, [r["unrolled_backward_s"] for r in sel], "o-", label=f"unrolled, T={horizon}")
        ax.plot(
            ks, [r["implicit_backward_s"] for r in sel], "s--", color=line.get_color(), label=f"implicit, T={horizon}"
        )
    ax.set_yscale("log")
    ax.set_xlabel("iLQR iterations K")
    ax.set_ylabel("backward time (s)")
    ax.set_title("iLQR backward: implicit (KKT/Riccati) vs unrolled autodiff\npendulum, batch 20, CPU")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
