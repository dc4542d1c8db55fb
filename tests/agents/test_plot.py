"""``idplan plot``: a run's training curves as a PNG."""

import csv

import pytest

from idplan.agents.cli import main as idplan_main
from idplan.agents.training.plots import PANELS, plot_training, read_metrics

PNG = b"\x89PNG\r\n\x1a\n"


def write_metrics(run_dir, rows):
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_plot_draws_the_columns_a_run_has(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        {"epoch": e, "loss": 1.0 / e, "valid_success": 0.5 + 0.1 * e, "forward_iterations": 10 * e, "forward_rel_residual": 10.0**-e}
        for e in (1, 2, 3)
    ]  # fmt: skip
    write_metrics(tmp_path / "run", rows)
    out = plot_training(tmp_path / "run")
    assert out == tmp_path / "run" / "training.png" and out.read_bytes()[:8] == PNG
    assert read_metrics(tmp_path / "run" / "metrics.csv")["loss"] == [1.0, 0.5, 1.0 / 3]
    assert {name for _, _, names in PANELS for name in names} >= {"loss", "valid_success", "backward_iterations"}


def test_cli_plot_writes_the_figure_and_refuses_a_directory_without_metrics(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    write_metrics(tmp_path / "run", [{"epoch": 1, "loss": 0.7}, {"epoch": 2, "loss": 0.6}])
    assert idplan_main(["plot", str(tmp_path / "run"), "--out", str(tmp_path / "curves.png")]) == 0
    assert (tmp_path / "curves.png").read_bytes()[:8] == PNG
    assert idplan_main(["plot", str(tmp_path / "empty")]) == 2
    assert "not a run directory (no metrics.csv)" in capsys.readouterr().err
    (tmp_path / "header_only").mkdir()
    (tmp_path / "header_only" / "metrics.csv").write_text("epoch,loss\n")
    assert idplan_main(["plot", str(tmp_path / "header_only")]) == 2
    assert "no epochs recorded yet" in capsys.readouterr().err
