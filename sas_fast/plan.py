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

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .arrays import to_host
from .philox import PARAM_TAG, philox4x32_10, seed_to_key

__all__ = [
    "IMAGE_DTYPES",
    "KINDS",
    "MASK_DTYPES",
    "GeometryPlan",
    "NoisePlan",
    "dtype_range",
    "make_geometry",
    "make_noise",
    "param_words",
]

IMAGE_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
MASK_DTYPES = (np.dtype(np.bool_), np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.int32))
#: Noise kinds and their kernel codes (SPEC §3).
KINDS = {"none": 0, "speckle": 1, "gaussian": 2, "poisson": 3}
#: Largest thumbnail side: keeps every index of the kernels inside int32/float32-exact arithmetic.
MAX_SIDE = 1 << 24
#: Parameter-stream slots (SPEC §4-5): slot q's four words, counter ``(q, sid, 0, PARAM_TAG)``.
SLOT_GEOMETRY = 0  # words: apply-scale coin, scale, offset y, offset x
SLOT_NOISE = 1  # words: apply-noise coin, kind, sigma, peak


def dtype_range(dtype: np.dtype, value_range: tuple[float, float] | None = None) -> tuple[float, float]:
    """The intensity range ``(lo, hi)`` of SPEC §1 for ``dtype``."""
    if dtype == np.uint8:
        return 0.0, 255.0
    if dtype == np.uint16:
        return 0.0, 65535.0
    return (0.0, 1.0) if value_range is None else (float(value_range[0]), float(value_range[1]))


@dataclass(frozen=True)
class GeometryPlan:
    """Per-sample geometry of SPEC §2, all arrays of length ``N``.

    crop: int64 ``(N, 4)`` rows ``(sy0, sx0, sh, sw)``; thumb: int64 ``(N, 2)`` ``(h, w)``;
    ratio: float32 ``(N, 2)`` ``(ry, rx)`` = ``float32(sh / h)``, ``float32(sw / w)``;
    offset: int64 ``(N, 2)`` ``(oy, ox)``; canvas ``(Ho, Wo)``; fill: image-dtype ``(C,)``.
    """

    crop: np.ndarray
    thumb: np.ndarray
    ratio: np.ndarray
    offset: np.ndarray
    canvas: tuple[int, int]
    fill: np.ndarray
    mask_fill: int


@dataclass(frozen=True)
class NoisePlan:
    """Per-sample noise of SPEC §3-4.

    kind: int32 ``(N,)`` codes of :data:`KINDS`; sigma, peak: float32 ``(N,)``; sid: uint32 ``(N,)``
    global sample ids; key: uint32 ``(2,)`` Philox key; labels: int64 sorted label set or ``None``
    (any nonzero label); lo, span, inv: float32 normalisation ``x = (v - lo) * inv``,
    ``v = lo + y * span``; clip: clip ``y`` to [0, 1].
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


# ----------------------------------------------------------------------------- helpers


def _per_sample(name: str, value: Any, n: int, width: int | None, dtype: type) -> np.ndarray:
    """Broadcast a scalar / tuple / per-sample array to ``(n,)`` or ``(n, width)``."""
    arr = to_host(value)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name}: expected numbers, got {value!r}")
    want = (n,) if width is None else (n, width)
    per_sample_ok = arr.shape == want or (width is not None and arr.shape in ((width,), ())) or (
        width is None and arr.shape == ()
    )
    if not per_sample_ok:
        accepted = "a scalar or shape ({n},)" if width is None else f"shape ({width},) or ({n}, {width})"
        raise ValueError(f"{name}: expected {accepted.format(n=n)}, got shape {arr.shape}")
    return np.broadcast_to(arr, want).astype(dtype)


def _check_integral(name: str, arr: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
        raise ValueError(f"{name}: expected integers, got {arr.tolist()}")
    return arr.astype(np.int64)


def param_words(sids: np.ndarray, key: np.ndarray, slot: int) -> np.ndarray:
    """The four parameter-stream words of ``slot`` for each sample id: uint32 ``(N, 4)``."""
    sids = np.asarray(sids, dtype=np.uint32)
    counter = np.zeros((len(sids), 4), dtype=np.uint32)
    counter[:, 0] = slot
    counter[:, 1] = sids
    counter[:, 3] = PARAM_TAG
    return philox4x32_10(counter, key)


def random_int(words: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Integers uniform in ``[min(lo, hi), max(lo, hi)]`` from uint32 words (multiply-high, exact)."""
    a, b = np.minimum(lo, hi).astype(np.int64), np.maximum(lo, hi).astype(np.int64)
    span = (b - a + 1).astype(np.uint64)
    return a + ((words.astype(np.uint64) * span) >> np.uint64(32)).astype(np.int64)


def sample_ids(value: Any, n: int) -> np.ndarray:
    """Global sample ids (default ``0..n-1``) as uint32, checked to fit the counter word."""
    if value is None:
        if n > 1 << 32:
            raise ValueError(f"sample_ids: a batch of {n} needs explicit ids below 2**32")
        return np.arange(n, dtype=np.uint32)
    arr = _check_integral("sample_ids", to_host(value).astype(np.float64).reshape(-1))
    if arr.shape != (n,):
        raise ValueError(f"sample_ids: expected {n} ids (one per sample), got {arr.size}")
    if arr.size and (arr.min() < 0 or arr.max() >= 1 << 32):
        raise ValueError(f"sample_ids: expected integers in [0, 2**32), got range [{arr.min()}, {arr.max()}]")
    return arr.astype(np.uint32)


# ----------------------------------------------------------------------------- geometry


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
) -> GeometryPlan:
    """Validate geometry arguments for an image batch of ``shape`` ``(N, H, W, C)`` (SPEC §2)."""
    n, height, width, channels = shape
    if crop is None:
        crop_arr = np.broadcast_to(np.array([0, 0, height, width], dtype=np.int64), (n, 4))
    else:
        crop_arr = _check_integral("crop", _per_sample("crop", crop, n, 4, np.float64))
        sy0, sx0, sh, sw = crop_arr.T
        bad = (sy0 < 0) | (sx0 < 0) | (sh < 1) | (sw < 1) | (sy0 + sh > height) | (sx0 + sw > width)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(
                f"crop: sample {i} box (sy0, sx0, sh, sw) = {tuple(crop_arr[i].tolist())} is outside the "
                f"{height}x{width} image; accepted: sy0, sx0 >= 0, sh, sw >= 1, sy0 + sh <= {height}, "
                f"sx0 + sw <= {width}"
            )
    scale_arr = _per_sample("scale", scale, n, None, np.float64)
    bad = ~np.isfinite(scale_arr) | (scale_arr <= 0)
    if bad.any():
        raise ValueError(f"scale: expected finite values > 0, got {scale_arr[bad][0]!r} (sample {int(np.argmax(bad))})")
    sizes = np.floor(crop_arr[:, 2:] * scale_arr[:, None] + 0.5)
    if (sizes > MAX_SIDE).any():
        raise ValueError(f"scale: the thumbnail would exceed {MAX_SIDE} pixels a side; got scale up to {scale_arr.max()}")
    thumb = np.maximum(1, sizes).astype(np.int64)
    ratio = (crop_arr[:, 2:] / thumb).astype(np.float32)

    if canvas is None:
        ho, wo = height, width
    else:
        canvas_arr = np.asarray(canvas)
        if canvas_arr.shape != (2,) or not np.issubdtype(canvas_arr.dtype, np.integer) or (canvas_arr < 1).any():
            raise ValueError(f"canvas: expected (Ho, Wo) positive integers, got {canvas!r}")
        ho, wo = int(canvas_arr[0]), int(canvas_arr[1])
    if isinstance(offset, str):
        if offset == "center":
            offset_arr = np.stack([(ho - thumb[:, 0]) // 2, (wo - thumb[:, 1]) // 2], axis=1)
        elif offset == "random":
            words = param_words(
                sample_ids(sids, n), seed_to_key(seed), SLOT_GEOMETRY
            )
            offset_arr = np.stack(
                [random_int(words[:, 2], 0, ho - thumb[:, 0]), random_int(words[:, 3], 0, wo - thumb[:, 1])],
                axis=1,
            )
        else:
            raise ValueError(f"offset: expected 'center', 'random', (oy, ox) or an (N, 2) array, got {offset!r}")
    else:
        offset_arr = _check_integral("offset", _per_sample("offset", offset, n, 2, np.float64))
        if (np.abs(offset_arr) > 1 << 30).any():
            raise ValueError(f"offset: expected |oy|, |ox| <= 2**30, got {offset_arr[np.abs(offset_arr).max(1).argmax()]}")

    fill_arr = _fill("fill", fill, channels, dtype)
    mask_fill_val = int(_fill("mask_fill", mask_fill, 1, mask_dtype or np.dtype(np.int32))[0])
    return GeometryPlan(
        crop=np.ascontiguousarray(crop_arr, dtype=np.int64),
        thumb=np.ascontiguousarray(thumb),
        ratio=np.ascontiguousarray(ratio),
        offset=np.ascontiguousarray(offset_arr, dtype=np.int64),
        canvas=(ho, wo),
        fill=fill_arr,
        mask_fill=mask_fill_val,
    )


def _fill(name: str, value: Any, channels: int, dtype: np.dtype) -> np.ndarray:
    arr = to_host(value).astype(np.float64).reshape(-1)
    if arr.size not in (1, channels):
        raise ValueError(f"{name}: expected a scalar or {channels} per-channel values, got {arr.size}")
    if dtype == np.bool_:
        lo, hi = 0, 1
    elif np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = info.min, info.max
    else:
        lo, hi = -np.inf, np.inf
    if not np.all(np.isfinite(arr)) or (arr < lo).any() or (arr > hi).any():
        raise ValueError(f"{name}: expected finite values in [{lo}, {hi}] for {dtype}, got {arr.tolist()}")
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        arr = _check_integral(name, arr)
    return np.broadcast_to(arr, (channels,)).astype(dtype)


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
) -> NoisePlan:
    """Validate noise arguments for ``n`` samples of ``dtype`` (SPEC §3-4)."""
    kinds = [kind] * n if isinstance(kind, str) else list(kind)
    if len(kinds) != n:
        raise ValueError(f"kind: expected one name or {n} names (one per sample), got {len(kinds)}")
    unknown = sorted({str(k) for k in kinds if k not in KINDS})
    if unknown:
        raise ValueError(f"kind: unknown noise kind(s) {unknown}; accepted: {sorted(KINDS)}")
    kind_arr = np.array([KINDS[k] for k in kinds], dtype=np.int32)
    sigma_arr = _per_sample("sigma", sigma, n, None, np.float64)
    if not np.all(np.isfinite(sigma_arr)) or (sigma_arr < 0).any():
        raise ValueError(f"sigma: expected finite values >= 0, got {sigma_arr[~(np.isfinite(sigma_arr) & (sigma_arr >= 0))][0]}")
    peak_arr = _per_sample("peak", peak, n, None, np.float64)
    if not np.all(np.isfinite(peak_arr)) or (peak_arr <= 0).any():
        raise ValueError(f"peak: expected finite values > 0, got {peak_arr[~(np.isfinite(peak_arr) & (peak_arr > 0))][0]}")
    if labels is not None:
        label_arr = np.unique(_check_integral("labels", to_host(labels).astype(np.float64).reshape(-1)))
    else:
        label_arr = None
    if value_range is not None and dtype != np.float32:
        raise ValueError(f"value_range: only float32 images take a value range; got {value_range!r} for {dtype}")
    lo, hi = dtype_range(dtype, value_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise ValueError(f"value_range: expected finite (lo, hi) with hi > lo, got {value_range!r}")
    return NoisePlan(
        kind=kind_arr,
        sigma=sigma_arr.astype(np.float32),
        peak=peak_arr.astype(np.float32),
        sid=sample_ids(sids, n),
        key=seed_to_key(seed),
        labels=label_arr,
        lo=np.float32(lo),
        span=np.float32(hi - lo),
        inv=np.float32(1.0 / (hi - lo)),
        clip=bool(clip) or dtype != np.float32,
    )
