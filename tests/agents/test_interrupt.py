"""Ctrl-C during ``idplan train`` (issue 19): the best and the last completed epoch's weights and the
summary are saved, one line goes to stderr, the exit code is 130 and there is no traceback. An
interrupted save leaves the previous checkpoint whole."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import idplan.agents.cli as cli
import idplan.agents.training.runs as runs
from idplan.agents.training.checkpoints import build_planner, load_checkpoint, planner_config, save_checkpoint

TINY = ["--size", "7", "--n-train", "64", "--n-valid", "16", "--n-test", "8", "--q-channels", "8"]
TINY += ["--iterations", "30", "--batch-size", "16", "--quiet"]


def _idplan(args: list[str], **kwargs) -> subprocess.Popen:
    """``python -m idplan.agents.cli ARGS`` on one thread (the same float reductions in every run),
    with Ctrl-C's default action even where this test runs as a background job (which ignores it)."""
    return subprocess.Popen(
        [sys.executable, "-m", "idplan.agents.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        **kwargs,
    )


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def test_sigint_during_training_saves_the_best_epoch_and_exits_130(tmp_path):
    out = tmp_path / "run"
    process = _idplan(["train", *TINY, "--epochs", "1000", "--out", str(out)])
    metrics = out / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while not (metrics.is_file() and metrics.read_text().strip()):  # the first epoch's line
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no epoch ended (exit {process.returncode}): {process.communicate()[1]}")
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=120)

    assert process.returncode == 130
    assert "Traceback" not in stderr and len(stderr.strip().splitlines()) == 1, stderr
    summary = json.loads((out / "summary.json").read_text())
    completed, best = summary["epochs_completed"], summary["best_epoch"]
    assert summary["interrupted"] is True and summary["epochs"] == 1000 and 1 <= best <= completed < 1000
    assert stderr.startswith(
        f"idplan train: interrupted after epoch {completed} of 1000: best checkpoint (epoch {best})"
    )
    assert str(out / "checkpoint.pt") in stderr
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    success = [row["valid_success"] for row in rows]  # the best epoch is the first with the top success
    assert len(rows) >= best and success[best - 1] == max(success) > max(success[: best - 1], default=-1.0)

    planner, extra = load_checkpoint(out / "checkpoint.pt")  # the project's loader accepts it
    assert extra["epochs"] == best and extra["interrupted"] is True and extra["size"] == 7
    assert torch.load(out / "last.pt", weights_only=True)["extra"]["epochs"] == completed

    # the same run stopped after the best epoch is the reference: training is deterministic for a seed
    reference = tmp_path / "reference"
    rerun = _idplan(["train", *TINY, "--epochs", str(best), "--out", str(reference)])
    _, rerun_err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, rerun_err
    expected, saved = _weights(reference / "checkpoint.pt"), _weights(out / "checkpoint.pt")
    assert expected.keys() == saved.keys()
    for name in expected:
        torch.testing.assert_close(saved[name], expected[name], rtol=0, atol=0, msg=name)


def _fake_training(epochs_done: int, success: list[float]):
    """A ``train_planner`` stand-in: ``epochs_done`` epochs, each setting every weight to the epoch's
    number, then Ctrl-C in the middle of the next epoch (the weights set to -1)."""

    def train_planner(planner, train, valid, config, log_dir, progress, on_epoch_end, tensorboard=False):
        log_dir.joinpath("metrics.jsonl").touch()
        for epoch in range(1, epochs_done + 1):
            with torch.no_grad():
                for p in planner.parameters():
                    p.fill_(float(epoch))
            on_epoch_end({"epoch": epoch, "valid_success": success[epoch - 1]})
        with torch.no_grad():
            for p in planner.parameters():
                p.fill_(-1.0)  # half an epoch
        raise KeyboardInterrupt

    return train_planner


def test_interrupt_saves_best_as_checkpoint_and_last_completed_epoch_as_last(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "train_planner", _fake_training(3, [0.5, 0.9, 0.7]))
    out = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "30", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert err == (
        f"idplan train: interrupted after epoch 3 of 30: best checkpoint (epoch 2) saved to {out / 'checkpoint.pt'}, "
        f"the last epoch's weights to {out / 'last.pt'}\n"
    )
    for name, epoch in (("checkpoint.pt", 2), ("last.pt", 3)):
        planner, extra = load_checkpoint(out / name)
        assert extra["epochs"] == epoch
        assert all(torch.all(p == epoch) for p in planner.parameters()), name
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] and summary["epochs_completed"] == 3 and summary["best_epoch"] == 2


def test_interrupt_before_any_epoch_ends_saves_no_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "train_planner", _fake_training(0, []))
    out = tmp_path / "run"
    assert cli.main(["train", *TINY, "--epochs", "30", "--out", str(out)]) == 130
    assert capsys.readouterr().err == (
        "idplan train: interrupted during epoch 1 of 30: no epoch completed, no checkpoint saved\n"
    )
    assert not (out / "checkpoint.pt").exists() and json.loads((out / "summary.json").read_text())["interrupted"]


def test_interrupt_while_generating_data_is_one_line_and_130(tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(runs, "generate_splits", interrupted)
    assert cli.main(["train", *TINY, "--out", str(tmp_path / "run")]) == 130
    assert capsys.readouterr().err == "idplan train: interrupted\n"
    assert not (tmp_path / "run").exists()


def test_an_interrupted_checkpoint_save_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    config = planner_config("vin", hidden=8, q_channels=6)
    torch.manual_seed(0)
    old = build_planner(config)
    save_checkpoint(tmp_path / "checkpoint.pt", old, config, epochs=1)

    def torn_save(payload, path):
        Path(path).write_bytes(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torn_save)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path / "checkpoint.pt", build_planner(config), config, epochs=2)
    monkeypatch.undo()
    loaded, extra = load_checkpoint(tmp_path / "checkpoint.pt")
    assert extra == {"epochs": 1} and os.listdir(tmp_path) == ["checkpoint.pt"]
    for name, value in old.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], value)
