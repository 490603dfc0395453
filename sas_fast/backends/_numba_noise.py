"""Numba functions for SPEC §3-4 (noise inside the mask), used by the kernel of ``numba_cpu``.

A canvas row is processed in three steps:

1. :func:`selection_flags` marks the selected pixels of the row's mask (one vectorised pass);
2. :func:`find_runs` groups them into runs, scanning the flags eight bytes at a time and merging
   selected pixels separated by short gaps (a run ends at a gap of ``RUN_GAP`` pixels);
3. per run and channel, :func:`apply_normal` / :func:`apply_poisson` draw the noise for every
   pixel of the run in one vectorised loop (block Philox + float32 polynomial Box–Muller) and
   write it only where the flag is set.  Drawing for the few unselected pixels inside a run
   costs less than a scalar draw per selected pixel.

Values are SPEC §3's: ``x = (v - lo) * inv``, then ``y``, clip, ``lo + y * span``, quantise.

Compile time: Numba links a callee's code into every caller and optimises it again at each
level, so the big vectorised noise loops would be recompiled inside every kernel specialisation
(image dtype x mask dtype x ...).  They are compiled instead once, on float32 values, as a C
callback (:data:`NOISE_RUN`, cached on disk) that the kernel receives as an argument and calls
per run; converting a run to float32 and quantising it back is exact for every image dtype.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, types
from numba.extending import intrinsic

from ..plan import KINDS
from ._numba_geometry import quantise
from ._numba_poisson import poisson, settle_block0
from ._numba_rng import box_muller, noise_counter_tag, philox

__all__ = [
    "NOISE_RUN",
    "RUN_GAP",
    "RUN_PAD",
    "SELECT_LUT",
    "SELECT_NONZERO",
    "SELECT_SORTED",
    "noise_row",
    "selection_flags",
]

#: A run ends at a gap of this many unselected pixels (a multiple of 8); shorter gaps are drawn through.
RUN_GAP = 64
#: Runs are padded to a multiple of this many pixels (a multiple of the widest SIMD vector).
RUN_PAD = 16
#: Selection modes: any nonzero label, a lookup table over [lut_lo, lut_lo + len), a sorted label list.
SELECT_NONZERO, SELECT_LUT, SELECT_SORTED = 0, 1, 2

_f32 = np.float32
_u64 = np.uint64
_MASK32 = _u64(0xFFFFFFFF)
_ZERO = _f32(0.0)
_ONE = _f32(1.0)
_KIND_SPECKLE = KINDS["speckle"]
_KIND_POISSON = KINDS["poisson"]


@njit(cache=True, inline="always", error_model="numpy")
def is_selected(label, mode, lut, lut_lo, labels):
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
        out[x] = is_selected(src[x], mode, lut, lut_lo, labels)
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
def apply_normal(values, flags, count, p0, sid, channel, k0, k1, speckle, sigma, lo, inv, span, clip):
    """Speckle (``y = x + x * sigma * z``) or gaussian (``y = x + sigma * z``) noise on a run.

    ``values[k]`` (float32) is the run's pixel ``k`` in one channel, replaced by ``lo + y * span``
    (not yet quantised) where ``flags[k]`` is set; ``p0`` is the flat canvas index of pixel 0.
    Gaussian is computed as ``x + 1 * (sigma * z)``: the multiplication by one is exact, so one
    loop serves both kinds bit-exactly.
    """
    tag = noise_counter_tag(0)
    for k in range(count):
        r0, r1, _, _ = philox((p0 + _u64(k)) & _MASK32, sid, channel, tag, k0, k1)
        z = box_muller(r0, r1)
        v = values[k]
        x = (v - lo) * inv
        gain = x if speckle else _ONE
        noisy = _finish(x + gain * (sigma * z), clip, lo, span)
        values[k] = noisy if flags[k] else v


@njit(cache=True, error_model="numpy")
def apply_poisson(values, flags, count, p0, sid, channel, k0, k1, peak, lo, inv, span, clip, done):
    """Poisson noise ``y = Poisson(x * peak) / peak`` on a run (arguments as :func:`apply_normal`).

    A vectorised pass settles the pixels whose block-0 PTRS pairs decide without libm
    (:func:`settle_block0`: most pixels with ``lam >= 10``); a scalar pass runs the full sampler
    on the rest.  ``done`` is scratch of at least ``count`` bytes.
    """
    tag = noise_counter_tag(0)
    for k in range(count):
        r0, r1, r2, r3 = philox((p0 + _u64(k)) & _MASK32, sid, channel, tag, k0, k1)
        v = values[k]
        lam = np.float64((v - lo) * inv * peak)
        counts, settled = settle_block0(lam, r0, r1, r2, r3)
        noisy = _finish(_f32(counts) / peak, clip, lo, span)
        values[k] = noisy if (flags[k] != 0) & settled else v
        done[k] = settled
    for k in range(count):
        if flags[k] and not done[k]:
            p = (p0 + _u64(k)) & _MASK32
            r0, r1, r2, r3 = philox(p, sid, channel, tag, k0, k1)
            lam = np.float64((values[k] - lo) * inv * peak)
            counts = poisson(lam, r0, r1, r2, r3, p, sid, channel, k0, k1)
            values[k] = _finish(_f32(counts) / peak, clip, lo, span)


#: C signature of :data:`NOISE_RUN`: pointers to the run's float32 values, its flags and the
#: ``done`` scratch (uint8), the count, then ``p0, sid, channel, k0, k1`` (uint64), the kind
#: (int32), ``sigma, peak, lo, inv, span`` (float32) and ``clip``.
RUN_SIGNATURE = types.void(
    types.voidptr, types.voidptr, types.voidptr, types.int64,
    types.uint64, types.uint64, types.uint64, types.uint64, types.uint64,
    types.int32, types.float32, types.float32, types.float32, types.float32, types.float32, types.boolean,
)  # fmt: skip


@cfunc(RUN_SIGNATURE, cache=True, error_model="numpy")
def NOISE_RUN(values, flags, done, count, p0, sid, channel, k0, k1, kind, sigma, peak, lo, inv, span, clip):  # noqa: N802
    """The noise of one run of one channel (kind: a ``KINDS`` code other than "none"), as a C callback."""
    v = carray(values, count, np.float32)
    f = carray(flags, count, np.uint8)
    if kind == _KIND_POISSON:
        apply_poisson(v, f, count, p0, sid, channel, k0, k1, peak, lo, inv, span, clip, carray(done, count, np.uint8))
    else:
        apply_normal(v, f, count, p0, sid, channel, k0, k1, kind == _KIND_SPECKLE, sigma, lo, inv, span, clip)


@intrinsic
def _address(typingctx, array):
    """The data pointer of an array, as ``void*`` for a C callback."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.bitcast(data, ir.IntType(8).as_pointer())

    return types.voidptr(array), codegen


@njit(cache=True, error_model="numpy")
def _noise_channel(pixels, values, run_flags, done, count, padded, run_fn, p0, sid, c, key0, key1, kind, sigma, peak, noise):
    """Noise one channel of one run: ``pixels`` (image dtype, any stride) via float32 ``values`` scratch."""
    lo, inv, span, clip, is_int, qmax = noise
    for k in range(count):
        values[k] = _f32(pixels[k])  # exact for every image dtype
    run_fn(
        _address(values), _address(run_flags), _address(done), padded, p0, sid, c, key0, key1, kind, sigma, peak,
        lo, inv, span, clip,
    )  # fmt: skip
    for k in range(count):
        pixels[k] = quantise(values[k], is_int, qmax)  # unselected pixels round-trip unchanged


@njit(cache=True, error_model="numpy")
def noise_row(row, y, width, channels, flags, selected, first, last, scratch, run_fn, sid, key0, key1, kind, sigma, peak, noise):
    """Noise the pixels of canvas row ``y`` (flat, ``width * channels`` values) whose ``flags`` are set.

    ``selected``, ``first``, ``last``: :func:`selection_flags`'s result for the row;
    ``scratch`` = (runs, done, values, run_flags) of the task, the last three at least
    ``width + RUN_PAD`` long (values float32); ``run_fn`` is :data:`NOISE_RUN`;
    ``noise`` = (lo, inv, span, clip, is_int, qmax).

    Each run's channel is converted into float32 scratch padded to a multiple of ``RUN_PAD``
    (flags 0 in the padding): the callback's vectorised loops then never run a scalar tail.
    """
    runs, done, values, run_flags = scratch
    if selected == last - first:
        runs[0, 0], runs[0, 1] = first, last
        n_runs = 1
    else:
        n_runs = find_runs(flags, first, last, runs)
    for r in range(n_runs):
        first, last = runs[r, 0], runs[r, 1]
        count = last - first
        padded = (count + RUN_PAD - 1) // RUN_PAD * RUN_PAD
        for k in range(count):  # a loop, not a slice copy: no broadcasting error path to compile
            run_flags[k] = flags[first + k]
        run_flags[count:padded] = 0
        values[count:padded] = 0
        p0 = _u64(y * width + first)
        for c in range(channels):
            if channels == 1:  # a contiguous slice: its own, vectorised instantiation
                pixels = row[first:last]
            else:
                pixels = row[first * channels + c : last * channels : channels]
            _noise_channel(pixels, values, run_flags, done, count, padded, run_fn, p0, sid, _u64(c), key0, key1,
                           kind, sigma, peak, noise)  # fmt: skip
