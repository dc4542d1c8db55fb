"""idplan.envs: Gymnasium environments (grid maze, arm, MiniWorld navigation, pendulum, cartpole)."""
