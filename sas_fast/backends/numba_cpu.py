"""The Numba CPU backend: SPEC §2-4 as one fused, parallel kernel, equal to the NumPy reference.

One kernel body (:func:`_task`) serves the three entry points.  The batch is cut into tasks (a
sample, or a band of its canvas rows when there are few samples); :func:`_kernel_serial` runs
them one after another on the calling thread (small calls, one-thread processes: no thread pool
is ever started), :func:`_kernel_parallel` spreads them over Numba's threads (``prange``, on the
fork-safe layer and thread count of ``sas_fast.threads``).  Each takes one :data:`LAUNCH_DTYPE`
record of scalars and the per-sample ``sas_fast.records.SAMPLE_DTYPE`` records.  A task walks its canvas rows once: each row is produced (rescaled
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

from collections.abc import Callable

import numpy as np
from numba import njit, prange

from ..geometry import INTERPOLATIONS
from ..plan import KINDS, GeometryPlan, NoisePlan
from ..records import pack_samples, record
from ..threads import parallel_section, use_parallel
from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)
from ._numba_geometry import area_pass, area_rows, axis_tap, fill_row, horizontal_pass, max_area_taps, nearest_columns
from ._numba_geometry import nearest_row, nearest_tap, vertical_blend, vertical_taps, x_area_tables, x_tables
from ._numba_noise import BATCH, NOISE_BATCH_ADDRESS, SELECT_LUT, SELECT_NONZERO, SELECT_SORTED, flush, new_batch, queue_row
from ._numba_noise import selection_flags

__all__ = ["DEVICE", "augment", "bind_augment", "check_inputs", "noise_in_mask", "rescale_paste"]

DEVICE = "cpu"

_KIND_NONE = KINDS["none"]
_AREA = INTERPOLATIONS["area"]
#: Label sets spanning at most this many values are looked up in a table, larger ones by bisection.
_MAX_LUT = 1 << 16
#: Aim for this many tasks per thread so uneven samples still balance.
_TASKS_PER_THREAD = 16

_u64 = np.uint64


# ----------------------------------------------------------------------------- the kernel


@njit(cache=True, inline="always", error_model="numpy")
def _row_pass(image_i, row, sy0, sx0, sw, channels, columns, scratch, dst):
    """The horizontal sums of crop row ``row`` into ``dst``, by the task's column tables
    ``columns = (area_x, offsets, weights, taps)`` (area: tap-major tables; bilinear: one row)."""
    area_x, offsets, weights, taps = columns
    src = image_i[sy0 + row, sx0 * channels : (sx0 + sw) * channels]
    if area_x:
        area_pass(src, scratch, offsets, weights, taps, offsets.shape[1], dst)
    else:
        horizontal_pass(src, scratch, offsets[0], weights[0], offsets.shape[1], channels, dst)


@njit(cache=True, error_model="numpy")
def _source_rows(image_i, iy, iy1, sy0, sx0, sw, channels, columns, scratch, hbuf, held):
    """The slots of ``hbuf`` holding the horizontal sums of crop rows ``iy`` and ``iy1`` (bilinear rows).

    ``held[s]`` is the crop row in slot ``s`` (-1: none).  Consecutive canvas rows mostly reuse
    one or both, so only missing rows are computed, into the slot not needed now.
    """
    top = 0 if held[0] == iy else (1 if held[1] == iy else -1)
    if top < 0:
        top = 1 if held[0] == iy1 else 0
        _row_pass(image_i, iy, sy0, sx0, sw, channels, columns, scratch, hbuf[top])
        held[top] = iy
    bot = 0 if held[0] == iy1 else (1 if held[1] == iy1 else -1)
    if bot < 0:
        bot = 1 - top
        _row_pass(image_i, iy1, sy0, sx0, sw, channels, columns, scratch, hbuf[bot])
        held[bot] = iy1
    return top, bot


@njit(cache=True, error_model="numpy")
def _area_source_rows(image_i, first, taps, sy0, sx0, sw, channels, columns, scratch, hbuf, held, slots):
    """``slots[k]``: the slot of ``hbuf`` holding the horizontal sums of crop row ``first + k``,
    ``k < taps`` (the consecutive rows of an area row), computed where missing.

    Row ``r`` lives in slot ``r % len(held)`` (``held[s]``: the row in slot ``s``, -1: none): an
    output row's rows, at most ``len(held)``, never evict one another, and the next output row
    finds the one it shares (the partly covered boundary row) still there.
    """
    for k in range(taps):
        row = first + k
        slot = row % held.shape[0]
        if held[slot] != row:
            _row_pass(image_i, row, sy0, sx0, sw, channels, columns, scratch, hbuf[slot])
            held[slot] = row
        slots[k] = slot


#: The scalars of one kernel call, read by every task by field name: the one handover from
#: :func:`_run` into :func:`_kernel_serial` / :func:`_kernel_parallel` besides the arrays
#: (per-sample parameters travel as :data:`sas_fast.records.SAMPLE_DTYPE` records).
LAUNCH_DTYPE = np.dtype(
    [
        ("channels", "<i8"),  # image channels C (rows are flat: W * C values)
        ("width", "<i8"),  # canvas width Wo (not derivable from a flat row when C == 0)
        ("bands", "<i8"),  # tasks per sample: bands of canvas rows
        ("mask_fill", "<i8"),  # label written outside the thumbnail
        ("lut_lo", "<i8"),  # first label of the selection table (select_mode == SELECT_LUT)
        ("key0", "<u8"), ("key1", "<u8"),  # Philox key
        ("geometry", "<i4"),  # 1: rescale and paste; 0: the canvas is the input (noise only)
        ("has_mask", "<i4"),  # 1: write out_mask
        ("fill_selected", "<i4"),  # the fill label is selected: fill pixels get noise too
        ("zero_selected", "<i4"),  # label 0 is selected: background pixels get noise too
        ("select_mode", "<i4"),  # SELECT_NONZERO / SELECT_LUT / SELECT_SORTED
        ("clip", "<i4"),  # clip y to [0, 1]
        ("is_int", "<i4"),  # integer image dtype: rint and clip to [0, qmax]
        ("shared_channels", "<i4"),  # every channel draws channel 0's noise
        ("lo", "<f4"), ("inv", "<f4"), ("span", "<f4"),  # x = (v - lo) * inv, v = lo + y * span
        ("qmax", "<f4"),  # the integer dtype's largest value
    ],
    align=True,
)  # fmt: skip


@njit(cache=True, error_model="numpy")
def _task(task, launch, samples, image, mask, out_image, out_mask, fill, lut, labels, run_fn):
    """One task: a band of canvas rows of one sample (arguments as :func:`_kernel_serial`)."""
    L = launch[0]
    channels, bands = L.channels, L.bands
    ho = out_image.shape[1]
    wo = L.width
    rows_per_band = (ho + bands - 1) // bands
    i = task // bands
    y_start = (task % bands) * rows_per_band
    y_stop = min(ho, y_start + rows_per_band)
    s = samples[i]
    geometry, has_mask = L.geometry != 0, L.has_mask != 0
    mask_fill = L.mask_fill
    kind, sigma, peak = s.kind, s.sigma, s.peak
    noisy = kind != _KIND_NONE
    sample_id = _u64(s.sid)
    key0, key1 = _u64(L.key0), _u64(L.key1)
    mode, lut_lo = L.select_mode, L.lut_lo
    noise = (L.lo, L.inv, L.span, L.clip != 0, L.is_int != 0, L.qmax, L.shared_channels != 0)
    is_int, qmax = L.is_int != 0, L.qmax
    flags = np.empty((wo + 7) // 8 * 8, np.uint8)  # selection flags of the row
    batch = new_batch(wo, channels)
    queued, n_runs = 0, 0  # pixels and runs waiting in the batch

    sy0, sx0, sh, sw = np.int64(s.sy0), np.int64(s.sx0), np.int64(s.sh), np.int64(s.sw)
    oy, ox = np.int64(s.oy), np.int64(s.ox)
    h, w = np.int64(s.h), np.int64(s.w)
    ry, rx = s.ry, s.rx
    x_lo, x_hi = max(0, ox), min(wo, ox + w)
    y_lo, y_hi = max(0, oy), min(ho, oy + h)
    if x_hi <= x_lo:
        y_hi = y_lo  # the thumbnail lies wholly outside the canvas
    n_px = max(0, x_hi - x_lo) if geometry else 0
    # SPEC §2b: area taps on each axis the sample's area interpolation shrinks, bilinear on the others
    area_x = s.interpolation == _AREA and w < sw
    area_y = s.interpolation == _AREA and h < sh
    band_lo, band_hi = max(y_start, y_lo), min(y_stop, y_hi)  # the band's thumbnail rows
    x_taps = max_area_taps(x_lo - ox, n_px, w, sw) if area_x else 1  # rows of the column tables
    y_taps = max_area_taps(band_lo - oy, max(0, band_hi - band_lo), h, sh) if area_y else 2
    offsets = np.empty((x_taps, n_px * channels), np.uint32)
    weights = np.empty((x_taps, n_px * channels), np.float32)
    columns = (area_x, offsets, weights, x_taps)
    mx = np.empty(n_px, np.uint32)
    scratch = np.empty((sw + 1) * channels + 1 if n_px > 0 else 1, np.float32)  # a source row, padding, zero slot
    scratch[-1] = 0.0
    n_slots = max(2, y_taps)  # cached horizontal sums: one source row per slot
    hbuf = np.empty((n_slots, n_px * channels), np.float32)
    held = np.full(n_slots, -1, np.int64)
    tap_slot = np.empty(n_slots, np.int64)  # an area row's taps: their slots and weights
    tap_w = np.empty(n_slots, np.float32)
    acc = np.empty(n_px * channels if area_y else 0, np.float32)
    if n_px > 0:
        nearest_columns(x_lo - ox, n_px, rx, sw, mx)
        if area_x:
            x_area_tables(x_lo - ox, n_px, w, sw, channels, scratch.shape[0] - 1, offsets, weights)
        else:
            x_tables(x_lo - ox, n_px, rx, sw, channels, offsets[0], weights[0])

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
                fill_row(row, 0, x_lo, fill)
                fill_row(row, x_hi, wo, fill)
                thumb_row = row[x_lo * channels : x_hi * channels]
                if area_y:
                    first, taps = area_rows(ty, h, sh, tap_w)
                    _area_source_rows(image[i], first, taps, sy0, sx0, sw, channels, columns, scratch, hbuf, held,
                                      tap_slot)  # fmt: skip
                    vertical_taps(hbuf, tap_slot, tap_w, taps, n_px * channels, acc, thumb_row, is_int, qmax)
                else:  # the two bilinear rows (the paper's default: its own two-slot cache, the fastest)
                    iy, iy1, b = axis_tap(ty, ry, sh)
                    top, bot = _source_rows(image[i], iy, iy1, sy0, sx0, sw, channels, columns, scratch, hbuf, held)
                    vertical_blend(hbuf[top], hbuf[bot], b, n_px * channels, thumb_row, is_int, qmax)
                if has_mask:
                    mrow = out_mask[i, y]
                    mrow[:x_lo] = mask_fill
                    mrow[x_hi:] = mask_fill
                    msrc = mask[i, sy0 + nearest_tap(ty, ry, sh), sx0 : sx0 + sw]
                    labelled = nearest_row(msrc, mx, mrow[x_lo:x_hi])
            # only labelled thumbnail rows hold selected labels, unless label 0 or the fill label is selected
            if L.fill_selected != 0:
                start, stop = 0, wo
            elif inside and (labelled or L.zero_selected != 0):
                start, stop = x_lo, x_hi
            else:
                start, stop = 0, 0
            if noisy and stop > start:
                selected, first, last = selection_flags(out_mask[i, y], start, stop, mode, lut, lut_lo, labels, flags)
                if selected > 0:
                    queued, n_runs = queue_row(row, y, wo, channels, flags, selected, first, last, batch, queued,
                                               n_runs)  # fmt: skip
        if queued >= BATCH or (queued > 0 and y == y_stop - 1):
            flush(out_image[i], channels, batch, queued, n_runs, run_fn, sample_id, key0, key1, kind, sigma, peak,
                  noise)  # fmt: skip
            queued, n_runs = 0, 0


# The two kernels differ only in prange vs range: a call that may use one thread runs the serial
# one, which never touches Numba's threading layer (nothing to start, oversubscribe or break on fork).


@njit(cache=True, error_model="numpy")
def _kernel_serial(launch, samples, image, mask, out_image, out_mask, fill, lut, labels, run_fn):
    """Every canvas row of every sample, one task after another on the calling thread.

    launch: one :data:`LAUNCH_DTYPE` record; samples: ``(N,)`` SAMPLE_DTYPE records; image
    ``(N, H, W*C)``, mask ``(N, H, W)``; out_image ``(N, Ho, Wo*C)``, out_mask ``(N, Ho, Wo)``
    (written only with geometry and a mask); fill ``(C,)`` image dtype; lut, labels: the label
    selection (``_selection``); run_fn: the address of the noise callback ``_numba_noise.NOISE_BATCH``.
    """
    for task in range(out_image.shape[0] * launch[0].bands):
        _task(task, launch, samples, image, mask, out_image, out_mask, fill, lut, labels, run_fn)


@njit(parallel=True, cache=True, error_model="numpy")
def _kernel_parallel(launch, samples, image, mask, out_image, out_mask, fill, lut, labels, run_fn):
    """:func:`_kernel_serial` with the (sample, band) tasks spread over Numba's threads."""
    for task in prange(out_image.shape[0] * launch[0].bands):
        _task(task, launch, samples, image, mask, out_image, out_mask, fill, lut, labels, run_fn)


@njit(cache=True, error_model="numpy")
def _all_finite(flat):
    """Whether every value of the 1-D array ``flat`` is finite (one vectorised pass, no early exit)."""
    bad = np.uint8(0)
    for k in range(flat.shape[0]):
        bad |= np.uint8(flat[k] * np.float32(0) != 0)  # inf * 0 and NaN * 0 are NaN
    return bad == 0


@njit(cache=True, inline="always", error_model="numpy")
def _row_out_of_range(selected, row, width, channels, lo, hi):
    """Whether a pixel ``x`` of ``row`` with ``selected[x] != 0`` lies outside ``[lo, hi]`` (no early
    exit: one vectorised pass for one channel)."""
    bad = False
    if channels == 1:
        for x in range(width):
            v = np.float32(row[x])
            bad |= (selected[x] != 0) & ((v < lo) | (v > hi))
    else:
        for x in range(width):
            chosen = selected[x] != 0
            for c in range(channels):
                v = np.float32(row[x * channels + c])
                bad |= chosen & ((v < lo) | (v > hi))
    return bad


@njit(cache=True, error_model="numpy")
def _in_range(image_i, mask_i, channels, mode, lut, lut_lo, labels, lo, hi):
    """Whether every selected pixel of one sample (``image_i`` ``(H, W*C)``, ``mask_i`` ``(H, W)``)
    lies in ``[lo, hi]``: float32 bounds (``api.range_bounds``: the value range's float32 ends), so
    comparing in float32 is exact, as ``api._check_range``'s float64 comparison (every uint8, uint16
    and float32 pixel value is a float32 value)."""
    width = mask_i.shape[1]
    flags = np.empty((width + 7) // 8 * 8, np.uint8)
    for y in range(mask_i.shape[0]):
        if mode == SELECT_NONZERO:
            bad = _row_out_of_range(mask_i[y], image_i[y], width, channels, lo, hi)
        else:
            selection_flags(mask_i[y], np.int64(0), width, mode, lut, lut_lo, labels, flags)
            bad = _row_out_of_range(flags, image_i[y], width, channels, lo, hi)
        if bad:
            return False
    return True


#: :func:`check_inputs`'s results: the inputs pass, or why the kernel must not run.
INPUT_OK = 0
INPUT_NOT_FINITE = 1
INPUT_OUT_OF_RANGE = 2


@njit(cache=True, error_model="numpy")
def check_inputs(checks, launch, samples, image, mask, lut, labels):
    """The input checks of ``sas_fast.api`` for the one-sample path (``sas_fast.percall``), as
    ``checks`` (an ``INPUT_CHECK_DTYPE`` record) asks: a float32 image must be finite, and when
    ``samples[0]`` (drawn by ``_numba_policy.draw_sample``) gets noise its selected pixels must lie
    in the value range.  Returns :data:`INPUT_OK`, :data:`INPUT_NOT_FINITE` or
    :data:`INPUT_OUT_OF_RANGE`; the general path then raises its error.  Other arguments as
    :func:`_kernel_serial`.  Compiled only for calls that need a check (float32 images, integer
    value sub-ranges), so the common uint8 call adds nothing to the first call's compile time.
    """
    L, C = launch[0], checks[0]
    if C.finite != 0 and not _all_finite(image.reshape(-1)):
        return INPUT_NOT_FINITE
    if C.in_range != 0 and samples[0].kind != _KIND_NONE:
        if not _in_range(image[0], mask[0], L.channels, L.select_mode, lut, L.lut_lo, labels, C.lo, C.hi):
            return INPUT_OUT_OF_RANGE
    return INPUT_OK


# ----------------------------------------------------------------------------- host side


_NO_TABLE = np.zeros(0, np.uint8)
_NO_LABELS = np.zeros(0, np.int64)


def _selection(labels: np.ndarray | None) -> tuple[int, np.ndarray, int, np.ndarray]:
    """The kernel's label selection: (mode, lookup table, its first label, sorted labels)."""
    if labels is None:
        return SELECT_NONZERO, _NO_TABLE, 0, _NO_LABELS
    labels = np.asarray(labels, np.int64)
    if labels.size == 0 or int(labels[-1]) - int(labels[0]) >= _MAX_LUT:
        return SELECT_SORTED, _NO_TABLE, 0, labels
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


def _launch_record(image, geo: GeometryPlan | None, noise: NoisePlan | None, width: int, bands: int, select,
                   has_mask: bool):  # fmt: skip
    """The :data:`LAUNCH_DTYPE` record of one call."""
    is_int = image.dtype != np.float32
    mask_fill = 0 if geo is None else geo.mask_fill
    if noise is None:  # geometry only: every sample has kind "none", the noise fields are never read
        key0 = key1 = fill_selected = zero_selected = shared = 0
        lo, inv, span, clip = 0.0, 1.0, 1.0, True
    else:
        key0, key1 = int(noise.key[0]), int(noise.key[1])
        lo, inv, span, clip, shared = noise.lo, noise.inv, noise.span, noise.clip, noise.shared
        labels = noise.labels
        fill_selected = mask_fill != 0 if labels is None else mask_fill in labels
        zero_selected = labels is not None and 0 in labels
    return record(
        LAUNCH_DTYPE,
        channels=image.shape[3], width=width, bands=bands, mask_fill=mask_fill, lut_lo=select[2],
        key0=key0, key1=key1, geometry=geo is not None, has_mask=has_mask,
        fill_selected=fill_selected, zero_selected=zero_selected, select_mode=select[0], clip=clip,
        is_int=is_int, shared_channels=shared, lo=lo, inv=inv, span=span,
        qmax=np.iinfo(image.dtype).max if is_int else 0,
    )  # fmt: skip


def _bind(image, mask, geo: GeometryPlan | None, noise: NoisePlan | None, out_image, out_mask) -> Callable[[], None]:
    """A kernel launch with every argument built and bound (see :func:`_run`)."""
    n, height, width, channels = image.shape
    ho, wo = out_image.shape[1:3]
    if n == 0 or ho == 0 or wo == 0:
        return _nothing
    # The kernel writes flat rows: compute into contiguous buffers, copy back if the caller's are not.
    dst_image = np.ascontiguousarray(out_image)
    dst_mask = None if out_mask is None else np.ascontiguousarray(out_mask)
    threads = use_parallel(out_image.size)
    bands = max(1, min(ho, -(-_TASKS_PER_THREAD * threads // n))) if threads > 1 else 1
    select = _selection(None if noise is None else noise.labels)
    launch = _launch_record(image, geo, noise, wo, bands, select, mask is not None and out_mask is not None)
    samples = pack_samples(n, geo, noise)
    fill = np.zeros(channels, image.dtype) if geo is None else np.ascontiguousarray(geo.fill, dtype=image.dtype)
    args = (
        launch, samples, np.ascontiguousarray(image).reshape(n, height, width * channels), _kernel_mask(mask, None),
        dst_image.reshape(n, ho, wo * channels), _kernel_mask(dst_mask, mask), fill, select[1], select[3], NOISE_BATCH_ADDRESS,
    )  # fmt: skip

    def run() -> None:
        if threads == 1:
            _kernel_serial(*args)
        else:
            with parallel_section(threads):
                _kernel_parallel(*args)
        if dst_image is not out_image:
            out_image[...] = dst_image
        if dst_mask is not out_mask:
            out_mask[...] = dst_mask

    return run


def _nothing() -> None:
    """The launch of an empty call."""


def _run(image, mask, geo: GeometryPlan | None, noise: NoisePlan | None, out_image, out_mask) -> None:
    """Launch a kernel: geometry if ``geo`` is given (else a copy), then noise if ``noise`` is given.

    Calls over fewer than ``threads.PARALLEL_MIN_PIXELS`` canvas values, or allowed one thread
    (``sas_fast.threads``), run :func:`_kernel_serial`; the others :func:`_kernel_parallel`.
    """
    _bind(image, mask, geo, noise, out_image, out_mask)()


def bind_augment(image, mask, geo: GeometryPlan, noise: NoisePlan, out_image, out_mask) -> Callable[[], None]:
    """:func:`augment` with its launch records built now: calling the result runs the compiled
    kernel alone (the benchmarks' "bare kernel"; the outputs must stay the same arrays)."""
    return _bind(image, mask, geo, noise, out_image, out_mask)


def rescale_paste(image, mask, geo: GeometryPlan, out_image, out_mask) -> None:
    """Rescale each sample's crop and paste it into the canvas (SPEC §2); see :mod:`.reference`."""
    _run(image, mask, geo, None, out_image, out_mask)


def noise_in_mask(image, mask, noise: NoisePlan, out_image) -> None:
    """Noise the pixels of each sample's selected labels (SPEC §3-4); see :mod:`.reference`."""
    _run(image, mask, None, noise, out_image, None)


def augment(image, mask, geo: GeometryPlan, noise: NoisePlan, out_image, out_mask) -> None:
    """Geometry then in-mask noise in one pass over each canvas row (SPEC §2 then §3)."""
    _run(image, mask, geo, noise, out_image, out_mask)
