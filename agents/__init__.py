"""idplan.agents: planners and controllers built on the solver core, and agents that use them."""

from typing import Any

from .gated_vin import GatedVIN
from .gppn import GPPN, ConvGPPN
from .planner import MODES, Planner, PlanOutput
from .sym_vin import SymVIN
from .vin import VIN

PLANNERS: dict[str, type[Planner]] = {
    "gated_vin": GatedVIN,
    "vin": VIN,
    "sym_vin": SymVIN,
    "conv_gppn": ConvGPPN,
    "gppn": GPPN,
}


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
]
