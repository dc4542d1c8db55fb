"""The random-shooting MPC argmin layer: stationary solutions and IFT gradients against finite differences."""

import torch
from torch import nn

from idplan.agents.control.shooting import ShootingMPC, TargetCost

DT = torch.float64


class Linear(nn.Module):
    def forward(self, x, u):
        A = torch.tensor([[1.0, 0.1], [0.0, 1.0]], dtype=DT)
        return x @ A.T + 0.1 * torch.cat([torch.zeros_like(u), u], -1)


def make(target):
    cost = TargetCost(torch.ones(2, dtype=DT), target)
    return ShootingMPC(
        Linear(), cost, 1, horizon=4, particles=200, bound=2.0, refine=8, generator=torch.Generator().manual_seed(0)
    )


def test_polished_solution_is_stationary_and_gradients_match_finite_differences():
    x0 = torch.tensor([[1.0, 0.0], [-0.5, 0.3]], dtype=DT)
    mpc = make(torch.tensor([0.2, 0.1], dtype=DT))
    u = mpc(x0)
    assert u.shape == (4, 2, 1) and bool(mpc.last.stats.converged.all())  # [H, B, m], time first
    weights = torch.randn(4, 2, 1, generator=torch.Generator().manual_seed(1), dtype=DT)
    (u * weights).sum().backward()
    grad = mpc.cost.target.grad.clone()
    h = 1e-5
    fd = []
    for j in range(2):
        values = []
        for sign in (1, -1):
            target = torch.tensor([0.2, 0.1], dtype=DT)
            target[j] += sign * h
            with torch.no_grad():
                values.append(float((make(target)(x0) * weights).sum()))
        fd.append((values[0] - values[1]) / (2 * h))
    torch.testing.assert_close(grad, torch.tensor(fd, dtype=DT), rtol=1e-5, atol=1e-7)


def test_a_warm_start_joins_the_candidates_and_is_kept_when_best():
    import pytest

    from idplan.agents.control import shift_plan

    x0 = torch.tensor([[1.0, 0.0], [-0.5, 0.3]], dtype=DT)
    mpc = make(torch.tensor([0.2, 0.1], dtype=DT))
    with torch.no_grad():
        plan = mpc(x0)
        mpc.particles = 2  # two random candidates: the warm start (the optimum) must win
        shot = mpc.controls(mpc.shoot(x0, plan)).unflatten(-1, (4, 1)).transpose(0, 1)
    torch.testing.assert_close(shot, plan.clamp(-0.99 * 2, 0.99 * 2), rtol=1e-9, atol=1e-9)
    assert torch.equal(shift_plan(plan)[:3], plan[1:]) and torch.equal(shift_plan(plan)[3], plan[3])
    with pytest.raises(ValueError, match="warm_start"):
        mpc(x0, plan[:2])


def test_target_cost_with_learnable_weights():
    import pytest

    weights = torch.tensor([0.5, 0.0, 2.0], dtype=DT)
    cost = TargetCost(weights, torch.zeros(3, dtype=DT), learn_weights=True)
    torch.testing.assert_close(cost.weights, weights)  # starts at the given weights, zeros kept
    x = torch.tensor([[1.0, 3.0, -1.0]], dtype=DT)
    torch.testing.assert_close(cost(x), torch.tensor([2.5], dtype=DT))
    cost(x).sum().backward()
    assert cost.log_weights.grad[0] != 0 and cost.log_weights.grad[1] == 0 and cost.target.grad is not None
    fixed = TargetCost(weights, torch.zeros(3, dtype=DT))  # fixed weights: the given ones, as a buffer
    torch.testing.assert_close(fixed.weights, weights, rtol=0, atol=0)
    assert [name for name, _ in fixed.named_parameters()] == ["target"]  # not a parameter: not trained
    assert any(buffer is fixed.weights for buffer in fixed.buffers())  # a buffer: saved and moved with the module
    assert "fixed_weights" in fixed.state_dict() and not fixed.weights.requires_grad
    fixed(x).sum().backward()
    assert fixed.weights.grad is None and fixed.target.grad is not None
    with pytest.raises(ValueError, match="non-negative"):
        TargetCost(-weights, torch.zeros(3, dtype=DT))


def test_polish_leaves_a_plan_with_a_non_finite_hessian_in_place():
    """The refinement (the core's saddle-free Newton, as ShootingMPC uses it) moves the finite plan
    and leaves the one whose score is NaN where it was, flagged."""
    import warnings

    from idplan.solvers import argmin

    mpc = make(torch.tensor([0.2, 0.1], dtype=DT))
    x0 = torch.tensor([[1.0, 0.0], [float("nan"), 0.3]], dtype=DT)  # the second plan's score is NaN
    V = torch.zeros(2, 4, dtype=DT)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sol = argmin(mpc.score, V, x0, solver=lambda score, v, x: V, refine=8, throw=False)
    polished = sol.value.detach()
    assert torch.equal(polished[1], V[1]) and not torch.equal(polished[0], V[0])
    assert sol.stats.nonfinite.tolist() == [False, True] and bool(sol.stats.converged[0])
