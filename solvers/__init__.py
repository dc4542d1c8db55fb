"""idplan.solvers: batched fixed points, roots and argmins with implicit (IFT) gradients.

Plain functions over callables and tensors, device- and dtype-agnostic::

    sol = fixed_point(f, z0, args, solver=Anderson(), adjoint=ImplicitAdjoint(max_iter=15))
    sol.value      # the solution, differentiable w.r.t. args and f's parameters
    sol.stats      # per-sample iterations, residuals, converged mask, history
    sol.backward   # adjoint-solve stats, after backward()

    traj = ilqr(dynamics, cost, x_init, u_init, lower=-2.0, upper=2.0)  # box-constrained iLQR
    traj.x, traj.u # [T, B, n], [T, B, m], exact implicit gradients (O(T) Riccati adjoint)
"""

from .adjoint import ADJOINTS, LINEAR_SOLVERS, ImplicitAdjoint, PhantomAdjoint, UnrolledAdjoint
from .dare import DARESolution, dare
from .forward import Anderson, Broyden, ForwardIteration, LinearOperator, Newton
from .ilqr import TrajectorySolution, TrajectoryStats, ilqr, lqr, trajectory_jacobian
from .jacobian import jacobian_frobenius_sq, max_norm_gain
from .linear import CG, GMRES, CGNormal, Dense
from .ode import EulerTrajectory, backward_euler
from .problems import SOLVERS, argmin, default_tolerances, fixed_point, root_find
from .solution import BackwardStats, ConvergenceError, NonConvergenceWarning, Solution, SolverStats

__all__ = [
    "fixed_point",
    "root_find",
    "argmin",
    "default_tolerances",
    "ForwardIteration",
    "Anderson",
    "Broyden",
    "Newton",
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
    "ilqr",
    "lqr",
    "trajectory_jacobian",
    "dare",
    "backward_euler",
    "EulerTrajectory",
    "DARESolution",
    "TrajectorySolution",
    "TrajectoryStats",
    "SOLVERS",
    "LINEAR_SOLVERS",
    "ADJOINTS",
]
