"""Imitation training, evaluation metrics, checkpoints, the Gymnasium agent and the ``idplan`` CLI."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from idplan.agents import make_planner
from idplan.agents.cli import main as idplan_main
from idplan.agents.runtime.planner_agents import PlannerAgent
from idplan.agents.training import TrainConfig, TrainingDiverged, train_planner
from idplan.agents.training.checkpoints import build_planner, load_checkpoint, planner_config, save_checkpoint
from idplan.agents.training.evaluation import evaluate_planner, rollout_metrics
from idplan.envs import GridMazeEnv, MazeTorchDataset, generate_splits
from idplan.envs.maze.rendering import LEGEND_HEIGHT
from idplan.solvers import jacobian_frobenius_sq

COMMUNITY_FILE = Path(__file__).resolve().parents[3] / "shared" / "data" / "diffplan_m15_4abs-cc_10k.npz"
TINY = {"hidden": 16, "q_channels": 16, "iterations": 60}


def test_rollout_metrics_of_the_expert_and_of_a_bad_policy():
    data = generate_splits(9, 40, 5, 5, seed=0, progress=False)["train"]
    expert = rollout_metrics(data, data.actions)
    assert expert["optimal"] == expert["success"] == expert["spl"] == expert["accuracy"] == 1.0
    stay_north = np.zeros_like(data.actions)  # always North: only cells straight below the goal succeed
    bad = rollout_metrics(data, stay_north)
    assert bad["success"] < 0.3 and bad["optimal"] == bad["success"]


def test_tiny_training_run_learns_to_navigate(tmp_path):
    """The SB3 'identity test' idea: a small planner on small mazes must learn, quickly."""
    splits = generate_splits(7, 300, 50, 50, seed=0, progress=False)
    torch.manual_seed(0)
    planner = make_planner("vin", **TINY)
    before = evaluate_planner(planner, splits["test"])
    history = train_planner(
        planner,
        splits["train"],
        splits["valid"],
        TrainConfig(epochs=12, batch_size=16, lr=3e-3),
        tmp_path,
        progress=False,
    )
    after = evaluate_planner(planner, splits["test"])
    assert history[-1]["loss"] < 0.6 * history[0]["loss"]
    assert after["success"] >= 0.75 and after["success"] > before["success"] + 0.3
    assert (tmp_path / "metrics.csv").exists() and len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 12
    assert "backward_iterations" in history[0] and "valid_spl" in history[0]


def test_training_is_deterministic_for_a_seed():
    splits = generate_splits(7, 64, 8, 8, seed=1, progress=False)
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        planner = make_planner("vin", **TINY)
        history = train_planner(planner, splits["train"], None, TrainConfig(epochs=1, batch_size=16), progress=False)
        losses.append(history[0]["loss"])
    assert losses[0] == losses[1]


def test_jacobian_regularisation_shrinks_the_step_jacobian():
    splits = generate_splits(7, 96, 8, 8, seed=2, progress=False)
    norms = {}
    for weight in (0.0, 5.0):
        torch.manual_seed(0)
        planner = make_planner("conv_gppn", hidden=8, q_channels=8, iterations=30)
        history = train_planner(
            planner,
            splits["train"],
            None,
            TrainConfig(epochs=3, batch_size=16, lr=3e-3, jacobian_weight=weight),
            progress=False,
        )
        out = planner(MazeTorchDataset(splits["valid"]).inputs)
        norms[weight] = float(jacobian_frobenius_sq(planner.step, out.state, out.reward, num_samples=4).mean().detach())
        assert ("jacobian_frobenius_sq" in history[-1]) == (weight > 0)
    assert norms[5.0] < 0.5 * norms[0.0]


def test_a_gated_vin_learns_small_mazes_with_converged_solves(tmp_path):
    """The contractive default planner: every forward and adjoint solve of training converges, and
    four short epochs take it to near-perfect navigation (test success 0.979 here, the same on 1
    and 2 threads; 0.956-0.981 over seeds 0-2)."""
    splits = generate_splits(9, 300, 30, 50, seed=0, progress=False)
    torch.manual_seed(0)
    planner = make_planner("gated_vin", hidden=16)
    history = train_planner(
        planner, splits["train"], splits["valid"], TrainConfig(epochs=4, batch_size=16, lr=3e-3), progress=False
    )
    after = evaluate_planner(planner, splits["test"])
    assert all(row["forward_converged"] > 0.95 and row["backward_converged"] == 1.0 for row in history)
    assert after["success"] >= 0.9 and after["forward_converged"] >= 0.95


@pytest.mark.filterwarnings("ignore::idplan.solvers.NonConvergenceWarning")  # the blown-up adjoint warns too
def test_training_stops_with_a_clear_error_when_the_fixed_point_blows_up():
    """An absurd learning rate makes a free (unbounded) learned step expansive: the solve diverges,
    updates are skipped and training stops, instead of silently fitting garbage. (The default
    implicit VIN bounds its value kernels and cannot blow up: see test_contraction.py.)"""
    splits = generate_splits(7, 128, 8, 8, seed=0, progress=False)
    torch.manual_seed(0)
    planner = make_planner("vin", value_bound=None, **TINY)
    with pytest.raises(TrainingDiverged, match="lower the learning rate"):
        train_planner(planner, splits["train"], None, TrainConfig(epochs=3, batch_size=16, lr=1.0), progress=False)


def test_a_step_whose_adjoint_misses_its_tolerance_is_skipped_not_taken():
    """An adjoint tolerance float32 cannot reach (1e-12) under the 200-step cap: every backward
    misses it and raises, and training skips those steps, then says why."""
    splits = generate_splits(7, 64, 8, 8, seed=0, progress=False)
    torch.manual_seed(0)
    planner = make_planner("gated_vin", hidden=8, adjoint={"rtol": 1e-12})
    before = [p.detach().clone() for p in planner.parameters()]
    with pytest.raises(TrainingDiverged, match="adjoint.*missed it"):
        train_planner(planner, splits["train"], None, TrainConfig(epochs=1, batch_size=16), progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, planner.parameters()))  # no inexact step was taken


def test_a_checkpoint_with_the_old_adjoint_keys_loads(tmp_path):
    config = planner_config("vin", hidden=8, q_channels=6)
    planner = build_planner(config)
    old = {**config, "backward_solver": "anderson", "backward_iterations": None, "backward_tol": 1e-5}
    save_checkpoint(tmp_path / "c.pt", planner, old)
    loaded, _ = load_checkpoint(tmp_path / "c.pt")
    assert (loaded.adjoint.linear_solver, loaded.adjoint.max_iter, loaded.adjoint.rtol) == ("anderson", None, 1e-5)
    x = torch.rand(2, 2, 7, 7)
    torch.testing.assert_close(loaded(x).logits, planner.eval()(x).logits)


def test_checkpoint_round_trip_and_foreign_files(tmp_path):
    config = planner_config("conv_gppn", hidden=8, q_channels=6, mode="explicit", iterations=20)
    planner = build_planner(config)
    save_checkpoint(tmp_path / "c.pt", planner, config, note="hello")
    loaded, extra = load_checkpoint(tmp_path / "c.pt")
    assert extra == {"note": "hello"} and loaded.mode == "explicit"
    x = torch.rand(2, 2, 7, 7)
    torch.testing.assert_close(loaded(x).logits, planner(x).logits)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable idplan checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an idplan planner checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="plain values"):
        planner_config("vin", solver=object())


def test_planner_agent_acts_in_the_env_and_draws_its_plan():
    torch.manual_seed(0)
    planner = make_planner("vin", **TINY)
    agent = PlannerAgent(planner)
    env = GridMazeEnv(size=9, render_mode="rgb_array")
    obs, _ = env.reset(seed=0)
    with torch.no_grad():  # the plan: the planner's logits on the observed map and goal
        logits = planner(torch.from_numpy(np.stack([obs["map"], obs["goal"]]).astype(np.float32))[None]).logits[0]
    for _ in range(5):
        action = agent.act(obs)
        row, col = obs["position"]
        assert env.action_space.contains(action) and action == int(logits[:, row, col].argmax())  # greedy
        obs, *_ = env.step(action)
    agent.draw_on(env)
    drawn = env.render()
    env.unwrapped.clear_overlay()
    bare = env.render()  # the same state without the overlay
    cell = bare.shape[1] // 9
    assert bare.shape == drawn.shape == (9 * cell + LEGEND_HEIGHT, 9 * cell, 3)  # the map above its legend
    changed = (drawn[: 9 * cell] != bare[: 9 * cell]).any(-1).reshape(9, cell, 9, cell).any((1, 3))  # per map cell
    free = env.unwrapped.free
    assert changed[free].all()  # the value heat map and the arrows cover every free cell


def test_cli_train_then_eval_on_the_community_file(tmp_path, capsys):
    out = tmp_path / "run"
    code = idplan_main(
        ["train", "--planner", "vin", "--size", "7", "--n-train", "64", "--n-valid", "8", "--n-test", "8",
         "--epochs", "2", "--q-channels", "8", "--iterations", "30", "--quiet", "--out", str(out)]
    )  # fmt: skip
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    # the summary's test figures are the saved checkpoint's on the same (regenerated) test split
    planner, extra = load_checkpoint(summary["checkpoint"])
    test = evaluate_planner(planner, generate_splits(7, 64, 8, 8, seed=0, progress=False)["test"])
    assert summary["test"] == {k: round(v, 4) if isinstance(v, float) else v for k, v in test.items()}
    assert extra["test"] == test and extra["epochs"] == summary["best_epoch"] in (1, 2)
    with open(out / "metrics.csv", newline="") as f:  # a header and one row per epoch
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2] and summary["epochs_completed"] == 2
    assert idplan_main(["eval", summary["checkpoint"], "--size", "9", "--n", "4"]) == 0  # generalisation path
    generated = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert generated["maps"] == 4 and "9x9" in generated["dataset"]
    assert idplan_main(["eval", summary["checkpoint"], "--n", "4"]) == 0  # neither: the checkpoint's own size
    assert "4 generated 7x7 mazes" in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["dataset"]
    if not COMMUNITY_FILE.exists():
        pytest.skip("community file not present")
    code = idplan_main(["eval", summary["checkpoint"], "--dataset", str(COMMUNITY_FILE), "--limit", "10"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["maps"] == 10 and 0.0 <= result["optimal"] <= result["success"] <= 1.0


def test_cli_reports_bad_input(tmp_path, capsys):
    code = idplan_main(["eval", str(tmp_path / "missing.pt"), "--dataset", str(tmp_path / "none.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err == f"idplan eval: error: --dataset {tmp_path / 'none.npz'}: no such file\n"
    code = idplan_main(["eval", str(tmp_path / "missing.pt"), "--size", "7", "--n", "2"])  # the data is fine
    (line,) = capsys.readouterr().err.splitlines()  # one line, no traceback, naming the missing checkpoint
    assert code == 2 and line.startswith("idplan eval: error:") and str(tmp_path / "missing.pt") in line


@pytest.mark.filterwarnings("ignore::idplan.solvers.NonConvergenceWarning")  # the blown-up adjoint warns too
def test_cli_train_reports_divergence(tmp_path, capsys):
    args = ["train", "--planner", "vin", "--size", "7", "--n-train", "128", "--n-valid", "8", "--n-test", "8"]
    args += [
        "--epochs",
        "2",
        "--q-channels",
        "16",
        "--lr",
        "1.0",
        "--batch-size",
        "16",
        "--free-step",  # the default implicit VIN is a contraction and cannot blow up
        "--quiet",
        "--out",
        str(tmp_path),
    ]
    assert idplan_main(args) == 2
    assert "lower the learning rate" in capsys.readouterr().err


def test_best_epoch_keeps_and_restores_the_best_weights():
    from idplan.agents.training.imitation import BestEpoch

    module = torch.nn.Linear(2, 1)
    best = BestEpoch(module)
    assert best.restore() == 0  # nothing kept yet: the weights stay
    with torch.no_grad():
        module.weight.fill_(1.0)
    best({"epoch": 1, "valid_success": 0.5})
    with torch.no_grad():
        module.weight.fill_(2.0)
    best({"epoch": 2, "valid_success": 0.4})  # worse: not kept
    assert best.restore() == 1 and torch.equal(module.weight, torch.ones(1, 2))


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--q-channels", "0"], "positive integer"),
        (["train", "--epochs", "-1"], "positive integer"),
        (["train", "--device", "foo"], "unknown device"),
        (["eval", "c.pt", "--size", "7", "--limit", "0"], "positive integer"),
        (["eval", "c.pt", "--size", "7", "--limit", "-1"], "positive integer"),
    ],
)
def test_cli_rejects_bad_numbers_and_devices_with_an_error_line(args, message, capsys):
    with pytest.raises(SystemExit) as stop:
        idplan_main(args)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "error:" in err and message in err


def test_cli_rejects_cuda_without_a_cuda_device(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as stop:
        idplan_main(["train", "--device", "cuda"])
    assert stop.value.code == 2 and "no CUDA device" in capsys.readouterr().err


def test_a_checkpoint_whose_weights_do_not_fit_its_config_is_a_value_error(tmp_path):
    planner = build_planner(planner_config("vin", hidden=8, q_channels=6))
    save_checkpoint(tmp_path / "c.pt", planner, planner_config("conv_gppn", hidden=8, q_channels=6))
    with pytest.raises(ValueError, match="do not fit"):
        load_checkpoint(tmp_path / "c.pt")
    save_checkpoint(tmp_path / "d.pt", planner, planner_config("vin", hidden=8, colour="red"))
    with pytest.raises(ValueError, match="options do not build"):
        load_checkpoint(tmp_path / "d.pt")
