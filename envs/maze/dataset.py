"""Maze datasets for imitation training: tasks (map + goal) with expert labels from BFS.

A :class:`MazeDataset` holds ``n`` tasks on ``m x m`` maps with, for every cell, the shortest-path
distance to the goal, the set of optimal actions (multi-hot) and one optimal action (ties broken
at random with the dataset's seed). :func:`generate_dataset` and :func:`generate_splits` make
them (distinct maps, checked by hashing); :meth:`MazeDataset.save` / :meth:`MazeDataset.load`
store them as ``.npz`` (no pickles), :func:`save_maze_shards` / :func:`load_maze_shards` as
memory-mapped shards (:mod:`idplan.envs.shards`); :func:`read_community` / :func:`write_community` convert
from and to the community format (``diffplan_m15_4abs-cc_10k.npz``: keys ``arr_0`` .. ``arr_8``);
:class:`MazeTorchDataset` is the view a ``torch.utils.data.DataLoader`` consumes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import torch

from ..progress import progress_bar
from ..shards import ShardedArray, is_shard_directory, open_split, split_jobs, write_shards
from .generation import generate_maps
from .shortest_paths import bfs_distances, check_maps, optimal_actions, pick_action

FORMAT = "idplan-maze-dataset-v1"
SPLITS = ("train", "valid", "test")
"""The names of a dataset's splits, in order."""
COMMUNITY_KEYS = {"train": (0, 1, 2), "valid": (3, 4, 5), "test": (6, 7, 8)}
IGNORE_INDEX = -100
"""The action target on cells without a label (torch's cross-entropy default ``ignore_index``)."""
TASK_FIELDS = ("free", "goals", "distances", "optimal", "actions")  # a MazeDataset's per-task arrays


@dataclass(frozen=True)
class MazeDataset:
    """``n`` navigation tasks on ``m x m`` maps with expert labels.

    Attributes:
        free: ``[n, m, m]`` bool, ``True`` on free cells.
        goals: ``[n, 2]`` int64 ``(row, column)`` of each goal.
        distances: ``[n, m, m]`` int32 shortest-path distance to the goal, -1 on obstacles and on
            cells that cannot reach it.
        optimal: ``[n, moves, m, m]`` bool, the optimal actions of each cell (multi-hot; none on
            the goal, obstacles and cells that cannot reach the goal).
        actions: ``[n, m, m]`` int8, one optimal action per cell (seeded tie-breaking), -1 where
            ``optimal`` is empty.
        moves: 4 (N, W, S, E) or 8 (then NW, SW, SE, NE).
        torus: the maps wrap around at their edges (configuration spaces of revolute joints).
    """

    free: np.ndarray
    goals: np.ndarray
    distances: np.ndarray
    optimal: np.ndarray
    actions: np.ndarray
    moves: int
    torus: bool = False

    def __post_init__(self):
        n, m = len(self.free), self.size
        expected = {
            "free": (self.free, (n, m, m), np.bool_),
            "goals": (self.goals, (n, 2), np.int64),
            "distances": (self.distances, (n, m, m), np.int32),
            "optimal": (self.optimal, (n, self.moves, m, m), np.bool_),
            "actions": (self.actions, (n, m, m), np.int8),
        }
        for name, (array, shape, dtype) in expected.items():
            if not isinstance(array, np.ndarray) or array.shape != shape or array.dtype != dtype:
                got = (getattr(array, "shape", None), getattr(array, "dtype", type(array).__name__))
                raise ValueError(f"MazeDataset.{name}: expected shape {shape} and dtype {np.dtype(dtype)}, got {got}")

    @property
    def size(self) -> int:
        """The side ``m`` of the maps."""
        return self.free.shape[-1]

    def __len__(self) -> int:
        return len(self.free)

    def __getitem__(self, index) -> MazeDataset:
        """A subset (an int, slice or index array) as a new dataset."""
        index = np.atleast_1d(np.arange(len(self))[index])
        return MazeDataset(
            self.free[index],
            self.goals[index],
            self.distances[index],
            self.optimal[index],
            self.actions[index],
            self.moves,
            self.torus,
        )

    @property
    def reachable(self) -> np.ndarray:
        """``[n, m, m]`` bool: cells that have an optimal action (free, not the goal, can reach it)."""
        return self.actions >= 0

    def digests(self) -> list[bytes]:
        """One hash per map (the map only, not the goal), to check that splits are distinct."""
        return map_digests(self.free)

    def arrays(self) -> dict[str, np.ndarray]:
        """The dataset as named plain arrays (what :meth:`save` writes, less the format tag)."""
        return {
            **{k: getattr(self, k) for k in TASK_FIELDS},
            "moves": np.array(self.moves),
            "torus": np.array(self.torus),
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write to a compressed ``.npz`` (plain arrays only: loading it runs no code)."""
        np.savez_compressed(path, format=np.array(FORMAT), **self.arrays())

    @classmethod
    def load(cls, path: str | os.PathLike) -> MazeDataset:
        """Read a file written by :meth:`save`; a foreign or corrupt file raises ``ValueError``."""
        arrays = _load_npz(path)
        fmt = arrays.get("format")
        if fmt is None or fmt.shape != () or str(fmt) != FORMAT:
            hint = " (community files: use read_community)" if "arr_0" in arrays else ""
            raise ValueError(f"{path}: not an idplan maze dataset (expected format {FORMAT!r}){hint}")
        fields = ("free", "goals", "distances", "optimal", "actions", "moves")
        missing = [k for k in fields if k not in arrays]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}")
        torus = bool(arrays["torus"]) if "torus" in arrays else False  # absent in files before it existed
        return cls(**{k: arrays[k] for k in fields[:-1]}, moves=int(arrays["moves"]), torus=torus)


def concatenate(parts: list[MazeDataset]) -> MazeDataset:
    """Join datasets of the same map size and move set."""
    if not parts:
        raise ValueError("concatenate: nothing to join")
    if len({(p.size, p.moves, p.torus) for p in parts}) != 1:
        raise ValueError("concatenate: datasets differ in map size, moves or topology (torus)")
    return MazeDataset(
        **{k: np.concatenate([getattr(p, k) for p in parts]) for k in TASK_FIELDS},
        moves=parts[0].moves,
        torus=parts[0].torus,
    )


def map_digests(free: np.ndarray) -> list[bytes]:
    """A 16-byte BLAKE2 digest of each map of ``free`` ``[n, m, m]`` (its shape included)."""
    free = check_maps(free)
    header = np.array(free.shape[1:], dtype=np.int64).tobytes()
    packed = np.packbits(free.reshape(len(free), -1), axis=1)
    return [hashlib.blake2b(header + row.tobytes(), digest_size=16).digest() for row in packed]


def random_free_cells(free: np.ndarray, rng: np.random.Generator, where: np.ndarray | None = None) -> np.ndarray:
    """One uniformly drawn cell per map among ``free`` (and ``where``, if given): ``[n, 2]`` int64.

    Raises ``ValueError`` if a map has no candidate cell.
    """
    candidates = free if where is None else free & where
    if not candidates.reshape(len(free), -1).any(axis=1).all():
        raise ValueError("a map has no cell to draw from")
    score = np.where(candidates, rng.random(free.shape), -1.0).reshape(len(free), -1)
    flat = score.argmax(axis=1)
    return np.stack(np.divmod(flat, free.shape[-1]), axis=1).astype(np.int64)


def label_tasks(
    free: np.ndarray, goals: np.ndarray, moves: int, rng: np.random.Generator, torus: bool = False
) -> MazeDataset:
    """Expert labels for given maps and goals: BFS distances, optimal actions, one pick per cell."""
    free = check_maps(free)
    goals = np.asarray(goals, dtype=np.int64)
    distances = bfs_distances(free, goals, moves, torus)
    optimal = optimal_actions(free, distances, moves, torus)
    return MazeDataset(free, goals, distances, optimal, pick_action(optimal, rng), moves, torus)


def generate_dataset(
    n: int,
    size: int,
    *,
    generator: str = "maze",
    moves: int = 4,
    seed: int | np.random.Generator | None = 0,
    unique: bool = True,
    exclude: Iterable[bytes] = (),
    progress: bool = True,
    chunk: int = 2000,
) -> MazeDataset:
    """Generate ``n`` tasks of size ``size`` with expert labels.

    Args:
        n: number of tasks.
        size: map side (>= 5).
        generator: ``"maze"`` (GPPN's) or ``"obstacles"`` (VIN's); see :mod:`.generation`.
        moves: 4 or 8.
        seed: an int, a ``numpy.random.Generator`` or ``None`` (fresh entropy).
        unique: no map appears twice.
        exclude: digests (:func:`map_digests`) of maps that must not appear (another split's).
        progress: show a progress bar.
        chunk: maps generated and labelled per step.

    Raises:
        RuntimeError: if the generator cannot produce enough distinct maps (tiny sizes).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rng = np.random.default_rng(seed)
    seen = set(exclude)
    parts, count, stale = [], 0, 0
    with progress_bar(total=n, desc=f"{size}x{size} {generator}", unit="task", show=progress) as bar:
        while count < n:
            free = generate_maps(min(chunk, max(n - count, 64)), size, rng, generator)
            if unique or seen:
                keep = []
                for i, digest in enumerate(map_digests(free)):
                    if digest not in seen:
                        keep.append(i)
                        if unique:
                            seen.add(digest)
                free = free[keep]
            free = free[: n - count]
            stale = stale + 1 if len(free) == 0 else 0
            if stale >= 20:
                raise RuntimeError(f"found only {count} distinct {size}x{size} {generator} maps of the {n} requested")
            if len(free) == 0:
                continue
            parts.append(label_tasks(free, random_free_cells(free, rng), moves, rng))
            count += len(free)
            bar.update(len(free))
    return concatenate(parts)


def task_nbytes(size: int, moves: int = 4) -> dict[str, int]:
    """Bytes of one ``size x size`` task: ``"arrays"``, its :class:`MazeDataset` arrays (``free``,
    ``goals``, ``distances``, ``optimal``, ``actions``), and ``"tensors"``, its
    :class:`MazeTorchDataset` view (float32 inputs and optimal actions, int64 actions and
    distances, bool mask). Sizes memory up front, before a large dataset is generated."""
    cells = size * size
    return {
        "arrays": (1 + 4 + moves + 1) * cells + 2 * 8,
        "tensors": (2 * 4 + 8 + moves * 4 + 8 + 1) * cells,
    }


def generate_splits(
    size: int,
    n_train: int = 10_000,
    n_valid: int = 2_000,
    n_test: int = 2_000,
    *,
    generator: str = "maze",
    moves: int = 4,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, MazeDataset]:
    """Train, validation and test datasets with distinct maps (no map in two splits)."""
    seeds = np.random.SeedSequence(seed).spawn(len(SPLITS))
    splits: dict[str, MazeDataset] = {}
    taken: set[bytes] = set()
    for name, count, split_seed in zip(SPLITS, (n_train, n_valid, n_test), seeds):
        data = generate_dataset(
            count,
            size,
            generator=generator,
            moves=moves,
            seed=np.random.default_rng(split_seed),
            exclude=taken,
            progress=progress,
        )
        taken.update(data.digests())
        splits[name] = data
    return splits


def read_community(path: str | os.PathLike, split: str = "train", seed: int = 0) -> MazeDataset:
    """Read one split of a community-format file (GPPN / IDPlan ``.npz``, keys ``arr_0`` .. ``arr_8``).

    Mazes are ``1 = free``; goals a ``[N, 1, m, m]`` one-hot map; labels ``[N, 4, 1, m, m]`` one-hot
    N, W, S, E. Distances and the optimal-action sets are recomputed by BFS; ``actions`` keeps the
    file's label on the cells that have an optimal action (-1 elsewhere, where the file's labels are
    arbitrary). ``seed`` is unused unless a label is missing there (then an optimal one is drawn).
    """
    if split not in COMMUNITY_KEYS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    arrays = _load_npz(path)
    k_maze, k_goal, k_label = (f"arr_{k}" for k in COMMUNITY_KEYS[split])
    missing = [k for k in (k_maze, k_goal, k_label) if k not in arrays]
    if missing:
        raise ValueError(f"{path}: not a community maze file, missing {missing}")
    mazes, goal_maps, labels = arrays[k_maze], arrays[k_goal], arrays[k_label]
    n, m = len(mazes), mazes.shape[-1]
    if mazes.shape != (n, m, m) or goal_maps.shape != (n, 1, m, m) or labels.shape != (n, 4, 1, m, m):
        raise ValueError(
            f"{path}: split {split!r} has shapes {mazes.shape}, {goal_maps.shape}, {labels.shape}; "
            f"expected (N, m, m), (N, 1, m, m), (N, 4, 1, m, m)"
        )
    goal_flat = goal_maps.reshape(n, -1)
    if not ((goal_flat == 1).sum(axis=1) == 1).all():
        raise ValueError(f"{path}: every goal map of split {split!r} must hold exactly one 1")
    goals = np.stack(np.divmod(goal_flat.argmax(axis=1), m), axis=1).astype(np.int64)
    data = label_tasks(check_maps(mazes, f"{path}: mazes"), goals, 4, np.random.default_rng(seed))
    file_action = labels[:, :, 0].argmax(axis=1).astype(np.int8)
    has_label = labels[:, :, 0].max(axis=1) > 0
    actions = np.where(data.reachable & has_label, file_action, data.actions).astype(np.int8)
    return MazeDataset(data.free, data.goals, data.distances, data.optimal, actions, 4)


def write_community(path: str | os.PathLike, train: MazeDataset, valid: MazeDataset, test: MazeDataset) -> None:
    """Write three 4-move splits in the community format (float64 ``arr_0`` .. ``arr_8``).

    Cells without an optimal action (walls, the goal, cells cut off from it) get an all-zero label.
    """
    arrays = {}
    for name, data in zip(SPLITS, (train, valid, test)):
        if data.moves != 4:
            raise ValueError(f"the community format has 4 actions; split {name!r} has {data.moves}")
        if data.torus:
            raise ValueError(f"the community format has no torus maps; split {name!r} wraps around")
        n, m = len(data), data.size
        k_maze, k_goal, k_label = COMMUNITY_KEYS[name]
        goal_map = np.zeros((n, 1, m, m))
        goal_map[np.arange(n), 0, data.goals[:, 0], data.goals[:, 1]] = 1.0
        one_hot = (data.actions[:, None] == np.arange(4)[None, :, None, None]).astype(np.float64)
        arrays[f"arr_{k_maze}"] = data.free.astype(np.float64)
        arrays[f"arr_{k_goal}"] = goal_map
        arrays[f"arr_{k_label}"] = one_hot[:, :, None]
    np.savez_compressed(path, **arrays)


def task_jobs(splits: dict[str, MazeDataset], shard_size: int, extra: Callable[[object], dict] = lambda d: {}) -> dict:
    """:func:`~idplan.envs.shards.write_shards` jobs for in-memory datasets (``splits``, each with
    ``.tasks`` or itself a :class:`MazeDataset`): shards of ``shard_size`` tasks of their
    :data:`TASK_FIELDS` arrays and the arrays ``extra(dataset)`` adds."""
    return {
        name: split_jobs({**{k: getattr(tasks_of(d), k) for k in TASK_FIELDS}, **extra(d)}, shard_size)
        for name, d in splits.items()
    }


def tasks_of(data) -> MazeDataset:
    """The :class:`MazeDataset` of a dataset (itself, or its ``.tasks``)."""
    return data if isinstance(data, MazeDataset) else data.tasks


def task_meta(splits: dict[str, object]) -> dict[str, object]:
    """The maze settings every split shares (``moves``, ``torus``), for a shard manifest."""
    settings = {(tasks_of(d).moves, tasks_of(d).torus) for d in splits.values()}
    if len(settings) != 1:
        raise ValueError(f"the splits differ in moves or topology (torus): {sorted(settings)}")
    moves, torus = settings.pop()
    return {"moves": moves, "torus": torus}


def tasks_from_shards(meta: dict, arrays: dict[str, ShardedArray]) -> MazeDataset:
    """The :class:`MazeDataset` of a shard split (its task arrays read into memory: ``m * m * (7 +
    moves)`` bytes a task, the images stay on disk)."""
    return MazeDataset(*(arrays[k][:] for k in TASK_FIELDS), moves=int(meta["moves"]), torus=bool(meta["torus"]))


def save_maze_shards(
    directory: str | os.PathLike, splits: dict[str, MazeDataset], shard_size: int = 1000, progress: bool = True
) -> None:
    """Write maze datasets (``{"train": ..., ...}``) as a shard directory (new or empty) that
    :func:`load_maze_shards`, :func:`load_maze_file` and ``idplan train --dataset`` read."""
    write_shards(directory, FORMAT, task_meta(splits), task_jobs(splits, shard_size), progress=progress)


def load_maze_shards(directory: str | os.PathLike, split: str = "train") -> MazeDataset:
    """``split`` of a shard directory :func:`save_maze_shards` wrote (read through memory maps)."""
    return tasks_from_shards(*open_split(directory, split, FORMAT))


def load_maze_file(path: str | os.PathLike, split: str = "test") -> MazeDataset:
    """Load ``split`` of a dataset in any format: a shard directory (:func:`load_maze_shards`), our
    ``.npz`` (:meth:`MazeDataset.load`, one split) or the community's (:func:`read_community`)."""
    if is_shard_directory(path):
        return load_maze_shards(path, split)
    arrays = _load_npz(path)
    if "format" in arrays:
        return MazeDataset.load(path)
    if "arr_0" in arrays:
        return read_community(path, split)
    raise ValueError(f"{path}: neither an idplan maze dataset nor a community maze file (keys {sorted(arrays)[:6]})")


def load_tagged_npz(path: str | os.PathLike, fmt: str, what: str, required: Iterable[str]) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` an idplan dataset wrote with the format tag ``fmt`` (no pickles);
    a foreign file (``what`` names the expected kind) or one missing ``required`` arrays raises ``ValueError``."""
    arrays = _load_npz(path)
    tag = arrays.get("format")
    if tag is None or tag.shape != () or str(tag) != fmt:
        raise ValueError(f"{path}: not an idplan {what} (expected format {fmt!r})")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ValueError(f"{path}: missing arrays {missing}")
    return arrays


def _load_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of an ``.npz`` file, loaded without pickles; clear errors for bad files."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"{path}: cannot read as a numpy .npz archive ({error})") from error


class MazeTorchDataset(torch.utils.data.Dataset):
    """A :class:`MazeDataset` as training samples for a planner.

    Item ``i`` is a dict of tensors:

    - ``"input"``: ``[2, m, m]`` float32; channel 0 the obstacle map (1 = obstacle), channel 1 the
      goal (one-hot).
    - ``"action"``: ``[m, m]`` int64 expert action, :data:`IGNORE_INDEX` (-100) on unlabelled cells
      (so ``F.cross_entropy`` skips them by default).
    - ``"optimal"``: ``[moves, m, m]`` float32 multi-hot optimal actions.
    - ``"distance"``: ``[m, m]`` int64 shortest-path distance, -1 where the goal is unreachable.
    - ``"mask"``: ``[m, m]`` bool, the free cells that can reach the goal, the goal itself excluded
      (the cells that carry a label).
    """

    def __init__(self, data: MazeDataset):
        self.data = data
        n, m = len(data), data.size
        goal_map = np.zeros((n, m, m), dtype=np.float32)
        goal_map[np.arange(n), data.goals[:, 0], data.goals[:, 1]] = 1.0
        self.inputs = torch.from_numpy(np.stack([(~data.free).astype(np.float32), goal_map], axis=1))
        actions = data.actions.astype(np.int64)
        self.actions = torch.from_numpy(np.where(actions >= 0, actions, IGNORE_INDEX))
        self.optimal = torch.from_numpy(data.optimal.astype(np.float32))
        self.distances = torch.from_numpy(data.distances.astype(np.int64))
        self.masks = torch.from_numpy(data.reachable)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {
            "input": self.inputs[i],
            "action": self.actions[i],
            "optimal": self.optimal[i],
            "distance": self.distances[i],
            "mask": self.masks[i],
        }
