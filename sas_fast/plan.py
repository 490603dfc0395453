"""Validated, explicit per-sample parameters: what every backend kernel consumes.

The public functions (``sas_fast.api``) turn user arguments into a :class:`GeometryPlan` and a
:class:`NoisePlan`; validation happens here, before any kernel runs, so kernels can trust their
bounds.  A backend implements three functions over these plans (see ``sas_fast.backends``)::

    rescale_paste(image, mask, geo, out_image, out_mask)   # SPEC §2
    noise_in_mask(image, mask, noise, out_image)           # SPEC §3-4
    augment(image, mask, geo, noise, out_image, out_mask)  # §2 then §3, fused

with ``image`` ``(N, H, W, C)``, ``mask`` ``(N, H, W)`` (or ``None`` for geometry without a mask),
outputs preallocated by the caller at the canvas size.
"""

from __future__ import annotations

import functools
import importlib
import math
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .arrays import to_host
from .geometry import INTERPOLATIONS, centre_offsets, random_offsets, ratios, thumbnail_sides
from .philox import PARAM_TAG, philox4x32_10, seed_to_key

__all__ = [
    "IMAGE_DTYPES",
    "KINDS",
    "MASK_DTYPES",
    "GeometryPlan",
    "INTERPOLATIONS",
    "NoisePlan",
    "dtype_range",
    "make_geometry",
    "make_noise",
    "param_words",
]

IMAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
MASK_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int32))
#: Channel noise modes (SPEC §3 "Channels"): each channel its own draws, or channel 0's for all.
CHANNEL_MODES = ("independent", "shared")
#: Noise kinds and their kernel codes (SPEC §3).
KINDS = {"none": 0, "speckle": 1, "gaussian": 2, "poisson": 3}
#: Largest thumbnail side: keeps every index of the kernels inside int32/float32-exact arithmetic.
MAX_SIDE = 1 << 24
#: Parameter-stream slots (SPEC §4-5): slot q's four words, counter ``(q, sid, 0, PARAM_TAG)``.
SLOT_GEOMETRY = 0  # words: apply-scale coin, scale, offset y, offset x
SLOT_NOISE = 1  # words: apply-noise coin, kind, sigma, peak


def dtype_range(dtype: np.dtype) -> tuple[float, float]:
    """The default intensity range ``(lo, hi)`` of SPEC §1 for ``dtype`` (a ``value_range`` replaces it)."""
    if dtype == np.uint8:
        return 0.0, 255.0
    if dtype == np.uint16:
        return 0.0, 65535.0
    return 0.0, 1.0


@dataclass(frozen=True)
class GeometryPlan:
    """Per-sample geometry of SPEC §2, all arrays of length ``N``.

    crop: int64 ``(N, 4)`` rows ``(sy0, sx0, sh, sw)``; thumb: int64 ``(N, 2)`` ``(h, w)``;
    ratio: float32 ``(N, 2)`` ``(ry, rx)`` = ``float32(sh / h)``, ``float32(sw / w)``;
    offset: int64 ``(N, 2)`` ``(oy, ox)``; canvas ``(Ho, Wo)``; fill: image-dtype ``(C,)``;
    interpolation: int32 ``(N,)`` image interpolation codes of :data:`INTERPOLATIONS` (SPEC §2b).
    """

    crop: np.ndarray
    thumb: np.ndarray
    ratio: np.ndarray
    offset: np.ndarray
    canvas: tuple[int, int]
    fill: np.ndarray
    mask_fill: int
    interpolation: np.ndarray


@dataclass(frozen=True)
class NoisePlan:
    """Per-sample noise of SPEC §3-4.

    kind: int32 ``(N,)`` codes of :data:`KINDS`; sigma, peak: float32 ``(N,)``; sid: uint32 ``(N,)``
    global sample ids; key: uint32 ``(2,)`` Philox key; labels: int64 sorted label set or ``None``
    (any nonzero label); lo, span, inv: float32 normalisation ``x = (v - lo) * inv``,
    ``v = lo + y * span``; clip: clip ``y`` to [0, 1]; shared: every channel draws channel 0's
    noise (``channels="shared"``, SPEC §3).
    """

    kind: np.ndarray
    sigma: np.ndarray
    peak: np.ndarray
    sid: np.ndarray
    key: np.ndarray
    labels: np.ndarray | None
    lo: np.float32
    span: np.float32
    inv: np.float32
    clip: bool
    shared: bool = False


# ----------------------------------------------------------------------------- helpers


#: Integer parameters are refused beyond this magnitude before any int64 arithmetic (no wrap).
_INT_LIMIT = 1 << 62


def _numbers(name: str, value: Any) -> np.ndarray:
    """``value`` as a host array of numbers: bools, strings and objects are refused."""
    arr = value if type(value) is np.ndarray else to_host(value)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected numbers, got {value!r} (dtype {arr.dtype})")
    return arr


def _per_sample(name: str, value: Any, n: int, width: int | None, dtype: type | None = None) -> np.ndarray:
    """Broadcast a scalar / tuple / per-sample array to ``(n,)`` or ``(n, width)`` of ``dtype``
    (default: the input's own, e.g. for :func:`_integers`)."""
    arr = _numbers(name, value)
    want = (n,) if width is None else (n, width)
    if arr.shape != want:
        if arr.shape not in (((),) if width is None else ((width,), ())):
            accepted = f"a scalar or shape ({n},)" if width is None else f"shape ({width},) or ({n}, {width})"
            raise ValueError(f"{name}: expected {accepted}, got shape {arr.shape}")
        arr = np.broadcast_to(arr, want)
    if dtype is None:
        return arr
    with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, which the caller refuses
        return arr.astype(dtype, copy=False)


def _integers(
    name: str, arr: np.ndarray, lo: int = -_INT_LIMIT, hi: int = _INT_LIMIT, accepted: str | None = None
) -> np.ndarray:
    """``arr`` (numbers) as int64, refusing non-integral values and any outside ``[lo, hi]``.

    Bounds are checked in the input's own dtype (or float64), never after a cast that could wrap.
    """
    if arr.size:
        if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.floor(arr)).all()):
            raise ValueError(f"{name}: expected integers, got {arr.tolist()}")
        low, high = arr.min(), arr.max()
        if low < lo or high > hi:
            accepted = accepted or f"[{lo}, {hi}]"
            raise ValueError(f"{name}: expected integers in {accepted}, got values in [{low}, {high}]")
    return arr.astype(np.int64, copy=False)


def param_words(sids: np.ndarray, key: np.ndarray, slot: int) -> np.ndarray:
    """The four parameter-stream words of ``slot`` for each sample id: uint32 ``(N, 4)``.

    Small batches use the Numba backend's compiled Philox when it can run (the vectorised NumPy
    Philox costs ~0.2 ms per call on a handful of ids, all of it per-operation overhead); both
    compute the same words (tests/test_philox.py).
    """
    sids = np.asarray(sids, dtype=np.uint32)
    compiled = numba_function("_numba_rng", "param_words") if len(sids) <= _COMPILED_PARAM_MAX else None
    if compiled is not None:
        out = np.empty((len(sids), 4), np.uint32)
        compiled(sids, slot, PARAM_TAG, int(key[0]), int(key[1]), out)
        return out
    counter = np.zeros((len(sids), 4), dtype=np.uint32)
    counter[:, 0] = slot
    counter[:, 1] = sids
    counter[:, 3] = PARAM_TAG
    return philox4x32_10(counter, key)


#: Batches up to this many ids draw their parameter words through the compiled Philox.
_COMPILED_PARAM_MAX = 4096


@functools.cache
def numba_function(module: str, name: str) -> Any:
    """The Numba backend's compiled ``sas_fast.backends.<module>.<name>``, or None where Numba
    cannot run (the callers then compute the same thing with NumPy)."""
    from . import backends

    try:
        backends.load("numba")
    except backends.BackendUnavailable:
        return None
    return getattr(importlib.import_module(f"{backends.__name__}.{module}"), name)


def sample_ids(value: Any, n: int) -> np.ndarray:
    """Global sample ids (default ``0..n-1``) as uint32, checked to fit the counter word."""
    if value is None:
        if n > 1 << 32:
            raise ValueError(f"sample_ids: a batch of {n} needs explicit ids below 2**32")
        return np.arange(n, dtype=np.uint32)
    arr = _numbers("sample_ids", value).reshape(-1)
    if arr.shape != (n,):
        raise ValueError(f"sample_ids: expected {n} ids (one per sample), got {arr.size}")
    return _integers("sample_ids", arr, 0, (1 << 32) - 1, "[0, 2**32)").astype(np.uint32)


# ----------------------------------------------------------------------------- geometry


#: Largest canvas side: canvas coordinates are int32 in the CUDA kernels.
MAX_CANVAS_SIDE = (1 << 31) - 1


def make_geometry(
    shape: tuple[int, int, int, int],
    dtype: np.dtype,
    *,
    scale: Any,
    offset: Any = "center",
    crop: Any = None,
    canvas: Any = None,
    fill: Any = 0,
    mask_fill: Any = 0,
    mask_dtype: np.dtype | None = None,
    seed: int = 0,
    sids: np.ndarray | None = None,
    interpolation: Any = "bilinear",
) -> GeometryPlan:
    """Validate geometry arguments for an image batch of ``shape`` ``(N, H, W, C)`` (SPEC §2, §2b).

    ``interpolation`` is ``"bilinear"`` or ``"area"``, or one name per sample.

    Every per-sample check is one vectorised operation, so a call costs the same few operations
    for one sample or thousands.
    """
    n, height, width, channels = shape
    if crop is None:
        crop_arr = np.empty((n, 4), np.int64)
        crop_arr[:] = (0, 0, height, width)
    else:
        crop_arr = _integers("crop", _per_sample("crop", crop, n, 4))
        starts, sizes = crop_arr[:, :2], crop_arr[:, 2:]
        limits = np.array((height, width))
        # |values| <= 2**62 (_integers), so limits - starts cannot wrap
        bad = (starts < 0) | (sizes < 1) | (sizes > limits - starts)
        if bad.any():
            i = int(np.argmax(bad.any(axis=1)))
            raise ValueError(
                f"crop: sample {i} box (sy0, sx0, sh, sw) = {tuple(crop_arr[i].tolist())} is outside the "
                f"{height}x{width} image; accepted: sy0, sx0 >= 0, sh, sw >= 1, sy0 + sh <= {height}, "
                f"sx0 + sw <= {width}"
            )
    scale_arr = _per_sample("scale", scale, n, None, np.float64)
    if n and not (scale_arr.min() > 0 and scale_arr.max() < np.inf):  # NaN fails the first test
        bad = ~(np.isfinite(scale_arr) & (scale_arr > 0))
        raise ValueError(f"scale: expected finite values > 0, got {scale_arr[bad][0]!r} (sample {int(np.argmax(bad))})")
    sizes = thumbnail_sides(crop_arr[:, 2:], scale_arr[:, None])
    if n and sizes.max() > MAX_SIDE:
        raise ValueError(f"scale: the thumbnail would exceed {MAX_SIDE} pixels a side; got scale up to {scale_arr.max()}")
    thumb = sizes.astype(np.int64)
    ratio = ratios(crop_arr[:, 2:], thumb)

    ho, wo = (height, width) if canvas is None else _canvas(canvas)
    if isinstance(offset, str):
        if offset == "center":
            offset_arr = centre_offsets((ho, wo), thumb)
        elif offset == "random":
            words = param_words(sample_ids(sids, n), seed_to_key(seed), SLOT_GEOMETRY)
            offset_arr = random_offsets(words[:, 2:], (ho, wo), thumb)
        else:
            raise ValueError(f"offset: expected 'center', 'random', (oy, ox) or an (N, 2) array, got {offset!r}")
    else:
        offset_arr = _integers("offset", _per_sample("offset", offset, n, 2), -(1 << 30), 1 << 30)

    fill_arr = _fill("fill", fill, channels, dtype)
    mask_fill_val = int(_fill("mask_fill", mask_fill, 1, mask_dtype or np.dtype(np.int32))[0])
    return GeometryPlan(
        crop=np.ascontiguousarray(crop_arr),
        thumb=thumb,
        ratio=ratio,
        offset=np.ascontiguousarray(offset_arr),
        canvas=(ho, wo),
        fill=fill_arr,
        mask_fill=mask_fill_val,
        interpolation=_codes("interpolation", _INTERPOLATION_NAMES, interpolation, n),
    )


def _canvas(canvas: Any) -> tuple[int, int]:
    """``(Ho, Wo)`` positive integers (at most :data:`MAX_CANVAS_SIDE`)."""
    try:
        ho, wo = canvas
        ok = all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in (ho, wo))
    except (TypeError, ValueError):
        ok = False
    if not ok or not (1 <= ho <= MAX_CANVAS_SIDE and 1 <= wo <= MAX_CANVAS_SIDE):
        raise ValueError(f"canvas: expected (Ho, Wo) integers in [1, {MAX_CANVAS_SIDE}], got {canvas!r}")
    return int(ho), int(wo)


def _fill(name: str, value: Any, channels: int, dtype: np.dtype) -> np.ndarray:
    """Per-channel fill values of ``dtype``, checked to be representable (read-only, memoised for scalars)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _scalar_fill(name, value, channels, np.dtype(dtype))
    return _fill_values(name, value, channels, np.dtype(dtype))


@functools.lru_cache(maxsize=256)
def _scalar_fill(name: str, value: float, channels: int, dtype: np.dtype) -> np.ndarray:
    arr = _fill_values(name, value, channels, dtype)
    arr.flags.writeable = False
    return arr


def _fill_values(name: str, value: Any, channels: int, dtype: np.dtype) -> np.ndarray:
    arr = _numbers(name, value).astype(np.float64).reshape(-1)
    if arr.size not in (1, channels):
        raise ValueError(f"{name}: expected a scalar or {channels} per-channel values, got {arr.size}")
    if dtype == np.bool_:
        lo, hi = 0, 1
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = info.min, info.max
    else:  # float32: finite as float32, not only as float64
        lo, hi = -float(np.finfo(np.float32).max), float(np.finfo(np.float32).max)
    if not np.all(np.isfinite(arr)) or (arr < lo).any() or (arr > hi).any():
        raise ValueError(f"{name}: expected finite values in [{lo}, {hi}] for {dtype}, got {arr.tolist()}")
    if dtype.kind in "iub":
        arr = _integers(name, arr)
    return np.ascontiguousarray(np.broadcast_to(arr, (channels,)).astype(dtype))


# ----------------------------------------------------------------------------- noise


def make_noise(
    n: int,
    dtype: np.dtype,
    *,
    kind: Any = "speckle",
    sigma: Any = 0.1,
    peak: Any = 256.0,
    labels: Any = None,
    seed: int = 0,
    sids: Any = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = True,
    channels: str = "independent",
) -> NoisePlan:
    """Validate noise arguments for ``n`` samples of ``dtype`` (SPEC §3-4).

    Every value that the kernels take as float32 is checked as float32 (finite, and > 0 where a
    division follows), so no float64-finite input becomes inf or NaN inside a kernel.
    """
    kind_arr = _codes("kind", _KIND_NAMES, kind, n)
    sigma_arr = _per_sample("sigma", sigma, n, None, np.float32)
    ok = np.isfinite(sigma_arr) & (sigma_arr >= 0)
    if not ok.all():
        raise ValueError(f"sigma: expected finite float32 values >= 0, got {_first_bad(sigma, n, ok)}")
    peak_arr = _per_sample("peak", peak, n, None, np.float32)
    ok = np.isfinite(peak_arr) & (peak_arr > 0)
    if not ok.all():
        raise ValueError(f"peak: expected finite float32 values > 0, got {_first_bad(peak, n, ok)}")
    if labels is not None:
        label_arr = np.unique(_integers("labels", _numbers("labels", _label_values(labels)).reshape(-1)))
    else:
        label_arr = None
    if channels not in CHANNEL_MODES:
        raise ValueError(f"channels: expected one of {list(CHANNEL_MODES)}, got {channels!r}")
    lo, hi = _value_range(dtype, value_range)
    return NoisePlan(
        kind=kind_arr,
        sigma=sigma_arr,
        peak=peak_arr,
        sid=sample_ids(sids, n),
        key=seed_to_key(seed),
        labels=label_arr,
        lo=np.float32(lo),
        span=np.float32(hi - lo),
        inv=np.float32(1.0 / (hi - lo)),
        clip=bool(clip) or dtype != np.float32,
        shared=channels == "shared",
    )


def _first_bad(value: Any, n: int, ok: np.ndarray) -> Any:
    """The first refused value as the caller gave it (float64), for the message."""
    return _per_sample("value", value, n, None, np.float64)[~ok][0]


def _label_values(labels: Any) -> Any:
    if isinstance(labels, (set, frozenset, dict, str, bytes)):
        raise TypeError(f"labels: expected a sequence or array of integer labels, got {labels!r}")
    return labels


class _Names(NamedTuple):
    """A name -> kernel code table, and its names sorted with their codes (vectorised lookup)."""

    what: str  # what the names are, for messages
    table: dict[str, int]
    names: np.ndarray
    codes: np.ndarray

    @classmethod
    def of(cls, what: str, table: dict[str, int]) -> _Names:
        names = np.array(sorted(table))
        return cls(what, table, names, np.array([table[k] for k in names], dtype=np.int32))


_KIND_NAMES = _Names.of("noise kind", KINDS)
_INTERPOLATION_NAMES = _Names.of("interpolation", INTERPOLATIONS)


def _codes(arg: str, lookup: _Names, value: Any, n: int) -> np.ndarray:
    """int32 kernel codes of ``value``, one name or one per sample, for argument ``arg``."""
    if isinstance(value, str):
        code = lookup.table.get(value)
        if code is None:
            raise ValueError(f"{arg}: unknown {lookup.what}(s) {[value]}; accepted: {sorted(lookup.table)}")
        return np.full(n, code, np.int32)
    names = np.asarray(value if isinstance(value, np.ndarray) else list(value) if value is not None else None)
    if names.ndim != 1 or len(names) != n:
        raise ValueError(f"{arg}: expected one name or {n} names (one per sample), got {value!r}")
    if names.dtype.kind not in "UO":
        raise TypeError(f"{arg}: expected {lookup.what} names, got {value!r}")
    distinct = {str(name) for name in names.tolist()}
    unknown = sorted(distinct - set(lookup.table))
    if unknown:
        raise ValueError(f"{arg}: unknown {lookup.what}(s) {unknown}; accepted: {sorted(lookup.table)}")
    if len(distinct) == 1:  # the common case (one kind or interpolation for all): no vectorised lookup
        return np.full(n, lookup.table[distinct.pop()], np.int32)
    return lookup.codes[np.searchsorted(lookup.names, names.astype(str))]


def _value_range(dtype: np.dtype, value_range: Any) -> tuple[float, float]:
    """``(lo, hi)`` of SPEC §1, checked so that lo, hi, hi - lo and 1 / (hi - lo) are finite float32."""
    try:
        return _checked_range(np.dtype(dtype), None if value_range is None else tuple(value_range))
    except TypeError:  # not a hashable pair: checked (and refused) below
        return _checked_range.__wrapped__(np.dtype(dtype), value_range)


@functools.lru_cache(maxsize=64)
def _checked_range(dtype: np.dtype, value_range: Any) -> tuple[float, float]:
    if value_range is not None:
        try:
            lo, hi = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(f"value_range: expected a pair (lo, hi) of numbers, got {value_range!r}") from None
        if dtype.kind in "ui":  # SPEC §3: a sub-range of the dtype, e.g. (0, 4095) for 12-bit data in uint16
            info = np.iinfo(dtype)
            integral = math.isfinite(lo) and math.isfinite(hi) and lo == int(lo) and hi == int(hi)
            if not (integral and info.min <= lo < hi <= info.max):
                raise ValueError(
                    f"value_range: expected integers {info.min} <= lo < hi <= {info.max} for {dtype} images, got {value_range!r}"
                )
    else:
        lo, hi = dtype_range(dtype)
    with np.errstate(over="ignore"):
        lo32, hi32, span, inv = (np.float32(v) for v in (lo, hi, hi - lo, 1.0 / (hi - lo) if hi > lo else np.inf))
    if not (all(np.isfinite(v) for v in (lo32, hi32, span, inv)) and hi32 > lo32 and span > 0 and inv > 0):
        raise ValueError(f"value_range: expected finite float32 (lo, hi) with hi > lo, got {value_range!r}")
    return lo, hi
