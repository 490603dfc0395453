"""The one registry of benchmark contenders: sas_fast backends, outside baselines, ceiling, stages.

A :class:`Contender` builds, for a :class:`~benchmarks.workloads.Workload`, a zero-argument
runner that processes the whole batch into output buffers it allocated once (as a user reusing
buffers would) and returns ``(image_out, mask_out)`` of shape ``(N, Ho, Wo)``.  Building raises
:class:`Unavailable` with the reason when the contender cannot run here (e.g. the Numba backend
is missing, or a library does not take the dtype); callers skip the row and print the reason.

Adding a backend or a baseline is one entry in :data:`CONTENDERS`.  ``compares`` says what the
correctness check (:func:`check`) can hold it to:

* ``"exact"``: computes sas_fast's own function: equals the reference (Poisson within
  ``tests/tolerances.py``).
* ``"geometry"``: same per-sample scale and offset with its own interpolation and random
  numbers: geometry within ``BASELINE_GEOMETRY`` / ``OPENCV_NEAREST_MISMATCH`` of
  ``tests/tolerances.py``, in-mask noise of the same strength (``NOISE_STRENGTH_RATIO``).
* ``"clean"``: geometry only (a stage row): every pixel within those geometry tolerances.
* ``"own"``: its own random geometry (albumentations): the nonzero pixels span a rectangle of the
  input's aspect at a scale in ``SCALE_RANGE`` (black fill around it), the mask inside it.
* ``"copy"``: the bandwidth ceiling: outputs equal the inputs.

Two more registries serve issue 10's suites (``benchmarks.per_call``, ``benchmarks.dataloader``):
:data:`PER_CALL` (one image and mask per call, as a ``Dataset.__getitem__`` makes it; the sas_fast
rows come from the backend registry, one set per compiled backend) and :data:`LOADER` (the
per-sample transform a Dataset applies inside a DataLoader).  Both are held to :func:`check` too.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

import sas_fast
from sas_fast.backends import BACKENDS, BackendUnavailable
from sas_fast.geometry import thumbnail_sides

from .workloads import PEAK, SCALE_RANGE, SIGMA, Workload

__all__ = [
    "ALL_THREADS",
    "CONTENDERS",
    "LOADER",
    "PER_CALL",
    "Contender",
    "LoaderContender",
    "PerCall",
    "Runner",
    "Unavailable",
    "by_key",
    "check",
    "loader_by_key",
    "single_thread",
]

#: "All threads" on this machine: every core the process may use.
ALL_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

Outputs = tuple[np.ndarray, np.ndarray]
Runner = Callable[[], Outputs]


class Unavailable(RuntimeError):
    """The contender cannot run here (the message says why)."""


def skip_cell(reasons: list[str], reason: str) -> str:
    """A table cell for a contender that did not run: ``skipped [k]`` or ``FAILED [k]``, with the
    reason appended to the table's footnotes ``reasons`` (numbered from 1) once."""
    if reason not in reasons:
        reasons.append(reason)
    return f"{'FAILED' if reason.startswith('FAILED') else 'skipped'} [{reasons.index(reason) + 1}]"


@dataclass(frozen=True)
class Contender:
    """One row of the comparison.

    key: short id (``--only``, test ids); label: the row's name; threads: threads it uses;
    build: ``build(workload) -> runner``; compares: what :func:`check` holds it to (module doc);
    role: ``"row"``, ``"stage"`` (a part of a pipeline, for the where-the-time-goes breakdown) or
    ``"ceiling"``; max_images: slow contenders time only the first ``max_images`` samples of a
    full-size batch (their per-batch time is scaled up, and the table says so); note: what the
    row does differently from sas_fast.
    """

    key: str
    label: str
    threads: int
    build: Callable[[Workload], Runner]
    compares: str
    role: str = "row"
    max_images: int | None = None
    note: str = ""


# ----------------------------------------------------------------------------- helpers


def _value_scale(wl: Workload) -> float:
    lo, hi = wl.value_range
    return hi - lo


def _thumb(wl: Workload, i: int) -> tuple[int, int, int, int, int, int, int, int]:
    """``(sy0, sx0, sh, sw, h, w, oy, ox)`` of sample ``i`` (SPEC §2 thumbnail size), inside the canvas."""
    p = wl.params
    sy0, sx0, sh, sw = (int(v) for v in p.crop[i])
    h, w = (int(v) for v in thumbnail_sides((sh, sw), float(p.scale[i])))
    oy, ox = (int(v) for v in p.offset[i])
    ho, wo = wl.canvas
    if not (0 <= oy and 0 <= ox and oy + h <= ho and ox + w <= wo):
        raise ValueError(f"sample {i}: the baselines paste whole thumbnails; offset {(oy, ox)} clips {(h, w)}")
    return sy0, sx0, sh, sw, h, w, oy, ox


def _zero_border(canvas: np.ndarray, oy: int, ox: int, h: int, w: int) -> None:
    """Fill the canvas outside the thumbnail rectangle (each output byte written once)."""
    canvas[:oy] = 0
    canvas[oy + h :] = 0
    canvas[oy : oy + h, :ox] = 0
    canvas[oy : oy + h, ox + w :] = 0


def _per_image(wl: Workload, threads: int, work: Callable[[Sequence[int], int], None], outputs: Outputs) -> Runner:
    """A runner doing ``work(indices, worker)`` over the images, strided across ``threads`` pool
    threads, then returning ``outputs`` (the buffers ``work`` fills).

    Strided (not blocked) indices balance the load: per-image cost varies with the scale.  The
    pool lives as long as the runner, as a user's would.
    """
    if threads == 1:

        def run_serial() -> Outputs:
            work(range(wl.n), 0)
            return outputs

        return run_serial
    pool = ThreadPoolExecutor(threads)
    parts = [range(t, wl.n, threads) for t in range(threads)]

    def run() -> Outputs:
        for future in [pool.submit(work, part, t) for t, part in enumerate(parts)]:
            future.result()
        return outputs

    return run


def _cv_interpolation(wl: Workload) -> int:
    """OpenCV's flag for the workload's image interpolation: INTER_LINEAR for bilinear (SPEC §2),
    INTER_AREA for area (§2b, its anchor)."""
    import cv2

    return {"bilinear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}[wl.interpolation]


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.float32:
        return values.astype(np.float32)
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


# ----------------------------------------------------------------------------- sas_fast


def _sas_backend(name: str) -> None:
    try:
        sas_fast.backends.load(name)
    except BackendUnavailable as exc:
        raise Unavailable(str(exc)) from None


def _numba_threads(threads: int) -> None:
    import numba

    numba.set_num_threads(threads)


def _sas_fused(backend: str, threads: int) -> Callable[[Workload], Runner]:
    def build(wl: Workload) -> Runner:
        _sas_backend(backend)
        out = wl.empty_outputs()

        def run() -> Outputs:
            if backend == "numba":
                _numba_threads(threads)
            return sas_fast.augment(wl.images, wl.masks, wl.params, seed=wl.seed, backend=backend, out=out)

        return run

    return build


def _geometry_call(wl: Workload, backend: str, out: Outputs) -> Outputs:
    p = wl.params
    return sas_fast.rescale_paste(
        wl.images, wl.masks, scale=p.scale, offset=p.offset, crop=p.crop, canvas=p.canvas, backend=backend, out=out,
        interpolation=p.interpolation,
    )


def _noise_call(wl: Workload, image: np.ndarray, mask: np.ndarray, backend: str, out: np.ndarray) -> np.ndarray:
    p = wl.params
    return sas_fast.noise_in_mask(
        image, mask, kind=list(p.kind), sigma=p.sigma, peak=p.peak, labels=p.labels, seed=wl.seed,
        sample_ids=p.sample_ids, backend=backend, out=out,
    )


def _sas_unfused(backend: str, threads: int, stage: str | None = None) -> Callable[[Workload], Runner]:
    """``rescale_paste`` then ``noise_in_mask`` (``stage`` = ``"geometry"`` or ``"noise"``: that call alone)."""

    def build(wl: Workload) -> Runner:
        _sas_backend(backend)
        out_image, out_mask = wl.empty_outputs()
        canvas = np.ones_like(out_image)
        if stage == "noise":  # the noise stage works on a pasted canvas made once, outside the timing
            _numba_threads(threads)
            _geometry_call(wl, backend, (canvas, out_mask))

        def run() -> Outputs:
            _numba_threads(threads)
            if stage == "geometry":
                return _geometry_call(wl, backend, (out_image, out_mask))
            if stage is None:
                _geometry_call(wl, backend, (canvas, out_mask))
            return _noise_call(wl, canvas, out_mask, backend, out_image), out_mask

        return run

    return build


# ----------------------------------------------------------------------------- OpenCV


def _opencv(threads: int, noise: bool = True) -> Callable[[Workload], Runner]:
    """The best OpenCV pipeline we could write (see the module's note in RESULTS.md).

    ``cv2.resize`` with ``dsize`` straight into a view of the reused canvas (INTER_LINEAR image, or
    INTER_AREA for an area workload; INTER_NEAREST_EXACT mask), only the border filled; noise only
    inside the mask's bounding box
    (``cv2.boundingRect``): speckle as ``cv2.multiply`` of the box by ``cv2.randn(1, sigma)``
    multipliers (saturating, round-half-even) kept by ``cv2.copyTo`` under the mask (faster than
    gathering the masked pixels: 0.09 vs 0.14 ms per W image); Poisson by NumPy's
    ``Generator.poisson`` on the gathered masked pixels only (OpenCV has no Poisson generator).
    OpenCV's own threads off (slower on per-image calls); images spread over a thread pool.
    """

    def build(wl: Workload) -> Runner:
        import cv2

        out_image, out_mask = wl.empty_outputs()
        dtype = wl.images.dtype
        cv_depth = {np.dtype(np.uint8): cv2.CV_8U, np.dtype(np.uint16): cv2.CV_16U, np.dtype(np.float32): cv2.CV_32F}
        rngs = np.random.default_rng(wl.seed).spawn(threads)
        multipliers = [np.empty((wl.canvas[0] * wl.canvas[1], 1), np.float32) for _ in range(threads)]
        lo, hi = wl.value_range
        geometry = [_thumb(wl, i) for i in range(wl.n)]
        interpolation = _cv_interpolation(wl)

        def add_noise(view: np.ndarray, mview: np.ndarray, i: int, t: int) -> None:
            x, y, w, h = cv2.boundingRect(mview)  # noise only the mask's bounding box
            box, mbox = view[y : y + h, x : x + w], mview[y : y + h, x : x + w]
            if wl.kind == "speckle":  # draws for the whole box (2 ns each), kept by a masked copy
                mult = multipliers[t][: h * w].reshape(h, w)
                cv2.randn(mult, 1.0, float(wl.params.sigma[i]))
                noisy = cv2.multiply(box, mult, dtype=cv_depth[dtype])
                if dtype == np.float32:
                    np.clip(noisy, lo, hi, out=noisy)
                cv2.copyTo(noisy, mbox, box)
            else:  # Poisson draws cost ~50 ns: gather the masked pixels, draw only for them
                sel = mbox != 0
                peak = float(wl.params.peak[i])
                counts = rngs[t].poisson((box[sel] - lo) * (peak / (hi - lo)))
                box[sel] = _to_dtype(np.minimum(lo + counts * ((hi - lo) / peak), hi), dtype)

        def work(indices: Sequence[int], t: int) -> None:
            cv2.setNumThreads(1)
            for i in indices:
                sy0, sx0, sh, sw, h, w, oy, ox = geometry[i]
                img, msk = out_image[i], out_mask[i]
                _zero_border(img, oy, ox, h, w)
                _zero_border(msk, oy, ox, h, w)
                view, mview = img[oy : oy + h, ox : ox + w], msk[oy : oy + h, ox : ox + w]
                cv2.resize(wl.images[i, sy0 : sy0 + sh, sx0 : sx0 + sw], (w, h), dst=view, interpolation=interpolation)
                cv2.resize(
                    wl.masks[i, sy0 : sy0 + sh, sx0 : sx0 + sw], (w, h), dst=mview, interpolation=cv2.INTER_NEAREST_EXACT
                )
                if noise:
                    add_noise(view, mview, i, t)

        return _per_image(wl, threads, work, (out_image, out_mask))

    return build


# ----------------------------------------------------------------------------- albumentations


def _albumentations_compose(
    height: int, width: int, noise: str, *, seed: int, crop: bool = False, area: bool = False
):  # fmt: skip
    """albumentations' closest pipeline to SAS: RandomScale(0.25-1, linear image (``area``: INTER_AREA)
    / nearest-exact mask) + PadIfNeeded(random position, black) [+ CenterCrop back to ``height`` x
    ``width``] + whole-image noise.

    noise: ``"speckle"``: MultiplicativeNoise with uniform multipliers of the variance of speckle
    sigma (1 +- sigma*sqrt(3)); ``"poisson"``: ShotNoise at 256 photons per unit (in its gamma-2.2
    linear space); ``"mixed"``: one of the two at random, half each (``SASConfig()``'s mix).
    """
    try:
        import albumentations as A
        import cv2
    except ImportError as exc:
        raise Unavailable(f"albumentations is not installed ({exc})") from None
    half_width = SIGMA * math.sqrt(3.0)
    speckle = A.MultiplicativeNoise(multiplier=(1 - half_width, 1 + half_width), elementwise=True, p=1.0)
    shot = A.ShotNoise(scale_range=(1 / PEAK, 1 / PEAK), p=1.0)
    noises = {"speckle": speckle, "poisson": shot}
    last = A.OneOf([speckle, shot], p=1.0) if noise == "mixed" else noises[noise]
    steps = [
        A.RandomScale(  # scale_limit is biased by 1
            scale_limit=(SCALE_RANGE[0] - 1, SCALE_RANGE[1] - 1),
            interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR, mask_interpolation=cv2.INTER_NEAREST_EXACT, p=1.0,
        ),
        A.PadIfNeeded(height, width, position="random", border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
    ]
    if crop:
        steps.append(A.CenterCrop(height, width, p=1.0))
    return A.Compose([*steps, last], seed=seed)


def _albumentations(threads: int) -> Callable[[Workload], Runner]:
    """RandomScale(0.25-1) + PadIfNeeded(random position, black) + noise on the whole image.

    Its closest ops: MultiplicativeNoise with uniform multipliers of the same variance as speckle
    sigma (1 +- sigma*sqrt(3)), ShotNoise at 256 photons per unit (in its gamma-2.2 linear space).
    One Compose per pool thread (each has its own random state).
    """

    def build(wl: Workload) -> Runner:
        try:
            import cv2
        except ImportError as exc:
            raise Unavailable(f"albumentations is not installed ({exc})") from None
        if wl.images.dtype == np.uint16:
            raise Unavailable("albumentations: MultiplicativeNoise/ShotNoise reject uint16 (OpenCV arithm_op type error)")
        ho, wo = wl.canvas
        area = wl.interpolation == "area"
        pipelines = [_albumentations_compose(ho, wo, wl.kind, seed=wl.seed + t, area=area) for t in range(threads)]
        out_image, out_mask = wl.empty_outputs()

        def work(indices: Sequence[int], t: int) -> None:
            cv2.setNumThreads(1)
            for i in indices:
                result = pipelines[t](image=wl.images[i], mask=wl.masks[i])
                out_image[i] = result["image"]
                out_mask[i] = result["mask"]

        return _per_image(wl, threads, work, (out_image, out_mask))

    return build


# ----------------------------------------------------------------------------- scikit-image


def _skimage(threads: int) -> Callable[[Workload], Runner]:
    """``resize`` (order 1 image, order 0 mask, no anti-aliasing) to the thumbnail size, paste,
    ``random_noise`` on the whole canvas, then ``np.where(mask, noisy, clean)``.

    ``random_noise`` takes the integer canvas, so its Poisson ``peak`` is 256 for 8-bit data
    (2**ceil(log2(#unique values))), as sas_fast's; for uint16 it would differ, so it runs speckle only there.
    """

    def build(wl: Workload) -> Runner:
        try:
            from skimage.transform import resize
            from skimage.util import random_noise
        except ImportError as exc:
            raise Unavailable(f"scikit-image is not installed ({exc})") from None
        if wl.kind == "poisson" and wl.images.dtype != np.uint8:
            raise Unavailable("scikit-image: random_noise(mode='poisson') picks its own peak; only uint8 matches 256")
        if wl.interpolation != "bilinear":
            raise Unavailable("scikit-image: resize has no area interpolation (anti_aliasing is a Gaussian pre-filter)")
        out_image, out_mask = wl.empty_outputs()
        dtype, scale = wl.images.dtype, _value_scale(wl)
        rngs = np.random.default_rng(wl.seed).spawn(threads)
        geometry = [_thumb(wl, i) for i in range(wl.n)]

        def work(indices: Sequence[int], t: int) -> None:
            for i in indices:
                sy0, sx0, sh, sw, h, w, oy, ox = geometry[i]
                crop = (slice(sy0, sy0 + sh), slice(sx0, sx0 + sw))
                thumb = resize(wl.images[i][crop], (h, w), order=1, mode="edge", anti_aliasing=False, preserve_range=True)
                labels = resize(wl.masks[i][crop], (h, w), order=0, mode="edge", anti_aliasing=False, preserve_range=True)
                img, msk = out_image[i], out_mask[i]
                img[...] = 0
                msk[...] = 0
                img[oy : oy + h, ox : ox + w] = _to_dtype(thumb, dtype)
                msk[oy : oy + h, ox : ox + w] = labels
                if wl.kind == "speckle":
                    noisy = random_noise(img, mode="speckle", var=float(wl.params.sigma[i]) ** 2, rng=rngs[t])
                else:
                    noisy = random_noise(img, mode="poisson", rng=rngs[t])
                img[...] = np.where(msk != 0, _to_dtype(noisy * scale, dtype), img)

        return _per_image(wl, threads, work, (out_image, out_mask))

    return build


# ----------------------------------------------------------------------------- ceiling


def _ceiling(threads: int) -> Callable[[Workload], Runner]:
    """Copy the input image and mask bytes into the outputs, split over ``threads``.

    With the canvas the size of the input this reads every input byte once and writes every
    output byte once: the bytes any implementation must move (a kernel that skips source rows
    at small scales may read less).
    """

    def build(wl: Workload) -> Runner:
        if wl.canvas != wl.images.shape[1:]:
            raise Unavailable("the copy ceiling needs the canvas the size of the input")
        out_image, out_mask = wl.empty_outputs()

        def work(indices: Sequence[int], t: int) -> None:
            part = slice(indices[0], indices[-1] + 1)
            np.copyto(out_image[part], wl.images[part])
            np.copyto(out_mask[part], wl.masks[part])

        pool = ThreadPoolExecutor(threads)
        bounds = np.linspace(0, wl.n, threads + 1).astype(int)
        parts = [range(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

        def run() -> Outputs:
            for future in [pool.submit(work, part, t) for t, part in enumerate(parts)]:
                future.result()
            return out_image, out_mask

        return run

    return build


# ----------------------------------------------------------------------------- the registry

_ALL = ALL_THREADS
CONTENDERS: list[Contender] = [
    Contender("fused", "sas_fast numba augment (fused)", _ALL, _sas_fused("numba", _ALL), "exact"),
    Contender("fused-1t", "sas_fast numba augment (fused)", 1, _sas_fused("numba", 1), "exact"),
    Contender(
        "unfused", "sas_fast numba rescale_paste + noise_in_mask", _ALL, _sas_unfused("numba", _ALL), "exact",
        note="two calls through an intermediate canvas",
    ),
    Contender(
        "reference", "sas_fast reference (backend='numpy')", 1, _sas_fused("numpy", 1), "exact", max_images=64,
        note="NumPy, single thread",
    ),
    Contender(
        "opencv", "OpenCV resize-into-view + in-mask noise", _ALL, _opencv(_ALL), "geometry",
        note="cv2.randn normals in the mask's box + masked copy / NumPy Poisson on masked pixels; pool over images",
    ),
    Contender("opencv-1t", "OpenCV resize-into-view + in-mask noise", 1, _opencv(1), "geometry"),
    Contender(
        "albumentations", "albumentations RandomScale + PadIfNeeded + noise", _ALL, _albumentations(_ALL), "own",
        max_images=64,
        note="noises the WHOLE image; uniform multiplicative (speckle) / gamma-space ShotNoise; own random geometry",
    ),
    Contender(
        "skimage", "scikit-image resize + random_noise + np.where", _ALL, _skimage(_ALL), "geometry", max_images=64,
        note="float64 noise on the whole canvas, kept inside the mask",
    ),
    Contender(
        "ceiling", "bandwidth ceiling: NumPy copy of in+out bytes", _ALL, _ceiling(_ALL), "copy", role="ceiling"
    ),
    Contender(
        "numba-geometry", "stage: sas_fast numba rescale_paste only", _ALL, _sas_unfused("numba", _ALL, "geometry"),
        "clean", role="stage",
    ),
    Contender(
        "numba-noise", "stage: sas_fast numba noise_in_mask only", _ALL, _sas_unfused("numba", _ALL, "noise"),
        "exact", role="stage", note="on a pasted canvas",
    ),
    Contender("opencv-geometry", "stage: OpenCV resize-into-view only", _ALL, _opencv(_ALL, noise=False), "clean", role="stage"),
]


def by_key(key: str) -> Contender:
    """The contender called ``key``."""
    for contender in CONTENDERS:
        if contender.key == key:
            return contender
    raise KeyError(f"no contender {key!r}; known: {', '.join(c.key for c in CONTENDERS)}")


# ----------------------------------------------------------------------------- per call (issue 10)

#: ``call(k)`` augments sample ``k % n`` of the workload: one ``(H, W)`` image and mask -> ``(image, mask)``.
Call = Callable[[int], Outputs]


@dataclass(frozen=True)
class PerCall:
    """One row of the per-call suite (one image and one mask per call, as a Dataset makes them).

    build: ``build(samples) -> call`` (``samples`` from ``workloads.make_samples``); role:
    ``"transform"`` (the SAS transform), ``"augment"`` (prebuilt parameters), ``"kernel"`` (the
    backend's fused kernel on prebuilt plans) or ``"row"`` (an outside baseline); backend: the
    sas_fast backend of a sas_fast row; compares, note: as :class:`Contender`.
    """

    key: str
    label: str
    build: Callable[[Workload], Call]
    compares: str
    role: str = "row"
    backend: str | None = None
    note: str = ""


def _host_backend(name: str):
    """The backend module ``name``, if it runs here on host arrays (the per-call rows time NumPy inputs)."""
    try:
        impl = sas_fast.backends.load(name)
    except BackendUnavailable as exc:
        raise Unavailable(str(exc)) from None
    if impl.DEVICE != "cpu":
        raise Unavailable(f"backend {name!r} computes on {impl.DEVICE} arrays; the per-call suite times NumPy inputs")
    return impl


def _call_sas(backend: str) -> Callable[[Workload], Call]:
    """``sas_fast.SAS(config, seed)(image=, mask=, sample_id=i)``: samples the parameters, allocates the outputs."""

    def build(wl: Workload) -> Call:
        _host_backend(backend)
        if wl.config is None:
            raise Unavailable("the SAS transform row needs the policy the workload was drawn from (make_samples)")
        return _per_sample_ids(wl, sas_fast.SAS(wl.config, seed=wl.seed, backend=backend))

    return build


def _per_sample_ids(wl: Workload, transform: Callable[..., dict]) -> Call:
    """Call ``k`` of a row: ``transform(image=, mask=, sample_id=)`` on sample ``k % n`` with its global id."""
    images, masks, n = wl.images, wl.masks, wl.n
    ids = [int(v) for v in wl.params.sample_ids]

    def call(k: int) -> Outputs:
        i = k % n
        result = transform(image=images[i], mask=masks[i], sample_id=ids[i])
        return result["image"], result["mask"]

    return call


def _call_augment(backend: str) -> Callable[[Workload], Call]:
    """``sas_fast.augment`` on one sample with its parameters sampled beforehand, ``out=`` buffers reused."""

    def build(wl: Workload) -> Call:
        _host_backend(backend)
        images, masks, n, seed = wl.images, wl.masks, wl.n, wl.seed
        params = [wl.params[i] for i in range(n)]
        out = (np.ones(wl.canvas, images.dtype), np.ones(wl.canvas, masks.dtype))

        def call(k: int) -> Outputs:
            i = k % n
            return sas_fast.augment(images[i], masks[i], params[i], seed=seed, backend=backend, out=out)

        return call

    return build


def _call_kernel(backend: str) -> Callable[[Workload], Call]:
    """The backend's compiled kernel alone: ``bind_augment(image4, mask3, geo, noise, out_image, out_mask)``
    (its launch records built beforehand too) where the backend has it, else its ``augment``, on plans made
    beforehand (``sas_fast.plan.make_geometry`` / ``make_noise``, as ``sas_fast.augment`` makes them)."""

    def build(wl: Workload) -> Call:
        from sas_fast.plan import make_geometry, make_noise

        impl = _host_backend(backend)
        (height, width), (ho, wo), dtype = wl.images.shape[1:], wl.canvas, wl.images.dtype
        plans = []
        for i in range(wl.n):
            p = wl.params[i]
            geo = make_geometry(
                (1, height, width, 1), dtype, scale=p.scale, offset=p.offset, crop=p.crop, canvas=p.canvas,
                mask_dtype=wl.masks.dtype, interpolation=p.interpolation,
            )
            noise = make_noise(
                1, dtype, kind=list(p.kind), sigma=p.sigma, peak=p.peak, labels=p.labels, seed=wl.seed,
                sids=p.sample_ids,
            )
            plans.append((wl.images[i][None, :, :, None], wl.masks[i][None], geo, noise))
        out_image, out_mask = np.ones((1, ho, wo, 1), dtype), np.ones((1, ho, wo), wl.masks.dtype)
        views = out_image[0, :, :, 0], out_mask[0]
        n = wl.n
        bind = getattr(impl, "bind_augment", None)
        if bind is not None:
            launches = [bind(*plan, out_image, out_mask) for plan in plans]

            def call(k: int) -> Outputs:
                launches[k % n]()
                return views

            return call

        def call(k: int) -> Outputs:
            image4, mask3, geo, noise = plans[k % n]
            impl.augment(image4, mask3, geo, noise, out_image, out_mask)
            return views

        return call

    return build


def _call_albumentations_adapter(wl: Workload) -> Call:
    """``A.Compose([sas_fast.integrations.albumentations.SAS(config, sas_seed=seed)])`` with
    ``sample_id=i`` in the data: what an albumentations user calls (the numba backend, ``"auto"``)."""
    try:
        import albumentations as A

        from sas_fast.integrations.albumentations import SAS as AlbumentationsSAS
    except ImportError as exc:
        raise Unavailable(f"albumentations is not installed ({exc})") from None
    if wl.config is None:
        raise Unavailable("the adapter row needs the policy the workload was drawn from (make_samples)")
    return _per_sample_ids(wl, A.Compose([AlbumentationsSAS(wl.config, sas_seed=wl.seed)]))


def _call_albumentations(noise: str) -> Callable[[Workload], Call]:
    """:func:`_albumentations_compose` with the crop back to the input size, one call per sample."""

    def build(wl: Workload) -> Call:
        if wl.images.dtype == np.uint16:
            raise Unavailable("albumentations: MultiplicativeNoise/ShotNoise reject uint16 (OpenCV arithm_op type error)")
        height, width = wl.images.shape[1:]
        pipeline = _albumentations_compose(height, width, noise, seed=wl.seed, crop=True)
        images, masks, n = wl.images, wl.masks, wl.n

        def call(k: int) -> Outputs:
            i = k % n
            result = pipeline(image=images[i], mask=masks[i])
            return np.ascontiguousarray(result["image"]), np.ascontiguousarray(result["mask"])

        return call

    return build


def _call_opencv() -> Callable[[Workload], Call]:
    """The OpenCV pipeline a user would write per image: ``cv2.resize`` (INTER_LINEAR image, INTER_AREA
    for area params; INTER_NEAREST_EXACT mask) straight into a view of a reused canvas, only the border filled,
    then the sample's noise (speckle, or Poisson as ``SASConfig()`` draws it for half the samples)
    drawn by NumPy for the masked pixels of the mask's bounding box only.  Scale, offset, kind and
    sigma are the workload's, drawn beforehand (as for the prebuilt-parameter augment row).
    """

    def build(wl: Workload) -> Call:
        import cv2

        images, masks, n, dtype = wl.images, wl.masks, wl.n, wl.images.dtype
        out_image, out_mask = np.ones(wl.canvas, dtype), np.ones(wl.canvas, masks.dtype)
        rng = np.random.default_rng(wl.seed)
        lo, hi = wl.value_range
        p = wl.params
        plans = [(_thumb(wl, i), str(p.kind[i]), float(p.sigma[i]), float(p.peak[i])) for i in range(n)]
        interpolation = _cv_interpolation(wl)

        def call(k: int) -> Outputs:
            i = k % n
            (sy0, sx0, sh, sw, h, w, oy, ox), kind, sigma, peak = plans[i]
            _zero_border(out_image, oy, ox, h, w)
            _zero_border(out_mask, oy, ox, h, w)
            view, mview = out_image[oy : oy + h, ox : ox + w], out_mask[oy : oy + h, ox : ox + w]
            cv2.resize(images[i, sy0 : sy0 + sh, sx0 : sx0 + sw], (w, h), dst=view, interpolation=interpolation)
            cv2.resize(masks[i, sy0 : sy0 + sh, sx0 : sx0 + sw], (w, h), dst=mview, interpolation=cv2.INTER_NEAREST_EXACT)
            x, y, bw, bh = cv2.boundingRect(mview)
            box, sel = view[y : y + bh, x : x + bw], mview[y : y + bh, x : x + bw] != 0
            values = box[sel].astype(np.float32)
            if kind == "speckle":
                noisy = lo + (values - lo) * (1 + sigma * rng.standard_normal(values.size, dtype=np.float32))
            elif kind == "gaussian":
                noisy = values + sigma * (hi - lo) * rng.standard_normal(values.size, dtype=np.float32)
            elif kind == "poisson":
                noisy = lo + rng.poisson((values - lo) * (peak / (hi - lo))) * ((hi - lo) / peak)
            else:
                return out_image, out_mask
            box[sel] = _to_dtype(np.clip(noisy, lo, hi), dtype)
            return out_image, out_mask

        return call

    return build


def _per_call_rows() -> list[PerCall]:
    """Three sas_fast rows per compiled backend of ``sas_fast.backends.BACKENDS``, then the baselines."""
    rows = []
    for name in BACKENDS:
        if name == "numpy":  # the reference: what the rows are checked against, not a row
            continue
        rows += [
            PerCall(
                f"sas-{name}", f"sas_fast SAS transform ({name})", _call_sas(name), "exact", "transform", name,
                note="SAS(SASConfig(), seed=0)(image=, mask=, sample_id=i): samples the params, allocates the outputs",
            ),
            PerCall(
                f"augment-{name}", f"sas_fast augment, prebuilt params ({name})", _call_augment(name), "exact",
                "augment", name, note="params sampled beforehand, out= buffers reused",
            ),
            PerCall(
                f"kernel-{name}", f"sas_fast bare kernel ({name})", _call_kernel(name), "exact", "kernel", name,
                note="the compiled kernel alone on prebuilt launch records (bind_augment; else the backend's augment() on prebuilt plans)",
            ),
        ]
    return rows + [
        PerCall(
            "sas-albumentations-adapter", "sas_fast's albumentations adapter in A.Compose", _call_albumentations_adapter,
            "exact", note="A.Compose([sas_fast.integrations.albumentations.SAS(config, sas_seed=0)]) with sample_id=i",
        ),
        PerCall(
            "albumentations", "albumentations RandomScale + PadIfNeeded + CenterCrop + MultiplicativeNoise",
            _call_albumentations("speckle"), "own",
            note="noises the WHOLE image, not the mask; uniform multiplicative noise for every sample; own geometry",
        ),
        PerCall(
            "albumentations-mixed", "albumentations, as above with OneOf(MultiplicativeNoise, ShotNoise)",
            _call_albumentations("mixed"), "own",
            note="SASConfig()'s half speckle / half Poisson mix, on the WHOLE image (ShotNoise in gamma space)",
        ),
        PerCall(
            "opencv", "OpenCV resize-into-view + NumPy noise on the masked pixels", _call_opencv(), "geometry",
            note="params drawn beforehand; speckle / Poisson per the sample's kind, drawn only for masked pixels",
        ),
    ]


#: The per-call suite's rows (issue 10).
PER_CALL: list[PerCall] = _per_call_rows()


@contextlib.contextmanager
def single_thread() -> Iterator[str]:
    """Numba, sas_fast and OpenCV limited to one thread inside (restored after); yields what was set."""
    said, restore = [], []
    try:
        import numba
    except ImportError:
        pass
    else:
        numba_before = numba.get_num_threads()
        numba.set_num_threads(1)
        restore.append(lambda: numba.set_num_threads(numba_before))
        said.append("numba.set_num_threads(1)")
    try:  # sas_fast's own thread rule, where this version has one
        threads = importlib.import_module("sas_fast.threads")
    except ImportError:
        threads = None
    if threads is not None and hasattr(threads, "set_num_threads"):
        threads.set_num_threads(1)
        restore.append(lambda: threads.set_num_threads(None))
        said.append("sas_fast.threads.set_num_threads(1)")
    try:
        import cv2
    except ImportError:
        pass
    else:
        cv2_before = cv2.getNumThreads()
        cv2.setNumThreads(1)
        restore.append(lambda: cv2.setNumThreads(cv2_before))
        said.append("cv2.setNumThreads(1)")
    try:
        yield ", ".join(said)
    finally:
        for undo in reversed(restore):
            undo()


# ----------------------------------------------------------------------------- DataLoader (issue 10)


@dataclass(frozen=True)
class LoaderContender:
    """A per-sample transform for a Dataset's ``__getitem__``: ``make(samples) -> transform`` with
    ``transform(image, mask, index) -> (image, mask)``.  deterministic: the output depends only on
    the index, so the DataLoader's worker count must not change the collated batches."""

    key: str
    label: str
    make: Callable[[Workload], Callable[[np.ndarray, np.ndarray, int], Outputs]]
    deterministic: bool
    note: str = ""


class _SASItem:
    """``sas_fast.SAS(config, seed)`` applied to item ``index`` with ``sample_id=index`` (picklable)."""

    def __init__(self, wl: Workload) -> None:
        if wl.config is None:
            raise Unavailable("the SAS transform needs the policy the workload was drawn from (make_samples)")
        self.transform = sas_fast.SAS(wl.config, seed=wl.seed)

    def __call__(self, image: np.ndarray, mask: np.ndarray, index: int) -> Outputs:
        result = self.transform(image=image, mask=mask, sample_id=index)
        return result["image"], result["mask"]


class _AlbumentationsItem:
    """The per-call albumentations pipeline (crop back to the input size, MultiplicativeNoise)."""

    def __init__(self, wl: Workload) -> None:
        height, width = wl.images.shape[1:]
        self.pipeline = _albumentations_compose(height, width, "speckle", seed=wl.seed, crop=True)

    def __call__(self, image: np.ndarray, mask: np.ndarray, index: int) -> Outputs:
        result = self.pipeline(image=image, mask=mask)
        return np.ascontiguousarray(result["image"]), np.ascontiguousarray(result["mask"])


class _CopyItem:
    """No augmentation: item ``index`` copied out (what every transform's output costs the DataLoader)."""

    def __init__(self, wl: Workload) -> None:
        pass

    def __call__(self, image: np.ndarray, mask: np.ndarray, index: int) -> Outputs:
        return image.copy(), mask.copy()


#: The DataLoader suite's contenders (issue 10).
LOADER: list[LoaderContender] = [
    LoaderContender(
        "sas_fast", "sas_fast SAS per sample", _SASItem, True,
        note="SAS(SASConfig(), seed=0)(image=, mask=, sample_id=index) in __getitem__",
    ),
    LoaderContender(
        "albumentations", "albumentations RandomScale + PadIfNeeded + CenterCrop + MultiplicativeNoise",
        _AlbumentationsItem, False, note="noises the WHOLE image, not the mask; own random state per worker",
    ),
    LoaderContender(
        "no-augmentation", "no augmentation (item copied)", _CopyItem, True,
        note="the DataLoader's own cost per sample (indexing, collate, worker IPC): a floor for every transform",
    ),
]


def loader_by_key(key: str) -> LoaderContender:
    """The DataLoader contender called ``key``."""
    for contender in LOADER:
        if contender.key == key:
            return contender
    raise KeyError(f"no DataLoader contender {key!r}; known: {', '.join(c.key for c in LOADER)}")


# ----------------------------------------------------------------------------- correctness


def reference_outputs(wl: Workload) -> tuple[Outputs, Outputs]:
    """``(noisy, clean)``: the reference ``augment`` and ``rescale_paste`` outputs of ``wl``."""
    noisy = _sas_fused("numpy", 1)(wl)()
    clean = _sas_unfused("numpy", 1, "geometry")(wl)()
    return noisy, clean


#: Nonzero pixels a row or column of the black fill may hold from whole-image noise (albumentations' ShotNoise
#: turns about one fill pixel in a million into a count); thumbnail rows hold >= 100 at the smallest scale.
_STRAY_PIXELS = 16


def check(contender: Contender, wl: Workload, got: Outputs, reference: tuple[Outputs, Outputs]) -> list[str]:
    """Problems with ``contender``'s outputs ``got`` for ``wl`` (empty when they pass its ``compares`` level).

    ``reference`` is :func:`reference_outputs` of the same workload.
    """
    from tests.tolerances import (
        BASELINE_GEOMETRY,
        NOISE_STRENGTH_RATIO,
        OPENCV_NEAREST_MISMATCH,
        POISSON_MISMATCH_COUNTS,
        POISSON_MISMATCH_FRACTION,
    )

    image, mask = got
    (ref_image, ref_mask), (clean_image, clean_mask) = reference
    problems = []
    if image.shape != ref_image.shape or image.dtype != ref_image.dtype:
        problems.append(f"image: shape/dtype {image.shape} {image.dtype}, expected {ref_image.shape} {ref_image.dtype}")
    if mask.shape != ref_mask.shape or mask.dtype != ref_mask.dtype:
        problems.append(f"mask: shape/dtype {mask.shape} {mask.dtype}, expected {ref_mask.shape} {ref_mask.dtype}")
    if problems:
        return problems
    kind = contender.compares
    wide = lambda a: a.astype(np.float64)  # noqa: E731  (differences without integer wrap-around)

    if kind == "copy":
        if not (np.array_equal(image, wl.images) and np.array_equal(mask, wl.masks)):
            problems.append("the copy differs from the input")
    elif kind == "exact":
        if not np.array_equal(mask, ref_mask):
            problems.append(f"mask: {int((mask != ref_mask).sum())} pixels differ from the reference")
        diff = np.abs(wide(image) - wide(ref_image))
        if wl.kind == "poisson":
            step = POISSON_MISMATCH_COUNTS * _value_scale(wl) / float(wl.params.peak.max())
            allowed = math.ceil(step) if image.dtype != np.float32 else step * (1 + 1e-6)
            selected = max(1, int((ref_mask != 0).sum()))
            if diff.max() > allowed or (diff > 0).sum() > POISSON_MISMATCH_FRACTION * selected:
                problems.append(f"image: {int((diff > 0).sum())} pixels differ (max {diff.max()}) from the reference")
        elif diff.max() > 0:
            problems.append(f"image: {int((diff > 0).sum())} pixels differ (max {diff.max()}) from the reference")
    elif kind in ("geometry", "clean"):
        mismatch = float((mask != ref_mask).mean())
        if mismatch > OPENCV_NEAREST_MISMATCH:
            problems.append(f"mask: {mismatch:.4f} of pixels differ from the reference (> {OPENCV_NEAREST_MISMATCH})")
        tolerance = BASELINE_GEOMETRY[image.dtype] * (1 if image.dtype != np.float32 else _value_scale(wl))
        outside = (mask == 0) & (ref_mask == 0) if kind == "geometry" else np.ones(mask.shape, bool)
        err = np.abs(wide(image) - wide(clean_image))[outside].max(initial=0)
        if err > tolerance:
            problems.append(f"image: geometry differs from the reference by {err} > {tolerance}")
        if kind == "geometry":
            inside = (mask != 0) & (ref_mask != 0)
            ours = np.std(wide(ref_image)[inside] - wide(clean_image)[inside])
            theirs = np.std(wide(image)[inside] - wide(clean_image)[inside])
            ratio = theirs / ours
            if not 1 / NOISE_STRENGTH_RATIO <= ratio <= NOISE_STRENGTH_RATIO:
                problems.append(f"noise: in-mask std {theirs:.4g} vs the reference's {ours:.4g}")
    elif kind == "own":
        height, width = wl.images.shape[1:3]
        # Small images: the smallest thumbnail side bounds the stray count a thumbnail row must beat.
        stray = min(_STRAY_PIXELS, max(0, int(SCALE_RANGE[0] * min(height, width)) // 2 - 1))
        for i in range(wl.n):
            # Rows/columns of the pasted thumbnail: ShotNoise also lights a few stray pixels of the fill.
            nonzero = image[i] != 0
            rows = np.flatnonzero(nonzero.sum(axis=1) > stray)
            cols = np.flatnonzero(nonzero.sum(axis=0) > stray)
            if not rows.size:
                problems.append(f"sample {i}: black image")
                continue
            h, w = rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0]
            scale = h / height
            if not (SCALE_RANGE[0] * height - 1 <= h <= SCALE_RANGE[1] * height and abs(w - width * scale) <= 2):
                problems.append(f"sample {i}: the nonzero pixels span {h} x {w}, not the input rescaled in {SCALE_RANGE}")
            outside = mask[i].copy()
            outside[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = 0
            if outside.any() or not set(np.unique(mask[i])) <= set(np.unique(wl.masks[i])):
                problems.append(f"sample {i}: mask labels outside the pasted rectangle or unknown")
    else:
        problems.append(f"unknown compares level {kind!r}")
    return problems

