"""The geometry rules of SPEC §2 and §2b, each written once.

Everything that decides *where* a pixel comes from lives here: thumbnail sizes, ratios, centre and
random placement, and the per-axis source taps (nearest for masks; bilinear or area for images).
``sas_fast.plan`` (validation), ``sas_fast.config`` (sampling), the NumPy reference and the
benchmarks import these functions; the compiled kernels (``backends/_numba_geometry.py``,
``cuda/sas_kernels.cu``) restate the per-pixel rules in their own languages and are tested against
them bit for bit.

Conventions: ``src`` is the crop's side along one axis (``sh`` or ``sw``), ``side`` the thumbnail's
(``h`` or ``w``), ``t`` thumbnail coordinates ``0 <= t < side`` (an int64 array), ``ratio`` the
float32 ``src / side`` of SPEC §2.  An axis' image taps are an :class:`AxisTaps` table: for each
coordinate, source indices and float32 weights, summed in table order (SPEC §2b).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "AREA_EPSILON",
    "INTERPOLATIONS",
    "AxisTaps",
    "area_taps",
    "axis_taps",
    "bilinear_taps",
    "centre_offsets",
    "is_area_axis",
    "nearest_taps",
    "random_int",
    "random_offsets",
    "ratios",
    "thumbnail_sides",
]

f32 = np.float32

#: Image interpolation names and their kernel codes (SPEC §2b); the mask is always nearest.
INTERPOLATIONS = {"bilinear": 0, "area": 1}
#: A source pixel covered by less than this (in pixels) is not a tap (OpenCV's computeResizeAreaTab).
AREA_EPSILON = 1e-3


# ----------------------------------------------------------------------------- sizes and placement


def thumbnail_sides(src, scale) -> np.ndarray:
    """Thumbnail sides ``max(1, floor(src * scale + 0.5))`` in float64 (SPEC §2; broadcasts).

    Float, so a caller can refuse a huge side before casting it to an integer.
    """
    return np.maximum(1.0, np.floor(np.multiply(src, scale, dtype=np.float64) + 0.5))


def ratios(src, side) -> np.ndarray:
    """The float32 ratios ``src / side`` (computed in float64, rounded once)."""
    return np.true_divide(src, side, dtype=np.float64).astype(f32)


def centre_offsets(canvas, thumb) -> np.ndarray:
    """``"center"`` placement: ``(Ho - h) // 2``, ``(Wo - w) // 2`` (floor division; int64)."""
    return (np.asarray(canvas, np.int64) - thumb) // 2


def random_int(words: np.ndarray, lo, hi) -> np.ndarray:
    """Integers uniform in ``[min(lo, hi), max(lo, hi)]`` from uint32 words (multiply-high, exact)."""
    a, b = np.minimum(lo, hi).astype(np.int64), np.maximum(lo, hi).astype(np.int64)
    span = (b - a + 1).astype(np.uint64)
    return a + ((words.astype(np.uint64) * span) >> np.uint64(32)).astype(np.int64)


def random_offsets(words: np.ndarray, canvas, thumb) -> np.ndarray:
    """``"random"`` placement: offsets uniform between 0 and ``canvas - thumb`` inclusive (either
    order when the thumbnail is larger), one uint32 parameter word per axis (SPEC §2, §5)."""
    return random_int(words, 0, np.asarray(canvas, np.int64) - thumb)


# ----------------------------------------------------------------------------- taps along one axis


def nearest_taps(t: np.ndarray, src: int, ratio: np.float32) -> np.ndarray:
    """Nearest-exact source indices ``min(floor((t + 0.5) * ratio), src - 1)`` (the mask rule)."""
    return np.minimum(np.floor((t.astype(f32) + f32(0.5)) * ratio).astype(np.int64), src - 1)


def bilinear_taps(t: np.ndarray, src: int, ratio: np.float32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """SPEC §2's bilinear taps: ``(i0, i1, frac)``, the two source indices and the float32 weight
    of ``i1`` (0 where the position is clamped to an edge)."""
    pos = (t.astype(f32) + f32(0.5)) * ratio - f32(0.5)
    floor = np.floor(pos)
    frac = pos - floor
    i0 = floor.astype(np.int64)
    under, over = i0 < 0, i0 >= src - 1
    i0 = np.where(under, 0, np.where(over, src - 1, i0))
    frac = np.where(under | over, f32(0), frac).astype(f32)
    return i0, np.minimum(i0 + 1, src - 1), frac


class AxisTaps(NamedTuple):
    """The image taps of ``len(count)`` coordinates along one axis.

    index: int64 ``(n, K)`` source indices; weight: float32 ``(n, K)``; count: int64 ``(n,)``, the
    taps of each coordinate (entries from ``count`` on are padding: index 0, weight 0, never summed).
    """

    index: np.ndarray
    weight: np.ndarray
    count: np.ndarray


def area_taps(t: np.ndarray, src: int, side: int) -> AxisTaps:
    """SPEC §2b's area taps of a shrunk axis (``side < src``): OpenCV's ``computeResizeAreaTab``.

    Thumbnail pixel ``t`` covers source ``[f1, f2)`` with ``f1 = t * r``, ``f2 = f1 + r``,
    ``r = src / side`` (float64).  Its taps are consecutive source pixels: a partial first one
    (``i1 - 1``), the whole ones ``i1 .. i2 - 1`` and a partial last one (``i2``), each weighted
    by its coverage over ``cell``; the weights are rounded once to float32.
    """
    r = src / side
    f1 = t.astype(np.float64) * r
    f2 = f1 + r
    cell = np.minimum(r, src - f1)
    i2 = np.minimum(np.floor(f2), src - 1)
    i1 = np.minimum(np.ceil(f1), i2)
    head = i1 - f1 > AREA_EPSILON  # a partial source pixel i1 - 1 before the whole ones
    tail = f2 - i2 > AREA_EPSILON  # a partial source pixel i2 after them
    first = (i1 - head).astype(np.int64)
    count = head + (i2 - i1).astype(np.int64) + tail
    k = np.arange(count.max(initial=1))
    used = k < count[:, None]
    weight = np.broadcast_to(1.0 / cell[:, None], used.shape).copy()
    weight[:, 0] = np.where(head, (i1 - f1) / cell, weight[:, 0])
    last = np.minimum(np.minimum(f2 - i2, 1.0), cell) / cell
    rows = np.flatnonzero(tail)
    weight[rows, count[rows] - 1] = last[rows]
    return AxisTaps(np.where(used, first[:, None] + k, 0), np.where(used, weight, 0).astype(f32), count)


def is_area_axis(interpolation, src, side):
    """Whether an axis takes area taps: area interpolation on a shrunk axis (SPEC §2b; broadcasts)."""
    return (np.asarray(interpolation) == INTERPOLATIONS["area"]) & (np.asarray(side) < src)


def axis_taps(interpolation: int, t: np.ndarray, src: int, side: int, ratio: np.float32) -> AxisTaps:
    """The image taps of coordinates ``t`` along one axis for interpolation code ``interpolation``:
    :func:`area_taps` on an axis area shrinks, otherwise the two bilinear taps
    ``(i0, 1 - frac), (i1, frac)`` of SPEC §2 (so bilinear is the same two sums)."""
    if is_area_axis(interpolation, src, side):
        return area_taps(t, src, side)
    i0, i1, frac = bilinear_taps(t, src, ratio)
    return AxisTaps(np.stack([i0, i1], axis=1), np.stack([f32(1) - frac, frac], axis=1), np.full(len(t), 2))
