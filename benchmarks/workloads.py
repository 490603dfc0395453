"""The benchmark workloads: deterministic batches of images, masks and SAS parameters.

Workload W (issue 3): 256 grey images of 512 x 512 uint8 with pixels uniform over the full range,
one filled ellipse per mask covering 5-20 % of the image, per-image scale U(0.25, 1), random
placement inside the canvas, speckle noise with sigma 0.1 inside the pasted mask.  Variants change
one thing each: Poisson noise (peak 256), uint16 or float32 pixels (float32 in [0, 1)),
1024 x 1024 images (64 of them: the same bytes per batch as W), or area interpolation (W-area:
SPEC §2b, the outside resizers then use their INTER_AREA).  Parameters come from
:class:`sas_fast.SASConfig`, so every contender applies the same per-sample scale and offset where
it can take them.

The per-call and DataLoader suites (issue 10) use :func:`make_samples`: ``n`` single images of one
size with the same ellipse masks and the parameters ``SASConfig()`` (the default policy: half
speckle, half Poisson) draws for sample ids ``0..n-1`` under seed 0, i.e. exactly what
``sas_fast.SAS(SASConfig(), seed=0)(image=..., mask=..., sample_id=i)`` applies to sample ``i``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sas_fast import SASConfig, SASParams

__all__ = [
    "PER_CALL_SIZES",
    "VARIANTS",
    "Variant",
    "Workload",
    "ellipse_masks",
    "make_samples",
    "make_workload",
]


@dataclass(frozen=True)
class Variant:
    """What a workload is made of: ``n`` images of ``size`` x ``size`` ``dtype`` with ``kind`` noise,
    resampled with ``interpolation`` (SPEC §2b)."""

    dtype: str
    size: int
    n: int
    kind: str  # "speckle" or "poisson"
    note: str
    interpolation: str = "bilinear"


#: name -> variant.  ``quick`` runs divide ``n`` by :data:`QUICK_DIVISOR`.
VARIANTS: dict[str, Variant] = {
    "W": Variant("uint8", 512, 256, "speckle", "256 x 512^2 uint8, speckle sigma 0.1"),
    "poisson": Variant("uint8", 512, 256, "poisson", "256 x 512^2 uint8, Poisson peak 256"),
    "uint16": Variant("uint16", 512, 256, "speckle", "256 x 512^2 uint16, speckle sigma 0.1"),
    "float32": Variant("float32", 512, 256, "speckle", "256 x 512^2 float32 in [0, 1), speckle sigma 0.1"),
    "1024": Variant("uint8", 1024, 64, "speckle", "64 x 1024^2 uint8 (same bytes as W), speckle sigma 0.1"),
    "W-area": Variant(
        "uint8", 512, 256, "speckle", "W with interpolation='area' (OpenCV rows: INTER_AREA)", interpolation="area"
    ),
}
QUICK_DIVISOR = 8
SCALE_RANGE = (0.25, 1.0)
SIGMA = 0.1
PEAK = 256.0

#: Per-call suite: (side, dtype) of the one image per call.
PER_CALL_SIZES: tuple[tuple[int, str], ...] = (
    (32, "uint8"), (256, "uint8"), (512, "uint8"), (1024, "uint8"), (512, "float32"),
)
#: The run seed of the per-call and DataLoader suites (``SAS(SASConfig(), seed=SAMPLES_SEED)``).
SAMPLES_SEED = 0


@dataclass(frozen=True)
class Workload:
    """One batch: ``images`` (N, H, W), ``masks`` (N, H, W) uint8 and the SAS ``params`` to apply."""

    name: str
    images: np.ndarray
    masks: np.ndarray
    params: SASParams
    kind: str  # "speckle", "poisson" or "mixed" (the per-sample kinds are in params.kind)
    seed: int
    config: SASConfig | None = None  # the policy params were drawn from, when a contender draws them itself

    @property
    def n(self) -> int:
        return self.images.shape[0]

    @property
    def canvas(self) -> tuple[int, int]:
        return self.params.canvas

    @property
    def interpolation(self) -> str:
        """The image interpolation of every sample (SPEC §2b; the workloads use one per batch)."""
        names = {str(v) for v in self.params.interpolation}
        if len(names) != 1:
            raise ValueError(f"the workload mixes interpolations {sorted(names)}; the baselines resize a batch one way")
        return names.pop()

    @property
    def value_range(self) -> tuple[float, float]:
        """``(lo, hi)`` of SPEC §1 for the image dtype (float32 images are in [0, 1])."""
        if self.images.dtype == np.float32:
            return 0.0, 1.0
        return 0.0, float(np.iinfo(self.images.dtype).max)

    def output_pixels(self) -> int:
        """Canvas pixels produced per batch (the unit of MPix/s)."""
        return self.n * self.canvas[0] * self.canvas[1]

    def bytes_moved(self) -> int:
        """Bytes that must move per batch: image and mask read once, outputs written once."""
        ho, wo = self.canvas
        inputs = self.images.nbytes + self.masks.nbytes
        outputs = self.n * ho * wo * (self.images.itemsize + self.masks.itemsize)
        return inputs + outputs

    def head(self, k: int) -> Workload:
        """The first ``k`` samples (same ids, so the same outputs as in the whole batch)."""
        k = min(k, self.n)
        return Workload(
            self.name, self.images[:k], self.masks[:k], self.params[:k], self.kind, self.seed, self.config
        )

    def select(self, indices) -> Workload:
        """The samples at ``indices`` (same ids, so the same outputs as in the whole batch)."""
        idx = np.asarray(list(indices), dtype=np.int64)
        params = self.params[idx]
        return Workload(
            self.name, self.images[idx], self.masks[idx], params, _kind_of(params), self.seed, self.config
        )

    def empty_outputs(self) -> tuple[np.ndarray, np.ndarray]:
        """Output buffers ``(image, mask)`` of the canvas size, pages already touched."""
        ho, wo = self.canvas
        return np.ones((self.n, ho, wo), self.images.dtype), np.ones((self.n, ho, wo), self.masks.dtype)


def _kind_of(params: SASParams) -> str:
    kinds = set(str(k) for k in params.kind)
    return kinds.pop() if len(kinds) == 1 else "mixed"


def ellipse_masks(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    """One random filled ellipse (label 1) per sample covering 5-20 % of the image, uint8 (N, H, W).

    The one generator of synthetic lesions (``tests/conftest.py::ellipse_masks`` wraps it),
    evaluated on open grids so that a 256-image batch takes well under a second.
    """
    yy, xx = np.ogrid[0:h, 0:w]
    masks = np.zeros((n, h, w), dtype=np.uint8)
    for i in range(n):
        area = rng.uniform(0.05, 0.20) * h * w
        aspect = rng.uniform(0.6, 1.6)
        ry = np.sqrt(area / np.pi * aspect)
        rx = area / np.pi / ry
        cy, cx = rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w
        masks[i] = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return masks


def _images(rng: np.random.Generator, n: int, size: int, dtype: np.dtype) -> np.ndarray:
    """Pixels uniform over the dtype's range: never zeros, no compressible structure."""
    if dtype == np.float32:
        return rng.random((n, size, size), dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, size=(n, size, size), endpoint=True, dtype=dtype)


def make_workload(name: str, *, n: int | None = None, quick: bool = False, seed: int = 20261127) -> Workload:
    """The workload ``name`` of :data:`VARIANTS` (``n`` images if given; fewer when ``quick``)."""
    variant = VARIANTS[name]
    count = n if n is not None else max(2, variant.n // QUICK_DIVISOR) if quick else variant.n
    rng = np.random.default_rng(seed)
    images = _images(rng, count, variant.size, np.dtype(variant.dtype))
    masks = ellipse_masks(rng, count, variant.size, variant.size)
    config = SASConfig(
        scale_range=SCALE_RANGE, noise={variant.kind: 1.0}, sigma_range=(SIGMA, SIGMA), peak_range=(PEAK, PEAK),
        interpolation=variant.interpolation,
    )
    params = config.sample(count, seed=seed, masks=masks)
    return Workload(name, images, masks, params, variant.kind, seed)


def make_samples(size: int, dtype: str = "uint8", *, n: int, seed: int = 20261127) -> Workload:
    """``n`` images of ``size`` x ``size`` ``dtype`` (uniform pixels, one ellipse per mask) with the
    parameters the default policy ``SASConfig()`` draws for ids ``0..n-1`` under :data:`SAMPLES_SEED`.

    ``seed`` fixes the pixels and masks; the workload's ``config`` and ``seed`` are what a
    ``sas_fast.SAS`` transform must be built with to apply ``params``.
    """
    rng = np.random.default_rng(seed)
    images = _images(rng, n, size, np.dtype(dtype))
    masks = ellipse_masks(rng, n, size, size)
    config = SASConfig()
    params = config.sample(n, seed=SAMPLES_SEED, masks=masks)
    return Workload(f"{size}^2 {dtype}", images, masks, params, _kind_of(params), SAMPLES_SEED, config)
