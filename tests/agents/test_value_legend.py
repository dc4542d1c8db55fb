"""The value legend under every heat map, and the env's own overlay drawn by the expert and random agents."""

import imageio.v3 as iio
import numpy as np
import pytest

from idplan.agents.runtime.gif import TITLE_HEIGHT
from idplan.agents.runtime.interactive import play
from idplan.envs.maze.rendering import LEGEND_BACKGROUND, LEGEND_HEIGHT, MIN_BAR, ramp_colours, value_legend

pytest.importorskip("pygame")
BAR_ROW = 8  # a row of the legend strip through the colour bar


def bar_extent(strip: np.ndarray) -> tuple[int, int]:
    """The first and last column of the colour bar in a legend strip ``[LEGEND_HEIGHT, W, 3]``."""
    low = np.flatnonzero((strip[BAR_ROW] == ramp_colours(np.array(0.0))).all(-1))
    high = np.flatnonzero((strip[BAR_ROW] == ramp_colours(np.array(1.0))).all(-1))
    assert low.size and high.size, "the bar does not span the colour map"
    return int(low[0]), int(high[-1])


@pytest.mark.parametrize(("env_id", "kwargs"), [("idplan/GridMaze-v0", {"size": 9}), ("idplan/ArmCSpace-v0", {})])
def test_frames_with_a_value_map_carry_its_legend(env_id, kwargs):
    import gymnasium as gym

    env = gym.make(env_id, render_mode="rgb_array", **kwargs)
    env.reset(seed=0)
    plain = env.render()
    env.unwrapped.set_overlay(**env.unwrapped.true_overlay())
    drawn = env.render()
    env.close()
    assert plain.shape == drawn.shape  # the strip is kept blank without a value map: frames stack
    bare, legend = plain[-LEGEND_HEIGHT:], drawn[-LEGEND_HEIGHT:]
    assert (bare == LEGEND_BACKGROUND).all() and (legend != bare).any()
    strip = legend[:, legend.shape[1] // 2 :] if "Arm" in env_id else legend  # the arm's: under its C-space
    start, end = bar_extent(strip)  # the bar runs from the ramp's first colour to its last, left to right
    assert end - start > strip.shape[1] // 3
    assert (strip[:, :start].min(-1) < 100).any()  # dark text (the label and the minimum) left of the bar


def test_value_legend_fits_its_width():
    wide, narrow = value_legend(240, (-20.0, 0.0), "a long label"), value_legend(MIN_BAR + 4, (-20.0, 0.0))
    assert wide.shape == (LEGEND_HEIGHT, 240, 3) and narrow.shape == (LEGEND_HEIGHT, MIN_BAR + 4, 3)
    assert bar_extent(narrow) == (0, MIN_BAR + 3)  # too narrow for text: the bar alone, full width
    assert (value_legend(50, None) == LEGEND_BACKGROUND).all()
    constant = value_legend(240, (3.0, 3.0))  # one value: still a legend, 3 at both ends
    assert bar_extent(constant)[1] > bar_extent(constant)[0]


def gif_frames(tmp_path, agent: str, overlay: bool = True, **kwargs) -> np.ndarray:
    """The frames (titles cut off) of a 9x9 GridMaze episode of ``agent`` recorded by ``idplan play``."""
    path = tmp_path / f"{agent}-{overlay}.gif"
    play("idplan/GridMaze-v0", agent, record=path, overlay=overlay, env_kwargs={"size": 9}, **kwargs)
    return iio.imread(path)[:, TITLE_HEIGHT:]


def test_expert_and_random_gifs_carry_the_true_value_map(tmp_path):
    expert, bare = gif_frames(tmp_path, "expert"), gif_frames(tmp_path, "expert", overlay=False)
    assert expert.shape == bare.shape and len(expert) > 2
    legend = expert[:, -LEGEND_HEIGHT:].astype(int)
    # every frame, the reset's too: a legend (the GIF's palette may shift colours a little) over a heat map
    assert (np.abs(legend - legend[:, :, :1]).max((1, 2, 3)) > 50).all()
    assert (np.abs(bare[:, -LEGEND_HEIGHT:].astype(int) - 255) < 8).all()
    assert (expert[:, :-LEGEND_HEIGHT] != bare[:, :-LEGEND_HEIGHT]).any(-1).mean((1, 2)).min() > 0.3
    random = gif_frames(tmp_path, "random", max_steps=3)
    assert (np.abs(random[:, -LEGEND_HEIGHT:].astype(int) - 255) > 50).any((1, 2, 3)).all()


def test_the_expert_draws_the_actions_it_takes():
    import gymnasium as gym

    from idplan.agents.runtime.baseline_agents import MazeExpert

    env = gym.make("idplan/GridMaze-v0", size=9, render_mode="rgb_array")
    obs, _ = env.reset(seed=1)
    expert = MazeExpert(env, seed=0)
    expert.draw_on(env)
    drawn = env.unwrapped._overlay
    assert drawn["value_label"].startswith("true value") and np.array_equal(drawn["policy"], expert.plan())
    for _ in range(4):
        row, col = obs["position"]
        action = expert.act(obs)
        assert action == drawn["policy"][row, col] >= 0
        obs, *_ = env.step(action)


def test_random_agent_on_a_control_env_draws_nothing(tmp_path):
    paths = [tmp_path / "overlay.gif", tmp_path / "plain.gif"]
    for path, overlay in zip(paths, (True, False)):  # the same seed: the same actions
        play("idplan/Pendulum-v0", "random", record=path, overlay=overlay, max_steps=2)
    assert np.array_equal(iio.imread(paths[0]), iio.imread(paths[1]))


def test_a_planner_gif_shows_its_value_map_from_the_reset_frame(tmp_path):
    """``idplan play`` with a planner checkpoint plans at the reset, so the first frame already carries
    the planner's value map and its legend (not a bare maze until the first step)."""
    from idplan.agents.training.checkpoints import build_planner, planner_config, save_checkpoint

    config = planner_config("gated_vin")
    save_checkpoint(tmp_path / "planner.pt", build_planner(config), config, epochs=1, size=9)
    frames = gif_frames(tmp_path, str(tmp_path / "planner.pt"), max_steps=3)
    legend = frames[:, -LEGEND_HEIGHT:].astype(int)
    assert (np.abs(legend - 255) > 50).any((1, 2, 3)).all()  # every frame, the reset's too
