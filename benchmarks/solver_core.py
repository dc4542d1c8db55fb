"""Benchmark of the solver core (not a test): prints tables and a final JSON line.

Part 1, backward cost vs forward budget. A VIN-like Bellman fixed point on 49x49 maps, batch 32,
100 action channels: ``v = max_a (W_r * r + gamma P_a * v)`` (``P_a`` a learned 3x3 stochastic
kernel, ``gamma = 0.99``) solved with K = 30, 100, 300 forward iterations; backward time and peak
memory of the fixed-point layer for the implicit adjoint (Anderson, K_bwd = 15) and the unrolled
one. Each configuration runs in a fresh child process: on CPU peak memory is the child's peak RSS
minus its RSS before the step (glibc told to return freed blocks to the OS); on CUDA
``torch.cuda.max_memory_allocated``. A ConvGRU-like step
(whose iterations save 32-channel gate activations) is measured the same way.

Part 2, forward solvers side by side with torchdeq (``pip install --no-deps torchdeq``; skipped if
absent) on (a) exact grid value iteration (49x49, 25% obstacles, 4 moves, gamma 0.99, batch 32)
and (b) a smooth ConvGRU-like contraction, once with a large update gate (fast: ~20 forward steps)
and once with a small one (slow: ~120 steps): time to relative residual 1e-5, final residual, and
error against a reference solution.

    python benchmarks/solver_core.py            # full run (a few minutes on 2 CPU cores)
    python benchmarks/solver_core.py --quick    # smaller, for a smoke check
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

import torch
import torch.nn.functional as F
from _child import measure_training_step, run_in_child

from idplan.envs import grid_bellman_operator
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import Anderson, Broyden, ForwardIteration, ImplicitAdjoint, NonConvergenceWarning, fixed_point

warnings.simplefilter("ignore", NonConvergenceWarning)  # fixed budgets on purpose: K iterations, no tolerance


# ---------------------------------------------------------------- problems
class VinStep(torch.nn.Module):
    """VIN's step ``f(v; r) = max_a (W_r * r + gamma * P_a * v)``: one convolution of ``[r, v]``.

    ``P_a`` is a softmax 3x3 kernel per action, so ``f`` is a ``gamma``-contraction in the sup norm.
    """

    def __init__(self, channels: int, gamma: float = 0.99, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.gamma = gamma
        self.w_r = torch.nn.Parameter(0.1 * torch.randn(channels, 1, 3, 3, generator=g))
        self.p_logits = torch.nn.Parameter(torch.randn(channels, 9, generator=g))

    def forward(self, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        p = self.gamma * torch.softmax(self.p_logits, dim=1).view(-1, 1, 3, 3)
        q = F.conv2d(torch.cat([r, v], dim=1), torch.cat([self.w_r, p], dim=1), padding=1)
        return torch.max(q, dim=1, keepdim=True)[0]


class ConvGruStep(torch.nn.Module):
    """A ConvGRU-like contraction ``h' = (1 - u) h + u tanh(W * (g h) + x)``.

    ``gate_bias`` sets the typical update gate ``u ~ sigmoid(gate_bias)``: a small gate updates
    slowly, so the map contracts slowly (the regime where Anderson acceleration pays off).
    """

    def __init__(self, channels: int, scale: float = 0.9, gate_bias: float = 1.0, seed: int = 0):
        super().__init__()
        self.gate_bias = gate_bias
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(channels, channels, 3, 3, generator=g) * scale / (3 * channels**0.5))
        self.w_gate = torch.nn.Parameter(torch.randn(2 * channels, channels, 1, 1, generator=g) * 0.1)

    def forward(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        u, reset = torch.sigmoid(F.conv2d(h, self.w_gate) + self.gate_bias).chunk(2, dim=1)
        return (1 - u) * h + u * torch.tanh(F.conv2d(reset * h, self.w, padding=1) + x)


def random_grids(batch: int, m: int, obstacle_rate: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    free = torch.rand(batch, 1, m, m, generator=g) >= obstacle_rate
    goal = torch.zeros_like(free)
    for b in range(batch):
        cells = free[b, 0].flatten().nonzero().flatten()
        goal[b, 0].view(-1)[cells[torch.randint(len(cells), (1,), generator=g)]] = True
    return free, goal


# ---------------------------------------------------------------- part 1: one configuration per child
def run_child(cfg: dict) -> dict:
    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    b, m = cfg["batch"], cfg["size"]
    g = torch.Generator().manual_seed(1)
    if cfg["step"] == "vin":
        step = VinStep(cfg["channels"]).to(device)
        inp = torch.randn(b, 1, m, m, generator=g).to(device).requires_grad_()
        z0 = torch.zeros(b, 1, m, m, device=device)
    else:
        step = ConvGruStep(cfg["channels"]).to(device)
        inp = torch.randn(b, cfg["channels"], m, m, generator=g).to(device).requires_grad_()
        z0 = torch.zeros(b, cfg["channels"], m, m, device=device)
    target = torch.randn(z0.shape, generator=g).to(device)
    # a fixed backward budget (K_bwd = 15, as in the paper): the same work whatever K
    adjoint = ImplicitAdjoint(max_iter=15, rtol=1e-30, atol=1e-30) if cfg["adjoint"] == "implicit" else "unrolled"

    def forward_loss(k: int) -> torch.Tensor:
        sol = fixed_point(
            step, z0, inp, solver=ForwardIteration(), adjoint=adjoint, max_iter=k, rtol=1e-30, atol=1e-30, throw=False
        )
        solutions.append(sol)
        return F.mse_loss(sol.value, target)

    solutions = []
    forward_loss(2).backward()  # warm-up (kernels, allocator); small, so it does not set the peak
    result = measure_training_step(lambda: forward_loss(cfg["k"]), step.zero_grad, device, cfg["repeats"])
    sol = solutions[-1]
    bwd_iters = int(sol.backward.iterations.max()) if sol.backward.linear is not None else cfg["k"]
    return {**cfg, **result, "backward_iterations": bwd_iters}


def child_process(cfg: dict) -> dict:
    return run_in_child(__file__, cfg)


def part_backward(args) -> dict:
    results = {}
    for step, channels in (("vin", 100), ("convgru", 32)):
        rows = []
        for k in args.ks:
            for adjoint in ("implicit", "unrolled"):
                cfg = dict(
                    step=step,
                    channels=channels,
                    size=args.size,
                    batch=args.batch,
                    k=k,
                    adjoint=adjoint,
                    device=args.device,
                    repeats=args.repeats,
                )
                rows.append(child_process(cfg))
                r = rows[-1]
                print(
                    f"  {step:8s} K={k:4d} {adjoint:9s} "
                    + (
                        f"forward {r['forward_s']:7.3f} s  backward {r['backward_s']:7.3f} s  peak {r['peak_mb']:8.1f} MB"
                        if "error" not in r
                        else f"failed: {r['error']}"
                    ),
                    flush=True,
                )
        results[step] = rows
    return results


def summarise_backward(results: dict, ks: list[int]) -> dict:
    summary = {}
    for step, rows in results.items():
        get = {(r["k"], r["adjoint"]): r for r in rows if "error" not in r}
        lo, hi = ks[0], ks[-1]
        s = {}
        if (lo, "implicit") in get and (hi, "implicit") in get:
            s["implicit_backward_k_hi_over_k_lo"] = (
                get[(hi, "implicit")]["backward_s"] / get[(lo, "implicit")]["backward_s"]
            )
        if (hi, "implicit") in get and (hi, "unrolled") in get:
            s["unrolled_over_implicit_backward"] = (
                get[(hi, "unrolled")]["backward_s"] / get[(hi, "implicit")]["backward_s"]
            )
            s["unrolled_over_implicit_peak_memory"] = get[(hi, "unrolled")]["peak_mb"] / max(
                get[(hi, "implicit")]["peak_mb"], 1e-9
            )
        summary[step] = s
    return summary


# ---------------------------------------------------------------- part 2: forward solvers vs torchdeq
def relative_residual(f, z):
    fz = f(z, None)
    return float(((fz - z).flatten(1).norm(dim=1) / fz.flatten(1).norm(dim=1).clamp_min(1e-30)).max())


def time_call(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2], out


def part_forward(args) -> dict:
    try:
        from torchdeq.solver import anderson_solver, broyden_solver, fixed_point_iter
    except ImportError:
        print("  torchdeq not installed (pip install --no-deps torchdeq): comparing our solvers only")
        anderson_solver = broyden_solver = fixed_point_iter = None

    problems = {}
    free, goal = random_grids(args.batch, args.size, 0.25, seed=0)
    bellman = grid_bellman_operator(free, goal, gamma=0.99)
    problems["value_iteration"] = (
        lambda v, _a: bellman(v),
        lambda v, _a: bellman(v),
        torch.zeros(args.batch, 1, args.size, args.size),
    )
    x = torch.randn(args.batch, 32, args.size, args.size, generator=torch.Generator().manual_seed(2))
    for speed, gate_bias in (("fast", 1.0), ("slow", -2.0)):
        gru = ConvGruStep(32, scale=0.95, gate_bias=gate_bias).requires_grad_(False)
        gru64 = ConvGruStep(32, scale=0.95, gate_bias=gate_bias).requires_grad_(False).double()
        problems[f"convgru_{speed}"] = (
            lambda h, _a, gru=gru: gru(h, x),
            lambda h, _a, gru64=gru64: gru64(h, x.double()),
            torch.zeros(args.batch, 32, args.size, args.size),
        )

    ours = {"forward": ForwardIteration(), "anderson": Anderson(memory=6), "broyden": Broyden(memory=30)}
    theirs = {"forward": fixed_point_iter, "anderson": anderson_solver, "broyden": broyden_solver}
    results = {}
    with torch.no_grad():
        for name, (f, f64, z0) in problems.items():
            ref = fixed_point(
                f64, z0.double(), None, solver="forward", max_iter=20000, rtol=1e-13, throw=False
            ).value.float()
            rows = {}
            for solver_name in ours:

                def run_ours(s=ours[solver_name], f=f, z0=z0):
                    return fixed_point(f, z0, None, solver=s, max_iter=args.max_iter, rtol=args.tol, throw=False)

                t, sol = time_call(run_ours, args.repeats)
                rows[f"ours_{solver_name}"] = dict(
                    seconds=t,
                    steps=sol.stats.steps,
                    converged=int(sol.stats.converged.sum()),
                    diverged_or_nan=int((sol.stats.diverged | sol.stats.nonfinite).sum()),
                    rel_residual=relative_residual(f, sol.value),
                    error=float(((sol.value - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).max()),
                )
                if theirs[solver_name] is not None:

                    def run_theirs(s=theirs[solver_name], f=f, z0=z0):
                        return s(lambda z: f(z, None), z0, max_iter=args.max_iter, tol=args.tol, stop_mode="rel")

                    reps = 1 if solver_name == "broyden" else args.repeats
                    t, (z_theirs, _, info) = time_call(run_theirs, reps) if reps > 1 else _once(run_theirs)
                    rows[f"torchdeq_{solver_name}"] = dict(
                        seconds=t,
                        steps=int(info["nstep"].max()),
                        nan=bool(torch.isnan(z_theirs).any()),
                        rel_residual=relative_residual(f, z_theirs),
                        error=float(((z_theirs - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1)).max()),
                    )
                for key in (f"ours_{solver_name}", f"torchdeq_{solver_name}"):
                    if key in rows:
                        r = rows[key]
                        print(
                            f"  {name:16s} {key:18s} {r['seconds']:8.3f} s  steps {r['steps']:5d}  "
                            f"rel.res {r['rel_residual']:.2e}  error {r['error']:.2e}",
                            flush=True,
                        )
            results[name] = rows
    return results


def _once(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    add_record_argument(parser)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    args.size, args.batch, args.ks, args.repeats = (
        (15, 4, [5, 10, 20], 1) if args.quick else (49, 32, [30, 100, 300], 3)
    )
    args.max_iter, args.tol = (200, 1e-5) if args.quick else (1000, 1e-5)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("Part 1: backward time and peak memory of a training step (fixed-point layer), implicit vs unrolled")
    backward = part_backward(args)
    summary = summarise_backward(backward, args.ks)
    for step, s in summary.items():
        print(f"  {step}: " + ", ".join(f"{k} = {v:.2f}x" for k, v in s.items()))
    print(f"Part 2: forward solvers to relative residual {args.tol:g} (max {args.max_iter} steps), vs torchdeq")
    forward = part_forward(args)
    ratios = {}
    for name, rows in forward.items():
        r = {"anderson_over_forward_time": rows["ours_anderson"]["seconds"] / rows["ours_forward"]["seconds"]}
        for s in ("forward", "anderson", "broyden"):
            if f"torchdeq_{s}" in rows:
                r[f"torchdeq_over_ours_{s}_time"] = rows[f"torchdeq_{s}"]["seconds"] / rows[f"ours_{s}"]["seconds"]
        ratios[name] = r
        print(f"  {name}: " + ", ".join(f"{k} = {v:.2f}" for k, v in r.items()))
    emit_result(
        {
            "backward": backward,
            "backward_summary": summary,
            "forward": forward,
            "forward_ratios": ratios,
            "device": args.device,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
        },
        args.record,
    )


if __name__ == "__main__":
    main()
