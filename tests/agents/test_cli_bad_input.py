"""The ``idplan`` CLI on bad input (issue 19): an ``error:`` line naming the option and exit code 2,
never a traceback; all options checked before any data is generated or any directory made; runs
never mixed in one ``--out``; help that shows every default; ``--version``."""

import argparse
import contextlib
import io
import json
import math
import time
from importlib import metadata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import idplan.agents.cli as cli
import idplan.agents.training.runs as runs
from idplan.agents.training.checkpoints import build_planner, planner_config, save_checkpoint
from idplan.agents.training.imitation import TrainConfig, train_planner
from idplan.envs import generate_splits

TINY = ["--size", "7", "--n-train", "48", "--n-valid", "8", "--n-test", "8", "--q-channels", "8"]
TINY += ["--iterations", "30", "--batch-size", "16", "--epochs", "1", "--quiet"]
GIB = 2**30


def _error(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def _exit_code(argv: list[str]) -> int:
    """``main``'s exit code, whether it returns it or argparse exits."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


# ---------------------------------------------------------------- one --out, one run


def test_an_out_directory_holding_files_is_refused_without_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"epoch": 1, "loss": 0.5}\n')
    assert cli.main(["train", *TINY, "--out", str(out)]) == 2
    err = _error(capsys)
    assert err.startswith("idplan train: error: --out") and "metrics.jsonl" in err and "--overwrite" in err
    assert (out / "metrics.jsonl").read_text() == '{"epoch": 1, "loss": 0.5}\n'  # untouched
    (out / "metrics.jsonl").unlink()
    (out / "notes.txt").write_text("mine")  # any file counts: a directory someone uses
    assert cli.main(["train", *TINY, "--out", str(out)]) == 2
    (out / "notes.txt").unlink()
    assert cli.main(["train", *TINY, "--out", str(out)]) == 0  # an empty directory is fine
    assert cli.main(["train", *TINY, "--out", str(tmp_path / "run" / "metrics.csv")]) == 2  # a file
    assert "is a file" in _error(capsys)


def test_overwrite_deletes_the_previous_runs_files_first(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    stale = {
        "metrics.jsonl": "\n".join(json.dumps({"epoch": e, "loss": 9.0}) for e in range(1, 8)) + "\n",
        "metrics.csv": "epoch,loss\n1,9.0\n",
        "summary.json": '{"stale": true}',
        "last.pt": "stale",
        "checkpoint.pt": "stale",
        ".checkpoint.0badf00d.tmp.pt": "half-written by a killed run",
        "notes.txt": "not a run file: kept",
    }
    for name, text in stale.items():
        (out / name).write_text(text)
    assert cli.main(["train", *TINY, "--overwrite", "--out", str(out)]) == 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # this run's one epoch only
    assert "9.0" not in (out / "metrics.csv").read_text()
    summary = json.loads((out / "summary.json").read_text())
    assert "stale" not in summary and summary["epochs_completed"] == 1 and summary["interrupted"] is False
    assert not (out / "last.pt").exists() and not (out / ".checkpoint.0badf00d.tmp.pt").exists()
    assert (out / "notes.txt").read_text() == "not a run file: kept"
    torch.load(out / "checkpoint.pt", weights_only=True)


def test_train_planner_does_not_truncate_another_runs_metrics(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1}\n')
    data = generate_splits(7, 16, 4, 4, seed=0, progress=False)
    planner = build_planner(planner_config("vin", hidden=8, q_channels=4, iterations=20))
    with pytest.raises(ValueError, match="metrics.jsonl holds another run's metrics"):
        train_planner(planner, data["train"], None, TrainConfig(epochs=1), tmp_path, progress=False)
    assert (tmp_path / "metrics.jsonl").read_text() == '{"epoch": 1}\n'


# ---------------------------------------------------------------- checked before anything is made


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--planner", "gated_vin", "--value-bound", "0.5"], "--value-bound applies to vin and sym_vin"),
        (["--planner", "gated_vin", "--free-step"], "--free-step applies to"),
        (["--task", "arm", "--dataset", "maps.npz"], "--dataset reads maze files"),
        (["--dataset", "no/such/file.npz"], "--dataset no/such/file.npz: no such file"),
        (["--kernel-size", "4"], "kernel_size"),
        (["--size", "5000"], "of memory"),
        (["--lr", "-1"], "argument --lr"),
        (["--solver", "nonsense"], "argument --solver"),
        (["--backward-solver", "nonsense"], "argument --backward-solver"),
    ],
)
@pytest.mark.parametrize("command", ["train", "demo"])
def test_a_run_that_fails_validation_makes_no_directory_and_generates_no_data(
    command, argv, message, tmp_path, monkeypatch, capsys
):
    def generate(*args, **kwargs):
        raise AssertionError("data generated before the options were checked")

    monkeypatch.setattr(runs, "generate_splits", generate)
    monkeypatch.setattr(runs, "generate_arm_splits", generate)
    out = tmp_path / "deep" / "run"
    assert _exit_code([command, *argv, "--out", str(out)]) == 2
    assert message in _error(capsys)
    assert not (tmp_path / "deep").exists()


def test_a_dataset_too_large_for_memory_is_refused_fast_naming_both_sizes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(runs, "available_memory", lambda: 8 * GIB)
    start = time.perf_counter()
    assert cli.main(["train", "--size", "1000", "--out", str(tmp_path / "run")]) == 2
    assert time.perf_counter() - start < 1.0
    err = _error(capsys)
    # 10,700 tasks of 10^6 cells: 10 bytes of arrays and 41 of tensors a cell, a split's arrays twice
    needed = (10_700 * 51 + 10_000 * 10) * 10**6 + 2 * 8 * 20_700
    assert f"about {needed / GIB:.3g} GiB of memory for 10,700 1000x1000 tasks; 8 GiB is available" in err
    assert "--size" in err and not (tmp_path / "run").exists()
    monkeypatch.setattr(runs, "available_memory", lambda: 64 * GIB)  # the default 15x15 run fits
    runs.check_memory((10_000, 200, 500), 15, "idplan train")


def test_eval_refuses_a_generated_test_set_too_large_before_reading_the_checkpoint(tmp_path, capsys):
    assert cli.main(["eval", str(tmp_path / "missing.pt"), "--size", "100000"]) == 2
    assert "idplan eval --size would need about" in _error(capsys)


def _is_positive_number(text: str) -> bool:
    try:
        return math.isfinite(float(text)) and float(text) > 0
    except ValueError:
        return False


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.floats(max_value=0.0).map(repr), st.sampled_from(["inf", "-inf", "nan", "1e999"]), st.text()))
def test_learning_rates_that_are_not_positive_numbers_are_refused_naming_lr(value):
    if _is_positive_number(value) or "\x00" in value:
        return  # a valid learning rate (or a string no command line can hold)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert _exit_code(["train", f"--lr={value}"]) == 2
    assert "idplan train: error: argument --lr: expected a" in err.getvalue()


def test_bad_floats_end_in_an_error_line_naming_the_option(capsys):
    for option, value in (("--lr", "0"), ("--tol", "nan"), ("--jacobian-weight", "-1"), ("--value-bound", "inf")):
        assert _exit_code(["train", option, value]) == 2
        err = _error(capsys)
        assert f"argument {option}:" in err, err


# ---------------------------------------------------------------- play


@pytest.mark.parametrize(
    "argv, message",
    [
        (["GridMaze"], "unknown environment 'GridMaze' (did you mean idplan/GridMaze-v0?)"),
        (["Foo-v9"], "idplan/GridMaze-v0, idplan/ArmCSpace-v0"),
        (["idplan/GridMaze-v0", "--start", "down"], "--start applies to idplan/Pendulum-v0"),
        (["idplan/CartPole-v0", "--start", "random"], "--start for idplan/CartPole-v0 must be one of down, up"),
        (["idplan/Pendulum-v0", "--size", "9"], "--size applies to idplan/GridMaze-v0"),
        (["idplan/GridMaze-v0", "--record", "maze.mp4"], "--record maze.mp4"),
        (["idplan/GridMaze-v0", "--episodes", "0"], "argument --episodes"),
    ],
)
def test_play_reports_bad_input_in_one_line(argv, message, capsys):
    assert _exit_code(["play", *argv]) == 2
    err = _error(capsys)
    last = err.strip().splitlines()[-1]  # argparse's usage lines come first
    assert last.startswith("idplan play: error:") and message in last


# ---------------------------------------------------------------- eval without a test set


def test_eval_without_dataset_or_size_uses_the_checkpoints_map_size(tmp_path, capsys):
    config = planner_config("vin", hidden=8, q_channels=4, iterations=20)
    torch.manual_seed(0)
    save_checkpoint(tmp_path / "c.pt", build_planner(config), config, epochs=1, size=7)
    assert cli.main(["eval", str(tmp_path / "c.pt"), "--n", "4"]) == 0
    out = capsys.readouterr().out
    result = json.loads(out.strip().splitlines()[-1])
    assert result["maps"] == 4 and result["dataset"].startswith("4 generated 7x7 mazes")
    assert "the checkpoint's own map size, as neither --dataset nor --size was given" in out
    assert cli.main(["eval", str(tmp_path / "c.pt"), "--size", "7", "--dataset", "d.npz"]) == 2
    assert "not both" in _error(capsys)
    save_checkpoint(tmp_path / "old.pt", build_planner(config), config)  # no size recorded
    assert cli.main(["eval", str(tmp_path / "old.pt"), "--n", "4"]) == 2
    assert "does not record its map size: give --dataset FILE or --size N" in _error(capsys)


# ---------------------------------------------------------------- help and version


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("command", ["demo", "train", "eval", "play"])
def test_every_option_has_help_and_its_default_is_shown(command, capsys):
    parser = _subparsers(cli.build_parser())[command]
    with pytest.raises(SystemExit) as stop:
        cli.main([command, "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())  # undo the wrapping
    for action in parser._actions:
        assert action.help, f"{command} {action.dest}: no help line"
        default = action.default
        if action.option_strings and default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {default})" in text, f"{command} {action.option_strings[0]}: default not shown"


def test_a_bare_train_says_what_it_does():
    help_text = " ".join(_subparsers(cli.build_parser())["train"].format_help().split())
    assert "10,000" in help_text and "30 epochs" in help_text
    assert "(default: 10000)" in help_text and "(default: 30)" in help_text


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"idplan {metadata.version('idplan')}"
