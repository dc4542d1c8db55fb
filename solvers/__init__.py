"""idplan.solvers: batched fixed points, roots and argmins with implicit (IFT) gradients.

Plain functions over callables and tensors, device- and dtype-agnostic::

    sol = fixed_point(f, z0, args, solver=Anderson(), adjoint=ImplicitAdjoint(max_iter=15))
    sol.value      # the solution, differentiable w.r.t. args and f's parameters
    sol.stats      # per-sample iterations, residuals, converged mask, history
    sol.backward   # adjoint-solve stats, after backward()

    traj = ilqr(dynamics, cost, x_init, u_init, lower=-2.0, upper=2.0)  # box-constrained iLQR
    traj.x, traj.u # [T, B, n], [T, B, m], exact implicit gradients (O(T) Riccati adjoint)
"""

from .core import *  # noqa: F403
from .core import __all__ as _core
from .layers import *  # noqa: F403
from .layers import __all__ as _layers
from .trajectory import *  # noqa: F403
from .trajectory import __all__ as _trajectory

__all__ = [*_core, *_trajectory, *_layers]
