"""Contractive steps by construction: the bound holds for any weights, and the gain estimator is right."""

import pytest
import torch

from idplan.agents import PLANNERS, make_planner
from idplan.agents.planners.contraction import KernelL1Bound
from idplan.envs import MazeTorchDataset, generate_dataset
from idplan.solvers import max_norm_gain, pack, state_spec

SMALL = {"gated_vin": {}, "vin": {"q_channels": 8}, "sym_vin": {"q_channels": 2}, "conv_gppn": {"q_channels": 6}}
SMALL["gppn"] = SMALL["conv_gppn"]


def maps(n=3, size=7, seed=0):
    return MazeTorchDataset(generate_dataset(n, size, seed=seed, progress=False)).inputs.double()


def random_state(planner, r, generator, scale):
    like = planner.initial_state(r)
    if isinstance(like, tuple):
        return tuple(scale * torch.randn(t.shape, generator=generator, dtype=t.dtype) for t in like)
    return scale * torch.randn(like.shape, generator=generator, dtype=like.dtype)


def max_norm_gap(a, b):
    spec = state_spec(a)
    return (pack(a, spec) - pack(b, spec)).abs().amax(dim=1)


@pytest.mark.parametrize("blow_up", [1.0, 50.0])
@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_implicit_default_step_is_a_max_norm_contraction_for_any_weights(name, blow_up):
    torch.manual_seed(0)
    planner = make_planner(name, hidden=8, **SMALL[name]).double()
    bound = planner.contraction_bound
    assert bound is not None and 0 < bound < 1
    with torch.no_grad():  # the parametrisation must bound whatever the raw weights become
        for weight in planner.parameters():
            weight.mul_(blow_up)
    x = maps()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        r = planner.encode(x)
        for scale in (0.1, 1.0, 10.0):  # pairs of random states, near and far apart
            a, b = random_state(planner, r, generator, scale), random_state(planner, r, generator, scale)
            gap = max_norm_gap(planner.step(a, r), planner.step(b, r))
            assert bool((gap <= bound * max_norm_gap(a, b) + 1e-12).all())
    gain = max_norm_gain(planner.step, random_state(planner, r, generator, 1.0), r, generator=generator)
    assert bool((gain <= bound + 1e-9).all())
    assert bool((planner.contraction_factor(x) <= bound + 1e-9).all())


@pytest.mark.parametrize("name", ["vin", "sym_vin", "conv_gppn", "gppn"])
def test_explicit_mode_by_default_is_the_papers_free_step(name):
    planner = make_planner(name, mode="explicit", hidden=8, **SMALL[name])
    assert planner.contraction_bound is None
    assert make_planner(name, mode="explicit", hidden=8, **SMALL[name], **_bounded(name)).contraction_bound < 1


def _bounded(name):
    return {"value_bound": 0.9} if name in ("vin", "sym_vin") else {"contractive": True}


@pytest.mark.parametrize("name", sorted(PLANNERS))
def test_explicit_and_implicit_modes_share_weights_and_agree_at_convergence(name):
    torch.manual_seed(0)
    options = dict(hidden=8, tol=1e-10, **SMALL[name])
    if name == "gated_vin":
        options["discount"] = 0.9
    planner = make_planner(name, iterations=500, **options).double()
    x = maps()
    with torch.no_grad():
        implicit = planner(x)
        explicit = planner(x, mode="explicit")
    assert implicit.stats["forward_converged"] == 1.0
    torch.testing.assert_close(implicit.logits, explicit.logits, rtol=1e-6, atol=1e-7)


def test_max_norm_gain_is_the_largest_absolute_row_sum():
    generator = torch.Generator().manual_seed(0)
    matrices = torch.rand(4, 30, 30, generator=generator, dtype=torch.float64)  # one-signed rows: exact
    z = torch.randn(4, 30, dtype=torch.float64, generator=generator)

    def linear(state, a):
        return torch.einsum("bij,bj->bi", a, state)

    exact = matrices.abs().sum(-1).amax(-1)
    torch.testing.assert_close(max_norm_gain(linear, z, matrices, generator=generator), exact)
    with torch.no_grad():  # it builds its own graph, whatever the grad mode
        torch.testing.assert_close(max_norm_gain(linear, z, matrices), exact)
    mixed = torch.randn(4, 30, 30, generator=generator, dtype=torch.float64)  # any signs: a lower bound
    estimate = max_norm_gain(linear, z, mixed, iterations=8, generator=generator)
    exact = mixed.abs().sum(-1).amax(-1)  # on these dense random rows the ascent finds 85-100% of it
    assert bool((estimate <= exact + 1e-9).all()) and bool((estimate >= 0.8 * exact).all())


def test_kernel_bound_rejects_bad_bounds_and_leaves_small_kernels_alone():
    with pytest.raises(ValueError, match="bound"):
        KernelL1Bound(1.5)
    with pytest.raises(ValueError, match="max_gate"):
        make_planner("conv_gppn", max_gate=1.0)
    with pytest.raises(ValueError, match="discount"):
        make_planner("gated_vin", discount=1.0)
    small = torch.full((2, 3, 3, 3), 0.01)
    torch.testing.assert_close(KernelL1Bound(0.9)(small), small)
    big = KernelL1Bound(0.5, inputs=slice(1, 2))(torch.ones(2, 3, 3, 3))
    assert torch.allclose(big[:, 1].abs().sum((-1, -2)), torch.tensor(0.5)) and bool((big[:, 0] == 1).all())
