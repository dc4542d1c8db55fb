"""The VIN step's fused ``max_a conv`` (sparse backward) against ``conv2d`` then ``max`` in autograd."""

import pytest
import torch
import torch.nn.functional as F

from idplan.agents import make_planner
from idplan.agents.planners.max_conv import max_conv, patches, unpatch


def reference(x, weight, padding_mode):
    pad = weight.shape[-1] // 2
    x = F.pad(x, (pad,) * 4, mode="constant" if padding_mode == "zeros" else padding_mode)
    return F.conv2d(x, weight).max(dim=1, keepdim=True).values


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
@pytest.mark.parametrize("kernel", [1, 3, 5])
def test_values_and_gradients_equal_conv_then_max(padding_mode, kernel):
    generator = torch.Generator().manual_seed(kernel)
    x = torch.randn(3, 2, 6, 7, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(9, 2, kernel, kernel, dtype=torch.float64, generator=generator, requires_grad=True)
    out, ref = max_conv(x, weight, padding_mode), reference(x, weight, padding_mode)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-14)
    upstream = torch.randn(out.shape, dtype=torch.float64, generator=generator)
    ours = torch.autograd.grad(out, (x, weight), upstream)
    theirs = torch.autograd.grad(ref, (x, weight), upstream)
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # the amax path
        torch.testing.assert_close(max_conv(x, weight, padding_mode), ref.detach(), rtol=0, atol=1e-14)


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
def test_gradcheck_and_double_backward(padding_mode):
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 2, 4, 5, dtype=torch.float64, generator=generator, requires_grad=True)
    weight = torch.randn(5, 2, 3, 3, dtype=torch.float64, generator=generator, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: max_conv(a, b, padding_mode), (x, weight))
    assert torch.autograd.gradgradcheck(lambda a, b: max_conv(a, b, padding_mode), (x, weight))


def test_unpatch_is_the_adjoint_of_patches():
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64, generator=generator)
    windows = torch.randn(2, 5 * 6, 3 * 9, dtype=torch.float64, generator=generator)
    torch.testing.assert_close((patches(x, 3) * windows).sum(), (x * unpatch(windows, x.shape, 3)).sum())


@pytest.mark.parametrize("mode", ["explicit", "implicit"])
def test_vin_training_gradient_equals_the_autograd_step(mode, monkeypatch):
    torch.manual_seed(0)
    planner = make_planner("vin", mode=mode, hidden=8, q_channels=6, iterations=12).double()
    maps = (torch.rand(3, 2, 7, 7, dtype=torch.float64) > 0.5).double()

    def gradient():
        planner.zero_grad()
        planner(maps).logits.square().sum().backward()
        return [p.grad.clone() for p in planner.parameters()]

    fused = gradient()
    monkeypatch.setattr(
        type(planner), "step", lambda self, v, r: reference(torch.cat([r, v], 1), self.q.weight, self.padding)
    )
    for a, b in zip(fused, gradient()):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_bf16_autocast_gives_each_input_a_gradient_of_its_own_dtype():
    # bf16 rounding may pick another channel where two are within its precision: close, not equal
    generator = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, 5, 5, generator=generator, requires_grad=True)
    weight = torch.randn(6, 2, 3, 3, generator=generator, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = max_conv(x.bfloat16(), weight)
    out.float().sum().backward()
    assert x.grad.dtype == weight.grad.dtype == torch.float32
    reference_x, reference_w = torch.autograd.grad(reference(x, weight, "zeros").sum(), (x, weight))
    assert torch.nn.functional.cosine_similarity(weight.grad.flatten(), reference_w.flatten(), dim=0) > 0.95
    assert torch.nn.functional.cosine_similarity(x.grad.flatten(), reference_x.flatten(), dim=0) > 0.95
