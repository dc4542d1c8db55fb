"""Sharded datasets: written as ``.npy`` shards with a manifest, read memory-mapped, streamed into training."""

import json
import os

import numpy as np
import pytest
import torch

from idplan.agents import make_planner
from idplan.agents.mappers import MappedPlanner
from idplan.agents.mappers.panorama import PanoramaMapper
from idplan.agents.mappers.workspace import WorkspaceMapper
from idplan.agents.training import train_end_to_end, train_mapper, train_planner
from idplan.agents.training.imitation import TrainConfig
from idplan.envs import (
    ArmTorchDataset,
    VisualNavDataset,
    generate_arm_dataset,
    generate_arm_shards,
    generate_splits,
    generate_visual_nav_shards,
    generate_visual_nav_splits,
    load_arm_shards,
    load_maze_file,
    load_maze_shards,
    load_visual_nav_shards,
    save_arm_shards,
    save_maze_shards,
    save_visual_nav_shards,
)
from idplan.envs.shards import MANIFEST, ShardedArray, TensorRows, open_split, shard_file, split_jobs, write_shards

from .test_miniworld_nav import MazeWorld  # noqa: F401 (the fixture: skips where MiniWorld cannot render)

SPLIT_NAMES = ("train", "valid", "test")


@pytest.fixture(scope="module")
def mazes():
    return generate_splits(7, 23, 6, 5, seed=0, progress=False)


@pytest.fixture(scope="module")
def arms():
    return {
        name: generate_arm_dataset(n, 9, pixels=32, seed=i, progress=False)
        for i, (name, n) in enumerate(zip(SPLIT_NAMES, (14, 5, 4)))
    }


def panorama_splits(mazes) -> dict[str, VisualNavDataset]:
    """The maze splits with seeded random 24x24 "panoramas" (no renderer needed to test the storage)."""
    rng = np.random.default_rng(0)
    return {
        name: VisualNavDataset(d, rng.integers(0, 256, (len(d), 7, 7, 4, 24, 24, 3), dtype=np.uint8))
        for name, d in mazes.items()
    }


def assert_tasks_equal(a, b):
    for field in ("free", "goals", "distances", "optimal", "actions"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert (a.moves, a.torus) == (b.moves, b.torus)


def test_maze_shards_round_trip(mazes, tmp_path):
    save_maze_shards(tmp_path / "d", mazes, shard_size=5, progress=False)
    manifest = json.loads((tmp_path / "d" / MANIFEST).read_text())
    assert manifest["splits"] == {"train": [5, 5, 5, 5, 3], "valid": [5, 1], "test": [5]}
    for name in SPLIT_NAMES:
        assert_tasks_equal(load_maze_shards(tmp_path / "d", name), mazes[name])
        assert_tasks_equal(load_maze_file(tmp_path / "d", name), mazes[name])  # what `idplan train --dataset` reads


def test_sharded_array_indexes_like_the_array(mazes, tmp_path):
    distances = mazes["train"].distances
    save_maze_shards(tmp_path / "d", mazes, shard_size=4, progress=False)
    _, arrays = open_split(tmp_path / "d", "train", "idplan-maze-dataset-v1")
    lazy = arrays["distances"]
    assert lazy.shape == distances.shape and lazy.dtype == distances.dtype and len(lazy) == 23
    for index in (
        0,
        7,
        -1,
        np.int64(13),
        slice(None),
        slice(3, 11),
        slice(None, None, -3),
        [22, 0, 5, 5],
        distances[:, 0, 0] < 0,
    ):
        np.testing.assert_array_equal(lazy[index], distances[index])
    with pytest.raises(IndexError):
        lazy[23]


def test_arm_shards_round_trip_and_lazy_workspace(arms, tmp_path):
    save_arm_shards(tmp_path / "d", arms, shard_size=4, progress=False)
    for name in SPLIT_NAMES:
        loaded = load_arm_shards(tmp_path / "d", name)
        assert isinstance(loaded.workspace, ShardedArray)  # the images stay on disk
        assert_tasks_equal(loaded.tasks, arms[name].tasks)
        np.testing.assert_array_equal(loaded.obstacles, arms[name].obstacles)
        np.testing.assert_array_equal(loaded.workspace[:], arms[name].workspace)
        assert loaded.geometry == arms[name].geometry
    lazy, eager = ArmTorchDataset(load_arm_shards(tmp_path / "d", "train")), ArmTorchDataset(arms["train"])
    assert isinstance(lazy.observations, TensorRows)
    for i in (0, 9, 13):
        for key, value in eager[i].items():
            assert torch.equal(lazy[i][key], value), key
    assert torch.equal(lazy.observations[2:9], eager.observations[2:9])


def test_arm_shards_from_workers_do_not_depend_on_the_worker_count(tmp_path):
    options = dict(n_train=5, n_valid=2, n_test=2, seed=3, shard_size=3, pixels=16, progress=False)
    generate_arm_shards(tmp_path / "one", 9, workers=1, **options)
    generate_arm_shards(tmp_path / "two", 9, workers=2, **options)
    for name in SPLIT_NAMES:
        one, two = load_arm_shards(tmp_path / "one", name), load_arm_shards(tmp_path / "two", name)
        assert len(one) == options[f"n_{name}"]
        assert_tasks_equal(one.tasks, two.tasks)
        np.testing.assert_array_equal(one.workspace[:], two.workspace[:])
    assert not np.array_equal(load_arm_shards(tmp_path / "one", "train").obstacles[:2], one.obstacles)  # splits differ


def test_visual_nav_shards_round_trip(mazes, tmp_path):
    data = panorama_splits(mazes)
    save_visual_nav_shards(tmp_path / "d", data, shard_size=6, progress=False)
    for name in SPLIT_NAMES:
        loaded = load_visual_nav_shards(tmp_path / "d", name)
        assert isinstance(loaded.panoramas, ShardedArray) and loaded.panoramas.shape == data[name].panoramas.shape
        assert_tasks_equal(loaded.tasks, data[name].tasks)
        np.testing.assert_array_equal(loaded.panoramas[:], data[name].panoramas)
        np.testing.assert_array_equal(loaded[[4, 1]].panoramas, data[name].panoramas[[4, 1]])


def parameters(module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_a_streamed_epoch_trains_as_the_in_memory_one(mazes, arms, tmp_path):
    """Mapper and planner trained end to end on streamed panoramas, a planner on sharded mazes and the
    arm's mapper on streamed workspace images end with the parameters of the in-memory runs."""
    config = TrainConfig(epochs=1, batch_size=4, seed=0)
    nav = panorama_splits(mazes)
    save_visual_nav_shards(tmp_path / "nav", nav, shard_size=5, progress=False)
    save_maze_shards(tmp_path / "maze", mazes, shard_size=5, progress=False)
    save_arm_shards(tmp_path / "arm", arms, shard_size=5, progress=False)

    def end_to_end(data):
        torch.manual_seed(0)
        model = MappedPlanner(
            PanoramaMapper(view_size=24, embedding=16, hidden=8),
            make_planner("vin", iterations=10, hidden=8, q_channels=8),
        )
        history = train_end_to_end(model, data["train"], data["valid"], config, map_weight=1.0, progress=False)
        return parameters(model), history

    def planner(data):
        torch.manual_seed(0)
        model = make_planner("vin", iterations=10, hidden=8, q_channels=8)
        return parameters(model) if train_planner(model, data, config=config, progress=False) else None

    def arm_mapper(data):
        torch.manual_seed(0)
        mapper = WorkspaceMapper(bins=9, width=4, pixels=32)
        return parameters(mapper) if train_mapper(mapper, data, config=config, progress=False) else None

    streamed = {name: load_visual_nav_shards(tmp_path / "nav", name) for name in ("train", "valid")}
    (in_memory, in_history), (from_disk, disk_history) = end_to_end(nav), end_to_end(streamed)
    assert [r["loss"] for r in in_history] == [r["loss"] for r in disk_history]
    assert in_history[0]["valid_success"] == disk_history[0]["valid_success"]
    pairs = [
        (in_memory, from_disk),
        (planner(mazes["train"]), planner(load_maze_shards(tmp_path / "maze", "train"))),
        (arm_mapper(arms["train"]), arm_mapper(load_arm_shards(tmp_path / "arm", "train"))),
    ]
    for a, b in pairs:
        assert all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.fixture
def written(mazes, tmp_path):
    save_maze_shards(tmp_path / "d", mazes, shard_size=10, progress=False)
    return tmp_path / "d"


def test_a_missing_or_corrupt_shard_is_a_clear_error(written):
    shard = shard_file(written, "train", 1, "optimal")
    shard.write_bytes(shard.read_bytes()[:-50])  # truncated
    with pytest.raises(ValueError, match=r"train-00001\.optimal\.npy: corrupt"):
        load_maze_shards(written, "train")
    shard.write_bytes(b"not an npy file")
    with pytest.raises(ValueError, match="corrupt"):
        load_maze_shards(written, "train")
    shard.unlink()
    with pytest.raises(ValueError, match=r"train-00001\.optimal\.npy: missing"):
        load_maze_shards(written, "train")
    assert len(load_maze_shards(written, "valid")) == 6  # the other splits still read


def test_a_shard_that_disagrees_with_the_manifest_is_a_clear_error(written):
    np.save(shard_file(written, "test", 0, "actions"), np.zeros((5, 7, 7), dtype=np.int64))  # dtype changed
    with pytest.raises(
        ValueError, match=r"test-00000\.actions\.npy: holds \(5, 7, 7\) int64, the manifest says \(5, 7, 7\) int8"
    ):
        load_maze_shards(written, "test")
    np.save(shard_file(written, "valid", 0, "goals"), np.zeros((4, 2), dtype=np.int64))  # rows lost
    with pytest.raises(ValueError, match=r"holds \(4, 2\) int64, the manifest says \(6, 2\) int64"):
        load_maze_shards(written, "valid")


def test_unfinished_foreign_or_wrong_kind_directories_are_refused(written, tmp_path):
    with pytest.raises(ValueError, match="holds 'idplan-maze-dataset-v1' shards, not 'idplan-arm-dataset-v1'"):
        load_arm_shards(written, "train")
    with pytest.raises(ValueError, match="no split 'extra'"):
        load_maze_shards(written, "extra")
    (written / MANIFEST).unlink()  # as a generation that was killed before the end leaves it
    with pytest.raises(ValueError, match="generation did not finish"):
        load_maze_shards(written, "train")
    with pytest.raises(FileExistsError, match="new or empty directory"):
        save_maze_shards(written, {"train": generate_splits(7, 2, 1, 1, progress=False)["train"]}, progress=False)


def test_pickled_object_arrays_are_refused(tmp_path):
    with pytest.raises(ValueError, match="holds Python objects"):
        write_shards(
            tmp_path / "w", "kind", {}, {"train": split_jobs({"x": np.array([{"a": 1}, None])}, 2)}, progress=False
        )
    write_shards(tmp_path / "d", "kind", {}, {"train": split_jobs({"x": np.arange(4)}, 2)}, progress=False)
    np.save(shard_file(tmp_path / "d", "train", 1, "x"), np.array([os.system, print], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"train-00001\.x\.npy: corrupt.*Python objects"):
        open_split(tmp_path / "d", "train", "kind")
    manifest = json.loads((tmp_path / "d" / MANIFEST).read_text())
    manifest["arrays"]["x"]["dtype"] = "|O"
    (tmp_path / "d" / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="dtype object"):
        open_split(tmp_path / "d", "train", "kind")


@pytest.mark.usefixtures("MazeWorld")
def test_visual_nav_shards_render_the_splits_generate_visual_nav_splits_makes(tmp_path):
    options = dict(size=5, n_train=3, n_valid=1, n_test=1, view_size=8, seed=1, progress=False)
    generate_visual_nav_shards(tmp_path / "d", shard_size=2, **options)
    expected = generate_visual_nav_splits(**options)
    for name in SPLIT_NAMES:
        loaded = load_visual_nav_shards(tmp_path / "d", name)
        assert_tasks_equal(loaded.tasks, expected[name].tasks)
        np.testing.assert_array_equal(loaded.panoramas[:], expected[name].panoramas)
