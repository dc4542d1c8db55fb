"""Resolving solvers and adjoints given by name or as objects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def resolve(
    value: Any, registry: dict[str, Callable[[], Any]], what: str, accepts: Callable[[Any], bool], example: str
) -> Any:
    """Return ``registry[value]()`` for a name, or ``value`` itself when ``accepts(value)``.

    Raises:
        ValueError: for an unknown name or an object of the wrong kind, listing the valid names.
    """
    if isinstance(value, str):
        if value not in registry:
            raise ValueError(f"unknown {what} {value!r}; choose one of {sorted(registry)}")
        return registry[value]()
    if not accepts(value):
        raise ValueError(f"{what} must be a name in {sorted(registry)} or {example}, got {value!r}")
    return value
