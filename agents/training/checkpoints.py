"""Saving and loading planners: weights plus the configuration that rebuilds them.

A checkpoint holds only tensors and plain values (``torch.load(..., weights_only=True)``), so
loading one never runs code from the file; a foreign or corrupt file raises ``ValueError``. A
planner that plans on a learned map is saved with its mapper (:data:`MAPPERS`) and loaded back as a
:class:`~idplan.agents.mappers.MappedPlanner` by :func:`load_mapped_checkpoint`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch
from torch import nn

from ...envs.atomic import atomic_path
from ..mappers.mapped import MappedPlanner
from ..mappers.panorama import PanoramaMapper
from ..mappers.workspace import WorkspaceMapper
from ..planners import PLANNERS, make_planner
from ..planners.base import Planner

MAPPERS = {"panorama": PanoramaMapper, "workspace": WorkspaceMapper}

FORMAT = "idplan-planner-v1"


def planner_config(name: str, **options: Any) -> dict[str, Any]:
    """A planner's rebuild recipe: its registry name and JSON-serialisable options."""
    config = {"name": name, **options}
    try:
        json.dumps(config)
    except TypeError as error:
        raise ValueError(f"planner options must be plain values (names, numbers) to be saved: {error}") from error
    return config


LEGACY_ADJOINT_KEYS = {"backward_solver": "linear_solver", "backward_iterations": "max_iter", "backward_tol": "rtol"}


def upgrade_options(config: dict[str, Any]) -> dict[str, Any]:
    """A recipe's options with those of recipes saved before planners took ``adjoint=``
    (``backward_solver``/``backward_iterations``/``backward_tol``) moved into ``adjoint``."""
    options = dict(config)
    legacy = {LEGACY_ADJOINT_KEYS[key]: options.pop(key) for key in list(options) if key in LEGACY_ADJOINT_KEYS}
    if legacy:
        options["adjoint"] = {**{k: v for k, v in legacy.items() if v is not None}, **options.get("adjoint", {})}
    return options


def build_planner(config: dict[str, Any]) -> Planner:
    """Build a planner from :func:`planner_config`'s recipe (old recipes: :func:`upgrade_options`)."""
    options = upgrade_options(config)
    return make_planner(options.pop("name"), **options)


def save_checkpoint(
    path: str | os.PathLike,
    planner: Planner,
    config: dict[str, Any],
    mapper: nn.Module | None = None,
    mapper_config: dict[str, Any] | None = None,
    **extra: Any,
) -> None:
    """Write the planner's weights, its ``config`` and ``extra`` plain values (metrics, data info);
    with ``mapper``, also its weights and ``mapper_config`` (``{"name": one of MAPPERS, **options}``).
    The file is replaced atomically: an interrupted save leaves the previous checkpoint whole."""
    payload = {"format": FORMAT, "config": config, "state_dict": planner.state_dict(), "extra": extra}
    if mapper is not None:
        if not mapper_config or mapper_config.get("name") not in MAPPERS:
            raise ValueError(f"mapper_config must name one of {sorted(MAPPERS)}, got {mapper_config!r}")
        payload["mapper"] = {"config": planner_config(**mapper_config), "state_dict": mapper.state_dict()}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: str | os.PathLike, device: str | torch.device) -> dict[str, Any]:
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as error:  # torch raises several types for non-checkpoints and unsafe pickles
        raise ValueError(f"{path}: not a readable idplan checkpoint ({type(error).__name__}: {error})") from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an idplan planner checkpoint (expected format {FORMAT!r})")
    return payload


def _rebuild(path, recipe: dict[str, Any], registry: dict, what: str, device) -> nn.Module:
    options = upgrade_options(recipe["config"])
    name = options.pop("name", None)
    if name not in registry:
        raise ValueError(f"{path}: unknown {what} {name!r}")
    try:
        module = registry[name](**options).to(device)
    except TypeError as error:  # an option this planner does not take
        raise ValueError(f"{path}: its {what} options do not build a {name!r}: {error}") from error
    try:
        module.load_state_dict(recipe["state_dict"])
    except RuntimeError as error:  # missing, unexpected or mis-shaped weights
        first = str(error).strip().splitlines()[0]
        raise ValueError(f"{path}: its weights do not fit the {what} {name!r} its config names ({first})") from error
    return module.eval()


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[Planner, dict[str, Any]]:
    """Rebuild a planner from a checkpoint; returns it (in eval mode) and the checkpoint's ``extra``."""
    payload = _read(path, device)
    return _rebuild(path, payload, PLANNERS, "planner", device), payload.get("extra", {})


def load_mapped_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[MappedPlanner, dict[str, Any]]:
    """Rebuild a mapper and its planner (saved with ``mapper=``); returns the pair and ``extra``."""
    payload = _read(path, device)
    if "mapper" not in payload:
        raise ValueError(f"{path}: a planner without a mapper (it plans on given maps, not on observations)")
    mapper = _rebuild(path, payload["mapper"], MAPPERS, "mapper", device)
    planner = _rebuild(path, payload, PLANNERS, "planner", device)
    return MappedPlanner(mapper, planner).eval(), payload.get("extra", {})
