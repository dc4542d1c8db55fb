"""Stopping, failure reporting, argument checking, memory and stats of the solver core."""

import pytest
import torch

from idplan.solvers import (
    Anderson,
    Broyden,
    ConvergenceError,
    ForwardIteration,
    ImplicitAdjoint,
    NonConvergenceWarning,
    UnrolledAdjoint,
    argmin,
    fixed_point,
    implicit_solution,
    jacobian_frobenius_sq,
    root_find,
)

from . import problems

DT = problems.DT


def scaled(z, rate):
    """``z = rate * z + 1``: converges at a per-sample speed set by ``rate`` ``[B, 1]``."""
    return rate * z + 1.0


@pytest.mark.parametrize("solver", [ForwardIteration(), Anderson(), Broyden()])
def test_each_sample_stops_at_its_own_iteration(solver):
    rate = torch.tensor([[0.1], [0.5], [0.9]], dtype=DT).expand(3, 4).contiguous()
    sol = fixed_point(scaled, torch.zeros(3, 4, dtype=DT), rate, solver=solver, rtol=1e-8, max_iter=500)
    stats = sol.stats
    assert sol.converged
    assert (stats.rel_residual <= 1e-8).all()
    if isinstance(solver, ForwardIteration):  # a slower contraction needs strictly more steps
        assert stats.iterations[0] < stats.iterations[1] < stats.iterations[2]
    # a converged sample is frozen: its residual history is constant after it stopped
    for b in range(3):
        k = int(stats.iterations[b])
        assert torch.all(stats.history[k:, b] == stats.history[k, b])
        assert stats.history[k - 1, b] > 1e-8 * sol.value[b].norm()


def test_forward_iteration_stops_exactly_when_tolerance_is_met():
    rate = torch.full((1, 1), 0.5, dtype=DT)
    sol = fixed_point(scaled, torch.zeros(1, 1, dtype=DT), rate, solver="forward", atol=1e-6, rtol=0.0)
    # residual after k steps from 0 is 0.5**k (z* = 2): the first k with 0.5**k <= 1e-6 is 20
    assert int(sol.stats.iterations[0]) == 20


def test_divergent_map_is_reported():
    f = lambda z, a: 2.0 * z + 1.0  # noqa: E731
    with pytest.raises(ConvergenceError, match="diverged") as info:
        fixed_point(f, torch.zeros(2, 3, dtype=DT), None, solver="forward", max_iter=100)
    assert info.value.stats.diverged.all()
    with pytest.warns(NonConvergenceWarning, match="diverged"):
        sol = fixed_point(f, torch.zeros(2, 3, dtype=DT), None, solver="forward", max_iter=100, throw=False)
    assert sol.stats.diverged.all() and not sol.converged
    assert torch.isfinite(sol.value).all()


def test_diverged_samples_get_a_zero_gradient():
    """``throw=False``: a sample whose residual diverged is kept at its best iterate, which is no
    fixed point, so it gets no implicit gradient (zero), while the converging one gets its exact one."""
    rate = torch.tensor([[0.5], [1.5]], dtype=DT, requires_grad=True)
    with pytest.warns(NonConvergenceWarning, match="diverged"):
        sol = fixed_point(scaled, torch.zeros(2, 1, dtype=DT), rate, solver="forward", throw=False)
    assert sol.stats.diverged.tolist() == [False, True]
    sol.value.sum().backward()
    # z* = 1 / (1 - a) at a = 0.5: dz*/da = 1 / (1 - a)^2 = 4
    assert rate.grad[0, 0].item() == pytest.approx(4.0, rel=1e-4) and rate.grad[1, 0].item() == 0.0


def test_nan_in_one_sample_is_reported_and_others_converge():
    def f(z, a):
        out = 0.5 * z + 1.0
        return torch.cat([out[:1], out[1:2] * torch.nan, out[2:]])

    with pytest.raises(ConvergenceError, match=r"non-finite.*samples \[1\]"):
        fixed_point(f, torch.zeros(3, 2, dtype=DT), None)
    with pytest.warns(NonConvergenceWarning):
        sol = fixed_point(f, torch.zeros(3, 2, dtype=DT), None, throw=False)
    assert sol.stats.nonfinite.tolist() == [False, True, False]
    assert sol.stats.converged.tolist() == [True, False, True]
    assert torch.isfinite(sol.value).all()


def test_max_iter_without_tolerance_is_reported():
    rate = torch.full((2, 1), 0.99, dtype=DT)
    with pytest.raises(ConvergenceError, match="max_iter=10 reached"):
        fixed_point(scaled, torch.zeros(2, 1, dtype=DT), rate, max_iter=10)


def test_broyden_blowup_is_reported():
    # z = z^2 + 1 has no real fixed point: Broyden's secant steps run away
    f = lambda z, a: z**2 + 1  # noqa: E731
    with pytest.warns(NonConvergenceWarning, match="diverged"):
        sol = fixed_point(f, torch.full((2, 1), 0.7, dtype=DT), None, solver=Broyden(), max_iter=200, throw=False)
    assert sol.stats.diverged.all() and (sol.stats.failed_at > 0).all()
    assert torch.isfinite(sol.value).all()


def test_return_best_gives_the_lowest_residual_iterate():
    # a rotation-like map oscillates; the best iterate is not the last one
    f = lambda z, a: -1.02 * z + 0.1  # noqa: E731
    with pytest.warns(NonConvergenceWarning):
        last = fixed_point(f, torch.full((1, 1), 0.3, dtype=DT), None, max_iter=20, throw=False)
    with pytest.warns(NonConvergenceWarning):
        best = fixed_point(f, torch.full((1, 1), 0.3, dtype=DT), None, max_iter=20, throw=False, return_best=True)
    assert best.stats.abs_residual <= last.stats.abs_residual
    assert best.stats.abs_residual == last.stats.history.min()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rtol=0.0, atol=0.0), "tolerances"),
        (dict(rtol=-1e-3), "tolerances"),
        (dict(solver="andersen"), "unknown solver 'andersen'"),
        (dict(adjoint="implict"), "unknown adjoint 'implict'"),
        (dict(max_iter=0), "max_iter"),
        (dict(solver=42), "solver must be"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        fixed_point(scaled, torch.zeros(2, 1, dtype=DT), torch.full((2, 1), 0.5, dtype=DT), **kwargs)


def test_bad_solver_objects_raise_value_error():
    with pytest.raises(ValueError, match="memory"):
        Anderson(memory=1)
    with pytest.raises(ValueError, match="damping"):
        ForwardIteration(damping=0.0)
    with pytest.raises(ValueError, match="unknown linear solver 'cgg'"):
        ImplicitAdjoint(linear_solver="cgg")
    with pytest.raises(ValueError, match="tolerances"):
        ImplicitAdjoint(rtol=0.0, atol=0.0)


def test_shape_mismatch_between_f_and_z0():
    with pytest.raises(ValueError, match=r"shape \(2, 3\) where z0 has \(2, 1\)"):
        fixed_point(lambda z, a: z.expand(2, 3), torch.zeros(2, 1, dtype=DT))
    with pytest.raises(ValueError, match="different structure"):
        fixed_point(lambda z, a: (z, z), torch.zeros(2, 1, dtype=DT))
    with pytest.raises(ValueError, match="floating point"):
        fixed_point(lambda z, a: z, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match="batch size"):
        fixed_point(lambda z, a: z, (torch.zeros(2, 1), torch.zeros(3, 1)))
    with pytest.raises(ValueError, match="one score per sample"):
        argmin(lambda y, a: (y**2).sum(), torch.zeros(2, 1, dtype=DT))


def test_non_stationary_answer_of_a_custom_forward_is_reported():
    problem = problems.quadratic()
    q, c = problem.params

    def sloppy(score, y0, args):  # returns the exact minimiser plus an error
        return problem.exact(*args).detach() + 1e-3

    with pytest.raises(ConvergenceError, match="argmin failed for 3 of 3"):
        argmin(problem.fn, problem.z0(), (q, c), solver=sloppy)

    def exact_solver(score, y0, args):
        return problem.exact(*args).detach()

    sol = argmin(problem.fn, problem.z0(), (q, c), solver=exact_solver, rtol=1e-10)
    (g,) = torch.autograd.grad(sol.value.sum(), c)
    (want,) = torch.autograd.grad(problem.exact(q, c).sum(), c)
    torch.testing.assert_close(g, want, atol=1e-8, rtol=1e-7)


def test_refine_makes_an_inexact_forward_stationary():
    problem = problems.quadratic()
    q, c = problem.params

    def sloppy(score, y0, args):  # e.g. random shooting: close, not stationary
        return problem.exact(*args).detach() + 1e-3

    sol = argmin(problem.fn, problem.z0(), (q, c), solver=sloppy, refine=3, rtol=1e-10)
    assert sol.converged and int(sol.stats.iterations.max()) <= 3
    (g,) = torch.autograd.grad(sol.value.sum(), c)
    (want,) = torch.autograd.grad(problem.exact(q, c).sum(), c)
    torch.testing.assert_close(g, want, atol=1e-8, rtol=1e-7)
    with pytest.raises(ValueError, match="refine"):
        argmin(problem.fn, problem.z0(), (q, c), solver=sloppy, refine=-1)


def test_backward_stats_and_unconverged_backward_warning():
    problem = problems.linear()
    sol = fixed_point(
        problem.fn,
        problem.z0(),
        problem.params,
        solver="anderson",
        rtol=1e-12,
        adjoint=ImplicitAdjoint(linear_solver="forward", max_iter=2, rtol=1e-12),
    )
    assert sol.backward.calls == 0 and sol.backward.iterations is None
    with pytest.warns(NonConvergenceWarning, match="backward"):
        sol.value.sum().backward()
    assert sol.backward.calls == 1
    assert sol.backward.iterations.tolist() == [2, 2, 2]
    assert not sol.backward.converged.any()
    strict = fixed_point(
        problem.fn,
        problem.z0(),
        problem.params,
        rtol=1e-12,
        adjoint=ImplicitAdjoint(linear_solver="forward", max_iter=2, rtol=1e-12, throw=True),
    )
    with pytest.raises(ConvergenceError, match="backward"):
        strict.value.sum().backward()
    quiet = fixed_point(  # a fixed K_bwd budget on purpose: no warning, the outcome is in the stats
        problem.fn,
        problem.z0(),
        problem.params,
        rtol=1e-12,
        adjoint=ImplicitAdjoint(linear_solver="forward", max_iter=2, rtol=1e-12, warn=False),
    )
    quiet.value.sum().backward()  # NonConvergenceWarning is an error in this suite
    assert not quiet.backward.converged.any()


def test_no_grad_returns_plain_solution():
    problem = problems.linear()
    with torch.no_grad():
        sol = fixed_point(problem.fn, problem.z0(), problem.params, rtol=1e-10)
    assert not sol.value.requires_grad


def _saved_bytes(max_iter, adjoint):
    """Bytes autograd saves for backward while solving a conv fixed point with ``max_iter`` steps."""
    g = torch.Generator().manual_seed(0)
    weight = (0.05 * torch.randn(8, 8, 3, 3, generator=g)).requires_grad_()
    x = torch.randn(2, 8, 12, 12, generator=g)

    def f(z, args):
        return torch.tanh(torch.nn.functional.conv2d(z, weight, padding=1) + x)

    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        sol = fixed_point(
            f,
            torch.zeros_like(x),
            None,
            solver="forward",
            adjoint=adjoint,
            max_iter=max_iter,
            rtol=1e-30,
            atol=1e-30,
            throw=False,
        )
    sol.value.sum().backward()
    return total[0]


def test_implicit_memory_does_not_grow_with_max_iter():
    with pytest.warns(NonConvergenceWarning):
        small, large = _saved_bytes(5, ImplicitAdjoint()), _saved_bytes(60, ImplicitAdjoint())
    assert small == large
    with pytest.warns(NonConvergenceWarning):
        unrolled_small, unrolled_large = _saved_bytes(5, UnrolledAdjoint()), _saved_bytes(60, UnrolledAdjoint())
    assert unrolled_large > 8 * unrolled_small


def test_jacobian_frobenius_estimate():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=g, dtype=DT).requires_grad_()
    z = torch.randn(3, 6, generator=g, dtype=DT)
    est = jacobian_frobenius_sq(lambda z, a: z @ a.T, z, a, num_samples=4000, generator=g)
    want = (a.detach() ** 2).sum()
    assert est.shape == (3,)
    assert torch.allclose(est, want.expand(3), rtol=0.1)
    (grad,) = torch.autograd.grad(est.mean(), a)
    torch.testing.assert_close(grad, 2 * a.detach(), atol=0.3 * a.detach().abs().max(), rtol=0.2)


def test_root_find_kepler_learns_eccentricity():
    """DIL Fig. 1: optimise ``e`` so that ``E(e)`` solving Kepler's equation hits a target."""
    m = torch.tensor([[1.0]], dtype=DT)
    target = torch.tensor([[1.5]], dtype=DT)
    e = torch.tensor([[0.1]], dtype=DT, requires_grad=True)
    opt = torch.optim.SGD([e], lr=0.5)
    for _ in range(60):
        sol = root_find(lambda z, p: z - p[0] * torch.sin(z) - p[1], m.clone(), (e, m))
        loss = ((sol.value - target) ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    e_true = (target - m) / torch.sin(target)
    torch.testing.assert_close(e.detach(), e_true, atol=1e-4, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gmres_adjoint_with_a_sample_that_receives_no_gradient(dtype):
    """A sample whose dL/dz* is zero gives GMRES an all-zero least-squares system: it must take
    no step (zero gradient), not fail on a singular matrix (seen in float32 training)."""
    problem = problems.linear(batch=3)
    a, b = (p.detach().to(dtype).requires_grad_() for p in problem.params)
    sol = fixed_point(
        problem.fn, problem.z0().to(dtype), (a, b), rtol=1e-6, adjoint=ImplicitAdjoint(linear_solver="gmres", rtol=1e-5)
    )
    sol.value[:2].sum().backward()  # sample 2 does not enter the loss
    assert torch.equal(b.grad[2], torch.zeros_like(b.grad[2])) and torch.equal(a.grad[2], torch.zeros_like(a.grad[2]))
    want = torch.linalg.solve(torch.eye(4, dtype=dtype) - a[:2].detach().transpose(1, 2), torch.ones(2, 4, dtype=dtype))
    torch.testing.assert_close(b.grad[:2], want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_anderson_mixing_survives_vanished_and_rank_one_residual_histories(dtype):
    """Once a sample's residuals vanish (exactly, in float32, on a max-plus map) its Gram matrix is
    zero, or rank one: the mixing must still propose a finite point, not fail on a singular system."""
    from idplan.solvers import Anderson

    history = torch.randn(3, 4, 10, dtype=dtype, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(3, 4, dtype=torch.bool)
    for gram in (torch.zeros(3, 4, 4, dtype=dtype), torch.ones(3, 4, 4, dtype=dtype)):
        proposal = Anderson()._mix(history, gram, valid)
        assert proposal.shape == (3, 10) and bool(torch.isfinite(proposal).all())


def test_an_empty_batch_is_a_value_error_in_every_entry_point():
    from idplan.solvers import argmin, fixed_point, root_find

    empty = torch.zeros(0, 3, dtype=torch.float64)
    for solve, fn in (
        (fixed_point, lambda z, a: 0.5 * z),
        (root_find, lambda z, a: z),
        (argmin, lambda z, a: (z**2).sum(-1)),
    ):
        with pytest.raises(ValueError, match="empty batch"):
            solve(fn, empty, None)


def test_implicit_solution_checks_its_answer_with_rtol_alone():
    """``implicit_solution(..., rtol=r)`` checks ``||F|| <= r ||z||`` (atol 0 when only rtol is given):
    a point that is no root raises, a root passes and gets the implicit gradient ``dz/dc = 1 / (3z^2 + 1)``."""
    F = lambda z, c: z**3 + z - c  # noqa: E731
    c = torch.tensor([[2.0]], dtype=DT, requires_grad=True)
    with pytest.raises(ConvergenceError):
        implicit_solution(F, torch.tensor([[5.0]], dtype=DT), c, rtol=1e-8)
    sol = implicit_solution(F, torch.tensor([[1.0]], dtype=DT), c, rtol=1e-8)  # 1 + 1 = 2: a root
    sol.value.sum().backward()
    assert c.grad.item() == pytest.approx(0.25, rel=1e-6)
    assert implicit_solution(F, torch.tensor([[5.0]], dtype=DT), c).stats.converged.all()  # no tolerance: no check
