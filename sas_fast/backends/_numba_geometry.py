"""Numba row functions for SPEC §2 / §2b (rescale and paste), used by the fused kernel of ``numba_cpu``.

Both image interpolations are separable in exactly the spec's order: each output pixel is a sum
over its row taps of horizontal sums over its column taps (bilinear: two taps each, ``top``/``bot``
then ``v``; area: the coverage taps of ``sas_fast.geometry.area_taps`` on a shrunk axis).  So each
needed source row is summed horizontally once (:func:`horizontal_pass` for bilinear columns,
:func:`area_pass` for area columns; the caller caches the rows while consecutive output rows reuse
them) and every output row is one vertical sum of cached rows (:func:`vertical_blend` for two
bilinear rows, :func:`vertical_taps` for the area rows of :func:`area_rows`).  Column taps and
weights are tabulated once per task (:func:`x_tables`, :func:`x_area_tables`).  All arithmetic is
float32 without fused multiply-add (the area tap positions: float64, as the reference), so the
result equals the NumPy reference bit for bit.

Rows are flat: an image row holds ``W * C`` interleaved channel values, and the tables are per
element (``j * C + c``), so one loop serves any channel count.  Loops run from 0 over slices so
that LLVM vectorises them; table indices are unsigned, so no negative-index wraparound code
is emitted in the gather loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..geometry import AREA_EPSILON
from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)

__all__ = [
    "area_pass",
    "area_rows",
    "area_tap",
    "axis_tap",
    "fill_row",
    "horizontal_pass",
    "max_area_taps",
    "nearest_columns",
    "nearest_row",
    "nearest_tap",
    "quantise",
    "vertical_blend",
    "vertical_taps",
    "x_area_tables",
    "x_tables",
]

_f32 = np.float32
_ZERO = _f32(0.0)
_ONE = _f32(1.0)
_HALF = _f32(0.5)
#: The weight of a padding tap: its product with the zero slot is -0.0, and ``x + -0.0 == x`` for
#: every x (-0.0 included), so padding never changes a sum.
_PAD = _f32(-0.0)


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


@njit(cache=True, inline="always", error_model="numpy")
def area_tap(t, side, src):
    """SPEC §2b area taps of thumbnail coordinate ``t`` on an axis shrunk from ``src`` to ``side``
    pixels: ``sas_fast.geometry.area_taps`` for one coordinate, in the same float64 operations.

    Returns ``(first, count, w_first, w_mid, w_last)``: ``count`` consecutive source pixels from
    ``first``; tap ``k``'s float32 weight is :func:`tap_weight` of these.
    """
    r = src / side
    f1 = t * r
    f2 = f1 + r
    cell = min(r, src - f1)
    i2 = min(np.floor(f2), src - 1.0)
    i1 = min(np.ceil(f1), i2)
    head = i1 - f1 > AREA_EPSILON
    tail = f2 - i2 > AREA_EPSILON
    count = np.int64(head) + np.int64(i2 - i1) + np.int64(tail)
    w_mid = _f32(1.0 / cell)
    w_head = _f32((i1 - f1) / cell)
    w_tail = _f32(min(min(f2 - i2, 1.0), cell) / cell)
    # weights of the first and the last tap (one tap: both are it)
    w_first = w_head if head else (w_tail if tail and count == 1 else w_mid)
    w_last = w_tail if tail else (w_head if head and count == 1 else w_mid)
    return np.int64(i1) - np.int64(head), count, w_first, w_mid, w_last


@njit(cache=True, inline="always", error_model="numpy")
def tap_weight(k, count, w_first, w_mid, w_last):
    """The weight of tap ``k`` of :func:`area_tap`'s ``count`` taps."""
    return w_first if k == 0 else (w_last if k == count - 1 else w_mid)


@njit(cache=True, error_model="numpy")
def max_area_taps(first, count, side, src):
    """The most area taps any of thumbnail coordinates ``first .. first + count - 1`` has (at least 1)."""
    most = 1
    for j in range(count):
        most = max(most, area_tap(first + j, side, src)[1])
    return most


@njit(cache=True, inline="always", error_model="numpy")
def area_rows(t, side, src, weights):
    """The area taps of thumbnail row ``t`` of an area-shrunk axis (:func:`area_tap`): returns
    ``(first, count)``, the ``count`` consecutive source rows from ``first``, and their weights
    into ``weights``."""
    first, count, w_first, w_mid, w_last = area_tap(t, side, src)
    for k in range(count):
        weights[k] = tap_weight(k, count, w_first, w_mid, w_last)
    return first, count


@njit(cache=True, error_model="numpy")
def nearest_columns(first, count, ratio, size, nearest):
    """``nearest[j]``: the mask column of thumbnail column ``first + j`` (nearest-exact)."""
    for j in range(count):
        nearest[j] = nearest_tap(first + j, ratio, size)


@njit(cache=True, error_model="numpy")
def x_tables(first, count, ratio, size, channels, offsets, weights):
    """Bilinear per-column tables for thumbnail columns ``first .. first + count - 1`` (uint32 indices).

    Element ``j * channels + c`` gets the flat source offset of its first tap (relative to the
    crop's first column; the second tap is ``channels`` further) and the second tap's weight
    ``a``.  Where the spec clamps the second tap to the first (the right edge), ``a`` is 0 and
    :func:`horizontal_pass` pads the row so the read is valid.
    """
    for j in range(count):
        i0, _, frac = axis_tap(first + j, ratio, size)
        for c in range(channels):
            offsets[j * channels + c] = i0 * channels + c
            weights[j * channels + c] = frac


@njit(cache=True, error_model="numpy")
def x_area_tables(first, count, side, size, channels, zero, offsets, weights):
    """Area per-column tables for thumbnail columns ``first .. first + count - 1``, tap-major.

    ``offsets[k, j * channels + c]``: the flat source offset (relative to the crop's first column)
    of tap ``k`` of column ``j``, channel ``c``; ``weights[k, ...]`` its weight.  Columns with fewer
    taps than the tables' rows get padding taps: offset ``zero`` (the scratch row's zero slot, see
    :func:`area_pass`) with weight -0.0, which add nothing.
    """
    for j in range(count):
        start, taps, w_first, w_mid, w_last = area_tap(first + j, side, size)
        for k in range(offsets.shape[0]):
            w = tap_weight(k, taps, w_first, w_mid, w_last) if k < taps else _PAD
            for c in range(channels):
                offsets[k, j * channels + c] = (start + k) * channels + c if k < taps else zero
                weights[k, j * channels + c] = w


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
def area_pass(src_row, scratch, offsets, weights, taps, count, dst):
    """``dst[e] = sum_k scratch[offsets[k, e]] * weights[k, e]`` over the first ``taps`` table rows,
    left to right from the first product, for ``e < count`` (the area columns of :func:`x_area_tables`).

    The source row is first converted to float32 into ``scratch``, whose last element, the zero
    slot, the caller keeps at 0.0 (padding taps read it).  One pass per tap over the row: each is
    a vectorised gather, and the rows stay in the L1 cache.
    """
    n = src_row.shape[0]
    for k in range(n):
        scratch[k] = _f32(src_row[k])
    o, w = offsets[0], weights[0]
    for e in range(count):
        dst[e] = scratch[o[e]] * w[e]
    for k in range(1, taps):
        o, w = offsets[k], weights[k]
        for e in range(count):
            dst[e] = dst[e] + scratch[o[e]] * w[e]


@njit(cache=True, error_model="numpy")
def vertical_blend(top, bot, b, count, dst, is_int, qmax):
    """``dst[k] = quantise(top[k] * (1 - b) + bot[k] * b)`` for ``k < count``; ``dst`` a row slice."""
    one_minus = _ONE - b
    for k in range(count):
        dst[k] = quantise(top[k] * one_minus + bot[k] * b, is_int, qmax)


@njit(cache=True, error_model="numpy")
def vertical_taps(hbuf, slots, weights, taps, count, acc, dst, is_int, qmax):
    """``dst[e] = quantise(sum_k hbuf[slots[k], e] * weights[k])`` over ``k < taps``, left to right
    from the first product, for ``e < count``; ``dst`` a row slice, ``acc`` float32 scratch.

    The running sum is float32 in ``acc``, exactly what the reference rounds to after each addition.
    """
    last, w_last = hbuf[slots[taps - 1]], weights[taps - 1]
    if taps == 1:
        for e in range(count):
            dst[e] = quantise(last[e] * w_last, is_int, qmax)
        return
    first, w0 = hbuf[slots[0]], weights[0]
    for e in range(count):
        acc[e] = first[e] * w0
    for k in range(1, taps - 1):
        row, wk = hbuf[slots[k]], weights[k]
        for e in range(count):
            acc[e] = acc[e] + row[e] * wk
    for e in range(count):
        dst[e] = quantise(acc[e] + last[e] * w_last, is_int, qmax)


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
