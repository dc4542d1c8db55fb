"""Maze generation, batched BFS, expert labels, dataset files and the community format."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from idplan.envs import (
    IGNORE_INDEX,
    MOVES_4,
    MOVES_8,
    MazeDataset,
    MazeTorchDataset,
    bfs_distances,
    concatenate,
    generate_dataset,
    generate_maps,
    generate_splits,
    grid_bellman_operator,
    label_tasks,
    map_digests,
    optimal_actions,
    read_community,
    write_community,
)
from idplan.solvers import fixed_point

from .reference import bfs_distance

COMMUNITY_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "diffplan_m15_4abs-cc_10k.npz"


def chosen_is_optimal(data: MazeDataset) -> np.ndarray:
    """``[n, m, m]``: whether each cell's action is in its optimal set (read where labelled)."""
    chosen = data.actions.clip(0).astype(np.int64)[:, None]
    return np.take_along_axis(data.optimal, chosen, axis=1)[:, 0]


def follow_actions(data: MazeDataset) -> tuple[np.ndarray, np.ndarray]:
    """From every labelled cell at once, follow ``data.actions``; returns (steps taken to the goal, reached)."""
    n, m = len(data), data.size
    offsets = np.array(MOVES_4 if data.moves == 4 else MOVES_8)
    b, r, c = np.nonzero(data.actions >= 0)
    start_distance = data.distances[b, r, c]
    steps = np.zeros_like(b)
    for _ in range(int(start_distance.max())):
        moving = (r != data.goals[b, 0]) | (c != data.goals[b, 1])
        a = data.actions[b, r, c]
        assert (a[moving] >= 0).all(), "walked onto a cell without a label"
        r = np.where(moving, r + offsets[a, 0], r)
        c = np.where(moving, c + offsets[a, 1], c)
        assert data.free[b, r, c].all(), "walked into an obstacle"
        steps += moving
    reached = (r == data.goals[b, 0]) & (c == data.goals[b, 1])
    assert n > 0 and m > 0
    return steps - start_distance, reached


@pytest.mark.parametrize("torus", [False, True])
@pytest.mark.parametrize("generator", ["maze", "obstacles"])
@pytest.mark.parametrize("moves", [4, 8])
def test_batched_bfs_matches_per_cell_bfs(generator, moves, torus):
    rng = np.random.default_rng(1)
    free = generate_maps(6, 13, rng, generator)
    if torus:  # open the border walls so paths can wrap around
        free[:, [0, -1], :] = free[:, [1, -2], :]
        free[:, :, [0, -1]] = free[:, :, [1, -2]]
    goals = np.array([np.argwhere(f)[rng.integers(f.sum())] for f in free])
    dist = bfs_distances(free, goals, moves, torus)
    for b in range(len(free)):
        ref = bfs_distance(free[b], tuple(goals[b]), MOVES_4 if moves == 4 else MOVES_8, torus).numpy()
        expected = np.where(np.isinf(ref), -1, ref).astype(np.int32)
        np.testing.assert_array_equal(dist[b], expected)


def test_bfs_agrees_with_the_bellman_fixed_point():
    """Value iteration's fixed point is -(1 - gamma**d) / (1 - gamma) at BFS distance d."""
    data = generate_dataset(4, 11, seed=3, progress=False)
    free = torch.from_numpy(data.free)[:, None]
    goal = torch.zeros_like(free)
    goal[torch.arange(4), 0, data.goals[:, 0], data.goals[:, 1]] = True
    gamma = 0.9
    bellman = grid_bellman_operator(free, goal, gamma)
    v = fixed_point(lambda v, _: bellman(v), torch.zeros(free.shape, dtype=torch.float64), None, rtol=1e-12).value
    d = torch.from_numpy(data.distances)[:, None].double()
    reach = d >= 0
    torch.testing.assert_close(v[reach], -(1 - gamma ** d[reach]) / (1 - gamma))


@pytest.mark.parametrize("moves", [4, 8])
@pytest.mark.parametrize("generator", ["maze", "obstacles"])
def test_following_expert_labels_reaches_the_goal_in_the_bfs_distance(moves, generator):
    data = generate_dataset(50, 15, generator=generator, moves=moves, seed=0, progress=False)
    extra_steps, reached = follow_actions(data)
    assert reached.all()
    assert (extra_steps == 0).all()
    # the multi-hot set holds exactly the moves that lower the distance by one
    assert (data.optimal.any(axis=1) == (data.distances > 0)).all()
    assert chosen_is_optimal(data)[data.reachable].all()


def test_generation_is_seeded_and_maps_have_walled_borders():
    a = generate_dataset(30, 15, seed=7, progress=False)
    b = generate_dataset(30, 15, seed=7, progress=False)
    c = generate_dataset(30, 15, seed=8, progress=False)
    np.testing.assert_array_equal(a.free, b.free)
    np.testing.assert_array_equal(a.actions, b.actions)
    assert not np.array_equal(a.free, c.free)
    for data in (a, generate_dataset(30, 16, generator="obstacles", seed=0, progress=False)):
        border = np.ones((data.size, data.size), dtype=bool)
        border[1:-1, 1:-1] = False
        assert not data.free[:, border].any()
        assert data.free[np.arange(len(data)), data.goals[:, 0], data.goals[:, 1]].all()


def test_maze_generator_matches_the_community_statistics():
    """GPPN's maze: cells at odd coordinates always free, about 59% free cells at 15x15."""
    free = generate_maps(2000, 15, np.random.default_rng(0), "maze")
    assert free[:, 1::2, 1::2].all()
    community_free_fraction = 0.5876  # measured on diffplan_m15_4abs-cc_10k.npz (train)
    assert abs(free.mean() - community_free_fraction) < 0.01


def test_splits_are_distinct_by_hash():
    splits = generate_splits(15, 300, 60, 60, seed=0, progress=False)
    hashes = {name: set(map_digests(data.free)) for name, data in splits.items()}
    assert [len(h) for h in hashes.values()] == [300, 60, 60]  # unique inside each split too
    assert not hashes["train"] & hashes["test"]
    assert not hashes["train"] & hashes["valid"]
    assert not hashes["valid"] & hashes["test"]


def test_tiny_maps_run_out_of_distinct_mazes_with_a_clear_error():
    with pytest.raises(RuntimeError, match="distinct"):
        generate_dataset(100, 5, seed=0, progress=False)  # a 5x5 maze has few distinct layouts


def test_save_load_round_trip(tmp_path):
    data = generate_dataset(20, 9, moves=8, seed=0, progress=False)
    data.save(tmp_path / "d.npz")
    back = MazeDataset.load(tmp_path / "d.npz")
    assert back.moves == 8
    for field in ("free", "goals", "distances", "optimal", "actions"):
        np.testing.assert_array_equal(getattr(back, field), getattr(data, field))


def test_torus_labels_survive_save_load_and_old_files_read_as_flat(tmp_path):
    flat = generate_dataset(10, 9, seed=0, progress=False)
    torus = label_tasks(flat.free, flat.goals, 4, np.random.default_rng(0), torus=True)
    assert torus.torus and (torus.distances <= flat.distances).all()  # wrapping only shortens paths
    torus.save(tmp_path / "t.npz")
    assert MazeDataset.load(tmp_path / "t.npz").torus
    arrays = {k: v for k, v in flat.arrays().items() if k != "torus"}  # a file from before the flag
    np.savez(tmp_path / "old.npz", format=np.array("idplan-maze-dataset-v1"), **arrays)
    assert not MazeDataset.load(tmp_path / "old.npz").torus
    with pytest.raises(ValueError, match="torus"):
        concatenate([flat, torus])
    with pytest.raises(ValueError, match="torus"):
        write_community(tmp_path / "c.npz", torus, torus, torus)


def test_loading_foreign_corrupt_or_pickled_files_fails_clearly(tmp_path):
    (tmp_path / "junk.npz").write_bytes(os.urandom(256))
    with pytest.raises(ValueError, match="cannot read"):
        MazeDataset.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "other.npz", arr_0=np.zeros(3))
    with pytest.raises(ValueError, match="not an idplan maze dataset"):
        MazeDataset.load(tmp_path / "other.npz")
    np.savez(tmp_path / "pickled.npz", format=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="cannot read"):
        MazeDataset.load(tmp_path / "pickled.npz")
    with pytest.raises(ValueError, match="not a community maze file"):
        read_community(tmp_path / "other.npz", "valid")


def test_dataset_rejects_inconsistent_arrays():
    data = generate_dataset(3, 9, seed=0, progress=False)
    with pytest.raises(ValueError, match="optimal"):
        MazeDataset(data.free, data.goals, data.distances, data.optimal[:, :2], data.actions, 4)


def test_community_round_trip(tmp_path):
    splits = generate_splits(11, 20, 5, 5, seed=0, progress=False)
    write_community(tmp_path / "c.npz", splits["train"], splits["valid"], splits["test"])
    with np.load(tmp_path / "c.npz", allow_pickle=False) as raw:
        assert raw["arr_0"].shape == (20, 11, 11) and raw["arr_0"].dtype == np.float64
        assert raw["arr_7"].shape == (5, 1, 11, 11) and raw["arr_8"].shape == (5, 4, 1, 11, 11)
    for name, data in splits.items():
        back = read_community(tmp_path / "c.npz", name)
        for field in ("free", "goals", "distances", "optimal", "actions"):
            np.testing.assert_array_equal(getattr(back, field), getattr(data, field))


def _require_community_file():
    if COMMUNITY_FILE.exists():
        return
    if os.environ.get("IDPLAN_REQUIRE_SHARED_DATA"):
        pytest.fail(f"{COMMUNITY_FILE} is missing (CI expects ../shared beside the clone)")
    pytest.skip(f"{COMMUNITY_FILE} not present")


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_community_file_labels_are_optimal_by_our_bfs(split):
    _require_community_file()
    data = read_community(COMMUNITY_FILE, split)
    assert len(data) == {"train": 10_000, "valid": 2_000, "test": 2_000}[split]
    labelled = data.reachable
    assert labelled.sum() > 0.5 * data.free.sum()
    assert chosen_is_optimal(data)[labelled].all(), "a community label is not an optimal move"
    extra_steps, reached = follow_actions(data)
    assert reached.all() and (extra_steps == 0).all()


def test_community_splits_share_no_maze():
    _require_community_file()
    hashes = {s: set(map_digests(read_community(COMMUNITY_FILE, s).free)) for s in ("train", "valid", "test")}
    assert not hashes["train"] & hashes["test"] and not hashes["train"] & hashes["valid"]


def test_torch_view_batches_for_training():
    data = generate_dataset(10, 9, seed=0, progress=False)
    view = MazeTorchDataset(data)
    batch = next(iter(torch.utils.data.DataLoader(view, batch_size=4, shuffle=False)))
    assert batch["input"].shape == (4, 2, 9, 9) and batch["input"].dtype == torch.float32
    assert batch["action"].shape == (4, 9, 9) and batch["action"].dtype == torch.int64
    assert batch["optimal"].shape == (4, 4, 9, 9)
    mask = batch["mask"]
    assert torch.equal(mask, batch["action"] != IGNORE_INDEX)
    assert torch.equal(batch["input"][:, 0].bool(), torch.from_numpy(~data.free[:4]))
    assert (batch["input"][:, 1].sum(dim=(1, 2)) == 1).all()
    assert (batch["distance"][mask] > 0).all()
    # cross-entropy ignores the unlabelled cells by default
    logits = torch.zeros(4, 4, 9, 9, requires_grad=True)
    torch.nn.functional.cross_entropy(logits, batch["action"]).backward()
    assert (logits.grad.abs().sum(1)[~mask] == 0).all()


def test_bad_inputs_raise():
    free = np.ones((2, 7, 7), dtype=bool)
    with pytest.raises(ValueError, match="obstacle"):
        bfs_distances(np.zeros((1, 7, 7), bool), np.array([[3, 3]]))
    with pytest.raises(ValueError, match="square"):
        bfs_distances(np.ones((2, 7, 6), bool), np.array([[0, 0], [0, 0]]))
    with pytest.raises(ValueError, match="goals"):
        bfs_distances(free, np.array([[1, 1]]))
    with pytest.raises(ValueError, match="outside"):
        bfs_distances(free, np.array([[1, 1], [7, 0]]))
    with pytest.raises(ValueError, match="moves"):
        optimal_actions(free, np.zeros((2, 7, 7), np.int32), moves=6)
    with pytest.raises(ValueError, match="generator"):
        generate_maps(1, 9, np.random.default_rng(0), "caves")
    with pytest.raises(ValueError, match="size"):
        generate_maps(1, 3, np.random.default_rng(0))
