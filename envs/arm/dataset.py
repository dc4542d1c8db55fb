"""Arm datasets: C-space manipulation tasks with expert labels, workspace images and obstacles.

An :class:`ArmDataset` pairs a :class:`~idplan.envs.maze.MazeDataset` on the C-space torus
(``free`` = collision-free configurations, goals, BFS distances and optimal actions on the torus)
with what made it: the obstacles ``[n, K, 5]`` and the ``[n, P, P]`` top-down workspace images (see
:mod:`.geometry`). :func:`generate_arm_dataset` and :func:`generate_arm_splits` make them
(seeded, with a progress bar); :meth:`ArmDataset.save` / :meth:`ArmDataset.load` use ``.npz`` (no
pickles); :func:`generate_arm_shards` (in worker processes) and :func:`save_arm_shards` write shard
directories that :func:`load_arm_shards` reads with the workspace images left on disk. :class:`ArmTorchDataset` adds the workspace image and the C-space target to the maze
training view, for the workspace mapper.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from .._checks import check_int
from ..maze.dataset import (
    SPLITS,
    TASK_FIELDS,
    MazeDataset,
    MazeTorchDataset,
    concatenate,
    label_tasks,
    load_tagged_npz,
    random_free_cells,
    task_jobs,
    task_meta,
    tasks_from_shards,
)
from ..progress import progress_bar
from ..shards import ShardedArray, open_split, tensor_rows, write_shards
from .geometry import ArmGeometry, check_bins, check_obstacles, cspace_maps, random_obstacles, workspace_images

FORMAT = "idplan-arm-dataset-v1"


@dataclass(frozen=True)
class ArmDataset:
    """``n`` arm tasks.

    Attributes:
        tasks: the C-space tasks with expert labels (``tasks.free`` ``[n, bins, bins]``, ``torus``).
        obstacles: ``[n, K, 5]`` float64 obstacle rows.
        workspace: ``[n, P, P]`` bool top-down obstacle images (in memory, or a
            :class:`~idplan.envs.shards.ShardedArray` read from disk on access).
        geometry: the arm the C-spaces were computed for.
    """

    tasks: MazeDataset
    obstacles: np.ndarray
    workspace: np.ndarray
    geometry: ArmGeometry = ArmGeometry()

    def __post_init__(self):
        n = len(self.tasks)
        if not self.tasks.torus:
            raise ValueError("ArmDataset.tasks must be labelled on the torus (torus=True)")
        check_obstacles(self.obstacles, batched=True)
        if len(self.obstacles) != n:
            raise ValueError(f"ArmDataset.obstacles: expected {n} tasks, got {len(self.obstacles)}")
        image = self.workspace
        if (
            not isinstance(image, (np.ndarray, ShardedArray))
            or image.dtype != np.bool_
            or image.ndim != 3
            or len(image) != n
        ):
            raise ValueError(f"ArmDataset.workspace must be bool [{n}, P, P], got {getattr(image, 'shape', None)}")

    @property
    def bins(self) -> int:
        return self.tasks.size

    def __len__(self) -> int:
        return len(self.tasks)

    def __getitem__(self, index) -> ArmDataset:
        index = np.atleast_1d(np.arange(len(self))[index])
        return ArmDataset(self.tasks[index], self.obstacles[index], self.workspace[index], self.geometry)

    def torch_dataset(self) -> ArmTorchDataset:
        """The view a ``DataLoader`` consumes (the mapped-planning training functions call this)."""
        return ArmTorchDataset(self)

    def save(self, path: str | os.PathLike) -> None:
        """Write to a compressed ``.npz`` (plain arrays only)."""
        np.savez_compressed(
            path,
            **self.tasks.arrays(),
            format=np.array(FORMAT),
            obstacles=self.obstacles,
            workspace=np.packbits(self.workspace, axis=-1),
            pixels=np.array(self.workspace.shape[-1]),
            links=np.array(self.geometry.links),
            extent=np.array(self.geometry.extent),
            base_clearance=np.array(self.geometry.base_clearance),
        )

    @classmethod
    def load(cls, path: str | os.PathLike) -> ArmDataset:
        """Read a file written by :meth:`save`; a foreign or corrupt file raises ``ValueError``."""
        fields = ("free", "goals", "distances", "optimal", "actions", "obstacles", "workspace", "pixels", "links")
        arrays = load_tagged_npz(path, FORMAT, "arm dataset", fields + ("extent", "base_clearance"))
        pixels = int(arrays["pixels"])
        tasks = MazeDataset(*(arrays[k] for k in fields[:5]), moves=4, torus=True)
        geometry = ArmGeometry(
            tuple(float(v) for v in arrays["links"]), float(arrays["extent"]), float(arrays["base_clearance"])
        )
        workspace = np.unpackbits(arrays["workspace"], axis=-1, count=pixels).astype(bool)
        return cls(tasks, arrays["obstacles"], workspace, geometry)


def generate_arm_dataset(
    n: int,
    bins: int = 18,
    *,
    max_obstacles: int = 5,
    pixels: int = 96,
    geometry: ArmGeometry = ArmGeometry(),
    seed: int | np.random.Generator | None = 0,
    progress: bool = True,
    chunk: int = 1000,
) -> ArmDataset:
    """Generate ``n`` arm tasks: random obstacles, their exact C-space, a goal among the free
    configurations (from which some other configuration is reachable) and BFS labels on the torus.

    A task whose C-space has no free configuration, or whose goal is cut off from all others, is
    redrawn.
    """
    check_int(n, "n", 1)
    bins = check_bins(bins)
    rng = np.random.default_rng(seed)
    parts, count = [], 0
    with progress_bar(total=n, desc=f"arm {bins}x{bins}", unit="task", show=progress) as bar:
        while count < n:
            obstacles = random_obstacles(min(chunk, n - count), rng, max_obstacles, geometry)
            free = ~cspace_maps(obstacles, bins, geometry)
            keep = free.reshape(len(free), -1).any(axis=1)
            obstacles, free = obstacles[keep], free[keep]
            if not len(free):
                continue
            tasks = label_tasks(free, random_free_cells(free, rng), 4, rng, torus=True)
            keep = (tasks.distances > 0).reshape(len(tasks), -1).any(axis=1)
            tasks, obstacles = tasks[keep], obstacles[keep]
            parts.append(ArmDataset(tasks, obstacles, workspace_images(obstacles, pixels, geometry), geometry))
            count += len(tasks)
            bar.update(len(tasks))
    return ArmDataset(
        concatenate([p.tasks for p in parts]),
        np.concatenate([p.obstacles for p in parts]),
        np.concatenate([p.workspace for p in parts]),
        geometry,
    )[:n]


def generate_arm_splits(
    bins: int = 18, n_train: int = 10_000, n_valid: int = 2_000, n_test: int = 2_000, *, seed: int = 0, **kwargs
) -> dict[str, ArmDataset]:
    """Train, validation and test arm datasets from independent streams of one seed."""
    seeds = np.random.SeedSequence(seed).spawn(len(SPLITS))
    counts = (n_train, n_valid, n_test)
    return {
        name: generate_arm_dataset(count, bins, seed=np.random.default_rng(s), **kwargs)
        for name, count, s in zip(SPLITS, counts, seeds)
    }


def _geometry_meta(geometry: ArmGeometry) -> dict[str, object]:
    return {"links": list(geometry.links), "extent": geometry.extent, "base_clearance": geometry.base_clearance}


def save_arm_shards(
    directory: str | os.PathLike, splits: dict[str, ArmDataset], shard_size: int = 1000, progress: bool = True
) -> None:
    """Write arm datasets (``{"train": ..., ...}``, one geometry) as a shard directory (new or empty)."""
    geometries = {d.geometry for d in splits.values()}
    if len(geometries) != 1:
        raise ValueError(f"the splits were made for different arms: {geometries}")
    meta = {**task_meta(splits), **_geometry_meta(geometries.pop())}
    jobs = task_jobs(splits, shard_size, lambda d: {"obstacles": d.obstacles, "workspace": d.workspace})
    write_shards(directory, FORMAT, meta, jobs, progress=progress, desc="arm shards")


def _arm_shard(n: int, bins: int, seed: np.random.SeedSequence, options: dict) -> dict[str, np.ndarray]:
    """One shard of :func:`generate_arm_shards` (run in a worker)."""
    data = generate_arm_dataset(n, bins, seed=np.random.default_rng(seed), progress=False, **options)
    return {
        **{k: getattr(data.tasks, k) for k in TASK_FIELDS},
        "obstacles": data.obstacles,
        "workspace": data.workspace,
    }


def generate_arm_shards(
    directory: str | os.PathLike,
    bins: int = 18,
    n_train: int = 10_000,
    n_valid: int = 2_000,
    n_test: int = 2_000,
    *,
    seed: int = 0,
    shard_size: int = 1000,
    workers: int = 1,
    progress: bool = True,
    geometry: ArmGeometry = ArmGeometry(),
    **kwargs,
) -> None:
    """Generate arm splits straight into a shard directory (new or empty): each shard of
    ``shard_size`` tasks is made and written by one of ``workers`` processes from its own seed (a
    child of ``seed``'s, by split and shard), so the data depend on ``seed`` and ``shard_size``, not
    on ``workers``. ``kwargs`` go to :func:`generate_arm_dataset` (``max_obstacles``, ``pixels``)."""
    check_int(shard_size, "shard_size", 1)
    options = {**kwargs, "geometry": geometry}
    jobs = {}
    for name, count, split_seed in zip(SPLITS, (n_train, n_valid, n_test), np.random.SeedSequence(seed).spawn(3)):
        sizes = [min(shard_size, count - s) for s in range(0, check_int(count, f"n_{name}", 1), shard_size)]
        jobs[name] = [partial(_arm_shard, k, bins, s, options) for k, s in zip(sizes, split_seed.spawn(len(sizes)))]
    meta = {"moves": 4, "torus": True, **_geometry_meta(geometry)}
    write_shards(directory, FORMAT, meta, jobs, workers=workers, progress=progress, desc="arm shards")


def load_arm_shards(directory: str | os.PathLike, split: str = "train") -> ArmDataset:
    """``split`` of an arm shard directory: the C-space tasks and obstacles in memory, the
    workspace images a :class:`~idplan.envs.shards.ShardedArray` on disk."""
    meta, arrays = open_split(directory, split, FORMAT)
    geometry = ArmGeometry(tuple(meta["links"]), float(meta["extent"]), float(meta["base_clearance"]))
    return ArmDataset(tasks_from_shards(meta, arrays), arrays["obstacles"][:], arrays["workspace"], geometry)


def _image_rows(rows: np.ndarray) -> np.ndarray:
    """``[k, P, P]`` bool images as ``[k, 1, P, P]`` float32."""
    return rows.astype(np.float32)[:, None]


class ArmTorchDataset(MazeTorchDataset):
    """An :class:`ArmDataset` as training samples: the maze items (``"input"``: C-space obstacle map
    and goal, ``"action"``, ``"optimal"``, ``"distance"``, ``"mask"``) plus ``"observation"`` (the
    ``[1, P, P]`` float32 workspace image, the mapper's input) and ``"goal"`` (``[1, bins, bins]``
    float32 one-hot goal)."""

    def __init__(self, data: ArmDataset):
        super().__init__(data.tasks)
        self.arm = data
        self.observations = tensor_rows(data.workspace, _image_rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(i)
        return {
            **item,
            "observation": self.observations[i],
            "goal": item["input"][..., 1:2, :, :],
        }  # an index or a slice
