"""Every forward solver x adjoint x closed-form problem: solution to tolerance and exact gradients."""

import pytest
import torch

from idplan.solvers import (
    CG,
    GMRES,
    Anderson,
    Broyden,
    CGNormal,
    ForwardIteration,
    ImplicitAdjoint,
    Newton,
    PhantomAdjoint,
    UnrolledAdjoint,
    argmin,
    fixed_point,
    root_find,
)

from . import problems

ENTRY = {"fixed_point": fixed_point, "root_find": root_find, "argmin": argmin}

FIXED_POINT_SOLVERS = [ForwardIteration(), ForwardIteration(damping=0.8), Anderson(), Broyden(), Newton()]
ROOT_SOLVERS = [Newton(), Broyden()]
FIXED_POINT_LINEAR = [ForwardIteration(), Anderson(), Broyden(), GMRES(restart=5), CGNormal()]
ROOT_LINEAR = [GMRES(restart=5), CGNormal(), Broyden()]
ARGMIN_LINEAR = [CG(), GMRES(restart=5), CGNormal()]

CASES = (
    [(problems.linear, s, lin) for s in FIXED_POINT_SOLVERS for lin in FIXED_POINT_LINEAR]
    + [(problems.cosine, s, lin) for s in FIXED_POINT_SOLVERS for lin in FIXED_POINT_LINEAR]
    + [(problems.kepler, s, lin) for s in ROOT_SOLVERS for lin in ROOT_LINEAR]
    + [(problems.quadratic, s, lin) for s in ROOT_SOLVERS for lin in ARGMIN_LINEAR]
)


def _solve(problem, solver, adjoint, *params):
    return ENTRY[problem.kind](
        problem.fn, problem.z0(), params, solver=solver, adjoint=adjoint, max_iter=500, atol=1e-13, rtol=1e-13
    )


def _case_id(case):
    make, solver, linear = case
    return f"{make.__name__}-{type(solver).__name__}{'' if solver == type(solver)() else '*'}-{type(linear).__name__}"


@pytest.mark.parametrize("case", CASES, ids=[_case_id(c) for c in CASES])
def test_implicit_gradient_matches_closed_form(case):
    make, solver, linear = case
    problem = make()
    adjoint = ImplicitAdjoint(linear_solver=linear, max_iter=200, atol=1e-14, rtol=1e-13)
    sol = _solve(problem, solver, adjoint, *problem.params)
    exact = problem.exact(*problem.params)
    assert sol.converged
    torch.testing.assert_close(sol.value, exact, atol=1e-10, rtol=1e-10)

    weights = torch.linspace(-1, 1, exact.numel(), dtype=problems.DT).reshape(exact.shape)
    grads = torch.autograd.grad((sol.value * weights).sum(), problem.params)
    expected = torch.autograd.grad((exact * weights).sum(), problem.params)
    for got, want in zip(grads, expected):
        torch.testing.assert_close(got, want, atol=1e-8, rtol=1e-7)
    assert sol.backward.calls == 1 and bool(sol.backward.converged.all())


@pytest.mark.parametrize("make", [problems.linear, problems.cosine, problems.kepler, problems.quadratic])
def test_unrolled_equals_implicit(make):
    problem = make()
    solver = Newton() if problem.kind != "fixed_point" else ForwardIteration()
    implicit = _solve(problem, solver, ImplicitAdjoint(max_iter=200, atol=1e-14, rtol=1e-13), *problem.params)
    unrolled = _solve(problem, solver, UnrolledAdjoint(), *problem.params)
    g_imp = torch.autograd.grad(implicit.value.sum(), problem.params)
    g_unr = torch.autograd.grad(unrolled.value.sum(), problem.params)
    for a, b in zip(g_imp, g_unr):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("solver", [ForwardIteration(), Anderson(), Broyden()])
def test_unrolled_through_each_solver_on_linear(solver):
    problem = problems.linear()
    sol = _solve(problem, solver, UnrolledAdjoint(), *problem.params)
    exact = problem.exact(*problem.params)
    for a, b in zip(
        torch.autograd.grad(sol.value.sum(), problem.params), torch.autograd.grad(exact.sum(), problem.params)
    ):
        torch.testing.assert_close(a, b, atol=1e-8, rtol=1e-7)


@pytest.mark.parametrize("make", [problems.linear, problems.cosine, problems.kepler, problems.quadratic])
def test_gradcheck_finite_differences(make):
    problem = make()
    solver = Newton() if problem.kind != "fixed_point" else Anderson()
    adjoint = ImplicitAdjoint(linear_solver="gmres", max_iter=100, atol=1e-14, rtol=1e-13)
    params = tuple(p.detach().clone().requires_grad_() for p in problem.params)
    if problem.name == "quadratic":  # keep Q symmetric under the finite-difference probes

        def fn(m, c):
            return _solve(problem, solver, adjoint, 0.5 * (m + m.transpose(1, 2)), c).value
    else:

        def fn(*p):
            return _solve(problem, solver, adjoint, *p).value

    assert torch.autograd.gradcheck(fn, params, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_phantom_gradient_converges_to_implicit_with_many_steps():
    problem = problems.linear()
    exact = problem.exact(*problem.params)
    want = torch.autograd.grad(exact.sum(), problem.params)
    long = _solve(problem, Anderson(), PhantomAdjoint(steps=80), *problem.params)
    for a, b in zip(torch.autograd.grad(long.value.sum(), problem.params), want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)
    one = _solve(problem, Anderson(), PhantomAdjoint(steps=1), *problem.params)
    g_one = torch.autograd.grad(one.value.sum(), problem.params)[1]
    # one step drops the (I - A)^{-1} factor: d/db of f(z*) is I, not (I - A)^{-1}
    torch.testing.assert_close(g_one, torch.ones_like(g_one))


def test_tuple_state_gradients_match_unrolled():
    g = torch.Generator().manual_seed(3)
    w = (0.3 * torch.randn(5, 5, generator=g, dtype=problems.DT)).requires_grad_()
    x = torch.randn(2, 5, generator=g, dtype=problems.DT).requires_grad_()

    def lstm_like(state, p):
        h, c = state
        w, x = p
        c_new = 0.5 * c + 0.3 * torch.tanh(h @ w + x)
        return torch.tanh(c_new) * 0.8, c_new

    z0 = (torch.zeros(2, 5, dtype=problems.DT), torch.zeros(2, 5, dtype=problems.DT))
    kw = dict(max_iter=500, atol=1e-13, rtol=1e-13)
    imp = fixed_point(
        lstm_like, z0, (w, x), solver="anderson", adjoint=ImplicitAdjoint(max_iter=100, atol=1e-14, rtol=1e-13), **kw
    )
    unr = fixed_point(lstm_like, z0, (w, x), solver="forward", adjoint="unrolled", **kw)
    assert isinstance(imp.value, tuple) and len(imp.value) == 2
    h, c = imp.value
    torch.testing.assert_close(lstm_like(imp.value, (w, x))[1], c, atol=1e-11, rtol=0)
    loss_i = (imp.value[0] ** 2).sum() + imp.value[1].sum()
    loss_u = (unr.value[0] ** 2).sum() + unr.value[1].sum()
    for a, b in zip(torch.autograd.grad(loss_i, (w, x)), torch.autograd.grad(loss_u, (w, x))):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-8)


def test_float32_anderson_and_gradient():
    problem = problems.linear(batch=4, n=16)
    a, b = (p.detach().float().requires_grad_() for p in problem.params)
    sol = fixed_point(problem.fn, torch.zeros(4, 16), (a, b), solver=Anderson(), rtol=1e-5)
    assert sol.converged and sol.value.dtype == torch.float32
    (g,) = torch.autograd.grad(sol.value.sum(), b)
    (want,) = torch.autograd.grad(problem.exact(a.double(), b.double()).sum(), b)
    torch.testing.assert_close(g.double(), want.double(), atol=1e-3, rtol=1e-3)
