"""Visual navigation in a MiniWorld 3D maze (``idplan/MiniWorldNav-v0``): the environment, the
panorama datasets and rendering.

MiniWorld (``pip install "idplan[miniworld]"``) is imported only when the first world is built
(:func:`load_maze_world`, which loads :mod:`.world`): importing this package never imports it.
"""

from .dataset import (
    VisualNavDataset,
    VisualNavTorchDataset,
    generate_visual_nav_shards,
    generate_visual_nav_splits,
    load_visual_nav_shards,
    render_panoramas,
    save_visual_nav_shards,
)
from .env import SYSTEM_PACKAGES, VIEWS, MiniWorldNavEnv, load_maze_world
from .rendering import NavigationRenderer

__all__ = [
    "MiniWorldNavEnv",
    "load_maze_world",
    "SYSTEM_PACKAGES",
    "VIEWS",
    "VisualNavDataset",
    "VisualNavTorchDataset",
    "generate_visual_nav_splits",
    "generate_visual_nav_shards",
    "save_visual_nav_shards",
    "load_visual_nav_shards",
    "render_panoramas",
    "NavigationRenderer",
]
