"""The 2-link arm: exact collision checks, C-space maps on the torus, datasets and the two envs."""

import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import idplan.envs  # noqa: F401
from idplan.envs import (
    DISC,
    RECTANGLE,
    ArmDataset,
    ArmGeometry,
    arm_collides,
    bfs_distances,
    bins_to_angles,
    cspace_maps,
    forward_kinematics,
    generate_arm_dataset,
    greedy_rollouts,
    move_offsets,
    optimal_actions,
    random_obstacles,
    workspace_images,
)


def disc(x, y, r):
    return [DISC, x, y, r, r]


def rect(x, y, half_w, half_h):
    return [RECTANGLE, x, y, half_w, half_h]


STRAIGHT_RIGHT = np.array([[0.0, 0.0]])  # both links along +x: the arm covers (0, 0) -> (0.9, 0)
ELBOW_UP_THEN_RIGHT = np.array([[np.pi / 2, -np.pi / 2]])  # elbow (0, 0.5), tip (0.4, 0.5)


def collides(q, *obstacles):
    return bool(arm_collides(q, np.array(obstacles, dtype=float).reshape(-1, 5))[0])


def test_forward_kinematics_hand_computed():
    elbow, tip = forward_kinematics(np.array([[0.0, 0.0], [np.pi / 2, -np.pi / 2]]))
    np.testing.assert_allclose(elbow, [[0.5, 0.0], [0.0, 0.5]], atol=1e-12)
    np.testing.assert_allclose(tip, [[0.9, 0.0], [0.4, 0.5]], atol=1e-12)


def test_collision_hand_computed_cases():
    assert collides(STRAIGHT_RIGHT, disc(0.7, 0.0, 0.05))  # straight through a disc on the second link
    assert collides(STRAIGHT_RIGHT, disc(0.3, 0.0, 0.05))  # ... and on the first
    assert not collides(STRAIGHT_RIGHT, disc(0.7, 0.3, 0.1))  # clear: 0.3 away, radius 0.1
    assert not collides(STRAIGHT_RIGHT, disc(1.0, 0.0, 0.05))  # beyond the tip (0.9)
    assert collides(STRAIGHT_RIGHT, disc(1.0, 0.0, 0.1))  # the disc just reaches the tip
    # a rectangle whose corner (0.6, 0.0) touches the link: closed sets collide
    assert collides(STRAIGHT_RIGHT, rect(0.7, 0.1, 0.1, 0.1))
    assert not collides(STRAIGHT_RIGHT, rect(0.7, 0.1 + 1e-6, 0.1, 0.1))
    assert collides(STRAIGHT_RIGHT, rect(0.5, 0.0, 0.05, 0.3))  # a wall across the arm
    assert not collides(STRAIGHT_RIGHT, rect(-0.5, 0.0, 0.2, 0.2))  # behind the base
    # the second link alone: elbow up, forearm to the right at height 0.5
    assert collides(ELBOW_UP_THEN_RIGHT, disc(0.2, 0.5, 0.01))
    assert collides(ELBOW_UP_THEN_RIGHT, rect(0.2, 0.6, 0.05, 0.1))  # bottom edge on the forearm
    assert not collides(np.array([[np.pi / 2, 0.0]]), disc(0.2, 0.5, 0.01))  # straight up: clear
    assert not collides(STRAIGHT_RIGHT)  # no obstacles
    assert not collides(STRAIGHT_RIGHT, [0, 0.7, 0.0, 0.1, 0.1])  # a padding row is no obstacle


def test_cspace_map_agrees_with_dense_point_sampling():
    """Exact segment tests against 400 points per link: a sampled hit implies an exact one, and
    they disagree only on grazing contacts (rare)."""
    rng = np.random.default_rng(0)
    obstacles = random_obstacles(20, rng, 5)
    exact = cspace_maps(obstacles, 18)
    angles = bins_to_angles(np.stack(np.meshgrid(np.arange(18), np.arange(18), indexing="ij"), -1).reshape(-1, 2), 18)
    elbow, tip = forward_kinematics(angles)
    t = np.linspace(0, 1, 400)[:, None, None]
    points = np.concatenate([t * elbow, elbow + t * (tip - elbow)])  # [800, Q, 2]
    for task, rows in enumerate(obstacles):
        inside = np.zeros(points.shape[:2], dtype=bool)
        for kind, x, y, a, b in rows:
            if kind == DISC:
                inside |= (points[..., 0] - x) ** 2 + (points[..., 1] - y) ** 2 <= a * a
            elif kind == RECTANGLE:
                inside |= (np.abs(points[..., 0] - x) <= a) & (np.abs(points[..., 1] - y) <= b)
        sampled = inside.any(0).reshape(18, 18)
        assert not (sampled & ~exact[task]).any()
        assert (sampled == exact[task]).mean() > 0.99
    assert exact.any() and not exact.all()


def test_workspace_image_area_and_orientation():
    image = workspace_images(np.array([[disc(0.5, 0.5, 0.25), [0, 0, 0, 0, 0]]]), pixels=96)[0]
    area = image.sum() * (2 / 96) ** 2
    assert area == pytest.approx(np.pi * 0.25**2, rel=0.03)
    rows, cols = np.nonzero(image)
    assert rows.mean() < 48 and cols.mean() > 48  # upper right: row 0 is y = +1, column 0 is x = -1


def test_obstacles_keep_clear_of_the_base_and_bad_input_raises():
    obstacles = random_obstacles(200, np.random.default_rng(1), 5)
    counts = (obstacles[..., 0] > 0).sum(1)
    assert counts.min() == 0 and counts.max() == 5
    assert not cspace_maps(obstacles, 18).all(axis=(1, 2)).any()  # the base never sits in an obstacle
    with pytest.raises(ValueError, match="obstacles must be"):
        cspace_maps(np.zeros((2, 5)), 18)
    with pytest.raises(ValueError, match="kind"):
        cspace_maps(np.array([[[7, 0, 0, 0.1, 0.1]]]), 18)
    with pytest.raises(ValueError, match="bins"):
        cspace_maps(obstacles, 3)
    with pytest.raises(ValueError, match="links"):
        ArmGeometry(links=(0.5, -1.0))


def test_bfs_on_a_torus_wraps_around():
    free = np.ones((1, 9, 9), dtype=bool)
    free[0, :, 4] = False  # a wall down the middle column: only the seam connects the halves
    free[0, 4, 4] = True  # ... and one gap
    goal = np.array([[0, 0]])
    flat = bfs_distances(free, goal)[0]
    torus = bfs_distances(free, goal, torus=True)[0]
    assert flat[0, 8] == 8 + 8 - 0 and torus[0, 8] == 1  # across the seam: one step west
    assert torus[8, 0] == 1 and torus[8, 8] == 2
    best = optimal_actions(free, torus[None], torus=True)[0]
    west = [a for a, off in enumerate(move_offsets(4)) if off == (0, -1)][0]
    east = [a for a, off in enumerate(move_offsets(4)) if off == (0, 1)][0]
    assert best[east, 0, 8] and not best[west, 0, 8]  # from column 8 the way is east, through the seam
    steps = greedy_rollouts(free, goal, best.argmax(0)[None], torus[None] > 0, torus=True)[0]
    np.testing.assert_array_equal(steps[torus > 0], torus[torus > 0])


@pytest.fixture(scope="module")
def arm_data():
    return generate_arm_dataset(60, 18, seed=3, progress=False)


def test_expert_paths_are_collision_free_and_cross_the_seam(arm_data):
    offsets = np.array(move_offsets(4))
    crossed = 0
    for task in range(len(arm_data)):
        tasks = arm_data.tasks
        free, goal = tasks.free[task], tuple(tasks.goals[task])
        start = np.unravel_index(int(tasks.distances[task].argmax()), free.shape)
        cell, path = start, [start]
        while cell != goal:
            action = tasks.actions[task][cell]
            assert action >= 0
            cell = tuple((np.array(cell) + offsets[action]) % 18)
            path.append(cell)
        assert len(path) - 1 == tasks.distances[task][start]
        angles = bins_to_angles(np.array(path), 18)
        assert not arm_collides(angles, arm_data.obstacles[task]).any()  # every waypoint, in the continuous workspace
        jumps = np.abs(np.diff(np.array(path), axis=0)).max()
        crossed += jumps == 17
    assert crossed > 0  # some shortest paths wrap across the 0/360 degree seam


def test_dataset_labels_images_and_file_round_trip(arm_data, tmp_path):
    assert arm_data.tasks.torus and arm_data.workspace.shape == (60, 96, 96)
    np.testing.assert_array_equal(arm_data.tasks.free, ~cspace_maps(arm_data.obstacles, 18))
    np.testing.assert_array_equal(arm_data.workspace, workspace_images(arm_data.obstacles))
    again = generate_arm_dataset(60, 18, seed=3, progress=False)
    np.testing.assert_array_equal(again.obstacles, arm_data.obstacles)
    path = tmp_path / "arm.npz"
    arm_data.save(path)
    loaded = ArmDataset.load(path)
    for name in ("free", "goals", "distances", "optimal", "actions"):
        np.testing.assert_array_equal(getattr(loaded.tasks, name), getattr(arm_data.tasks, name))
    np.testing.assert_array_equal(loaded.workspace, arm_data.workspace)
    assert loaded.geometry == arm_data.geometry and loaded.tasks.torus
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an idplan arm dataset"):
        ArmDataset.load(tmp_path / "foreign.npz")


@pytest.mark.parametrize("env_id", ["idplan/ArmCSpace-v0", "idplan/ArmWorkspace-v0"])
def test_envs_pass_the_checkers_are_seeded_and_pickle(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    first, _ = env.reset(seed=5)
    again, _ = env.reset(seed=5)
    for key in first:
        np.testing.assert_array_equal(first[key], again[key])
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[1] > frame.shape[0]  # workspace beside the C-space
    clone = pickle.loads(pickle.dumps(env.unwrapped))
    np.testing.assert_array_equal(clone.obstacles, env.unwrapped.obstacles)


def test_workspace_env_hides_the_cspace_in_info():
    env = gym.make("idplan/ArmWorkspace-v0")
    obs, info = env.reset(seed=2)
    assert obs["workspace"].shape == (96, 96) and "map" not in obs
    np.testing.assert_array_equal(obs["workspace"], workspace_images(info["obstacles"][None])[0])
    np.testing.assert_array_equal(info["cspace"], cspace_maps(info["obstacles"][None], 18)[0])


def test_moves_wrap_around_and_bumps_keep_the_arm_in_place():
    env = gym.make("idplan/ArmCSpace-v0").unwrapped
    empty = np.zeros((0, 5))
    env.reset(seed=0, options={"obstacles": empty, "start": (0, 0), "goal": (9, 9)})
    env.step(0)  # q1 - 1 bin: from bin 0 to bin 17
    assert env.position == (17, 0)
    env.step(3)
    env.step(1)
    env.step(1)  # q2 + 1, then - 2: from bin 0 to bin 17
    assert env.position == (17, 17)
    block = np.array([rect(-0.14, 0.83, 0.05, 0.05)])  # on the straight arm at q1 = 100 degrees, not at 80
    obs, _ = env.reset(seed=0, options={"obstacles": block, "start": (4, 0), "goal": (0, 0)})
    assert obs["map"][5, 0] == 1 and obs["map"][4, 0] == 0
    _, reward, _, _, info = env.step(2)
    assert info["bumped"] and env.position == (4, 0) and reward < -0.01


def test_bad_options_raise():
    env = gym.make("idplan/ArmCSpace-v0").unwrapped
    block = np.array([rect(-0.14, 0.83, 0.05, 0.05)])
    with pytest.raises(ValueError, match="is in collision"):
        env.reset(seed=0, options={"obstacles": block, "start": (5, 0)})
    with pytest.raises(ValueError, match="obstacles"):
        env.reset(seed=0, options={"obstacles": np.zeros((2, 3))})
    with pytest.raises(ValueError, match="unknown reset options"):
        env.reset(seed=0, options={"map": np.zeros((18, 18))})
    for bins in (4, 18.5, True):
        with pytest.raises(ValueError, match="bins"):
            gym.make("idplan/ArmCSpace-v0", bins=bins)


def test_36_bins_env():
    env = gym.make("idplan/ArmCSpace-v0", bins=36)
    obs, info = env.reset(seed=1)
    assert obs["map"].shape == (36, 36) and info["distance"] > 0
    assert env.unwrapped.end_effector().shape == (2,)
