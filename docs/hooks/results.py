"""MkDocs hook: tables and figures generated from the result records, never copied by hand.

Records are the JSON files the benchmarks and examples write with ``--record FILE``
(:mod:`idplan.envs.records`), kept in ``benchmarks/results/`` and ``examples/results/``; a record's
name is its file's stem. A page calls, in its markdown:

- ``{{ table("vs_authors_cpu", ["rows"], columns=["config", "width", "speedup"]) }}``: the list of
  objects (or the object of objects, or of scalars) at that path as a table, followed by a line
  naming the command, machine, date and commit that produced it;
- ``{{ value("vs_authors_cpu", ["rows", {"config": "VIN explicit", "width": 150}, "speedup"], "{:.2f}x") }}``:
  one number; a path step that is an object picks the one list item whose fields match it;
- ``{{ source("vs_authors_cpu") }}``: that provenance line alone.

Arguments are Python literals (read with ``ast.literal_eval``, nothing is executed). A missing
record, a path that does not resolve, or an ambiguous selection stops the build. The figures
(``*.png``, ``*.gif``) beside the records are published under ``figures/``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

from idplan.envs.records import read_record

ROOT = Path(__file__).resolve().parents[2]
RECORD_DIRS = (ROOT / "benchmarks" / "results", ROOT / "examples" / "results")
FIGURE_DIRS = (ROOT / "benchmarks", ROOT / "benchmarks" / "results", ROOT / "examples" / "results")
MACRO = re.compile(r"\{\{\s*(table|value|source)\((.*?)\)\s*\}\}", re.DOTALL)


class ResultError(ValueError):
    """A macro that does not resolve against the records."""


def load_records() -> dict[str, dict[str, Any]]:
    records: dict[str, dict[str, Any]] = {}
    for directory in RECORD_DIRS:
        for path in sorted(directory.glob("*.json")):
            record = read_record(path)  # a file there that is not a record stops the build
            if path.stem in records:
                raise ResultError(f"two records are named {path.stem!r}")
            records[path.stem] = record
    return records


def resolve(record: dict[str, Any], path: list[Any]) -> Any:
    node: Any = record["result"]
    for step in path:
        if isinstance(step, dict):
            if not isinstance(node, list):
                raise ResultError(f"selector {step} applied to a {type(node).__name__}, not a list")
            hits = [item for item in node if isinstance(item, dict) and all(item.get(k) == v for k, v in step.items())]
            if len(hits) != 1:
                raise ResultError(f"selector {step} matches {len(hits)} items, not 1")
            node = hits[0]
        elif isinstance(node, dict):
            if step not in node:
                raise ResultError(f"key {step!r} not found (keys: {list(node)[:12]})")
            node = node[step]
        elif isinstance(node, list) and isinstance(step, int):
            node = node[step]
        else:
            raise ResultError(f"cannot take {step!r} of a {type(node).__name__}")
    return node


def fmt(value: Any, spec: str | None = None) -> str:
    if spec is not None and value is not None:
        return spec.format(value)
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        return ", ".join(fmt(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {fmt(v)}" for k, v in value.items())
    return str(value)


def source_line(record: dict[str, Any]) -> str:
    commit = f", commit `{record['commit']}`" if record.get("commit") else ""
    note = f" {record['note'].rstrip('.')}." if record.get("note") else ""
    return f"*`{record['command']}` on {record['machine']}, {record['date']}{commit}.{note}*"


def table(
    record: dict[str, Any],
    path: list[Any] | None = None,
    columns: list[Any] | None = None,
    headers: list[str] | None = None,
    formats: dict[str, str] | None = None,
    index: str = "",
) -> str:
    node = resolve(record, path or [])
    formats = formats or {}
    if isinstance(node, dict) and all(not isinstance(v, (dict, list)) for v in node.values()):
        keys = columns or list(node)
        lines = ["| | |", "| --- | --- |"]
        lines += [f"| {k} | {fmt(resolve({'result': node}, [k]), formats.get(k))} |" for k in keys]
        return "\n".join(lines) + "\n\n" + source_line(record)
    if isinstance(node, dict):  # an object of objects: one row per key
        rows = [{index or " ": name, **value} for name, value in node.items() if isinstance(value, dict)]
        lead = [index or " "]
    elif isinstance(node, list):
        rows, lead = node, []
    else:
        raise ResultError(f"a table needs a list or an object, found {type(node).__name__}")
    if columns is None:
        columns = lead + [k for k in dict.fromkeys(k for row in rows for k in row) if k not in lead]
    else:
        columns = lead + list(columns)
    names = (
        lead + list(headers)
        if headers is not None
        else [c if isinstance(c, str) else ".".join(map(str, c)) for c in columns]
    )
    if len(names) != len(columns):
        raise ResultError(f"{len(headers or [])} headers for {len(columns) - len(lead)} columns")
    lines = ["| " + " | ".join(names) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        cells = []
        for column in columns:
            steps = column if isinstance(column, list) else [column]
            try:
                value = resolve({"result": row}, steps)
            except ResultError:
                value = None
            key = column if isinstance(column, str) else ".".join(map(str, column))
            cells.append(fmt(value, formats.get(key)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\n" + source_line(record)


def expand(markdown: str, records: dict[str, dict[str, Any]], where: str = "") -> str:
    """Replace every macro in ``markdown`` by its text; raises :class:`ResultError` naming ``where``."""

    def one(match: re.Match[str]) -> str:
        kind, text = match.groups()
        try:
            call = ast.parse(f"f({text})", mode="eval").body
            assert isinstance(call, ast.Call)
            args = [ast.literal_eval(a) for a in call.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
            name, *rest = args
            if name not in records:
                raise ResultError(f"no record named {name!r} (have: {sorted(records)})")
            record = records[name]
            if kind == "source":
                return source_line(record)
            if kind == "value":
                path, *spec = rest
                return fmt(resolve(record, path), kwargs.get("fmt", spec[0] if spec else None))
            return table(record, *rest, **kwargs)
        except (ResultError, ValueError, SyntaxError, TypeError, KeyError, IndexError) as error:
            raise ResultError(f"{where}: {match.group(0)[:120]}: {error}") from error

    return MACRO.sub(one, markdown)


_records: dict[str, dict[str, Any]] = {}
API_SOURCE = ROOT / "build" / "docs-src"


@event_priority(100)  # before mkdocstrings' on_config, which fixes its search paths (dropping missing ones)
def on_config(config: Any) -> Any:
    """Lay out ``idplan/{envs,agents,solvers}`` as links to the top-level folders (what
    ``[tool.setuptools.package-dir]`` does at install time) so mkdocstrings reads the sources. A
    regular package (with ``__init__.py``), so the ``idplan`` console script on ``sys.path`` is not
    taken for a portion of it."""
    package = API_SOURCE / "idplan"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text('"""idplan: implicit differentiable planning and control."""\n')
    for name in ("envs", "agents", "solvers"):
        link = package / name
        if not link.is_symlink():
            link.symlink_to(ROOT / name, target_is_directory=True)
    return config


def on_pre_build(config: Any) -> None:
    _records.clear()
    _records.update(load_records())


def on_files(files: Any, config: Any) -> Any:
    for directory in FIGURE_DIRS:
        for path in sorted([*directory.glob("*.png"), *directory.glob("*.gif")]):
            files.append(File.generated(config, f"figures/{path.name}", abs_src_path=str(path)))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return expand(markdown, _records, page.file.src_uri)
