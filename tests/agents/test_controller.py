"""The dILQR controller and the MPC agent: learnable parameters get exact gradients; MPC balances and swings up."""

import math

import gymnasium as gym
import pytest
import torch

import idplan.envs  # noqa: F401  (registers the environments)
from idplan.agents.control import ILQRController
from idplan.agents.runtime import MPCAgent
from idplan.envs import PendulumParams


def initial_observations(batch=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(batch, generator=g, dtype=torch.float64) * 2 * math.pi - math.pi
    return torch.stack([theta.cos(), theta.sin(), torch.randn(batch, generator=g, dtype=torch.float64)], -1)


def test_controller_gradients_reach_learned_parameters_exactly():
    x0 = initial_observations()
    controller = ILQRController.for_task(
        "pendulum", PendulumParams(gravity=9.0, mass=1.2), learn=("gravity", "mass", "length"), horizon=8
    )
    target = torch.randn(8, 4, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    loss = ((controller(x0).u - target) ** 2).sum()
    loss.backward()
    grads = {name: float(p.grad) for name, p in controller.log_params.items()}
    assert all(math.isfinite(g) and g != 0 for g in grads.values())
    eps = 1e-5
    for name, p in controller.log_params.items():
        with torch.no_grad():
            p += eps
            plus = float(((controller(x0).u - target) ** 2).sum())
            p -= 2 * eps
            minus = float(((controller(x0).u - target) ** 2).sum())
            p += eps
        assert grads[name] == pytest.approx((plus - minus) / (2 * eps), rel=1e-5, abs=1e-8)


def test_controller_rejects_unknown_or_non_positive_fields():
    with pytest.raises(ValueError, match="cannot learn"):
        ILQRController.for_task("pendulum", learn=("friction",))
    with pytest.raises(ValueError, match="must start > 0"):
        ILQRController.for_task("pendulum", learn=("damping",))
    with pytest.raises(ValueError, match="unknown control task"):
        ILQRController.for_task("acrobot")


def test_mpc_agent_balances_the_pendulum_and_draws_its_plan():
    env = gym.make("idplan/Pendulum-v0")
    agent = MPCAgent(ILQRController.for_task("pendulum", horizon=15))
    obs, _ = env.reset(options={"state": (0.25, 0.2)})  # within reach of the torque bound
    for _ in range(40):
        obs, *_ = env.step(agent.act(obs))
    assert obs[0] > 0.999 and abs(obs[2]) < 0.05
    plan = agent.planned_states()
    assert plan.shape == (15, 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "task, env_id, angle, horizon",
    [("pendulum", "idplan/Pendulum-v0", 0, 20), ("cartpole", "idplan/CartPole-v0", 2, 30)],
)
def test_mpc_agent_swings_up_from_hanging(task, env_id, angle, horizon):
    env = gym.make(env_id, start="down")
    agent = MPCAgent(ILQRController.for_task(task, horizon=horizon, max_iter=50))
    obs, info = env.reset(seed=0)
    for _ in range(200):
        obs, _, terminated, _, info = env.step(agent.act(obs))
        assert not terminated
    assert math.cos(info["state"][angle]) > 0.99
