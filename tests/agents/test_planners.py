"""Planners: shapes, fixed points, implicit vs explicit gradients, padding symmetry, bad input."""

import pytest
import torch

from idplan.agents import PLANNERS, make_planner
from idplan.agents.training.imitation import imitation_loss
from idplan.envs import MazeTorchDataset, generate_dataset

SMALL = {
    "gated_vin": {"discount": 0.9},
    "vin": {"q_channels": 8},
    "sym_vin": {"q_channels": 2},
    "conv_gppn": {"q_channels": 6},
    "gppn": {"q_channels": 6},
}


def batch(n=3, size=7, seed=0):
    data = generate_dataset(n, size, seed=seed, progress=False)
    view = MazeTorchDataset(data)
    return view.inputs, view.actions


@pytest.mark.parametrize("name", sorted(PLANNERS))
@pytest.mark.parametrize("mode", ["implicit", "explicit"])
def test_output_shapes_and_stats(name, mode):
    torch.manual_seed(0)
    planner = make_planner(name, mode=mode, hidden=8, iterations=40, **SMALL[name])
    x, _ = batch()
    out = planner(x)
    assert out.logits.shape == (3, 4, 7, 7)
    assert out.values.shape == (3, 1, 7, 7)
    assert (out.solution is None) == (mode == "explicit")
    if mode == "implicit":  # the stats are the solver's: to the planner's tolerance, or stopped at the cap
        solver = out.solution.stats
        assert out.stats["forward_rel_residual"] == float(solver.rel_residual.max())
        assert out.stats["forward_converged"] == float(solver.converged.float().mean())
        assert out.stats["forward_iterations"] == int(solver.steps) and 1 <= int(solver.steps) <= 40
        assert bool((solver.rel_residual[solver.converged] <= planner.tol).all())
        assert out.stats["forward_converged"] == 1.0 or int(solver.steps) == 40
        if out.stats["forward_converged"] == 1.0:
            assert out.stats["forward_rel_residual"] <= planner.tol
    else:  # 40 unrolled steps; the residual is the last step's relative change, recomputed here
        with torch.no_grad():
            r = planner.encode(x)
            states = [planner.initial_state(r)]
            for _ in range(40):
                states.append(planner.step(states[-1], r))
        flat = [torch.cat([t.flatten(1) for t in (s if isinstance(s, tuple) else (s,))], 1) for s in states[-2:]]
        rel = (flat[1] - flat[0]).norm(dim=1) / flat[1].norm(dim=1)
        assert out.stats["forward_iterations"] == 40
        assert out.stats["forward_rel_residual"] == pytest.approx(float(rel.max()), rel=1e-5)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_implicit_solution_is_a_fixed_point(name):
    torch.manual_seed(0)
    planner = make_planner(name, hidden=8, iterations=300, tol=1e-6, **SMALL[name]).double()
    x, _ = batch()
    x = x.double()
    with torch.no_grad():
        out = planner(x)
        r = planner.encode(x)
        again = planner.step(out.state, r)
    assert out.stats["forward_converged"] == 1.0
    parts = zip(again, out.state) if isinstance(again, tuple) else [(again, out.state)]
    for new, old in parts:
        rel = (new - old).flatten(1).norm(dim=1) / old.flatten(1).norm(dim=1)
        assert float(rel.max()) <= 1e-6


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_implicit_gradients_match_explicit_run_to_convergence(name):
    torch.manual_seed(0)
    planner = make_planner(
        name, hidden=8, iterations=400, tol=1e-12, adjoint={"max_iter": 200, "rtol": 1e-12}, **SMALL[name]
    ).double()
    x, actions = batch()
    x = x.double()
    grads = {}
    for mode in ("implicit", "explicit"):
        planner.zero_grad()
        imitation_loss(planner(x, mode=mode).logits, actions).backward()
        grads[mode] = [p.grad.clone() for p in planner.parameters()]
    for g_imp, g_exp in zip(grads["implicit"], grads["explicit"]):
        torch.testing.assert_close(g_imp, g_exp, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_circular_padding_commutes_with_cyclic_shifts(name):
    torch.manual_seed(0)
    planner = make_planner(name, hidden=8, padding="circular", iterations=200, tol=1e-8, **SMALL[name]).double()
    x = torch.rand(2, 2, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        shifted = planner(torch.roll(x, shifts=(2, -3), dims=(2, 3))).logits
        expected = torch.roll(planner(x).logits, shifts=(2, -3), dims=(2, 3))
    torch.testing.assert_close(shifted, expected, rtol=1e-6, atol=1e-8)


def test_bad_input_raises():
    planner = make_planner("vin", hidden=8, q_channels=8)
    with pytest.raises(ValueError, match=r"\[B, 2, m, m\]"):
        planner(torch.zeros(1, 3, 7, 7))
    with pytest.raises(ValueError, match=r"\[B, 2, m, m\]"):
        planner(torch.zeros(2, 7, 7))
    with pytest.raises(ValueError, match="non-finite"):
        planner(torch.full((1, 2, 7, 7), float("nan")))
    with pytest.raises(ValueError, match="empty batch"):
        planner(torch.zeros(0, 2, 7, 7))
    with pytest.raises(ValueError, match="unknown planner"):
        make_planner("transformer")
    with pytest.raises(ValueError, match="unknown solver 'foo'"):
        make_planner("vin", solver="foo")
    for bad in (-1.0, 0.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tol must be a positive finite number"):
            make_planner("vin", tol=bad)
    with pytest.raises(ValueError, match="tolerances must be"):
        make_planner("vin", adjoint={"rtol": -1.0})
    with pytest.raises(ValueError, match="adjoint options must be ImplicitAdjoint's"):
        make_planner("vin", adjoint={"iterations": 15})
    with pytest.raises(ValueError, match="mode"):
        make_planner("vin", mode="both")
    with pytest.raises(ValueError, match="padding"):
        make_planner("vin", padding="reflect")
    with pytest.raises(ValueError, match="kernel_size"):
        make_planner("vin", kernel_size=4)
