"""Training and evaluation: the one training loop (:func:`fit`) and the trainers that configure it
(planners by imitation, mappers, mapped planners end to end), evaluation by batched rollouts,
checkpoints (weights plus the recipe that rebuilds them; ``weights_only`` loads), and the runs of
``idplan train``/``demo``/``eval`` (:mod:`.runs`)."""

from .checkpoints import build_planner, load_checkpoint, load_mapped_checkpoint, planner_config, save_checkpoint
from .evaluation import evaluate_planner, predict_actions, rollout_metrics
from .imitation import BestEpoch, TrainConfig, imitation_loss, train_planner
from .loop import StepResult, TrainingDiverged, fit
from .mapped import evaluate_mapped, mapper_metrics, train_end_to_end, train_mapper
from .runs import TrainRun, evaluate_checkpoint, train_run
from .visual import prediction_error, state_error, swing_up_success, train_visual_controller, warm_up

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
    "warm_up",
    "train_visual_controller",
    "prediction_error",
    "state_error",
    "swing_up_success",
    "TrainRun",
    "train_run",
    "evaluate_checkpoint",
    "train_mapper",
    "mapper_metrics",
    "train_end_to_end",
    "evaluate_mapped",
]
