"""``--tensorboard``: the metrics.csv rows as TensorBoard scalars in RUN_DIR/tensorboard."""

import sys

import pytest

from idplan.agents.cli import main as idplan_main
from idplan.agents.training.plots import read_metrics

TINY = ["--planner", "vin", "--size", "7", "--n-train", "32", "--n-valid", "8", "--n-test", "8", "--q-channels", "8"]
TINY += ["--iterations", "20", "--batch-size", "16", "--epochs", "2", "--quiet", "--device", "cpu"]


def test_train_tensorboard_scalars_match_metrics_csv(tmp_path):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    out = tmp_path / "run"
    assert idplan_main(["train", *TINY, "--tensorboard", "--out", str(out)]) == 0
    (events,) = (out / "tensorboard").glob("events.out.tfevents.*")  # one event file
    accumulator = event_accumulator.EventAccumulator(str(events.parent))
    accumulator.Reload()
    columns = read_metrics(out / "metrics.csv")
    assert set(accumulator.Tags()["scalars"]) == set(columns) - {"epoch"}
    for name, values in columns.items():
        if name != "epoch":
            logged = accumulator.Scalars(name)
            assert [event.step for event in logged] == [int(epoch) for epoch in columns["epoch"]]
            assert [event.value for event in logged] == pytest.approx(values, rel=1e-6)  # stored as float32
    # --overwrite replaces the folder: the next run's scalars do not mix with these
    assert idplan_main(["train", *TINY, "--epochs", "1", "--tensorboard", "--overwrite", "--out", str(out)]) == 0
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1


def test_tensorboard_without_the_package_is_one_line_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # its import raises ImportError
    for command in ("train", "demo"):
        out = tmp_path / command
        assert idplan_main([command, *TINY, "--tensorboard", "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"idplan {command}: error: --tensorboard needs the tensorboard package: pip install 'idplan[tensorboard]'"
        )
        assert not out.exists()  # refused before any data or directory was made
