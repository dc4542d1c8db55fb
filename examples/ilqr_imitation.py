"""Imitation learning through a differentiable iLQR (DiLQR section 5.2, Fig. 3; DiffMPC's setting).

An expert (iLQR with the true model) produces optimal control sequences from random initial states. A
learner sees the initial states and the expert's controls only, and fits

- ``dx``: the physical parameters of the dynamics (cost known; for the pendulum gravity and mass with
  the length known, since the dynamics depend on ``g / l`` and ``m l^2`` only), or
- ``cost``: the cost weights (dynamics known; the angle weight is fixed, since weights are only
  identifiable up to scale),

by gradient descent on the imitation loss ``MSE(u_learner, u_expert)`` through iLQR, with our exact
``implicit`` gradient or DiffMPC's ``last_layer`` one. Baselines: ``sysid`` (cost known; fits the
dynamics to the expert's state transitions, which it is allowed to see) and ``lstm`` (an LSTM policy
mapping the initial state to the control sequence). Parameters start from the true ones scaled by
``exp(U(-0.5, 0.5))``; iLQR methods use RMSprop with the paper's lr 1e-2 and decay term 0.5 (read as
RMSprop's moving-average decay ``alpha``), the LSTM Adam (lr 1e-3). The
model with the best validation loss is tested on held-out initial states.

    python examples/ilqr_imitation.py                          # both tasks, 10/50/100 trajectories, 3 seeds
    python examples/ilqr_imitation.py --tasks pendulum --sizes 10 --seeds 1 --steps 50

Prints a table of test imitation loss and parameter error (mean over seeds) and a final JSON line.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import statistics
import time
import warnings

import torch
from torch import nn

from idplan.agents.cli import device
from idplan.agents.control import ILQRController
from idplan.envs import CONTROL_TASKS
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import NonConvergenceWarning

FIELDS = {
    "pendulum": {"dx": ("gravity", "mass"), "cost": ("velocity_weight", "torque_weight")},
    "cartpole": {
        "dx": ("gravity", "cart_mass", "pole_mass", "pole_length"),
        "cost": ("position_weight", "velocity_weight", "angular_velocity_weight", "force_weight"),
    },
}


def initial_states(task: str, count: int, generator: torch.Generator) -> torch.Tensor:
    """Observations ``[count, n]`` with the pole anywhere and small velocities (on the generator's device)."""
    like = {"generator": generator, "dtype": torch.float64, "device": generator.device}
    theta = torch.rand(count, **like) * 2 * math.pi - math.pi
    speed = torch.rand(count, **like) * 2 - 1
    if task == "pendulum":
        return torch.stack([theta.cos(), theta.sin(), speed], -1)
    position = torch.rand(count, **like) - 0.5
    return torch.stack([position, torch.zeros_like(speed), theta.cos(), theta.sin(), speed], -1)


def perturbed(params, fields, generator):
    draw = {"generator": generator, "dtype": torch.float64, "device": generator.device}
    scale = {f: math.exp(float(torch.rand((), **draw)) - 0.5) for f in fields}
    return dataclasses.replace(params, **{f: float(getattr(params, f)) * scale[f] for f in fields})


def parameter_error(learned: dict[str, float], truth, fields) -> float:
    return statistics.mean((learned[f] - float(getattr(truth, f))) ** 2 for f in fields)


def train_controller(task, data, start_params, fields, gradient, steps, lr, horizon):
    adjoint = "riccati" if gradient == "implicit" else gradient  # the exact implicit gradient: one Riccati pass
    controller = ILQRController.for_task(task, start_params, learn=fields, horizon=horizon, adjoint=adjoint)
    controller.to(data["x_train"].device)
    optimiser = torch.optim.RMSprop(controller.parameters(), lr=lr, alpha=0.5)
    best = (float("inf"), copy.deepcopy(controller.state_dict()))
    for step in range(steps):
        loss = nn.functional.mse_loss(controller(data["x_train"]).u, data["u_train"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 5 == 4 or step == steps - 1:
            with torch.no_grad():
                valid = float(nn.functional.mse_loss(controller(data["x_valid"]).u, data["u_valid"]))
            if valid < best[0]:
                best = (valid, copy.deepcopy(controller.state_dict()))
    controller.load_state_dict(best[1])
    return controller


def train_sysid(task, data, start_params, fields, steps, lr, horizon):
    """Fit the dynamics parameters to the expert's transitions ``x_{t+1} = f(x_t, u_t)`` (cost known)."""
    module = CONTROL_TASKS[task].module
    controller = ILQRController.for_task(task, start_params, learn=fields, horizon=horizon)
    controller.to(data["x_train"].device)
    optimiser = torch.optim.RMSprop(controller.parameters(), lr=lr, alpha=0.5)
    X, U = data["x_expert"], data["u_train"]
    for _ in range(steps):
        predicted = module.observation_dynamics(X[:-1], U[:-1], controller.params(like=X))
        loss = nn.functional.mse_loss(predicted, X[1:])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return controller


class LSTMPolicy(nn.Module):
    """Initial state -> control sequence: an LSTM fed the initial state at every step."""

    def __init__(self, n: int, horizon: int, hidden: int = 64):
        super().__init__()
        self.horizon = horizon
        self.lstm = nn.LSTM(n, hidden)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x0):
        out, _ = self.lstm(x0.float().unsqueeze(0).expand(self.horizon, -1, -1))
        return self.head(out).double()


def train_lstm(data, steps, horizon, seed):
    torch.manual_seed(seed)
    policy = LSTMPolicy(data["x_train"].shape[1], horizon).to(data["x_train"].device)
    optimiser = torch.optim.Adam(policy.parameters(), lr=1e-3)
    best = (float("inf"), copy.deepcopy(policy.state_dict()))
    for step in range(steps):
        loss = nn.functional.mse_loss(policy(data["x_train"]), data["u_train"])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 20 == 19:
            with torch.no_grad():
                valid = float(nn.functional.mse_loss(policy(data["x_valid"]), data["u_valid"]))
            if valid < best[0]:
                best = (valid, copy.deepcopy(policy.state_dict()))
    policy.load_state_dict(best[1])
    return policy


def make_data(task, size, horizon, seed, device):
    generator = torch.Generator(device=device).manual_seed(seed)
    expert = ILQRController.for_task(task, horizon=horizon)
    data = {}
    for split, count in (("train", size), ("valid", 50), ("test", 100)):
        x = initial_states(task, count, generator)
        with torch.no_grad():
            sol = expert(x)
        data[f"x_{split}"], data[f"u_{split}"] = x, sol.u
        if split == "train":
            data["x_expert"] = sol.x
    return data


def run(task, mode, method, size, seed, args):
    truth = CONTROL_TASKS[task].params()
    data = make_data(task, size, args.horizon, seed, args.device)
    fields = FIELDS[task][mode]
    start = perturbed(truth, fields, torch.Generator(device=args.device).manual_seed(1000 + seed))
    if method == "lstm":
        policy = train_lstm(data, args.lstm_steps, args.horizon, seed)
        with torch.no_grad():
            test = float(nn.functional.mse_loss(policy(data["x_test"]), data["u_test"]))
        return {"test_loss": test, "parameter_error": None}
    if method == "sysid":
        controller = train_sysid(task, data, start, fields, args.steps, args.lr, args.horizon)
    else:
        controller = train_controller(task, data, start, fields, method, args.steps, args.lr, args.horizon)
    with torch.no_grad():
        test = float(nn.functional.mse_loss(controller(data["x_test"]).u, data["u_test"]))
    return {"test_loss": test, "parameter_error": parameter_error(controller.learned(), truth, fields)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["pendulum", "cartpole"], choices=sorted(FIELDS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="gradient steps for the iLQR-based learners")
    parser.add_argument("--lstm-steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", NonConvergenceWarning)  # a learner's early, wrong models may not converge
    combos = [("dx", m) for m in ("implicit", "last_layer", "sysid", "lstm")] + [
        ("cost", m) for m in ("implicit", "last_layer")
    ]
    results = []
    print(
        f"{'task':<9} {'mode':<5} {'method':<11} {'N':>4} {'test imitation loss':>22} {'parameter error':>18} {'s':>6}"
    )
    for task in args.tasks:
        for mode, method in combos:
            for size in args.sizes:
                start = time.perf_counter()
                runs = [run(task, mode, method, size, seed, args) for seed in range(args.seeds)]
                losses = [r["test_loss"] for r in runs]
                errors = [r["parameter_error"] for r in runs if r["parameter_error"] is not None]
                row = {
                    "task": task,
                    "mode": mode,
                    "method": method,
                    "trajectories": size,
                    "test_loss_mean": statistics.mean(losses),
                    "test_loss_std": statistics.pstdev(losses),
                    "parameter_error_mean": statistics.mean(errors) if errors else None,
                    "seconds": round(time.perf_counter() - start, 1),
                }
                results.append(row)
                err = f"{row['parameter_error_mean']:.2e}" if errors else "-"
                print(
                    f"{task:<9} {mode:<5} {method:<11} {size:>4} {row['test_loss_mean']:>12.2e} +- {row['test_loss_std']:.1e} "
                    f"{err:>18} {row['seconds']:>6}",
                    flush=True,
                )
    emit_result(
        {"example": "ilqr_imitation", "seeds": args.seeds, "steps": args.steps, "rows": results},
        args.record,
        script=__file__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
