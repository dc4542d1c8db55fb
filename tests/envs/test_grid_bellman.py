import pytest
import torch

from idplan.envs import MOVES_4, MOVES_8, grid_bellman_operator
from idplan.solvers import Anderson, fixed_point

from .reference import bfs_distance


@pytest.mark.parametrize("moves", [4, 8])
def test_value_iteration_fixed_point_matches_bfs(moves):
    g = torch.Generator().manual_seed(0)
    batch, m, gamma = 3, 9, 0.9
    free = torch.rand(batch, 1, m, m, generator=g) > 0.3
    goal = torch.zeros_like(free)
    goals = []
    for b in range(batch):
        cell = free[b, 0].flatten().nonzero()[0].item()
        goal[b, 0].view(-1)[cell] = True
        goals.append(divmod(cell, m))
    bellman = grid_bellman_operator(free, goal, gamma=gamma, moves=moves)
    sol = fixed_point(
        lambda v, c: bellman(v, c),
        torch.zeros(batch, 1, m, m, dtype=torch.float64),
        1.0,
        solver=Anderson(),
        max_iter=2000,
        rtol=1e-12,
    )
    for b in range(batch):
        d = bfs_distance(free[b, 0], goals[b], MOVES_4 if moves == 4 else MOVES_8)
        want = torch.where(torch.isinf(d), -1 / (1 - gamma), -(1 - gamma**d) / (1 - gamma))
        want = torch.where(free[b, 0], want, torch.zeros_like(want))
        torch.testing.assert_close(sol.value[b, 0], want, atol=1e-8, rtol=0)


def test_bad_maps_raise():
    free = torch.ones(1, 1, 5, 5, dtype=torch.bool)
    goal = torch.zeros_like(free)
    goal[0, 0, 2, 2] = True
    with pytest.raises(ValueError, match="obstacle"):
        grid_bellman_operator(free & ~goal, goal)
    with pytest.raises(ValueError, match=r"\[B, 1, m, m\]"):
        grid_bellman_operator(free[0], goal[0])
    with pytest.raises(ValueError, match="gamma"):
        grid_bellman_operator(free, goal, gamma=1.0)
    with pytest.raises(ValueError, match="moves"):
        grid_bellman_operator(free, goal, moves=6)


@pytest.mark.parametrize("moves", [4, 8])
def test_grid_neighbours_stay_off_the_map_and_wrap_on_a_torus(moves):
    from idplan.envs import grid_neighbours

    x = torch.arange(2 * 5 * 5, dtype=torch.float64).view(2, 1, 5, 5)
    near, wrapped = grid_neighbours(x, moves), grid_neighbours(x, moves, torus=True)
    assert near.shape == wrapped.shape == (2, moves, 1, 5, 5)
    offsets = MOVES_4 if moves == 4 else MOVES_8
    for a, (dr, dc) in enumerate(offsets):
        for i in range(5):
            for j in range(5):
                inside = 0 <= i + dr < 5 and 0 <= j + dc < 5
                expected = x[:, 0, i + dr, j + dc] if inside else x[:, 0, i, j]
                assert torch.equal(near[:, a, 0, i, j], expected)
                assert torch.equal(wrapped[:, a, 0, i, j], x[:, 0, (i + dr) % 5, (j + dc) % 5])
    with pytest.raises(ValueError, match="moves"):
        grid_neighbours(x, 6)
