"""Backward-Euler neural ODE layer: exact steps on a stiff linear system, gradients against finite differences."""

import pytest
import torch

from idplan.solvers import ConvergenceError, ImplicitAdjoint, backward_euler

DT = torch.float64


def test_stiff_linear_system_matches_the_closed_form_steps():
    rates = torch.tensor([[1.0, 50.0, 500.0]], dtype=DT)  # stiff: dt * rate up to 50
    x0 = torch.tensor([[1.0, -2.0, 3.0]], dtype=DT)
    traj = backward_euler(lambda x, a: -a * x, x0, 0.1, 20, rates, solver="newton")
    expected = x0 / (1 + 0.1 * rates) ** torch.arange(21, dtype=DT)[:, None, None]
    torch.testing.assert_close(traj.x, expected, rtol=1e-10, atol=1e-12)
    with pytest.raises(ConvergenceError, match="backward Euler step 0"):
        backward_euler(lambda x, a: -a * x, x0, 0.1, 5, rates, solver="forward", max_iter=50)  # no contraction


@pytest.mark.parametrize("backward", ["cg_normal", "gmres", "dense"])
def test_gradients_match_finite_differences(backward):
    g = torch.Generator().manual_seed(0)
    W = (torch.randn(3, 3, generator=g, dtype=DT) * 0.5).requires_grad_()
    x0 = torch.randn(2, 3, generator=g, dtype=DT).requires_grad_()

    def final(W, x0):
        return backward_euler(
            lambda x, a: torch.tanh(x @ a.T), x0, 0.2, 6, W, adjoint=ImplicitAdjoint(backward, rtol=1e-8), rtol=1e-12
        ).x[-1]

    torch.autograd.gradcheck(final, (W, x0), eps=1e-6, atol=1e-6)


def test_bad_arguments():
    with pytest.raises(ValueError, match="dt > 0"):
        backward_euler(lambda x, a: x, torch.zeros(1, 2), 0.0, 3)
    with pytest.raises(ValueError, match="x0 must be"):
        backward_euler(lambda x, a: x, torch.zeros(2), 0.1, 3)
