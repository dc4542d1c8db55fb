"""The GPU checks of ``benchmarks/gpu_check.sh`` (not a test): planner training steps, batched iLQR
and a bf16-autocast planner step, on one device. Prints tables and a final JSON line.

- planners: one training step (forward, backward, RMSprop) of VIN and ConvGPPN on ``--sizes``
  mazes (batch ``--batch``), implicit (to the default tolerance, the default caps) and explicit
  (``size`` unrolled steps); median of ``--repeats`` after a warm-up, peak device memory of the step
  (``torch.cuda.max_memory_allocated`` on CUDA, not measured elsewhere);
- ``ilqr``: the pendulum swing-up (T = 20) at each batch of ``--ilqr-batches``, forward and backward;
- bf16: a VIN step under ``torch.autocast(dtype=torch.bfloat16)``, its parameter gradient's cosine
  to the float32 one, and whether its fixed point and adjoint converged (both sides at the planner
  tolerance ``--bf16-tol``, 3e-3: bf16 steps do not reach the default 1e-4).

    python benchmarks/gpu_check.py                          # defaults: cuda, 49 and 99, batch 32
    python benchmarks/gpu_check.py --device cpu --sizes 9 --batch 2 --ilqr-batches 1 4   # a smoke run
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from idplan.agents import make_planner
from idplan.agents.training import imitation_loss
from idplan.envs import MazeTorchDataset, generate_dataset
from idplan.envs.control import pendulum
from idplan.envs.records import add_record_argument, emit_result
from idplan.solvers import ConvergenceError, ilqr

PLANNERS = {"vin": {"q_channels": 40}, "conv_gppn": {"q_channels": 40}}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def planner_step(planner, optimizer, inputs, actions):
    out = planner(inputs)
    loss = imitation_loss(out.logits, actions)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return out


def time_planner(
    planner, inputs, actions, device: torch.device, repeats: int
) -> tuple[list[float], float | None, dict]:
    """Step times, the peak memory of the first timed step, and the warm-up's forward stats."""
    optimizer = torch.optim.RMSprop(planner.parameters(), lr=1e-3)
    stats = planner_step(planner, optimizer, inputs, actions).stats  # warm-up
    times, memory = [], None
    for repeat in range(repeats):
        peak_memory_reset(device)
        times.append(timed(lambda: planner_step(planner, optimizer, inputs, actions), device))
        memory = peak_memory_mb(device) if repeat == 0 else memory
    return times, memory, stats


def planner_rows(args, device: torch.device) -> list[dict]:
    rows = []
    for size in args.sizes:
        view = MazeTorchDataset(generate_dataset(args.batch, size, seed=0, progress=False))
        inputs, actions = view.inputs.to(device), view.actions.to(device)
        for name, options in PLANNERS.items():
            for mode in ("implicit", "explicit"):
                torch.manual_seed(0)
                iterations = size if mode == "explicit" else None
                planner = make_planner(name, mode=mode, iterations=iterations, **options).to(device)
                times, memory, stats = time_planner(planner, inputs, actions, device, args.repeats)
                row = {"planner": name, "mode": mode, "size": size, "step_s": statistics.median(times),
                       "peak_memory_mb": memory, "forward_iterations": stats["forward_iterations"]}  # fmt: skip
                rows.append(row)
                shown = "-" if memory is None else f"{memory:.0f} MB"
                print(f"{name:10s} {mode:9s} {size}x{size}: step {1e3 * row['step_s']:9.1f} ms, peak memory "
                      f"{shown}, forward {row['forward_iterations']} steps", flush=True)  # fmt: skip
    return rows


def swing_up(batch: int, device: torch.device, mass: torch.Tensor):
    """``ilqr`` on ``batch`` pendulums from random angles at rest, T = 20, torque bound 2."""
    generator = torch.Generator().manual_seed(batch)
    angle = (torch.rand(batch, generator=generator, dtype=torch.float64) * 2 - 1) * torch.pi
    x_init = torch.stack([angle.cos(), angle.sin(), torch.zeros_like(angle)], 1).to(device)
    model = pendulum.PendulumParams(mass=mass)
    u_init = torch.zeros(20, batch, 1, dtype=torch.float64, device=device)
    return ilqr(lambda x, u: pendulum.observation_dynamics(x, u, model),
                lambda x, u: pendulum.cost(x, u, model), x_init, u_init, lower=-2.0, upper=2.0)  # fmt: skip


def ilqr_row(batch: int, device: torch.device) -> dict:
    mass = torch.tensor(1.0, dtype=torch.float64, device=device, requires_grad=True)
    swing_up(batch, device, mass)  # warm-up
    solution = {}
    forward = timed(lambda: solution.update(value=swing_up(batch, device, mass)), device)
    backward = timed(lambda: solution["value"].u.sum().backward(), device)
    converged = float(solution["value"].stats.converged.float().mean())
    print(f"ilqr pendulum T=20 batch {batch:5d}: forward {1e3 * forward:8.1f} ms, backward "
          f"{1e3 * backward:8.1f} ms, converged {converged:.3f}", flush=True)  # fmt: skip
    return {"batch": batch, "forward_s": forward, "backward_s": backward, "converged": converged}


def bf16_row(args, device: torch.device) -> dict:
    size = args.sizes[0]
    view = MazeTorchDataset(generate_dataset(args.batch, size, seed=1, progress=False))
    inputs, actions = view.inputs.to(device), view.actions.to(device)
    torch.manual_seed(0)
    planner = make_planner("vin", mode="implicit", tol=args.bf16_tol).to(device)

    def gradient(autocast: bool) -> tuple[torch.Tensor, dict]:
        planner.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = planner(inputs)
            loss = imitation_loss(out.logits.float(), actions)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in planner.parameters() if p.grad is not None]).double()
        return grad, {**out.stats, **out.backward_stats()}

    exact, _ = gradient(False)
    try:
        approx, stats = gradient(True)
    except ConvergenceError as error:  # the bf16 adjoint missed its tolerance: no gradient to compare
        row = {"size": size, "cosine": None, "error": str(error).splitlines()[0]}
        print(f"bf16 autocast VIN {size}x{size}: no gradient ({row['error']})")
        return row
    cosine = float(torch.nn.functional.cosine_similarity(approx, exact, dim=0))
    row = {"size": size, "tol": args.bf16_tol, "cosine": cosine, **stats}
    print(f"bf16 autocast VIN {size}x{size}: gradient cosine to float32 {cosine:.5f}, forward converged "
          f"{stats['forward_converged']:.2f}, adjoint residual {stats.get('backward_rel_residual', float('nan')):.1e}")  # fmt: skip
    return row


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="+", default=[49, 99])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ilqr-batches", type=int, nargs="+", default=[1, 64, 1024])
    parser.add_argument(
        "--bf16-tol",
        type=float,
        default=3e-3,
        help="the planner's tolerance in the bf16 row, both sides (bf16 steps do not reach the default 1e-4)",
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type
    print(f"device: {name}, torch {torch.__version__}")
    result = {"benchmark": "gpu_check", "device": name, "planners": planner_rows(args, device)}
    result["ilqr"] = [ilqr_row(batch, device) for batch in args.ilqr_batches]
    result["bf16"] = bf16_row(args, device)
    emit_result(result, args.record, script=__file__, argv=argv)
    return result


if __name__ == "__main__":
    main()
