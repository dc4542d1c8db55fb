"""LQR and iLQR: against dense references, finite differences and unrolled autodiff (float64)."""

import math
import warnings

import pytest
import torch

from idplan.solvers import GMRES, ImplicitAdjoint, NonConvergenceWarning, box_qp, ilqr, lqr, trajectory_jacobian

DT = torch.float64


def random_lq(T, batch, n, m, seed):
    g = torch.Generator().manual_seed(seed)
    N = n + m
    L = torch.randn(T, batch, N, N, generator=g, dtype=DT)
    C = L @ L.transpose(-1, -2) / N + 0.5 * torch.eye(N, dtype=DT)
    c = torch.randn(T, batch, N, generator=g, dtype=DT)
    F = torch.randn(T - 1, batch, n, N, generator=g, dtype=DT) / math.sqrt(N)
    f = torch.randn(T - 1, batch, n, generator=g, dtype=DT) * 0.1
    x0 = torch.randn(batch, n, generator=g, dtype=DT)
    return x0, C, c, F, f


def condensed(x0, C, c, F, f):
    """The LQ problem as a dense QP in U for one sample: X = S + M U; returns (G, h, S, M)."""
    T, N = C.shape[0], C.shape[-1]
    n = F.shape[-2]
    m = N - n
    S = [x0]
    M = [torch.zeros(n, T * m, dtype=DT)]
    for t in range(T - 1):
        A, Bu = F[t, :, :n], F[t, :, n:]
        S.append(A @ S[-1] + f[t])
        Mt = A @ M[-1]
        Mt[:, t * m : (t + 1) * m] += Bu
        M.append(Mt)
    G = torch.zeros(T * m, T * m, dtype=DT)
    h = torch.zeros(T * m, dtype=DT)
    for t in range(T):
        E = torch.zeros(m, T * m, dtype=DT)
        E[:, t * m : (t + 1) * m] = torch.eye(m, dtype=DT)
        P = torch.cat([M[t], E])  # tau_t = [S_t; 0] + P U
        s = torch.cat([S[t], torch.zeros(m, dtype=DT)])
        G += P.T @ C[t] @ P
        h += P.T @ (C[t] @ s + c[t])
    return G, h, torch.stack(S), torch.stack(M)


def projected_gradient(G, h, lo, hi, iters=20000):
    step = 1.0 / float(torch.linalg.eigvalsh(G).max())
    u = torch.zeros_like(h)
    for _ in range(iters):
        u = torch.clamp(u - step * (G @ u + h), lo, hi)
    return u


def test_unbounded_lqr_matches_dense_kkt():
    T, batch, n, m = 6, 3, 3, 2
    x0, C, c, F, f = random_lq(T, batch, n, m, 0)
    sol = lqr(x0, C, c, F, f)
    assert bool(sol.stats.converged.all()) and int(sol.stats.iterations.max()) <= 2
    for b in range(batch):
        G, h, S, M = condensed(x0[b], C[:, b], c[:, b], F[:, b], f[:, b])
        u = torch.linalg.solve(G, -h)
        torch.testing.assert_close(sol.u[:, b].reshape(-1), u, rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(sol.x[:, b], S + M @ u, rtol=1e-10, atol=1e-10)


def test_bounded_lqr_matches_dense_qp_and_reports_active_bounds():
    T, batch, n, m = 5, 4, 2, 2
    x0, C, c, F, f = random_lq(T, batch, n, m, 1)
    c = c * 4  # push the unconstrained optimum outside the box
    lo, hi = -0.3, 0.5
    sol = lqr(x0, C, c, F, f, lower=lo, upper=hi)
    assert bool(sol.stats.converged.all())
    active = ((sol.u - lo).abs() < 1e-9) | ((sol.u - hi).abs() < 1e-9)
    assert 0 < int(active.sum()) < active.numel()  # some bounds active, some free: both cases exercised
    for b in range(batch):
        G, h, _, _ = condensed(x0[b], C[:, b], c[:, b], F[:, b], f[:, b])
        u = projected_gradient(G, h, lo, hi)
        torch.testing.assert_close(sol.u[:, b].reshape(-1), u, rtol=1e-7, atol=1e-7)


def test_box_qp_matches_projected_gradient():
    g = torch.Generator().manual_seed(3)
    L = torch.randn(8, 4, 4, generator=g, dtype=DT)
    H = L @ L.transpose(-1, -2) + 0.1 * torch.eye(4, dtype=DT)
    q = torch.randn(8, 4, generator=g, dtype=DT) * 3
    lo, hi = -torch.ones(8, 4, dtype=DT), torch.ones(8, 4, dtype=DT)
    x, free = box_qp(H, q, lo, hi)
    for b in range(8):
        ref = projected_gradient(H[b], q[b], lo[b], hi[b], iters=50000)
        torch.testing.assert_close(x[b], ref, rtol=1e-7, atol=1e-7)
    assert bool((free == ((x > -1) & (x < 1))).all())


def test_lqr_gradients_match_finite_differences_with_bounds():
    T, batch, n, m = 4, 2, 2, 1
    x0, C, c, F, f = random_lq(T, batch, n, m, 4)
    c = c * 3
    weights = torch.randn(T, batch, m, generator=torch.Generator().manual_seed(5), dtype=DT)

    def loss(c_, x0_):
        return (lqr(x0_, C, c_, F, f, lower=-0.4, upper=0.4).u * weights).sum()

    sol = lqr(x0, C, c, F, f, lower=-0.4, upper=0.4)
    assert 0 < int(((sol.u.abs() - 0.4).abs() < 1e-9).sum()) < sol.u.numel()
    torch.autograd.gradcheck(loss, (c.clone().requires_grad_(), x0.clone().requires_grad_()), eps=1e-6, atol=1e-6)


def test_ilqr_on_linear_quadratic_problem_equals_lqr_in_one_step():
    T, batch, n, m = 5, 3, 3, 1
    x0, C, c, F, f = random_lq(T, batch, n, m, 6)
    A, Bu = F[0, 0, :, :n], F[0, 0, :, n:]  # one time-invariant system for all
    Q = C[0, 0]

    def dynamics(x, u):
        return x @ A.T + u @ Bu.T + f[0, 0]

    def cost(x, u):
        tau = torch.cat([x, u], -1)
        return 0.5 * (tau * (tau @ Q)).sum(-1) + (tau * c[0, 0]).sum(-1)

    sol = ilqr(dynamics, cost, x0, torch.zeros(T, batch, m, dtype=DT), hessian="gauss_newton")
    ref = lqr(
        x0,
        Q.expand(T, batch, n + m, n + m),
        c[0, 0].expand(T, batch, n + m),
        torch.cat([A, Bu], 1).expand(T - 1, batch, n, n + m),
        f[0, 0].expand(T - 1, batch, n),
    )
    torch.testing.assert_close(sol.u, ref.u, rtol=1e-10, atol=1e-10)
    assert int(sol.stats.iterations.max()) == 2  # one step, then a zero step confirms the fixed point


def pendulum_problem(batch=6, T=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    theta = torch.rand(batch, generator=g, dtype=DT) * 2 * math.pi - math.pi
    x0 = torch.stack([theta.cos(), theta.sin(), torch.randn(batch, generator=g, dtype=DT)], -1)
    params = torch.tensor([10.0, 1.0, 1.0], dtype=DT)  # g, m, l

    def dynamics(x, u, p=params, dt=0.05):
        th = torch.atan2(x[..., 1], x[..., 0])
        dth = x[..., 2] + dt * (3 * p[0] / (2 * p[2]) * torch.sin(th) + 3 * u[..., 0] / (p[1] * p[2] ** 2))
        th = th + dt * dth
        return torch.stack([th.cos(), th.sin(), dth], -1)

    def cost(x, u):
        return (x[..., 0] - 1) ** 2 + x[..., 1] ** 2 + 0.1 * x[..., 2] ** 2 + 0.001 * u[..., 0] ** 2

    return dynamics, cost, x0, torch.zeros(T, batch, 1, dtype=DT), params


@pytest.mark.parametrize("bounds", [{}, {"lower": -2.0, "upper": 2.0}])
def test_ilqr_implicit_gradient_matches_finite_differences_and_unrolled(bounds):
    dynamics, cost, x0, u0, params = pendulum_problem()
    weights = torch.randn(*u0.shape, generator=torch.Generator().manual_seed(1), dtype=DT)
    p = params.clone().requires_grad_()
    sol = ilqr(lambda x, u: dynamics(x, u, p), cost, x0, u0, **bounds)
    assert bool(sol.stats.converged.all())
    (sol.u * weights).sum().backward()
    assert sol.backward.calls == 1 and float(sol.backward.rel_residual.max()) < 1e-10

    def loss(pp):
        with torch.no_grad():
            return float((ilqr(lambda x, u: dynamics(x, u, pp), cost, x0, u0, **bounds).u * weights).sum())

    eps = 1e-5
    fd = torch.tensor(
        [(loss(params + eps * e) - loss(params - eps * e)) / (2 * eps) for e in torch.eye(3, dtype=DT)], dtype=DT
    )
    torch.testing.assert_close(p.grad, fd, rtol=1e-6, atol=1e-7)

    p_unrolled = params.clone().requires_grad_()
    sol_u = ilqr(lambda x, u: dynamics(x, u, p_unrolled), cost, x0, u0, adjoint="unrolled", **bounds)
    (sol_u.u * weights).sum().backward()
    torch.testing.assert_close(p.grad, p_unrolled.grad, rtol=1e-8, atol=1e-9)


def test_gmres_adjoint_agrees_with_riccati_adjoint():
    dynamics, cost, x0, u0, _ = pendulum_problem(batch=3, T=5)
    grads = []
    krylov = ImplicitAdjoint(linear_solver=GMRES(restart=40), max_iter=200, rtol=1e-12)
    for adjoint in ("riccati", krylov):  # 35 unknowns per sample: one Krylov cycle is exact
        x = x0.clone().requires_grad_()
        sol = ilqr(dynamics, cost, x, u0, adjoint=adjoint)
        sol.u.sum().backward()
        grads.append(x.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-6, atol=1e-8)


def test_paper_worked_example():
    """DiLQR appendix A.4.2: cost theta * sum x^4 + u^2, x' = A x + B u, x0 = [1, 1], one free control.

    The implicit du*/dtheta matches the closed form (39); the linearised cost coefficient
    c = 4 theta (x_1^1)^3 differentiated through the solution matches finite differences and (40),
    while the derivative that holds the trajectory fixed (37) does not.
    """
    A = torch.tensor([[1.0, 1.0], [0.0, 1.0]], dtype=DT)
    Bu = torch.tensor([[0.0], [1.0]], dtype=DT)
    x0 = torch.tensor([[1.0, 1.0]], dtype=DT)

    def solve(theta):
        return ilqr(
            lambda x, u: x @ A.T + u @ Bu.T,
            lambda x, u: theta * x.pow(4).sum(-1) + u.pow(2).sum(-1),
            x0,
            torch.zeros(2, 1, 1, dtype=DT),
        )

    theta = torch.tensor(0.7, dtype=DT, requires_grad=True)
    sol = solve(theta)
    u = float(sol.u[0, 0, 0].detach())
    assert abs(2 * u + 4 * 0.7 * (u + 1) ** 3) < 1e-12  # stationarity of u^2 + theta (u + 1)^4
    (du,) = torch.autograd.grad(sol.u[0, 0, 0], theta, retain_graph=True)
    assert abs(float(du) + 2 * (u + 1) ** 3 / (6 * 0.7 * (u + 1) ** 2 + 1)) < 1e-8

    x11 = sol.x[1, 0, 1]
    (dc_total,) = torch.autograd.grad(4 * theta * x11**3, theta)
    (dc_fixed,) = torch.autograd.grad(4 * theta * x11.detach() ** 3, theta)
    h = 1e-5
    with torch.no_grad():
        c_plus, c_minus = (
            4 * (0.7 + s) * float(solve(torch.tensor(0.7 + s, dtype=DT)).x[1, 0, 1]) ** 3 for s in (h, -h)
        )
    fd = (c_plus - c_minus) / (2 * h)
    closed_form = 4 * (u + 1) ** 3 - 24 * 0.7 * (u + 1) ** 5 / (6 * 0.7 * (u + 1) ** 2 + 1)
    assert abs(float(dc_total) - fd) < 1e-7 and abs(float(dc_total) - closed_form) < 1e-8
    assert abs(float(dc_fixed) - fd) > 0.1 * abs(fd)


def test_last_layer_gradient_is_approximate_on_nonlinear_dynamics():
    dynamics, cost, x0, u0, params = pendulum_problem(batch=4, T=8)
    grads = {}
    for mode, adjoint in (("implicit", "riccati"), ("last_layer", "last_layer")):
        p = params.clone().requires_grad_()
        sol = ilqr(lambda x, u, p=p: dynamics(x, u, p), cost, x0, u0, adjoint=adjoint)
        sol.u.sum().backward()
        grads[mode] = p.grad
    assert float((grads["implicit"] - grads["last_layer"]).norm()) > 1e-3 * float(grads["implicit"].norm())


def test_float32_gradients_are_not_silently_zero():
    dynamics, cost, x0, u0, params = pendulum_problem(batch=4, T=6)
    p = params.float().clone().requires_grad_()
    sol = ilqr(lambda x, u: dynamics(x, u, p), cost, x0.float(), u0.float(), lower=-2.0, upper=2.0)
    assert bool(sol.stats.converged.all())
    sol.u.sum().backward()
    ref = params.clone().requires_grad_()
    sol64 = ilqr(lambda x, u: dynamics(x, u, ref), cost, x0, u0, lower=-2.0, upper=2.0)
    sol64.u.sum().backward()
    assert float(p.grad.abs().max()) > 0
    torch.testing.assert_close(p.grad.double(), ref.grad, rtol=2e-3, atol=1e-4)


def test_bad_input_raises_clear_errors():
    dynamics, cost, x0, u0, _ = pendulum_problem(batch=2, T=4)
    with pytest.raises(ValueError, match="lower bound above upper bound"):
        ilqr(dynamics, cost, x0, u0, lower=1.0, upper=-1.0)
    with pytest.raises(ValueError, match="state dimension|dynamics"):
        ilqr(dynamics, cost, x0[:, :2], u0)
    with pytest.raises(ValueError, match="non-finite"):
        ilqr(lambda x, u: x * float("nan"), cost, x0, u0)
    with pytest.raises(ValueError, match="unknown adjoint 'magic'"):
        ilqr(dynamics, cost, x0, u0, adjoint="magic")
    with pytest.raises(ValueError, match="u_init"):
        ilqr(dynamics, cost, x0, u0[:, :1])


def test_unconverged_samples_are_reported():
    dynamics, cost, x0, u0, _ = pendulum_problem(batch=3, T=8)
    with pytest.warns(NonConvergenceWarning, match="did not converge"):
        sol = ilqr(dynamics, cost, x0, u0, max_iter=1)
    assert not bool(sol.stats.converged.all())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ilqr(dynamics, cost, x0, u0)  # converges: no warning


@pytest.mark.parametrize("bounds", [{}, {"lower": -2.0, "upper": 2.0}])
def test_trajectory_jacobian_matches_finite_differences_and_reverse_mode(bounds):
    dynamics, cost, x0, u0, params = pendulum_problem(batch=5, T=6)
    p = params.clone().requires_grad_()
    sol = ilqr(lambda x, u: dynamics(x, u, p), cost, x0, u0, **bounds)
    dX, dU = trajectory_jacobian(sol, p)
    assert dX.shape == (6, 5, 3, 3) and dU.shape == (6, 5, 1, 3)
    h = 1e-5
    for j in range(3):
        e = torch.zeros(3, dtype=DT)
        e[j] = h
        with torch.no_grad():
            plus = ilqr(lambda x, u, e=e: dynamics(x, u, params + e), cost, x0, u0, **bounds)
            minus = ilqr(lambda x, u, e=e: dynamics(x, u, params - e), cost, x0, u0, **bounds)
        torch.testing.assert_close(dU[..., j], (plus.u - minus.u) / (2 * h), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(dX[..., j], (plus.x - minus.x) / (2 * h), rtol=1e-5, atol=1e-7)
    weights = torch.randn(6, 5, 1, generator=torch.Generator().manual_seed(2), dtype=DT)
    (reverse,) = torch.autograd.grad((sol.u * weights).sum(), p)
    torch.testing.assert_close((dU * weights[..., None]).sum((0, 1, 2)), reverse, rtol=1e-9, atol=1e-11)
    x = x0.clone().requires_grad_()
    dX0, _ = trajectory_jacobian(ilqr(dynamics, cost, x, u0, **bounds), x)
    assert dX0.shape == (6, 5, 3, 5, 3)
    torch.testing.assert_close(dX0[0], torch.eye(5 * 3, dtype=DT).reshape(5, 3, 5, 3))  # x_0 = x_init


def test_trajectory_jacobian_through_active_bounds():
    T, batch, n, m = 4, 2, 2, 1
    x0, C, c, F, f = random_lq(T, batch, n, m, 4)
    c = c * 3
    bound = torch.tensor(0.4, dtype=DT, requires_grad=True)
    sol = lqr(x0, C, c, F, f, lower=-bound, upper=bound)
    assert 0 < int(((sol.u.abs() - 0.4).abs() < 1e-9).sum()) < sol.u.numel()
    dX, dU = trajectory_jacobian(sol, bound)
    h = 1e-6
    with torch.no_grad():
        plus, minus = (lqr(x0, C, c, F, f, lower=-(0.4 + s), upper=0.4 + s) for s in (h, -h))
    torch.testing.assert_close(dU, (plus.u - minus.u) / (2 * h), rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(dX, (plus.x - minus.x) / (2 * h), rtol=1e-6, atol=1e-8)
