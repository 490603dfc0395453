"""Numba functions for SPEC §3-4 (noise inside the mask), used by the kernel of ``numba_cpu``.

The kernel produces canvas rows one by one; their noise is drawn in batches:

1. :func:`selection_flags` marks the selected pixels of a row's mask (one vectorised pass);
2. :func:`queue_row` groups them into runs (:func:`find_runs` scans the flags eight bytes at a
   time and keeps gaps shorter than ``RUN_GAP`` pixels inside a run) and appends each run's
   pixels, as float32 (one sub-batch per channel), with their flags and canvas indices, to the
   task's batch;
3. once the batch holds ``BATCH`` pixels (and at the end of a task), :func:`flush` draws the
   noise for all of them in one vectorised loop (block Philox + float32 polynomial Box–Muller),
   keeps it only where the flag is set, and writes the runs back, quantised.  Drawing for the
   few unselected pixels inside a run costs less than a scalar draw per selected pixel, and
   one long loop per batch avoids a scalar loop tail and call per run.

Values are SPEC §3's: ``x = (v - lo) * inv``, then ``y``, clip, ``lo + y * span``, quantise.
Converting pixels to float32 and quantising back is exact for every image dtype.

Compile time: Numba links a callee's code into every caller and optimises it again at each
level, so the big vectorised noise loops would be recompiled inside every kernel specialisation
(image dtype x mask dtype x ...).  They are compiled once instead, as a C callback
(:data:`NOISE_BATCH`, cached on disk) whose address the kernel receives as an argument.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from ..plan import KINDS
from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)
from ._numba_geometry import quantise
from ._numba_poisson import poisson, settle_block0
from ._numba_rng import box_muller, noise_counter_tag, philox

__all__ = [
    "BATCH",
    "NOISE_BATCH",
    "NOISE_BATCH_ADDRESS",
    "SELECT_LUT",
    "SELECT_NONZERO",
    "SELECT_SORTED",
    "flush",
    "new_batch",
    "queue_row",
    "selection_flags",
]

#: A run ends at a gap of this many unselected pixels (a multiple of 8); shorter gaps are drawn through.
RUN_GAP = 64
#: Pixels per noise batch: enough that the per-call cost and loop tail vanish, small enough for L2.
BATCH = 4096
#: Selection modes: any nonzero label, a lookup table over [lut_lo, lut_lo + len), a sorted label list.
SELECT_NONZERO, SELECT_LUT, SELECT_SORTED = 0, 1, 2

_f32 = np.float32
_u64 = np.uint64
_ZERO = _f32(0.0)
_ONE = _f32(1.0)
_KIND_SPECKLE = KINDS["speckle"]
_KIND_POISSON = KINDS["poisson"]


@njit(cache=True, inline="always", error_model="numpy")
def _is_selected(label, mode, lut, lut_lo, labels):
    """Whether ``label`` is selected (mode: SELECT_*)."""
    if mode == SELECT_NONZERO:
        return label != 0
    if mode == SELECT_LUT:
        d = np.int64(label) - lut_lo
        return (d >= 0) & (d < lut.shape[0]) and lut[d] != 0
    value = np.int64(label)
    lo, hi = 0, labels.shape[0]  # bisection over the sorted labels (np.searchsorted compiles slowly)
    while lo < hi:
        mid = (lo + hi) // 2
        if labels[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo < labels.shape[0] and labels[lo] == value


@njit(cache=True, error_model="numpy")
def _mark_nonzero(source, start, stop, flags):
    """``flags[x] = source[x] != 0`` for ``start <= x < stop``; returns ``(count, first, last)`` of the set flags.

    Loops from 0 over slices: with a runtime start LLVM does not vectorise (FACTS.md).
    """
    n = stop - start
    src = source[start:stop]
    out = flags[start:stop]
    count, first, last = 0, n, -1
    for x in range(n):
        hit = src[x] != 0
        out[x] = hit
        count += hit
        first = min(first, x if hit else n)
        last = max(last, x if hit else -1)
    return count, start + first, start + last + 1


@njit(cache=True, error_model="numpy")
def selection_flags(mask_row, start, stop, mode, lut, lut_lo, labels, flags):
    """``flags[x] = 1`` where ``mask_row[x]`` is selected, else 0, for ``start <= x < stop``.

    Returns ``(count, first, last)``: the number of set flags and the span ``[first, last)`` they
    lie in (empty when none).  The flags of the same 8-byte words outside ``[start, stop)`` are
    cleared for :func:`find_runs`.
    """
    flags[start & ~7 : start] = 0
    flags[stop : (stop + 7) & ~7] = 0
    if mode == SELECT_NONZERO:
        return _mark_nonzero(mask_row, start, stop, flags)  # one vectorised pass
    src = mask_row[start:stop]
    out = flags[start:stop]
    for x in range(stop - start):
        out[x] = _is_selected(src[x], mode, lut, lut_lo, labels)
    return _mark_nonzero(flags, start, stop, flags)


@njit(cache=True, error_model="numpy")
def find_runs(flags, start, stop, runs):
    """Write runs ``[first, last + 1)`` covering every set flag in ``[start, stop)`` into ``runs``; return their count.

    Scans the flags eight at a time; a run closes only after :data:`RUN_GAP` empty bytes, so
    shorter gaps stay inside it (their pixels are drawn for and not written).
    """
    words = flags.view(np.uint64)
    gap_words = RUN_GAP // 8
    n_runs = 0
    first = -1
    last_word = 0
    for w in range(start >> 3, (stop + 7) >> 3):
        if words[w] != 0:
            if first < 0:
                first = w * 8
                while flags[first] == 0:
                    first += 1
            last_word = w
        elif first >= 0 and w - last_word == gap_words:
            n_runs = _close_run(flags, first, last_word, runs, n_runs)
            first = -1
    if first >= 0:
        n_runs = _close_run(flags, first, last_word, runs, n_runs)
    return n_runs


@njit(cache=True, inline="always", error_model="numpy")
def _close_run(flags, first, last_word, runs, n_runs):
    stop = last_word * 8 + 8
    while flags[stop - 1] == 0:
        stop -= 1
    runs[n_runs, 0] = first
    runs[n_runs, 1] = stop
    return n_runs + 1


@njit(cache=True, inline="always", error_model="numpy")
def _finish(y, clip, lo, span):
    """SPEC §3's last float step: clip ``y`` to [0, 1] (if asked), map back to ``lo + y * span``."""
    if clip:
        y = y if y > _ZERO else _ZERO  # y == -0.0 stays -0.0, as np.maximum(y, 0)
        y = y if y < _ONE else _ONE
    return lo + y * span


@njit(cache=True, error_model="numpy")
def apply_normal(values, flags, pixel, count, channel, sid, k0, k1, speckle, sigma, lo, inv, span, clip):
    """Speckle (``y = x + x * sigma * z``) or gaussian (``y = x + sigma * z``) noise on a batch.

    ``values[k]`` (float32) is replaced by ``lo + y * span`` (not yet quantised) where ``flags[k]``
    is set; ``pixel[k]`` (uint32) is its flat canvas index, ``channel`` (uint64) the batch's channel.
    Gaussian is computed as ``x + 1 * (sigma * z)``: the multiplication by one is exact, so one
    loop serves both kinds bit-exactly.
    """
    tag = noise_counter_tag(0)
    for k in range(count):
        r0, r1, _, _ = philox(_u64(pixel[k]), sid, channel, tag, k0, k1)
        z = box_muller(r0, r1)
        v = values[k]
        x = (v - lo) * inv
        gain = x if speckle else _ONE
        noisy = _finish(x + gain * (sigma * z), clip, lo, span)
        values[k] = noisy if flags[k] else v


@njit(cache=True, error_model="numpy")
def apply_poisson(values, flags, pixel, count, channel, sid, k0, k1, peak, lo, inv, span, clip, done):
    """Poisson noise ``y = Poisson(x * peak) / peak`` on a batch (arguments as :func:`apply_normal`).

    A vectorised pass settles the pixels whose block-0 PTRS pairs decide without libm
    (:func:`settle_block0`: most pixels with ``lam >= 10``); a scalar pass runs the full sampler
    on the rest.  ``done`` is scratch of at least ``count`` bytes.
    """
    tag = noise_counter_tag(0)
    for k in range(count):
        r0, r1, r2, r3 = philox(_u64(pixel[k]), sid, channel, tag, k0, k1)
        v = values[k]
        lam = np.float64((v - lo) * inv * peak)
        counts, settled = settle_block0(lam, r0, r1, r2, r3)
        noisy = _finish(_f32(counts) / peak, clip, lo, span)
        values[k] = noisy if (flags[k] != 0) & settled else v
        done[k] = settled
    for k in range(count):
        if flags[k] and not done[k]:
            p = _u64(pixel[k])
            r0, r1, r2, r3 = philox(p, sid, channel, tag, k0, k1)
            lam = np.float64((values[k] - lo) * inv * peak)
            counts = poisson(lam, r0, r1, r2, r3, p, sid, channel, k0, k1)
            values[k] = _finish(_f32(counts) / peak, clip, lo, span)


#: C signature of :data:`NOISE_BATCH`: pointers to one channel's float32 values, the flags and
#: ``done`` scratch (uint8), the pixel indices (uint32), the count, ``channel, sid, k0, k1``
#: (uint64), the kind (int32), ``sigma, peak, lo, inv, span`` (float32) and ``clip``.
BATCH_SIGNATURE = types.void(
    types.voidptr, types.voidptr, types.voidptr, types.voidptr, types.int64,
    types.uint64, types.uint64, types.uint64, types.uint64,
    types.int32, types.float32, types.float32, types.float32, types.float32, types.float32, types.boolean,
)  # fmt: skip


@cfunc(BATCH_SIGNATURE, cache=True, error_model="numpy")
def NOISE_BATCH(  # noqa: N802
    values, flags, done, pixel, count, channel, sid, k0, k1, kind, sigma, peak, lo, inv, span, clip
):
    """The noise of one channel of a batch (``kind``: a ``KINDS`` code, not "none"), as a C callback."""
    v = carray(values, count, np.float32)
    f = carray(flags, count, np.uint8)
    p = carray(pixel, count, np.uint32)
    if kind == _KIND_POISSON:
        apply_poisson(v, f, p, count, channel, sid, k0, k1, peak, lo, inv, span, clip, carray(done, count, np.uint8))
    else:
        apply_normal(v, f, p, count, channel, sid, k0, k1, kind == _KIND_SPECKLE, sigma, lo, inv, span, clip)


@intrinsic
def _address(typingctx, array):
    """The data pointer of an array, as ``void*`` for a C callback."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.bitcast(data, ir.IntType(8).as_pointer())

    return types.voidptr(array), codegen


#: The address of :data:`NOISE_BATCH`: what the kernels receive.  Passing the cfunc object itself
#: would make Numba type it at every call (~8 µs, a sizeable part of a small call's cost).
NOISE_BATCH_ADDRESS = np.uint64(NOISE_BATCH.address)


@intrinsic
def _call_batch(
    typingctx, address, values, flags, done, pixel, count, channel, sid, k0, k1, kind, sigma, peak, lo, inv, span, clip
):
    """Call the C callback at ``address`` (of :data:`BATCH_SIGNATURE`, e.g. :data:`NOISE_BATCH`)."""
    sig = types.void(types.uint64, *BATCH_SIGNATURE.args)

    def codegen(context, builder, signature, args):
        # the cfunc's C wrapper takes each argument in Numba's value representation
        fnty = ir.FunctionType(ir.VoidType(), [context.get_value_type(t) for t in BATCH_SIGNATURE.args])
        builder.call(builder.inttoptr(args[0], fnty.as_pointer()), args[1:])
        return context.get_dummy_value()

    return sig, codegen


@njit(cache=True, error_model="numpy")
def new_batch(width, channels):
    """A task's batch, room for ``BATCH`` pixels plus one more row: (values (channels, room) float32,
    flags, done, pixel indices, queued runs (y, first, count), runs of the current row)."""
    room = BATCH + width
    return (
        np.empty((channels, room), np.float32),
        np.empty(room, np.uint8),
        np.empty(room, np.uint8),
        np.empty(room, np.uint32),
        np.empty((room, 3), np.int64),
        np.empty((width // RUN_GAP + 2, 2), np.int64),
    )


@njit(cache=True, error_model="numpy")
def _channel(row, first, last, c, channels):
    """Channel ``c`` of pixels ``first .. last - 1`` of a flat row (a strided view)."""
    return row[first * channels + c : last * channels : channels]


@njit(cache=True, error_model="numpy")
def _load(src, dst):
    """``dst[k] = float32(src[k])``: one run of one channel (``src`` any stride) into the batch."""
    for k in range(dst.shape[0]):
        dst[k] = _f32(src[k])  # exact for every image dtype


@njit(cache=True, error_model="numpy")
def _store(values, dst, is_int, qmax):
    """``dst[k] = quantise(values[k])``: the batch back into one run of one channel (any stride)."""
    for k in range(values.shape[0]):
        dst[k] = quantise(values[k], is_int, qmax)  # unselected pixels round-trip unchanged


@njit(cache=True, error_model="numpy")
def queue_row(row, y, width, channels, flags, selected, first, last, batch, queued, n_runs):
    """Append the selected runs of canvas row ``y`` (flat, ``width * channels`` values) to ``batch``.

    ``selected, first, last``: :func:`selection_flags`'s result for the row; ``queued`` and
    ``n_runs`` count the pixels and runs already in the batch.  Returns the new counts.
    """
    values, batch_flags, _, pixel, table, runs = batch
    if selected == last - first:
        runs[0, 0], runs[0, 1] = first, last
        row_runs = 1
    else:
        row_runs = find_runs(flags, first, last, runs)
    for r in range(row_runs):
        first, last = runs[r, 0], runs[r, 1]
        count = last - first
        p0 = y * width + first
        dst_f = batch_flags[queued : queued + count]
        dst_p = pixel[queued : queued + count]
        src_f = flags[first:last]
        for k in range(count):
            dst_f[k] = src_f[k]
            dst_p[k] = np.uint32((p0 + k) & 0xFFFFFFFF)  # SPEC §4: p is taken modulo 2**32
        if channels == 1:  # a contiguous slice: its own, vectorised instantiation
            _load(row[first:last], values[0, queued : queued + count])
        else:
            for c in range(channels):
                _load(_channel(row, first, last, c, channels), values[c, queued : queued + count])
        table[n_runs, 0], table[n_runs, 1], table[n_runs, 2] = y, first, count
        queued += count
        n_runs += 1
    return queued, n_runs


@njit(cache=True, error_model="numpy")
def flush(image, channels, batch, queued, n_runs, run_fn, sid, key0, key1, kind, sigma, peak, noise):
    """Draw the noise of the queued pixels and write the runs back into ``image`` (``(Ho, Wo*C)``).

    ``run_fn`` is :data:`NOISE_BATCH_ADDRESS`; ``noise`` = (lo, inv, span, clip, is_int, qmax,
    shared): with ``shared`` every channel draws channel 0's noise (SPEC §3 "Channels").
    """
    values, batch_flags, done, pixel, table, _ = batch
    lo, inv, span, clip, is_int, qmax, shared = noise
    for c in range(channels):
        word = _u64(0) if shared else _u64(c)  # the counter's channel word
        _call_batch(
            run_fn, _address(values[c]), _address(batch_flags), _address(done), _address(pixel), queued, word,
            sid, key0, key1, kind, sigma, peak, lo, inv, span, clip,
        )  # fmt: skip
    start = 0
    for r in range(n_runs):
        y, first, count = table[r, 0], table[r, 1], table[r, 2]
        if channels == 1:
            _store(values[0, start : start + count], image[y, first : first + count], is_int, qmax)
        else:
            for c in range(channels):
                _store(values[c, start : start + count], _channel(image[y], first, first + count, c, channels),
                       is_int, qmax)  # fmt: skip
        start += count
