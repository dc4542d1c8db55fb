"""Datasets larger than memory: splits written as shards of plain ``.npy`` files, read memory-mapped.

A shard directory holds, for each split and shard ``k`` and each named array, one uncompressed
``{split}-{k:05d}.{name}.npy`` (rows ``[length_k, *item_shape]``), and ``manifest.json``: the
dataset kind (its format tag), its scalar settings (``meta``), each array's dtype and item shape,
and each split's shard lengths. :func:`write_shards` writes it (each shard produced and written
by a job, in worker processes when asked, each file atomically; the manifest last, so a
directory whose generation did not finish has none and is refused). :func:`open_split` reads a
split back as :class:`ShardedArray` s: lazily concatenated views that map a shard
(``np.load(mmap_mode="r", allow_pickle=False)``: no pickles, ever) only while copying the rows
asked for, so resident memory stays at what a batch needs however large the files are.

    write_shards(root, "idplan-maze-dataset-v1", {"moves": 4}, {"train": split_jobs(arrays, 1000)})
    meta, arrays = open_split(root, "train", "idplan-maze-dataset-v1")
    batch = arrays["free"][[3, 1, 4]]  # [3, m, m], read from disk
"""

from __future__ import annotations

import json
import multiprocessing
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .atomic import atomic_path, atomic_write_text
from .progress import progress_bar

FORMAT = "idplan-shards-v1"
MANIFEST = "manifest.json"

Job = Callable[[], Mapping[str, np.ndarray]]


def shard_file(directory: str | os.PathLike, split: str, index: int, name: str) -> Path:
    """The ``.npy`` file of array ``name`` in shard ``index`` of ``split``."""
    return Path(directory) / f"{split}-{index:05d}.{name}.npy"


def is_shard_directory(path: str | os.PathLike) -> bool:
    """``path`` is a directory with a shard manifest (a finished :func:`write_shards`)."""
    return (Path(path) / MANIFEST).is_file()


def split_jobs(arrays: Mapping[str, np.ndarray], shard_size: int) -> list[Job]:
    """Jobs that yield consecutive ``shard_size``-row slices of in-memory ``arrays`` (each ``[n, ...]``,
    one ``n``), for :func:`write_shards`."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be >= 1, got {shard_size}")
    n = len(next(iter(arrays.values())))
    return [partial(dict, {k: v[s : s + shard_size] for k, v in arrays.items()}) for s in range(0, n, shard_size)]


def _write_shard(directory: Path, split: str, index: int, job: Job) -> dict[str, Any]:
    """Run ``job`` and write its arrays as one shard (each file atomically); returns the shard's
    record: ``{"length": rows, "arrays": {name: [dtype, item_shape]}}``. Runs in worker processes."""
    arrays = job()
    lengths = {len(a) if isinstance(a, np.ndarray) and a.ndim else None for a in arrays.values()}
    if not arrays or len(lengths) != 1 or None in lengths or 0 in lengths:
        shapes = {k: getattr(a, "shape", type(a).__name__) for k, a in arrays.items()}
        raise ValueError(f"shard {index} of {split!r}: expected arrays of one positive length, got {shapes}")
    for name, array in arrays.items():
        if array.dtype.hasobject:
            raise ValueError(f"shard {index} of {split!r}: array {name!r} holds Python objects, which shards refuse")
        with atomic_path(shard_file(directory, split, index, name)) as tmp:
            np.save(tmp, np.ascontiguousarray(array), allow_pickle=False)
    return {"length": lengths.pop(), "arrays": {k: [a.dtype.str, list(a.shape[1:])] for k, a in arrays.items()}}


def write_shards(
    directory: str | os.PathLike,
    kind: str,
    meta: Mapping[str, Any],
    jobs: Mapping[str, Sequence[Job]],
    *,
    workers: int = 1,
    progress: bool = True,
    desc: str = "shards",
) -> Path:
    """Write a sharded dataset into ``directory`` (new, or empty): each job of ``jobs[split]`` makes
    one shard's arrays (a dict of ``[rows, ...]`` arrays, the same names, dtypes and item shapes in
    every shard) and writes them; with ``workers > 1`` the jobs run (and write) in that many spawned
    processes, so the parent never holds the data. A progress bar counts shards (on a terminal
    only). The manifest (``kind``, the JSON-serialisable ``meta``) is written last, atomically.
    Returns the directory."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise FileExistsError(f"{directory}: shards go into a new or empty directory, and this one is not")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    directory.mkdir(parents=True, exist_ok=True)
    units = [(split, index, job) for split, split_jobs_ in jobs.items() for index, job in enumerate(split_jobs_)]
    records: dict[tuple[str, int], dict[str, Any]] = {}
    with progress_bar(total=len(units), desc=desc, unit="shard", show=progress) as bar:
        if workers == 1:
            for split, index, job in units:
                records[split, index] = _write_shard(directory, split, index, job)
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")  # no OpenGL or torch thread state crosses a fork
            with ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = {pool.submit(_write_shard, directory, s, i, job): (s, i) for s, i, job in units}
                for future in as_completed(futures):
                    records[futures[future]] = future.result()
                    bar.update()
    layouts = {json.dumps(r["arrays"], sort_keys=True) for r in records.values()}
    if len(layouts) != 1:
        raise ValueError(f"{directory}: shards differ in their arrays' names, dtypes or item shapes: {sorted(layouts)}")
    manifest = {
        "format": FORMAT,
        "kind": kind,
        "meta": dict(meta),
        "arrays": {k: {"dtype": d, "shape": s} for k, (d, s) in next(iter(records.values()))["arrays"].items()},
        "splits": {split: [records[split, i]["length"] for i in range(len(js))] for split, js in jobs.items()},
    }
    atomic_write_text(directory / MANIFEST, json.dumps(manifest, indent=1))
    return directory


def read_manifest(directory: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a shard directory; ``ValueError`` naming what is wrong with it."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise ValueError(f"{directory}: no {MANIFEST}: not a shard directory, or its generation did not finish")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: unreadable manifest ({error})") from error
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not an idplan shard manifest (expected format {FORMAT!r})")
    for key in ("kind", "meta", "arrays", "splits"):
        if key not in manifest:
            raise ValueError(f"{path}: the manifest has no {key!r}")
    for name, spec in manifest["arrays"].items():
        if np.dtype(spec["dtype"]).hasobject:
            raise ValueError(f"{path}: array {name!r} is declared with dtype object, which shards refuse")
    return manifest


class ShardedArray:
    """Shards ``[length_k, *item_shape]`` of one array, seen as one ``[n, *item_shape]`` array.

    Indexing the first axis (an int, a slice, an integer or boolean index array) returns an
    in-memory ``np.ndarray`` copy of those rows; each shard is memory-mapped only while its rows
    are copied. Every shard's file is checked against the manifest when the array is built.
    """

    def __init__(self, paths: Sequence[Path], lengths: Sequence[int], dtype: np.dtype, item_shape: tuple[int, ...]):
        self.paths, self.dtype, self.item_shape = list(paths), np.dtype(dtype), tuple(item_shape)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        for k in range(len(self.paths)):
            self._map(k)

    def _map(self, k: int) -> np.memmap:
        """Shard ``k`` memory-mapped (read-only, no pickles), checked against the manifest."""
        path, rows = self.paths[k], int(self.offsets[k + 1] - self.offsets[k])
        try:
            array = np.load(path, mmap_mode="r", allow_pickle=False)
        except FileNotFoundError:
            raise ValueError(f"shard {path}: missing (the manifest lists it)") from None
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"shard {path}: corrupt, cannot be memory-mapped as .npy ({error})") from error
        expected = (rows, *self.item_shape)
        if array.shape != expected or array.dtype != self.dtype:
            raise ValueError(
                f"shard {path}: holds {array.shape} {array.dtype}, the manifest says {expected} {self.dtype}"
            )
        return array

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), *self.item_shape)

    @property
    def ndim(self) -> int:
        return 1 + len(self.item_shape)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index) -> np.ndarray:
        if isinstance(index, (int, np.integer)):
            return self[np.array([index])][0]
        rows = np.arange(len(self))[index]
        if rows.ndim != 1:
            raise IndexError(f"ShardedArray takes an int, a slice or a 1-D index array, got {index!r}")
        out = np.empty((len(rows), *self.item_shape), dtype=self.dtype)
        shard = np.searchsorted(self.offsets, rows, side="right") - 1
        for k in np.unique(shard):
            take = shard == k
            out[take] = self._map(k)[rows[take] - self.offsets[k]]  # the map is released right after
        return out


def open_split(directory: str | os.PathLike, split: str, kind: str) -> tuple[dict[str, Any], dict[str, ShardedArray]]:
    """``split`` of the shard directory of a ``kind`` dataset: its ``meta`` and its arrays as
    :class:`ShardedArray` s. ``ValueError`` for another kind, an unknown split, a missing or corrupt
    shard, or a shard that disagrees with the manifest."""
    manifest = read_manifest(directory)
    if manifest["kind"] != kind:
        raise ValueError(f"{directory}: holds {manifest['kind']!r} shards, not {kind!r}")
    if split not in manifest["splits"]:
        raise ValueError(f"{directory}: no split {split!r} (it has {sorted(manifest['splits'])})")
    lengths = manifest["splits"][split]
    arrays = {
        name: ShardedArray(
            [shard_file(directory, split, k, name) for k in range(len(lengths))], lengths, spec["dtype"], spec["shape"]
        )
        for name, spec in manifest["arrays"].items()
    }
    return manifest["meta"], arrays


class TensorRows:
    """Rows of a :class:`ShardedArray` as tensors, read (and passed through ``transform``, which maps
    ``[k, ...]`` arrays to ``[k, ...]`` arrays) when indexed: the lazy twin of a stacked tensor."""

    def __init__(self, array: ShardedArray, transform: Callable[[np.ndarray], np.ndarray]):
        self.array, self.transform = array, transform

    def __len__(self) -> int:
        return len(self.array)

    def __getitem__(self, index) -> torch.Tensor:
        if isinstance(index, (int, np.integer)):
            return self[[index]][0]
        return torch.from_numpy(np.ascontiguousarray(self.transform(self.array[index])))


def tensor_rows(
    array: np.ndarray | ShardedArray, transform: Callable[[np.ndarray], np.ndarray] = lambda rows: rows
) -> torch.Tensor | TensorRows:
    """``array`` (``[n, ...]``) through ``transform`` as tensor rows: in memory, one tensor (no copy
    when ``transform`` makes none); sharded, :class:`TensorRows` that read on access."""
    if isinstance(array, ShardedArray):
        return TensorRows(array, transform)
    return torch.from_numpy(transform(array))


__all__ = [
    "ShardedArray",
    "TensorRows",
    "is_shard_directory",
    "open_split",
    "read_manifest",
    "shard_file",
    "split_jobs",
    "tensor_rows",
    "write_shards",
]
