"""Training and evaluation: imitation training of planners, their evaluation by batched rollouts,
and checkpoints (weights plus the recipe that rebuilds them; ``weights_only`` loads)."""

from .checkpoints import build_planner, load_checkpoint, load_mapped_checkpoint, planner_config, save_checkpoint
from .evaluation import evaluate_planner, predict_actions, rollout_metrics
from .fit import StepResult, TrainingDiverged, fit
from .imitation import BestEpoch, TrainConfig, imitation_loss, train_planner
from .mapped import evaluate_mapped, mapper_metrics, train_end_to_end, train_mapper

__all__ = [
    "fit",
    "StepResult",
    "TrainConfig",
    "TrainingDiverged",
    "BestEpoch",
    "imitation_loss",
    "train_planner",
    "evaluate_planner",
    "predict_actions",
    "rollout_metrics",
    "planner_config",
    "build_planner",
    "save_checkpoint",
    "load_checkpoint",
    "load_mapped_checkpoint",
    "train_mapper",
    "mapper_metrics",
    "train_end_to_end",
    "evaluate_mapped",
]
