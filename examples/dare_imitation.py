"""Imitation learning of a mass-spring-damper's dynamics through an infinite-horizon LQR (DIL appendix C).

The expert controls ``u = -K(A) x`` come from the DARE with the true ``A = [[0, 1], [-k/m, -c/m]]``,
``B = [0, 1/m]``, ``Q = I``, ``R = 2`` (m = k = 1, ``c`` in {1, 0.1, -0.6}), rolled out for 50 steps of
``x_{t+1} = A x_t + B u_t`` from ``x_0 = (3, 3)`` (the paper's second entry of ``x_0`` is illegible; this
choice is ours). The learner sees the expert's controls and, at each iteration, a random starting
state of that rollout; it predicts the next 6 controls with its own ``A_hat`` (states imagined with
``A_hat``) and descends the squared imitation loss. ``A_hat`` starts at ``A`` plus ``U(-0.5, 0.5)`` per
entry. Gradients through the DARE by the IFT (matrix-free GMRES adjoint, ours), by the naive dense
IFT, and by unrolling the doubling iterations; the learner never sees state transitions.

    python examples/dare_imitation.py                  # 3 damping values, 5 initialisations, 3000 iterations
    python examples/dare_imitation.py --iterations 500 --inits 2 --plot runs/dare.png

Prints final imitation and model losses (mean and std over initialisations) per method and damping,
writes the loss curves (paper Fig. 4) as a PNG and ends with a JSON line.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from idplan.agents.cli import device
from idplan.envs.atomic import atomic_path
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import ImplicitAdjoint, dare

METHODS = {
    "ift-gmres": {"adjoint": "implicit"},
    "ift-dense": {"adjoint": ImplicitAdjoint(linear_solver="dense", rtol=1e-8)},
    "unrolled": {"adjoint": "unrolled"},
}
DT = torch.float64


def system(c: float, device: str, m: float = 1.0, k: float = 1.0):
    A = torch.tensor([[0.0, 1.0], [-k / m, -c / m]], dtype=DT, device=device)
    B = torch.tensor([[0.0], [1.0 / m]], dtype=DT, device=device)
    return A, B, torch.eye(2, dtype=DT, device=device), 2.0 * torch.eye(1, dtype=DT, device=device)


def controls(A_model, B, Q, R, x0, horizon, settings):
    """``[horizon, 1]`` controls ``-K(A_model) x`` along the rollout of ``A_model`` from ``x0``."""
    K = dare(A_model[None], B[None], Q[None], R[None], **settings).K[0]
    x, us = x0, []
    for _ in range(horizon):
        u = -K @ x
        us.append(u)
        x = A_model @ x + B @ u
    return torch.stack(us)


def expert_data(c, device, length=50):
    A, B, Q, R = system(c, device)
    with torch.no_grad():
        K = dare(A[None], B[None], Q[None], R[None]).K[0]
    x = torch.tensor([3.0, 3.0], dtype=DT, device=device)
    xs, us = [], []
    for _ in range(length):
        u = -K @ x
        xs.append(x)
        us.append(u)
        x = A @ x + B @ u
    return torch.stack(xs), torch.stack(us)


def learn(c, method, init, iterations, lr, device, horizon=6):
    A, B, Q, R = system(c, device)
    xs, us = expert_data(c, device)
    g = torch.Generator(device=device).manual_seed(init)
    A_hat = (A + torch.rand(2, 2, generator=g, dtype=DT, device=device) - 0.5).requires_grad_()
    optimiser = torch.optim.Adam([A_hat], lr=lr)
    imitation, model = [], []
    for _ in range(iterations):
        start = int(torch.randint(0, len(xs) - horizon, (1,), generator=g, device=device))
        predicted = controls(A_hat, B, Q, R, xs[start], horizon, METHODS[method])
        loss = (predicted - us[start : start + horizon]).pow(2).sum()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        imitation.append(float(loss.detach()))
        model.append(float((A_hat.detach() - A).pow(2).sum()))
    return imitation, model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dampings", type=float, nargs="+", default=[1.0, 0.1, -0.6])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--inits", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--plot", type=Path, default=Path("runs/dare_imitation.png"))
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    curves, rows = {}, []
    print(f"{'c':>5} {'method':<10} {'final imitation loss':>24} {'final model loss':>22} {'s/run':>6}")
    for c in args.dampings:
        for method in args.methods:
            start = time.perf_counter()
            runs = [learn(c, method, init, args.iterations, args.lr, args.device) for init in range(args.inits)]
            tail = max(1, args.iterations // 20)  # the last 5% of iterations, against the sampling noise
            imitation = [statistics.mean(r[0][-tail:]) for r in runs]
            model = [r[1][-1] for r in runs]
            row = {
                "damping": c,
                "method": method,
                "imitation_loss_mean": statistics.mean(imitation),
                "imitation_loss_std": statistics.pstdev(imitation),
                "model_loss_mean": statistics.mean(model),
                "model_loss_std": statistics.pstdev(model),
                "initial_model_loss_mean": statistics.mean(r[1][0] for r in runs),
                "seconds_per_run": round((time.perf_counter() - start) / args.inits, 1),
            }
            rows.append(row)
            curves[(c, method)] = runs
            print(
                f"{c:>5} {method:<10} {row['imitation_loss_mean']:>12.3e} +- {row['imitation_loss_std']:.1e} "
                f"{row['model_loss_mean']:>10.3e} +- {row['model_loss_std']:.1e} {row['seconds_per_run']:>6}",
                flush=True,
            )
    plot(curves, args.plot)
    emit_result(
        {"example": "dare_imitation", "iterations": args.iterations, "inits": args.inits, "rows": rows},
        args.record,
        script=__file__,
        argv=argv,
    )


def plot(curves, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no figure")
        return
    dampings = sorted({c for c, _ in curves}, reverse=True)
    fig, axes = plt.subplots(2, len(dampings), figsize=(4 * len(dampings), 6), squeeze=False)
    styles = {"ift-gmres": "-", "ift-dense": "--", "unrolled": ":"}
    for col, c in enumerate(dampings):
        for method in METHODS:
            if (c, method) not in curves:
                continue
            for row, (index, name) in enumerate(
                ((1, "model loss ||A_hat - A||^2"), (0, "imitation loss (moving mean, 50)"))
            ):
                values = torch.tensor([run[index] for run in curves[(c, method)]], dtype=torch.float64)
                if index == 0:  # the per-iteration loss of one random window is noisy: smooth it
                    kernel = torch.ones(1, 1, 50, dtype=values.dtype) / 50
                    values = torch.nn.functional.conv1d(values[:, None], kernel)[:, 0]
                logs = values.clamp_min(1e-30).log10()  # geometric mean and spread over initialisations
                mean, std = logs.mean(0), logs.std(0) if len(logs) > 1 else torch.zeros(logs.shape[1])
                ax = axes[row, col]
                ax.plot(10**mean, styles[method], label=method)
                ax.fill_between(range(len(mean)), 10 ** (mean - std), 10 ** (mean + std), alpha=0.15)
                ax.set_yscale("log")
                ax.set_title(f"c = {c}: {name}", fontsize=9)
                ax.set_xlabel("iteration")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
