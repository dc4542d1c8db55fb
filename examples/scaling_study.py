"""Implicit vs explicit planners as mazes grow (IDPlan Fig. 2, 4, 7; appendix E.1): one table of
test success, training time, peak memory and forward convergence, a plot, and a final JSON line.

For each size it generates one dataset (train/valid/test, written once in the community format to
``OUT/data_M.npz``) and trains every configuration on it with ``idplan train`` in a child process
of its own, so that each row's peak resident memory is that run's alone (``os.wait4``; host memory:
with ``--device cuda`` the GPU's is not in it):

- implicit planners (forward and adjoint to tolerance, caps that grow with the map);
- explicit planners at the paper's K = 30, 50, 80 and at the K the maze diameter needs
  (``--ks 30 50 80 diameter``: the longest shortest path in the dataset, rounded up to a multiple of 10).

An explicit configuration whose estimated memory (linear in K from the same planner's smaller-K
explicit run at that size) exceeds ``--memory-limit-gb`` is not run and is marked with the estimate;
a run that diverges is marked as diverged. Rows already in ``OUT/rows.jsonl`` are not re-run, so an
interrupted study resumes where it stopped.

    python examples/scaling_study.py --sizes 27 49 --n-train 2000 --epochs 10 --out runs/scaling
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

from idplan.agents.cli import device
from idplan.envs import generate_splits, write_community
from idplan.envs.atomic import atomic_path, atomic_write_text
from idplan.envs.records import add_record_argument, emit_result


def dataset(out: Path, size: int, args) -> tuple[Path, int]:
    """The size's dataset file (generated once) and its longest shortest path."""
    path = out / f"data_{size}.npz"
    meta = out / f"data_{size}.json"
    if not meta.exists():
        splits = generate_splits(size, args.n_train, args.n_valid, args.n_test, seed=args.seed, progress=False)
        diameter = int(max(int(d.distances.max()) for d in splits.values()))
        with atomic_path(path) as tmp:
            write_community(tmp, splits["train"], splits["valid"], splits["test"])
        atomic_write_text(meta, json.dumps({"diameter": diameter}))
    return path, json.loads(meta.read_text())["diameter"]


def run(config: dict, data: Path, out: Path, args) -> dict:
    """Train one configuration in a child process; its summary plus peak memory and wall time."""
    run_dir = out / f"{config['planner']}_{config['mode']}_{config['size']}_k{config['k'] or 'auto'}"
    command = [sys.executable, "-m", "idplan.agents.cli", "train", "--dataset", str(data), "--quiet"]
    command += ["--planner", config["planner"], "--mode", config["mode"], "--epochs", str(args.epochs)]
    command += ["--lr", str(args.lr), "--seed", str(args.seed), "--device", args.device, "--out", str(run_dir)]
    command += ["--overwrite"]  # a config not in the rows yet: its directory holds at most an unfinished attempt
    if config["k"]:
        command += ["--iterations", str(config["k"])]
    start = time.perf_counter()
    with open(out / "children.log", "a") as log:
        log.write(f"\n$ {' '.join(command)}\n")
        log.flush()
        child = subprocess.Popen(command, stdout=log, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)
    row = {
        **config,
        "n_train": args.n_train,
        "wall_s": round(time.perf_counter() - start, 1),
        "peak_gb": round(usage.ru_maxrss / 2**20, 3),
    }
    summary = run_dir / "summary.json"
    if os.waitstatus_to_exitcode(status) != 0 or not summary.exists():
        tail = (out / "children.log").read_text()[-3000:]
        row["status"] = "diverged" if "fixed point diverged" in tail or "TrainingDiverged" in tail else "failed"
        return row
    result = json.loads(summary.read_text())
    test = result["test"]
    row.update(
        status="ok",
        train_s=result["train_seconds"],
        success=test["success"],
        optimal=test["optimal"],
        forward_iterations=test["forward_iterations"],
        forward_rel_residual=test["forward_rel_residual"],
        forward_converged=test.get("forward_converged"),
        best_epoch=result["best_epoch"],
    )
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[27, 49])
    parser.add_argument("--planners", nargs="+", default=["gated_vin", "vin", "conv_gppn", "sym_vin"])
    parser.add_argument("--modes", nargs="+", default=["implicit", "explicit"], choices=["implicit", "explicit"])
    parser.add_argument("--ks", nargs="+", default=["30", "50", "80", "diameter"], help="explicit K (or 'diameter')")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-valid", type=int, default=100)
    parser.add_argument("--n-test", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory-limit-gb", type=float, default=20.0, help="skip explicit runs estimated above this")
    parser.add_argument("--out", type=Path, default=Path("runs/scaling"))
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows_path = args.out / "rows.jsonl"
    done = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
    key = ("planner", "mode", "size", "k")
    seen = {tuple(row[k] for k in key) for row in done}
    rows = list(done)
    for size in args.sizes:
        data, diameter = dataset(args.out, size, args)
        ks = sorted({int(math.ceil(diameter / 10) * 10) if k == "diameter" else int(k) for k in args.ks})
        print(
            f"{size}x{size}: {args.n_train} training mazes, longest shortest path {diameter}; explicit K {ks}",
            flush=True,
        )
        for planner in args.planners:
            configs = (
                [{"planner": planner, "mode": "implicit", "size": size, "k": None}] if "implicit" in args.modes else []
            )
            if "explicit" in args.modes:
                configs += [{"planner": planner, "mode": "explicit", "size": size, "k": k} for k in ks]
            for config in configs:
                if tuple(config[k] for k in key) in seen:
                    continue
                estimate = explicit_memory_estimate(rows, config)
                if estimate is not None and estimate > args.memory_limit_gb:
                    row = {**config, "status": f"does not fit: est. {estimate:.0f} GB"}
                else:
                    row = run(config, data, args.out, args)
                rows.append(row)
                with open(rows_path, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(format_row(row), flush=True)
    print_table(rows)
    plot(rows, args.out / "scaling_study.png")
    emit_result(
        {"example": "scaling_study", "n_train": args.n_train, "epochs": args.epochs, "rows": rows},
        args.record,
        script=__file__,
        argv=argv,
    )


def explicit_memory_estimate(rows: list[dict], config: dict) -> float | None:
    """Peak GB of an explicit run: the same planner and size's implicit peak (the process without
    the unrolled graph; 0 if not run) plus the largest finished explicit run's excess over it,
    scaled linearly in K (``None`` for implicit runs or without a finished explicit run)."""
    if config["mode"] != "explicit":
        return None
    same = [r for r in rows if r["planner"] == config["planner"] and r["size"] == config["size"] and "peak_gb" in r]
    finished = [r for r in same if r["mode"] == "explicit" and r["k"]]
    if not finished:
        return None
    base = min([r["peak_gb"] for r in same if r["mode"] == "implicit"], default=0.0)
    largest = max(finished, key=lambda r: r["k"])
    return base + max(largest["peak_gb"] - base, 0.0) * config["k"] / largest["k"]


def format_row(row: dict) -> str:
    name = f"{row['planner']:10s} {row['mode']:8s} {row['size']:3d} K={row['k'] or 'tol':>4}"
    if row.get("status") != "ok":
        return f"{name}  {row.get('status')}" + (f" (peak {row['peak_gb']} GB)" if "peak_gb" in row else "")
    return (
        f"{name}  success {row['success']:.3f}  optimal {row['optimal']:.3f}  train {row['train_s']:7.1f} s  "
        f"peak {row['peak_gb']:.2f} GB  forward {row['forward_iterations']:.0f} it, rel.res {row['forward_rel_residual']:.1e}"
        + (f", converged {row['forward_converged']:.3f}" if row.get("forward_converged") is not None else "")
    )


def print_table(rows: list[dict]) -> None:
    print(
        "\n| planner | mode | size | K | test success | optimal | train s | peak GB | forward it. | rel. res. | converged |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if r.get("status") != "ok":
            print(f"| {r['planner']} | {r['mode']} | {r['size']} | {r['k'] or 'tol'} | {r.get('status')} |||||||")
            continue
        conv = f"{r['forward_converged']:.3f}" if r.get("forward_converged") is not None else "-"
        print(
            f"| {r['planner']} | {r['mode']} | {r['size']} | {r['k'] or 'tol'} | {r['success']:.3f} | {r['optimal']:.3f} "
            f"| {r['train_s']:.0f} | {r['peak_gb']:.2f} | {r['forward_iterations']:.0f} | {r['forward_rel_residual']:.1e} | {conv} |"
        )


def plot(rows: list[dict], path: Path) -> None:
    """One panel per maze size: explicit test success against K (markers, one line per planner)
    and each implicit planner's success as a horizontal line of the same colour."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = [r for r in rows if r.get("status") == "ok"]
    sizes = sorted({r["size"] for r in ok})
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 3.6), squeeze=False)
    colours = {}
    for ax, size in zip(axes[0], sizes):
        for planner in sorted({r["planner"] for r in ok if r["size"] == size}):
            colour = colours.setdefault(planner, f"C{len(colours)}")
            explicit = sorted(
                (r["k"], r["success"])
                for r in ok
                if (r["planner"], r["mode"], r["size"]) == (planner, "explicit", size)
            )
            if explicit:
                ax.plot(*zip(*explicit), "--s", color=colour, label=f"{planner} explicit (K)")
            for r in ok:
                if (r["planner"], r["mode"], r["size"]) == (planner, "implicit", size):
                    ax.axhline(r["success"], color=colour, lw=2, label=f"{planner} implicit")
        ks = sorted({r["k"] for r in ok if r["size"] == size and r["k"]})
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks])
        ax.minorticks_off()
        ax.set_xlabel("explicit: unrolled steps K")
        ax.set_title(f"{size}x{size} mazes")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("test success")
    labelled = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            labelled.setdefault(label, handle)
    axes[0][-1].legend(labelled.values(), labelled.keys(), fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)


if __name__ == "__main__":
    main()
