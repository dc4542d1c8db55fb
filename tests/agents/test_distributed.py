"""Data-parallel training with torch.distributed: gloo on CPU, two ranks spawned by the tests
themselves on tiny mazes (a few seconds)."""

import multiprocessing
import os
import socket
import time
import traceback
from pathlib import Path

import pytest
import torch

from idplan.agents import make_planner
from idplan.agents.training import TrainConfig, distributed, train_planner
from idplan.envs import generate_splits

PLANNER = {"hidden": 8, "q_channels": 8, "iterations": 60}  # implicit VIN: its adjoint runs in DDP's backward
CONFIG = TrainConfig(epochs=2, batch_size=8, lr=3e-3)
GROUP_TIMEOUT = 60.0  # seconds a rank waits for the others: ample for ranks that start together
FAILURE_TIMEOUT = 2.0  # where a rank fails on purpose
JOIN_DEADLINE = 90.0  # seconds the test waits for its processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, world: int, port: int, out: Path, role: str, timeout: float = GROUP_TIMEOUT) -> None:
    """One rank (a spawned process): join the group as torchrun would (collectives wait ``timeout``
    seconds), then ``role``: ``train`` the tiny planner (weights and history to
    ``out/rank{rank}.pt``), ``crash`` in its second step, ``hang`` (alive but silent for twice the
    timeout, then train), or train with an adjoint tolerance it cannot reach (``adjoint_misses``). An exception's text goes to ``out/error{rank}.txt``."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    torch.set_num_threads(1)
    try:
        splits = generate_splits(7, 16, 4, 4, seed=0, progress=False)
        with distributed.process_group("cpu", timeout=timeout):
            torch.manual_seed(0)
            planner = make_planner(
                "vin",
                **PLANNER,
                adjoint={"rtol": 1e-12, "linear_solver": "forward"} if role == "adjoint_misses" else None,
            )
            if role == "hang":
                time.sleep(2 * timeout)
            if role == "crash":
                forward, calls = planner.forward, []

                def crash_in_second_step(*args, **kwargs):
                    calls.append(1)
                    if len(calls) == 2:
                        raise RuntimeError(f"rank {rank} crashed on purpose")
                    return forward(*args, **kwargs)

                planner.forward = crash_in_second_step
            history = train_planner(planner, splits["train"], splits["valid"], CONFIG, out / "log", progress=False)
        torch.save({"state": planner.state_dict(), "history": history}, out / f"rank{rank}.pt")
    except BaseException:
        (out / f"error{rank}.txt").write_text(traceback.format_exc())
        raise


def _run(jobs: list[tuple]) -> list[int | None]:
    """Start every job's rank (:func:`_rank`'s arguments) in a spawned process; their exit codes
    (``None``: still running at the deadline, then killed)."""
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_rank, args=job) for job in jobs]
    for process in processes:
        process.start()
    start, codes = time.monotonic(), []
    for process in processes:
        process.join(max(0.0, JOIN_DEADLINE - (time.monotonic() - start)))
        codes.append(process.exitcode)
        if process.exitcode is None:
            process.kill()
            process.join()
    return codes


def test_two_ranks_train_the_parameters_of_one_process_with_the_global_batch(tmp_path):
    """DDP with a DistributedSampler and the implicit adjoint in its backward: after two epochs of
    2 steps, both ranks hold the parameters of one process that trained on the same global batches,
    the epoch metrics (summed over ranks) and the sharded validation (reduced) agree, and rank 0 alone
    wrote the metrics files."""
    alone, pair = tmp_path / "alone", tmp_path / "pair"
    alone.mkdir(), pair.mkdir()
    port_alone, port_pair = _free_port(), _free_port()
    codes = _run(
        [(0, 1, port_alone, alone, "train"), (0, 2, port_pair, pair, "train"), (1, 2, port_pair, pair, "train")]
    )
    errors = "".join(p.read_text() for p in tmp_path.glob("*/error*.txt"))
    assert codes == [0, 0, 0], errors
    reference = torch.load(alone / "rank0.pt", weights_only=True)
    ranks = [torch.load(pair / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for name, value in reference["state"].items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name
        torch.testing.assert_close(ranks[0]["state"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    assert any(
        not torch.equal(value, make_planner("vin", **PLANNER).state_dict()[name])
        for name, value in reference["state"].items()
    )
    for row, expected in zip(ranks[0]["history"], reference["history"]):
        assert row["backward_iterations"] > 0 and row["skipped_steps"] == 0  # the implicit adjoint ran, every step
        for key in ("loss", "valid_success", "valid_spl", "valid_starts", "valid_accuracy"):
            assert row[key] == pytest.approx(expected[key], rel=1e-4), key
    for row, other in zip(*(r["history"] for r in ranks)):  # the ranks agree on every metric but the time
        assert {**row, "train_seconds": 0} == {**other, "train_seconds": 0}
    assert len((pair / "log" / "metrics.jsonl").read_text().splitlines()) == CONFIG.epochs


@pytest.mark.parametrize("role", ["crash", "hang"])
def test_a_rank_that_crashes_or_hangs_ends_the_other_with_a_clear_error(tmp_path, role):
    """A rank that raises in its second step (its process ends) or that never reaches a collective
    (alive, silent): rank 0 stops with a DistributedError within the group's timeout, not a hang."""
    port = _free_port()
    codes = _run([(0, 2, port, tmp_path, "train", FAILURE_TIMEOUT), (1, 2, port, tmp_path, role, FAILURE_TIMEOUT)])
    assert codes[0] not in (0, None) and codes[1] not in (0, None)
    error = (tmp_path / "error0.txt").read_text()
    assert "DistributedError: rank 0 of 2 stopped: another process crashed" in error
    assert f"{FAILURE_TIMEOUT:g} s timeout" in error
    if role == "crash":
        assert "rank 1 crashed on purpose" in (tmp_path / "error1.txt").read_text()
    else:  # rank 0 gave up on its own, at the timeout, while rank 1 still slept
        assert f"Timed out waiting {FAILURE_TIMEOUT * 1000:.0f}ms" in error


def test_an_adjoint_that_misses_its_tolerance_on_one_rank_skips_the_step_on_every_rank(tmp_path):
    """Rank 1's implicit adjoint misses its tolerance in every backward (which would raise there and
    leave rank 0 waiting in DDP's all-reduce): both ranks finish their backward, skip every step
    together, and stop with the same TrainingDiverged."""
    port = _free_port()
    codes = _run([(0, 2, port, tmp_path, "train"), (1, 2, port, tmp_path, "adjoint_misses")])
    assert codes == [1, 1]
    for rank in (0, 1):
        error = (tmp_path / f"error{rank}.txt").read_text()
        assert "TrainingDiverged: epoch 1: 2 of 2 steps skipped because the implicit adjoint" in error, error
