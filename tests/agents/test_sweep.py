"""``idplan sweep``: the grid's parsing, the statistics over seeds, the errors before Ray starts,
and two sweeps on tiny data on a local Ray instance (skipped, with the reason, where the ``tune``
extra is not installed; ``.ci/run`` installs it and sets ``IDPLAN_REQUIRE_TUNE`` so they run there)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from idplan.agents.cli import build_parser
from idplan.agents.cli import main as idplan_main
from idplan.agents.training.sweep import aggregate, grid_configs, mean_se, parse_grid, tables

# one tiny training run: 64 7x7 mazes, 2 epochs (seconds)
TINY = ["--planner", "vin", "--size", "7", "--n-train", "64", "--n-valid", "8", "--n-test", "8", "--epochs", "2"]
TINY += ["--q-channels", "8", "--iterations", "30", "--quiet"]

if importlib.util.find_spec("ray") is None and os.environ.get("IDPLAN_REQUIRE_TUNE"):
    raise RuntimeError("IDPLAN_REQUIRE_TUNE is set but Ray Tune is not installed: pip install -e '.[tune]'")
needs_tune = pytest.mark.skipif(
    importlib.util.find_spec("ray") is None,
    reason="Ray Tune is not installed (pip install -e '.[tune]'); .ci/run installs it",
)


def _grid(*specs: str) -> dict:
    args = build_parser().parse_args(["sweep", *[f"--grid={spec}" for spec in specs]])
    return parse_grid(args.grid, args.parser)


def test_grid_values_are_parsed_by_their_options_types():
    grid = _grid("lr=1e-3,2e-3", "mode=implicit,explicit", "free-step=true,false")
    assert grid == {"lr": [1e-3, 2e-3], "mode": ["implicit", "explicit"], "free_step": [True, False]}
    names = list(grid_configs(grid))
    assert len(names) == 8 and names[0] == "lr=0.001,mode=implicit,free_step=True"
    assert list(grid_configs({})) == ["base"]
    assert list(grid_configs(_grid("dataset=../data/a b.npz"))) == ["dataset=.._data_a_b.npz"]  # a file name


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("lr=-1", "positive number"),
        ("mode=implicit,sideways", "'sideways' is not one of"),
        ("seed=1,2", "--seeds"),
        ("device=cpu", "not a training option a grid can vary"),
        ("nonsense=1", "not a training option a grid can vary"),
        ("lr", "expected OPTION=VALUE1,VALUE2"),
        ("lr=1e-3,1e-3", "repeated"),
        ("free-step=yes", "true or false"),
        (("lr=1e-3", "lr=2e-3"), "given twice"),
    ],
)
def test_bad_grids_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        _grid(*([spec] if isinstance(spec, str) else spec))


def test_mean_and_standard_error_over_seeds():
    assert mean_se([0.5, 0.7]) == pytest.approx((0.6, 0.1))  # sample std 0.1414 / sqrt(2)
    assert mean_se([0.25]) == (0.25, None)
    ok = {"test_optimal": 0.5, "test_success": 0.5, "test_spl": 0.5, "best_epoch": 2, "train_seconds": 3.0}
    trials = [
        {"config": "lr=0.1", "overrides": {"lr": 0.1}, "seed": 0, "status": "ok", "metrics": ok},
        {
            "config": "lr=0.1",
            "overrides": {"lr": 0.1},
            "seed": 1,
            "status": "ok",
            "metrics": {**ok, "test_success": 0.7},
        },
        {"config": "lr=0.1", "overrides": {"lr": 0.1}, "seed": 2, "status": "error", "error": "ValueError: boom"},
    ]
    configs = aggregate(trials)
    assert configs["lr=0.1"]["seeds"] == [0, 1] and configs["lr=0.1"]["failed"] == 1
    assert configs["lr=0.1"]["metrics"]["test_success"] == pytest.approx({"mean": 0.6, "se": 0.1})
    assert configs["lr=0.1"]["metrics"]["test_optimal"] == {"mean": 0.5, "se": 0.0}
    table = tables(trials, configs)
    assert "| lr=0.1 | 2 (1 failed) | 50.0 ± 0.0 | 60.0 ± 10.0 | 50.0 ± 0.0 | 3.0 ± 0.0 |" in table
    assert "| lr=0.1 | 2 | - | - | - | - | error: ValueError: boom |" in table


def test_sweep_without_ray_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    assert idplan_main(["sweep", *TINY, "--out", str(tmp_path / "sweep")]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "idplan sweep: error: idplan sweep runs on Ray Tune, which is not installed: pip install 'idplan[tune]'"
    )
    assert not (tmp_path / "sweep").exists()


def test_sweep_checks_its_options_before_ray_starts(tmp_path, capsys):
    (tmp_path / "held").mkdir()
    (tmp_path / "held" / "notes.txt").write_text("another run's")
    assert idplan_main(["sweep", *TINY, "--out", str(tmp_path / "held")]) == 2
    assert "already holds files (notes.txt)" in capsys.readouterr().err
    grid = ["--grid", "planner=vin,gppn", "--grid", "value-bound=0.5"]
    assert idplan_main(["sweep", *TINY, *grid, "--out", str(tmp_path / "sweep")]) == 2
    assert "--value-bound applies to vin and sym_vin, not gppn" in capsys.readouterr().err


@needs_tune
def test_two_seed_sweep_on_local_ray(tmp_path, capsys):
    out = tmp_path / "sweep"
    assert idplan_main(["sweep", *TINY, "--seed", "3", "--seeds", "2", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    assert "| configuration | seeds | %Optimal | %Success | SPL | train s |" in stdout
    assert json.loads(stdout.strip().splitlines()[-1])["trials"] == 2

    results = json.loads((out / "sweep.json").read_text())
    runs = results["trial_runs"]
    assert [(r["config"], r["seed"], r["status"]) for r in runs] == [("base", 3, "ok"), ("base", 4, "ok")]
    assert len({r["dir"] for r in runs} | {r["ray_dir"] for r in runs}) == 4  # each trial its own directories
    for run in runs:  # each trial's own run files, and the metrics it reported are its run's
        run_dir = Path(run["dir"])
        assert run_dir == out.resolve() / "trials" / "base" / f"seed{run['seed']}"
        assert {"checkpoint.pt", "summary.json", "metrics.csv", "metrics.jsonl"} <= {p.name for p in run_dir.iterdir()}
        summary = json.loads((run_dir / "summary.json").read_text())
        assert run["metrics"]["test_success"] == summary["test"]["success"]
        assert run["metrics"]["best_epoch"] == summary["best_epoch"]
        with open(run_dir / "metrics.csv") as f:
            assert [int(row["epoch"]) for row in csv.DictReader(f)] == [1, 2]
    assert runs[0]["metrics"] != runs[1]["metrics"]  # two seeds: other data, other weights
    success = [r["metrics"]["test_success"] for r in runs]
    mean, se = mean_se(success)
    assert results["configs"]["base"]["metrics"]["test_success"] == pytest.approx({"mean": mean, "se": se}, rel=1e-5)
    assert (out / "sweep.md").read_text() in stdout  # the printed table is the file's
    assert idplan_main(["sweep", *TINY, "--out", str(out)]) == 2  # a second sweep never mixes into the first
    assert "already holds files" in capsys.readouterr().err


@needs_tune
def test_failed_trial_is_reported(tmp_path, capsys):
    bad = tmp_path / "bad.npz"
    bad.write_text("not an archive")  # passes the checks before Ray (a file); its trial fails reading it
    out = tmp_path / "sweep"
    assert idplan_main(["sweep", *TINY, "--dataset", str(bad), "--seeds", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("idplan sweep: error: 1 of 1 trials failed (first: base seed 0: ValueError: ")
    assert "cannot read as a numpy .npz archive" in err
    (run,) = json.loads((out / "sweep.json").read_text())["trial_runs"]
    assert run["status"] == "error" and "cannot read" in run["error"]
    assert "cannot read" in (Path(run["ray_dir"]) / "error.txt").read_text()
    assert "| base | 0 (1 failed) |" in (out / "sweep.md").read_text()
