"""Data-parallel training with ``torch.distributed``: the pieces :func:`~.loop.fit` and the trainers
use when a launcher (``torchrun``) started several processes, one per device.

    torchrun --nproc_per_node=2 -m idplan.agents.cli train --planner vin --epochs 30 --out runs/ddp

:func:`process_group` joins the launcher's group (``env://``: ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) with gloo on CPU and NCCL on CUDA, and a timeout,
so that a rank that crashed or hangs ends the others' collectives with an error instead of a hang.
Under it, :func:`data_parallel` wraps the trained module in ``DistributedDataParallel`` (gradients
averaged over ranks in its backward hooks), :func:`sharded_batches` gives each rank its share of
every global batch through a ``DistributedSampler``, :func:`shard` and :func:`weighted_means` split
an evaluation and reduce its metrics, and :func:`is_main` says which rank writes files. Without a
group every helper is the one-process identity, so the trainers have one code path.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler

LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
DEFAULT_TIMEOUT = 600.0  # seconds a collective waits for the other ranks


class DistributedError(RuntimeError):
    """This rank lost the others: one crashed, or did not reach a collective within the timeout."""


def launched() -> bool:
    """Whether a launcher (``torchrun``) started this process as one rank of a group."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def launcher_rank() -> int:
    """This process's rank as the launcher numbered it (0 without one), with or without a group."""
    return int(os.environ["RANK"]) if launched() else 0


def active() -> bool:
    """Whether this process belongs to an initialised process group."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    """Rank 0 (or no group): the process that writes metrics, checkpoints and GIFs."""
    return rank() == 0


@contextmanager
def process_group(device: str | torch.device, timeout: float = DEFAULT_TIMEOUT) -> Iterator[torch.device]:
    """Join the launcher's process group for the block, if a launcher started this process; yields
    this rank's device (``cuda`` becomes ``cuda:LOCAL_RANK``). Backend: NCCL on CUDA, gloo on CPU.
    A collective that waits more than ``timeout`` seconds for another rank raises. Without a
    launcher: ``device`` as given, no group."""
    device = torch.device(device)
    if not launched():
        yield device
        return
    missing = [name for name in LAUNCHER_VARIABLES if name not in os.environ]
    if missing:
        raise ValueError(f"the launcher's environment lacks {', '.join(missing)}: start the ranks with torchrun")
    if not timeout > 0:
        raise ValueError(f"the process group's timeout must be positive, got {timeout!r} s")
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
    me, ranks = dist.get_rank(), dist.get_world_size()
    try:
        yield device
    except RuntimeError as error:
        if not _lost_peer(error):
            raise
        raise DistributedError(
            f"rank {me} of {ranks} stopped: another process crashed (its own error is in its log) or did not "
            f"reach a collective within the {timeout:g} s timeout ({backend}: {error})"
        ) from error
    finally:
        dist.destroy_process_group()


def _lost_peer(error: RuntimeError) -> bool:
    """Whether ``error`` is a collective's failure: a peer gone or a timeout (gloo raises plain
    ``RuntimeError``s, NCCL ``DistBackendError``s)."""
    return isinstance(error, dist.DistError) or any(
        sign in str(error) for sign in ("gloo/transport", "Connection closed by peer", "Timed out", "NCCL")
    )


def data_parallel(module: nn.Module) -> nn.Module:
    """``module`` in ``DistributedDataParallel`` under a group (on the device of its parameters),
    else ``module`` itself. Call the returned module in the training step; save ``module``.

    On CUDA its batch-norm layers become ``SyncBatchNorm`` (in place: statistics over the global
    batch); on CPU, where torch syncs no batch norm, each rank normalises by its own share of the
    batch, so a module with batch norm (the workspace mapper) trains a little differently from one
    process."""
    if not active():
        return module
    device = next(module.parameters()).device
    if device.type != "cuda":
        return DistributedDataParallel(module)
    return DistributedDataParallel(nn.SyncBatchNorm.convert_sync_batchnorm(module), device_ids=[device.index])


def per_rank_batch(batch_size: int, ranks: int | None = None) -> int:
    """Each rank's share of a global batch of ``batch_size`` over ``ranks`` (default: the group's)."""
    ranks = world_size() if ranks is None else ranks
    if batch_size % ranks:
        raise ValueError(
            f"the batch size {batch_size} (maps per step over all processes) does not divide among "
            f"{ranks} processes: choose a multiple of {ranks}"
        )
    return batch_size // ranks


def sharded_batches(view: Dataset, batch_size: int, seed: int) -> Callable[[int], Iterable]:
    """``epoch -> batches`` of this rank's share of each global batch of ``batch_size``: a
    ``DistributedSampler`` (seeded with ``seed``, reshuffled each epoch) gives the ranks disjoint
    slices of one permutation, so that step ``k``'s batches over all ranks are the permutation's
    ``k``-th block of ``batch_size`` (a dataset that does not divide among the ranks is padded by
    repeating samples)."""
    sampler = DistributedSampler(view, num_replicas=world_size(), rank=rank(), shuffle=True, seed=seed)
    loader = DataLoader(view, batch_size=per_rank_batch(batch_size), sampler=sampler)

    def batches(epoch: int) -> DataLoader:
        sampler.set_epoch(epoch)
        return loader

    return batches


def agree(flags: Sequence[bool]) -> list[bool]:
    """Each flag, true on any rank (one all-reduce): what every rank must decide alike, e.g. to skip
    a step, lest their parameters part."""
    if not active():
        return [bool(flag) for flag in flags]
    values = torch.tensor([float(flag) for flag in flags], device=_collective_device())
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return [bool(value) for value in values.tolist()]


def global_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    """The share of this rank in the mean over every rank's samples: ``total / count`` alone; under a
    group ``total * world / sum(count)``, so that DDP's average of the ranks' gradients is the
    gradient of the mean over the global batch (``count`` is all-reduced, without gradient)."""
    if not active():
        return total / count
    counts = count.detach().to(total.dtype).reshape(1).clone()
    dist.all_reduce(counts)
    return total * world_size() / counts[0]


def shard(n: int) -> slice:
    """This rank's share of ``n`` items: every ``world``-th from its rank (a strided view of a tensor);
    every rank must get one."""
    if n < world_size():
        raise ValueError(f"{n} maps cannot be shared among {world_size()} processes: give each at least one")
    return slice(rank(), n, world_size())


def weighted_means(metrics: dict[str, float], weights: dict[str, float]) -> dict[str, float]:
    """The ranks' ``metrics`` combined: each ``metrics[k]`` is a mean over ``weights[k]`` items of
    this rank (keys without a weight are summed, e.g. counts). Every rank gets the same dict; keys
    must be the same on every rank."""
    if not active():
        return dict(metrics)
    keys = sorted(metrics)
    w = [weights.get(k, 1.0) for k in keys]
    values = torch.tensor(
        [metrics[k] * wk for k, wk in zip(keys, w)] + w, dtype=torch.float64, device=_collective_device()
    )
    dist.all_reduce(values)
    reduced = dict(zip(keys, zip(values[: len(keys)].tolist(), values[len(keys) :].tolist())))
    return {k: reduced[k][0] / reduced[k][1] if k in weights else reduced[k][0] for k in metrics}


def gather_sums(sums: dict[str, float], weight: float) -> tuple[dict[str, float], float]:
    """Per-key sums and a total weight added over the ranks (a rank may lack keys others have)."""
    if not active():
        return sums, weight
    gathered: list[tuple[dict[str, float], float] | None] = [None] * world_size()
    dist.all_gather_object(gathered, (sums, weight))
    total: dict[str, float] = {}
    for part, _ in gathered:
        for key, value in part.items():
            total[key] = total.get(key, 0.0) + value
    return total, sum(w for _, w in gathered)


def _collective_device() -> torch.device:
    """NCCL all-reduces CUDA tensors; gloo CPU ones."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


__all__ = [
    "DistributedError",
    "DEFAULT_TIMEOUT",
    "launched",
    "launcher_rank",
    "active",
    "world_size",
    "rank",
    "is_main",
    "process_group",
    "data_parallel",
    "per_rank_batch",
    "sharded_batches",
    "agree",
    "global_mean",
    "shard",
    "weighted_means",
    "gather_sums",
]
