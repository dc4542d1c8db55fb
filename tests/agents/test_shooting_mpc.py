"""The random-shooting MPC argmin layer: stationary solutions and IFT gradients against finite differences."""

import torch
from torch import nn

from idplan.agents.shooting_mpc import ShootingMPC, TargetCost

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
    assert u.shape == (2, 4, 1) and bool(mpc.last.stats.converged.all())
    weights = torch.randn(2, 4, 1, generator=torch.Generator().manual_seed(1), dtype=DT)
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
