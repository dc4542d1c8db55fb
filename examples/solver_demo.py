"""Solver demo: learn terrain costs through value iteration with implicit gradients.

A grid world's value map is the fixed point of its Bellman operator. Here the cost of each
terrain type is unknown; we observe value maps computed with the true costs on random 15x15 maps
and fit the costs by gradient descent *through the fixed point*, once with the implicit adjoint
(backward cost independent of the forward iterations) and once unrolled (autograd through every
iteration), and compare the learned costs, the time per step and the solver statistics.

    python examples/solver_demo.py --out runs/solver_demo

Writes ``metrics.json`` (and ``loss.png`` when matplotlib is installed) into ``--out``; the last
line printed is JSON with the figures and the paths of those files.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from idplan.agents.cli import device
from idplan.envs import grid_bellman_operator
from idplan.envs.atomic import atomic_path, atomic_write_text
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import Anderson, ImplicitAdjoint, fixed_point


@dataclass
class Args:
    out: str = "runs/solver_demo"
    """folder for metrics.json and loss.png"""
    size: int = 15
    """map side length"""
    batch: int = 16
    """maps per training step"""
    steps: int = 60
    """gradient steps per adjoint"""
    gamma: float = 0.9
    """discount"""
    lr: float = 0.2
    """Adam learning rate"""
    seed: int = 0
    """seed of the maps and the initial costs"""
    device: str = "cuda" if torch.cuda.is_available() else "cpu"
    """torch device of the maps, the costs and the solves"""


TRUE_COSTS = torch.tensor([1.0, 3.0, 0.5])  # per terrain type


def sample_maps(args: Args, generator: torch.Generator):
    """Random maps: 20% obstacles, a goal, and a terrain type (one-hot, 3 types) per cell."""
    free = torch.rand(args.batch, 1, args.size, args.size, generator=generator, device=args.device) > 0.2
    goal = torch.zeros_like(free)
    for b in range(args.batch):
        cells = free[b, 0].flatten().nonzero().flatten()
        goal[b, 0].view(-1)[cells[torch.randint(len(cells), (1,), generator=generator, device=args.device)]] = True
    terrain = torch.randint(3, (args.batch, args.size, args.size), generator=generator, device=args.device)
    return free, goal, F.one_hot(terrain, 3).permute(0, 3, 1, 2).double()


def value_map(free, goal, terrain, costs, gamma, adjoint):
    """The fixed point of the Bellman operator with per-cell cost ``terrain . costs``."""
    bellman = grid_bellman_operator(free, goal, gamma=gamma)
    cost_map = torch.einsum("bkij,k->bij", terrain, costs)[:, None]
    v0 = torch.zeros(free.shape, dtype=torch.float64, device=free.device)
    return fixed_point(bellman, v0, cost_map, solver=Anderson(), adjoint=adjoint, max_iter=1000, rtol=1e-10)


def train(args: Args, adjoint, label: str) -> dict:
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    true_costs = TRUE_COSTS.to(device=args.device, dtype=torch.float64)
    log_costs = torch.zeros(3, dtype=torch.float64, device=args.device, requires_grad=True)  # costs start at 1, 1, 1
    opt = torch.optim.Adam([log_costs], lr=args.lr)
    losses, step_times, fwd_iters, bwd_iters = [], [], [], []
    for _ in range(args.steps):
        free, goal, terrain = sample_maps(args, generator)
        with torch.no_grad():
            target = value_map(free, goal, terrain, true_costs, args.gamma, "implicit").value
        t0 = time.perf_counter()
        sol = value_map(free, goal, terrain, log_costs.exp(), args.gamma, adjoint)
        loss = F.mse_loss(sol.value, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if log_costs.is_cuda:  # wait for the queued kernels: the time measures them
            torch.cuda.synchronize(log_costs.device)
        step_times.append(time.perf_counter() - t0)
        losses.append(loss.item())
        fwd_iters.append(int(sol.stats.iterations.max()))
        if sol.backward.linear is not None:
            bwd_iters.append(int(sol.backward.iterations.max()))
    learned = log_costs.detach().exp()
    print(
        f"{label:9s} learned costs {[round(c, 3) for c in learned.tolist()]} (true {TRUE_COSTS.tolist()}), "
        f"final loss {losses[-1]:.2e}, {1000 * sum(step_times) / len(step_times):.1f} ms/step, "
        f"forward iterations {max(fwd_iters)}" + (f", backward iterations {max(bwd_iters)}" if bwd_iters else "")
    )
    return dict(
        learned_costs=learned.tolist(),
        final_loss=losses[-1],
        losses=losses,
        ms_per_step=1000 * sum(step_times) / len(step_times),
        max_forward_iterations=max(fwd_iters),
        max_backward_iterations=max(bwd_iters) if bwd_iters else None,
        cost_error=float((learned - true_costs).abs().max()),
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, value in asdict(Args()).items():
        parser.add_argument(f"--{name}", type=device if name == "device" else type(value), default=value)
    add_record_argument(parser)
    options = vars(parser.parse_args(argv))
    record = options.pop("record")
    args = Args(**options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(args.seed)

    results = {
        "implicit": train(args, ImplicitAdjoint(max_iter=300, rtol=1e-6), "implicit"),
        "unrolled": train(args, "unrolled", "unrolled"),
    }
    metrics_path = out / "metrics.json"
    atomic_write_text(metrics_path, json.dumps({"args": asdict(args), "results": results}, indent=2))
    files = {"metrics": str(metrics_path)}
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        for (label, r), style in zip(results.items(), ("-", "--")):  # same gradients: the curves overlap
            ax.semilogy(r["losses"], style, label=f"{label} ({r['ms_per_step']:.0f} ms/step)")
        ax.set_xlabel("step")
        ax.set_ylabel("value-map MSE")
        ax.set_title("Learning terrain costs through value iteration")
        ax.legend()
        fig.tight_layout()
        with atomic_path(out / "loss.png") as tmp:
            fig.savefig(tmp, dpi=120)
        files["plot"] = str(out / "loss.png")
    except ImportError:
        print("matplotlib not installed: skipping loss.png (pip install 'idplan[dev]')")
    summary = {label: {k: v for k, v in r.items() if k != "losses"} for label, r in results.items()}
    emit_result({"results": summary, "files": files}, record, script=__file__, argv=argv)


if __name__ == "__main__":
    main()
