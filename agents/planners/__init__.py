"""Planners: Bellman-like steps ``f(s, r; theta)`` solved as fixed points (implicit) or unrolled
(explicit) by one :class:`Planner`; contractive by construction in implicit mode (:mod:`.contraction`)."""

from typing import Any

from .base import MODES, Planner, PlanOutput, default_forward_cap, default_unroll
from .gated_vin import GatedVIN
from .gppn import GPPN, ConvGPPN
from .sym_vin import SymVIN
from .vin import VIN

PLANNERS: dict[str, type[Planner]] = {
    "gated_vin": GatedVIN,
    "vin": VIN,
    "sym_vin": SymVIN,
    "conv_gppn": ConvGPPN,
    "gppn": GPPN,
}
"""The planner classes by the names :func:`make_planner` and the command line take."""


def make_planner(name: str, **kwargs: Any) -> Planner:
    """Build a planner by name (``"gated_vin"``, ``"vin"``, ``"sym_vin"``, ``"conv_gppn"``, ``"gppn"``) with its keyword options."""
    if name not in PLANNERS:
        raise ValueError(f"unknown planner {name!r}; choose one of {sorted(PLANNERS)}")
    return PLANNERS[name](**kwargs)


__all__ = [
    "PLANNERS",
    "MODES",
    "Planner",
    "PlanOutput",
    "GatedVIN",
    "VIN",
    "SymVIN",
    "ConvGPPN",
    "GPPN",
    "make_planner",
    "default_forward_cap",
    "default_unroll",
]
