"""Drawing MiniWorldNav frames: the first-person view, MiniWorld's top view and the (predicted) map.

Three ``panel x panel`` panels side by side: what the agent sees facing its last move, the maze from
above (MiniWorld's own top view, the agent as a red triangle), and a maze frame of the map (the true
one, or the map an agent predicts) with the path and any value/policy overlay, the value legend under it.
"""

from __future__ import annotations

import numpy as np

from ..maze.rendering import LEGEND_HEIGHT, MazeRenderer
from ..rendering import import_pygame, surface_array

GAP = 8  # pixels between panels
BACKGROUND = (255, 255, 255)


class NavigationRenderer:
    """Draws ``[panel + LEGEND_HEIGHT, 3 * panel + 2 * GAP, 3]`` frames of a visual-navigation task
    (the map panel's value legend under it).

    Args:
        size: the maze side ``m``.
        panel: side of each panel in pixels.
    """

    def __init__(self, size: int, panel: int = 240):
        self.pygame = import_pygame()
        self.map = MazeRenderer(size, cell=max(4, panel // size))
        self.panel = panel
        self.surface = self.pygame.Surface((3 * panel + 2 * GAP, panel + LEGEND_HEIGHT))

    def _image(self, image: np.ndarray):
        if image.shape != (self.panel, self.panel, 3):
            raise ValueError(f"expected a [{self.panel}, {self.panel}, 3] view, got {image.shape}")
        return self.pygame.surfarray.make_surface(np.ascontiguousarray(image.transpose(1, 0, 2)))

    def draw(
        self, first_person, top_view, free, goal, position, trail=(), values=None, policy=None, value_label="value"
    ):
        """Draw one frame: ``first_person`` and ``top_view`` ``[panel, panel, 3]`` uint8 images,
        then the map ``free [m, m]`` with the goal, agent, trail and overlays (see :class:`MazeRenderer`)."""
        self.surface.fill(BACKGROUND)
        self.surface.blit(self._image(first_person), (0, 0))
        self.surface.blit(self._image(top_view), (self.panel + GAP, 0))
        maze = self.map.draw(free, goal, position, trail, values=values, policy=policy, value_label=value_label)
        self.surface.blit(maze, (2 * (self.panel + GAP), (self.panel - self.map.pixels) // 2))
        return self.surface

    def to_array(self) -> np.ndarray:
        """The current frame as ``[H, W, 3]`` uint8."""
        return surface_array(self.surface)
