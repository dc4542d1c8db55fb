"""Visual-navigation datasets larger than memory (not a test): render into shards, then stream one epoch.

``generate`` renders GPPN mazes' panoramas (15x15, four 32x32 views per cell by default) straight
into a shard directory from worker processes and reports the time and the size on disk; ``epoch``
trains a mapper and a ConvGPPN end to end for one epoch over the directory's training split (the
panoramas read from disk batch by batch) and reports the time and the peak resident memory of the
process (``ru_maxrss``: file pages mapped while a batch is copied count too). Each ends with a JSON line.

    python benchmarks/visual_nav_shards.py generate runs/nav_shards --n-train 400 --n-valid 50 --n-test 50
    python benchmarks/visual_nav_shards.py epoch runs/nav_shards

Needs MiniWorld (``pip install "idplan[miniworld]"``) for ``generate``.
"""

from __future__ import annotations

import argparse
import os
import resource
import time
from pathlib import Path

import numpy as np
import torch

from idplan.agents import make_planner
from idplan.agents.mappers import MappedPlanner
from idplan.agents.mappers.panorama import PanoramaMapper
from idplan.agents.training import train_end_to_end
from idplan.agents.training.imitation import TrainConfig
from idplan.envs import generate_visual_nav_shards, load_visual_nav_shards
from idplan.envs.records import add_record_argument, emit_result


def disk_bytes(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.iterdir())


def generate(args) -> dict:
    start = time.perf_counter()
    counts = (args.n_train, args.n_valid, args.n_test)
    generate_visual_nav_shards(
        args.directory, args.size, *counts, seed=args.seed, workers=args.workers, shard_size=args.shard_size
    )
    seconds = time.perf_counter() - start
    mazes = sum(counts)
    size = disk_bytes(args.directory)
    return {"mazes": mazes, "seconds": round(seconds, 1), "disk_bytes": size, "bytes_per_maze": size // mazes}


def epoch(args) -> dict:
    torch.set_num_threads(args.threads)
    train = load_visual_nav_shards(args.directory, "train")
    torch.manual_seed(args.seed)
    model = MappedPlanner(PanoramaMapper(view_size=train.view_size), make_planner("conv_gppn", iterations=30))
    config = TrainConfig(epochs=1, batch_size=args.batch_size, seed=args.seed)
    start = time.perf_counter()
    history = train_end_to_end(model, train, config=config, map_weight=1.0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
    return {
        "train_mazes": len(train),
        "panorama_bytes": int(np.prod(train.panoramas.shape)),  # uint8
        "epoch_seconds": round(seconds, 1),
        "loss": round(history[-1]["loss"], 4),
        "peak_rss_bytes": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="render a visual-navigation dataset into shards")
    gen.add_argument("directory", type=Path)
    gen.add_argument("--size", type=int, default=15)
    gen.add_argument("--n-train", type=int, default=10_000)
    gen.add_argument("--n-valid", type=int, default=2_000)
    gen.add_argument("--n-test", type=int, default=2_000)
    gen.add_argument("--shard-size", type=int, default=100)
    gen.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    gen.add_argument("--seed", type=int, default=0)
    run = commands.add_parser("epoch", help="train one epoch streamed from a shard directory")
    run.add_argument("directory", type=Path)
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--threads", type=int, default=1)
    run.add_argument("--seed", type=int, default=0)
    for command in (gen, run):
        add_record_argument(command)
    args = parser.parse_args()
    result = generate(args) if args.command == "generate" else epoch(args)
    emit_result({"command": args.command, **result}, args.record)


if __name__ == "__main__":
    main()
