"""``idplan play``: recorded GIFs headless, and the key handling driven by a scripted event queue."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from idplan.agents.cli import main as idplan_main
from idplan.agents.runtime.interactive import play


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")


def test_record_gridmaze_expert_and_random_to_gif(tmp_path, capsys):
    out = tmp_path / "maze.gif"
    assert idplan_main(["play", "idplan/GridMaze-v0", "--size", "9", "--record", str(out), "--max-steps", "40"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["gif"] == str(out) and iio.imread(out).shape[0] == summary["lengths"][0] + 1  # and the reset
    assert summary["returns"][0] > 0  # the expert reaches the goal
    random = play("idplan/GridMaze-v0", "random", record=tmp_path / "r.gif", max_steps=10, env_kwargs={"size": 9})
    assert random["lengths"] == [10]


def test_scripted_keys_pause_step_toggle_and_quit(tmp_path):
    script = iter([[], ["space"], [], ["right"], ["v"], ["right"], ["r"], ["space"], [], ["q"]])
    summary = play(
        "idplan/Pendulum-v0",
        "mpc",
        env_kwargs={"start": "down"},
        events=lambda: next(script, ["q"]),
        max_steps=50,
    )
    # frame 1 steps, 2 pauses, 3 idles, 4 and 6 single-step, 5 toggles the overlay, 7 resets,
    # 8 resumes and steps, 9 steps, 10 quits
    assert summary["steps_taken"] == 5 and summary["lengths"] == [2] and summary["episodes"] == 1


def test_bad_agent_names_raise(capsys):
    assert idplan_main(["play", "idplan/GridMaze-v0", "--agent", "mpc", "--record", "x.gif"]) == 2
    assert "control environment" in capsys.readouterr().err
    with pytest.raises(ValueError, match="checkpoint"):
        play("idplan/GridMaze-v0", "nonsense.pt", record="x.gif")


def test_play_a_planner_checkpoint_with_its_overlay(tmp_path):
    import torch

    from idplan.agents.training.checkpoints import build_planner, planner_config, save_checkpoint

    config = planner_config("vin", hidden=8, q_channels=8, iterations=20)
    torch.manual_seed(0)
    path = tmp_path / "vin.pt"
    save_checkpoint(path, build_planner(config), config)
    summary = play("idplan/GridMaze-v0", str(path), record=tmp_path / "vin.gif", max_steps=5, env_kwargs={"size": 9})
    frames = iio.imread(tmp_path / "vin.gif")
    # every step is a frame, the reset's too: the title's step counter keeps a bumping agent's frames apart
    assert summary["lengths"] == [5] and frames.shape[0] == 6
    plain = play(
        "idplan/GridMaze-v0",
        str(path),
        record=tmp_path / "plain.gif",
        max_steps=5,
        overlay=False,
        env_kwargs={"size": 9},
    )
    assert (
        plain["lengths"] == [5] and (iio.imread(tmp_path / "plain.gif")[1] != frames[1]).any()
    )  # the value overlay is drawn (from the first plan on)


def test_frames_carry_a_title_line_with_the_step_counter():
    from idplan.agents.runtime.gif import TITLE_HEIGHT, titled

    frame = np.zeros((20, 60, 3), dtype=np.uint8)
    first, second = titled(frame, "step 1  random  GridMaze"), titled(frame, "step 2  random  GridMaze")
    assert first.shape == (20 + TITLE_HEIGHT, 60, 3) and (first[TITLE_HEIGHT:] == frame).all()
    assert first[:TITLE_HEIGHT].any() and (first != second).any()  # text drawn, and it differs by step


def test_the_r_key_resets_the_agent_too(tmp_path, monkeypatch):
    """``r`` starts the episode again for the agent as well: an MPC agent drops the warm start it
    had from before the reset (its ``reset`` runs at the episode start and again at ``r``)."""
    from idplan.agents.runtime import MPCAgent

    resets = []
    original = MPCAgent.reset
    monkeypatch.setattr(MPCAgent, "reset", lambda self: (resets.append(1), original(self))[1])
    script = iter([[], [], ["r"], [], ["q"]])
    play("idplan/Pendulum-v0", "mpc", env_kwargs={"start": "down"}, events=lambda: next(script, ["q"]), max_steps=9)
    assert len(resets) == 2


def test_play_an_arm_workspace_checkpoint_with_its_mapper(tmp_path):
    """A mapper + planner checkpoint plays ``idplan/ArmWorkspace-v0`` from the workspace image and the
    goal cell, and draws its value map on the C-space panel."""
    import torch

    from idplan.agents.mappers import WorkspaceMapper
    from idplan.agents.training.checkpoints import build_planner, planner_config, save_checkpoint

    torch.manual_seed(0)
    config = planner_config("vin", hidden=8, q_channels=8, iterations=20, padding="circular")
    mapper = WorkspaceMapper(bins=18, width=8)
    path = tmp_path / "arm.pt"
    save_checkpoint(path, build_planner(config), config, mapper=mapper, mapper_config={"name": "workspace", "width": 8})
    summary = play("idplan/ArmWorkspace-v0", str(path), record=tmp_path / "arm.gif", max_steps=3)
    assert summary["lengths"][0] >= 1 and iio.imread(tmp_path / "arm.gif").shape[0] == summary["lengths"][0] + 1
