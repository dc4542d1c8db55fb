"""SymVIN and the group convolutions: exact equivariance under the square grid's symmetries."""

import pytest
import torch

from idplan.agents import make_planner
from idplan.agents.planners.group_conv import (
    GroupConv,
    LiftingConv,
    cayley_table,
    group_elements,
    transform,
    transform_regular,
)
from idplan.envs import move_offsets


def action_permutation(element) -> list[int]:
    """perm[a] = the action that ``element`` sends action ``a`` to (by moving a marker one step)."""
    offsets = move_offsets(4)
    perm = []
    for dr, dc in offsets:
        probe = torch.zeros(3, 3)
        probe[1 + dr, 1 + dc] = 1.0
        r, c = divmod(int(transform(probe, element).argmax()), 3)
        perm.append(offsets.index((r - 1, c - 1)))
    return perm


@pytest.mark.parametrize("group", ["C4", "D4"])
def test_cayley_table_is_a_group(group):
    table = cayley_table(group)
    n = len(group_elements(group))
    assert all(sorted(row.tolist()) == list(range(n)) for row in table)  # Latin square
    assert table[0].tolist() == list(range(n))  # identity first
    for a in range(n):
        for b in range(n):
            for c in range(n):
                assert table[table[a, b], c] == table[a, table[b, c]]


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize("padding", ["zeros", "circular"])
def test_lifting_and_group_convolutions_are_equivariant(group, padding):
    torch.manual_seed(0)
    lift = LiftingConv(2, 3, 3, group, padding).double()
    conv = GroupConv(3, 2, 5, group, padding).double()
    x = torch.rand(2, 2, 9, 9, dtype=torch.float64)
    for index, element in enumerate(group_elements(group)):
        out = conv(lift(transform(x, element)))
        expected = transform_regular(conv(lift(x)), index, group)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("group", ["C4", "D4"])
@pytest.mark.parametrize("solver", ["forward", "anderson"])
def test_sym_vin_rotates_values_and_permutes_actions(group, solver):
    torch.manual_seed(0)
    planner = make_planner("sym_vin", group=group, hidden=4, q_channels=4, solver=solver, iterations=200, tol=1e-10)
    planner = planner.double()
    x = torch.rand(2, 2, 11, 11, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        base = planner(x)
        assert base.stats["forward_converged"] == 1.0
        for element in group_elements(group):
            out = planner(transform(x, element))
            torch.testing.assert_close(out.values, transform(base.values, element), rtol=1e-5, atol=1e-7)
            perm = action_permutation(element)
            expected = torch.empty_like(base.logits)
            for a in range(4):
                expected[:, perm[a]] = transform(base.logits[:, a], element)
            torch.testing.assert_close(out.logits, expected, rtol=1e-5, atol=1e-7)


def test_sym_vin_rejects_eight_actions_and_unknown_groups():
    with pytest.raises(ValueError, match="4 moves"):
        make_planner("sym_vin", actions=8)
    with pytest.raises(ValueError, match="group"):
        make_planner("sym_vin", group="C8")
