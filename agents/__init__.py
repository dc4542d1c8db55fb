"""idplan.agents: implicit planners and differentiable controllers built on idplan.solvers."""
