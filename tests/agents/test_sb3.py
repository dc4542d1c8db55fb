"""Stable-Baselines3 integration: PPO with a planner actor on GridMaze and a dILQR actor on Pendulum."""

import numpy as np
import pytest
import torch

pytest.importorskip("stable_baselines3")
import gymnasium as gym  # noqa: E402
from stable_baselines3 import PPO  # noqa: E402
from stable_baselines3.common.env_util import make_vec_env  # noqa: E402

import idplan.envs  # noqa: E402,F401
from idplan.agents.runtime.sb3_policies import (  # noqa: E402
    ImplicitActorCriticPolicy,
    controller_policy_kwargs,
    planner_policy_kwargs,
)


def test_ppo_with_a_planner_actor_learns_steps_saves_and_loads(tmp_path):
    env = make_vec_env("idplan/GridMaze-v0", n_envs=2, seed=0, env_kwargs={"size": 7})
    kwargs = planner_policy_kwargs("vin", hidden=8, q_channels=8, iterations=30)
    model = PPO(ImplicitActorCriticPolicy, env, policy_kwargs=kwargs, n_steps=32, batch_size=32, n_epochs=1, seed=0)
    extractor = model.policy.features_extractor
    obs = env.reset()
    with torch.no_grad():
        features = model.policy.extract_features(model.policy.obs_to_tensor(obs)[0])
        logits = model.policy.action_net(model.policy.mlp_extractor.forward_actor(features))
    torch.testing.assert_close(logits, features[:, :4])  # the actor starts as the planner's logits, passed through
    before = [p.detach().clone() for p in extractor.planner.parameters()]
    model.learn(64)
    assert any(not torch.equal(a, b) for a, b in zip(before, extractor.planner.parameters()))  # PPO trained the planner
    model.save(tmp_path / "ppo_planner")
    loaded = PPO.load(tmp_path / "ppo_planner", env=env)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


def test_ppo_with_a_dilqr_actor_on_pendulum():
    env = gym.make("idplan/Pendulum-v0")
    kwargs = controller_policy_kwargs("pendulum", learn=("gravity", "mass"), horizon=10)
    model = PPO(ImplicitActorCriticPolicy, env, policy_kwargs=kwargs, n_steps=16, batch_size=16, n_epochs=1, seed=0)
    controller = model.policy.features_extractor.controller
    obs, _ = env.reset(seed=0)
    action, _ = model.predict(obs, deterministic=True)
    with torch.no_grad():
        planned = controller(torch.as_tensor(obs, dtype=torch.float64)[None]).u[0, 0]
    np.testing.assert_allclose(action, planned.numpy(), rtol=1e-4, atol=1e-5)  # mean action = the plan's first control
    model.learn(16)
    assert all(np.isfinite(list(controller.learned().values())))
    # the policy's log-probability is differentiable in the physical parameters (an unsaturated state)
    near_upright = torch.tensor([[np.cos(0.05), np.sin(0.05), 0.0]], dtype=torch.float32)
    _, log_prob, _ = model.policy.evaluate_actions(near_upright, torch.tensor([[0.5]]))
    log_prob.sum().backward()
    assert all(float(p.grad.abs()) > 0 for p in controller.log_params.values())
