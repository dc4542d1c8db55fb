"""PPO from reward alone on GridMaze (a new random maze every episode): an implicit-VIN actor vs SB3's
default MultiInput policy, at the same step budget; success over 200 test episodes on unseen mazes.

    python examples/ppo_gridmaze.py                       # 9x9, 100k steps each
    python examples/ppo_gridmaze.py --size 15 --steps 300000

Needs the ``rl`` extra. Prints both success rates and a final JSON line.
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env

import idplan.envs  # noqa: F401  (registers the environments)
from idplan.agents.cli import device
from idplan.agents.runtime.sb3_policies import ImplicitActorCriticPolicy, planner_policy_kwargs
from idplan.envs.records import add_record_argument, emit_result


def success_rate(model: PPO, size: int, episodes: int, seed: int) -> float:
    env = gym.make("idplan/GridMaze-v0", size=size)
    successes = 0
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        done, info = False, {}
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(int(action))
            done = terminated or truncated
        successes += bool(info.get("is_success", False))
    return successes / episodes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=9)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument(
        "--value-bound",
        type=float,
        default=0.95,
        help="keep the VIN's value kernels at L1 norm below this (< 1: its step stays a contraction; 0: no bound)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    results = {}
    policies = {
        "planner (implicit VIN)": (
            ImplicitActorCriticPolicy,
            planner_policy_kwargs("vin", iterations=2 * args.size, value_bound=args.value_bound or None),
        ),
        "SB3 MultiInputPolicy": ("MultiInputPolicy", None),
    }
    for name, (policy, kwargs) in policies.items():
        env = make_vec_env("idplan/GridMaze-v0", n_envs=args.envs, seed=args.seed, env_kwargs={"size": args.size})
        model = PPO(
            policy,
            env,
            policy_kwargs=kwargs,
            n_steps=128,
            batch_size=256,
            seed=args.seed,
            verbose=0,
            device=args.device,
        )
        start = time.perf_counter()
        model.learn(args.steps, progress_bar=False)
        results[name] = {
            "success": success_rate(model, args.size, args.episodes, seed=10_000 + args.seed),
            "train_seconds": round(time.perf_counter() - start),
        }
        print(
            f"{name}: success {results[name]['success']:.3f} on {args.episodes} unseen mazes ({results[name]['train_seconds']} s)",
            flush=True,
        )
    summary = {"example": "ppo_gridmaze", "size": args.size, "steps": args.steps, "value_bound": args.value_bound}
    emit_result({**summary, "results": results}, args.record, script=__file__, argv=argv)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
