"""Public entry points (SPEC §6): validate, pick a backend, allocate, run, hand back.

A call flows: caller's arrays -> :func:`_prepare` (backend choice, array conversion, shape and
dtype checks, canonical ``(N, H, W, C)`` / ``(N, H, W)`` views) -> ``sas_fast.plan`` (parameter
validation into explicit per-sample plans) -> the backend's kernel -> outputs reshaped to the
caller's layout and array type.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from . import backends
from .arrays import array_kind, copy_into, device_of, from_backend, native, to_backend
from .plan import IMAGE_DTYPES, MASK_DTYPES, GeometryPlan, NoisePlan, make_geometry, make_noise

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
    """Canonical views of one call's inputs."""

    impl: ModuleType
    xp: ModuleType
    image: Any  # (N, H, W, C)
    mask: Any  # (N, H, W) or None
    layout: str  # "HW", "HWC", "NHW" or "NHWC": the caller's image layout
    like: Any  # the caller's image, whose array type the results take
    sources: tuple[Any, Any]  # the caller's image and mask, as given (an out= buffer must not overlap them)


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


def _prepare(image: Any, mask: Any, backend: str, *, mask_required: bool) -> _Batch:
    if not isinstance(backend, str):
        raise TypeError(f"backend: expected a name, got {type(backend).__name__}")
    impl = pick_backend(backend, image)
    xp = _xp(impl)
    img = _aligned(to_backend(image, impl.DEVICE))
    if img.dtype not in IMAGE_DTYPES or img.dtype.byteorder == ">":
        raise TypeError(f"image: dtype {img.dtype} is not supported; accepted: uint8, uint16, float32 (native byte order)")
    if mask is None:
        if mask_required:
            raise ValueError("mask: a label mask is required here, got None")
        msk = None
    else:
        msk = _aligned(to_backend(mask, impl.DEVICE))
        if msk.dtype not in MASK_DTYPES or msk.dtype.byteorder == ">":
            raise TypeError(f"mask: dtype {msk.dtype} is not supported; accepted: bool, uint8, uint16, int32")

    # Layout: 2-D is one grey image; 3-D is (N, H, W), or (H, W, C) when the mask is 2-D; 4-D is (N, H, W, C).
    if img.ndim == 2:
        layout, img4 = "HW", img[None, :, :, None]
    elif img.ndim == 3 and msk is not None and msk.ndim == 2:
        layout, img4 = "HWC", img[None]
    elif img.ndim == 3:
        layout, img4 = "NHW", img[..., None]
    elif img.ndim == 4:
        layout, img4 = "NHWC", img
    else:
        raise ValueError(f"image: expected (H, W), (H, W, C), (N, H, W) or (N, H, W, C), got shape {img.shape}")
    if img4.shape[1] < 1 or img4.shape[2] < 1:
        raise ValueError(f"image: expected at least one row and one column, got shape {img.shape}")
    if msk is not None:
        msk3 = msk[None] if msk.ndim == 2 else msk
        if msk3.ndim != 3 or msk3.shape != img4.shape[:3]:
            raise ValueError(
                f"mask: shape {msk.shape} does not match image shape {img.shape}; expected {img4.shape[1:3]} "
                f"for one image or {img4.shape[:3]} for a batch"
            )
    else:
        msk3 = None
    if img4.dtype == np.float32 and img4.size:
        where = _first_non_finite(xp, img4)
        if where is not None:
            raise ValueError(f"image: NaN or inf pixel at (n, y, x, c) = {where}; float32 images must be finite")
    return _Batch(impl=impl, xp=xp, image=img4, mask=msk3, layout=layout, like=image, sources=(image, mask))


def _outputs(batch: _Batch, specs: list[tuple[Any, str, tuple[int, ...], np.dtype]]) -> list[Any]:
    """One call's output buffers: for each ``(out, name, shape, dtype)``, the caller's ``out``
    (checked, as a canonical view) or a new array.  New host arrays are checked against available
    memory together (image and mask alike) before any is allocated."""
    new = [
        (shape, dtype)
        for out, _, shape, dtype in specs
        if out is None or device_of(out) != batch.impl.DEVICE
    ]
    if batch.xp is np and new:
        _check_host_memory(sum(math.prod(shape) * np.dtype(dtype).itemsize for shape, dtype in new))
    buffers = [_output(batch, *spec) for spec in specs]
    bufs = [b for b, spec in zip(buffers, specs) if spec[0] is not None]
    if len(bufs) == 2 and _shares(bufs[0], bufs[1]):
        raise ValueError("out: the image and mask buffers overlap; pass separate buffers")
    return buffers


def _shares(a: Any, b: Any) -> bool:
    if device_of(a) != device_of(b):
        return False
    if device_of(a) == "cpu":
        return bool(np.shares_memory(a, b))
    import cupy

    return bool(cupy.may_share_memory(a, b))


def _output(batch: _Batch, out: Any, name: str, shape: tuple[int, ...], dtype: np.dtype) -> Any:
    """The caller's ``out`` buffer (checked, as a canonical view) or a new array."""
    if out is None:
        return batch.xp.empty(shape, dtype=dtype)
    buf = native(out)  # the caller's memory itself
    want = _layout_shape(batch.layout, shape) if len(shape) == 4 else _mask_layout_shape(batch.layout, shape)
    if buf.shape != want or buf.dtype != dtype:
        raise ValueError(f"{name}: expected shape {want} and dtype {dtype}, got shape {buf.shape} and dtype {buf.dtype}")
    if not getattr(buf.flags, "writeable", True):  # CuPy arrays have no such flag: always writeable
        raise ValueError(f"{name}: the buffer is read-only")
    if any(_overlaps(buf, source) for source in batch.sources if source is not None):
        raise ValueError(f"{name}: the buffer overlaps an input array; pass a separate buffer")
    if device_of(out) != batch.impl.DEVICE:
        # a host buffer for a GPU backend or the reverse: compute on the backend's device, and
        # _finish copies the result into the caller's buffer
        return batch.xp.empty(shape, dtype=dtype)
    return buf.reshape(shape)


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


def _layout_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    n, h, w, c = shape
    return {"HW": (h, w), "HWC": (h, w, c), "NHW": (n, h, w), "NHWC": shape}[layout]


def _mask_layout_shape(layout: str, shape: tuple[int, ...]) -> tuple[int, ...]:
    return shape[1:] if layout in ("HW", "HWC") else shape


def _finish(batch: _Batch, out_image: Any, out_mask: Any, given: tuple[Any, Any] = (None, None)) -> tuple[Any, Any]:
    """Results in the caller's layout and array type; a caller's ``out`` buffer is returned as itself
    (holding the result: copied into it when it lives on another device than the backend)."""
    n, h, w, c = out_image.shape
    img = out_image.reshape(_layout_shape(batch.layout, (n, h, w, c)))
    msk = None if out_mask is None else out_mask.reshape(_mask_layout_shape(batch.layout, (n, h, w)))
    results = []
    for buf, result in zip(given, (img, msk)):
        if buf is None:
            results.append(from_backend(result, batch.like))
            continue
        if device_of(buf) != batch.impl.DEVICE:
            copy_into(buf, result)
        results.append(buf)
    return results[0], results[1]


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
) -> tuple[Any, Any]:
    """Shrink (or enlarge) each image and mask by ``scale`` and paste into a canvas (SPEC §2).

    ``scale``, ``offset`` (``"center"``, ``"random"``, ``(oy, ox)`` or ``(N, 2)``) and ``crop``
    (``(sy0, sx0, sh, sw)`` or ``(N, 4)``) are scalars/tuples or per-sample arrays; ``canvas`` is
    ``(Ho, Wo)`` (default: the input size).  ``offset="random"`` draws from the parameter stream
    of ``seed`` and ``sample_ids``.  Returns ``(image_out, mask_out)``; ``mask_out`` is ``None``
    without a mask.  ``out`` is ``image_out`` or ``(image_out, mask_out)`` to write into.
    """
    batch = _prepare(image, mask, backend, mask_required=False)
    geo = _geometry(
        batch, scale=scale, offset=offset, crop=crop, canvas=canvas, fill=fill, mask_fill=mask_fill, seed=seed,
        sids=sample_ids,
    )
    out_img, out_msk = _split_out(out, batch.mask is not None)
    n, _, _, c = batch.image.shape
    ho, wo = geo.canvas
    specs = [(out_img, "out (image)", (n, ho, wo, c), batch.image.dtype)]
    if batch.mask is not None:
        specs.append((out_msk, "out (mask)", (n, ho, wo), batch.mask.dtype))
    out_image, out_mask = (*_outputs(batch, specs), None)[:2]
    batch.impl.rescale_paste(batch.image, batch.mask, geo, out_image, out_mask)
    return _finish(batch, out_image, out_mask, (out_img, out_msk))


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
    backend: str = "auto",
    out: Any = None,
) -> Any:
    """Add speckle / gaussian / Poisson noise to the pixels whose mask label is selected (SPEC §3-4).

    ``kind``, ``sigma`` and ``peak`` are scalars or per-sample; ``labels`` selects labels (default:
    every nonzero one); noise for sample ``i`` depends only on ``seed`` and ``sample_ids[i]``
    (default ``i``), never on the batch it sits in.  Pixels outside the selection are copied
    bit-identical.  Returns the noisy image (``out`` if given).
    """
    batch = _prepare(image, mask, backend, mask_required=True)
    noise = _noise(
        batch, kind=kind, sigma=sigma, peak=peak, labels=labels, seed=seed, sids=sample_ids,
        value_range=value_range, clip=clip,
    )
    (out_image,) = _outputs(batch, [(out, "out", batch.image.shape, batch.image.dtype)])
    batch.impl.noise_in_mask(batch.image, batch.mask, noise, out_image)
    return _finish(batch, out_image, None, (out, None))[0]


def augment(
    image: Any,
    mask: Any,
    params: SASParams,
    *,
    seed: int,
    sample_ids: Any = None,
    value_range: tuple[float, float] | None = None,
    backend: str = "auto",
    out: Any = None,
) -> tuple[Any, Any]:
    """SAS in one pass: ``params``' geometry, then its in-mask noise (SPEC §2 then §3).

    Equal to :func:`rescale_paste` followed by :func:`noise_in_mask` with the same per-sample
    values; ``sample_ids`` default to the ones ``params`` was sampled for.
    """
    batch = _prepare(image, mask, backend, mask_required=True)
    n = batch.image.shape[0]
    if len(params) != n:
        raise ValueError(f"params: sampled for {len(params)} samples, but the batch has {n}")
    sids = params.sample_ids if sample_ids is None else sample_ids
    geo = _geometry(batch, scale=params.scale, offset=params.offset, crop=params.crop, canvas=params.canvas)
    noise = _noise(
        batch, kind=list(params.kind), sigma=params.sigma, peak=params.peak, labels=params.labels, seed=seed,
        sids=sids, value_range=value_range,
    )
    out_img, out_msk = _split_out(out, True)
    ho, wo = geo.canvas
    out_image, out_mask = _outputs(
        batch,
        [
            (out_img, "out (image)", (n, ho, wo, batch.image.shape[3]), batch.image.dtype),
            (out_msk, "out (mask)", (n, ho, wo), batch.mask.dtype),
        ],
    )
    batch.impl.augment(batch.image, batch.mask, geo, noise, out_image, out_mask)
    return _finish(batch, out_image, out_mask, (out_img, out_msk))
