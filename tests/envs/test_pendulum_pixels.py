"""The pendulum from pixels: frames as a function of the angle, stacking order, checkers, seeding."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import idplan.envs  # noqa: F401
from idplan.envs import PendulumFrameEnv, pendulum_frames


def test_frames_are_a_deterministic_function_of_the_angle():
    angles = np.array([0.0, np.pi / 2, np.pi, 1.234])
    frames = pendulum_frames(angles, 64)
    assert frames.shape == (4, 64, 64) and frames.dtype == np.uint8
    np.testing.assert_array_equal(frames, pendulum_frames(angles, 64))
    np.testing.assert_array_equal(pendulum_frames(1.234 + 2 * np.pi, 64), frames[3])
    up, left, down = frames[:3]
    rows, cols = np.nonzero(up > 128)
    assert rows.max() <= 33 and abs(cols.mean() - 31.5) < 1  # upright: above the centre
    rows, cols = np.nonzero(left > 128)
    assert cols.max() <= 33 and abs(rows.mean() - 31.5) < 1  # +90 degrees (counter-clockwise): to the left
    np.testing.assert_array_equal(down, up[::-1])  # hanging is upright mirrored top to bottom
    assert not np.array_equal(frames[3], pendulum_frames(1.25, 64))  # resolves small angle changes


def test_stacked_observation_is_oldest_first_and_matches_the_state():
    env = gym.make("idplan/PendulumPixels-v0", start="down", size=32, frame_stack=3)
    obs, info = env.reset(seed=0)
    assert obs.shape == (3, 32, 32) and obs.dtype == np.uint8
    assert all(np.array_equal(obs[0], frame) for frame in obs)  # after reset: copies of the first frame
    angles = [info["state"][0]]
    for _ in range(4):
        obs, _, _, _, info = env.step(np.array([2.0], np.float32))
        angles.append(info["state"][0])
    np.testing.assert_array_equal(obs, pendulum_frames(np.array(angles[-3:]), 32))  # oldest first


def test_checkers_seeding_and_rendering():
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("idplan/PendulumPixels-v0", render_mode="rgb_array")
    check_env(env.unwrapped, skip_render_check=False)
    sb3_check_env(env, warn=False)
    first, _ = env.reset(seed=3)
    again, _ = env.reset(seed=3)
    np.testing.assert_array_equal(first, again)
    frame = env.render()
    assert frame.shape == (256, 256, 3) and frame.dtype == np.uint8
    with pytest.raises(ValueError, match="size"):
        PendulumFrameEnv(size=8)
    with pytest.raises(ValueError, match="frame_stack"):
        gym.make("idplan/PendulumPixels-v0", frame_stack=0)
