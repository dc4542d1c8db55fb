"""Rollout GIFs with a title line on every frame (step counter first, so a narrow frame keeps it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...envs.atomic import atomic_path

TITLE_HEIGHT = 14


def titled(frame: np.ndarray, title: str) -> np.ndarray:
    """``[H, W, 3]`` uint8 -> ``[H + 14, W, 3]``: the frame under a black strip with ``title`` in white.
    The step counter in the title keeps a stuck policy's frames distinct, so the GIF shows every step."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (frame.shape[1], frame.shape[0] + TITLE_HEIGHT))
    image.paste(Image.fromarray(np.ascontiguousarray(frame[..., :3])), (0, TITLE_HEIGHT))
    ImageDraw.Draw(image).text((3, 1), title, fill=(255, 255, 255))
    return np.asarray(image)


def write_gif(path: str | Path, frames: Sequence[np.ndarray], titles: Sequence[str], fps: float) -> Path:
    """Write ``frames`` (each ``[H, W, 3]`` uint8) under their ``titles`` as a looping GIF at ``fps``,
    atomically; returns the path."""
    import imageio.v3 as iio

    if len(frames) != len(titles):
        raise ValueError(f"write_gif: {len(frames)} frames but {len(titles)} titles")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stacked = np.stack([titled(frame, title) for frame, title in zip(frames, titles)])
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, stacked, duration=1000 / fps, loop=0, extension=".gif")
    return path
