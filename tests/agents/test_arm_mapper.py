"""The arm's workspace mapper, planning on its map, the contractive value bound, and the arm in the CLI."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from idplan.agents import make_planner
from idplan.agents.cli import main as idplan_main
from idplan.agents.mappers import MappedPlanner
from idplan.agents.mappers.workspace import WorkspaceMapper
from idplan.agents.training import evaluate_mapped, mapper_metrics, train_mapper
from idplan.agents.training.imitation import TrainConfig
from idplan.envs import ArmTorchDataset, generate_arm_dataset


@pytest.fixture(scope="module")
def arm_data():
    return generate_arm_dataset(48, 18, seed=0, progress=False)


def test_mapper_output_shape_and_input_check():
    mapper = WorkspaceMapper(bins=18)
    assert mapper(torch.zeros(3, 1, 96, 96)).shape == (3, 1, 18, 18)
    assert WorkspaceMapper(bins=36)(torch.zeros(1, 1, 96, 96)).shape == (1, 1, 36, 36)
    with pytest.raises(ValueError, match="expects"):
        mapper(torch.zeros(3, 96, 96))


def test_a_short_mapper_training_lowers_the_bce(arm_data):
    torch.manual_seed(0)
    mapper = WorkspaceMapper(bins=18, width=8)
    before = mapper_metrics(mapper, arm_data)["bce"]
    history = train_mapper(mapper, arm_data, config=TrainConfig(epochs=4, batch_size=16, lr=3e-3), progress=False)
    after = mapper_metrics(mapper, arm_data)["bce"]
    # the training BCE falls 0.64 -> 0.24 on 1 and 2 threads alike; the eval-mode BCE (batch-norm
    # running statistics after 12 steps) 0.72 -> 0.47 on 1 thread, 0.51 on 2: thresholds with margin
    assert history[-1]["bce"] < 0.6 * history[0]["bce"]
    assert after < 0.85 * before


def test_planning_on_the_mapped_cspace_trains_the_mapper_through_the_implicit_planner(arm_data):
    torch.manual_seed(0)
    planner = make_planner("vin", padding="circular", hidden=8, q_channels=8, iterations=30, value_bound=0.9)
    model = MappedPlanner(WorkspaceMapper(bins=18, width=8), planner)
    view = ArmTorchDataset(arm_data)
    batch = [view[i] for i in range(4)]
    workspace = torch.stack([b["observation"] for b in batch])
    goal = torch.stack([b["goal"] for b in batch])
    out, occupancy = model(workspace, goal)
    assert out.logits.shape == (4, 4, 18, 18) and occupancy.shape == (4, 1, 18, 18)
    assert out.solution is not None  # the planner ran in implicit mode
    torch.nn.functional.cross_entropy(
        out.logits, torch.stack([b["action"] for b in batch]), ignore_index=-100
    ).backward()
    mapper_grads = [p.grad for p in model.mapper.parameters() if p.grad is not None]
    assert mapper_grads and all(torch.isfinite(g).all() for g in mapper_grads)
    assert sum(float(g.abs().sum()) for g in mapper_grads) > 0
    metrics = evaluate_mapped(model, arm_data[:8])
    assert 0 <= metrics["success"] <= 1 and 0 <= metrics["map_cell_accuracy"] <= 1


@pytest.mark.parametrize("name", ["vin", "sym_vin"])
def test_value_bound_makes_the_step_a_max_norm_contraction(name):
    torch.manual_seed(0)
    planner = make_planner(name, padding="circular", hidden=8, q_channels=8, value_bound=0.9)
    with torch.no_grad():  # blow the raw weights up: the parametrisation must still bound them
        planner.q.parametrizations.weight.original.mul_(50.0)
    r = planner.encode(torch.rand(2, 2, 9, 9))
    v1 = torch.randn_like(planner.initial_state(r).expand(2, -1, -1, -1).contiguous())
    v2 = torch.randn_like(v1)
    gap = (planner.step(v1, r) - planner.step(v2, r)).abs().amax()
    assert gap <= 0.9 * (v1 - v2).abs().amax() + 1e-6
    with pytest.raises(ValueError, match="value_bound"):
        make_planner(name, value_bound=1.0)


def test_cli_trains_an_arm_planner_and_renders_its_rollout(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    args = ["demo", "--task", "arm", "--size", "18", "--planner", "vin", "--value-bound", "0.9", "--q-channels", "8"]
    args += ["--n-train", "64", "--n-valid", "16", "--n-test", "16", "--epochs", "1", "--iterations", "20"]
    assert idplan_main(args + ["--out", str(tmp_path), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["task"] == "arm" and summary["size"] == 18 and 0 <= summary["test"]["success"] <= 1
    frames = iio.imread(tmp_path / "rollout.gif")
    assert frames.shape[0] >= 2 and frames.shape[2] > frames.shape[1]  # workspace beside the C-space
    assert summary["training_figure"] == str(tmp_path / "training.png")
    assert (tmp_path / "training.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    checkpoint = str(tmp_path / "checkpoint.pt")
    play = ["play", "idplan/ArmCSpace-v0", "--agent", checkpoint, "--record", str(tmp_path / "p.gif")]
    assert idplan_main(play + ["--max-steps", "5"]) == 0
    assert idplan_main(["play", "idplan/ArmWorkspace-v0", "--agent", checkpoint, "--record", "x.gif"]) == 2


@pytest.mark.parametrize("env_id", ["idplan/ArmCSpace-v0", "idplan/ArmWorkspace-v0"])
def test_play_records_an_expert_arm_episode(env_id, tmp_path, capsys, monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    out = tmp_path / "arm.gif"
    assert idplan_main(["play", env_id, "--size", "18", "--record", str(out), "--seed", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["returns"][0] > 0 and iio.imread(out).shape[0] == summary["lengths"][0] + 1  # and the reset
    assert np.asarray(iio.imread(out)).std() > 0


def test_a_slice_of_the_torch_view_batches_like_its_items(arm_data):
    """``view[:4]`` is the stack of ``view[0..3]``: the goal keeps its batch axis (it was cut to 3)."""
    view = ArmTorchDataset(arm_data)
    batch, items = view[:4], [view[i] for i in range(4)]
    for key in ("goal", "observation", "input", "action"):
        assert torch.equal(batch[key], torch.stack([item[key] for item in items])), key
    assert batch["goal"].shape == (4, 1, 18, 18)
