"""Stable-Baselines3 policies whose actor is an implicit planner or a differentiable iLQR controller.

    from stable_baselines3 import PPO
    from idplan.agents.runtime.sb3_policies import ImplicitActorCriticPolicy, planner_policy_kwargs, controller_policy_kwargs

    PPO(ImplicitActorCriticPolicy, gym.make("idplan/GridMaze-v0", size=9), policy_kwargs=planner_policy_kwargs("vin"))
    PPO(ImplicitActorCriticPolicy, gym.make("idplan/Pendulum-v0"), policy_kwargs=controller_policy_kwargs("pendulum"))

The features extractor runs the planner (implicit mode) on the GridMaze observation and reads the
action logits and the value at the agent's cell, or runs the iLQR controller from the observed state
and returns its first control; :class:`ImplicitActorCriticPolicy` passes that actor output through
unchanged as the action distribution's logits or mean (the action head starts as the identity on
it), and the critic works on the same features. PPO's gradients reach the planner's or controller's
parameters through their implicit gradients. Needs the ``rl`` extra (Stable-Baselines3).
"""

from __future__ import annotations

import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from ..control.ilqr_controller import ILQRController
from ..planners import make_planner


class PlannerExtractor(BaseFeaturesExtractor):
    """GridMaze observation -> ``[logits at the agent's cell (A), value at the agent's cell]``.

    SB3 hands the ``Dict`` observation over as float tensors, with ``position`` one-hot encoded.
    """

    def __init__(self, observation_space: spaces.Dict, planner: str = "vin", **planner_kwargs):
        size = observation_space["map"].shape[0]
        planner_kwargs.setdefault("mode", "implicit")
        module = make_planner(planner, **planner_kwargs)
        super().__init__(observation_space, features_dim=module.actions + 1)
        self.planner, self.size = module, size

    def forward(self, observations: dict[str, torch.Tensor]) -> torch.Tensor:
        maps = torch.stack([observations["map"], observations["goal"]], 1).float()
        out = self.planner(maps)
        position = observations["position"]
        row, col = position[:, : self.size].argmax(1), position[:, self.size :].argmax(1)
        batch = torch.arange(maps.shape[0], device=maps.device)
        logits = out.logits[batch, :, row, col]
        value = out.values[batch, 0, row, col]
        return torch.cat([logits, value[:, None]], 1)


class ControllerExtractor(BaseFeaturesExtractor):
    """Observation -> ``[first control of the iLQR plan (m), observation]`` (the critic uses both)."""

    def __init__(self, observation_space: spaces.Box, task: str = "pendulum", **controller_kwargs):
        super().__init__(observation_space, features_dim=1 + observation_space.shape[0])
        self.controller = ILQRController.for_task(task, **controller_kwargs)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        x = observations.double()
        control = self.controller(x).u[0]
        return torch.cat([control, x], 1).to(observations.dtype)


class ImplicitActorCriticPolicy(ActorCriticPolicy):
    """An actor-critic whose action head starts as the identity on the first features (the planner's
    logits or the controller's control) and whose weights are not re-initialised by SB3."""

    def __init__(self, *args, **kwargs):
        kwargs["ortho_init"] = False  # keep the planner's / controller's (possibly pretrained) weights
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        with torch.no_grad():
            outputs = self.action_net.out_features
            self.action_net.weight.zero_()
            self.action_net.weight[:, :outputs] = torch.eye(outputs)
            self.action_net.bias.zero_()


def planner_policy_kwargs(planner: str = "vin", **planner_kwargs) -> dict:
    """``policy_kwargs`` for a planner actor on GridMaze (actor: no extra layers; critic: one hidden layer)."""
    return {
        "features_extractor_class": PlannerExtractor,
        "features_extractor_kwargs": {"planner": planner, **planner_kwargs},
        "net_arch": {"pi": [], "vf": [64]},
    }


def controller_policy_kwargs(task: str = "pendulum", **controller_kwargs) -> dict:
    """``policy_kwargs`` for a dILQR actor (its mean action is the plan's first control)."""
    return {
        "features_extractor_class": ControllerExtractor,
        "features_extractor_kwargs": {"task": task, **controller_kwargs},
        "net_arch": {"pi": [], "vf": [64, 64]},
        "activation_fn": nn.Tanh,
    }
