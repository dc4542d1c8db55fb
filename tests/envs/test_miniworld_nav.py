"""MiniWorld visual navigation: the 3D world matches the map, panoramas, the env and its dataset.

MiniWorld renders headless here (conftest sets PYGLET_HEADLESS). Without MiniWorld these tests are
skipped with the reason, unless IDPLAN_REQUIRE_MINIWORLD=1 (as in CI), where they fail instead.
"""

import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import idplan.envs  # noqa: F401
from idplan.envs import MiniWorldNavEnv, generate_dataset, load_maze_world


@pytest.fixture(scope="module")
def MazeWorld():
    try:
        return load_maze_world()
    except ImportError as error:
        if os.environ.get("IDPLAN_REQUIRE_MINIWORLD"):
            raise
        pytest.skip(f"MiniWorld cannot render here: {error}")


def symmetric_map() -> np.ndarray:
    """A 7x7 map invariant under 90-degree rotations about its centre cell (3, 3), which is free."""
    walls = np.zeros((7, 7), dtype=bool)
    walls[[0, -1], :] = walls[:, [0, -1]] = True
    walls[1, 3] = walls[3, 1] = walls[5, 3] = walls[3, 5] = True
    walls[2, 2] = walls[2, 4] = walls[4, 2] = walls[4, 4] = True
    assert all((np.rot90(walls, k) == walls).all() for k in range(4))
    return ~walls


SKY = np.array([64, 209, 255])  # MiniWorld's default sky colour (0.25, 0.82, 1)


def sky_mask(view: np.ndarray) -> np.ndarray:
    """Where a view shows the sky: a function of the geometry alone (textures and floor tiles aside)."""
    return np.abs(view.astype(int) - SKY).max(axis=-1) < 40


def test_world_has_wall_blocks_exactly_on_the_obstacle_cells(MazeWorld):
    free = generate_dataset(1, 9, seed=3, progress=False).free[0]
    goal = tuple(np.argwhere(free)[0])
    world = MazeWorld(free, goal)
    try:
        assert world.wall_cells() == {tuple(c) for c in np.argwhere(~free)}
        # and by rendering: from each free cell, the sky shows straight ahead above the wall tops
        # exactly when the neighbouring cell that way is free (an adjacent wall fills the 90-degree view)
        offsets = [(-1, 0), (0, -1), (1, 0), (0, 1)]  # N, W, S, E
        for row, col in np.argwhere(free):
            for heading, (dr, dc) in enumerate(offsets):
                sky = sky_mask(world.egocentric_view((row, col), heading)[0, 14:18]).all()
                assert sky == bool(free[row + dr, col + dc]), (row, col, heading)
    finally:
        world.close()


def test_views_of_a_symmetric_cell_are_rotations_of_each_other(MazeWorld):
    world = MazeWorld(symmetric_map(), (3, 3))
    try:
        centre = [sky_mask(v) for v in world.panorama((3, 3))]
        corner = [sky_mask(v) for v in world.panorama((1, 1))]  # walls N and W, corridors S and E
    finally:
        world.close()
    # the map looks the same from its centre in all four directions: the views differ only by the
    # 90-degree turn between them (floor tiles and brick texture are world-aligned, so not compared)
    assert centre[0].any() and all((mask != centre[0]).mean() < 0.01 for mask in centre[1:])
    assert not corner[0].any() and not corner[1].any() and corner[2].any() and corner[3].any()


def test_rebuilding_a_world_renders_the_same_panoramas(MazeWorld):
    data = generate_dataset(2, 7, seed=0, progress=False)
    world = MazeWorld(data.free[0], tuple(data.goals[0]))
    try:
        first = world.panoramas()
        world.set_maze(data.free[1], tuple(data.goals[1]))
        other = world.panoramas()
        world.set_maze(data.free[0], tuple(data.goals[0]))
        again = world.panoramas()
    finally:
        world.close()
    assert first.shape == (7, 7, 4, 32, 32, 3) and first.dtype == np.uint8
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_world_rejects_a_goal_on_a_wall(MazeWorld):
    free = symmetric_map()
    with pytest.raises(ValueError, match="goal"):
        MazeWorld(free, (0, 0))


def test_env_observations_follow_the_agent(MazeWorld):
    env = gym.make("idplan/MiniWorldNav-v0", size=7, render_mode="rgb_array")
    obs, info = env.reset(seed=0)
    assert obs["panoramas"].shape == (7, 7, 4, 32, 32, 3) and obs["panoramas"].dtype == np.uint8
    assert obs["panorama"].shape == (4, 32, 32, 3)
    np.testing.assert_array_equal(obs["panorama"], obs["panoramas"][tuple(obs["position"])])
    np.testing.assert_array_equal(info["map"], ~env.unwrapped.free)
    assert "map" not in obs and obs["goal"].sum() == 1
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    # the same seed rebuilds the same maze and the same pixels
    again, _ = env.reset(seed=0)
    np.testing.assert_array_equal(again["panoramas"], obs["panoramas"])
    env.close()


def test_env_passes_gymnasium_and_sb3_checkers(MazeWorld):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = MiniWorldNavEnv(size=7, render_mode="rgb_array")
    check_env(env, skip_render_check=False)
    sb3_check_env(MiniWorldNavEnv(size=7), warn=False)
    env.close()


def test_env_rejects_a_goal_on_a_wall(MazeWorld):
    env = MiniWorldNavEnv(size=7)
    with pytest.raises(ValueError, match="goal"):
        env.reset(options={"map": (~symmetric_map()).astype(np.int8), "goal": (0, 3)})


def test_play_records_a_gif(MazeWorld, tmp_path):
    from idplan.agents.runtime.interactive import play

    summary = play(
        "idplan/MiniWorldNav-v0", "expert", record=tmp_path / "nav.gif", env_kwargs={"size": 7}, max_steps=40
    )
    assert (tmp_path / "nav.gif").stat().st_size > 0 and summary["returns"][0] > 0


def test_importing_idplan_envs_does_not_import_miniworld():
    code = "import sys, idplan.envs; print('miniworld' in sys.modules, 'pyglet' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def test_dataset_panoramas_match_the_env_and_round_trip(MazeWorld, tmp_path):
    from idplan.envs import VisualNavDataset, render_panoramas

    tasks = generate_dataset(3, 7, seed=1, progress=False)
    panoramas = render_panoramas(tasks.free, tasks.goals, chunk=2, progress=False)
    data = VisualNavDataset(tasks, panoramas)
    env = MiniWorldNavEnv(size=7)
    obs, _ = env.reset(options={"map": (~tasks.free[2]).astype(np.int8), "goal": tuple(tasks.goals[2])})
    env.close()
    np.testing.assert_array_equal(obs["panoramas"], panoramas[2])
    data.save(tmp_path / "nav.npz")
    loaded = VisualNavDataset.load(tmp_path / "nav.npz")
    np.testing.assert_array_equal(loaded.panoramas, panoramas)
    np.testing.assert_array_equal(loaded.tasks.actions, tasks.actions)
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read"):
        VisualNavDataset.load(tmp_path / "bad.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an idplan visual-navigation dataset"):
        VisualNavDataset.load(tmp_path / "foreign.npz")
    with pytest.raises(ValueError, match="panoramas"):
        VisualNavDataset(tasks, panoramas[:, :, :, :2])


def test_parallel_rendering_matches_serial(MazeWorld):
    from idplan.envs import render_panoramas

    tasks = generate_dataset(2, 5, seed=2, progress=False)
    serial = render_panoramas(tasks.free, tasks.goals, progress=False)
    parallel = render_panoramas(tasks.free, tasks.goals, workers=2, chunk=1, progress=False)
    np.testing.assert_array_equal(serial, parallel)


def test_human_mode_shows_each_new_maze(MazeWorld, monkeypatch):
    """In human mode reset() renders before it observes: the frame must be of the new maze."""
    env = MiniWorldNavEnv(size=7, render_mode="human")
    shown = []  # the maze the 3D world held when each frame was shown
    monkeypatch.setattr(
        "idplan.envs.rendering.HumanWindow.show", lambda self, surface: shown.append(env.world.free.copy())
    )
    env.reset(seed=0)
    first = env.free.copy()
    env.reset(seed=1)
    assert len(shown) == 2 and (shown[0] == first).all() and (shown[1] == env.free).all()
    assert not (first == env.free).all()
    env.close()


def test_pickled_env_rebuilds_its_world(MazeWorld):
    import pickle

    env = MiniWorldNavEnv(size=7)
    obs, _ = env.reset(seed=0)
    clone = pickle.loads(pickle.dumps(env))
    again, *_ = clone.step(0)
    np.testing.assert_array_equal(again["panoramas"], obs["panoramas"])
    env.close()
    clone.close()
