"""Records that cross from Python into a kernel, each defined once.

:data:`SAMPLE_DTYPE` is one sample's parameters as every compiled kernel reads them: the Numba
kernel indexes a structured array of it, the CUDA kernels read ``struct SampleParams``
(``sas_fast/cuda/sas_kernels.cu``), whose size and field offsets the tests compare with this
dtype.  :func:`pack_samples` fills it from the validated plans (``sas_fast.plan``).

:data:`AREA_TAP_DTYPE` is one entry of the CUDA backend's area tap tables (``struct AreaTap``),
which a small kernel writes on the device before the main kernel reads them: per sample, one
entry per thumbnail row of an axis that area interpolation shrinks (SPEC §2b), then one per
column; :func:`area_entries` counts them and ``SampleParams.taps`` is where a sample's begin.

:data:`POLICY_DTYPE` is a label-free :class:`sas_fast.SASConfig` as the Numba backend's compiled
sampler reads it (``SASConfig.policy_record``), and :data:`INPUT_CHECK_DTYPE` the input checks of
``sas_fast.api`` that the one-sample path (``sas_fast.percall``) runs inside its compiled call.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .geometry import is_area_axis
from .plan import KINDS, GeometryPlan, NoisePlan

__all__ = ["AREA_TAP_DTYPE", "INPUT_CHECK_DTYPE", "POLICY_DTYPE", "SAMPLE_DTYPE", "area_entries", "pack_samples", "record"]

#: One sample's parameters (16 little-endian words, C layout): crop box, thumbnail size, paste
#: offset, float32 ratios, noise kind code, sigma, peak, global sample id, image interpolation
#: code (``sas_fast.geometry.INTERPOLATIONS``), first entry of its area tap tables (CUDA only).
SAMPLE_DTYPE = np.dtype(
    [
        ("sy0", "<i4"), ("sx0", "<i4"), ("sh", "<i4"), ("sw", "<i4"),
        ("h", "<i4"), ("w", "<i4"), ("oy", "<i4"), ("ox", "<i4"),
        ("ry", "<f4"), ("rx", "<f4"),
        ("kind", "<i4"), ("sigma", "<f4"), ("peak", "<f4"), ("sid", "<u4"),
        ("interpolation", "<i4"), ("taps", "<u4"),
    ],
    align=True,
)  # fmt: skip
assert SAMPLE_DTYPE.itemsize == 64

#: One thumbnail coordinate's area taps (SPEC §2b): ``count`` consecutive source pixels from
#: ``first``, weighted ``w_first`` (the first), ``w_last`` (the last, when ``count > 1``) and
#: ``w_mid`` (the whole pixels between); the rule is ``sas_fast.geometry.area_taps``.
AREA_TAP_DTYPE = np.dtype(
    [("first", "<i4"), ("count", "<i4"), ("w_first", "<f4"), ("w_mid", "<f4"), ("w_last", "<f4")], align=True
)

#: Most noise kinds a policy can weigh (speckle, gaussian, poisson; one slot of padding).
MAX_POLICY_KINDS = 4

#: A policy that reads no labels (``source="image"``, no ``min_object_pixels``), as SPEC §5 draws
#: it: float32 coin thresholds (coins compare in float32), float64 ranges, the placement, the
#: image interpolation code, and the noise kinds' codes with their normalised cumulative weights
#: (float64, as ``numpy.cumsum`` gives them).
POLICY_DTYPE = np.dtype(
    [
        ("p_scale", "<f4"), ("p_noise", "<f4"),
        ("scale_lo", "<f8"), ("scale_hi", "<f8"),
        ("sigma_lo", "<f8"), ("sigma_hi", "<f8"),
        ("peak_lo", "<f8"), ("peak_hi", "<f8"),
        ("center", "<i4"),  # 1: placement "center", 0: "random"
        ("interpolation", "<i4"),
        ("n_kinds", "<i4"),
        ("kinds", "<i4", (MAX_POLICY_KINDS,)),  # KINDS codes in the config's order
        ("cumulative", "<f8", (MAX_POLICY_KINDS,)),
    ],
    align=True,
)  # fmt: skip

#: The input checks of ``sas_fast.api`` for one call: ``finite`` (float32 images: every pixel
#: finite) and ``in_range`` (pixels that get noise lie in ``[lo, hi]``, the float32 ends of the
#: value range: ``api.range_bounds``).
INPUT_CHECK_DTYPE = np.dtype([("finite", "<i4"), ("in_range", "<i4"), ("lo", "<f4"), ("hi", "<f4")], align=True)

_KIND_NONE = KINDS["none"]


def record(dtype: np.dtype, **fields: Any) -> np.ndarray:
    """A ``(1,)`` record of the structured ``dtype`` from ``fields``, which must name every field
    exactly once: a field added to the dtype is an error here until it is given a value, never a
    silent 0 (each backend's launch record is built with this)."""
    if fields.keys() != set(dtype.names):
        missing, unknown = set(dtype.names) - set(fields), set(fields) - set(dtype.names)
        raise TypeError(f"launch record: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}")
    return np.array([tuple(fields[name] for name in dtype.names)], dtype)  # one NumPy operation


def _column(name: str) -> int:
    """The 4-byte word where field ``name`` starts."""
    return SAMPLE_DTYPE.fields[name][1] // 4


# Word columns of the fields written in groups (one NumPy operation per group, not per field).
_CROP, _THUMB, _OFFSET, _RATIO = (_column(f) for f in ("sy0", "h", "oy", "ry"))
_KIND, _SIGMA, _SID = (_column(f) for f in ("kind", "sigma", "sid"))
_INTERPOLATION, _TAPS = _column("interpolation"), _column("taps")
assert (_THUMB, _OFFSET, _RATIO) == (_CROP + 4, _CROP + 6, _CROP + 8) and _column("peak") == _SIGMA + 1


def area_entries(geo: GeometryPlan) -> np.ndarray:
    """int64 ``(N,)``: each sample's entries of the area tap tables, ``h`` if area shrinks its rows
    plus ``w`` if it shrinks its columns."""
    shrunk = is_area_axis(geo.interpolation[:, None], geo.crop[:, 2:], geo.thumb)
    return (geo.thumb * shrunk).sum(axis=1)


def pack_samples(n: int, geo: GeometryPlan | None, noise: NoisePlan | None) -> np.ndarray:
    """The ``(n,)`` :data:`SAMPLE_DTYPE` records of one call.

    Without ``geo`` the geometry fields are zero (noise only: the kernels never read them);
    without ``noise`` every sample has kind ``"none"``.  ``taps`` are the exclusive running sums
    of :func:`area_entries` (wrapping past 2^32: the CUDA backend refuses such calls).
    """
    rec = np.zeros(n, SAMPLE_DTYPE)
    ints = rec.view(np.int32).reshape(n, 16)
    floats = rec.view(np.float32).reshape(n, 16)
    if geo is not None:
        ints[:, _CROP : _CROP + 4] = geo.crop
        ints[:, _THUMB : _THUMB + 2] = geo.thumb
        ints[:, _OFFSET : _OFFSET + 2] = geo.offset
        floats[:, _RATIO : _RATIO + 2] = geo.ratio
        ints[:, _INTERPOLATION] = geo.interpolation
        if geo.interpolation.any():  # (all bilinear, the common case: no tables, taps stay 0)
            entries = area_entries(geo)
            rec.view(np.uint32).reshape(n, 16)[:, _TAPS] = (np.cumsum(entries) - entries).astype(np.uint32)
    if noise is not None:
        ints[:, _KIND] = noise.kind
        floats[:, _SIGMA] = noise.sigma
        floats[:, _SIGMA + 1] = noise.peak
        rec.view(np.uint32).reshape(n, 16)[:, _SID] = noise.sid
    else:
        ints[:, _KIND] = _KIND_NONE
    return rec
