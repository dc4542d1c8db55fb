"""The differentiable-planner pipeline shared by VIN, ConvGPPN, GPPN and SymVIN.

map (and goal) ``[B, C, m, m]`` -> reward map ``r`` -> fixed point of a
Bellman-like step ``s = f(s, r; theta)`` (input injected, weights tied) -> policy logits
``[B, A, m, m]`` for every cell and action.

Two modes share every weight:

- ``"implicit"`` (IDP): the fixed point is solved without a graph by :func:`~idplan.solvers.fixed_point`
  (forward iteration, Anderson or Broyden, to a tolerance, with a cap that grows with the map) and
  differentiated by the implicit adjoint (also to a tolerance): backward cost independent of the
  number of forward iterations.
- ``"explicit"`` (ADP): ``iterations`` unrolled applications of ``f`` from the zero state,
  differentiated by autograd through every one (the papers' VIN/GPPN).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import nn

from ...solvers import (
    ImplicitAdjoint,
    NonConvergenceWarning,
    Solution,
    fixed_point,
    make_adjoint,
    make_solver,
    max_norm_gain,
    pack,
    state_spec,
)

MODES = ("implicit", "explicit")
"""A planner's two modes: ``"implicit"`` (the fixed point, solved and differentiated implicitly) and
``"explicit"`` (a fixed number of unrolled steps, differentiated by autograd)."""
PADDINGS = ("zeros", "circular")
State = Any  # a tensor [B, c, m, m] or a tuple of them


@dataclass
class PlanOutput:
    """What a planner returns.

    Attributes:
        logits: ``[B, A, m, m]`` action logits for every cell.
        values: ``[B, 1, m, m]`` the planner's value map (for overlays and inspection).
        state: the fixed point (or last iterate) of the step.
        solution: the implicit mode's :class:`~idplan.solvers.Solution` (forward stats; backward
            stats after ``backward()``), ``None`` in explicit mode.
        stats: forward iterations and relative residual of the last step (both modes).
        reward: the encoded reward map ``r`` the step was iterated with (for Jacobian penalties).
    """

    logits: torch.Tensor
    values: torch.Tensor
    state: State
    solution: Solution | None = None
    stats: dict[str, float] = field(default_factory=dict)
    reward: torch.Tensor | None = None

    def backward_stats(self) -> dict[str, float]:
        """Backward (adjoint) iterations and residual, once ``backward()`` has run (implicit mode)."""
        if self.solution is None or self.solution.backward.linear is None:
            return {}
        linear = self.solution.backward.linear
        return {
            "backward_iterations": int(linear.steps),
            "backward_rel_residual": float(linear.rel_residual.max()),
            "backward_converged": float(linear.converged.float().mean()),
        }


def default_forward_cap(size: int) -> int:
    """Implicit forward cap on ``size x size`` maps: ``max(200, 2 size**2)``, twice the number of
    cells: above the length of any shortest path on the grid (value information needs that many
    steps to cross it), with as much again for the solver's geometric tail (on the trained demo
    GatedVIN, Anderson to 1e-6 takes a median 100 steps on 15x15 mazes, 269 at the 99th
    percentile, 441 at most)."""
    return max(200, 2 * size * size)


def default_unroll(size: int) -> int:
    """Explicit unrolled steps on ``size x size`` maps: ``5 size``, above the longest shortest
    path of the generated mazes (about ``3-4 size``)."""
    return 5 * size


class Planner(nn.Module):
    """Base class: subclasses define :meth:`initial_state`, :meth:`step`, :meth:`policy_logits`
    and :meth:`value_map` (and may override :meth:`encode`).

    Args:
        actions: number of actions ``A`` (4: N, W, S, E; 8 adds the diagonals).
        in_channels: input channels ``C`` (2: obstacle map and goal map).
        hidden: channels ``l_h`` of the 3x3 input encoder (paper: 150).
        kernel_size: ``F`` of the step's convolutions (odd).
        padding: ``"zeros"`` (mazes) or ``"circular"`` (maps on a torus).
        mode: ``"implicit"`` or ``"explicit"``.
        iterations: explicit: the number of unrolled steps ``K``; implicit: the forward cap.
            ``None`` (default) follows the map: implicit, :func:`default_forward_cap` (``max(200,
            2 m * m)``: no shortest path on an ``m x m`` grid is longer than ``m * m``, and a
            contraction reaches its tolerance in about its longest path plus its tail); explicit,
            :func:`default_unroll` (``5 m``: at least the longest shortest path of the generated
            mazes, about ``3-4 m``).
        tol: implicit forward relative tolerance; ``None`` for the planner's default
            (``default_tol``). On a step that contracts with factor ``c`` the distance to the fixed
            point is at most ``residual / (1 - c)``: a slowly contracting step needs a tighter
            residual for the same accuracy.
        solver: implicit forward solver (``"forward"``, ``"anderson"``, ``"broyden"`` or an object);
            ``None`` for the planner's default (``default_solver``).
        adjoint: how implicit mode is differentiated, an adjoint object or a plain dict of
            :class:`~idplan.solvers.ImplicitAdjoint` options (what a checkpoint stores).
            ``None`` (default): ``ImplicitAdjoint`` with the planner's ``default_backward_solver``,
            ``rtol=1e-4``, and ``max_iter=None``, which here means the forward cap: the adjoint runs
            to tolerance, and one that still stops short raises
            :class:`~idplan.solvers.ConvergenceError` in ``backward()`` (the gradient would not be
            exact; the training loop skips such a step and counts it). An int ``max_iter`` is a
            deliberately truncated budget (the papers' ``K_bwd = 15``), whose outcome is reported
            in :meth:`PlanOutput.backward_stats`. ``PhantomAdjoint(...)`` gives the one-step
            (Jacobian-free) gradient.

    The defaults make the implicit gradient exact up to the tolerances on a planner whose step
    contracts: forward and adjoint run to tolerance, with caps that grow with the map.
    ``benchmarks/gradient_quality.py`` measures the cosine to the exact float64 gradient on
    trained checkpoints. :class:`~idplan.agents.GatedVIN` contracts by construction;
    VIN and SymVIN do with ``value_bound``, ConvGPPN and GPPN with ``contractive`` (both on by
    default in implicit mode).
    """

    default_tol = 1e-4
    default_solver = "forward"
    default_backward_solver = "gmres"

    def __init__(
        self,
        *,
        actions: int = 4,
        in_channels: int = 2,
        hidden: int = 150,
        kernel_size: int = 3,
        padding: str = "zeros",
        mode: str = "implicit",
        iterations: int | None = None,
        tol: float | None = None,
        solver: Any = None,
        adjoint: Any = None,
    ):
        super().__init__()
        if padding not in PADDINGS:
            raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd int, got {kernel_size}")
        if actions < 1 or in_channels < 1 or hidden < 1:
            raise ValueError(
                f"actions, in_channels and hidden must be positive, got {actions}, {in_channels}, {hidden}"
            )
        self.actions, self.in_channels, self.hidden = actions, in_channels, hidden
        self.kernel_size, self.padding = kernel_size, padding
        self.mode = mode
        if iterations is not None and iterations < 1:
            raise ValueError(f"iterations must be >= 1 or None (follow the map), got {iterations}")
        self.iterations = iterations
        if tol is not None and not (isinstance(tol, (int, float)) and 0 < tol < float("inf")):
            raise ValueError(f"tol must be a positive finite number, got {tol!r}")
        self.tol = tol if tol is not None else self.default_tol
        self.solver = make_solver(solver if solver is not None else self.default_solver)
        self.adjoint = self.resolve_adjoint(adjoint)

    def resolve_adjoint(self, adjoint: Any) -> Any:
        """An adjoint object from ``adjoint`` (``None``, a dict of ``ImplicitAdjoint`` options, a name
        or an object), with the planner's default linear solver where it names none."""
        if adjoint is None or isinstance(adjoint, dict):
            options = {"rtol": 1e-4, "warn": False, **(adjoint or {})}
            try:
                adjoint = ImplicitAdjoint(**options)
            except TypeError as error:
                raise ValueError(
                    f"adjoint options must be ImplicitAdjoint's, got {sorted(options)}: {error}"
                ) from error
        adjoint = make_adjoint(adjoint)
        if isinstance(adjoint, ImplicitAdjoint) and adjoint.linear_solver is None:
            adjoint = replace(adjoint, linear_solver=self.default_backward_solver)
        return adjoint

    # ------------------------------------------------------------------ hooks
    def encode(self, maps: torch.Tensor) -> torch.Tensor:
        """The reward map ``r`` ``[B, 1, m, m]`` from the input maps ``[B, C, m, m]``: a 3x3
        convolution to ``hidden`` channels, then a 1x1 one (the papers' encoder)."""
        return self.encoder(maps)

    def initial_state(self, r: torch.Tensor) -> State:
        raise NotImplementedError

    def step(self, state: State, r: torch.Tensor) -> State:
        """One application of the Bellman-like step ``f(s, r)``."""
        raise NotImplementedError

    def policy_logits(self, state: State, r: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def value_map(self, state: State, logits: torch.Tensor) -> torch.Tensor:
        """``[B, 1, m, m]`` value map for inspection (default: the best logit)."""
        return logits.max(dim=1, keepdim=True).values

    def default_encoder(self) -> nn.Module:
        """The papers' encoder: ``[B, C, m, m]`` -> 3x3 conv to ``hidden`` -> 1x1 conv to ``r``."""
        return nn.Sequential(self.conv(self.in_channels, self.hidden, 3), nn.Conv2d(self.hidden, 1, 1, bias=False))

    def conv(self, c_in: int, c_out: int, kernel_size: int | None = None, bias: bool = True) -> nn.Conv2d:
        """A 2D convolution with this planner's padding ("same" size)."""
        k = self.kernel_size if kernel_size is None else kernel_size
        return nn.Conv2d(c_in, c_out, k, padding=k // 2, padding_mode=self.padding, bias=bias)

    # ------------------------------------------------------------------ pipeline
    @property
    def mode(self) -> str:
        return self._mode

    @mode.setter
    def mode(self, value: str) -> None:
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {value!r}")
        self._mode = value

    def check_input(self, maps: torch.Tensor) -> None:
        if maps.dim() != 4 or maps.shape[1] != self.in_channels or maps.shape[2] != maps.shape[3]:
            raise ValueError(
                f"{type(self).__name__} expects maps of shape [B, {self.in_channels}, m, m], got {tuple(maps.shape)}"
            )
        if maps.shape[0] == 0:
            raise ValueError(f"{type(self).__name__} got an empty batch of maps {tuple(maps.shape)}")
        if maps.is_floating_point() and not bool(torch.isfinite(maps).all()):
            raise ValueError(f"{type(self).__name__} got maps with non-finite values (NaN or inf)")

    def reward_map(self, observation: torch.Tensor) -> torch.Tensor:
        """The encoded ``r`` the step iterates with, from the ``[B, C, m, m]`` map, after checking it."""
        self.check_input(observation)
        return self.encode(observation)

    def forward(self, observation: torch.Tensor, mode: str | None = None) -> PlanOutput:
        """Plan on a batch: ``observation`` is the ``[B, C, m, m]`` map."""
        r = self.reward_map(observation)
        if r.dtype in (torch.float16, torch.bfloat16):  # under autocast: the state and the solver stay in
            r = r.float()  # float32, the step's convolutions still run in the low precision
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if mode == "explicit":
            (state, stats), solution = self._unroll(r), None
        else:
            solution = self._solve(r)
            state = solution.value
            stats = {
                "forward_iterations": int(solution.stats.steps),
                "forward_rel_residual": float(solution.stats.rel_residual.max()),
                "forward_converged": float(solution.stats.converged.float().mean()),
                "forward_failed": float((solution.stats.diverged | solution.stats.nonfinite).float().mean()),
            }
        logits = self.policy_logits(state, r)
        return PlanOutput(logits, self.value_map(state, logits), state, solution, stats, r)

    @property
    def contraction_bound(self) -> float | None:
        """The max-norm contraction factor the parametrisation guarantees for any weights, or
        ``None`` where the step is free (subclasses with a bound override this)."""
        return None

    def contraction_factor(self, observation: torch.Tensor, iterations: int = 5) -> torch.Tensor:
        """``[B]`` the step's measured max-norm gain ``||df/ds||_inf`` at the implicit fixed point
        of each sample (:func:`~idplan.solvers.max_norm_gain`): below 1 where the step contracts
        there; it can never exceed :attr:`contraction_bound`."""
        with torch.no_grad():
            r = self.reward_map(observation)
            state = self._solve(r).value
        return max_norm_gain(self.step, state, r, iterations=iterations)

    def forward_cap(self, size: int) -> int:
        """Implicit mode's forward cap on ``size x size`` maps."""
        return self.iterations if self.iterations is not None else default_forward_cap(size)

    def unroll_steps(self, size: int) -> int:
        """Explicit mode's number of unrolled steps on ``size x size`` maps."""
        return self.iterations if self.iterations is not None else default_unroll(size)

    def _unroll(self, r: torch.Tensor) -> tuple[State, dict[str, float]]:
        state = previous = self.initial_state(r)
        steps = self.unroll_steps(r.shape[-1])
        for _ in range(steps):
            previous, state = state, self.step(state, r)
        with torch.no_grad():  # the last step's relative residual, on the solver core's flat [B, N] view
            spec = state_spec(state, "state")
            now, before = pack(state, spec), pack(previous, spec)
            rel = torch.linalg.vector_norm(now - before, dim=1) / torch.linalg.vector_norm(now, dim=1).clamp_min(1e-30)
        return state, {"forward_iterations": steps, "forward_rel_residual": float(rel.max())}

    def _solve(self, r: torch.Tensor) -> Solution:
        cap = self.forward_cap(r.shape[-1])
        adjoint = self.adjoint
        if isinstance(adjoint, ImplicitAdjoint) and adjoint.max_iter is None:  # to tolerance, under the forward cap
            adjoint = replace(adjoint, max_iter=cap, throw=True if adjoint.throw is None else adjoint.throw)
        with warnings.catch_warnings():
            # a capped forward budget is a choice, not an error: the outcome is in the stats
            warnings.simplefilter("ignore", NonConvergenceWarning)
            return fixed_point(
                self.step,
                self.initial_state(r),
                r,
                solver=self.solver,
                adjoint=adjoint,
                max_iter=cap,
                rtol=self.tol,
                throw=False,
            )
