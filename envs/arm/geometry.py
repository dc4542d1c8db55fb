"""Geometry of a planar two-link arm among obstacles: kinematics, exact collision checks, C-space maps.

All functions are pure numpy, vectorised over configurations and over batches of tasks.

Conventions:

- The workspace is the square ``[-1, 1] x [-1, 1]`` (metres, ``y`` up) with the arm's base at the
  origin; links of lengths ``ArmGeometry.links`` (default 0.5 and 0.4, reach 0.9) are segments
  (no thickness).
- A configuration ``q = (q1, q2)`` in radians: ``q1`` the first link's angle from the ``+x`` axis,
  ``q2`` the second link's angle relative to the first (both counter-clockwise).
- ``bins`` per joint discretise the torus: bin ``i`` is the angle ``2 pi i / bins``. A C-space map is
  ``[bins, bins]`` with rows indexing ``q1`` and columns ``q2``; occupancy is checked exactly at
  each bin's configuration.
- Obstacles of one task: ``[K, 5]`` float rows ``(kind, x, y, a, b)``; ``kind`` 0 pads (no obstacle),
  1 a disc of centre ``(x, y)`` and radius ``a``, 2 an axis-aligned rectangle of centre ``(x, y)``
  and half-sizes ``(a, b)``. Obstacles are closed sets: a link touching one collides.
- A workspace image is ``[P, P]`` bool (``P`` = 96 by default), row 0 at the top (``y = 1``),
  column 0 at the left (``x = -1``); a pixel is set when its centre lies in an obstacle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import check_int

NONE = 0
"""Obstacle kind 0: a padding row, no obstacle."""
DISC = 1
"""Obstacle kind 1: a disc of centre ``(x, y)`` and radius ``a`` (the row ``(kind, x, y, a, b)``)."""
RECTANGLE = 2
"""Obstacle kind 2: an axis-aligned rectangle of centre ``(x, y)`` and half-sizes ``(a, b)``."""
OBSTACLE_FIELDS = 5  # kind, x, y, a, b


@dataclass(frozen=True)
class ArmGeometry:
    """The arm and its workspace.

    Attributes:
        links: lengths of the two links (metres).
        extent: the workspace is ``[-extent, extent]^2`` around the base.
        base_clearance: generated obstacles keep at least this distance from the base (else the
            first link could never move).
    """

    links: tuple[float, float] = (0.5, 0.4)
    extent: float = 1.0
    base_clearance: float = 0.15

    def __post_init__(self):
        if len(self.links) != 2 or min(self.links) <= 0:
            raise ValueError(f"links must be two positive lengths, got {self.links}")
        if not self.extent > 0 or not 0 <= self.base_clearance < self.extent:
            raise ValueError(
                f"need extent > 0 and 0 <= base_clearance < extent, got {self.extent}, {self.base_clearance}"
            )


def check_bins(bins) -> int:
    """Validate a number of bins per joint (an int >= 5, as GridMaze's map side)."""
    return check_int(bins, "bins", 5, " (18: 20 degrees per bin, 36: 10 degrees)")


def bin_angles(bins: int) -> np.ndarray:
    """``[bins]`` joint angles (radians) of the bins: ``2 pi i / bins``."""
    return 2 * np.pi * np.arange(check_bins(bins)) / bins


def bins_to_angles(cells: np.ndarray, bins: int) -> np.ndarray:
    """``(row, column)`` C-space cells ``[..., 2]`` to joint angles ``[..., 2]`` (radians)."""
    return 2 * np.pi * np.asarray(cells, dtype=np.float64) / check_bins(bins)


def forward_kinematics(q: np.ndarray, geometry: ArmGeometry = ArmGeometry()) -> tuple[np.ndarray, np.ndarray]:
    """Elbow and tip positions ``([..., 2], [..., 2])`` of configurations ``q`` ``[..., 2]``."""
    q = np.asarray(q, dtype=np.float64)
    l1, l2 = geometry.links
    first, total = q[..., 0], q[..., 0] + q[..., 1]
    elbow = np.stack([l1 * np.cos(first), l1 * np.sin(first)], axis=-1)
    tip = elbow + np.stack([l2 * np.cos(total), l2 * np.sin(total)], axis=-1)
    return elbow, tip


def segment_hits_disc(p0: np.ndarray, p1: np.ndarray, centre: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Whether segments ``p0 -> p1`` (``[..., 2]``) meet closed discs (``centre [..., 2]``, ``radius [...]``)."""
    d = p1 - p0
    length_sq = (d * d).sum(-1)
    t = ((centre - p0) * d).sum(-1) / np.where(length_sq > 0, length_sq, 1.0)
    closest = p0 + np.clip(t, 0.0, 1.0)[..., None] * d
    return ((closest - centre) ** 2).sum(-1) <= radius**2


def segment_hits_rectangle(p0: np.ndarray, p1: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Whether segments ``p0 -> p1`` meet closed axis-aligned rectangles ``[low, high]`` (all ``[..., 2]``).

    Liang-Barsky clipping: the segment ``p0 + t d``, ``t in [0, 1]``, meets the rectangle when the
    ``t`` intervals inside both slabs overlap.
    """
    d = p1 - p0
    moving = d != 0
    safe = np.where(moving, d, 1.0)
    t_a, t_b = (low - p0) / safe, (high - p0) / safe
    t_in = np.where(moving, np.minimum(t_a, t_b), -np.inf)
    t_out = np.where(moving, np.maximum(t_a, t_b), np.inf)
    # a segment parallel to a slab is inside it for all t, or for none
    parallel_inside = (~moving & (p0 >= low) & (p0 <= high)) | moving
    enter = np.maximum(t_in.max(-1), 0.0)
    leave = np.minimum(t_out.min(-1), 1.0)
    return parallel_inside.all(-1) & (enter <= leave)


def segment_hits_obstacles(p0: np.ndarray, p1: np.ndarray, obstacles: np.ndarray) -> np.ndarray:
    """Whether segments meet obstacles, broadcast: ``p0, p1 [..., 2]`` against ``obstacles [..., 5]``."""
    kind, centre, size = obstacles[..., 0], obstacles[..., 1:3], obstacles[..., 3:5]
    disc = segment_hits_disc(p0, p1, centre, size[..., 0])
    rectangle = segment_hits_rectangle(p0, p1, centre - size, centre + size)
    return np.where(kind == DISC, disc, np.where(kind == RECTANGLE, rectangle, False))


def arm_collides(q: np.ndarray, obstacles: np.ndarray, geometry: ArmGeometry = ArmGeometry()) -> np.ndarray:
    """Whether configurations ``q`` ``[Q, 2]`` collide with a task's obstacles ``[K, 5]``: ``[Q]`` bool."""
    obstacles = check_obstacles(obstacles)
    elbow, tip = forward_kinematics(q, geometry)
    base = np.zeros_like(elbow)
    hits = [segment_hits_obstacles(a[:, None], b[:, None], obstacles[None]) for a, b in ((base, elbow), (elbow, tip))]
    return (hits[0] | hits[1]).any(-1)


def cspace_maps(
    obstacles: np.ndarray, bins: int, geometry: ArmGeometry = ArmGeometry(), chunk: int = 256
) -> np.ndarray:
    """Exact C-space occupancy of a batch of tasks: ``obstacles [n, K, 5]`` -> ``[n, bins, bins]`` bool
    (``True`` where the arm collides), checked at every bin's configuration."""
    obstacles = check_obstacles(obstacles, batched=True)
    angles = bin_angles(bins)
    q = np.stack(np.meshgrid(angles, angles, indexing="ij"), axis=-1).reshape(-1, 2)
    elbow, tip = forward_kinematics(q, geometry)
    base = np.zeros_like(elbow)
    out = np.empty((len(obstacles), bins * bins), dtype=bool)
    for start in range(0, len(obstacles), chunk):
        part = obstacles[start : start + chunk, None]  # [c, 1, K, 5] against segments [Q, 1, 2]
        hits = segment_hits_obstacles(base[:, None], elbow[:, None], part) | segment_hits_obstacles(
            elbow[:, None], tip[:, None], part
        )
        out[start : start + chunk] = hits.any(-1)
    return out.reshape(len(obstacles), bins, bins)


def workspace_images(obstacles: np.ndarray, pixels: int = 96, geometry: ArmGeometry = ArmGeometry()) -> np.ndarray:
    """Top-down obstacle images of a batch of tasks: ``obstacles [n, K, 5]`` -> ``[n, pixels, pixels]`` bool."""
    obstacles = check_obstacles(obstacles, batched=True)
    centres = (np.arange(pixels) + 0.5) / pixels * 2 * geometry.extent - geometry.extent
    x = centres[None, :]  # columns, left to right
    y = centres[::-1, None]  # rows, top to bottom
    image = np.zeros((len(obstacles), pixels, pixels), dtype=bool)
    for k in range(obstacles.shape[1]):
        kind, cx, cy, a, b = (obstacles[:, k, i][:, None, None] for i in range(OBSTACLE_FIELDS))
        disc = (x - cx) ** 2 + (y - cy) ** 2 <= a**2
        rectangle = (np.abs(x - cx) <= a) & (np.abs(y - cy) <= b)
        image |= np.where(kind == DISC, disc, np.where(kind == RECTANGLE, rectangle, False))
    return image


def random_obstacles(
    n: int,
    rng: np.random.Generator,
    max_obstacles: int = 5,
    geometry: ArmGeometry = ArmGeometry(),
    size_range: tuple[float, float] = (0.05, 0.2),
) -> np.ndarray:
    """``n`` tasks of 0 to ``max_obstacles`` obstacles (discs or rectangles, equally likely): ``[n, max_obstacles, 5]``.

    Centres are uniform in the workspace, radii and half-sizes uniform in ``size_range``; an
    obstacle closer than ``geometry.base_clearance`` to the base is redrawn.
    """
    check_int(max_obstacles, "max_obstacles", 0)
    out = np.zeros((n, max_obstacles, OBSTACLE_FIELDS))
    if max_obstacles == 0 or n == 0:
        return out
    count = rng.integers(0, max_obstacles + 1, size=n)
    pending = np.arange(max_obstacles)[None, :] < count[:, None]  # slots still to fill
    low, high = size_range
    while pending.any():
        rows, slots = np.nonzero(pending)
        kind = rng.choice([DISC, RECTANGLE], size=rows.size)
        centre = rng.uniform(-geometry.extent, geometry.extent, size=(rows.size, 2))
        size = rng.uniform(low, high, size=(rows.size, 2))
        size[kind == DISC, 1] = size[kind == DISC, 0]
        candidate = np.concatenate([kind[:, None], centre, size], axis=1)
        clear = obstacle_distance(np.zeros(2), candidate) >= geometry.base_clearance
        out[rows[clear], slots[clear]] = candidate[clear]
        pending[rows[clear], slots[clear]] = False
    return out


def obstacle_distance(point: np.ndarray, obstacles: np.ndarray) -> np.ndarray:
    """Distance from ``point`` ``[2]`` to each obstacle ``[..., 5]`` (0 inside; ``inf`` for padding)."""
    kind, centre, size = obstacles[..., 0], obstacles[..., 1:3], obstacles[..., 3:5]
    offset = np.abs(point - centre)
    disc = np.maximum(np.linalg.norm(offset, axis=-1) - size[..., 0], 0.0)
    rectangle = np.linalg.norm(np.maximum(offset - size, 0.0), axis=-1)
    return np.where(kind == DISC, disc, np.where(kind == RECTANGLE, rectangle, np.inf))


def check_obstacles(obstacles, batched: bool = False) -> np.ndarray:
    """Validate obstacle rows (``[K, 5]``, or ``[n, K, 5]`` when ``batched``) and return them as float64."""
    array = np.asarray(obstacles, dtype=np.float64)
    expected = "[n, K, 5]" if batched else "[K, 5]"
    if array.ndim != (3 if batched else 2) or array.shape[-1] != OBSTACLE_FIELDS:
        raise ValueError(f"obstacles must be {expected} rows (kind, x, y, a, b), got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("obstacles hold non-finite values")
    kind = array[..., 0]
    if not np.isin(kind, (NONE, DISC, RECTANGLE)).all():
        raise ValueError(f"obstacle kind must be {NONE} (none), {DISC} (disc) or {RECTANGLE} (rectangle)")
    sizes = array[..., 3:5]
    used = kind == DISC
    if (sizes[used][:, 0] <= 0).any() or (sizes[kind == RECTANGLE] <= 0).any():
        raise ValueError("obstacle radii and half-sizes must be positive")
    return array
