"""A benchmark run with ``--record FILE`` writes a result record (``idplan.envs.records``) whose result
is the JSON line it printed last, with the machine, date, command and commit that produced it; the
documentation's tables are built from such records (``docs/hooks/results.py``).

The fastest benchmark stands for all of them: ``benchmarks/maze_dataset.py`` at tiny settings, run as
a reader runs it (a child process from the repository root).
"""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

from idplan.envs.records import RECORD_KEYS, read_record

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--n", "20", "--sizes", "7", "--baseline-n", "3"]


def run(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "benchmarks/maze_dataset.py", *TINY, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    ).stdout


def test_a_benchmark_run_with_record_writes_its_last_json_line_with_provenance(tmp_path):
    path = tmp_path / "maze_dataset_tiny.json"
    printed = json.loads(run("--record", str(path)).strip().splitlines()[-1])
    record = read_record(path)
    assert set(record) == set(RECORD_KEYS)
    assert record["name"] == "maze_dataset_tiny"
    assert record["result"] == printed and printed["maze_dataset"][0]["size"] == 7
    assert record["command"].startswith("python benchmarks/maze_dataset.py --n 20 --sizes 7")
    assert record["command"].endswith(f"--record {path}")
    assert "CPU cores" in record["machine"] and "torch" in record["machine"]
    assert (
        abs(datetime.date.fromisoformat(record["date"]) - datetime.datetime.now(datetime.timezone.utc).date()).days <= 1
    )
    if (ROOT / ".git").exists():
        assert isinstance(record["commit"], str) and len(record["commit"]) >= 7


def test_without_record_the_run_still_ends_with_its_json_line():
    last = json.loads(run().strip().splitlines()[-1])
    assert set(last) == {"maze_dataset", "cpus"} and last["maze_dataset"][0]["n"] == 20
