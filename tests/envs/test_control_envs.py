"""Pendulum and CartPole: the env's step is the model's step, checkers, determinism, bad parameters."""

import dataclasses
import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import idplan.envs  # noqa: F401  (registers the environments)
from idplan.envs import cartpole, pendulum

TASKS = [
    ("idplan/Pendulum-v0", pendulum, pendulum.PendulumParams),
    ("idplan/CartPole-v0", cartpole, cartpole.CartPoleParams),
]


@pytest.mark.parametrize("env_id, module, params_cls", TASKS)
def test_env_step_equals_model_step(env_id, module, params_cls):
    env = gym.make(env_id)
    obs, _ = env.reset(seed=3)
    rng = np.random.default_rng(0)
    for _ in range(20):
        action = rng.uniform(-1, 1, size=1).astype(np.float32) * env.action_space.high
        state = torch.as_tensor(env.unwrapped.state)
        u = torch.as_tensor(action, dtype=torch.float64)
        expected_obs = module.observation_dynamics(module.observe(state), u, env.unwrapped.params)
        expected_reward = -float(module.cost(module.observe(state), u, env.unwrapped.params))
        obs, reward, *_ = env.step(action)
        np.testing.assert_allclose(obs, expected_obs.numpy(), rtol=1e-5, atol=1e-6)
        assert reward == pytest.approx(expected_reward, rel=1e-12)


@pytest.mark.parametrize("env_id, module, params_cls", TASKS)
def test_checkers_determinism_and_pickling(env_id, module, params_cls):
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make(env_id).unwrapped
    check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=False)
    traces = []
    for _ in range(2):
        e = gym.make(env_id)
        obs, _ = e.reset(seed=11)
        trace = [obs]
        for _ in range(5):
            trace.append(e.step(np.full(1, 0.5, dtype=np.float32))[0])
        traces.append(np.stack(trace))
    np.testing.assert_array_equal(traces[0], traces[1])
    e = gym.make(env_id)
    e.reset(seed=1)
    clone = pickle.loads(pickle.dumps(e.unwrapped))
    np.testing.assert_array_equal(clone.step(np.zeros(1, np.float32))[0], e.unwrapped.step(np.zeros(1, np.float32))[0])


@pytest.mark.parametrize("env_id, module, params_cls", TASKS)
def test_bad_parameters_and_actions_raise(env_id, module, params_cls):
    mass_field = "mass" if params_cls is pendulum.PendulumParams else "pole_mass"
    with pytest.raises(ValueError, match=mass_field):
        params_cls(**{mass_field: -1.0})
    with pytest.raises(ValueError, match="dt"):
        params_cls(dt=0.0)
    env = gym.make(env_id)
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([np.nan], dtype=np.float32))
    with pytest.raises(ValueError, match="state"):
        env.reset(options={"state": [0.0]})


def test_actions_are_clipped_and_dynamics_are_differentiable_in_parameters():
    env = gym.make("idplan/Pendulum-v0")
    env.reset(options={"state": (0.3, 0.0)})
    a = env.step(np.array([100.0], np.float32))[0]
    env.reset(options={"state": (0.3, 0.0)})
    b = env.step(np.array([2.0], np.float32))[0]
    np.testing.assert_array_equal(a, b)
    params = dataclasses.replace(
        pendulum.PendulumParams(), gravity=torch.tensor(10.0, dtype=torch.float64, requires_grad=True)
    )
    out = pendulum.dynamics(torch.tensor([0.3, 0.0], dtype=torch.float64), torch.zeros(1, dtype=torch.float64), params)
    (g,) = torch.autograd.grad(out[1], params.gravity)
    assert float(g) == pytest.approx(0.05 * 1.5 * math.sin(0.3))


def test_cartpole_terminates_off_the_track_and_dil_preset():
    env = gym.make("idplan/CartPole-v0")
    env.reset(options={"state": (2.99, 5.0, 0.0, 0.0)})
    assert env.step(np.zeros(1, np.float32))[2]
    preset = cartpole.CartPoleParams.dil_preset()
    assert (preset.cart_mass, preset.pole_mass, 2 * preset.pole_length, preset.dt) == (0.5, 0.5, 0.6, 0.1)


def test_cartpole_tip_cost_measures_the_tip_distance_to_upright():
    params = cartpole.CartPoleParams.dil_preset()  # 0.6 m pole
    states = torch.tensor(
        [
            [0.0, 3.0, 0.0, -2.0],  # upright above the origin: velocities are free
            [0.0, 0.0, math.pi, 0.0],  # hanging: the tip 1.2 m below
            [0.3, 0.0, -math.asin(0.5), 0.0],  # cart right, pole leaning left: tip 0.08 m under the target
            [float("nan"), 0.0, 0.0, 0.0],  # a blown-up episode
        ],
        dtype=torch.float64,
    )
    cost = cartpole.tip_cost(cartpole.observe(states), params)
    drop = 0.6 * (1 - math.cos(math.asin(0.5)))
    expected = [0.0, 1 - math.exp(-(1.2**2) / (2 * 0.25**2)), 1 - math.exp(-(drop**2) / (2 * 0.25**2)), 1.0]
    torch.testing.assert_close(cost, torch.tensor(expected, dtype=torch.float64))
    assert float(cartpole.tip_cost(cartpole.observe(states[2]), params, width=1.0)) < float(cost[2])
    with pytest.raises(ValueError, match="width"):
        cartpole.tip_cost(cartpole.observe(states), params, width=0.0)


@pytest.mark.parametrize("env_id", [t[0] for t in TASKS])
def test_rendering_draws_the_plan(env_id, monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    plain = env.render()
    dim = 2 if env_id.startswith("idplan/Pendulum") else 4
    env.unwrapped.set_plan(np.linspace(0.2, 1.0, 5)[:, None] * np.ones(dim))
    with_plan = env.render()
    assert plain.shape == (500, 500, 3) and plain.dtype == np.uint8
    assert (plain != with_plan).any()
