"""Receding-horizon control's one warm start, in the trajectory solvers' time-first layout."""

from __future__ import annotations

import torch


def shift_plan(plan: torch.Tensor) -> torch.Tensor:
    """``plan [T, B, m]`` (time first, as :func:`idplan.solvers.ilqr`) advanced one step, the last
    control repeated: the next solve's warm start after the first control was applied."""
    if plan.dim() != 3:
        raise ValueError(f"plan must be [T, B, m] controls (time first), got shape {tuple(plan.shape)}")
    return torch.cat([plan[1:], plan[-1:]])
