"""``sas-fast demo``: SAS on the bundled ultrasound samples, a picture of the result, and its speed.

Picks the fastest backend here (CuPy on a GPU, else Numba, else NumPy), augments every sample
``copies`` times (copy ``k`` of sample ``i`` has sample id ``i * copies + k``, as in
``sas-fast augment``), writes a grid (one row per sample: original, then the augmented copies, mask
contours drawn in colour, each copy captioned with its scale and noise) and reports the speed:
the first call (backend loading, JIT compilation or its cache, kernel loading) separately, then the median of
repeated runs as ms per image and MPix/s of output.  A second picture shows one sample shrunk to a
quarter both ways, bilinear (the default) and area (SPEC §2b), zoomed back so the pixels show.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from .api import rescale_paste
from .backends import available_backends
from .folder.job import backend_name
from .geometry import thumbnail_sides
from .transform import SAS

__all__ = ["DemoResult", "best_backend", "render_grid", "render_interpolations", "run_demo"]

GRID_NAME = "sas_demo.png"
COMPARISON_NAME = "sas_interpolation.png"
#: The interpolation picture's thumbnail scale (it is zoomed back by the inverse).
COMPARISON_SCALE = 0.25
#: BGR contour colours for the labels present, in increasing order (cycled): green, red, blue, yellow, magenta.
_COLOURS = [(0, 255, 0), (0, 0, 255), (255, 128, 0), (0, 255, 255), (255, 0, 255)]
_MAX_ROWS = 8  # rows drawn in the grid; every sample is still augmented and timed


@dataclass
class DemoResult:
    """What the demo did: the grid it wrote, the backend, and the timings (milliseconds)."""

    grid: Path
    comparison: Path  # the bilinear-vs-area picture
    backend: str
    images: int
    first_call_ms: float
    ms_per_image: float
    mpix_per_s: float


def best_backend() -> str:
    """The fastest backend usable here: ``"cupy"``, then ``"numba"``, then ``"numpy"``."""
    usable = available_backends()
    return next(name for name in ("cupy", "numba", "numpy") if name in usable)


def _to_bgr8(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint16:
        image = (image // 257).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.clip(image * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image.copy()


def _cell(image: np.ndarray, mask: np.ndarray, caption: str, colours: dict[int, tuple[int, int, int]]) -> np.ndarray:
    """The image in colour with each label's outline drawn in its colour, under a caption strip."""
    bgr = _to_bgr8(image)
    for label in np.unique(mask):
        if label != 0:
            contours, _ = cv2.findContours((mask == label).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(bgr, contours, -1, colours[int(label)], 1)
    strip = np.zeros((18, bgr.shape[1], 3), dtype=np.uint8)
    cv2.putText(strip, caption, (3, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.vstack([strip, bgr])


def render_grid(
    images: np.ndarray, masks: np.ndarray, out_images: np.ndarray, out_masks: np.ndarray, params: Any, copies: int
) -> np.ndarray:
    """A BGR uint8 picture: row ``i`` = sample ``i``, then its ``copies`` augmented versions."""
    labels = [int(v) for v in np.unique(masks) if v != 0]
    colours = {label: _COLOURS[i % len(_COLOURS)] for i, label in enumerate(labels)}
    rows = []
    for i in range(min(len(images), _MAX_ROWS)):
        cells = [_cell(images[i], masks[i], f"#{i} original", colours)]
        for k in range(copies):
            j = i * copies + k
            kind = str(params.kind[j])
            noise = {"none": "no noise", "poisson": f"poisson {params.peak[j]:.0f}"}.get(kind, f"{kind} {params.sigma[j]:.2f}")
            cells.append(_cell(out_images[j], out_masks[j], f"x{params.scale[j]:.2f} {noise}", colours))
        rows.append(np.hstack([np.pad(c, ((2, 2), (2, 2), (0, 0))) for c in cells]))
    return np.vstack(rows)


def render_interpolations(
    image: np.ndarray, mask: np.ndarray, scale: float = COMPARISON_SCALE, backend: str = "auto"
) -> tuple[np.ndarray, dict[str, float]]:
    """One sample shrunk by ``scale`` with each image interpolation, side by side with the original.

    Returns a BGR uint8 picture (the original, then the bilinear and the area thumbnails zoomed back
    to the original size, nearest, so their pixels show; mask outlines drawn) and the standard
    deviation of the pixels inside the lesion in each (grey levels): bilinear samples the speckle
    and keeps its grain, area averages it (SPEC §2b).
    """
    height, width = image.shape[:2]
    thumb_size = tuple(int(v) for v in thumbnail_sides((height, width), scale))
    labels = [int(v) for v in np.unique(mask) if v != 0]
    colours = {label: _COLOURS[i % len(_COLOURS)] for i, label in enumerate(labels)}
    spread = {"original": float(image[mask != 0].std()) if (mask != 0).any() else 0.0}
    cells = [_cell(image, mask, f"original: lesion sd {spread['original']:.1f}", colours)]
    for interpolation in ("bilinear", "area"):
        thumb, thumb_mask = rescale_paste(image, mask, scale=scale, offset=(0, 0), canvas=thumb_size, backend=backend,
                                          interpolation=interpolation)  # fmt: skip
        inside = thumb[thumb_mask != 0]
        spread[interpolation] = float(inside.std()) if inside.size else 0.0
        zoom = [cv2.resize(a, (width, height), interpolation=cv2.INTER_NEAREST) for a in (thumb, thumb_mask)]
        caption = f"{interpolation} x{scale:g}: lesion sd {spread[interpolation]:.1f}"
        cells.append(_cell(zoom[0], zoom[1], caption, colours))
    return np.hstack([np.pad(c, ((2, 2), (2, 2), (0, 0))) for c in cells]), spread


def _timed(run: Any, sync: Any) -> float:
    start = time.perf_counter()
    run()
    sync()
    return time.perf_counter() - start


def run_demo(
    out_dir: str | Path = "sas_demo",
    *,
    limit: int | None = None,
    copies: int = 3,
    seed: int = 0,
    backend: str = "auto",
    samples: tuple[np.ndarray, np.ndarray] | None = None,
    stream: TextIO | None = sys.stdout,
) -> DemoResult:
    """Run the demo and write ``out_dir/sas_demo.png``; reports to ``stream`` (None: silent).

    ``samples`` ``(images (N, H, W[, C]), masks (N, H, W))`` replaces the bundled samples
    (``sas_fast.data.load_samples``); ``limit`` keeps the first ``limit`` of them.
    """
    if samples is None:
        from .data import load_samples

        images, masks, _ = load_samples()
    else:
        images, masks = samples
    images, masks = images[:limit], masks[:limit]
    n = len(images) * copies
    batch_images = np.repeat(images, copies, axis=0)
    batch_masks = np.repeat(masks, copies, axis=0)
    ids = np.arange(n)
    start = time.perf_counter()  # the first call includes loading the backend: imports, JIT compilation or its cache
    name = best_backend() if backend == "auto" else backend_name(backend)
    sync: Any = lambda: None  # noqa: E731 - CPU backends return finished results
    if name == "cupy":
        import cupy

        batch_images, batch_masks = cupy.asarray(batch_images), cupy.asarray(batch_masks)
        sync = cupy.cuda.Device().synchronize
    sas = SAS(seed=seed, backend=name)
    sas.batch(batch_images[:1], batch_masks[:1], ids[:1])
    sync()
    first = time.perf_counter() - start

    def run() -> dict[str, Any]:
        return sas.batch(batch_images, batch_masks, ids, return_params=True)

    times = [_timed(run, sync)]
    while len(times) < 5 or (sum(times) < 0.5 and len(times) < 50):
        times.append(_timed(run, sync))
    seconds = float(np.median(times))
    result = run()
    out_images, out_masks, params = result["image"], result["mask"], result["params"]
    if name == "cupy":
        out_images, out_masks = cupy.asnumpy(out_images), cupy.asnumpy(out_masks)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    grid = out / GRID_NAME
    if not cv2.imwrite(str(grid), render_grid(images, masks, out_images, out_masks, params, copies)):
        raise OSError(f"could not write {grid}")
    shown = int(np.argmax((masks != 0).sum(axis=(1, 2))))  # the sample with the largest lesion
    picture, spread = render_interpolations(images[shown], masks[shown], backend=name)
    comparison = out / COMPARISON_NAME
    if not cv2.imwrite(str(comparison), picture):
        raise OSError(f"could not write {comparison}")
    height, width = images.shape[1:3]
    demo = DemoResult(
        grid=grid, comparison=comparison, backend=name, images=n, first_call_ms=1e3 * first,
        ms_per_image=1e3 * seconds / n, mpix_per_s=n * height * width / seconds / 1e6,
    )
    if stream is not None:
        kinds = Counter(str(k) for k in params.kind)
        print(
            f"sas-fast demo: backend {name!r} (usable here: {', '.join(available_backends())})\n"
            f"  {len(images)} samples of {height}x{width} {images.dtype}, {copies} copies each = {n} augmented images "
            f"(seed {seed})\n"
            f"  scales {params.scale.min():.2f}-{params.scale.max():.2f}; noise "
            + ", ".join(f"{k} x{c}" for k, c in sorted(kinds.items()))
            + f"\n  first call {demo.first_call_ms:.0f} ms (backend loading + JIT compilation or its cache; not in the speed below)\n"
            f"  speed: {demo.ms_per_image:.3f} ms per image, {demo.mpix_per_s:.0f} MPix/s "
            f"(median of {len(times)} runs of the whole batch, parameter sampling included)\n"
            f"  grid: {grid} (the first {min(len(images), _MAX_ROWS)} samples)\n"
            f"  interpolation: {comparison} (sample #{shown} at x{COMPARISON_SCALE:g}, zoomed back; standard deviation "
            f"in the lesion {spread['original']:.1f} grey levels, bilinear {spread['bilinear']:.1f}, area "
            f"{spread['area']:.1f})",
            file=stream,
        )
    return demo
