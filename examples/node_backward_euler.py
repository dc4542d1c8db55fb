"""Neural ODEs trained through backward-Euler implicit layers vs torchdiffeq (DIL section 3.1, Table 1, Fig. 2).

Two extrapolation tasks, as in the DIL paper: Van der Pol (mu = 1, 320 equally spaced observations of
(x, x') over t in [0, 32), first 107 for training, next 106 validation, last 106 test) and the spiral
``dx/dt = A x^3`` of torchdiffeq's demo (300 observations over [0, 25]: 100 / 50 / 150). The vector
field is the paper's MLP (2 -> 500 -> 2 with tanh for Van der Pol, 2 -> 50 -> 2 for the spiral),
integrated from the first observation over all of them; trained on the training span's MSE with Adam;
the epoch with the best validation MSE is tested. Methods:

- ``euler-ift-cg``: backward Euler, each step an implicit layer, IFT backward by CG on the normal
  equations (``idplan.solvers.backward_euler``, ours);
- ``euler-ift-dense``: the same with the naive dense IFT solve;
- ``dopri5-adjoint``: torchdiffeq's ``odeint_adjoint`` (dopri5, rtol 1e-6, atol 1e-8);
- ``dopri5-backprop``: torchdiffeq's ``odeint``, backpropagating through the solver.

Also reports forward and backward time of one training step per method, averaged over fresh
initialisations (paper Fig. 2: 2 layers, hidden 30). The CMU walking data of the paper is not
reachable from this machine and is not substituted. Needs ``pip install -e '.[ode]'`` (torchdiffeq).

    python examples/node_backward_euler.py                     # both tasks, 2 runs, 100 epochs
    python examples/node_backward_euler.py --tasks spiral --runs 1 --epochs 20
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from idplan.agents.cli import device
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import ImplicitAdjoint, backward_euler

try:
    from torchdiffeq import odeint, odeint_adjoint
except ImportError as error:  # pragma: no cover - an optional extra
    raise SystemExit("this example needs torchdiffeq: pip install -e '.[ode]'") from error

METHODS = ("euler-ift-cg", "euler-ift-dense", "dopri5-adjoint", "dopri5-backprop")
TASKS = {  # points, t_end, splits (train, valid, test), hidden units
    "vanderpol": (320, 32.0, (107, 106, 106), 500),
    "spiral": (300, 25.0, (100, 50, 150), 50),
}


def vector_field(task: str, x: torch.Tensor) -> torch.Tensor:
    if task == "vanderpol":
        return torch.stack([x[..., 1], (1 - x[..., 0] ** 2) * x[..., 1] - x[..., 0]], -1)
    A = torch.tensor([[-0.1, 2.0], [-2.0, -0.1]], dtype=x.dtype, device=x.device)
    return x**3 @ A


def make_series(task: str, device: str) -> tuple[torch.Tensor, float]:
    """Observations ``[points, 2]`` of the true system (RK4 with 20 substeps per interval) on ``device``,
    and their spacing."""
    points, t_end, _, _ = TASKS[task]
    dt = t_end / points if task == "vanderpol" else t_end / (points - 1)
    x = torch.tensor([2.0, 0.0], dtype=torch.float64, device=device)
    out, sub = [x], dt / 20
    for _ in range(points - 1):
        for _ in range(20):
            k1 = vector_field(task, x)
            k2 = vector_field(task, x + sub / 2 * k1)
            k3 = vector_field(task, x + sub / 2 * k2)
            k4 = vector_field(task, x + sub * k3)
            x = x + sub / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        out.append(x)
    return torch.stack(out), dt


class Field(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2)).double()

    def forward(self, t, x):  # torchdiffeq's signature
        return self.net(x)


def integrate(method: str, field: Field, x0: torch.Tensor, dt: float, steps: int) -> torch.Tensor:
    """States at the ``steps + 1`` observation times, ``[steps + 1, 2]``."""
    if method.startswith("euler"):
        adjoint = ImplicitAdjoint("cg_normal" if method == "euler-ift-cg" else "dense", rtol=1e-8)
        return backward_euler(lambda x, a: field(None, x), x0[None], dt, steps, adjoint=adjoint, rtol=1e-6).x[:, 0]
    times = torch.arange(steps + 1, dtype=torch.float64, device=x0.device) * dt
    solve = odeint_adjoint if method == "dopri5-adjoint" else odeint
    return solve(field, x0, times, rtol=1e-6, atol=1e-8, method="dopri5")


def train(task: str, method: str, series: torch.Tensor, dt: float, epochs: int, seed: int) -> dict:
    n_train, n_valid, _ = TASKS[task][2]
    torch.manual_seed(seed)
    field = Field(TASKS[task][3]).to(series.device)
    optimiser = torch.optim.Adam(field.parameters(), lr=1e-3)
    best = (float("inf"), copy.deepcopy(field.state_dict()))
    start = time.perf_counter()
    for _ in range(epochs):
        pred = integrate(method, field, series[0], dt, n_train - 1)
        loss = (pred - series[:n_train]).pow(2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        with torch.no_grad():
            pred = integrate(method, field, series[0], dt, n_train + n_valid - 1)
            valid = float((pred[n_train:] - series[n_train : n_train + n_valid]).pow(2).mean())
        if valid < best[0]:
            best = (valid, copy.deepcopy(field.state_dict()))
    field.load_state_dict(best[1])
    with torch.no_grad():
        pred = integrate(method, field, series[0], dt, len(series) - 1)
        test = float((pred[n_train + n_valid :] - series[n_train + n_valid :]).pow(2).mean())
    return {"test_mse": test, "valid_mse": best[0], "seconds": time.perf_counter() - start}


def synchronize(where: torch.device) -> None:
    """Wait for the work queued on a CUDA device, so that wall-clock times measure it (CPU: no wait)."""
    if where.type == "cuda":
        torch.cuda.synchronize(where)


def step_times(method: str, series: torch.Tensor, dt: float, inits: int) -> tuple[float, float]:
    """Mean forward and backward seconds of one training step (Van der Pol span, hidden 30)."""
    forward, backward = [], []
    for seed in range(inits):
        torch.manual_seed(seed)
        field = Field(30).to(series.device)
        start = time.perf_counter()
        loss = (integrate(method, field, series[0], dt, 106) - series[:107]).pow(2).mean()
        synchronize(series.device)
        forward.append(time.perf_counter() - start)
        start = time.perf_counter()
        loss.backward()
        synchronize(series.device)
        backward.append(time.perf_counter() - start)
    return statistics.mean(forward), statistics.mean(backward)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--timing-inits", type=int, default=10)
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    summary = {"timing": {}, "results": []}
    vdp, vdp_dt = make_series("vanderpol", args.device)
    print(f"one training step, Van der Pol span (107 points), hidden 30, mean of {args.timing_inits} inits:")
    for method in args.methods:
        fwd, bwd = step_times(method, vdp, vdp_dt, args.timing_inits)
        summary["timing"][method] = {"forward_s": round(fwd, 4), "backward_s": round(bwd, 4)}
        print(f"  {method:<16} forward {1e3 * fwd:8.1f} ms   backward {1e3 * bwd:8.1f} ms", flush=True)
    print(f"\n{'task':<10} {'method':<16} {'test MSE':>22} {'s/run':>7}")
    for task in args.tasks:
        series, dt = make_series(task, args.device)
        for method in args.methods:
            runs = [train(task, method, series, dt, args.epochs, seed) for seed in range(args.runs)]
            mses = [r["test_mse"] for r in runs]
            row = {
                "task": task,
                "method": method,
                "test_mse_mean": statistics.mean(mses),
                "test_mse_sem": statistics.stdev(mses) / len(mses) ** 0.5 if len(mses) > 1 else 0.0,
                "seconds_per_run": round(statistics.mean(r["seconds"] for r in runs), 1),
            }
            summary["results"].append(row)
            print(
                f"{task:<10} {method:<16} {row['test_mse_mean']:>12.4f} +- {row['test_mse_sem']:<7.4f} {row['seconds_per_run']:>7}",
                flush=True,
            )
    emit_result(
        {"example": "node_backward_euler", "runs": args.runs, "epochs": args.epochs, **summary},
        args.record,
        script=__file__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
