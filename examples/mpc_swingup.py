"""Swing up the pendulum and the cart-pole with receding-horizon iLQR (MPC) and write GIFs.

    python examples/mpc_swingup.py                        # both envs, 5 episodes each, GIFs in runs/mpc
    python examples/mpc_swingup.py --env cartpole --episodes 20 --horizon 30

Each episode starts hanging down (``start="down"``) and lasts 200 steps (10 s). An episode counts as a
swing-up when the pole stays within 0.2 rad of upright over its last 50 steps. The first episode of each
env is rendered with the controller's planned horizon drawn as ghost poses. Needs the render extra.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import idplan.envs  # noqa: F401  (registers the environments)
from idplan.agents.cli import device
from idplan.agents.control import SWING_UP_HORIZON, ILQRController
from idplan.agents.runtime import MPCAgent
from idplan.agents.runtime.gif import write_gif
from idplan.envs.records import add_record_argument, emit_result

ENVS = {"pendulum": ("idplan/Pendulum-v0", 0), "cartpole": ("idplan/CartPole-v0", 2)}  # env id, angle index


def run_episode(env, agent: MPCAgent, seed: int, record: bool, angle_index: int, steps: int = 200):
    """One episode; returns its return, whether it swung up and balanced, and (with ``record``) its
    frames and their titles (step counter first)."""
    obs, info = env.reset(seed=seed)
    agent.reset()
    frames, titles, angles, total = [], [], [], 0.0
    for step in range(steps):
        action = agent.act(obs)
        if record:
            agent.draw_on(env)
            frames.append(env.render())
            titles.append(f"step {step}  MPC (iLQR)  {env.spec.id}")
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        angles.append(info["state"][angle_index])
        if terminated or truncated:
            break
    upright = np.abs(np.angle(np.exp(1j * np.array(angles[-50:])))) < 0.2
    return total, bool(len(angles) == steps and upright.all()), frames, titles


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", choices=["pendulum", "cartpole", "both"], default="both")
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument(
        "--horizon", type=int, default=None, help="planning horizon T (default 20 pendulum, 30 cartpole)"
    )
    parser.add_argument("--max-iter", type=int, default=50, help="iLQR iterations per control step")
    parser.add_argument("--steps", type=int, default=200, help="steps per episode (at most the env's 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("runs/mpc"))
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)

    torch.manual_seed(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {}
    for name in ["pendulum", "cartpole"] if args.env == "both" else [args.env]:
        env_id, angle_index = ENVS[name]
        horizon = SWING_UP_HORIZON[name]
        env = gym.make(env_id, start="down", render_mode="rgb_array")
        controller = ILQRController.for_task(name, horizon=args.horizon or horizon, max_iter=args.max_iter)
        agent = MPCAgent(controller, device=args.device)
        returns, successes, start = [], [], time.perf_counter()
        for episode in range(args.episodes):
            total, success, frames, titles = run_episode(
                env, agent, args.seed + episode, episode == 0, angle_index, args.steps
            )
            returns.append(total)
            successes.append(success)
            if frames:
                write_gif(args.out / f"{name}_swingup.gif", frames[::2], titles[::2], env.metadata["render_fps"] / 2)
            print(f"{name} episode {episode}: return {total:.1f}, swung up and balanced: {success}")
        env.close()
        summary[name] = {
            "episodes": args.episodes,
            "success_rate": float(np.mean(successes)),
            "mean_return": round(float(np.mean(returns)), 2),
            "horizon": args.horizon or horizon,
            "unconverged_steps": agent.unconverged_steps,
            "steps": agent.steps,
            "seconds_per_step": round((time.perf_counter() - start) / max(agent.steps, 1), 4),
            "gif": str(args.out / f"{name}_swingup.gif"),
        }
    emit_result(summary, args.record, script=__file__, argv=argv)


if __name__ == "__main__":
    main()
