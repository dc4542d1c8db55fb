"""Smoke tests: every script in examples/ runs end to end at tiny settings (through its ``main(argv)``,
in this process) and writes its files into the test's own folder, never into examples/results/ or runs/.

Each test checks the script's final JSON line (and its files) for what the script promises, not the
figures the full-size run reports. Scripts too slow for the default run even at tiny settings are
marked ``slow``; those needing an optional extra skip without it. Every script, slow or not, is
imported and asked for ``--help`` in the default run, so a broken import shows at once.

Every script with tensors takes ``--device``; the smoke runs pass ``--device cpu`` (no GPU is assumed),
and ``--device cuda`` on a machine without CUDA must end at once with a one-line error.
"""

import importlib.util
import json
import math
import os
import random
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCRIPTS = sorted(path.stem for path in EXAMPLES.glob("*.py"))
EXTRAS = {"node_backward_euler": "torchdiffeq"}  # script -> the optional package it needs
NO_DEVICE = {"grid_maze_episode"}  # numpy only (BFS expert, numpy env): no tensors to place
DEVICE_SCRIPTS = [name for name in SCRIPTS if name not in NO_DEVICE]


def load(name: str):
    """``examples/<name>.py`` as a module (imported once per session)."""
    if name in EXTRAS:
        pytest.importorskip(EXTRAS[name], reason=f"examples/{name}.py needs the optional {EXTRAS[name]}")
    module_name = f"idplan_example_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # dataclasses look their module up while the script loads
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    return sys.modules[module_name]


def _snapshot(folder: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()} if folder.exists() else {}


@pytest.fixture
def run_example(tmp_path, monkeypatch, capsys):
    """``run(name, *argv)``: run ``examples/<name>.py``'s ``main(argv)`` from ``tmp_path`` (with
    ``--device cpu`` where the script takes it) and return its last printed line as JSON. Restores the
    torch threads and the random states the script sets, and checks that examples/results/ is left alone."""
    monkeypatch.chdir(tmp_path)
    threads, states = torch.get_num_threads(), (torch.get_rng_state(), np.random.get_state(), random.getstate())
    results = _snapshot(EXAMPLES / "results")

    def run(name: str, *argv) -> dict:
        device = [] if name in NO_DEVICE else ["--device", "cpu"]
        load(name).main([str(a) for a in argv] + device)
        lines = capsys.readouterr().out.strip().splitlines()
        return json.loads(lines[-1])

    yield run
    torch.set_num_threads(threads)
    torch.set_rng_state(states[0])
    np.random.set_state(states[1])
    random.setstate(states[2])
    assert _snapshot(EXAMPLES / "results") == results, "an example wrote into examples/results/"


def frames(path: Path) -> int:
    import imageio.v3 as iio

    return iio.imread(path).shape[0]


def miniworld_or_skip() -> None:
    from idplan.envs import load_maze_world

    try:
        load_maze_world()
    except ImportError as error:
        if os.environ.get("IDPLAN_REQUIRE_MINIWORLD"):
            raise
        pytest.skip(f"MiniWorld cannot render here: {error}")


def test_every_example_has_a_smoke_test():
    tested = {name[len("test_") :] for name in globals() if name.startswith("test_") and name[5:] in SCRIPTS}
    assert len(SCRIPTS) >= 14 and tested == set(SCRIPTS), set(SCRIPTS) - tested


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_example_imports_and_prints_its_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        load(name).main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and out.startswith("usage:") and load(name).__doc__.splitlines()[0] in out
    assert ("--device" in out) == (name not in NO_DEVICE)
    assert "--record FILE" in out  # every example can write its final JSON line as a result record


@pytest.mark.parametrize(
    ("name", "argv"),
    [
        ("grid_maze_episode", ["--size", 9, "--out", "episode.gif"]),
        ("solver_demo", ["--out", "demo", "--size", 7, "--batch", 2, "--steps", 3]),  # a dataclass of options
    ],
)
def test_record_holds_the_printed_result(name, argv, run_example, tmp_path):
    """``--record FILE`` writes a result record (``idplan.envs.records``) whose ``result`` is the
    printed last JSON line, unchanged; without it the script writes none."""
    from idplan.envs.records import RECORD_KEYS, read_record

    printed = run_example(name, *argv, "--record", tmp_path / "out" / f"{name}_cpu.json")
    record = read_record(tmp_path / "out" / f"{name}_cpu.json")
    assert set(record) == set(RECORD_KEYS) and record["name"] == f"{name}_cpu"
    assert record["result"] == printed and record["machine"] and record["date"]
    command = record["command"].split()  # this run's own script and arguments, not pytest's sys.argv
    assert command[:2] == ["python", f"examples/{name}.py"] or command[1].endswith(f"/examples/{name}.py")
    at = command.index("--record")
    assert command[at + 1] == str(tmp_path / "out" / f"{name}_cpu.json")
    run_example(name, *argv)  # again without --record: no other record appears
    assert [p.name for p in tmp_path.rglob("*.json") if p.name != "metrics.json"] == [f"{name}_cpu.json"]


@pytest.mark.parametrize("name", DEVICE_SCRIPTS)
def test_every_example_refuses_cuda_without_a_gpu(name, tmp_path, monkeypatch, capsys):
    """``--device cuda`` where torch sees no CUDA device: argparse's exit 2 with one error line naming
    the device, before any data is made or any file written."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        load(name).main(["--device", "cuda"] + (["checkpoint.pt"] if name == "plan_large" else []))
    errors = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and errors[-1].endswith(
        "error: argument --device: 'cuda': this torch build sees no CUDA device; use --device cpu"
    )
    assert [line for line in errors if "error" in line] == errors[-1:] and not any(tmp_path.iterdir())


def test_solver_demo(run_example, tmp_path):
    out = tmp_path / "demo"
    summary = run_example("solver_demo", "--out", out, "--size", 7, "--batch", 2, "--steps", 3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["args"]["size"] == 7 and metrics["args"]["steps"] == 3
    assert summary["files"] == {"metrics": str(out / "metrics.json"), "plot": str(out / "loss.png")}
    assert (out / "loss.png").stat().st_size > 0
    implicit, unrolled = (metrics["results"][k] for k in ("implicit", "unrolled"))
    assert len(implicit["losses"]) == len(unrolled["losses"]) == 3
    assert implicit["max_backward_iterations"] >= 1 and unrolled["max_backward_iterations"] is None
    # the implicit adjoint and unrolling give the same gradients: the same costs are learned
    np.testing.assert_allclose(implicit["learned_costs"], unrolled["learned_costs"], rtol=1e-4)
    assert implicit["learned_costs"] != [1.0, 1.0, 1.0]  # and they moved from their start


def test_grid_maze_episode(run_example, tmp_path):
    gif = tmp_path / "episode.gif"
    summary = run_example("grid_maze_episode", "--size", 9, "--overlay", "--out", gif)
    assert summary["success"] and summary["steps"] == summary["optimal_length"] >= 1  # the expert is optimal
    assert summary["gif"] == str(gif) and frames(gif) == summary["steps"] + 1
    random_walk = run_example("grid_maze_episode", "--size", 9, "--policy", "random", "--max-steps", 3, "--out", gif)
    assert random_walk["policy"] == "random" and random_walk["steps"] <= 3


def test_dare_imitation(run_example, tmp_path):
    plot = tmp_path / "dare.png"
    summary = run_example("dare_imitation", "--dampings", 1.0, "--inits", 1, "--iterations", 60, "--plot", plot)
    rows = {row["method"]: row for row in summary["rows"]}
    assert summary["iterations"] == 60 and set(rows) == {"ift-gmres", "ift-dense", "unrolled"}
    assert plot.stat().st_size > 0
    for row in rows.values():
        assert row["damping"] == 1.0 and math.isfinite(row["imitation_loss_mean"])
        assert row["model_loss_mean"] < row["initial_model_loss_mean"]  # A_hat moved towards A
    # the three gradients (IFT by GMRES, dense IFT, unrolled doubling) agree: so do the learned models
    losses = [row["model_loss_mean"] for row in rows.values()]
    np.testing.assert_allclose(losses, losses[0], rtol=1e-6)


def test_ilqr_imitation(run_example):
    args = ["--tasks", "pendulum", "--sizes", 4, "--seeds", 1, "--steps", 2, "--lstm-steps", 2, "--horizon", 5]
    summary = run_example("ilqr_imitation", *args)
    combos = [(row["mode"], row["method"]) for row in summary["rows"]]
    assert combos == [("dx", m) for m in ("implicit", "last_layer", "sysid", "lstm")] + [
        ("cost", m) for m in ("implicit", "last_layer")
    ]
    for row in summary["rows"]:
        assert row["task"] == "pendulum" and row["trajectories"] == 4
        assert math.isfinite(row["test_loss_mean"]) and row["test_loss_mean"] >= 0
        assert (row["parameter_error_mean"] is None) == (row["method"] == "lstm")


def test_mpc_swingup(run_example, tmp_path):
    args = ["--episodes", 1, "--horizon", 5, "--max-iter", 5, "--steps", 20, "--out", tmp_path / "mpc"]
    summary = run_example("mpc_swingup", *args)
    assert set(summary) == {"pendulum", "cartpole"}
    for name, row in summary.items():
        assert row["episodes"] == 1 and row["steps"] == 20 and row["horizon"] == 5
        assert row["success_rate"] == 0.0  # no swing-up within one second from hanging
        assert row["mean_return"] < 0 and 0 <= row["unconverged_steps"] <= 20
        assert row["gif"] == str(tmp_path / "mpc" / f"{name}_swingup.gif") and frames(Path(row["gif"])) == 10


@pytest.mark.slow  # ~12 s on two free cores but minutes on a loaded machine (668 s seen): see the docstring
def test_mpc_ift_cartpole(run_example, tmp_path):
    """Each MPC solve polishes its plan by Newton steps on full Hessians through the horizon of 10:
    thousands of tiny tensor operations, which slow down many times over when the cores are shared."""
    plot = tmp_path / "phase.png"
    args = ["--trajectories", 2, "--episode-steps", 4, "--particles", 20, "--expert-refine", 2, "--dynamics-steps", 5]
    args += ["--cost-steps", 2, "--bc-steps", 5, "--episodes", 2, "--threads", 2, "--plot", plot]
    summary = run_example("mpc_ift_cartpole", *args)
    table = summary["average_cost"]
    assert summary["runs"] == 1 and summary["per_run"] is None and plot.stat().st_size > 0
    assert set(table) == {"expert", "MPC-IFT", "BC", "BC on u", "model+true"}
    for row in table.values():
        assert set(row) == {"0.04", "0.16"}
        for cell in row.values():  # the tip cost is below 1 per step
            assert 0 <= cell["mean"] <= 4 and cell["standard_error"] >= 0


def test_arm_manipulation(run_example, tmp_path):
    gif = tmp_path / "arm.gif"
    args = ["--bins", 9, "--planners", "vin", "--modes", "implicit,explicit", "--iterations", 10]
    args += ["--n-train", 16, "--n-valid", 4, "--n-test", 4, "--epochs", 1, "--gif", gif]
    summary = run_example("arm_manipulation", *args)
    assert summary["task"] == "cspace" and summary["bins"] == 9 and summary["train_tasks"] == 16
    rows = {row["planner"]: row for row in summary["results"]}
    assert set(rows) == {"ID-vin", "vin"}
    for row in rows.values():
        assert row["K"] == 10 and row["best_epoch"] == 1 and row["diverged"] is False
        assert 0 <= row["test_optimal"] <= row["test_success"] <= 1
    assert "rollout" not in rows["vin"]  # the GIF shows the implicit planner
    assert rows["ID-vin"]["rollout"]["gif"] == str(gif) and frames(gif) >= 2


def test_arm_manipulation_workspace(run_example):
    args = ["--workspace", "--bins", 9, "--planners", "vin", "--iterations", 10, "--n-train", 8, "--n-valid", 4]
    args += ["--n-test", 4, "--epochs", 1, "--mapper-epochs", 1, "--joint-epochs", 1, "--gif", ""]
    summary = run_example("arm_manipulation", *args)
    (row,) = summary["results"]
    assert summary["task"] == "workspace" and row["planner"] == "ID-vin + mapper"
    for key in ("mapper_valid_cell_accuracy", "test_success_pretrained", "test_success", "test_map_cell_accuracy"):
        assert 0 <= row[key] <= 1


def test_plan_large(run_example, tmp_path):
    from idplan.agents import build_planner, planner_config, save_checkpoint

    config = planner_config("vin", hidden=8, q_channels=8, iterations=20)
    save_checkpoint(tmp_path / "c.pt", build_planner(config), config, size=7)
    plot = tmp_path / "large.png"
    summary = run_example("plan_large", tmp_path / "c.pt", "--sizes", 7, 9, "--n", 3, "--plot", plot)
    assert summary["trained_on"] == 7 and [row["size"] for row in summary["rows"]] == [7, 9]
    for row in summary["rows"]:
        assert row["maps"] == 3 and 0 <= row["optimal"] <= row["success"] <= 1
        assert row["forward_iterations"] >= 1 and 0 <= row["forward_converged"] <= 1
    assert plot.stat().st_size > 0


def test_ppo_gridmaze(run_example):
    pytest.importorskip("stable_baselines3", reason="the rl extra")
    summary = run_example("ppo_gridmaze", "--size", 7, "--steps", 256, "--envs", 2, "--episodes", 2)
    assert summary["size"] == 7 and summary["steps"] == 256
    assert set(summary["results"]) == {"planner (implicit VIN)", "SB3 MultiInputPolicy"}
    for result in summary["results"].values():
        assert result["success"] in (0.0, 0.5, 1.0) and result["train_seconds"] >= 0


@pytest.mark.filterwarnings("ignore:You have specified a mini-batch size")  # 32 transitions, batches of 256
def test_ppo_pendulum_dilqr(run_example):
    pytest.importorskip("stable_baselines3", reason="the rl extra")
    args = ["--steps", 32, "--horizon", 5, "--episodes", 2, "--episode-steps", 20, "--envs", 2, "--n-steps", 16]
    summary = run_example("ppo_pendulum_dilqr", *args)
    worst = 20 * (math.pi**2 + 0.1 * 8**2 + 0.001 * 2**2)  # the pendulum's largest cost per step, 20 steps
    assert -worst <= summary["return_before"] < 0 and -worst <= summary["return_after"] < 0
    assert summary["initial"] == {"gravity": 25.0, "mass": 1.0} and set(summary["learned"]) == {"gravity", "mass"}
    # PPO's gradient reaches the planner's physics through the implicit gradient of iLQR
    assert summary["learned"] != summary["initial"] and all(v > 0 for v in summary["learned"].values())


def test_scaling_study(run_example, tmp_path):
    out = tmp_path / "scaling"
    args = ["--sizes", 7, "--planners", "vin", "--ks", "diameter", "--n-train", 16, "--n-valid", 4, "--n-test", 4]
    args += ["--epochs", 1, "--out", out]
    summary = run_example("scaling_study", *args)
    diameter = json.loads((out / "data_7.json").read_text())["diameter"]
    rows = {row["mode"]: row for row in summary["rows"]}
    assert set(rows) == {"implicit", "explicit"} and (out / "data_7.npz").exists()
    assert rows["implicit"]["k"] is None and rows["explicit"]["k"] == math.ceil(diameter / 10) * 10
    for row in rows.values():
        assert row["status"] == "ok", (out / "children.log").read_text()[-2000:]
        assert row["peak_gb"] > 0 and row["best_epoch"] == 1 and 0 <= row["optimal"] <= row["success"] <= 1
    assert len((out / "rows.jsonl").read_text().splitlines()) == 2 and (out / "scaling_study.png").exists()
    log = (out / "children.log").read_text()
    again = run_example("scaling_study", *args)  # resumes: every row is done, nothing is re-run
    assert again["rows"] == summary["rows"] and (out / "children.log").read_text() == log


def test_visual_navigation(run_example, tmp_path):
    from idplan.agents import load_checkpoint

    miniworld_or_skip()
    gif = tmp_path / "nav.gif"
    args = ["--size", 7, "--planners", "conv_gppn", "--modes", "implicit", "--iterations", 10, "--n-train", 4]
    args += ["--n-valid", 2, "--n-test", 2, "--epochs", 1, "--workers", 1, "--data-dir", tmp_path / "nav", "--gif", gif]
    summary = run_example("visual_navigation", *args)
    assert summary["mazes"] == {"train": 4, "valid": 2, "test": 2} and len(list((tmp_path / "nav").glob("*.npz"))) == 3
    (row,) = summary["runs"]
    assert row["planner"] == "ID-conv_gppn" and row["best_epoch"] == 1
    assert 0 <= row["test_optimal"] <= row["test_success"] <= 1 and 0 <= row["test_map_cell_accuracy"] <= 1
    _, extra = load_checkpoint(row["checkpoint"])  # the saved pair holds the tested figures
    assert round(extra["test"]["success"], 4) == row["test_success"]
    assert row["rollout"]["gif"] == str(gif) and gif.stat().st_size > 0


@pytest.mark.slow  # three 200-step pixel swing-up evaluations with iLQR (horizon 20, 50 iterations): ~100 s
def test_visual_pendulum(run_example, tmp_path):
    figure = tmp_path / "imagined.png"
    args = ["--size", 16, "--episodes", 2, "--steps", 30, "--horizon", 5, "--warmup-epochs", 1, "--e2e-epochs", 1]
    args += ["--test-episodes", 1, "--figure", figure]
    summary = run_example("visual_pendulum", *args)
    assert summary["size"] == 16 and summary["figure"] == str(figure) and figure.stat().st_size > 0
    assert len(summary["prediction_mse"]) == len(summary["prediction_mse_warmup"]) == 5
    assert [row["epoch"] for row in summary["end_to_end"]] == [1] and set(summary["learned"]) == {"gravity", "mass"}
    for key in ("swing_up", "swing_up_true_state", "swing_up_after_warmup"):
        assert summary[key]["success"] in (0.0, 1.0) and summary[key]["mean_return"] < 0


def test_node_backward_euler(run_example):
    summary = run_example("node_backward_euler", "--tasks", "spiral", "--runs", 1, "--epochs", 1, "--timing-inits", 1)
    methods = ("euler-ift-cg", "euler-ift-dense", "dopri5-adjoint", "dopri5-backprop")
    assert set(summary["timing"]) == set(methods)
    rows = {row["method"]: row for row in summary["results"]}
    assert set(rows) == set(methods) and all(row["task"] == "spiral" for row in rows.values())
    # one epoch: the two backward-Euler adjoints (CG, dense) give the same gradient and the same model,
    # and so do dopri5's adjoint and backpropagation (to their tolerances)
    np.testing.assert_allclose(
        rows["euler-ift-cg"]["test_mse_mean"], rows["euler-ift-dense"]["test_mse_mean"], rtol=1e-6
    )
    np.testing.assert_allclose(
        rows["dopri5-adjoint"]["test_mse_mean"], rows["dopri5-backprop"]["test_mse_mean"], rtol=1e-4
    )
