"""Result records: what a benchmark or example measured, with the machine, date, commit and command
that produced it. The documentation's tables are generated from these files (``docs/hooks/results.py``),
so a table can never disagree with the run behind it.

A script ends with one JSON line on stdout; with ``--record FILE`` it also writes that line's
object into a record, atomically::

    parser = argparse.ArgumentParser()
    add_record_argument(parser)
    args = parser.parse_args()
    ...
    emit_result({"benchmark": "vs_authors", "rows": rows}, args.record)

A record is ``{"name", "command", "machine", "date", "commit", "note", "result"}``; ``result`` is
the JSON line's object unchanged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write_text

RECORD_KEYS = ("name", "command", "machine", "date", "commit", "note", "result")


def add_record_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--record FILE`` (a ``.json`` path; default: no record) to a script's parser."""
    parser.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="FILE",
        help="also write the final JSON line into FILE (.json) with the machine, date, commit and command",
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe_machine() -> str:
    """One line naming the machine: CPU model and cores, GPU (if torch sees one), torch's threads and version."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{os.cpu_count()} CPU cores ({_cpu_model()}), {gpu}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )


def current_commit(directory: str | os.PathLike | None = None) -> str | None:
    """The short commit of the git checkout holding ``directory`` (``+dirty`` if it has uncommitted
    changes), or ``None`` outside one."""
    cwd = Path(directory) if directory is not None else Path(__file__).resolve().parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd, capture_output=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def make_record(
    name: str,
    result: dict[str, Any],
    *,
    command: str,
    machine: str,
    date: str,
    commit: str | None,
    note: str = "",
) -> dict[str, Any]:
    """A record (see the module docstring); ``result`` must be a JSON object."""
    if not isinstance(result, dict):
        raise TypeError(f"a record's result is a JSON object (dict), got {type(result).__name__}")
    return {
        "name": name,
        "command": command,
        "machine": machine,
        "date": date,
        "commit": commit,
        "note": note,
        "result": result,
    }


def write_record(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Write ``record`` to ``path`` (``.json``) atomically."""
    path = Path(path)
    if path.suffix != ".json":
        raise ValueError(f"a record file ends in .json, got {str(path)!r}")
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"record lacks {missing}")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def read_record(path: str | os.PathLike) -> dict[str, Any]:
    """Read a record written by :func:`write_record` (plain JSON; nothing in it is executed)."""
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [key for key in RECORD_KEYS if key not in record]
    if missing:
        raise ValueError(f"{path}: not a result record (lacks {missing})")
    return record


def emit_result(
    result: dict[str, Any],
    record: str | os.PathLike | None,
    note: str = "",
    *,
    script: str | os.PathLike | None = None,
    argv: Sequence[str] | None = None,
) -> None:
    """Print ``result`` as the script's final JSON line; with a ``record`` path, also write it there
    with this machine, today's date (UTC), the commit and the command that ran.

    The command is ``python SCRIPT ARGV``: pass the script's ``__file__`` and the ``argv`` its
    ``main(argv)`` was given, so a run through ``main([...])`` (a test, another script) records its
    own arguments rather than the host process's ``sys.argv`` (the defaults)."""
    print(json.dumps(result), flush=True)
    if record is None:
        return
    path = Path(script if script is not None else sys.argv[0]).resolve()
    try:
        shown = path.relative_to(Path.cwd())
    except ValueError:
        shown = path
    arguments = list(sys.argv[1:] if argv is None else argv)
    write_record(
        record,
        make_record(
            Path(record).stem,
            result,
            command=shlex.join(["python", str(shown), *map(str, arguments)]),
            machine=describe_machine(),
            date=datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
            commit=current_commit(path.parent),
            note=note,
        ),
    )


__all__ = [
    "add_record_argument",
    "current_commit",
    "describe_machine",
    "emit_result",
    "make_record",
    "read_record",
    "write_record",
]
