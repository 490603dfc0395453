"""The CuPy CUDA backend: the kernels of ``sas_fast/cuda/*.cu`` compiled by NVRTC through CuPy.

Backend interface as ``reference.py`` (``DEVICE = "cuda"``: arrays are CuPy arrays).  Each call
packs its plans into one small host array, copies it to the device (asynchronously, on the current
CuPy stream) and launches one kernel on that stream; nothing here waits for the GPU.

Compilation: one ``cupy.RawModule`` per (device, kernel instance), built on first use and
memoised; CuPy also caches the binary on disk.  Options come from :func:`compile_options` (no FMA
contraction, IEEE division and square root, constants as ``-D`` defines from their Python
sources), so the kernels give the reference's bits.  CuPy itself adds ``-ftz=true``: float32
*subnormal* pixel values (below 1.2e-38) are flushed to zero on the GPU, where the reference keeps
them; normal values are unaffected (the samplers never produce subnormals).

Every kernel takes one argument, a :data:`LAUNCH_DTYPE` record passed by value (a ``(1,)`` NumPy
structured array, which CuPy passes as the bytes of a struct), mirrored by ``struct LaunchRecord``
in the ``.cu`` file; the per-sample records are :data:`sas_fast.records.SAMPLE_DTYPE`, and a batch
with area samples (SPEC §2b) first runs ``sas_area_taps``, which writes their tap tables
(:data:`~sas_fast.records.AREA_TAP_DTYPE` entries) into device memory the geometry kernel then
reads.  The compilation asserts the three sizes (``SAS_LAUNCH_BYTES``, ``SAS_SAMPLE_BYTES``,
``SAS_AREA_TAP_BYTES``) and the host tests compare every field's offset.

Everything above the kernel call (:func:`compute`, :func:`build_launch`) is plain NumPy/array-API
code, so the CPU tests (``tests/test_cuda_source.py``) run the very same output handling and launch
records through the same ``.cu`` file compiled as host C++.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from .. import fmath, geometry, philox, samplers
from ..plan import KINDS, GeometryPlan, NoisePlan
from ..records import AREA_TAP_DTYPE, SAMPLE_DTYPE, area_entries, pack_samples
from ..records import record as _record

__all__ = [
    "DEVICE",
    "LAUNCH_DTYPE",
    "Launch",
    "augment",
    "build_launch",
    "check_available",
    "compile_defines",
    "compile_options",
    "compute",
    "name_expressions",
    "noise_in_mask",
    "rescale_paste",
]

DEVICE = "cuda"

#: The CUDA sources (package data).
SOURCE_DIR = Path(__file__).resolve().parent.parent / "cuda"
KERNEL_FILE = "sas_kernels.cu"
#: Threads per block (also the kernels' ``__launch_bounds__``); the grid is capped at MAX_BLOCKS and
#: the kernels loop over the rest (grid-stride), so any batch size launches.
BLOCK_THREADS = 256
MAX_BLOCKS = 1 << 16
#: Bytes of one-channel image each thread computes and stores per step (the kernels' RUN * sizeof(T),
#: at least one pixel): 8 gives uint8 runs of 8 pixels in one 64-bit store.  A tuning knob
#: (benchmarks/bench_gpu.py sweeps it): longer runs mean wider stores but more registers (NVRTC 13,
#: sm_90, Poisson-free uint8 augment: 56 registers at 1 byte, 88 at 4, 96 at 8, no spills).
RUN_BYTES = 8
#: Blocks per SM the kernels are compiled to fit (``__launch_bounds__``' second argument): 1 lets
#: ptxas use up to 255 registers a thread (uint8 augment with Poisson takes 124 on sm_90: two
#: 256-thread blocks per SM); 2 or 3 cap it at 128 / 80 for more warps in flight (3: some
#: spills).  A tuning knob (benchmarks/bench_gpu.py sweeps it with RUN_BYTES); ptxas reports the spills.
MIN_BLOCKS = 1
#: Vector stores (up to 16 bytes: a run of int32 labels) need outputs aligned to this.
STORE_ALIGN = 16
#: Batches with this many canvas pixels or more index with 64-bit division (the kernels' ``wide``).
WIDE_PIXELS = 1 << 32
#: Exactness: no FMA contraction, IEEE-rounded division and square root (NVRTC and nvcc spell these alike).
BASE_OPTIONS = ("--std=c++17", "--fmad=false", "--prec-div=true", "--prec-sqrt=true")

IMAGE_TYPES = {np.dtype(np.uint8): "unsigned char", np.dtype(np.uint16): "unsigned short", np.dtype(np.float32): "float"}
MASK_TYPES = {
    np.dtype(np.bool_): "bool",
    np.dtype(np.uint8): "unsigned char",
    np.dtype(np.uint16): "unsigned short",
    np.dtype(np.int32): "int",
}
#: Kernel (template) name of each backend function.
KERNELS = {"rescale_paste": "sas_rescale_paste", "noise_in_mask": "sas_noise_in_mask", "augment": "sas_augment"}
#: The kernel (not a template) that writes the area tap tables a geometry launch reads (SPEC §2b).
AREA_TAPS_KERNEL = "sas_area_taps"
#: Mask type used when rescale_paste has no mask (the mask pointers are then null).
NO_MASK_DTYPE = np.dtype(np.uint8)

#: The kernels' one argument, passed by value: mirrors ``struct LaunchRecord`` in sas_kernels.cu.
#: Device addresses (0: absent) of the input image and mask, the outputs, and the uploaded
#: per-sample records, fill values and selected labels; the area tap tables and their entries;
#: the inputs' element strides; then the counts, Philox key, normalisation and flags.  8-byte
#: fields first, then 4-byte ones: C layout without padding.  :func:`build_launch` fills every
#: field by name.
LAUNCH_DTYPE = np.dtype(
    [
        ("img", "<u8"), ("msk", "<u8"), ("out", "<u8"), ("out_mask", "<u8"),
        ("params", "<u8"), ("fill", "<u8"), ("labels", "<u8"),
        ("taps", "<u8"), ("n_taps", "<i8"),
        ("img_sn", "<i8"), ("img_sy", "<i8"), ("img_sx", "<i8"), ("img_sc", "<i8"),
        ("msk_sn", "<i8"), ("msk_sy", "<i8"), ("msk_sx", "<i8"),
        ("n_labels", "<i4"), ("mask_fill", "<i4"), ("n", "<i4"), ("ho", "<i4"), ("wo", "<i4"), ("ch", "<i4"),
        ("key0", "<u4"), ("key1", "<u4"), ("lo", "<f4"), ("span", "<f4"), ("inv", "<f4"),
        ("clip", "<i4"), ("aligned", "<i4"), ("wide", "<i4"), ("shared_channels", "<i4"),
        ("pad", "<i4"),  # spare: keeps the record a multiple of 8 bytes with no hidden padding
    ],
    align=True,
)  # fmt: skip


# ----------------------------------------------------------------------------- compilation


def _float_bits(value: float) -> str:
    return f"0x{int(np.float32(value).view(np.uint32)):08x}u"


def compile_defines() -> list[str]:
    """The ``-D`` options every compilation of the sources needs, from their single Python sources.

    float32 constants of :data:`sas_fast.fmath.COEFFS` as IEEE bit patterns, float64 sampler
    constants as exact hexadecimal literals, the integer stream / kind / launch constants, and the
    byte sizes of :data:`LAUNCH_DTYPE` and :data:`~sas_fast.records.SAMPLE_DTYPE` (the source
    ``static_assert``s its structs against them).
    """
    defines = [f"-DSAS_{name}={_float_bits(value)}" for name, value in fmath.COEFFS.items()]
    defines += [f"-DSAS_LOGGAM_A{i}={float(a).hex()}" for i, a in enumerate(samplers._LOGGAM_A)]
    defines += [
        f"-DSAS_LOG_2PI={float(samplers._LOG_2PI).hex()}",
        f"-DSAS_PTRS_MIN_LAM={float(samplers.PTRS_MIN_LAM).hex()}",
        f"-DSAS_PTRS_BLOCKS={int(samplers.PTRS_BLOCKS)}",
        f"-DSAS_INVERSION_MAX_K={int(samplers.INVERSION_MAX_K)}",
        f"-DSAS_NOISE_TAG={int(philox.NOISE_TAG)}u",
        f"-DSAS_BLOCK_THREADS={BLOCK_THREADS}",
        f"-DSAS_RUN_BYTES={RUN_BYTES}",
        f"-DSAS_MIN_BLOCKS={MIN_BLOCKS}",
        f"-DSAS_LAUNCH_BYTES={LAUNCH_DTYPE.itemsize}",
        f"-DSAS_SAMPLE_BYTES={SAMPLE_DTYPE.itemsize}",
        f"-DSAS_AREA_TAP_BYTES={AREA_TAP_DTYPE.itemsize}",
        f"-DSAS_AREA_EPSILON={float(geometry.AREA_EPSILON).hex()}",
    ]
    defines += [f"-DSAS_KIND_{name.upper()}={code}" for name, code in KINDS.items()]
    defines += [f"-DSAS_INTERP_{name.upper()}={code}" for name, code in geometry.INTERPOLATIONS.items()]
    return defines


def source_hash() -> str:
    """A digest of every ``.cu``/``.cuh`` file: CuPy's disk cache keys on the main file's text and
    the options only, so this goes into the options to invalidate it when a header changes."""
    digest = hashlib.sha256()
    for path in sorted(SOURCE_DIR.glob("*.cu*")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def compile_options() -> tuple[str, ...]:
    """NVRTC options (also valid for nvcc): exactness flags, include path, defines, source digest."""
    return (*BASE_OPTIONS, f"-I{SOURCE_DIR}", *compile_defines(), f"-DSAS_SOURCE_HASH=0x{source_hash()}")


def kernel_source() -> str:
    """The text of the kernel file (it includes its headers from :data:`SOURCE_DIR`)."""
    return (SOURCE_DIR / KERNEL_FILE).read_text()


def name_expression(function: str, image_dtype: Any, mask_dtype: Any, poisson: bool = False) -> str:
    """The C++ name of one kernel instance, e.g. ``"sas_augment<unsigned char, bool, false>"``.

    The noise kernels take a third template argument, ``poisson``: whether the instance can draw
    Poisson noise (the instance without it needs far fewer registers; see sas_kernels.cu).
    """
    types = f"{IMAGE_TYPES[np.dtype(image_dtype)]}, {MASK_TYPES[np.dtype(mask_dtype)]}"
    if function == "rescale_paste":
        return f"{KERNELS[function]}<{types}>"
    return f"{KERNELS[function]}<{types}, {str(bool(poisson)).lower()}>"


def name_expressions(image_dtype: Any = None, mask_dtype: Any = None) -> list[str]:
    """Kernel instances: the five of one dtype pair, or (no arguments) every instance there is
    (the 60 templates' and :data:`AREA_TAPS_KERNEL`)."""
    if image_dtype is None:
        pairs = [(i, m) for i in IMAGE_TYPES for m in MASK_TYPES]
        return [e for i, m in pairs for e in name_expressions(i, m)] + [AREA_TAPS_KERNEL]
    variants = [("rescale_paste", False)] + [(f, p) for f in ("noise_in_mask", "augment") for p in (False, True)]
    return [name_expression(f, image_dtype, mask_dtype, p) for f, p in variants]


# ----------------------------------------------------------------------------- launch arguments


@dataclass(frozen=True)
class Launch:
    """One kernel launch: instance name, 1-D grid and block sizes, the kernel's argument ``record``
    (a ``(1,)`` :data:`LAUNCH_DTYPE` host array, passed by value) and ``arrays``, every array whose
    address the record holds: they must stay alive until the launch is queued.  ``before``: the
    launches to queue first, on the same stream (the area tap tables it reads)."""

    name: str
    grid: int
    block: int
    record: np.ndarray
    arrays: tuple
    before: tuple[Launch, ...] = ()

    @property
    def args(self) -> tuple:
        """The kernel's argument tuple, as ``cupy.RawKernel`` takes it."""
        return (self.record,)


def _address(arr: Any) -> int:
    """The address of ``arr``'s first element (CuPy: device pointer; NumPy: host pointer)."""
    ptr = getattr(getattr(arr, "data", None), "ptr", None)  # cupy.ndarray.data is a MemoryPointer
    return int(arr.ctypes.data if ptr is None else ptr)


def _element_strides(arr: Any, xp: ModuleType) -> tuple[Any, list[int]]:
    """``arr`` (copied contiguous only if a byte stride is not a whole number of elements) and its
    strides in elements."""
    if any(s % arr.itemsize for s in arr.strides):
        arr = xp.ascontiguousarray(arr)
    return arr, [s // arr.itemsize for s in arr.strides]


def _pack_plans(n: int, geo: GeometryPlan | None, noise: NoisePlan | None, mask_dtype: np.dtype, channels: int):
    """One uint32 host array: N :data:`SAMPLE_DTYPE` records, then C fill values (float32), then the
    selected labels (int32, sorted).  Returns ``(words, n_labels)``; ``n_labels`` -1: any nonzero."""
    labels = np.zeros(0, dtype=np.int32)
    n_labels = -1
    if noise is not None and noise.labels is not None:
        # a label outside the mask dtype's range can never match; int32 holds every mask value
        info = np.iinfo(np.int32) if mask_dtype == np.bool_ else np.iinfo(mask_dtype)
        kept = noise.labels[(noise.labels >= info.min) & (noise.labels <= info.max)]
        labels = kept.astype(np.int32)
        n_labels = len(labels)
    fill = np.zeros(channels, np.float32) if geo is None else geo.fill.astype(np.float32)
    words = np.concatenate([pack_samples(n, geo, noise).view(np.uint32), fill.view(np.uint32), labels.view(np.uint32)])
    return words, n_labels


#: A ``(1,)`` :data:`LAUNCH_DTYPE` record from every field by name (``records.record``).
_launch_record = functools.partial(_record, LAUNCH_DTYPE)


def build_launch(
    function: str,
    image: Any,
    mask: Any,
    geo: GeometryPlan | None,
    noise: NoisePlan | None,
    out_image: Any,
    out_mask: Any,
    xp: ModuleType,
) -> Launch | None:
    """The launch computing ``function`` (a key of :data:`KERNELS`) on arrays of module ``xp``
    (``cupy``; ``numpy`` in the CPU tests); ``None`` when the output is empty.

    ``image`` ``(N, H, W, C)`` and ``mask`` ``(N, H, W)`` may be strided views; outputs must be
    C-contiguous (:func:`compute` sees to it).  The packed plans are copied with ``xp.asarray``
    (CuPy: asynchronous, on the current stream).
    """
    n, ho, wo, channels = out_image.shape
    if n * ho * wo == 0:  # (an image of zero channels still has a mask to resample)
        return None
    if image.shape[1] * image.shape[2] == 0:
        raise ValueError(f"image: cannot resample an empty image of shape {tuple(image.shape)}")
    mask_dtype = NO_MASK_DTYPE if mask is None else np.dtype(mask.dtype)
    n_taps = 0 if geo is None or not geo.interpolation.any() else int(area_entries(geo).sum())
    if n_taps >= 1 << 32:  # SampleParams.taps is 32-bit
        raise ValueError(
            f"interpolation: the batch's area tap tables would hold {n_taps} entries (2**32 at most); split the batch"
        )
    words, n_labels = _pack_plans(n, geo, noise, mask_dtype, channels)
    dev = xp.asarray(words)
    # written on the device by the table kernel, before the geometry kernel reads them (AREA_TAP_DTYPE entries)
    taps = xp.empty(n_taps * (AREA_TAP_DTYPE.itemsize // 4), np.uint32) if n_taps else None
    params = _address(dev)
    fill = params + n * SAMPLE_DTYPE.itemsize
    image, (img_sn, img_sy, img_sx, img_sc) = _element_strides(image, xp)
    if mask is None:
        msk, (msk_sn, msk_sy, msk_sx) = 0, (0, 0, 0)
    else:
        mask, (msk_sn, msk_sy, msk_sx) = _element_strides(mask, xp)
        msk = _address(mask)
    aligned = all(_address(a) % STORE_ALIGN == 0 for a in (out_image, out_mask) if a is not None)
    if noise is None:
        key, lo, span, inv, clip, shared = (0, 0), 0.0, 0.0, 0.0, False, False
    else:
        key, lo, span, inv, clip, shared = noise.key, noise.lo, noise.span, noise.inv, noise.clip, noise.shared
    record = _launch_record(
        img=_address(image), msk=msk, out=_address(out_image), out_mask=0 if out_mask is None else _address(out_mask),
        params=params, fill=fill, labels=fill + channels * np.dtype(np.float32).itemsize,
        taps=0 if taps is None else _address(taps), n_taps=n_taps,
        img_sn=img_sn, img_sy=img_sy, img_sx=img_sx, img_sc=img_sc, msk_sn=msk_sn, msk_sy=msk_sy, msk_sx=msk_sx,
        n_labels=n_labels, mask_fill=0 if geo is None else geo.mask_fill, n=n, ho=ho, wo=wo, ch=channels,
        key0=key[0], key1=key[1], lo=lo, span=span, inv=inv,
        clip=clip, aligned=aligned, wide=n * ho * wo >= WIDE_PIXELS, shared_channels=shared, pad=0,
    )  # fmt: skip
    arrays = tuple(a for a in (image, mask, out_image, out_mask, dev, taps) if a is not None)
    run = max(1, RUN_BYTES // out_image.itemsize)
    threads = -(-n * ho * wo // run)
    poisson = noise is not None and bool(np.any(noise.kind == KINDS["poisson"]))
    before = (Launch(AREA_TAPS_KERNEL, _grid(n_taps), BLOCK_THREADS, record, arrays),) if n_taps else ()
    return Launch(name_expression(function, out_image.dtype, mask_dtype, poisson), _grid(threads), BLOCK_THREADS, record,
                  arrays, before)  # fmt: skip


def _grid(threads: int) -> int:
    """Blocks for ``threads`` threads (capped: the kernels loop over the rest, grid-stride)."""
    return min(MAX_BLOCKS, -(-threads // BLOCK_THREADS))


# ----------------------------------------------------------------------------- CuPy


#: Compiled kernels: one ``cupy.RawModule`` per (device, kernel instance, launch knobs).
_modules: dict[tuple[int, str, int, int, int], Any] = {}


def check_available() -> None:
    """Raise ``ImportError``/``RuntimeError`` saying why this backend cannot run here."""
    try:
        import cupy
    except ImportError as exc:
        raise ImportError(f"CuPy is not installed ({exc})") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDARuntimeError and driver-loading errors alike
        raise RuntimeError(f"CuPy cannot reach a CUDA device ({type(exc).__name__}: {exc})") from exc
    if count < 1:
        raise RuntimeError("CuPy found no CUDA device")


def _kernel(name: str, device_id: int) -> Any:
    """The kernel instance ``name`` (a name expression), compiled on first use per device.

    One instance per module: a first call compiles only the kernel it runs (about a second of
    NVRTC + ptxas), not every kernel of its dtype pair.
    """
    import cupy

    key = (device_id, name, RUN_BYTES, BLOCK_THREADS, MIN_BLOCKS)
    module = _modules.get(key)
    if module is None:
        module = cupy.RawModule(code=kernel_source(), options=compile_options(), name_expressions=[name])
        _modules[key] = module
    return module.get_function(name)


def compute(function: str, image, mask, geo, noise, out_image, out_mask, xp: ModuleType, execute) -> None:
    """Compute ``function`` into ``out_image`` / ``out_mask``, which may be strided views.

    The kernels store whole runs of a contiguous canvas, so a strided output is computed in a
    contiguous temporary and copied into the caller's view.  ``execute(launch)`` runs the launch
    (:func:`_launch`: on the GPU; the CPU tests: the host-compiled kernels).
    """
    work = [o if o is None or o.flags.c_contiguous else xp.empty(o.shape, o.dtype) for o in (out_image, out_mask)]
    launch = build_launch(function, image, mask, geo, noise, *work, xp)
    if launch is not None:
        for step in (*launch.before, launch):
            execute(step)
    for target, result in zip((out_image, out_mask), work):
        if result is not target:
            target[...] = result


def _launch(function: str, image, mask, geo, noise, out_image, out_mask) -> None:
    import cupy

    device = out_image.device

    def execute(launch: Launch) -> None:
        _kernel(launch.name, device.id)((launch.grid,), (launch.block,), launch.args)

    with device:
        compute(function, image, mask, geo, noise, out_image, out_mask, cupy, execute)


def rescale_paste(image, mask, geo: GeometryPlan, out_image, out_mask) -> None:
    """SPEC §2 on the GPU (see ``reference.rescale_paste``)."""
    _launch("rescale_paste", image, mask, geo, None, out_image, out_mask)


def noise_in_mask(image, mask, noise: NoisePlan, out_image) -> None:
    """SPEC §3-4 on the GPU (see ``reference.noise_in_mask``)."""
    _launch("noise_in_mask", image, mask, None, noise, out_image, None)


def augment(image, mask, geo: GeometryPlan, noise: NoisePlan, out_image, out_mask) -> None:
    """SPEC §2 then §3 in one kernel (see ``reference.augment``)."""
    _launch("augment", image, mask, geo, noise, out_image, out_mask)
