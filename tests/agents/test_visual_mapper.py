"""The visual mapper (panoramas -> map), trained alone and through an implicit planner, and its agent."""

import os

import numpy as np
import pytest
import torch

from idplan.agents import make_planner
from idplan.agents.mappers import MappedPlanner
from idplan.agents.mappers.panorama import PanoramaMapper
from idplan.agents.runtime.planner_agents import MappedPlannerAgent
from idplan.agents.training import evaluate_mapped, mapper_metrics, train_mapper
from idplan.agents.training.imitation import TrainConfig
from idplan.envs import generate_dataset
from idplan.envs.maze.rendering import LEGEND_HEIGHT


@pytest.fixture(scope="module")
def nav_data():
    from idplan.envs import VisualNavDataset, load_maze_world, render_panoramas

    try:
        load_maze_world()
    except ImportError as error:
        if os.environ.get("IDPLAN_REQUIRE_MINIWORLD"):
            raise
        pytest.skip(f"MiniWorld cannot render here: {error}")
    tasks = generate_dataset(24, 7, seed=0, progress=False)
    return VisualNavDataset(tasks, render_panoramas(tasks.free, tasks.goals, progress=False))


def test_mapper_shapes_and_input_checks():
    mapper = PanoramaMapper()
    panoramas = torch.zeros(2, 9, 9, 4, 32, 32, 3, dtype=torch.uint8)
    assert mapper(panoramas).shape == (2, 1, 9, 9)
    assert mapper(panoramas.float()).shape == (2, 1, 9, 9)  # floats in [0, 1] too
    assert PanoramaMapper(view_size=48)(torch.zeros(1, 5, 5, 4, 48, 48, 3)).shape == (1, 1, 5, 5)
    with pytest.raises(ValueError, match="expects"):
        mapper(torch.zeros(2, 9, 9, 4, 32, 32))
    with pytest.raises(ValueError, match="uint8 or float"):
        mapper(torch.zeros(1, 5, 5, 4, 32, 32, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="view_size"):
        PanoramaMapper(view_size=16)


def test_views_of_the_four_directions_are_not_interchangeable():
    """Embeddings are concatenated per direction: swapping two views of a cell changes the map."""
    torch.manual_seed(0)
    mapper = PanoramaMapper().eval()
    panoramas = torch.rand(1, 5, 5, 4, 32, 32, 3)
    swapped = panoramas[:, :, :, [2, 1, 0, 3]]
    assert not torch.allclose(mapper(panoramas), mapper(swapped))


def test_a_short_mapper_training_lowers_the_map_loss(nav_data):
    torch.manual_seed(0)
    mapper = PanoramaMapper()
    before = mapper_metrics(mapper, nav_data)["bce"]
    history = train_mapper(mapper, nav_data, config=TrainConfig(epochs=4, batch_size=8, lr=1e-3), progress=False)
    after = mapper_metrics(mapper, nav_data)["bce"]
    assert after < 0.8 * before and history[-1]["bce"] < history[0]["bce"]


def test_the_mapper_learns_through_the_implicit_planner(nav_data):
    torch.manual_seed(0)
    model = MappedPlanner(PanoramaMapper(), make_planner("conv_gppn", iterations=20))
    view = nav_data.torch_dataset()
    batch = [view[i] for i in range(4)]
    out, occupancy = model(torch.stack([b["observation"] for b in batch]), torch.stack([b["goal"] for b in batch]))
    assert out.solution is not None and occupancy.shape == (4, 1, 7, 7)
    loss = torch.nn.functional.cross_entropy(out.logits, torch.stack([b["action"] for b in batch]), ignore_index=-100)
    loss.backward()
    grads = [p.grad for p in model.mapper.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    metrics = evaluate_mapped(model, nav_data[:6])
    assert 0 <= metrics["success"] <= 1 and 0 <= metrics["map_cell_accuracy"] <= 1


def test_mapped_planner_agent_acts_and_draws_its_map(nav_data):
    from idplan.envs import MiniWorldNavEnv

    model = MappedPlanner(PanoramaMapper(), make_planner("vin", iterations=10))
    env = MiniWorldNavEnv(size=7, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    agent = MappedPlannerAgent(model)
    action = agent.act(obs)
    assert 0 <= action < 4 and agent.occupancy.shape == (7, 7)
    agent.draw_on(env)
    frame = env.render()
    assert frame.shape == (240 + LEGEND_HEIGHT, 3 * 240 + 16, 3)
    env.step(action)
    assert np.array_equal(frame.shape, env.render().shape)
    env.close()


def test_a_mapped_checkpoint_round_trips_and_plays(nav_data, tmp_path):
    from idplan.agents.runtime.interactive import play
    from idplan.agents.training.checkpoints import (
        load_checkpoint,
        load_mapped_checkpoint,
        planner_config,
        save_checkpoint,
    )

    torch.manual_seed(0)
    model = MappedPlanner(PanoramaMapper(), make_planner("vin", iterations=10))
    path = tmp_path / "nav.pt"
    save_checkpoint(
        path, model.planner, planner_config("vin", iterations=10), model.mapper, {"name": "panorama"}, note=1
    )
    loaded, extra = load_mapped_checkpoint(path)
    observation = torch.from_numpy(nav_data.panoramas[:2])
    goal = nav_data.torch_dataset().inputs[:2, 1:]
    model.eval()
    torch.testing.assert_close(loaded(observation, goal)[0].logits, model(observation, goal)[0].logits)
    assert extra == {"note": 1}
    load_checkpoint(path)  # the planner alone loads too
    save_checkpoint(tmp_path / "plain.pt", model.planner, planner_config("vin", iterations=10))
    with pytest.raises(ValueError, match="without a mapper"):
        load_mapped_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="mapper_config"):
        save_checkpoint(tmp_path / "x.pt", model.planner, {}, model.mapper, {"name": "nope"})
    summary = play(
        "idplan/MiniWorldNav-v0", str(path), record=tmp_path / "nav.gif", env_kwargs={"size": 7}, max_steps=5
    )
    assert (tmp_path / "nav.gif").stat().st_size > 0 and summary["lengths"][0] >= 1
