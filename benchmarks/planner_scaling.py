"""Planner scaling benchmark (not a test): explicit (unrolled) vs implicit planners, one training
step each, as map size and iteration count grow. Prints a table, writes JSON and a figure in the
style of the IDPlan paper's Fig. 6, and ends with a JSON line.

For each planner (VIN l_q 100, ConvGPPN l_q 40, SymVIN D4 16 fields), map size and K: forward
time, backward time and peak memory of one imitation training step (batch 32, cross-entropy on
the expert actions). Explicit = autograd through K unrolled steps; implicit = K forward
iterations without a graph, then the implicit adjoint with a fixed K_bwd = 15 Anderson steps.
A further row per planner and size, "implicit-tol", runs the implicit forward with Anderson to
relative residual 1e-3 (capped at 300) instead of a fixed K. Each configuration runs in a fresh
child process; configurations whose memory would exceed ``--memory-limit-gb`` (extrapolated
linearly in K from the smallest K) are skipped and marked, as the paper marks out-of-memory runs.
A second part times one training step (median of 5) at K = 30 in this process, for sizes <= 27.

    python benchmarks/planner_scaling.py                                    # full grid (hours on 2 CPUs)
    python benchmarks/planner_scaling.py --sizes 15 27 --ks 30 80 300      # a subset
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
from _child import measure_training_step, run_in_child

from idplan.agents import make_planner
from idplan.agents.training.imitation import imitation_loss
from idplan.envs import MazeTorchDataset, generate_dataset
from idplan.envs.atomic import atomic_path, atomic_write_text
from idplan.envs.records import add_record_argument, emit_result

PLANNERS = {
    "vin": {"q_channels": 100},
    "conv_gppn": {"q_channels": 40},
    "sym_vin": {"q_channels": 16, "hidden": 16},
}


def run_child(cfg: dict) -> dict:
    torch.manual_seed(0)
    device = torch.device(cfg["device"])
    planner, forward_loss, outputs = training_step(cfg, device)
    forward_loss(2).backward()  # warm-up at K=2, so it does not set the peak
    planner.iterations = 300 if cfg["mode"] == "implicit-tol" else cfg["k"]
    result = measure_training_step(forward_loss, planner.zero_grad, device, cfg["repeats"])
    out = outputs[-1]
    return {**cfg, **result, **out.stats, **out.backward_stats()}


def training_step(cfg: dict, device: torch.device):
    """The planner of a configuration and a closure computing one step's loss (on a batch of mazes)."""
    data = generate_dataset(cfg["batch"], cfg["size"], seed=0, progress=False)
    view = MazeTorchDataset(data)
    inputs, actions = view.inputs.to(device), view.actions.to(device)
    tol_mode = cfg["mode"] == "implicit-tol"
    planner = make_planner(
        cfg["planner"],
        mode="explicit" if cfg["mode"] == "explicit" else "implicit",
        iterations=300 if tol_mode else cfg["k"],
        tol=1e-3 if tol_mode else 1e-30,  # fixed K: never stop early
        solver="anderson" if tol_mode else "forward",
        adjoint={"linear_solver": "anderson", "max_iter": 15, "rtol": 1e-30},  # the paper's fixed K_bwd = 15
        **PLANNERS[cfg["planner"]],
    ).to(device)
    outputs = []

    def forward_loss(k: int | None = None) -> torch.Tensor:
        if k is not None:
            planner.iterations = k
        out = planner(inputs)
        outputs.append(out)
        return imitation_loss(out.logits, actions)

    return planner, forward_loss, outputs


def step_times(planners: list[str], sizes: list[int], k: int, batch: int, device: str, repeats: int = 5) -> list[dict]:
    """Training-step times in this process (the children's allocator setting, which makes peak RSS
    track live memory, also slows allocation: time is measured here, without it)."""
    rows = []
    for planner in planners:
        for size in sizes:
            for mode in ("explicit", "implicit"):
                cfg = dict(planner=planner, size=size, k=k, mode=mode, batch=batch, device=device)
                model, forward_loss, _ = training_step(cfg, torch.device(device))
                for _ in range(2):  # warm-up
                    model.zero_grad()
                    forward_loss().backward()
                result = measure_training_step(forward_loss, model.zero_grad, torch.device(device), repeats)
                result.pop("peak_mb")  # not meaningful in this process
                rows.append({**cfg, **result, "step_ms": 1000 * (result["forward_s"] + result["backward_s"])})
                print(
                    f"  {planner:9s} {size:3d}x{size:<3d} K={k} {mode:9s} training step {rows[-1]['step_ms']:8.1f} ms",
                    flush=True,
                )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--planners", nargs="+", default=list(PLANNERS), choices=list(PLANNERS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 27, 49])
    parser.add_argument("--ks", type=int, nargs="+", default=[30, 50, 80, 120, 300])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--memory-limit-gb", type=float, default=20.0)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("runs/planner_scaling"))
    parser.add_argument("--replot", type=Path, help="only redraw the figure from a planner_scaling.json")
    add_record_argument(parser)
    args = parser.parse_args()
    if args.replot:
        plot(json.loads(args.replot.read_text())["rows"], args.replot.with_suffix(".png"))
        return
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    rows = []
    for planner in args.planners:
        for size in args.sizes:
            per_k_mb: dict[str, float] = {}  # measured peak per iteration of the smallest K, per mode
            for k in args.ks:
                for mode in ("explicit", "implicit"):
                    cfg = dict(planner=planner, size=size, k=k, mode=mode, batch=args.batch, repeats=args.repeats)
                    cfg["device"] = args.device
                    estimate_gb = per_k_mb.get(mode, 0.0) * k / 1024
                    if estimate_gb > args.memory_limit_gb:
                        row = {**cfg, "skipped": f"memory (est. {estimate_gb:.0f} GB)"}
                    else:
                        row = run_in_child(__file__, cfg)
                        if "peak_mb" in row and mode not in per_k_mb:
                            per_k_mb[mode] = row["peak_mb"] / k
                    rows.append(row)
                    print(_line(row), flush=True)
            cfg = dict(planner=planner, size=size, k=0, mode="implicit-tol", batch=args.batch, repeats=args.repeats)
            rows.append(run_in_child(__file__, {**cfg, "device": args.device}))
            print(_line(rows[-1]), flush=True)
    print(f"training-step time, batch {args.batch}, K=30, median of 5, in this process:")
    times = step_times(
        args.planners, [size for size in args.sizes if size <= 27] or args.sizes[:1], 30, args.batch, args.device
    )
    summary = summarise(rows, args.ks)
    for key, value in summary.items():
        print(f"  {key}: " + ", ".join(f"{k} = {v:.2f}x" for k, v in value.items()))
    result = {
        "rows": rows,
        "step_times": times,
        "summary": summary,
        "device": args.device,
        "torch": torch.__version__,
        "cpus": os.cpu_count(),
    }
    atomic_write_text(args.out / "planner_scaling.json", json.dumps(result, indent=1))
    plot(rows, args.out / "planner_scaling.png")
    emit_result(result, args.record)


def _line(r: dict) -> str:
    head = f"  {r['planner']:9s} {r['size']:3d}x{r['size']:<3d} K={r['k']:4d} {r['mode']:12s}"
    if "skipped" in r:
        return f"{head} skipped: {r['skipped']}"
    if "error" in r:
        return f"{head} failed: {r['error']}"
    bwd = f" bwd iters {r['backward_iterations']:3d}" if "backward_iterations" in r else ""
    return (
        f"{head} forward {r['forward_s']:8.3f} s  backward {r['backward_s']:8.3f} s  peak {r['peak_mb']:9.1f} MB"
        f"  fwd iters {r['forward_iterations']:4d} rel.res {r['forward_rel_residual']:.1e}{bwd}"
    )


def summarise(rows: list[dict], ks: list[int]) -> dict:
    """The paper's ratios per planner and size: implicit backward K_hi / K_lo, explicit / implicit
    backward time and peak memory at K_hi, and explicit step at K_hi / implicit-tol step."""
    done = {(r["planner"], r["size"], r["k"], r["mode"]): r for r in rows if "forward_s" in r}
    summary = {}
    for planner, size in sorted({(r["planner"], r["size"]) for r in rows}):
        lo, hi = min(ks), max(ks)

        def get(k, mode, planner=planner, size=size):
            return done.get((planner, size, k, mode))

        s = {}
        if get(lo, "implicit") and get(hi, "implicit"):
            s["implicit_backward_k_hi_over_k_lo"] = (
                get(hi, "implicit")["backward_s"] / get(lo, "implicit")["backward_s"]
            )
        if get(hi, "explicit") and get(hi, "implicit"):
            s["explicit_over_implicit_backward"] = get(hi, "explicit")["backward_s"] / get(hi, "implicit")["backward_s"]
            s["explicit_over_implicit_peak_memory"] = get(hi, "explicit")["peak_mb"] / max(
                get(hi, "implicit")["peak_mb"], 1e-9
            )
        if get(hi, "explicit") and get(0, "implicit-tol"):
            step = lambda r: r["forward_s"] + r["backward_s"]  # noqa: E731
            s["explicit_step_over_implicit_tol_step"] = step(get(hi, "explicit")) / step(get(0, "implicit-tol"))
        if s:
            summary[f"{planner} {size}x{size} K={hi}"] = s
    return summary


def plot(rows: list[dict], path: Path) -> None:
    """Backward time and peak memory against K, one column per planner; colour = map size,
    dashed = explicit, solid = implicit; skipped (out-of-memory) runs are marked with an x."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("  (matplotlib not installed: no figure)")
        return
    planners = sorted({r["planner"] for r in rows})
    sizes = sorted({r["size"] for r in rows})
    ks = sorted({r["k"] for r in rows if r["k"] > 0})
    colours = {size: f"C{i}" for i, size in enumerate(sizes)}
    fig, axes = plt.subplots(2, len(planners), figsize=(4.2 * len(planners), 6.4), squeeze=False)
    for col, planner in enumerate(planners):
        for size in sizes:
            for mode, style in (("explicit", "--"), ("implicit", "-")):
                mine = [r for r in rows if r["planner"] == planner and r["size"] == size and r["mode"] == mode]
                done = sorted((r["k"], r) for r in mine if "forward_s" in r)
                label = f"{'ID' if mode == 'implicit' else 'AD'} {size}x{size}"
                for row, key in ((0, "backward_s"), (1, "peak_mb")):
                    if done:
                        axes[row, col].plot(
                            [k for k, _ in done],
                            [r[key] for _, r in done],
                            style,
                            marker="o",
                            color=colours[size],
                            label=label,
                        )
                    for r in mine:
                        if "skipped" in r and done:
                            axes[row, col].plot([r["k"]], [done[-1][1][key]], "x", color=colours[size], markersize=10)
        axes[0, col].set_title(planner)
        axes[0, col].set_ylabel("backward time (s)")
        axes[1, col].set_ylabel("peak memory (MB)")
        for row in range(2):
            axes[row, col].set_xlabel("iterations K")
            axes[row, col].set_xscale("log")
            axes[row, col].set_yscale("log")
            axes[row, col].set_xticks(ks, [str(k) for k in ks])
            axes[row, col].minorticks_off()
            axes[row, col].legend(fontsize=7)
    fig.suptitle("one training step: explicit (AD, dashed) vs implicit (ID, solid); x = skipped (out of memory)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    print(f"  figure: {path}")


if __name__ == "__main__":
    main()
