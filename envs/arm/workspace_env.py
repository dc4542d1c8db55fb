"""The arm task seen from above: ``idplan/ArmWorkspace-v0`` (the planner gets the workspace image)."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from .._checks import check_int
from .cspace_env import ArmCSpaceEnv
from .geometry import workspace_images

WORKSPACE_PIXELS = 96
"""The default side, in pixels, of :class:`ArmWorkspaceEnv`'s workspace image."""


class ArmWorkspaceEnv(ArmCSpaceEnv):
    """The arm task seen from above: the planner gets the workspace image, not the C-space.

    Everything is as in :class:`ArmCSpaceEnv` but the observation:

    - ``"workspace"``: ``MultiBinary((96, 96))`` int8, the top-down obstacle image (row 0 at
      ``y = 1``, column 0 at ``x = -1``; see :mod:`.geometry`);
    - ``"goal"``: ``MultiDiscrete([bins, bins])``, the goal configuration's bins;
    - ``"position"``: ``MultiDiscrete([bins, bins])``, the current configuration's bins.

    The C-space stays hidden from the agent; ``info["cspace"]`` (``[bins, bins]`` int8, 1 where the
    arm collides) carries it for supervision and evaluation. A learned mapper
    (:class:`idplan.agents.mappers.workspace.WorkspaceMapper`) turns the image into a C-space map.
    """

    def __init__(self, bins: int = 18, pixels: int = WORKSPACE_PIXELS, **kwargs):
        super().__init__(bins, **kwargs)
        self.pixels = check_int(pixels, "pixels", 8)
        self.observation_space = spaces.Dict(
            {
                "workspace": spaces.MultiBinary((self.pixels, self.pixels)),
                "goal": spaces.MultiDiscrete([self.bins, self.bins]),
                "position": spaces.MultiDiscrete([self.bins, self.bins]),
            }
        )
        self._image: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._image = None
        return super().reset(seed=seed, options=options)

    def _observation(self) -> dict[str, np.ndarray]:
        if self._image is None:
            self._image = workspace_images(self.obstacles[None], self.pixels, self.geometry)[0].astype(np.int8)
        return {
            "workspace": self._image.copy(),
            "goal": np.array(self.goal, dtype=np.int64),
            "position": np.array(self.position, dtype=np.int64),
        }

    def _info(self, bumped: bool) -> dict[str, Any]:
        return {**super()._info(bumped), "cspace": (~self.free).astype(np.int8)}
