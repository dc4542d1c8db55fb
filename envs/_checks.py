"""Argument checks shared by the environments and their datasets."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


def check_int(value, name: str, minimum: int, hint: str = "") -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) of at least ``minimum``; else ``ValueError``
    naming ``name`` (with ``hint`` after the bound, e.g. what typical values mean)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{hint}, got {value!r}")
    return int(value)


def check_reset_options(options: Any, expected: tuple[str, ...]) -> dict[str, Any]:
    """``reset``'s ``options`` as a new dict (``None``: empty). Not a mapping: ``TypeError``; a key
    outside ``expected``: ``ValueError`` naming it and the expected keys (a typo must not be ignored)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        shown = repr(options) if len(repr(options)) <= 60 else repr(options)[:57] + "..."
        raise TypeError(f"options must be a dict (or None), got {type(options).__name__} {shown}")
    unknown = sorted(set(options) - set(expected), key=repr)
    if unknown:
        raise ValueError(f"unknown reset options {unknown}; expected {', '.join(map(repr, expected))}")
    return dict(options)
