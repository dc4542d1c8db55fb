"""The implicit-gradient core: forward solvers, linear solvers, adjoints and the three entry points.

``fixed_point``, ``root_find`` and ``argmin`` build an optimality condition ``F(z, args) = 0``, run a
forward solver and hand ``F`` to the adjoint, which attaches the gradient (one IFT for all three).
"""

from .adjoint import (
    ADJOINTS,
    LINEAR_SOLVERS,
    ImplicitAdjoint,
    PhantomAdjoint,
    UnrolledAdjoint,
    make_adjoint,
    make_linear_solver,
)
from .forward import Anderson, Broyden, ForwardIteration, LinearOperator, Newton, SaddleFreeNewton
from .implicit import Optimality
from .jacobian import jacobian_frobenius_sq, max_norm_gain
from .linear import CG, GMRES, CGNormal, Dense
from .options import SolveOptions, default_tolerances
from .problems import SOLVERS, argmin, fixed_point, implicit_jvp, implicit_solution, make_solver, root_find
from .solution import BackwardStats, ConvergenceError, NonConvergenceWarning, Solution, SolverStats
from .state import State, StateSpec, pack, state_spec, unpack
from .tracker import Tracker

__all__ = [
    "fixed_point",
    "root_find",
    "argmin",
    "implicit_solution",
    "implicit_jvp",
    "Optimality",
    "SolveOptions",
    "default_tolerances",
    "ForwardIteration",
    "Anderson",
    "Broyden",
    "Newton",
    "SaddleFreeNewton",
    "CG",
    "CGNormal",
    "GMRES",
    "Dense",
    "LinearOperator",
    "ImplicitAdjoint",
    "UnrolledAdjoint",
    "PhantomAdjoint",
    "Solution",
    "SolverStats",
    "BackwardStats",
    "ConvergenceError",
    "NonConvergenceWarning",
    "jacobian_frobenius_sq",
    "max_norm_gain",
    "Tracker",
    "State",
    "StateSpec",
    "pack",
    "unpack",
    "state_spec",
    "make_solver",
    "make_linear_solver",
    "make_adjoint",
    "SOLVERS",
    "LINEAR_SOLVERS",
    "ADJOINTS",
]
