"""``idplan play``: run an agent in an environment, in a pygame window or recorded to a GIF.

Keys in the window: space pauses and resumes, the right arrow steps once (when paused), ``r`` resets,
``v`` toggles the agent's overlay (a planner's value map and policy arrows, the expert's true value
map and arrows, the true value map under a random agent, a controller's planned horizon; a value
map comes with its legend), ``q`` or Esc quits. With ``record`` (or when there is no display) the
frames go to a GIF through ``render_mode="rgb_array"`` instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from ...envs import ENV_IDS, ENVS  # importing idplan.envs registers the environments
from ..control.ilqr_controller import SWING_UP_HORIZON, ILQRController
from ..training.checkpoints import load_checkpoint, load_mapped_checkpoint
from .agent import Agent
from .baseline_agents import MazeExpert, RandomAgent
from .control_agents import MPCAgent, TrueStateAgent
from .gif import write_gif
from .planner_agents import MappedPlannerAgent, PlannerAgent


def check_env_id(env_id: str) -> None:
    """``ValueError`` naming idplan's environments if ``env_id`` is not a registered Gymnasium id."""
    if env_id in gym.registry:
        return
    close = [known for known in ENV_IDS if env_id.strip().lower() and env_id.strip().lower() in known.lower()]
    hint = f" (did you mean {close[0]}?)" if close else ""
    raise ValueError(f"unknown environment {env_id!r}{hint}; idplan's environments: {', '.join(ENV_IDS)}")


def play_env_kwargs(env_id: str, size: int | None = None, start: str | None = None) -> dict[str, Any]:
    """The env keywords of ``idplan play --size/--start`` for ``env_id``; ``ValueError`` naming the
    option where the environment does not take it, or not that value."""
    kwargs: dict[str, Any] = {}
    if size is not None:
        sized = [known for known, info in ENVS.items() if info.size_keyword]
        if env_id not in sized:
            raise ValueError(f"--size applies to {', '.join(sized)}, not {env_id}")
        kwargs[ENVS[env_id].size_keyword] = size
    if start is not None:
        started = [known for known, info in ENVS.items() if info.starts]
        if env_id not in started:
            raise ValueError(f"--start applies to {', '.join(started)}, not {env_id}")
        if start not in ENVS[env_id].starts:
            raise ValueError(f"--start for {env_id} must be one of {', '.join(ENVS[env_id].starts)}, got {start!r}")
        kwargs["start"] = start
    return kwargs


def make_agent(env: gym.Env, env_id: str, spec: str, seed: int = 0, device: str | torch.device = "cpu") -> Agent:
    """An agent for ``env`` from ``spec``: ``"random"``, ``"expert"``, ``"mpc"`` or a checkpoint path;
    its planner or controller runs on ``device``."""
    if spec == "random":
        return RandomAgent(env, seed)
    task = ENVS[env_id].control_task if env_id in ENVS else None
    if task is not None:
        if spec in ("expert", "mpc"):  # iLQR MPC with the true model is the controllers' expert
            horizon = SWING_UP_HORIZON[task]
            controller = ILQRController.for_task(task, env.unwrapped.params, horizon=horizon, max_iter=50)
            agent = MPCAgent(controller, device=device)
            pixels = len(env.observation_space.shape or ()) > 1
            return TrueStateAgent(agent, env) if pixels else agent
        raise ValueError(f"agent {spec!r} is not available for {env_id}: use mpc, expert or random")
    if spec == "expert":
        return MazeExpert(env, seed)
    if spec == "mpc":
        controlled = sorted(known for known, info in ENVS.items() if info.control_task)
        raise ValueError(f"agent 'mpc' needs a control environment ({controlled}), not {env_id}")
    if not Path(spec).is_file():
        raise ValueError(f"agent must be random, expert, mpc or a checkpoint file; {spec!r} is none of these")
    spaces = getattr(env.observation_space, "spaces", {})
    for seen in ("panoramas", "workspace"):  # MiniWorldNav, ArmWorkspace: the checkpoint must hold a mapper
        if seen in spaces:
            model, _ = load_mapped_checkpoint(spec, device)
            return MappedPlannerAgent(model, seen, device)
    if "map" not in spaces:
        raise ValueError(
            f"a planner checkpoint plays on map observations (GridMaze, ArmCSpace), or with a mapper on "
            f"panoramas (MiniWorldNav) or workspace images (ArmWorkspace), not {env_id}"
        )
    planner, _ = load_checkpoint(spec, device)
    return PlannerAgent(planner, device)


def set_overlay(env: gym.Env, agent: Agent, shown: bool) -> None:
    """Draw (or clear) the agent's plan on the env's frames, when the agent has one."""
    if shown:
        try:
            agent.draw_on(env)
        except RuntimeError:  # no plan yet
            pass
    elif hasattr(env.unwrapped, "clear_overlay"):
        env.unwrapped.clear_overlay()
    else:
        env.unwrapped.set_plan(None)


def start_episode(env: gym.Env, agent: Agent, seed: int, shown: bool) -> Any:
    """Reset ``env`` (with ``seed``) and ``agent``; a planner plans at once (``act`` reuses the plan)
    so that the reset frame already shows it. Returns the first observation."""
    obs, _ = env.reset(seed=seed)
    agent.reset()
    if isinstance(agent, PlannerAgent):
        agent.plan(obs)
    set_overlay(env, agent, shown)
    return obs


def has_display() -> bool:
    """Whether a pygame window can be shown (an X/Wayland display, or SDL's dummy driver in tests)."""
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("SDL_VIDEODRIVER"))


def play(
    env_id: str,
    agent_spec: str = "expert",
    *,
    record: Path | None = None,
    seed: int = 0,
    episodes: int = 1,
    max_steps: int = 500,
    overlay: bool = True,
    env_kwargs: dict | None = None,
    events: Callable[[], Iterable[str]] | None = None,
    device: str | torch.device = "cpu",
) -> dict:
    """Run ``episodes`` episodes; returns a summary (returns, lengths, the GIF path if recorded).

    Args:
        events: the key presses of each frame as names (``"space"``, ``"right"``, ``"r"``, ``"v"``,
            ``"q"``); default: read from pygame's event queue (window mode).
        device: where the agent's planner or controller runs.
    """
    check_env_id(env_id)
    human = record is None and has_display()
    env = gym.make(env_id, render_mode="human" if human else "rgb_array", **(env_kwargs or {}))
    agent = make_agent(env, env_id, agent_spec, seed, device)
    if events is None:
        events = pygame_keys if human else (lambda: ())
    frames, titles, returns, lengths, steps_taken = [], [], [], [], 0
    paused, quit_requested, shown = False, False, overlay
    for episode in range(episodes):
        obs = start_episode(env, agent, seed + episode, shown)
        total, steps, done = 0.0, 0, False
        if not human:  # the reset frame too
            frames.append(env.render())
            titles.append(f"step 0  episode {episode + 1}  {agent_spec}  {env_id}")
        while not done and steps < max_steps and not quit_requested:
            single_step = False
            for key in events():
                if key in ("q", "escape"):
                    quit_requested = True
                elif key == "space":
                    paused = not paused
                elif key == "right":
                    single_step = True
                elif key == "r":  # the episode again, from its start: agent and overlay too
                    obs = start_episode(env, agent, seed + episode, shown)
                    total, steps = 0.0, 0
                elif key == "v":
                    shown = not shown
                    set_overlay(env, agent, shown)
            if quit_requested or (paused and not single_step):
                if human:
                    env.render()
                continue
            action = agent.act(obs)
            set_overlay(env, agent, shown)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            steps_taken += 1
            done = terminated or truncated
            if not human:
                frames.append(env.render())
                titles.append(f"step {steps}  episode {episode + 1}  {agent_spec}  {env_id}")
        returns.append(total)
        lengths.append(steps)
        if quit_requested:
            break
    env.close()
    summary = {
        "env": env_id,
        "agent": agent_spec,
        "episodes": len(returns),
        "returns": returns,
        "lengths": lengths,
        "steps_taken": steps_taken,
    }
    if frames:
        path = Path(record) if record is not None else Path("runs/play.gif")
        summary["gif"] = str(write_gif(path, frames, titles, env.metadata["render_fps"]))
    return summary


def record_rollout(env: gym.Env, agent, options: dict, path: Path, seed: int = 0) -> dict[str, Any]:
    """Reset ``env`` (``render_mode="rgb_array"``) to the task of ``options``, let a planner ``agent``
    act greedily with its plan drawn on the frames, and write the episode as a GIF at ``path``.

    The rollout stops at the goal, or when the greedy policy revisits a cell (a deterministic policy
    then loops for ever). Returns the GIF path, the steps taken, the optimal length and success.
    """
    obs, info = env.reset(seed=seed, options=options)
    agent.plan(obs)
    agent.draw_on(env)
    name = env.spec.id if env.spec is not None else type(env.unwrapped).__name__
    frames, terminated, truncated, steps = [env.render()], False, False, 0
    titles = [f"step 0  planner  {name}"]
    visited = {tuple(obs["position"])}
    while not (terminated or truncated):
        obs, _, terminated, truncated, info = env.step(agent.act(obs))
        frames.append(env.render())
        steps += 1
        titles.append(f"step {steps}  planner  {name}")
        position = tuple(obs["position"])
        if position in visited and not terminated:
            break  # stuck or looping
        visited.add(position)
    end = "goal" if terminated else "stopped: the greedy policy revisits a cell"
    frames += [frames[-1]] * 4  # linger on the last frame
    titles += [f"step {steps} ({end})  planner  {name}"] * 4
    write_gif(path, frames, titles, env.metadata["render_fps"])
    return {
        "gif": str(path),
        "steps": steps,
        "optimal_length": int(info["optimal_length"]),
        "success": bool(terminated),
    }


def pygame_keys() -> list[str]:
    """Key presses waiting in pygame's queue, as names."""
    import pygame

    names = {pygame.K_SPACE: "space", pygame.K_RIGHT: "right", pygame.K_r: "r", pygame.K_v: "v", pygame.K_q: "q"}
    names[pygame.K_ESCAPE] = "escape"
    keys = []
    for event in pygame.event.get():
        if event.type == pygame.QUIT:
            keys.append("q")
        elif event.type == pygame.KEYDOWN and event.key in names:
            keys.append(names[event.key])
    return keys
