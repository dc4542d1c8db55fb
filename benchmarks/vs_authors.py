"""Training-step time of idplan's planners against the IDPlan authors' code, side by side in one process.

    GIT_LFS_SKIP_SMUDGE=1 git clone https://github.com/zhao0625/DiffPlan /tmp/DiffPlan  # their code (89fdf51); skip its LFS data
    python benchmarks/vs_authors.py --authors-src /tmp/DiffPlan/src --sizes 15 27

Nothing of theirs is in this repository: their ``src/`` is put on ``sys.path`` and their models are
built from their own ``Config``. Both sides get the same batch of generated mazes with BFS labels,
the same widths (encoder ``l_h``, Q or ConvGRU channels), the same loss (cross-entropy on every
labelled cell) and optimiser (RMSprop, lr 1e-3, clipping 40); one training step is forward,
backward and the optimiser step. Ours runs the papers' architectures (``value_bound=None``,
``contractive=False``: the free steps theirs run). Configurations:

- explicit: ``K`` unrolled steps (theirs: ``VIN``, ``DecoupledGPPN-ConvGRU`` with ``k = K``);
- implicit: ``K`` forward iterations without early stopping, then the backward by Anderson (memory
  5) to 1e-4 within 50 steps (theirs: ``DE-VIN``, ``DE-ConvGPPN`` with ``deq_fwd_max_iter = K``);

Repetitions interleave the two sides; the table gives medians and ours/theirs speed-ups, and the
last line is JSON. Not part of the test suite. SymVIN needs their ``e2cnn`` dependency and is not
included.
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import sys
import time

import torch

from idplan.agents import make_planner
from idplan.agents.training import imitation_loss
from idplan.envs import MazeTorchDataset, generate_dataset
from idplan.envs.records import add_record_argument, current_commit, emit_result

CONFIGS = {  # name: (our planner, our options, their module, their mode)
    "VIN explicit": ("vin", {"mode": "explicit", "value_bound": None}, "models.VIN"),
    "VIN implicit": ("vin", {"mode": "implicit", "value_bound": None}, "models.DE-VIN"),
    "ConvGPPN explicit": ("conv_gppn", {"mode": "explicit", "contractive": False}, "models.DecoupledGPPN-ConvGRU"),
    "ConvGPPN implicit": ("conv_gppn", {"mode": "implicit", "contractive": False}, "models.DE-ConvGPPN"),
}


def ours(name: str, options: dict, width: int, k: int) -> torch.nn.Module:
    common = {"hidden": 150, "q_channels": width, "iterations": k, **options}
    if options["mode"] == "implicit":
        common.update(solver="forward", tol=1e-30, adjoint={"linear_solver": "anderson", "max_iter": 50, "rtol": 1e-4})
    return make_planner(name, **common)


def theirs(module: str, width: int, k: int, size: int) -> torch.nn.Module:
    from config.config import Config  # theirs, from --authors-src

    config = Config(
        use_gpu=False,
        l_h=150,
        l_q=width,
        k=k,
        solver_fwd="forward",
        solver_bwd="anderson",
        deq_fwd_max_iter=k,
        deq_fwd_tol=1e-30,  # never stop early: exactly k iterations, as ours
        deq_bwd_max_iter=50,
        deq_bwd_tol=1e-4,
    )
    config.maze_size = size  # their ConvGRU cell reads it
    if "GPPN" in module:  # their ConvGRU's hidden channels are l_h (and its encoder's)
        config.l_h = width
    return importlib.import_module(module).Planner(1, 4, config)


def step_seconds(model, forward, inputs, actions) -> float:
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    loss = imitation_loss(forward(model, inputs), actions)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 40.0)
    optimizer.step()
    return time.perf_counter() - start


def our_forward(model, inputs):
    return model(inputs).logits


def their_forward(model, inputs):
    return model(inputs[:, :1], inputs[:, 1:]).logits.squeeze(2)  # [B, A, 1, m, m] -> [B, A, m, m]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--authors-src", required=True, help="the src/ folder of a clone of zhao0625/DiffPlan")
    parser.add_argument("--sizes", type=int, nargs="+", default=[15, 27])
    parser.add_argument("--widths", type=int, nargs="+", default=[40, 150], help="Q / ConvGRU channels")
    parser.add_argument("--k", type=int, default=30, help="unrolled steps / forward iterations")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    add_record_argument(parser)
    args = parser.parse_args(argv)
    sys.path.insert(0, args.authors_src)
    torch.set_num_threads(args.threads)
    rows = []
    for size in args.sizes:
        data = generate_dataset(args.batch, size, seed=0, progress=False)
        view = MazeTorchDataset(data)
        inputs, actions = view.inputs, view.actions
        assert inputs.shape == (args.batch, 2, size, size), inputs.shape
        for config in args.configs:
            name, options, module = CONFIGS[config]
            for width in args.widths:
                torch.manual_seed(0)
                mine, other = ours(name, options, width, args.k), theirs(module, width, args.k, size)
                for model, forward in ((mine, our_forward), (other, their_forward)):  # warm-up
                    step_seconds(model, forward, inputs, actions)
                times = {"ours": [], "theirs": []}
                for _ in range(args.repeats):  # interleaved
                    times["ours"].append(step_seconds(mine, our_forward, inputs, actions))
                    times["theirs"].append(step_seconds(other, their_forward, inputs, actions))
                ours_s, theirs_s = statistics.median(times["ours"]), statistics.median(times["theirs"])
                row = {"config": config, "width": width, "size": size, "ours_s": ours_s, "theirs_s": theirs_s}
                row["parameters"] = [sum(p.numel() for p in m.parameters()) for m in (mine, other)]
                row["speedup"] = theirs_s / ours_s
                rows.append(row)
                print(
                    f"{config:<18} width {width:>3}  {size}x{size}:  ours {1e3 * ours_s:8.1f} ms  "
                    f"theirs {1e3 * theirs_s:8.1f} ms  ours/theirs speed-up {row['speedup']:.2f}x  "
                    f"(parameters {row['parameters'][0]:,} / {row['parameters'][1]:,})",
                    flush=True,
                )
    authors = current_commit(args.authors_src)
    note = f"authors' code: DiffPlan {authors}" if authors else ""
    emit_result(
        {"benchmark": "vs_authors", "k": args.k, "batch": args.batch, "rows": rows},
        args.record,
        note,
        script=__file__,
        argv=argv,
    )


if __name__ == "__main__":
    main()
