"""The grid's one move rule: ``grid_step`` against a per-cell reference, and the env, the rollouts and the
Bellman operator agreeing move for move on random maps, flat and on a torus."""

import numpy as np
import pytest
import torch

from idplan.envs import (
    GridMazeEnv,
    bfs_distances,
    generate_maps,
    greedy_rollouts,
    grid_bellman_operator,
    grid_neighbours,
    grid_step,
    move_offsets,
)
from idplan.solvers import fixed_point

from .reference import bfs_distance

SIZE = 7


def next_cell(free, cell: tuple[int, int], offset: tuple[int, int], torus: bool = False) -> tuple[int, int]:
    """The cell one move of ``offset`` leads to from ``cell`` on one ``[m, m]`` map, one cell at a time: the
    cell beside it if that is free and on the map (wrapped around on a torus), else ``cell`` itself (a bump)."""
    m = free.shape[0]
    r, c = cell[0] + offset[0], cell[1] + offset[1]
    if torus:
        r, c = r % m, c % m
    return (r, c) if 0 <= r < m and 0 <= c < m and free[r, c] else tuple(cell)


def random_maps(n: int, torus: bool, seed: int = 0) -> np.ndarray:
    """``n`` maps of both generators; on a torus the border walls are opened so that moves wrap around."""
    rng = np.random.default_rng(seed)
    free = np.concatenate([generate_maps(n - n // 2, SIZE, rng, "maze"), generate_maps(n // 2, SIZE, rng, "obstacles")])
    if torus:
        free[:, [0, -1], :] = free[:, [1, -2], :]
        free[:, :, [0, -1]] = free[:, :, [1, -2]]
    return free[free.sum(axis=(1, 2)) >= 2]  # a map needs a goal and another cell


def env_moves(free: np.ndarray, moves: int, torus: bool) -> dict:
    """``{(cell, action): cell reached}`` from ``GridMazeEnv.step``, for every free cell and action of one map."""
    env = GridMazeEnv(size=SIZE, moves=moves)
    env.torus = torus
    env.reset(seed=0, options={"map": (~free).astype(np.int8)})
    reached = {}
    for cell in map(tuple, np.argwhere(free)):
        for action in range(moves):
            env.position = cell
            *_, info = env.step(action)
            assert info["bumped"] == (env.position == cell)
            reached[cell, action] = env.position
    return reached


@pytest.mark.parametrize("torus", [False, True])
@pytest.mark.parametrize("moves", [4, 8])
def test_grid_step_matches_the_per_cell_rule(moves, torus):
    free = random_maps(6, torus)
    n, m = len(free), SIZE
    cells = np.arange(free.size).reshape(free.shape)  # every cell, obstacles included
    for action in [*range(moves), -1, moves]:  # out-of-range actions stay
        reached = grid_step(free, cells, action, moves, torus)
        reached_torch = grid_step(torch.from_numpy(free), torch.from_numpy(cells), action, moves, torus)
        np.testing.assert_array_equal(reached_torch.numpy(), reached)
        for k, row, col in np.ndindex(n, m, m):
            offset = move_offsets(moves)[action] if 0 <= action < moves else (0, 0)
            r, c = next_cell(free[k], (row, col), offset, torus)
            assert reached[k, row, col] == (k * m + r) * m + c


@pytest.mark.parametrize("torus", [False, True])
@pytest.mark.parametrize("moves", [4, 8])
def test_grid_neighbours_is_grid_step_on_a_map_without_obstacles(moves, torus):
    x = torch.randn(3, 2, SIZE, SIZE, dtype=torch.float64)
    cells = torch.arange(x.numel()).view(x.shape)
    open_map = torch.ones_like(x, dtype=torch.bool)
    actions = torch.arange(moves).view(1, moves, 1, 1, 1)
    reached = grid_step(open_map, cells[:, None], actions, moves, torus)
    assert torch.equal(grid_neighbours(x, moves, torus), x.reshape(-1)[reached])


@pytest.mark.parametrize("torus", [False, True])
@pytest.mark.parametrize("moves", [4, 8])
def test_env_rollouts_and_bellman_take_the_same_moves(moves, torus):
    """Each cell an action leads to, read from the env's ``step``, from ``greedy_rollouts`` (one step of a
    constant policy, towards every possible goal) and from the Bellman operator (a value of 1 on one cell)."""
    for free in random_maps(6, torus, seed=1):
        cells = list(map(tuple, np.argwhere(free)))
        by_env = env_moves(free, moves, torus)

        # rollouts: one step of action a from every start; it arrives at t exactly when a leads there
        n = moves * len(cells)
        goals = np.array([t for _ in range(moves) for t in cells])
        policy = np.repeat(np.arange(moves), len(cells))[:, None, None] * np.ones((1, SIZE, SIZE), dtype=np.int64)
        steps = greedy_rollouts(
            np.repeat(free[None], n, 0), goals, policy, np.repeat(free[None], n, 0), moves, 1, torus
        )
        for (cell, action), reached in by_env.items():
            arrived = [t for i, t in enumerate(cells) if steps[action * len(cells) + i][cell] == 1]
            assert arrived == ([] if reached == cell else [reached]), (cell, action)

        # Bellman: with v = 1 on cell t only (and cost 0), v'(s) = gamma exactly when a move from s leads to t;
        # two goals (a goal's own value is pinned to 0), so that every cell is read with one of them
        gamma = 0.5
        for goal in cells[:2]:
            value = torch.eye(len(cells), dtype=torch.float64)
            v = torch.zeros(len(cells), 1, SIZE, SIZE, dtype=torch.float64)
            v[:, 0, [r for r, _ in cells], [c for _, c in cells]] = value
            free_t = torch.from_numpy(free)[None, None].expand(len(cells), 1, SIZE, SIZE)
            goal_t = torch.zeros_like(free_t)
            goal_t[:, 0, goal[0], goal[1]] = True
            out = grid_bellman_operator(free_t, goal_t, gamma, moves, torus)(v, 0.0)
            for s in cells:
                if s == goal:
                    continue
                by_bellman = {t for i, t in enumerate(cells) if out[i, 0, s[0], s[1]] == gamma}
                assert by_bellman == {by_env[s, a] for a in range(moves)}, s


@pytest.mark.parametrize("moves", [4, 8])
def test_bellman_fixed_point_on_a_torus_matches_bfs(moves):
    free_np = random_maps(4, torus=True, seed=2)
    goals = np.array([np.argwhere(f)[0] for f in free_np])
    free = torch.from_numpy(free_np)[:, None]
    goal = torch.zeros_like(free)
    goal[torch.arange(len(goals)), 0, goals[:, 0], goals[:, 1]] = True
    gamma = 0.9
    bellman = grid_bellman_operator(free, goal, gamma, moves, torus=True)
    v = fixed_point(lambda v, _: bellman(v), torch.zeros(free.shape, dtype=torch.float64), None, rtol=1e-12).value
    dist = bfs_distances(free_np, goals, moves, torus=True)
    for b in range(len(goals)):
        ref = bfs_distance(free_np[b], tuple(goals[b]), move_offsets(moves), torus=True).numpy()
        np.testing.assert_array_equal(dist[b], np.where(np.isinf(ref), -1, ref))
    d = torch.from_numpy(dist)[:, None].double()
    want = torch.where(d < 0, -1 / (1 - gamma), -(1 - gamma**d) / (1 - gamma))
    torch.testing.assert_close(v, torch.where(free, want, torch.zeros_like(want)), atol=1e-8, rtol=0)
