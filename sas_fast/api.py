"""Public entry points (SPEC §6): validate, pick a backend, allocate, run, hand back.

A call flows: caller's arrays -> :func:`_prepare` (backend choice, array conversion, shape and
dtype checks, canonical ``(N, H, W, C)`` / ``(N, H, W)`` views) -> ``sas_fast.plan`` (parameter
validation into explicit per-sample plans) -> the backend's kernel -> outputs reshaped to the
caller's layout and array type.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backends, layouts
from .arrays import array_kind, copy_into, device_of, from_backend, native, to_backend
from .layouts import AUTO
from .plan import IMAGE_DTYPES, KINDS, MASK_DTYPES, GeometryPlan, NoisePlan, make_geometry, make_noise

if TYPE_CHECKING:
    from .config import SASParams

__all__ = ["augment", "noise_in_mask", "pick_backend", "rescale_paste"]


def pick_backend(backend: str, image: Any) -> ModuleType:
    """The backend module for ``backend`` (SPEC §6 ``"auto"`` rules); raises if it cannot run here."""
    if backend == "auto":
        if array_kind(image) in ("cuda", "torch-cuda"):
            return backends.load("cupy")
        try:
            return backends.load("numba")
        except backends.BackendUnavailable:
            return backends.load("numpy")
    return backends.load(backend)


@dataclass
class _Batch:
    """Canonical views of one call's inputs (what the kernels read) and the caller's layouts."""

    impl: ModuleType
    xp: ModuleType
    image: Any  # (N, H, W, C) view, a kernel dtype
    mask: Any  # (N, H, W) view, a kernel dtype, or None
    layout: str  # the caller's image layout (sas_fast.layouts)
    mask_layout: str | None  # the caller's mask layout
    mask_dtype: np.dtype | None  # the caller's mask dtype (results come back in it)
    like: Any  # the caller's image, whose array type the results take
    sources: tuple[Any, Any]  # the caller's image and mask, as given (an out= buffer must not overlap them)


@dataclass
class _Output:
    """One result: ``work`` is what the kernel writes (canonical view, kernel dtype, the backend's
    device); ``result`` what the caller gets (``given``: the caller's own ``out`` buffer); when
    ``view`` is set, work is copied into it (the canonical view of the caller's buffer) afterwards."""

    work: Any
    result: Any
    given: bool = False
    view: Any = None


def _xp(impl: ModuleType) -> ModuleType:
    if impl.DEVICE == "cuda":
        import cupy

        return cupy
    return np


def _aligned(arr: Any) -> Any:
    """A misaligned host view (e.g. a uint16 array at an odd byte offset) copied to aligned memory."""
    if isinstance(arr, np.ndarray) and not arr.flags.aligned:
        return arr.copy()
    return arr


def _first_non_finite(xp: ModuleType, img4: Any) -> tuple[int, ...] | None:
    """Index ``(n, y, x, c)`` of the first NaN/inf pixel, or None.

    On the host, sample by sample into one reused flag buffer: half the time of a batch-sized
    temporary (no page faults). On the GPU, one reduction (one wait for the device).
    """
    if xp is np:
        finite = np.empty(img4.shape[1:], dtype=bool)
        for i in range(img4.shape[0]):
            np.isfinite(img4[i], out=finite)
            if not finite.all():
                return (i, *(int(v) for v in np.argwhere(~finite)[0]))
        return None
    bad = ~xp.isfinite(img4)
    return tuple(int(v) for v in xp.argwhere(bad)[0]) if bool(bad.any()) else None


#: Masks of other integer dtypes (e.g. torch's int64 labels) are computed as int32 when their labels fit.
_WIDE_MASK = np.dtype(np.int32)


def _kernel_mask(msk: Any, xp: ModuleType) -> Any:
    """``msk`` in a dtype the kernels take: other integer masks as int32, when every label fits."""
    dtype = msk.dtype
    if dtype in MASK_DTYPES and dtype.byteorder != ">":
        return msk
    if dtype.kind not in "iu":
        raise TypeError(f"mask: dtype {dtype} is not supported; accepted: bool and integer labels")
    if dtype.itemsize >= 4 and msk.size:
        info = np.iinfo(_WIDE_MASK)
        low, high = int(msk.min()), int(msk.max())
        if low < info.min or high > info.max:
            raise ValueError(f"mask: labels must fit int32 [{info.min}, {info.max}], got values in [{low}, {high}]")
    return msk.astype(_WIDE_MASK)


def _prepare(image: Any, mask: Any, backend: str, *, mask_required: bool, channel_axis: Any = AUTO) -> _Batch:
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a name, got {type(backend).__name__}")
    impl = pick_backend(backend, image)
    xp = _xp(impl)
    img = _aligned(to_backend(image, impl.DEVICE))
    if img.dtype not in IMAGE_DTYPES or img.dtype.byteorder == ">":
        how = " (sas_fast computes in float32: convert with .astype(np.float32))" if img.dtype.kind == "f" else ""
        raise TypeError(f"image: dtype {img.dtype} is not supported; accepted: uint8, uint16, float32 (native byte order){how}")
    if mask is None:
        if mask_required:
            raise ValueError("mask: a label mask is required here, got None")
        msk = None
    else:
        msk = _aligned(to_backend(mask, impl.DEVICE))
    layout = layouts.image_layout(img.shape, None if msk is None else msk.shape, channel_axis)
    img4 = layouts.to_image4(img, layout)
    if img4.shape[1] < 1 or img4.shape[2] < 1:
        raise ValueError(f"image: expected at least one row and one column, got shape {img.shape}")
    if msk is not None:
        mask_layout = layouts.mask_layout(msk.shape, layout, img4.shape[1:3], img4.shape[0])
        msk3 = layouts.to_mask3(_kernel_mask(msk, xp), mask_layout)
        mask_dtype = msk.dtype
    else:
        msk3 = mask_layout = mask_dtype = None
    if img4.dtype == np.float32 and img4.size:
        where = _first_non_finite(xp, img4)
        if where is not None:
            raise ValueError(f"image: NaN or inf pixel at (n, y, x, c) = {where}; float32 images must be finite")
    return _Batch(impl, xp, img4, msk3, layout, mask_layout, mask_dtype, image, (image, mask))


def _outputs(batch: _Batch, out_image: Any, out_mask: Any, canvas: tuple[int, int], with_mask: bool) -> list[_Output]:
    """The call's outputs (image, and mask when ``with_mask``): the caller's ``out`` buffers (checked)
    or new arrays in the caller's layouts.  New host memory is checked once, for all of them."""
    n, _, _, c = batch.image.shape
    ho, wo = canvas
    specs = [("out (image)", out_image, layouts.image_shape(batch.layout, n, ho, wo, c), batch.image.dtype,
              batch.image.dtype, functools.partial(layouts.to_image4, layout=batch.layout))]  # fmt: skip
    if with_mask:
        specs.append(("out (mask)", out_mask, layouts.mask_shape(batch.mask_layout, n, ho, wo), batch.mask.dtype,
                      batch.mask_dtype, functools.partial(layouts.to_mask3, layout=batch.mask_layout)))  # fmt: skip
    if batch.xp is np:
        _check_host_memory(
            sum(math.prod(shape) * np.dtype(dtype).itemsize for _, out, shape, dtype, _, _ in specs
                if out is None or device_of(out) != batch.impl.DEVICE or native(out).dtype != dtype)
        )  # fmt: skip
    results = [_output(batch, *spec) for spec in specs]
    given = [native(out) for _, out, *_ in specs if out is not None]
    if len(given) == 2 and _overlaps(given[0], given[1]):
        raise ValueError("out: the image and mask buffers overlap; pass separate buffers")
    return results


def _output(batch: _Batch, name: str, out: Any, shape: tuple[int, ...], dtype: np.dtype, caller_dtype: np.dtype,
            canonical) -> _Output:  # fmt: skip
    """One output: ``shape`` in the caller's layout, ``canonical`` maps it to the kernels' view."""
    if out is None:
        arr = batch.xp.empty(shape, dtype=dtype)
        return _Output(work=canonical(arr), result=arr)
    buf = native(out)  # the caller's memory itself
    if tuple(buf.shape) != shape or buf.dtype != caller_dtype:
        raise ValueError(f"{name}: expected shape {shape} and dtype {caller_dtype}, got shape {tuple(buf.shape)} and dtype {buf.dtype}")
    if not getattr(buf.flags, "writeable", True):  # CuPy arrays have no such flag: always writeable
        raise ValueError(f"{name}: the buffer is read-only")
    if any(_overlaps(buf, source) for source in batch.sources if source is not None):
        raise ValueError(f"{name}: the buffer overlaps an input array; pass a separate buffer")
    if device_of(out) == batch.impl.DEVICE and buf.dtype == dtype:
        return _Output(work=canonical(buf), result=out, given=True)
    # a buffer on the other device than the backend, or of a dtype the kernels do not write (an
    # int64 mask): compute on the backend's device, then copy into the caller's buffer
    return _Output(work=canonical(batch.xp.empty(shape, dtype)), result=out, given=True, view=canonical(buf))


def _overlaps(buf: Any, source: Any) -> bool:
    """Whether the caller's ``out`` memory ``buf`` (in its own array module) overlaps the caller's
    input ``source``: exactly on the host; by address range on the GPU (``cupy.may_share_memory``:
    an exact check there costs a device array of every element's address)."""
    device = device_of(buf)
    if device_of(source) != device:
        return False
    if device == "cpu":
        return bool(np.shares_memory(buf, native(source)))
    import cupy

    return bool(cupy.may_share_memory(buf, native(source)))


def _available_host_memory() -> int | None:
    """Bytes the kernel says can be allocated without swapping (Linux ``MemAvailable``), or None if unknown."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


#: Calls allocating less than this skip the memory check (it reads /proc: ~10 µs, too much per sample).
MEMORY_CHECK_MIN_BYTES = 64 << 20


def _check_host_memory(nbytes: int) -> None:
    """Refuse outputs that cannot fit in memory: a clear error instead of an OOM kill later."""
    if nbytes < MEMORY_CHECK_MIN_BYTES:
        return
    available = _available_host_memory()
    if available is not None and nbytes > available:
        raise MemoryError(
            f"out: the results need {nbytes / 2**30:.1f} GiB but only {available / 2**30:.1f} GiB of memory is "
            "available; process the batch in smaller chunks"
        )


def _finish(batch: _Batch, outputs: list[_Output]) -> list[Any]:
    """Results in the caller's layouts, dtypes and array type; a caller's ``out`` buffer is
    returned as itself (holding the result)."""
    results = []
    for output, dtype in zip(outputs, (batch.image.dtype, batch.mask_dtype)):
        if output.view is not None:
            copy_into(output.view, output.work)
        if output.given:
            results.append(output.result)
            continue
        result = output.result if output.result.dtype == dtype else output.result.astype(dtype)  # e.g. int64 masks
        results.append(from_backend(result, batch.like))
    return results


def range_bounds(dtype: np.dtype, noise: NoisePlan) -> tuple[float, float] | None:
    """The bounds ``(lo, hi)`` that pixels getting noise must lie in (float32 values, as floats), or
    None when no pixel can leave them (``clip=False``, or an unsigned dtype's own full range)."""
    lo, hi = float(noise.lo), float(np.float32(noise.lo + noise.span))
    if not noise.clip or (dtype.kind == "u" and (lo, hi) == (0.0, float(np.iinfo(dtype).max))):
        return None
    return lo, hi


def _check_range(batch: _Batch, noise: NoisePlan) -> None:
    """SPEC §3 "Intensity range": pixels that get noise must lie in the value range (unless
    ``clip=False``), an error rather than a silent clip.  Checked on the input: the pixels whose
    label is selected (for :func:`augment`, the structure's source pixels).  One min/max of the
    batch decides the common case; only a batch that leaves the range is looked at sample by sample.
    """
    image, xp = batch.image, batch.xp
    bounds = range_bounds(image.dtype, noise)
    if bounds is None or not image.size or not (noise.kind != KINDS["none"]).any():
        return
    lo, hi = bounds
    if lo <= float(image.min()) and float(image.max()) <= hi:
        return
    labels = None if noise.labels is None else xp.asarray(noise.labels)
    for i in np.flatnonzero(noise.kind != KINDS["none"]):
        mask = batch.mask[i]
        chosen = image[i][(mask != 0) if labels is None else xp.isin(mask, labels)]
        if chosen.size and not (lo <= float(chosen.min()) and float(chosen.max()) <= hi):
            raise ValueError(
                f"image: sample {i} has pixels that get noise in [{float(chosen.min())}, {float(chosen.max())}], outside "
                f"the value range ({lo}, {hi}); pass value_range=(lo, hi) covering the data (e.g. for z-scored or "
                "12-bit images), or clip=False for float32 images to leave the values unclipped"
            )


def _split_out(out: Any, with_mask: bool) -> tuple[Any, Any]:
    if out is None:
        return None, None
    if with_mask:
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError("out: expected a tuple (out_image, out_mask) when a mask is given")
        return out
    return out, None


def _geometry(batch: _Batch, **kwargs: Any) -> GeometryPlan:
    return make_geometry(
        batch.image.shape, batch.image.dtype, mask_dtype=None if batch.mask is None else batch.mask.dtype, **kwargs
    )


def _noise(batch: _Batch, **kwargs: Any) -> NoisePlan:
    return make_noise(batch.image.shape[0], batch.image.dtype, **kwargs)


_LAYOUT_DOC = """
    Layouts (``channel_axis``, scikit-image's spelling): ``"auto"`` (default) reads them off the
    shapes where they leave no doubt: 2-D is one grey image, 4-D is ``(N, H, W, C)`` (or
    ``(N, C, H, W)`` with an ``(N, 1, H, W)`` mask), a 3-D image is decided by its mask
    (``(N, H, W)``, ``(H, W, C)`` or ``(C, H, W)``) and is an error without one.  ``None``: no
    channel axis (a 3-D image is a grey batch); an integer: the channel axis (``0`` / ``-1`` for
    one image, ``1`` / ``-1`` for a batch).  Masks are ``(H, W)`` or ``(1, H, W)`` for one image,
    ``(N, H, W)`` or ``(N, 1, H, W)`` for a batch; bool or any integer dtype (labels beyond int32
    are an error).  Results come back in the caller's layouts, dtypes and array type.
"""


def rescale_paste(
    image: Any,
    mask: Any = None,
    *,
    scale: Any,
    offset: Any = "center",
    crop: Any = None,
    canvas: Any = None,
    fill: Any = 0,
    mask_fill: Any = 0,
    backend: str = "auto",
    out: Any = None,
    seed: int = 0,
    sample_ids: Any = None,
    channel_axis: int | str | None = AUTO,
    interpolation: Any = "bilinear",
) -> tuple[Any, Any]:
    """Shrink (or enlarge) each image and mask by ``scale`` and paste into a canvas (SPEC §2).

    ``scale``, ``offset`` (``"center"``, ``"random"``, ``(oy, ox)`` or ``(N, 2)``) and ``crop``
    (``(sy0, sx0, sh, sw)`` or ``(N, 4)``) are scalars/tuples or per-sample arrays; ``canvas`` is
    ``(Ho, Wo)`` (default: the input size).  ``offset="random"`` draws from the parameter stream
    of ``seed`` and ``sample_ids``.  ``interpolation`` (one name or one per sample): the image's
    ``"bilinear"`` (default) or ``"area"``, OpenCV's antialiased ``INTER_AREA`` on every axis it
    shrinks (SPEC §2b); the mask is always nearest.  Returns ``(image_out, mask_out)``;
    ``mask_out`` is ``None`` without a mask.  ``out`` is ``image_out`` or ``(image_out, mask_out)``
    to write into.
    """
    batch = _prepare(image, mask, backend, mask_required=False, channel_axis=channel_axis)
    geo = _geometry(
        batch, scale=scale, offset=offset, crop=crop, canvas=canvas, fill=fill, mask_fill=mask_fill, seed=seed,
        sids=sample_ids, interpolation=interpolation,
    )
    with_mask = batch.mask is not None
    outputs = _outputs(batch, *_split_out(out, with_mask), geo.canvas, with_mask)
    batch.impl.rescale_paste(batch.image, batch.mask, geo, outputs[0].work, outputs[1].work if with_mask else None)
    results = _finish(batch, outputs)
    return results[0], results[1] if with_mask else None


def noise_in_mask(
    image: Any,
    mask: Any,
    *,
    kind: Any = "speckle",
    sigma: Any = 0.1,
    peak: Any = 256.0,
    labels: Any = None,
    seed: int = 0,
    sample_ids: Any = None,
    value_range: tuple[float, float] | None = None,
    clip: bool = True,
    channels: str = "independent",
    backend: str = "auto",
    out: Any = None,
    channel_axis: int | str | None = AUTO,
) -> Any:
    """Add speckle / gaussian / Poisson noise to the pixels whose mask label is selected (SPEC §3-4).

    ``kind``, ``sigma`` and ``peak`` are scalars or per-sample; ``labels`` selects labels (default:
    every nonzero one); noise for sample ``i`` depends only on ``seed`` and ``sample_ids[i]``
    (default ``i``), never on the batch it sits in.  Pixels outside the selection are copied
    bit-identical.  ``value_range`` ``(lo, hi)``: the intensity range (float32 default ``(0, 1)``;
    integer images default to the dtype's, or e.g. ``(0, 4095)`` for 12-bit data); selected pixels
    outside it are an error unless ``clip=False``.  ``channels="shared"``: every channel gets
    channel 0's noise (a grey image stored as RGB stays grey).  Returns the noisy image (``out``
    if given).
    """
    batch = _prepare(image, mask, backend, mask_required=True, channel_axis=channel_axis)
    noise = _noise(
        batch, kind=kind, sigma=sigma, peak=peak, labels=labels, seed=seed, sids=sample_ids,
        value_range=value_range, clip=clip, channels=channels,
    )
    _check_range(batch, noise)
    outputs = _outputs(batch, out, None, batch.image.shape[1:3], False)
    batch.impl.noise_in_mask(batch.image, batch.mask, noise, outputs[0].work)
    return _finish(batch, outputs)[0]


def augment(
    image: Any,
    mask: Any,
    params: SASParams,
    *,
    seed: int,
    sample_ids: Any = None,
    value_range: tuple[float, float] | None = None,
    channels: str = "independent",
    backend: str = "auto",
    out: Any = None,
    channel_axis: int | str | None = AUTO,
    interpolation: Any = None,
) -> tuple[Any, Any]:
    """SAS in one pass: ``params``' geometry, then its in-mask noise (SPEC §2 then §3).

    Equal to :func:`rescale_paste` followed by :func:`noise_in_mask` with the same per-sample
    values (``value_range``, ``channels``: as there); ``sample_ids`` default to the ones ``params``
    was sampled for, ``interpolation`` (one name or one per sample, SPEC §2b) to ``params``' own.
    """
    batch = _prepare(image, mask, backend, mask_required=True, channel_axis=channel_axis)
    n = batch.image.shape[0]
    if len(params) != n:
        raise ValueError(f"params: sampled for {len(params)} samples, but the batch has {n}")
    sids = params.sample_ids if sample_ids is None else sample_ids
    geo = _geometry(
        batch, scale=params.scale, offset=params.offset, crop=params.crop, canvas=params.canvas,
        interpolation=params.interpolation if interpolation is None else interpolation,
    )
    noise = _noise(
        batch, kind=params.kind, sigma=params.sigma, peak=params.peak, labels=params.labels, seed=seed,
        sids=sids, value_range=value_range, channels=channels,
    )
    _check_range(batch, noise)
    outputs = _outputs(batch, *_split_out(out, True), geo.canvas, True)
    batch.impl.augment(batch.image, batch.mask, geo, noise, outputs[0].work, outputs[1].work)
    image_out, mask_out = _finish(batch, outputs)
    return image_out, mask_out


for _function in (rescale_paste, noise_in_mask, augment):
    _function.__doc__ += _LAYOUT_DOC
