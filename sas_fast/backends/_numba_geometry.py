"""Numba row functions for SPEC §2 (rescale and paste), used by the fused kernel of ``numba_cpu``.

The bilinear resize is separable in exactly the spec's order: ``top``/``bot`` are horizontal
blends of two source rows, then one vertical blend.  So each needed source row is blended
horizontally once (:func:`horizontal_pass`, cached by the caller while consecutive output rows
reuse it) and every output row is one vertical blend of two cached rows
(:func:`vertical_blend`).  Per-column taps and weights are tabulated once per task
(:func:`x_tables`).  All arithmetic is float32 without fused multiply-add, so the result equals
the NumPy reference bit for bit.

Rows are flat: an image row holds ``W * C`` interleaved channel values, and the tables are per
element (``j * C + c``), so one loop serves any channel count.  Loops run from 0 over slices so
that LLVM vectorises them; table indices are unsigned, so no negative-index wraparound code
is emitted in the gather loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)

__all__ = [
    "axis_tap",
    "fill_row",
    "horizontal_pass",
    "nearest_row",
    "nearest_tap",
    "quantise",
    "vertical_blend",
    "x_tables",
]

_f32 = np.float32
_ZERO = _f32(0.0)
_ONE = _f32(1.0)
_HALF = _f32(0.5)


@njit(cache=True, inline="always", error_model="numpy")
def quantise(value, is_int, qmax):
    """A float32 result as stored in the image dtype: integers ``rint`` then clip to ``[0, qmax]``."""
    if is_int:
        value = np.rint(value)
        value = value if value > _ZERO else _ZERO
        value = value if value < qmax else qmax
    return value


@njit(cache=True, inline="always", error_model="numpy")
def axis_tap(t, ratio, size):
    """Bilinear taps of thumbnail coordinate ``t`` along an axis of ``size`` source pixels.

    Returns ``(i0, i1, frac)``: ``i0`` clamped to the edge (``frac = 0`` there), ``i1 = min(i0 + 1, size - 1)``.
    """
    pos = (_f32(t) + _HALF) * ratio - _HALF
    i0f = np.floor(pos)
    frac = pos - i0f
    i0 = np.int64(i0f)
    if i0 < 0:
        i0 = 0
        frac = _ZERO
    elif i0 >= size - 1:
        i0 = size - 1
        frac = _ZERO
    return i0, min(i0 + 1, size - 1), frac


@njit(cache=True, inline="always", error_model="numpy")
def nearest_tap(t, ratio, size):
    """Nearest-exact source index of thumbnail coordinate ``t`` (``INTER_NEAREST_EXACT``)."""
    return min(np.int64(np.floor((_f32(t) + _HALF) * ratio)), size - 1)


@njit(cache=True, error_model="numpy")
def x_tables(first, count, ratio, size, channels, offsets, weights, nearest):
    """Per-column tables for thumbnail columns ``first .. first + count - 1`` (uint32 indices).

    Element ``j * channels + c`` gets the flat source offset of its first tap (relative to the
    crop's first column; the second tap is ``channels`` further) and the second tap's weight
    ``a``; ``nearest[j]`` is the mask column.  Where the spec clamps the second tap to the first
    (the right edge), ``a`` is 0 and :func:`horizontal_pass` pads the row so the read is valid.
    """
    for j in range(count):
        t = first + j
        i0, _, frac = axis_tap(t, ratio, size)
        nearest[j] = nearest_tap(t, ratio, size)
        for c in range(channels):
            offsets[j * channels + c] = i0 * channels + c
            weights[j * channels + c] = frac


@njit(cache=True, error_model="numpy")
def horizontal_pass(src_row, scratch, offsets, weights, count, channels, dst):
    """``dst[k] = S(o) * (1 - a) + S(o + channels) * a`` with ``o, a = offsets[k], weights[k]``, ``k < count``.

    The source row is first converted to float32 in ``scratch`` (one vectorised pass, padded with
    a copy of its last pixel), so the gather loop does no integer-to-float conversions.
    ``1 - a`` is recomputed, which rounds exactly as the spec's.
    """
    n = src_row.shape[0]
    for k in range(n):
        scratch[k] = _f32(src_row[k])
    for c in range(channels):
        scratch[n + c] = scratch[n - channels + c]
    step = np.uint32(channels)
    for k in range(count):
        o = offsets[k]
        a = weights[k]
        dst[k] = scratch[o] * (_ONE - a) + scratch[o + step] * a


@njit(cache=True, error_model="numpy")
def vertical_blend(top, bot, b, count, dst, is_int, qmax):
    """``dst[k] = quantise(top[k] * (1 - b) + bot[k] * b)`` for ``k < count``; ``dst`` a row slice."""
    one_minus = _ONE - b
    for k in range(count):
        dst[k] = quantise(top[k] * one_minus + bot[k] * b, is_int, qmax)


@njit(cache=True, error_model="numpy")
def fill_row(row, start, stop, fill):
    """Pixels ``start .. stop - 1`` of a flat row of ``len(fill)`` channels set to ``fill``."""
    channels = fill.shape[0]
    if channels == 1:
        row[start:stop] = fill[0]
        return
    pixels = row[start * channels : stop * channels]
    for x in range(stop - start):
        for c in range(channels):
            pixels[x * channels + c] = fill[c]


@njit(cache=True, error_model="numpy")
def nearest_row(src_row, nearest, dst):
    """``dst[j] = src_row[nearest[j]]``: one mask row, nearest-exact.

    Most source rows of a segmentation mask are all background: a vectorised check finds them
    and writes zeros instead of gathering.  Returns whether ``src_row`` holds any nonzero label.
    """
    labelled = 0
    for k in range(src_row.shape[0]):
        labelled += src_row[k] != 0
    if labelled == 0:
        dst[:] = 0
        return False
    for j in range(dst.shape[0]):
        dst[j] = src_row[nearest[j]]
    return True
