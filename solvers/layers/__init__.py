"""Implicit layers built on the core's ``root_find``: backward-Euler ODE steps and the DARE."""

from .algebraic_riccati import DARESolution, dare, dare_residual
from .ode import EulerTrajectory, backward_euler

__all__ = ["backward_euler", "EulerTrajectory", "dare", "dare_residual", "DARESolution"]
