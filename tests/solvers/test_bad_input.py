"""Problems and inputs that used to give a wrong answer silently, a NaN, or a torch traceback.

Each asserts the error type and that the message names the problem, or that the answer is now right.
"""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from idplan.solvers import (
    ConvergenceError,
    ImplicitAdjoint,
    NonConvergenceWarning,
    argmin,
    backward_euler,
    dare,
    default_tolerances,
    fixed_point,
    ilqr,
    lqr,
    root_find,
)

DT = torch.float64


# ---------------------------------------------------------------- DARE on marginally stable systems
def _dK_dA(A, B, **options):
    A = A.clone().requires_grad_()
    dare(A, B, torch.eye(2, dtype=DT)[None], torch.eye(1, dtype=DT)[None], **options).K.sum().backward()
    return A.grad


def _dK_dA_finite_differences(A, B, h=1e-6):
    Q, R = torch.eye(2, dtype=DT)[None], torch.eye(1, dtype=DT)[None]
    grad = torch.zeros_like(A)
    for i in range(2):
        for j in range(2):
            step = torch.zeros_like(A)
            step[0, i, j] = h
            grad[0, i, j] = (dare(A + step, B, Q, R).K.sum() - dare(A - step, B, Q, R).K.sum()) / (2 * h)
    return grad


@pytest.mark.parametrize(
    "A",
    [[[1.0, 0.1], [0.0, 1.0]], [[1.0, 0.1], [-0.1, 0.99]]],
    ids=["double_integrator", "damped_spring"],
)
def test_dare_gradient_is_exact_on_marginally_stable_systems(A):
    A = torch.tensor([A], dtype=DT)
    B = torch.tensor([[[0.0], [0.1]]], dtype=DT)
    reference = _dK_dA_finite_differences(A, B)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NonConvergenceWarning)
        for options in ({}, {"adjoint": ImplicitAdjoint(linear_solver="dense")}, {"adjoint": "unrolled"}):
            grad = _dK_dA(A, B, **options)
            assert torch.allclose(grad, reference, rtol=1e-5, atol=1e-6), (options, grad, reference)


def test_dare_adjoint_that_misses_its_tolerance_raises_unless_given_a_budget():
    A = torch.tensor([[[1.0, 0.1], [0.0, 1.0]]], dtype=DT, requires_grad=True)
    B = torch.tensor([[[0.0], [0.1]]], dtype=DT)
    Q, R = torch.eye(2, dtype=DT)[None], torch.eye(1, dtype=DT)[None]
    sol = dare(A, B, Q, R, adjoint=ImplicitAdjoint(linear_solver="forward"))  # Picard on the Stein operator diverges
    with pytest.raises(ConvergenceError, match="backward.*not be exact"):
        sol.K.sum().backward()
    sol = dare(A, B, Q, R, adjoint=ImplicitAdjoint(linear_solver="forward", max_iter=3))
    with pytest.warns(NonConvergenceWarning, match="backward"):
        sol.K.sum().backward()


# ---------------------------------------------------------------- the implicit adjoint's default
def _noncontracting_solution(adjoint):
    W = (torch.randn(5, 5, generator=torch.Generator().manual_seed(0)).to(DT) * 2.0).requires_grad_()
    sol = fixed_point(
        lambda z, a: torch.tanh(z @ W.T), torch.ones(2, 5, dtype=DT), solver="anderson", adjoint=adjoint, max_iter=300
    )
    return sol, W


def test_an_adjoint_solved_to_tolerance_raises_when_it_misses_it():
    sol, W = _noncontracting_solution(ImplicitAdjoint(linear_solver="forward"))  # J has a norm above 1
    with pytest.raises(ConvergenceError, match="backward \\(adjoint\\) solve failed.*not be exact"):
        sol.value.sum().backward()
    assert W.grad is None


def test_an_adjoint_with_a_chosen_budget_warns_and_reports():
    sol, W = _noncontracting_solution(ImplicitAdjoint(linear_solver="forward", max_iter=5))
    with pytest.warns(NonConvergenceWarning, match="backward"):
        sol.value.sum().backward()
    assert not bool(sol.backward.converged.all())


def test_implicit_adjoint_refuses_a_bad_budget():
    for bad in (0, -3, 2.5):
        with pytest.raises(ValueError, match="max_iter"):
            ImplicitAdjoint(max_iter=bad)


# ---------------------------------------------------------------- flagged samples and shared parameters
def _shared_parameter_argmin(k):
    s = torch.tensor(1.0, dtype=DT, requires_grad=True)

    def score(y, k):
        return (0.5 * (y - 1) ** 2 + torch.exp(s * k * y)).sum(-1)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NonConvergenceWarning)
        sol = argmin(score, torch.ones(k.shape[0], 1, dtype=DT), k, throw=False)
    sol.value[0].sum().backward()
    return sol, s.grad


def test_an_overflowing_sample_leaves_shared_parameters_finite():
    sol, grad = _shared_parameter_argmin(torch.tensor([[1.0], [1000.0]], dtype=DT))
    assert sol.stats.nonfinite.tolist() == [False, True]
    _, alone = _shared_parameter_argmin(torch.tensor([[1.0]], dtype=DT))  # sample 0 by itself
    assert torch.isfinite(grad) and torch.allclose(grad, alone)
    assert torch.allclose(grad, torch.tensor(-0.5, dtype=DT))  # dy*/ds = -(e^{sy}(1+sy))/(1+s^2 e^{sy}) at y*=0


def test_an_overflowing_sample_of_a_fixed_point_leaves_shared_parameters_finite():
    w = torch.tensor(0.5, dtype=DT, requires_grad=True)
    k = torch.tensor([[1.0], [800.0]], dtype=DT)
    with pytest.warns(NonConvergenceWarning):
        sol = fixed_point(lambda z, k: w * z + torch.exp(k) - 1, torch.zeros(2, 1, dtype=DT), k, throw=False)
    sol.value[0].sum().backward()  # z* = (e - 1) / (1 - w): dz*/dw = (e - 1) / (1 - w)^2
    assert torch.allclose(w.grad, torch.tensor((torch.e - 1) / 0.25, dtype=DT), rtol=1e-4)


# ---------------------------------------------------------------- argmin: minima only
@pytest.mark.parametrize(
    "score, name",
    [(lambda y, a: -(y**2).sum(-1), "maximum"), (lambda y, a: (y**3).sum(-1), "inflection")],
)
@pytest.mark.parametrize("start", [0.0, 1.0])
def test_argmin_refuses_a_maximum_or_an_inflection(score, name, start):
    y0 = torch.full((1, 1), start, dtype=DT)
    with pytest.raises(ConvergenceError, match="not a minimum"):
        argmin(score, y0)
    with pytest.warns(NonConvergenceWarning, match="not a minimum"):
        sol = argmin(score, y0, throw=False)
    assert sol.stats.not_minimum.tolist() == [True] and not sol.converged


def test_argmin_refuses_a_saddle_and_keeps_the_minimum_beside_it():
    a = torch.tensor([[1.0], [-1.0]], dtype=DT, requires_grad=True)  # sample 1: y0^2 - y1^2, a saddle

    def score(y, a):
        return y[:, 0] ** 2 + a[:, 0] * y[:, 1] ** 2 + (y * a).sum(-1)

    with pytest.warns(NonConvergenceWarning, match=r"not a minimum.*samples \[1\]"):
        sol = argmin(score, torch.zeros(2, 2, dtype=DT), a, throw=False)
    assert sol.stats.converged.tolist() == [True, False]
    sol.value.sum().backward()
    h = 1e-6
    plus = argmin(score, torch.zeros(1, 2, dtype=DT), torch.tensor([[1.0 + h]], dtype=DT)).value.sum()
    minus = argmin(score, torch.zeros(1, 2, dtype=DT), torch.tensor([[1.0 - h]], dtype=DT)).value.sum()
    assert torch.allclose(a.grad[0, 0], (plus - minus) / (2 * h), atol=1e-6)
    assert a.grad[1, 0] == 0  # the flagged saddle contributes nothing


def test_argmin_accepts_a_minimum_with_small_curvature():
    sol = argmin(lambda y, a: (1e-4 * y**2 + y**4).sum(-1), torch.ones(3, 2, dtype=DT))
    assert sol.converged and not bool(sol.stats.not_minimum.any())


def test_argmin_of_a_linear_score_is_a_value_error():
    with pytest.raises(ValueError, match="linear in y"):
        argmin(lambda y, a: (3.0 * y).sum(-1), torch.ones(2, 1, dtype=DT))
    with pytest.raises(ValueError, match="does not depend on y"):
        argmin(lambda y, a: a.sum(-1), torch.ones(2, 1, dtype=DT), torch.ones(2, 3, dtype=DT))


# ---------------------------------------------------------------- iLQR horizons and dtypes
def _dynamics(x, u):
    return x + 0.1 * torch.cat([x[:, 1:], u], 1)


def _cost(x, u):
    return (x**2).sum(1) + ((u - x[:, :1]) ** 2).sum(1)


@pytest.mark.parametrize("adjoint", ["riccati", "last_layer", "unrolled"])
def test_ilqr_solves_a_horizon_of_one(adjoint):
    x0 = torch.tensor([[1.0, 2.0], [-0.5, 0.3]], dtype=DT, requires_grad=True)
    sol = ilqr(_dynamics, _cost, x0, torch.zeros(1, 2, 1, dtype=DT), adjoint=adjoint)
    # one step: minimise (u - x_0)^2, so u* = x_0[:, 0] and du*/dx0 = e_0
    assert torch.allclose(sol.u[0, :, 0], x0[:, 0].detach())
    sol.u.sum().backward()
    assert torch.allclose(x0.grad, torch.tensor([[1.0, 0.0], [1.0, 0.0]], dtype=DT))


def test_a_horizon_of_zero_is_a_value_error():
    x0 = torch.ones(2, 2, dtype=DT)
    with pytest.raises(ValueError, match="horizon T.*0"):
        ilqr(_dynamics, _cost, x0, torch.zeros(0, 2, 1, dtype=DT))
    N = 3
    with pytest.raises(ValueError, match="horizon T.*0"):
        lqr(
            x0,
            torch.zeros(0, 2, N, N, dtype=DT),
            torch.zeros(0, 2, N, dtype=DT),
            torch.zeros(0, 2, 2, N),
            torch.zeros(0, 2, 2),
        )


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_ilqr_refuses_half_precision(dtype):
    with pytest.raises(ValueError, match="float32 or float64"):
        ilqr(_dynamics, _cost, torch.ones(2, 2, dtype=dtype), torch.zeros(3, 2, 1, dtype=dtype))


# ---------------------------------------------------------------- default tolerances every dtype reaches
def test_default_tolerances_follow_the_dtype():
    assert default_tolerances(torch.float64) == (1e-10, 1e-8)
    atol, rtol = default_tolerances(torch.float32)
    assert 1e-6 < rtol < 1e-4 and atol < rtol


def test_float32_root_find_and_argmin_converge_on_their_defaults():
    a = torch.tensor([[2.0], [3.0], [4.0]])
    assert torch.allclose(root_find(lambda z, a: z**2 - a, torch.ones(3, 1), a).value, a.sqrt())
    assert torch.allclose(argmin(lambda y, a: ((y - a) ** 4 + (y - a) ** 2).sum(-1), torch.zeros(3, 1), a).value, a)


def test_float32_backward_euler_runs_the_readme_example():
    theta = torch.tensor(0.5, requires_grad=True)
    traj = backward_euler(
        lambda x, th: -th * x + torch.sin(x), torch.ones(4, 2), dt=0.1, steps=20, args=theta, solver="forward"
    )
    traj.x[-1].sum().backward()
    assert torch.isfinite(theta.grad) and traj.x.dtype == torch.float32


# ---------------------------------------------------------------- property-based: the error names the field
@settings(max_examples=25, deadline=None)
@given(atol=st.floats(-1.0, 1.0), rtol=st.floats(-1.0, 1.0))
def test_bad_tolerances_are_named(atol, rtol):
    valid = atol >= 0 and rtol >= 0 and (atol > 0 or rtol > 0)
    call = lambda: root_find(lambda z, a: z - 1, torch.zeros(1, 1, dtype=DT), atol=atol, rtol=rtol)  # noqa: E731
    if valid:
        call()
    else:
        with pytest.raises(ValueError, match="tolerances"):
            call()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 3), m=st.integers(1, 3), wrong=st.sampled_from(["B", "Q", "R"]))
def test_dare_shape_errors_name_the_matrix(n, m, wrong):
    shapes = {"A": (1, n, n), "B": (1, n, m), "Q": (1, n, n), "R": (1, m, m)}
    shapes[wrong] = (1, n + 1, m + 2)
    A, B, Q, R = (torch.eye(*s[1:], dtype=DT).expand(s).clone() for s in shapes.values())
    with pytest.raises(ValueError, match=f"{wrong} must be"):
        dare(A, B, Q, R)


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(0, 3), min_size=1, max_size=3).filter(lambda s: s[0] == 0))
def test_an_empty_batch_is_named(shape):
    for entry in (fixed_point, root_find):
        with pytest.raises(ValueError, match="empty batch"):
            entry(lambda z, a: z, torch.zeros(*shape, dtype=DT))


def test_printing_a_solution_shows_a_summary():
    sol = root_find(lambda z, a: z**2 - 2, torch.ones(1000, 1, dtype=DT))
    text = repr(sol)
    assert "1000/1000 converged" in text and len(text) < 300
