"""Every Python code block in the README and the documentation site runs as written.

Each block runs alone, in a fresh namespace, from an empty temporary directory (so a block that only
works from the repository root fails here), as a reader would paste it. Blocks are collected from
fenced ```` ```python ```` sections, indented ones (inside lists and admonitions) included. The
result macros of the docs (``docs/hooks/results.py``) must resolve against the committed records.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.DOTALL | re.MULTILINE)


def code_blocks() -> list:
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            body = textwrap.dedent(match.group("body"))
            name = f"{page.relative_to(ROOT)}:{line}"
            blocks.append(pytest.param(body, id=name))
    return blocks


BLOCKS = code_blocks()


def test_blocks_are_collected():
    assert len(BLOCKS) >= 10, "the README and docs have Python examples; the collector found too few"


@pytest.mark.parametrize("code", BLOCKS)
def test_code_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    try:
        exec(compile(code, "<block>", "exec"), {"__name__": "__main__"})
    finally:
        torch.set_default_dtype(dtype)
        torch.set_num_threads(threads)


def results_hook():
    """The docs build's results hook, as a module (skips without mkdocs, the ``docs`` extra)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("docs_results_hook", ROOT / "docs" / "hooks" / "results.py")
    if spec is None or spec.loader is None or importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (the docs extra)")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    return hook


def test_result_macros_resolve():
    """Every ``{{ table(...) }}`` / ``{{ value(...) }}`` / ``{{ source(...) }}`` of the docs expands
    against the committed records (the docs build does the same, and stops on the first miss)."""
    hook = results_hook()
    records = hook.load_records()
    for page in PAGES:
        expanded = hook.expand(page.read_text(encoding="utf-8"), records, str(page.relative_to(ROOT)))
        assert "{{ table(" not in expanded and "{{ value(" not in expanded, page


README_FIGURE = re.compile(r"\*\*(?P<shown>[^*]+)\*\*<!-- (?P<call>value\(.*?\)) -->")


def test_readme_figures_match_records():
    """The README's headline figures are written ``**figure**<!-- value("record", [path], "fmt") -->``:
    each must equal what its record gives, so the README cannot drift from the runs."""
    hook = results_hook()
    records = hook.load_records()
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    figures = list(README_FIGURE.finditer(text))
    assert len(figures) >= 5, "the README's headline table names its records"
    for match in figures:
        expected = hook.expand("{{ " + match.group("call") + " }}", records, "README.md")
        assert match.group("shown") == expected, (
            f"README says {match.group('shown')}, {match.group('call')} gives {expected}"
        )


def test_readme_is_short():
    """The README is a five-minute read (at most 300 lines); the details live on the docs site."""
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300
