"""idplan's iLQR against mpc.pytorch on mpc.pytorch's own pendulum and cart-pole: forward time and
gradient error against central finite differences. Prints a table and ends with a JSON line.

Both solvers get the same problem: mpc.pytorch's ``PendulumDx`` / ``CartpoleDx`` modules as the
dynamics (``x [B, n], u [B, m] -> [B, n]``), its example quadratic goal costs (``QuadCost``) and
control bounds, batch 20, horizon 10, random initial states, float64. mpc.pytorch runs with autograd
Jacobians (``GradMethods.AUTO_DIFF``) and its default tolerance (``eps=1e-7`` on the control step);
ours once with the same 1e-7 (on its control step and KKT residual) and once with its default (1.8e-12). The gradient is that of a random
linear function of the optimal controls w.r.t. the physical parameters; the reference is central
differences (step 1e-5) of our solver run to its tolerance. mpc.pytorch is a benchmark-only
dependency: ``pip install --no-deps mpc`` (it pins numpy < 2 but runs with numpy 2).

    OMP_NUM_THREADS=1 python benchmarks/ilqr_vs_mpc_pytorch.py --repeats 5  # as recorded in results_ilqr_vs_mpc_pytorch_cpu.txt
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import torch

from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import NonConvergenceWarning, ilqr

try:
    from mpc import mpc as mpc_pytorch
    from mpc.env_dx import cartpole as mpc_cartpole
    from mpc.env_dx import pendulum as mpc_pendulum
except ImportError as error:  # pragma: no cover - a benchmark-only dependency
    raise SystemExit("this benchmark needs mpc.pytorch: pip install --no-deps mpc") from error


MPC_EPS = 1e-7  # mpc.pytorch's default tolerance on the control step


def make_problem(name: str, batch: int, horizon: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(batch, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi
    speed = torch.rand(batch, generator=g, dtype=torch.float64) * 2 - 1
    if name == "pendulum":
        params = torch.tensor([10.0, 1.0, 1.0], dtype=torch.float64)
        make_dx = lambda p: mpc_pendulum.PendulumDx(p, simple=True)  # noqa: E731
        x0 = torch.stack([theta.cos(), theta.sin(), speed], -1)
    else:
        params = torch.tensor([9.8, 1.0, 0.1, 0.5], dtype=torch.float64)
        make_dx = mpc_cartpole.CartpoleDx
        position = torch.rand(batch, generator=g, dtype=torch.float64) - 0.5
        x0 = torch.stack([position, speed, theta.cos(), theta.sin(), torch.zeros_like(speed)], -1)
    dx = make_dx(params)
    weights = torch.cat([dx.goal_weights.double(), dx.ctrl_penalty * torch.ones(dx.n_ctrl, dtype=torch.float64)])
    C = torch.diag(2 * weights)
    c = torch.cat([-2 * dx.goal_weights.double() * dx.goal_state.double(), torch.zeros(dx.n_ctrl, dtype=torch.float64)])
    direction = torch.randn(horizon, batch, dx.n_ctrl, generator=g, dtype=torch.float64)
    return {
        "make_dx": make_dx,
        "params": params,
        "x0": x0,
        "C": C,
        "c": c,
        "bound": float(dx.upper),
        "direction": direction,
        "n": dx.n_state,
        "m": dx.n_ctrl,
    }


def ours(problem, params, horizon, gradient="implicit", dtype=torch.float64, tol=None):
    dx = problem["make_dx"](params)
    C, c = problem["C"].to(dtype), problem["c"].to(dtype)

    def cost(x, u):
        tau = torch.cat([x, u], -1)
        return 0.5 * (tau * (tau @ C)).sum(-1) + (tau * c).sum(-1)

    x0 = problem["x0"].to(dtype)
    return ilqr(
        dx,
        cost,
        x0,
        torch.zeros(horizon, x0.shape[0], problem["m"], dtype=dtype),
        lower=-problem["bound"],
        upper=problem["bound"],
        adjoint="riccati" if gradient == "implicit" else gradient,
        tol=tol,
    )


def theirs(problem, params, horizon, dtype=torch.float64):
    dx = problem["make_dx"](params)
    x0 = problem["x0"].to(dtype)
    batch = x0.shape[0]
    N = problem["n"] + problem["m"]
    cost = mpc_pytorch.QuadCost(
        problem["C"].to(dtype).expand(horizon, batch, N, N), problem["c"].to(dtype).expand(horizon, batch, N)
    )
    bound = problem["bound"] * torch.ones(horizon, batch, problem["m"], dtype=dtype)
    controller = mpc_pytorch.MPC(
        problem["n"],
        problem["m"],
        horizon,
        u_lower=-bound,
        u_upper=bound,
        lqr_iter=200,
        eps=MPC_EPS,
        grad_method=mpc_pytorch.GradMethods.AUTO_DIFF,
        exit_unconverged=False,
        verbose=-1,
        n_batch=batch,
    )
    return controller(x0, cost, dx)


def loss_and_grad(run, problem, dtype=torch.float64):
    params = problem["params"].to(dtype).clone().requires_grad_()
    u = run(params)
    loss = (u * problem["direction"].to(dtype)).sum()
    (grad,) = torch.autograd.grad(loss, params, allow_unused=True)
    return grad if grad is not None else torch.zeros_like(params)


def finite_differences(problem, horizon, step=1e-5):
    grads = []
    for e in torch.eye(len(problem["params"]), dtype=torch.float64):
        with torch.no_grad():
            plus = (ours(problem, problem["params"] + step * e, horizon).u * problem["direction"]).sum()
            minus = (ours(problem, problem["params"] - step * e, horizon).u * problem["direction"]).sum()
        grads.append(float((plus - minus) / (2 * step)))
    return torch.tensor(grads, dtype=torch.float64)


def median_time(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def compare(problem: dict, T: int, repeats: int) -> dict:
    """Forward times, solution agreement and gradient errors of both solvers on one problem."""
    ours(problem, problem["params"], T)  # warm-up (torch.func's first call)
    with torch.no_grad():
        t_ours, sol = median_time(lambda: ours(problem, problem["params"], T), repeats)
        t_matched, sol_matched = median_time(lambda: ours(problem, problem["params"], T, tol=MPC_EPS), repeats)
    # mpc.pytorch's autograd linearisation needs grad mode on (nothing requires grad here)
    t_theirs, (_, u_theirs, cost_theirs) = median_time(lambda: theirs(problem, problem["params"], T), repeats)
    fd = finite_differences(problem, T)
    grads = {
        "idplan implicit": loss_and_grad(lambda p: ours(problem, p, T).u, problem),
        "idplan last_layer": loss_and_grad(lambda p: ours(problem, p, T, "last_layer").u, problem),
        "mpc.pytorch": loss_and_grad(lambda p: theirs(problem, p, T)[1], problem),
        "idplan implicit float32": loss_and_grad(
            lambda p: ours(problem, p, T, dtype=torch.float32).u, problem, torch.float32
        ).double(),
        "mpc.pytorch float32": loss_and_grad(
            lambda p: theirs(problem, p, T, dtype=torch.float32)[1], problem, torch.float32
        ).double(),
    }
    errors = {k: float((g - fd).norm() / fd.norm()) for k, g in grads.items()}
    row = {
        "forward_s_idplan": round(t_ours, 4),
        "forward_s_mpc_pytorch": round(t_theirs, 4),
        "forward_speedup": round(t_theirs / t_ours, 1),
        "forward_s_idplan_tol_1e-7": round(t_matched, 4),
        "forward_speedup_tol_1e-7": round(t_theirs / t_matched, 1),
        "idplan_iterations_max_tol_1e-7": int(sol_matched.stats.iterations.max()),
        "idplan_iterations_max": int(sol.stats.iterations.max()),
        "idplan_converged": float(sol.stats.converged.float().mean()),
        "max_abs_u_difference": float((sol.u - u_theirs).abs().max()),
        "mean_cost_idplan": float(sol.stats.cost.mean()),
        "mean_cost_mpc_pytorch": float(cost_theirs.mean()),
        "gradient_rel_error": errors,
        "gradient_norms": {k: float(g.norm()) for k, g in grads.items()},
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--horizon", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    add_record_argument(parser)
    args = parser.parse_args()
    warnings.simplefilter("ignore", NonConvergenceWarning)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}, horizon {args.horizon}")
    results = {}
    for name in ("pendulum", "cartpole"):
        problem = make_problem(name, args.batch, args.horizon, args.seed)
        row = compare(problem, args.horizon, args.repeats)
        results[name] = row
        print(
            f"\n{name}: forward {1e3 * row['forward_s_idplan']:.1f} ms (idplan, {row['idplan_iterations_max']} iterations) vs "
            f"{1e3 * row['forward_s_mpc_pytorch']:.1f} ms (mpc.pytorch): {row['forward_speedup']}x; "
            f"max |u_idplan - u_mpc| = {row['max_abs_u_difference']:.2e}; mean cost {row['mean_cost_idplan']:.6f} vs "
            f"{row['mean_cost_mpc_pytorch']:.6f}"
        )
        print(
            f"  at mpc.pytorch's tolerance (tol=1e-7): {1e3 * row['forward_s_idplan_tol_1e-7']:.1f} ms "
            f"({row['idplan_iterations_max_tol_1e-7']} iterations), {row['forward_speedup_tol_1e-7']}x"
        )
        print(f"  {'gradient':<26} {'rel. error vs FD':>16} {'norm':>10}")
        for key, err in row["gradient_rel_error"].items():
            print(f"  {key:<26} {err:>16.2e} {row['gradient_norms'][key]:>10.4f}")
    emit_result(
        {"benchmark": "ilqr_vs_mpc_pytorch", "batch": args.batch, "horizon": args.horizon, **results}, args.record
    )


if __name__ == "__main__":
    main()
