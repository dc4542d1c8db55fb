"""Visual control through dILQR: gradients from the frame loss reach the encoder, training lowers the loss."""

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from idplan.agents.cli import main as idplan_main
from idplan.agents.control import FrameDecoder, FrameEncoder, ILQRController, VisualILQR, collect_episodes
from idplan.agents.runtime import PixelMPCAgent
from idplan.agents.training import prediction_error, train_visual_controller, warm_up
from idplan.agents.training.visual import frame_loss
from idplan.envs import PendulumParams, pendulum_frames


@pytest.fixture(scope="module")
def episodes():
    return collect_episodes(6, 24, size=32, horizon=10, seed=0, progress=False)


def small_model(horizon=5):
    torch.manual_seed(0)
    controller = ILQRController.for_task(
        "pendulum",
        params=PendulumParams(gravity=8.0, mass=1.3),
        learn=("gravity", "mass"),
        horizon=horizon,
        max_iter=20,
    )
    return VisualILQR(FrameEncoder(frames=4, size=32, width=8), controller, FrameDecoder(size=32, width=8))


def test_episodes_and_windows_are_consistent(episodes):
    assert episodes.frames.shape == (6, 25, 32, 32) and episodes.controls.shape == (6, 24)
    np.testing.assert_array_equal(episodes.frames, pendulum_frames(episodes.states[..., 0], 32))
    stacks, obs, future = episodes.windows(4, 5)
    assert stacks.shape == (6 * 20, 4, 32, 32) and future.shape == (6 * 20, 5, 32, 32) and obs.shape == (120, 3)
    # at the episode start the stack holds copies of the first frame (as after an env reset)
    assert all(np.array_equal(frame, episodes.frames[0, 0]) for frame in stacks[0].numpy())
    # the newest stacked frame is the observation's; the first future frame is one step later
    np.testing.assert_array_equal(stacks[3].numpy(), episodes.frames[0, :4])
    np.testing.assert_array_equal(future[3, 0].numpy(), episodes.frames[0, 4])
    np.testing.assert_allclose(obs[3, 0].item(), np.cos(episodes.states[0, 3, 0]))
    assert abs(np.cos(episodes.states[0, 0, 0]) + 1) < 0.01  # the first half of the episodes start hanging


def test_frame_loss_gradient_reaches_the_encoder_through_dilqr(episodes):
    model = small_model()
    stacks, _, future = episodes.windows(4, 5)
    x0, states, predicted = model(stacks[:8])
    assert x0.shape == (8, 3) and states.shape == (5, 8, 3) and predicted.shape == (5, 8, 32, 32)
    assert model.controller.last.stats.converged.all()
    frame_loss(predicted.transpose(0, 1), future[:8]).backward()
    encoder_grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert encoder_grads and all(torch.isfinite(g).all() for g in encoder_grads)
    assert sum(float(g.abs().sum()) for g in encoder_grads) > 0
    for name, parameter in model.controller.log_params.items():
        assert parameter.grad is not None and torch.isfinite(parameter.grad) and parameter.grad != 0, name


def test_a_few_training_steps_lower_the_losses(episodes):
    model = small_model()
    warm = warm_up(model, episodes, epochs=3, batch_size=32, lr=3e-3, progress=False)
    assert warm[-1]["state_mse"] < warm[0]["state_mse"] and warm[-1]["frame_bce"] < warm[0]["frame_bce"]
    before = prediction_error(model, episodes).mean()
    decoder = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    history = train_visual_controller(model, episodes, epochs=3, batch_size=32, lr=3e-3, progress=False)
    for name, value in model.decoder.state_dict().items():  # the decoder stays as the warm-up left it
        assert torch.equal(value, decoder[name]), name
    assert history[-1]["frame_bce"] < history[0]["frame_bce"]
    assert prediction_error(model, episodes).mean() < before
    assert set(history[-1]) >= {"gravity", "mass", "plans_converged"}


def test_pixel_agent_acts_from_the_frame_stack():
    model = small_model(horizon=5)
    agent = PixelMPCAgent(model.encoder, model.controller)
    frames = np.stack([pendulum_frames(np.pi, 32)] * 4)
    action = agent.act(frames)
    assert action.shape == (1,) and action.dtype == np.float32 and abs(action[0]) <= 2.0
    with pytest.raises(ValueError, match="FrameEncoder expects"):
        agent.act(frames[:3])


def test_play_records_the_pixel_pendulum(tmp_path, capsys, monkeypatch):
    pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    out = tmp_path / "pixels.gif"
    args = ["play", "idplan/PendulumPixels-v0", "--agent", "mpc", "--record", str(out), "--max-steps", "8"]
    assert idplan_main(args) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["lengths"] == [8] and iio.imread(out).shape[0] >= 2
