"""pygame helpers shared by every environment's rendering: the import that names the pip extra, the
``render_mode="human"`` window and surface-to-array conversion.

pygame is imported only when a renderer or window is built, so the environments work without it.
"""

from __future__ import annotations

import numpy as np
from gymnasium.error import DependencyNotInstalled


def import_pygame():
    """Import pygame, or raise an error that names the extra to install."""
    try:
        import pygame
    except ImportError as error:
        raise DependencyNotInstalled(
            'pygame is not installed: run `pip install "idplan[render]"` to render the environments'
        ) from error
    return pygame


class HumanWindow:
    """The pygame window of an env's ``render_mode="human"``: opened on the first frame, paced at ``fps``."""

    def __init__(self, caption: str, fps: int):
        self.pygame = import_pygame()
        self.caption, self.fps = caption, fps
        self._display = None
        self._clock = None

    def show(self, surface) -> None:
        pg = self.pygame
        if self._display is None:
            pg.display.init()
            pg.display.set_caption(self.caption)
            self._display = pg.display.set_mode(surface.get_size())
            self._clock = pg.time.Clock()
        pg.event.pump()
        self._display.blit(surface, (0, 0))
        pg.display.flip()
        self._clock.tick(self.fps)

    def close(self) -> None:
        if self._display is not None:
            self.pygame.display.quit()
            self._display = None


def surface_array(surface) -> np.ndarray:
    """A pygame surface as an ``[H, W, 3]`` uint8 array."""
    pygame = import_pygame()
    return np.ascontiguousarray(pygame.surfarray.array3d(surface).transpose(1, 0, 2))


__all__ = ["import_pygame", "HumanWindow", "surface_array"]
