"""The DARE layer: residual, agreement with the Riccati recursion, gradients against finite differences."""

import pytest
import torch

from idplan.solvers import ConvergenceError, ImplicitAdjoint, dare, dare_residual

DT = torch.float64


def random_system(batch=3, n=3, m=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    A = torch.randn(batch, n, n, generator=g, dtype=DT) / n**0.5
    B = torch.randn(batch, n, m, generator=g, dtype=DT)
    L = torch.randn(batch, n, n, generator=g, dtype=DT)
    Q = L @ L.transpose(-1, -2) / n + 0.1 * torch.eye(n, dtype=DT)
    R = torch.eye(m, dtype=DT).expand(batch, m, m) * 0.5
    return A, B, Q, R


def test_dare_solves_the_equation_and_matches_the_riccati_recursion():
    A, B, Q, R = random_system()
    sol = dare(A, B, Q, R)
    assert float(dare_residual(sol.P, A, B, Q, R).detach().abs().max()) < 1e-10
    P = Q.clone()
    for _ in range(500):  # value iteration on the Riccati difference equation
        P = dare_residual(P, A, B, Q, R) + P
        P = 0.5 * (P + P.transpose(-1, -2))
    torch.testing.assert_close(sol.P, P, rtol=1e-9, atol=1e-9)
    closed_loop = A - B @ sol.K
    assert float(torch.linalg.eigvals(closed_loop.detach()).abs().max()) < 1  # the stabilising solution


def test_dare_gradients_match_finite_differences():
    A, B, Q, R = random_system(batch=2, n=2, m=1, seed=1)

    def gain(A, B, Q, R):
        return dare(A, B, 0.5 * (Q + Q.transpose(-1, -2)), 0.5 * (R + R.transpose(-1, -2))).K

    inputs = tuple(t.clone().requires_grad_() for t in (A, B, Q, R))
    torch.autograd.gradcheck(gain, inputs, eps=1e-6, atol=1e-6)


def test_dare_bad_input_and_unstabilisable_systems():
    A, B, Q, R = random_system()
    with pytest.raises(ValueError, match="B must be"):
        dare(A, B[:, :2], Q, R)
    with pytest.raises(ValueError, match="NaN"):
        dare(A * float("nan"), B, Q, R)
    with pytest.raises(ConvergenceError, match="stabilising"):
        dare(2 * torch.eye(3, dtype=DT).expand(3, 3, 3), torch.zeros_like(B), Q, R)


def test_dense_and_unrolled_gradients_agree_with_gmres():
    A, B, Q, R = random_system(batch=2, n=3, m=1, seed=2)
    grads = []
    for kwargs in ({}, {"adjoint": ImplicitAdjoint(linear_solver="dense")}, {"adjoint": "unrolled"}):
        a = A.clone().requires_grad_()
        dare(a, B, Q, R, **kwargs).K.sum().backward()
        grads.append(a.grad)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(grads[2], grads[0], rtol=1e-6, atol=1e-8)
