"""The fast paths of the trajectory solvers against straightforward references (float64, to ~1e-12):
the augmented-coordinate Riccati pass against the textbook per-block recursion, and the stacked-copy
Jacobians and Hessians of :class:`NonlinearModel` against ``torch.func.jacrev``."""

import math

import pytest
import torch
from torch.func import jacrev

from idplan.solvers import box_qp
from idplan.solvers.trajectory.models import NonlinearModel
from idplan.solvers.trajectory.riccati import riccati

DT = torch.float64


def reference_riccati(H, q, A, Bu, d=None, lower=None, upper=None, pinned=None, reg=None):
    """The Riccati pass block by block, one sample-batched step at a time (bounds and ``pinned`` not
    combined). Returns ``(K [T, B, m, n], k [T, B, m], Vx [T, B, n], Vxx [T, B, n, n], free [T, B, m],
    expected_linear [B], expected_quadratic [B])``."""
    T, batch, N, _ = H.shape
    n = A.shape[-1]
    m = N - n
    Vx, Vxx = torch.zeros(batch, n, dtype=DT), torch.zeros(batch, n, n, dtype=DT)
    eye = torch.eye(m, dtype=DT)
    out = {key: [] for key in ("K", "k", "Vx", "Vxx", "free", "qu", "Quu")}
    for t in reversed(range(T)):
        Q, Qv = H[t], q[t]
        if t < T - 1:
            AB = torch.cat([A[t], Bu[t]], -1)
            v = Vx if d is None else Vx + (Vxx @ d[t].unsqueeze(-1)).squeeze(-1)
            Q = Q + AB.transpose(-1, -2) @ Vxx @ AB
            Qv = Qv + (AB.transpose(-1, -2) @ v.unsqueeze(-1)).squeeze(-1)
        Qxx, Qxu, Qux, Quu = Q[:, :n, :n], Q[:, :n, n:], Q[:, n:, :n], Q[:, n:, n:]
        qx, qu = Qv[:, :n], Qv[:, n:]
        Quu_reg = Quu if reg is None else Quu + reg[:, None, None] * eye
        free = torch.ones(batch, m, dtype=torch.bool) if pinned is None else ~pinned[t]
        if lower is not None:
            k, free = box_qp(0.5 * (Quu_reg + Quu_reg.transpose(-1, -2)), qu, lower[t], upper[t])
        both = free.unsqueeze(-1) & free.unsqueeze(-2)
        M = torch.where(both, Quu_reg, eye)
        rhs = torch.cat([torch.where(free, qu, 0.0).unsqueeze(-1), torch.where(free[:, :, None], Qux, 0.0)], -1)
        sol = torch.linalg.solve(M, rhs)
        K = -sol[..., 1:]
        if lower is None:
            k = -sol[..., 0]
        Kt = K.transpose(-1, -2)
        Vx = qx + (Kt @ (Quu @ k.unsqueeze(-1) + qu.unsqueeze(-1))).squeeze(-1) + (Qxu @ k.unsqueeze(-1)).squeeze(-1)
        Vxx = Qxx + Kt @ Quu @ K + Kt @ Qux + Qxu @ K
        Vxx = 0.5 * (Vxx + Vxx.transpose(-1, -2))
        for key, value in zip(out, (K, k, Vx, Vxx, free, qu, Quu)):
            out[key].insert(0, value)
    K, k, Vx, Vxx, free, qu, Quu = (torch.stack(v) for v in out.values())
    expected_quadratic = 0.5 * (k * (Quu @ k.unsqueeze(-1)).squeeze(-1)).sum((0, 2))
    return K, k, Vx, Vxx, free, (k * qu).sum((0, 2)), expected_quadratic


def random_step_problem(seed, bounded, pinned, defects, reg):
    g = torch.Generator().manual_seed(seed)
    T, batch, n, m = 2 + seed % 5, 6, 1 + seed % 4, 1 + seed % 3
    N = n + m
    L = torch.randn(T, batch, N, N, generator=g, dtype=DT)
    H = L @ L.transpose(-1, -2) / N + 0.1 * torch.eye(N, dtype=DT)
    q = torch.randn(T, batch, N, generator=g, dtype=DT)
    A = torch.randn(T - 1, batch, n, n, generator=g, dtype=DT) / math.sqrt(n)
    Bu = torch.randn(T - 1, batch, n, m, generator=g, dtype=DT)
    kwargs = {}
    if defects:
        kwargs["d"] = torch.randn(T - 1, batch, n, generator=g, dtype=DT)
    if bounded:  # bounds at least 0.05 from the nominal controls
        kwargs["lower"] = -0.05 - 0.3 * torch.rand(T, batch, m, generator=g, dtype=DT)
        kwargs["upper"] = 0.05 + 0.3 * torch.rand(T, batch, m, generator=g, dtype=DT)
    if pinned:
        kwargs["pinned"] = torch.rand(T, batch, m, generator=g) < 0.3
    if reg:
        kwargs["reg"] = torch.rand(batch, generator=g, dtype=DT) * (seed % 2)
    return (H, q, A, Bu), kwargs


@pytest.mark.parametrize(
    "bounded, pinned, defects, reg",
    [(False, False, False, False), (True, False, False, True), (True, False, True, False), (False, True, True, False)],
)
def test_riccati_matches_blockwise_reference(bounded, pinned, defects, reg):
    for seed in range(12):
        args, kwargs = random_step_problem(seed, bounded, pinned, defects, reg)
        fast = riccati(*args, **kwargs)
        ref = reference_riccati(*args, **kwargs)
        assert not bool(fast.indefinite.any())
        assert torch.equal(fast.free, ref[4])
        for name, expected in zip(("K", "k", "Vx", "Vxx"), ref[:4]):
            torch.testing.assert_close(getattr(fast, name), expected, rtol=1e-12, atol=1e-12, msg=name)
        torch.testing.assert_close(fast.expected_linear, ref[5], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fast.expected_quadratic, ref[6], rtol=1e-12, atol=1e-12)


def test_riccati_flags_indefinite_samples():
    args, kwargs = random_step_problem(3, True, False, False, False)
    H = args[0].clone()
    H[-1, 2, -1, -1] = -50.0  # the last control's curvature at the last step, sample 2
    assert riccati(H, *args[1:], **kwargs).indefinite.tolist() == [False, False, True, False, False, False]


def reference_derivatives(dynamics, cost, X, U, costates):
    """``q, A, Bu, H_cost, H_newton`` by ``torch.func.jacrev`` of the batch-summed functions."""
    T, batch, n = X.shape
    N = n + U.shape[-1]
    Z = torch.cat([X, U], -1).reshape(T * batch, N)

    def summed(Z):
        return torch.cat([dynamics(Z[:, :n], Z[:, n:]).sum(0), cost(Z[:, :n], Z[:, n:]).sum().reshape(1)])

    jac = jacrev(summed)(Z).reshape(n + 1, T, batch, N)
    AB = jac[:n, :-1].permute(1, 2, 0, 3)
    weights = torch.cat([costates[1:], torch.zeros_like(costates[:1])]).reshape(T * batch, n)

    def lagrangian(Z):
        return cost(Z[:, :n], Z[:, n:]).sum() + (weights * dynamics(Z[:, :n], Z[:, n:])).sum()

    def hessian(fn):
        return jacrev(lambda Z: torch.func.grad(fn)(Z).sum(0))(Z).reshape(N, T, batch, N).permute(1, 2, 0, 3)

    H_cost = hessian(lambda Z: cost(Z[:, :n], Z[:, n:]).sum())
    return jac[n], AB[..., :n], AB[..., n:], H_cost, hessian(lagrangian)


def test_stacked_copy_derivatives_match_jacrev():
    g = torch.Generator().manual_seed(0)
    T, batch, n, m = 5, 4, 3, 2
    W = torch.randn(n + m, n, generator=g, dtype=DT) / 2

    def dynamics(x, u):
        return torch.tanh(torch.cat([x, u], -1) @ W) + x * u[:, :1].cos()

    def cost(x, u):
        return (x**2).sum(-1) + (x[:, 0] * u[:, 1]).sin() + 0.1 * (u**4).sum(-1)

    X = torch.randn(T, batch, n, generator=g, dtype=DT)
    U = torch.randn(T, batch, m, generator=g, dtype=DT)
    lam = torch.randn(T, batch, n, generator=g, dtype=DT)
    model = NonlinearModel(dynamics, cost, n, m)
    q, A, Bu = model.first_order(X, U)
    H_cost, H_newton = model.hessians(X, U, lam)
    (H_gn,) = model.hessians(X, U)
    for got, expected in zip((q, A, Bu, H_cost, H_newton, H_gn), reference_derivatives(dynamics, cost, X, U, lam)):
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_stacked_copy_derivatives_keep_the_graph_in_grad_mode():
    """The unrolled adjoint differentiates through the derivatives: they carry a graph to the parameters
    and the costates."""
    p = torch.tensor(0.7, dtype=DT, requires_grad=True)
    model = NonlinearModel(lambda x, u: p * torch.sin(x) + u, lambda x, u: (x**2).sum(-1) + (u**2).sum(-1), 1, 1)
    X = torch.full((2, 3, 1), 0.3, dtype=DT)
    U = torch.zeros(2, 3, 1, dtype=DT)
    scale = torch.tensor(1.0, dtype=DT, requires_grad=True)  # the costates, lambda = scale
    _, A, _ = model.first_order(X, U)
    _, H_newton = model.hessians(X, U, scale * torch.ones(2, 3, 1, dtype=DT))
    (dA,) = torch.autograd.grad(A.sum(), p)
    dH = torch.autograd.grad(H_newton.sum(), (p, scale))
    torch.testing.assert_close(dA, 3 * math.cos(0.3) * torch.ones((), dtype=DT))
    torch.testing.assert_close(dH[0], -3 * math.sin(0.3) * torch.ones((), dtype=DT))
    torch.testing.assert_close(dH[1], -3 * 0.7 * math.sin(0.3) * torch.ones((), dtype=DT))
