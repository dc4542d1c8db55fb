"""The GridMaze Gymnasium environment: API checks, determinism, options, rewards, rendering."""

import pickle
import sys

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env

import idplan.envs  # noqa: F401  (registers the environments)
from idplan.envs import BUMP_PENALTY, GOAL_REWARD, STEP_REWARD, GridMazeEnv, optimal_actions
from idplan.envs.maze.rendering import LEGEND_HEIGHT

CONFIGS = [(moves, generator) for moves in (4, 8) for generator in ("maze", "obstacles")]


def expert_action(env: GridMazeEnv) -> int:
    best = optimal_actions(env.free[None], env.distance[None], env.moves)[0]
    return int(np.flatnonzero(best[:, env.position[0], env.position[1]])[0])


@pytest.mark.parametrize("moves, generator", CONFIGS)
def test_gymnasium_env_checker(moves, generator):
    gym_check_env(GridMazeEnv(size=9, moves=moves, generator=generator), skip_render_check=True)


@pytest.mark.parametrize("moves, generator", CONFIGS)
def test_stable_baselines3_env_checker(moves, generator):
    sb3_checker = pytest.importorskip("stable_baselines3.common.env_checker")
    sb3_checker.check_env(GridMazeEnv(size=9, moves=moves, generator=generator), warn=True)


def test_gym_make_with_and_without_namespace_import():
    env = gym.make("idplan.envs:idplan/GridMaze-v0", size=11)
    assert env.unwrapped.size == 11
    env = gym.make("idplan/GridMaze-v0", size=27, render_mode="rgb_array")
    env.reset(seed=0)
    env.step(0)
    frame = env.render()
    assert frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


def test_same_seed_and_actions_give_identical_rollouts():
    def rollout():
        env = GridMazeEnv(size=13)
        obs, _ = env.reset(seed=123)
        frames = [obs]
        actions = np.random.default_rng(0).integers(4, size=40)
        for a in actions:
            obs, reward, terminated, truncated, info = env.step(int(a))
            frames.append({**obs, "reward": np.array(reward), "distance": np.array(info["distance"])})
            if terminated or truncated:
                break
        return frames

    a, b = rollout(), rollout()
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for key in x:
            np.testing.assert_array_equal(x[key], y[key])
    other = GridMazeEnv(size=13)
    assert not np.array_equal(other.reset(seed=124)[0]["map"], a[0]["map"])


def test_env_pickles_and_resumes_identically():
    env = GridMazeEnv(size=11, render_mode="rgb_array")
    env.reset(seed=5)
    env.render()  # a pygame surface exists now and must not travel
    clone = pickle.loads(pickle.dumps(env))
    for a in (0, 1, 2, 3, 2):
        out, out_clone = env.step(a), clone.step(a)
        np.testing.assert_array_equal(out[0]["position"], out_clone[0]["position"])
        assert out[1:] == out_clone[1:]
    np.testing.assert_array_equal(env.reset()[0]["map"], clone.reset()[0]["map"])  # same np_random state


@pytest.mark.parametrize("moves, generator", CONFIGS)
def test_expert_reaches_goal_in_shortest_path_length(moves, generator):
    env = GridMazeEnv(size=15, moves=moves, generator=generator)
    for seed in range(5):
        obs, info = env.reset(seed=seed)
        assert info["distance"] == info["optimal_length"] > 0
        total, steps, terminated = 0.0, 0, False
        while not terminated:
            obs, reward, terminated, truncated, info = env.step(expert_action(env))
            steps += 1
            total += reward
            assert not truncated and not info["bumped"]
        assert steps == info["optimal_length"] and info["is_success"] and info["distance"] == 0
        assert total == pytest.approx(STEP_REWARD * (steps - 1) + GOAL_REWARD)


def test_bumps_cost_extra_and_keep_the_agent_in_place():
    grid = np.ones((7, 7), dtype=np.int8)
    grid[1:6, 3] = 0  # a vertical corridor at column 3
    env = GridMazeEnv(size=7)
    obs, _ = env.reset(seed=0, options={"map": grid, "goal": (1, 3), "start": (5, 3)})
    obs, reward, terminated, truncated, info = env.step(1)  # West: a wall
    assert info["bumped"] and reward == pytest.approx(STEP_REWARD + BUMP_PENALTY)
    assert tuple(obs["position"]) == (5, 3)
    obs, reward, *_ = env.step(0)  # North
    assert tuple(obs["position"]) == (4, 3) and reward == pytest.approx(STEP_REWARD)


def test_truncation_at_max_episode_steps():
    env = GridMazeEnv(size=9, max_episode_steps=3)
    grid = np.ones((9, 9), dtype=np.int8)
    grid[1:8, 1:8] = 0
    env.reset(seed=0, options={"map": grid, "goal": (1, 1), "start": (7, 7)})
    results = [env.step(2) for _ in range(3)]  # South into the border: never reaches the goal
    assert [r[3] for r in results] == [False, False, True]
    assert GridMazeEnv(size=15).max_episode_steps == 2 * 15 * 15


def test_options_replay_a_task():
    env = GridMazeEnv(size=9)
    obs, _ = env.reset(seed=1)
    task = {"map": obs["map"], "goal": tuple(np.argwhere(obs["goal"])[0]), "start": tuple(obs["position"])}
    replay, info = GridMazeEnv(size=9).reset(seed=99, options=task)
    for key in obs:
        np.testing.assert_array_equal(replay[key], obs[key])
    goal_only, _ = GridMazeEnv(size=9).reset(seed=3, options={"goal": (1, 1)})  # a drawn map around a given goal
    assert goal_only["goal"][1, 1] == 1


@pytest.mark.parametrize(
    "options, field",
    [
        ({"map": np.zeros((8, 9), np.int8)}, "map"),
        ({"map": np.zeros((9, 9), np.float32)}, "map"),
        ({"map": np.full((9, 9), 2, np.int8)}, "map"),
        ({"map": np.ones((9, 9), np.int8)}, "map"),
        ({"map": np.zeros((9, 9), np.int8), "goal": (0, 9)}, "goal"),
        ({"map": np.zeros((9, 9), np.int8), "goal": (1.0, 2.0)}, "goal"),
        ({"map": np.pad(np.zeros((7, 7), np.int8), 1, constant_values=1), "goal": (0, 4)}, "goal"),
        ({"map": np.pad(np.zeros((7, 7), np.int8), 1, constant_values=1), "start": (8, 8)}, "start"),
        ({"map": np.pad(np.zeros((7, 7), np.int8), 1, constant_values=1), "start": (-1, 2)}, "start"),
        ({"map": np.zeros((9, 9), np.int8), "goal": (2, 2), "start": (2, 2)}, "start"),
        ({"map": np.eye(9, dtype=np.int8)[::-1] | np.eye(9, dtype=np.int8), "goal": (0, 1), "start": (8, 1)}, "start"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_options_raise_value_error_naming_the_field(options, field):
    with pytest.raises(ValueError, match=field):
        GridMazeEnv(size=9).reset(seed=0, options=options)


def test_bad_actions_and_arguments_raise():
    env = GridMazeEnv(size=9)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(4)
    for kwargs, word in [
        ({"size": 3}, "size"),
        ({"generator": "caves"}, "generator"),
        ({"moves": 6}, "moves"),
        ({"render_mode": "ascii"}, "render_mode"),
        ({"max_episode_steps": 0}, "max_episode_steps"),
    ]:
        with pytest.raises(ValueError, match=word):
            GridMazeEnv(**kwargs)


def test_rgb_array_frames_and_overlays():
    env = GridMazeEnv(size=11, render_mode="rgb_array")
    env.reset(seed=0)
    plain = env.render()
    assert plain.shape[2] == 3 and plain.dtype == np.uint8 and plain.shape[0] == plain.shape[1] + LEGEND_HEIGHT
    values = -env.distance.astype(float)
    policy = optimal_actions(env.free[None], env.distance[None])[0].astype(float)
    env.set_overlay(values=values, policy=policy)
    drawn = env.render()
    assert drawn.shape == plain.shape and not np.array_equal(drawn, plain)
    with pytest.raises(ValueError, match="values"):
        env.set_overlay(values=np.zeros((3, 3)))
    env.reset()
    assert env._overlay == {}
    true = env.true_overlay()["values"]  # minus the steps to the goal, NaN where there is no path
    assert np.array_equal(np.isnan(true), env.distance < 0) and true[env.goal] == 0 and np.nanmin(true) < 0


def test_human_mode_opens_a_window_headless():
    env = GridMazeEnv(size=7, render_mode="human")
    env.reset(seed=0)
    env.step(0)
    env.close()


def test_missing_pygame_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygame", None)
    env = GridMazeEnv(size=7, render_mode="rgb_array")
    env.reset(seed=0)
    with pytest.raises(gym.error.DependencyNotInstalled, match=r"idplan\[render\]"):
        env.render()


@pytest.mark.parametrize("vector_cls", [gym.vector.SyncVectorEnv, gym.vector.AsyncVectorEnv])
def test_vector_envs(vector_cls):
    envs = vector_cls([lambda: gym.make("idplan/GridMaze-v0", size=9) for _ in range(2)])
    try:
        obs, info = envs.reset(seed=[0, 1])
        assert obs["map"].shape == (2, 9, 9) and obs["position"].shape == (2, 2)
        for _ in range(5):
            obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and "distance" in info
    finally:
        envs.close()
