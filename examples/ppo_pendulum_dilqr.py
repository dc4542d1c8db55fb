"""PPO with a dILQR actor on the pendulum, starting from wrong physical parameters.

The actor's mean action is the first control of an iLQR plan (horizon 20) whose gravity and mass are
learned (log-parametrised) from reward alone through the implicit gradient; the critic is an MLP on
the observation and the planned control. The default start, gravity 25 (true 10), makes the
controller fail to swing up (with the true parameters the same controller does). Reports the
average return over 20 evaluation episodes before and after training, and the learned parameters
against the true ones (g = 10, m = 1).

    python examples/ppo_pendulum_dilqr.py                 # 20k steps
    python examples/ppo_pendulum_dilqr.py --steps 4096

Needs the ``rl`` extra. Ends with a JSON line.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import idplan.envs  # noqa: F401  (registers the environments)
from idplan.agents.cli import device
from idplan.agents.runtime.sb3_policies import ImplicitActorCriticPolicy, controller_policy_kwargs
from idplan.envs import PendulumParams
from idplan.envs.records import add_record_argument, emit_result


def average_return(model: PPO, episodes: int, seed: int, steps: int = 200) -> float:
    """Mean return of the deterministic policy over ``episodes`` seeded ``steps``-step episodes, run side
    by side (one batched plan per step)."""
    env = make_vec_env("idplan/Pendulum-v0", n_envs=episodes, seed=seed, env_kwargs={"max_episode_steps": steps})
    obs = env.reset()
    totals = np.zeros(episodes)
    for _ in range(steps):  # the TimeLimit: every episode ends at the same step
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, _, _ = env.step(action)
        totals += reward
    env.close()
    return float(totals.mean())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--gravity", type=float, default=25.0, help="the actor's initial (wrong) gravity")
    parser.add_argument("--mass", type=float, default=1.0, help="the actor's initial mass")
    parser.add_argument("--horizon", type=int, default=20)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--episode-steps", type=int, default=200, help="steps of each episode (the TimeLimit)")
    parser.add_argument("--envs", type=int, default=16, help="training environments, planned for in one batch")
    parser.add_argument("--n-steps", type=int, default=64, help="PPO rollout steps per environment and update")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    kwargs = controller_policy_kwargs(
        "pendulum",
        params=PendulumParams(gravity=args.gravity, mass=args.mass),
        learn=("gravity", "mass"),
        horizon=args.horizon,
        max_iter=30,
    )
    kwargs["log_std_init"] = -0.5  # exploration noise of std 0.6 N m around the planned torque (bound 2)
    # 16 environments by default: one batched iLQR solve serves all of them at each rollout step
    time_limit = {"max_episode_steps": args.episode_steps}
    env = make_vec_env("idplan/Pendulum-v0", n_envs=args.envs, seed=args.seed, env_kwargs=time_limit)
    model = PPO(
        ImplicitActorCriticPolicy,
        env,
        policy_kwargs=kwargs,
        n_steps=args.n_steps,
        batch_size=256,
        n_epochs=5,
        gamma=0.9,  # RL Zoo's pendulum settings: a short effective horizon keeps the critic learnable
        gae_lambda=0.95,
        learning_rate=3e-3,
        seed=args.seed,
        device=args.device,
    )
    controller = model.policy.features_extractor.controller
    before = average_return(model, args.episodes, seed=1000, steps=args.episode_steps)
    start = time.perf_counter()
    model.learn(args.steps)
    after = average_return(model, args.episodes, seed=1000, steps=args.episode_steps)
    learned = controller.learned()
    print(
        f"return {before:.1f} -> {after:.1f} over {args.episodes} episodes; learned {learned} (true gravity 10, mass 1)"
    )
    summary = {
        "example": "ppo_pendulum_dilqr",
        "steps": args.steps,
        "return_before": round(before, 2),
        "return_after": round(after, 2),
        "initial": {"gravity": args.gravity, "mass": args.mass},
        "learned": {k: round(v, 4) for k, v in learned.items()},
        "train_seconds": round(time.perf_counter() - start),
    }
    emit_result(summary, args.record, script=__file__, argv=argv)


if __name__ == "__main__":
    main()
