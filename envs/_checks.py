"""Argument checks shared by the environments and their datasets."""

from __future__ import annotations

import numpy as np


def check_int(value, name: str, minimum: int, hint: str = "") -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) of at least ``minimum``; else ``ValueError``
    naming ``name`` (with ``hint`` after the bound, e.g. what typical values mean)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}{hint}, got {value!r}")
    return int(value)
