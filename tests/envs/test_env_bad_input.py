"""Bad ``reset`` options: a non-dict is a ``TypeError`` and an unknown key a ``ValueError``, each
naming ``options`` or the key and what is accepted, in every environment (issue 19)."""

import re

import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import idplan.envs  # noqa: F401  (registers the environments)
from idplan.envs import ArmCSpaceEnv, GridMazeEnv

# env id -> the reset options it accepts
ACCEPTED = {
    "idplan/GridMaze-v0": ("map", "goal", "start"),
    "idplan/ArmCSpace-v0": ("obstacles", "goal", "start"),
    "idplan/Pendulum-v0": ("state",),
    "idplan/PendulumPixels-v0": ("state",),
    "idplan/CartPole-v0": ("state",),
}
ENVS = {env_id: gym.make(env_id).unwrapped for env_id in ACCEPTED}

not_a_dict = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=10),
    st.binary(max_size=10),
    st.lists(st.integers(), max_size=3),
    st.tuples(st.text(max_size=5), st.integers()),
    st.lists(st.tuples(st.sampled_from(["map", "goal", "start", "state"]), st.integers()), max_size=2),
)


@settings(max_examples=40, deadline=None)
@given(env_id=st.sampled_from(sorted(ACCEPTED)), options=not_a_dict)
def test_reset_options_that_are_not_a_dict_are_a_type_error_naming_options(env_id, options):
    """Before, ``dict(options or {})`` took ``""``, ``[]`` and lists of pairs silently and failed on
    the rest with a message that did not say which argument was wrong."""
    with pytest.raises(TypeError, match=r"options must be a dict \(or None\), got "):
        ENVS[env_id].reset(seed=0, options=options)


unknown_key = st.text(min_size=1, max_size=8).filter(
    lambda key: key not in ("map", "goal", "start", "state", "obstacles")
)


@settings(max_examples=40, deadline=None)
@given(env_id=st.sampled_from(sorted(ACCEPTED)), key=unknown_key)
def test_unknown_reset_option_keys_are_a_value_error_naming_key_and_accepted_keys(env_id, key):
    """The control envs ignored every key but ``state`` (``stat`` for ``state`` was silently a random start)."""
    expected = ", ".join(map(repr, ACCEPTED[env_id]))
    message = re.escape(f"unknown reset options [{key!r}]; expected {expected}")
    with pytest.raises(ValueError, match=message):
        ENVS[env_id].reset(seed=0, options={key: 0})


@pytest.mark.parametrize("env_id", ["idplan/Pendulum-v0", "idplan/CartPole-v0"])
def test_control_env_typo_stat_is_refused_and_state_still_works(env_id):
    env = ENVS[env_id]
    size = len(env.state_names)
    with pytest.raises(ValueError, match=r"unknown reset options \['stat'\]; expected 'state'"):
        env.reset(seed=0, options={"stat": np.zeros(size)})
    obs, info = env.reset(seed=0, options={"state": np.full(size, 0.1)})
    np.testing.assert_array_equal(info["state"], np.full(size, 0.1))
    env.reset(seed=0, options=None)  # None and {} mean "no options"
    env.reset(seed=0, options={})


def test_grid_maze_and_arm_word_unknown_keys_alike():
    with pytest.raises(ValueError, match=r"unknown reset options \['stat'\]; expected 'map', 'goal', 'start'"):
        GridMazeEnv(size=7).reset(seed=0, options={"stat": 1})
    with pytest.raises(ValueError, match=r"unknown reset options \['map'\]; expected 'obstacles', 'goal', 'start'"):
        ArmCSpaceEnv(bins=8).reset(seed=0, options={"map": np.zeros((8, 8))})
