"""Progress bars that show only on a terminal (a redirected log gets none of their updates)."""

from __future__ import annotations

from typing import Any

from tqdm.auto import tqdm


def progress_bar(iterable: Any = None, *, show: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, shown when ``show`` and its stream (stderr) is a terminal:
    tqdm's ``disable=None`` is exactly "off on a non-TTY"."""
    return tqdm(iterable, disable=None if show else True, **kwargs)
