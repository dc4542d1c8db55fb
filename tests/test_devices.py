"""Every path follows the device of its inputs.

Two kinds of test:

- *Leak* tests run on CPU tensors with the default device set to ``meta`` (``with
  torch.device("meta")``). A tensor the library creates without naming a device (``torch.zeros(n)``,
  ``torch.tensor(x)``, ``torch.eye(k)``) then lands on ``meta``, and the first operation that mixes it
  with the CPU inputs raises "Tensor on device meta is not on the expected device cpu". On a CUDA
  machine the same leak would put a CPU tensor on the CUDA path; this finds it without a GPU.
- *Device* tests run on every available device (``device`` fixture: ``cpu``, and ``cuda`` where
  there is one, marked ``cuda``) and compare values and gradients with the CPU's.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from idplan.agents import make_planner
from idplan.agents.control.ilqr_controller import ILQRController
from idplan.agents.control.pixel_episodes import collect_episodes
from idplan.agents.control.shooting import MLPDynamics, ShootingMPC, TargetCost
from idplan.agents.control.visual import FrameDecoder, FrameEncoder, VisualILQR
from idplan.agents.mappers import PanoramaMapper
from idplan.agents.runtime.control_agents import MPCAgent
from idplan.agents.training.visual import prediction_error, state_error, warm_up
from idplan.envs.control import pendulum
from idplan.solvers import (
    Anderson,
    Broyden,
    ImplicitAdjoint,
    PhantomAdjoint,
    UnrolledAdjoint,
    argmin,
    backward_euler,
    dare,
    fixed_point,
    ilqr,
    lqr,
    root_find,
    trajectory_jacobian,
)

PLANNERS = ["vin", "gated_vin", "sym_vin", "conv_gppn", "gppn"]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return torch.device(request.param)


def small_planner(name: str, mode: str, dtype=torch.float64):
    torch.manual_seed(0)
    options = {} if name == "gated_vin" else {"q_channels": 4}
    return make_planner(name, mode=mode, hidden=8, iterations=60, **options).to(dtype)


def maze_batch(dtype=torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(2, 2, 7, 7, generator=generator) > 0.6).to(dtype)


def pendulum_problem():
    params = pendulum.PendulumParams()
    x_init = torch.tensor([[1.0, 0.0, 0.3], [-0.5, 0.8, -0.2]], dtype=torch.float64)  # cos, sin, speed
    scale = torch.tensor(1.0, dtype=torch.float64, requires_grad=True)

    def dynamics(x, u):
        return pendulum.observation_dynamics(x, scale * u, params)

    def cost(x, u):
        return pendulum.cost(x, u, params)

    return dynamics, cost, x_init, scale


# ------------------------------------------------------------------ leaks (CPU, default device meta)
@pytest.mark.parametrize("name", PLANNERS)
@pytest.mark.parametrize("mode", ["implicit", "explicit"])
def test_planners_create_no_tensor_off_their_inputs_device(name, mode):
    planner, maps = small_planner(name, mode), maze_batch()
    with torch.device("meta"):
        out = planner(maps)
        out.logits.square().sum().backward()
    assert out.logits.device.type == "cpu"


def test_mapped_planner_and_its_mapper_create_no_stray_tensors():
    torch.manual_seed(0)
    mapper = PanoramaMapper(view_size=24, embedding=8, hidden=4)
    panoramas = torch.rand(2, 3, 3, 4, 24, 24, 3)
    with torch.device("meta"):
        occupancy = mapper(panoramas)
        occupancy.sum().backward()
    assert occupancy.device.type == "cpu"


@pytest.mark.parametrize(
    "solver, adjoint",
    [
        ("forward", ImplicitAdjoint(linear_solver="gmres")),
        (Anderson(), ImplicitAdjoint(linear_solver="anderson")),
        (Broyden(), ImplicitAdjoint(linear_solver="broyden")),
        ("forward", ImplicitAdjoint(linear_solver="dense")),
        ("forward", UnrolledAdjoint()),
        ("forward", PhantomAdjoint(steps=3)),
    ],
)
def test_fixed_point_solvers_and_adjoints_create_no_stray_tensors(solver, adjoint):
    theta = torch.tensor([0.5, -0.3], dtype=torch.float64, requires_grad=True)
    z0 = torch.zeros(2, 3, dtype=torch.float64)
    with torch.device("meta"):
        sol = fixed_point(lambda z, t: 0.5 * torch.tanh(z) + t[:, None], z0, theta, solver=solver, adjoint=adjoint)
        sol.value.sum().backward()
    assert theta.grad.device.type == "cpu" and torch.isfinite(theta.grad).all()


def test_root_find_and_argmin_create_no_stray_tensors():
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    z0, y0 = torch.zeros(2, 1, dtype=torch.float64), torch.zeros(2, 2, dtype=torch.float64)
    with torch.device("meta"):
        root = root_find(lambda z, s: z**3 + z - s[:, None], z0, a)
        best = argmin(lambda y, s: ((y - s[:, None]) ** 2).sum(1) + (y**4).sum(1), y0, a)
        (root.value.sum() + best.value.sum()).backward()
    assert a.grad.device.type == "cpu" and torch.isfinite(a.grad).all()


@pytest.mark.parametrize("adjoint", ["riccati", "last_layer", "unrolled"])
def test_ilqr_creates_no_stray_tensors(adjoint):
    dynamics, cost, x_init, scale = pendulum_problem()
    u_init = torch.zeros(5, 2, 1, dtype=torch.float64)
    with torch.device("meta"):
        sol = ilqr(dynamics, cost, x_init, u_init, lower=-2.0, upper=2.0, adjoint=adjoint, max_iter=30)
        sol.u.sum().backward()
    assert scale.grad.device.type == "cpu" and torch.isfinite(scale.grad)


def test_lqr_trajectory_jacobian_dare_and_backward_euler_create_no_stray_tensors():
    generator = torch.Generator().manual_seed(0)
    T, B, n, m = 4, 2, 2, 1
    C = torch.eye(n + m, dtype=torch.float64).expand(T, B, n + m, n + m).clone()
    c = torch.randn(T, B, n + m, dtype=torch.float64, generator=generator)
    F = torch.randn(T - 1, B, n, n + m, dtype=torch.float64, generator=generator).mul(0.3).requires_grad_()
    f = torch.zeros(T - 1, B, n, dtype=torch.float64)
    x_init = torch.randn(B, n, dtype=torch.float64, generator=generator)
    A = torch.tensor([[[1.0, 0.1], [0.0, 1.0]]], dtype=torch.float64, requires_grad=True)
    Bm = torch.tensor([[[0.0], [0.1]]], dtype=torch.float64)
    rate = torch.tensor([0.7], dtype=torch.float64, requires_grad=True)
    Q, R = torch.eye(2, dtype=torch.float64)[None], torch.eye(1, dtype=torch.float64)[None]
    x0 = torch.ones(1, 1, dtype=torch.float64)
    with torch.device("meta"):
        sol = lqr(x_init, C, c, F, f, lower=-1.0, upper=1.0)
        dX, dU = trajectory_jacobian(sol, F)
        gain = dare(A, Bm, Q, R).K
        traj = backward_euler(lambda x, k: -k * x, x0, dt=0.1, steps=3, args=rate)
        (sol.u.sum() + gain.sum() + traj.x.sum()).backward()
    assert dX.device.type == dU.device.type == "cpu"
    assert all(t.grad is not None and t.grad.device.type == "cpu" for t in (F, A, rate))


def test_controllers_and_the_mpc_agent_create_no_stray_tensors():
    controller = ILQRController.for_task("pendulum", learn=("mass",), horizon=5, max_iter=20)
    torch.manual_seed(0)
    weights = torch.tensor([1.0, 1.0, 0.1])
    shooting = ShootingMPC(MLPDynamics(3, 1, 8), TargetCost(weights, torch.zeros(3)), 1, horizon=3, particles=16,
                           generator=torch.Generator().manual_seed(0))  # fmt: skip
    x = torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64)
    agent = MPCAgent(controller)
    with torch.device("meta"):
        controller(x).u.sum().backward()
        shooting(x.float()).sum().backward()
        action = agent.act(np.array([1.0, 0.0, 0.0]))
    assert action.shape == (1,) and np.isfinite(action).all()


def test_the_pixel_controller_trainers_build_their_batches_on_the_models_device():
    episodes = collect_episodes(2, 8, size=32, horizon=3, seed=0, progress=False)
    torch.manual_seed(0)
    controller = ILQRController.for_task("pendulum", learn=("mass",), horizon=3, max_iter=10)
    model = VisualILQR(FrameEncoder(frames=4, size=32, width=4), controller, FrameDecoder(size=32, width=4))
    with torch.device("meta"):
        warm_up(model, episodes, epochs=1, batch_size=8, progress=False)
        errors = prediction_error(model, episodes)
        state = state_error(model.encoder, episodes)
    assert errors.shape == (3,) and np.isfinite(state)


# ------------------------------------------------------------------ every available device
@pytest.mark.parametrize("name", PLANNERS)
def test_planner_values_and_gradients_agree_with_the_cpu(name, device):
    cpu = small_planner(name, "implicit")
    there = small_planner(name, "implicit").to(device)
    maps = maze_batch()
    for planner, x in ((cpu, maps), (there, maps.to(device))):
        planner.zero_grad()
        planner(x).logits.square().sum().backward()
    torch.testing.assert_close(there(maps.to(device)).logits.cpu(), cpu(maps).logits, rtol=1e-6, atol=1e-8)
    for a, b in zip(there.parameters(), cpu.parameters()):
        torch.testing.assert_close(a.grad.cpu(), b.grad, rtol=1e-5, atol=1e-8)


def test_ilqr_gradient_agrees_with_the_cpu(device):
    grads = []
    for where in (torch.device("cpu"), device):
        dynamics, cost, x_init, scale = pendulum_problem()
        sol = ilqr(dynamics, cost, x_init.to(where), torch.zeros(5, 2, 1, dtype=torch.float64, device=where),
                   lower=-2.0, upper=2.0)  # fmt: skip
        sol.u.sum().backward()
        assert sol.u.device == where
        grads.append(scale.grad.cpu())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("backward_inside", [False, True])
def test_a_planner_under_bf16_autocast_keeps_a_float32_state_and_its_gradient(backward_inside):
    planner, maps = small_planner("vin", "implicit", dtype=torch.float32), maze_batch(torch.float32)
    exact = torch.autograd.grad(planner(maps).logits.square().sum(), list(planner.parameters()))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = planner(maps)
        loss = out.logits.float().square().sum()
        if backward_inside:  # not what torch advises, but the adjoint's own products must not autocast
            grads = torch.autograd.grad(loss, list(planner.parameters()))
    if not backward_inside:
        grads = torch.autograd.grad(loss, list(planner.parameters()))
    assert out.state.dtype == torch.float32
    flat = torch.cat([g.flatten() for g in grads]).double()
    cosine = torch.nn.functional.cosine_similarity(flat, torch.cat([g.flatten() for g in exact]).double(), dim=0)
    assert cosine > 0.99


def test_the_gpu_check_script_runs_on_the_cpu():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.main(["--device", "cpu", "--sizes", "7", "--batch", "2", "--ilqr-batches", "2", "--repeats", "1"])
    assert len(result["planners"]) == 4 and result["ilqr"][0]["converged"] == 1.0
    assert result["bf16"]["cosine"] is None or result["bf16"]["cosine"] > 0.9


def test_fixed_point_root_and_argmin_gradients_agree_with_the_cpu(device):
    grads = []
    for where in (torch.device("cpu"), device):
        theta = torch.tensor([0.5, -0.3], dtype=torch.float64, device=where, requires_grad=True)
        zeros = torch.zeros(2, 3, dtype=torch.float64, device=where)
        fixed = fixed_point(lambda z, t: 0.5 * torch.tanh(z) + t[:, None], zeros, theta, solver=Anderson())
        root = root_find(lambda z, t: z**3 + z - t[:, None], zeros, theta)
        best = argmin(lambda y, t: ((y - t[:, None]) ** 2).sum(1) + (y**4).sum(1), zeros, theta)
        (fixed.value.sum() + root.value.sum() + best.value.sum()).backward()
        assert fixed.value.device == root.value.device == best.value.device == where
        grads.append(theta.grad.cpu())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-8, atol=1e-10)


def test_dare_backward_euler_and_the_mapper_agree_with_the_cpu(device):
    outputs = []
    for where in (torch.device("cpu"), device):
        A = torch.tensor([[[1.0, 0.1], [0.0, 1.0]]], dtype=torch.float64, device=where, requires_grad=True)
        Bm = torch.tensor([[[0.0], [0.1]]], dtype=torch.float64, device=where)
        eye2, eye1 = (torch.eye(k, dtype=torch.float64, device=where)[None] for k in (2, 1))
        gain = dare(A, Bm, eye2, eye1).K
        rate = torch.tensor([0.7], dtype=torch.float64, device=where, requires_grad=True)
        traj = backward_euler(
            lambda x, k: -k * x, torch.ones(1, 1, dtype=torch.float64, device=where), dt=0.1, steps=3, args=rate
        )
        torch.manual_seed(0)
        mapper = PanoramaMapper(view_size=24, embedding=8, hidden=4).double().to(where)
        panoramas = torch.rand(1, 3, 3, 4, 24, 24, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        occupancy = mapper(panoramas.to(where))
        (gain.sum() + traj.x.sum() + occupancy.sum()).backward()
        outputs.append([t.detach().cpu() for t in (gain, traj.x, occupancy, A.grad, rate.grad)])
    for a, b in zip(*outputs):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-9)
