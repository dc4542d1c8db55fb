"""How a forward solve stops and reports failure: one typed object that the entry points build from
their keywords and hand to the solve, instead of forwarding each keyword."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .tracker import Tracker, default_check_every


def check_tolerances(atol: float, rtol: float, where: str) -> None:
    """Raise ``ValueError`` unless ``atol, rtol >= 0`` and at least one is positive."""
    if not (atol >= 0 and rtol >= 0) or not (atol > 0 or rtol > 0):
        raise ValueError(f"{where}: tolerances must be >= 0 with at least one positive, got atol={atol}, rtol={rtol}")


def default_tolerances(dtype: torch.dtype) -> tuple[float, float]:
    """``(atol, rtol)`` for :func:`root_find` and :func:`argmin` when the caller gives none:
    ``rtol = max(1e-8, eps**0.75)`` of the dtype (1e-8 in float64, 6.4e-6 in float32) and
    ``atol = rtol / 100``, so that every floating dtype can reach its own default."""
    rtol = max(1e-8, float(torch.finfo(dtype).eps) ** 0.75)
    return rtol / 100, rtol


@dataclass(frozen=True)
class SolveOptions:
    """A forward solve's budget, tolerances and failure policy (see :func:`fixed_point`).

    ``atol``/``rtol`` of ``None`` take :func:`default_tolerances` of the state's dtype.
    """

    max_iter: int
    atol: float | None
    rtol: float | None
    throw: bool = True
    return_best: bool = False
    divergence_factor: float = 1e4
    check_every: int | None = None
    refine: int = 0

    def resolved(self, dtype: torch.dtype, where: str) -> SolveOptions:
        """These options with default tolerances filled in for ``dtype``, checked.

        Raises:
            ValueError: naming the option that is out of range.
        """
        if not isinstance(self.max_iter, int) or self.max_iter < 1:
            raise ValueError(f"{where}: max_iter must be a positive int, got {self.max_iter!r}")
        if not isinstance(self.refine, int) or self.refine < 0:
            raise ValueError(f"{where}: refine must be an int >= 0, got {self.refine!r}")
        if not self.divergence_factor > 1:
            raise ValueError(f"{where}: divergence_factor must be > 1, got {self.divergence_factor}")
        default_atol, default_rtol = default_tolerances(dtype)
        atol = default_atol if self.atol is None else self.atol
        rtol = default_rtol if self.rtol is None else self.rtol
        check_tolerances(atol, rtol, where)
        return SolveOptions(
            self.max_iter,
            atol,
            rtol,
            self.throw,
            self.return_best,
            self.divergence_factor,
            self.check_every,
            self.refine,
        )

    def tracker(self, device: torch.device, max_iter: int | None = None) -> Tracker:
        """A :class:`Tracker` for these options (``max_iter`` overrides the budget)."""
        return Tracker(
            max_iter=self.max_iter if max_iter is None else max_iter,
            atol=self.atol,
            rtol=self.rtol,
            divergence_factor=self.divergence_factor,
            check_every=self.check_every if self.check_every is not None else default_check_every(device),
        )
