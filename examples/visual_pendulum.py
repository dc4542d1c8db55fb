"""Pendulum swing-up from pixels through dILQR (the DiLQR paper's section 5.3, at CPU scale).

1. Expert data: iLQR MPC with the true model (``--noise``: Gaussian torque noise) from random starts; frames
   of 64x64 grayscale, four stacked as the encoder's input.
2. Warm-up (reported separately): the encoder regresses the true observation, the decoder renders it.
3. End to end, on the frame loss only: encoder -> dILQR (horizon 20, the expert's; implicit
   gradients; gravity and mass learned from wrong starting values) -> planned states -> decoder (as the warm-up left it;
   ``--train-decoder`` trains it too) -> predicted future frames.
4. Test: frame-prediction error over the horizon on held-out episodes, and a pixel MPC agent
   (encoder + iLQR with the learned physics, horizon 20) swinging up from hanging in 20 seeded
   episodes, beside the same MPC fed the true state. Writes the "imagined trajectory" figure (Fig. 5): one real input frame, then the
   decoded predictions under the true future frames.

    python examples/visual_pendulum.py                    # 13 minutes on one CPU thread
    python examples/visual_pendulum.py --episodes 32 --e2e-epochs 2 --test-episodes 5   # quick

Ends with a JSON line.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from idplan.agents.cli import device
from idplan.agents.control import (
    SWING_UP_HORIZON,
    FrameDecoder,
    FrameEncoder,
    ILQRController,
    VisualILQR,
    collect_episodes,
)
from idplan.agents.training import prediction_error, state_error, swing_up_success, train_visual_controller, warm_up
from idplan.envs import PendulumParams
from idplan.envs.atomic import atomic_path
from idplan.envs.records import add_record_argument, emit_result


def imagined_trajectory_figure(model: VisualILQR, data, path: Path, episode: int = 0, t: int = 20) -> None:
    """One real input frame (red), then the decoded predictions (top) above the true frames (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    horizon = model.controller.horizon
    stack = torch.from_numpy(data.frames[episode, t - model.encoder.frames + 1 : t + 1])[None]
    model.eval()
    with torch.no_grad():
        _, _, predicted = model(stack.to(next(model.parameters()).device))
    predicted = predicted.cpu()
    truth = data.frames[episode, t + 1 : t + 1 + horizon]
    fig, axes = plt.subplots(2, horizon + 1, figsize=(1.3 * (horizon + 1), 2.9))
    real = np.zeros(stack.shape[-2:] + (3,))
    real[..., 0] = stack[0, -1].numpy() / 255.0
    for row in range(2):
        axes[row, 0].imshow(real if row == 0 else np.zeros_like(real))
        for k in range(horizon):
            image = predicted[k, 0].numpy() if row == 0 else truth[k] / 255.0
            axes[row, k + 1].imshow(image, cmap="gray", vmin=0, vmax=1)
            if row == 0:
                axes[row, k + 1].set_title(f"t+{k + 1}", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("real input", fontsize=8, color="tab:red")
    axes[0, 0].set_ylabel("predicted", fontsize=8)
    axes[1, 1].set_ylabel("true", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64, help="frame side (the paper: 224, RGB)")
    parser.add_argument("--episodes", type=int, default=64, help="expert training episodes")
    parser.add_argument("--steps", type=int, default=100, help="steps per expert episode")
    parser.add_argument("--noise", type=float, default=0.0, help="std of the expert's torque noise (N m)")
    parser.add_argument(
        "--horizon",
        type=int,
        default=SWING_UP_HORIZON["pendulum"],
        help="dILQR horizon of the frame prediction (default: the expert's, 20; at 10 the physics drifts)",
    )
    parser.add_argument("--warmup-epochs", type=int, default=5)
    parser.add_argument("--e2e-epochs", type=int, default=5)
    parser.add_argument("--gravity", type=float, default=7.0, help="the controller's initial (wrong) gravity (true 10)")
    parser.add_argument("--mass", type=float, default=1.5, help="the controller's initial (wrong) mass (true 1)")
    parser.add_argument("--train-decoder", action="store_true", help="train the decoder end to end too")
    parser.add_argument("--test-episodes", type=int, default=20, help="swing-up episodes of the pixel MPC agent")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--figure", type=Path, default=Path("examples/results/visual_pendulum_imagined.png"))
    parser.add_argument(
        "--device", type=device, default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    add_record_argument(parser)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.manual_seed(args.seed)
    train = collect_episodes(args.episodes, args.steps, args.size, noise=args.noise, seed=args.seed)
    test = collect_episodes(max(4, args.episodes // 4), args.steps, args.size, noise=args.noise, seed=args.seed + 1)
    controller = ILQRController.for_task(
        "pendulum",
        params=PendulumParams(gravity=args.gravity, mass=args.mass),
        learn=("gravity", "mass"),
        horizon=args.horizon,
        max_iter=30,
    )
    model = VisualILQR(FrameEncoder(4, args.size), controller, FrameDecoder(args.size)).to(args.device)

    warm = warm_up(model, train, epochs=args.warmup_epochs, seed=args.seed)
    error_warm = prediction_error(model, test)
    state_mse_warm = state_error(model.encoder, test)
    planner_initial = ILQRController.for_task(
        "pendulum", params=PendulumParams(**controller.learned()), horizon=SWING_UP_HORIZON["pendulum"], max_iter=50
    )
    swing_warm = swing_up_success(
        planner_initial, model.encoder, episodes=args.test_episodes, seed=1000, size=args.size
    )
    print(f"pixel MPC swing-up after warm-up (initial physics): success {swing_warm['success']:.2f}")
    print(f"warm-up: state MSE {warm[-1]['state_mse']:.4f}, frame BCE {warm[-1]['frame_bce']:.4f}")
    print("prediction MSE per step after warm-up:", np.round(error_warm, 4))

    e2e = train_visual_controller(
        model, train, epochs=args.e2e_epochs, seed=args.seed, train_decoder=args.train_decoder
    )
    for row in e2e:
        print({k: round(v, 4) for k, v in row.items()})
    error = prediction_error(model, test)
    print("prediction MSE per step after end to end:", np.round(error, 4))
    learned = controller.learned()

    args.figure.parent.mkdir(parents=True, exist_ok=True)
    imagined_trajectory_figure(model, test, args.figure)

    planner = ILQRController.for_task(
        "pendulum", params=PendulumParams(**learned), horizon=SWING_UP_HORIZON["pendulum"], max_iter=50
    )
    swing = swing_up_success(planner, model.encoder, episodes=args.test_episodes, seed=1000, size=args.size)
    privileged = swing_up_success(planner, None, episodes=args.test_episodes, seed=1000, size=args.size)
    print(f"pixel MPC swing-up: success {swing['success']:.2f}, mean return {swing['mean_return']:.1f}")
    print(
        f"same MPC from the true state: success {privileged['success']:.2f}, mean return {privileged['mean_return']:.1f}"
    )
    state_mse = state_error(model.encoder, test)
    print(f"encoder state MSE on test windows: {state_mse_warm:.4f} after warm-up, {state_mse:.4f} after end to end")
    summary = {
        "example": "visual_pendulum",
        "size": args.size,
        "train_decoder": args.train_decoder,
        "train_windows": int(args.episodes * (args.steps - args.horizon - 2)),
        "warmup": {k: round(v, 5) for k, v in warm[-1].items()},
        "prediction_mse_warmup": [round(float(v), 5) for v in error_warm],
        "prediction_mse": [round(float(v), 5) for v in error],
        "end_to_end": [{k: round(v, 4) for k, v in row.items()} for row in e2e],
        "learned": {k: round(v, 4) for k, v in learned.items()},
        "initial": {"gravity": args.gravity, "mass": args.mass},
        "expert_noise": args.noise,
        "swing_up": swing,
        "swing_up_true_state": privileged,
        "swing_up_after_warmup": swing_warm,
        "state_mse_warmup": round(state_mse_warm, 5),
        "state_mse": round(state_mse, 5),
        "figure": str(args.figure),
        "wall_seconds": round(time.perf_counter() - start),
    }
    emit_result(summary, args.record, script=__file__, argv=argv)


if __name__ == "__main__":
    main()
