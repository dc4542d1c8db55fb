"""Visual-navigation datasets: maze tasks with expert labels and the panoramas of every cell.

A :class:`VisualNavDataset` pairs a :class:`~idplan.envs.maze.MazeDataset` (maps, goals,
BFS labels) with the ``[n, m, m, 4, S, S, 3]`` uint8 panoramas MiniWorld renders from each cell's
centre (:class:`~idplan.envs.miniworld.world.MazeWorld`; the goal's green box is in the world).
:func:`generate_visual_nav_splits` makes them (seeded, with a progress bar; :func:`render_panoramas`
renders in worker processes); :meth:`VisualNavDataset.save` / :meth:`~VisualNavDataset.load`
use ``.npz`` (no pickles); :func:`generate_visual_nav_shards` renders straight into a shard directory
from worker processes, which :func:`load_visual_nav_shards` reads with the panoramas left on disk
(training then streams them: see :mod:`idplan.envs.shards`). :class:`VisualNavTorchDataset` is
the training view.

Size: a 15x15 maze's panoramas are 2.8 MB (GPPN's 10k mazes would be 28 GB); rendering them takes
about 0.35 s per maze and process on a CPU (``benchmarks/miniworld_render.py``).
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from .._checks import check_int
from ..maze.dataset import (
    SPLITS,
    MazeDataset,
    MazeTorchDataset,
    generate_splits,
    load_tagged_npz,
    task_jobs,
    task_meta,
    tasks_from_shards,
)
from ..progress import progress_bar
from ..shards import ShardedArray, open_split, tensor_rows, write_shards

FORMAT = "idplan-visual-nav-dataset-v1"


@dataclass(frozen=True)
class VisualNavDataset:
    """``n`` visual-navigation tasks.

    Attributes:
        tasks: the maze tasks with expert labels (``tasks.free`` ``[n, m, m]``).
        panoramas: ``[n, m, m, 4, S, S, 3]`` uint8 views from every cell facing N, W, S, E (in
            memory, or a :class:`~idplan.envs.shards.ShardedArray` read from disk on access).
    """

    tasks: MazeDataset
    panoramas: np.ndarray

    def __post_init__(self):
        n, m = len(self.tasks), self.tasks.size
        p = self.panoramas
        ok = isinstance(p, (np.ndarray, ShardedArray)) and p.dtype == np.uint8 and p.ndim == 7
        if not ok or p.shape[:4] != (n, m, m, 4) or p.shape[4] != p.shape[5] or p.shape[6] != 3:
            raise ValueError(
                f"VisualNavDataset.panoramas must be uint8 [{n}, {m}, {m}, 4, S, S, 3], "
                f"got {getattr(p, 'shape', None)} {getattr(p, 'dtype', type(p).__name__)}"
            )

    @property
    def size(self) -> int:
        return self.tasks.size

    @property
    def view_size(self) -> int:
        return self.panoramas.shape[4]

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index) -> VisualNavDataset:
        index = np.atleast_1d(np.arange(len(self))[index])
        return VisualNavDataset(self.tasks[index], self.panoramas[index])

    def torch_dataset(self) -> VisualNavTorchDataset:
        """The view a ``DataLoader`` consumes (the mapped-planning training functions call this)."""
        return VisualNavTorchDataset(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write to an ``.npz`` (plain arrays only; the panoramas uncompressed, as they compress poorly)."""
        np.savez(path, **self.tasks.arrays(), format=np.array(FORMAT), panoramas=self.panoramas)

    @classmethod
    def load(cls, path: str | os.PathLike) -> VisualNavDataset:
        """Read a file written by :meth:`save`; a foreign or corrupt file raises ``ValueError``."""
        fields = ("free", "goals", "distances", "optimal", "actions")
        arrays = load_tagged_npz(path, FORMAT, "visual-navigation dataset", fields + ("moves", "panoramas"))
        tasks = MazeDataset(*(arrays[k] for k in fields), moves=int(arrays["moves"]))
        return cls(tasks, arrays["panoramas"])


def _render_chunk(free: np.ndarray, goals: np.ndarray, view_size: int) -> np.ndarray:
    """Panoramas ``[k, m, m, 4, S, S, 3]`` of ``k`` mazes, with one world (run in a worker)."""
    from .env import load_maze_world

    world = load_maze_world()(free[0], tuple(goals[0]), view_size)
    try:
        out = []
        for maze, goal in zip(free, goals):
            world.set_maze(maze, tuple(goal))
            out.append(world.panoramas())
        return np.stack(out)
    finally:
        world.close()


def render_panoramas(
    free: np.ndarray,
    goals: np.ndarray,
    view_size: int = 32,
    *,
    workers: int = 1,
    chunk: int = 25,
    progress: bool = True,
) -> np.ndarray:
    """The panoramas ``[n, m, m, 4, S, S, 3]`` uint8 of ``n`` mazes (``free [n, m, m]``, ``goals [n, 2]``).

    With ``workers > 1`` the mazes are rendered in chunks by that many spawned processes (each with
    its own OpenGL context); rendering is deterministic, so the result does not depend on ``workers``.
    """
    free, goals = np.asarray(free), np.asarray(goals)
    check_int(view_size, "view_size", 8)
    check_int(workers, "workers", 1)
    check_int(chunk, "chunk", 1)
    if free.ndim != 3 or goals.shape != (len(free), 2):
        raise ValueError(f"free must be [n, m, m] and goals [n, 2], got {free.shape} and {goals.shape}")
    starts = range(0, len(free), chunk)
    parts = []
    with progress_bar(total=len(free), desc="panoramas", unit="maze", show=progress) as bar:
        if workers == 1:
            for s in starts:
                parts.append(_render_chunk(free[s : s + chunk], goals[s : s + chunk], view_size))
                bar.update(len(parts[-1]))
        else:
            context = multiprocessing.get_context("spawn")  # no OpenGL state crosses a fork
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [
                    pool.submit(_render_chunk, free[s : s + chunk], goals[s : s + chunk], view_size) for s in starts
                ]
                for future in futures:
                    parts.append(future.result())
                    bar.update(len(parts[-1]))
    return np.concatenate(parts)


def generate_visual_nav_splits(
    size: int = 15,
    n_train: int = 1_000,
    n_valid: int = 200,
    n_test: int = 200,
    *,
    view_size: int = 32,
    seed: int = 0,
    workers: int = 1,
    progress: bool = True,
) -> dict[str, VisualNavDataset]:
    """Train, validation and test sets of GPPN-style mazes (distinct maps across splits, as
    :func:`~idplan.envs.maze.generate_splits`) with the panoramas of every cell."""
    tasks = generate_splits(size, n_train, n_valid, n_test, seed=seed, progress=progress)
    return {
        name: VisualNavDataset(
            tasks[name],
            render_panoramas(tasks[name].free, tasks[name].goals, view_size, workers=workers, progress=progress),
        )
        for name in SPLITS
    }


def save_visual_nav_shards(
    directory: str | os.PathLike, splits: dict[str, VisualNavDataset], shard_size: int = 100, progress: bool = True
) -> None:
    """Write visual-navigation datasets (``{"train": ..., ...}``) as a shard directory (new or empty)."""
    jobs = task_jobs(splits, shard_size, lambda d: {"panoramas": d.panoramas})
    write_shards(directory, FORMAT, task_meta(splits), jobs, progress=progress, desc="visual-nav shards")


def _render_shard(tasks: dict[str, np.ndarray], view_size: int) -> dict[str, np.ndarray]:
    """One shard of :func:`generate_visual_nav_shards`: the task arrays and their panoramas (in a worker)."""
    return {**tasks, "panoramas": _render_chunk(tasks["free"], tasks["goals"], view_size)}


def generate_visual_nav_shards(
    directory: str | os.PathLike,
    size: int = 15,
    n_train: int = 10_000,
    n_valid: int = 2_000,
    n_test: int = 2_000,
    *,
    view_size: int = 32,
    seed: int = 0,
    workers: int = 1,
    shard_size: int = 100,
    progress: bool = True,
) -> None:
    """The splits of :func:`generate_visual_nav_splits` (the same data for the same arguments),
    written into a shard directory (new or empty) instead of memory: the mazes are generated here,
    their panoramas rendered and written shard by shard (``shard_size`` mazes, 2.8 MB each at 15x15
    and 32x32 views) by ``workers`` spawned processes, so memory holds a few shards at most."""
    check_int(view_size, "view_size", 8)
    check_int(shard_size, "shard_size", 1)
    tasks = generate_splits(size, n_train, n_valid, n_test, seed=seed, progress=progress)
    jobs = {
        name: [partial(_render_shard, job(), view_size) for job in js]
        for name, js in task_jobs(tasks, shard_size).items()
    }
    write_shards(directory, FORMAT, task_meta(tasks), jobs, workers=workers, progress=progress, desc="panorama shards")


def load_visual_nav_shards(directory: str | os.PathLike, split: str = "train") -> VisualNavDataset:
    """``split`` of a visual-navigation shard directory: the maze tasks in memory, the panoramas a
    :class:`~idplan.envs.shards.ShardedArray` on disk (a batch is read when the training view asks)."""
    meta, arrays = open_split(directory, split, FORMAT)
    return VisualNavDataset(tasks_from_shards(meta, arrays), arrays["panoramas"])


class VisualNavTorchDataset(MazeTorchDataset):
    """A :class:`VisualNavDataset` as training samples: the maze items (``"input"``: the true map and
    the goal, ``"action"``, ``"optimal"``, ``"distance"``, ``"mask"``) plus ``"observation"`` (the
    ``[m, m, 4, S, S, 3]`` uint8 panoramas, the mapper's input) and ``"goal"`` (``[1, m, m]`` one-hot)."""

    def __init__(self, data: VisualNavDataset):
        super().__init__(data.tasks)
        self.observations = tensor_rows(data.panoramas)  # in memory: shared, no copy; sharded: read on access

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(i)
        return {
            **item,
            "observation": self.observations[i],
            "goal": item["input"][..., 1:2, :, :],
        }  # an index or a slice
