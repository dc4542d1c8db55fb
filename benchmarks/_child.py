"""Shared by the benchmarks: run one configuration in a fresh child process and measure one
training step's forward time, backward time and peak memory there.

On CPU, peak memory is the child's peak RSS minus its RSS just before the measured step, with
glibc told to return every freed block >= 64 KiB to the OS (``MALLOC_MMAP_THRESHOLD_``) so that RSS
tracks live tensors; on CUDA it is ``torch.cuda.max_memory_allocated`` above the memory in use.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable

import torch


def run_in_child(script: str, cfg: dict, timeout: float | None = None) -> dict:
    """Run ``python script --child JSON`` and return the dict printed on its last line
    (or ``cfg`` with an ``"error"`` if the child failed)."""
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    try:
        out = subprocess.run(
            [sys.executable, script, "--child", json.dumps(cfg)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {**cfg, "error": f"timed out after {timeout} s"}
    if out.returncode != 0:
        return {**cfg, "error": (out.stderr.strip().splitlines() or [f"killed (exit {out.returncode})"])[-1]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure_training_step(
    forward: Callable[[], torch.Tensor], zero_grad: Callable[[], None], device: torch.device, repeats: int
) -> dict:
    """Time ``loss = forward(); loss.backward()`` (median of ``repeats``) and the first run's peak memory.

    The caller warms up first with a small configuration, so the warm-up does not set the peak.
    """
    import psutil

    def once():
        t0 = time.perf_counter()
        loss = forward()
        sync(device)
        t1 = time.perf_counter()
        loss.backward()
        sync(device)
        return t1 - t0, time.perf_counter() - t1

    zero_grad()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    rss_before = psutil.Process().memory_info().rss
    times = [once()]
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - base
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - rss_before
    for _ in range(repeats - 1):
        zero_grad()
        times.append(once())
    forward_s = sorted(t[0] for t in times)[len(times) // 2]
    backward_s = sorted(t[1] for t in times)[len(times) // 2]
    return {"forward_s": forward_s, "backward_s": backward_s, "peak_mb": max(peak, 0) / 2**20}
