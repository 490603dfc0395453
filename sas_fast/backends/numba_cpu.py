"""The Numba CPU backend: SPEC §2-4 as one fused, parallel kernel, equal to the NumPy reference.

One kernel serves the three entry points.  The batch is cut into tasks (a sample, or a band of
its canvas rows when there are few samples) spread over Numba's threads (``prange``; it honours
``numba.set_num_threads``).  A task walks its canvas rows once: each row is produced (rescaled
and pasted, or copied for :func:`noise_in_mask`) and its selected pixels are queued; every
4096 queued pixels the noise is drawn and written back while the rows are still in cache, so
:func:`augment` never writes an intermediate canvas.  ``_numba_geometry`` and ``_numba_noise``
hold the row algorithms and say why they vectorise.

Everything is compiled with ``cache=True`` (a new process loads machine code instead of
compiling; ``_numba_cache`` keys it on all the sources) and ``error_model="numpy"`` (no
zero-division checks, which would block vectorisation).  Scratch is a few rows and one noise
batch per task; nothing of canvas size is allocated.  One compiled kernel exists per image dtype
x mask dtype (x read-only inputs); the noise loops are compiled once for all of them.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import njit, prange

from ..plan import KINDS, GeometryPlan, NoisePlan
from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)
from ._numba_geometry import axis_tap, fill_row, horizontal_pass, nearest_row, nearest_tap, vertical_blend, x_tables
from ._numba_noise import BATCH, NOISE_BATCH, SELECT_LUT, SELECT_NONZERO, SELECT_SORTED, flush, new_batch, queue_row
from ._numba_noise import selection_flags

__all__ = ["DEVICE", "augment", "noise_in_mask", "rescale_paste"]

DEVICE = "cpu"

_KIND_NONE = KINDS["none"]
#: Label sets spanning at most this many values are looked up in a table, larger ones by bisection.
_MAX_LUT = 1 << 16
#: Aim for this many tasks per thread so uneven samples still balance.
_TASKS_PER_THREAD = 16

_u64 = np.uint64


# ----------------------------------------------------------------------------- the kernel


@njit(cache=True, error_model="numpy")
def _source_rows(image_i, iy, iy1, sy0, sx0, sw, channels, offsets, weights, scratch, hbuf, held):
    """The slots of ``hbuf`` holding the horizontal passes of source rows ``iy`` and ``iy1`` of the crop.

    ``held[s]`` is the crop row in slot ``s`` (-1: none).  Consecutive canvas rows mostly reuse
    one or both, so only missing rows are computed, into the slot not needed now.
    """
    top = 0 if held[0] == iy else (1 if held[1] == iy else -1)
    if top < 0:
        top = 1 if held[0] == iy1 else 0
        src = image_i[sy0 + iy, sx0 * channels : (sx0 + sw) * channels]
        horizontal_pass(src, scratch, offsets, weights, offsets.shape[0], channels, hbuf[top])
        held[top] = iy
    bot = 0 if held[0] == iy1 else (1 if held[1] == iy1 else -1)
    if bot < 0:
        bot = 1 - top
        src = image_i[sy0 + iy1, sx0 * channels : (sx0 + sw) * channels]
        horizontal_pass(src, scratch, offsets, weights, offsets.shape[0], channels, hbuf[bot])
        held[bot] = iy1
    return top, bot


@njit(cache=True, error_model="numpy")
def _task(
    i, y_start, y_stop, image, mask, out_image, out_mask, channels, geometry, has_mask,
    crop, thumb, ratio, offset, fill, mask_fill, fill_selected, zero_selected,
    run_fn, kind, sigma, peak, sid, key0, key1, select, noise,
):  # fmt: skip
    """Canvas rows ``y_start .. y_stop - 1`` of sample ``i`` (arguments as :func:`_kernel`)."""
    ho = out_image.shape[1]
    wo = out_image.shape[2] // channels
    noisy = kind[i] != _KIND_NONE
    sample_id = _u64(sid[i])
    flags = np.empty((wo + 7) // 8 * 8, np.uint8)  # selection flags of the row
    batch = new_batch(wo, channels)
    queued, n_runs = 0, 0  # pixels and runs waiting in the batch
    mode, lut, lut_lo, labels = select
    is_int, qmax = noise[4], noise[5]

    sy0, sx0, sh, sw = crop[i, 0], crop[i, 1], crop[i, 2], crop[i, 3]
    oy, ox = offset[i, 0], offset[i, 1]
    ry, rx = ratio[i, 0], ratio[i, 1]
    x_lo, x_hi = max(0, ox), min(wo, ox + thumb[i, 1])
    y_lo, y_hi = max(0, oy), min(ho, oy + thumb[i, 0])
    if x_hi <= x_lo:
        y_hi = y_lo  # the thumbnail lies wholly outside the canvas
    n_px = max(0, x_hi - x_lo) if geometry else 0
    offsets = np.empty(n_px * channels, np.uint32)
    weights = np.empty(n_px * channels, np.float32)
    mx = np.empty(n_px, np.uint32)
    src_f32 = np.empty((sw + 1) * channels if n_px > 0 else 0, np.float32)
    hbuf = np.empty((2, n_px * channels), np.float32)
    held = np.full(2, -1, np.int64)
    if n_px > 0:
        x_tables(x_lo - ox, n_px, rx, sw, channels, offsets, weights, mx)

    for y in range(y_start, y_stop):
        row = out_image[i, y]
        if not geometry:
            src = image[i, y]
            for k in range(wo * channels):  # a loop, not row[:] = src: no broadcasting error path to compile
                row[k] = src[k]
            if noisy:
                selected, first, last = selection_flags(mask[i, y], np.int64(0), wo, mode, lut, lut_lo, labels, flags)
                if selected > 0:
                    queued, n_runs = queue_row(row, y, wo, channels, flags, selected, first, last, batch, queued,
                                               n_runs)  # fmt: skip
        else:
            inside = y_lo <= y < y_hi
            labelled = False  # whether the row's thumbnail part holds a nonzero label
            if not inside:
                fill_row(row, 0, wo, fill)
                if has_mask:
                    out_mask[i, y, :] = mask_fill
            else:
                ty = y - oy
                iy, iy1, b = axis_tap(ty, ry, sh)
                top, bot = _source_rows(image[i], iy, iy1, sy0, sx0, sw, channels, offsets, weights, src_f32, hbuf,
                                        held)  # fmt: skip
                fill_row(row, 0, x_lo, fill)
                fill_row(row, x_hi, wo, fill)
                vertical_blend(hbuf[top], hbuf[bot], b, n_px * channels, row[x_lo * channels : x_hi * channels],
                               is_int, qmax)  # fmt: skip
                if has_mask:
                    mrow = out_mask[i, y]
                    mrow[:x_lo] = mask_fill
                    mrow[x_hi:] = mask_fill
                    msrc = mask[i, sy0 + nearest_tap(ty, ry, sh), sx0 : sx0 + sw]
                    labelled = nearest_row(msrc, mx, mrow[x_lo:x_hi])
            # only labelled thumbnail rows hold selected labels, unless label 0 or the fill label is selected
            if fill_selected:
                start, stop = 0, wo
            elif inside and (labelled or zero_selected):
                start, stop = x_lo, x_hi
            else:
                start, stop = 0, 0
            if noisy and stop > start:
                selected, first, last = selection_flags(out_mask[i, y], start, stop, mode, lut, lut_lo, labels, flags)
                if selected > 0:
                    queued, n_runs = queue_row(row, y, wo, channels, flags, selected, first, last, batch, queued,
                                               n_runs)  # fmt: skip
        if queued >= BATCH or (queued > 0 and y == y_stop - 1):
            flush(out_image[i], channels, batch, queued, n_runs, run_fn, sample_id, key0, key1, kind[i], sigma[i],
                  peak[i], noise)  # fmt: skip
            queued, n_runs = 0, 0


@njit(parallel=True, cache=True, error_model="numpy")
def _kernel(
    image, mask, out_image, out_mask, channels, geometry, has_mask,
    crop, thumb, ratio, offset, fill, mask_fill, fill_selected, zero_selected,
    run_fn, kind, sigma, peak, sid, key0, key1, select, noise, bands,
):  # fmt: skip
    """Canvas rows of every sample: geometry (or a copy when ``geometry`` is False), then noise.

    image ``(N, H, W*C)``, mask ``(N, H, W)``; out_image ``(N, Ho, Wo*C)``, out_mask ``(N, Ho, Wo)``
    (written only when ``geometry and has_mask``).  Without geometry the canvas is the input.
    ``fill_selected``, ``zero_selected``: whether ``mask_fill``, label 0 are selected (then fill
    pixels, background pixels get noise too).
    ``run_fn``: the noise callback ``_numba_noise.NOISE_BATCH``.  Each sample is cut into ``bands``
    bands of rows; the (sample, band) tasks run in parallel.
    """
    n, ho = out_image.shape[0], out_image.shape[1]
    rows_per_band = (ho + bands - 1) // bands
    for task in prange(n * bands):
        i = task // bands
        y_start = (task % bands) * rows_per_band
        _task(
            i, y_start, min(ho, y_start + rows_per_band), image, mask, out_image, out_mask, channels, geometry,
            has_mask, crop, thumb, ratio, offset, fill, mask_fill, fill_selected, zero_selected,
            run_fn, kind, sigma, peak, sid, key0, key1, select, noise,
        )  # fmt: skip


# ----------------------------------------------------------------------------- host side


def _selection(labels: np.ndarray | None) -> tuple[int, np.ndarray, int, np.ndarray]:
    """The kernel's label selection: (mode, lookup table, its first label, sorted labels)."""
    no_table = np.zeros(0, np.uint8)
    if labels is None:
        return SELECT_NONZERO, no_table, 0, np.zeros(0, np.int64)
    labels = np.asarray(labels, np.int64)
    if labels.size == 0 or int(labels[-1]) - int(labels[0]) >= _MAX_LUT:
        return SELECT_SORTED, no_table, 0, labels
    lut = np.zeros(int(labels[-1]) - int(labels[0]) + 1, np.uint8)
    lut[labels - labels[0]] = 1
    return SELECT_LUT, lut, int(labels[0]), labels


def _kernel_mask(mask: np.ndarray | None, like: np.ndarray | None) -> np.ndarray:
    """A contiguous mask the kernel can index (bool viewed as uint8).

    For ``None``, a 1x1x1 dummy of ``like``'s kernel dtype (uint8 without ``like``), so a call
    without an output or input mask reuses the compiled specialisation of the masked call.
    """
    if mask is None:
        dtype = np.uint8 if like is None or like.dtype == np.bool_ else like.dtype
        return np.zeros((1, 1, 1), dtype)
    mask = np.ascontiguousarray(mask)
    return mask.view(np.uint8) if mask.dtype == np.bool_ else mask


def _run(image, mask, geo: GeometryPlan | None, noise: NoisePlan | None, out_image, out_mask) -> None:
    """Launch :func:`_kernel`: geometry if ``geo`` is given (else a copy), then noise if ``noise`` is given."""
    n, height, width, channels = image.shape
    ho, wo = out_image.shape[1:3]
    if n == 0 or ho == 0 or wo == 0:
        return
    # The kernel writes flat rows: compute into contiguous buffers, copy back if the caller's are not.
    dst_image = np.ascontiguousarray(out_image)
    dst_mask = None if out_mask is None else np.ascontiguousarray(out_mask)

    is_int = image.dtype != np.float32
    qmax = np.float32(np.iinfo(image.dtype).max if is_int else 0)
    if geo is None:  # noise only: the canvas is the input, geometry arrays are never read
        crop, thumb, offset = np.zeros((n, 4), np.int64), np.zeros((n, 2), np.int64), np.zeros((n, 2), np.int64)
        ratio = np.zeros((n, 2), np.float32)
        fill, mask_fill = np.zeros(channels, image.dtype), 0
    else:
        crop, thumb, offset, ratio = geo.crop, geo.thumb, geo.offset, geo.ratio
        fill, mask_fill = np.ascontiguousarray(geo.fill, dtype=image.dtype), geo.mask_fill
    if noise is None:  # geometry only: kind "none" everywhere
        kind = np.full(n, _KIND_NONE, np.int32)
        sigma = peak = np.zeros(n, np.float32)
        sid, key, labels = np.zeros(n, np.uint32), np.zeros(2, np.uint32), None
        params = (np.float32(0), np.float32(1), np.float32(1), True, is_int, qmax)
    else:
        kind, sigma, peak, sid, key, labels = noise.kind, noise.sigma, noise.peak, noise.sid, noise.key, noise.labels
        params = (noise.lo, noise.inv, noise.span, bool(noise.clip), is_int, qmax)
    select = _selection(labels)
    fill_selected = bool(mask_fill != 0) if labels is None else bool(np.isin(mask_fill, labels))
    zero_selected = labels is not None and bool(np.isin(0, labels))
    bands = max(1, min(ho, -(-_TASKS_PER_THREAD * numba.get_num_threads() // n)))
    _kernel(
        np.ascontiguousarray(image).reshape(n, height, width * channels), _kernel_mask(mask, None),
        dst_image.reshape(n, ho, wo * channels), _kernel_mask(dst_mask, mask), channels, geo is not None,
        mask is not None and out_mask is not None,
        crop, thumb, ratio, offset, fill, mask_fill, fill_selected, zero_selected,
        NOISE_BATCH, kind, sigma, peak, sid, _u64(key[0]), _u64(key[1]), select, params, bands,
    )  # fmt: skip
    if dst_image is not out_image:
        out_image[...] = dst_image
    if dst_mask is not out_mask:
        out_mask[...] = dst_mask


def rescale_paste(image, mask, geo: GeometryPlan, out_image, out_mask) -> None:
    """Rescale each sample's crop and paste it into the canvas (SPEC §2); see :mod:`.reference`."""
    _run(image, mask, geo, None, out_image, out_mask)


def noise_in_mask(image, mask, noise: NoisePlan, out_image) -> None:
    """Noise the pixels of each sample's selected labels (SPEC §3-4); see :mod:`.reference`."""
    _run(image, mask, None, noise, out_image, None)


def augment(image, mask, geo: GeometryPlan, noise: NoisePlan, out_image, out_mask) -> None:
    """Geometry then in-mask noise in one pass over each canvas row (SPEC §2 then §3)."""
    _run(image, mask, geo, noise, out_image, out_mask)
