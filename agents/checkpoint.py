"""Saving and loading planners: weights plus the configuration that rebuilds them.

A checkpoint holds only tensors and plain values (``torch.load(..., weights_only=True)``), so
loading one never runs code from the file; a foreign or corrupt file raises ``ValueError``.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from . import PLANNERS, make_planner
from .planner import Planner

FORMAT = "idplan-planner-v1"


def planner_config(name: str, **options: Any) -> dict[str, Any]:
    """A planner's rebuild recipe: its registry name and JSON-serialisable options."""
    config = {"name": name, **options}
    try:
        json.dumps(config)
    except TypeError as error:
        raise ValueError(f"planner options must be plain values (names, numbers) to be saved: {error}") from error
    return config


def build_planner(config: dict[str, Any]) -> Planner:
    """Build a planner from :func:`planner_config`'s recipe."""
    options = dict(config)
    return make_planner(options.pop("name"), **options)


def save_checkpoint(path: str | os.PathLike, planner: Planner, config: dict[str, Any], **extra: Any) -> None:
    """Write the planner's weights, its ``config`` and ``extra`` plain values (metrics, data info)."""
    torch.save({"format": FORMAT, "config": config, "state_dict": planner.state_dict(), "extra": extra}, path)


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Planner, dict[str, Any]]:
    """Rebuild a planner from a checkpoint; returns it (in eval mode) and the checkpoint's ``extra``."""
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for non-checkpoints and unsafe pickles
        raise ValueError(f"{path}: not a readable idplan checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an idplan planner checkpoint (expected format {FORMAT!r})")
    config = payload["config"]
    if config.get("name") not in PLANNERS:
        raise ValueError(f"{path}: unknown planner {config.get('name')!r}")
    planner = build_planner(config).to(device)
    planner.load_state_dict(payload["state_dict"])
    planner.eval()
    return planner, payload.get("extra", {})
