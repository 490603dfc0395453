"""Generate ``sas_fast/data/samples.npz``: simulated B-mode ultrasound images with exact lesion masks.

Dev-only tool (needs ``pip install pymust``; PyMUST is LGPL-3.0 and is neither imported by the
package nor redistributed, only its output is shipped). Each image is a seeded PyMUST simulation:

* probe: PyMUST's ``L11-5v`` linear array (128 elements, 7.6 MHz), 2-D simulation (no elevation);
* medium: scatterers with Rayleigh-distributed reflection coefficients (``genscat``) filling a
  3 x 3 cm field (plus a 1 mm margin); inside each lesion the coefficients are scaled by the lesion
  gain (hypoechoic) or the scatterers removed (anechoic, gain 0);
* acquisition: three plane waves (-10, 0, +10 degrees, Tukey-apodised transmit, ``simus``), I/Q
  demodulation (``rf2iq``), delay-and-sum with the directivity-limited f-number (``dasmtx``) onto a
  256 x 256 pixel grid, coherent compounding, depth gain (``tgc``), envelope and log compression
  to uint8 over 50 dB, with the median background speckle at grey level ~112 (BLACK_DB below it is
  0, so anechoic lesions look black);
* mask: the same lesion ellipses evaluated at the same pixel centres (1 = lesion, 0 = background).

Lesions are ellipses of equivalent diameter 2*sqrt(a*b) drawn from SMALL_MM or LARGE_MM; the layout
(one small, one large, large + small, two small) cycles with the image index.

Reproducible: image ``i`` depends only on ``seed = BASE_SEED + i`` (NumPy ``default_rng`` for the
lesions, and ``np.random.seed`` because PyMUST draws from NumPy's global state). BLAS is limited to
one thread so summation order cannot depend on the machine's core count.

Usage::

    python scripts/make_samples.py                       # 24 images, 2 workers -> sas_fast/data/samples.npz
    python scripts/make_samples.py --count 4 --out /tmp/s.npz --sheet /tmp/sheet.png
"""

from __future__ import annotations

import os

# Must precede the NumPy import: one BLAS thread per process keeps results bit-identical everywhere.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import copy
import ctypes
import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PROBE = "L11-5v"
N_PIX = 256                       # output image is N_PIX x N_PIX
FIELD_MM = 30.0                   # square field of view (width = height)
TOP_MM = 5.0                      # depth of the first image row below the probe face
SCATTER_MARGIN_MM = 1.0           # scatterers extend this far beyond the field (no edge fall-off)
ANGLES_DEG = (-10.0, 0.0, 10.0)   # compounded plane-wave tilts
TX_TUKEY = 0.5                    # transmit apodisation taper: weaker edge waves
DYNAMIC_RANGE_DB = 50.0           # grey 0..255 spans this many dB
BLACK_DB = 22.0                   # grey 0 lies this far below the median envelope
BASE_SEED = 5_000                 # image i uses seed BASE_SEED + i
DEFAULT_COUNT = 24

SMALL_MM = (2.5, 4.5)             # equivalent-diameter ranges of the two lesion classes
LARGE_MM = (6.0, 12.0)
LAYOUTS = (("small",), ("large",), ("large", "small"), ("small", "small"))
ASPECT = (0.6, 1.0)               # minor/major axis ratio
LESION_EDGE_MM = 1.0              # minimal clearance lesion-image border and lesion-lesion
NEAR_FIELD_MM = 3.0               # extra clearance below the image top (plane-wave near field)
ANECHOIC_P = 0.3                  # probability that a lesion is anechoic (gain 0)
HYPO_DB = (-24.0, -10.0)          # scatterer-amplitude contrast of hypoechoic lesions
MAX_LESIONS = 2

PIXEL_MM = FIELD_MM / N_PIX
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "sas_fast" / "data" / "samples.npz"


@dataclass(frozen=True)
class Lesion:
    """Elliptical lesion; lengths in mm in probe coordinates (x lateral, z depth), angle in rad."""

    cx: float
    cz: float
    a: float       # semi-major axis
    b: float       # semi-minor axis
    angle: float   # rotation of the major axis from the x axis
    gain: float    # amplitude factor applied to the scatterers inside (0 = anechoic)

    @property
    def diameter(self) -> float:
        """Equivalent diameter (mm): the circle of the same area."""
        return 2.0 * float(np.sqrt(self.a * self.b))

    @property
    def radius(self) -> float:
        """Bounding radius (mm)."""
        return self.a

    def contains(self, x: np.ndarray, z: np.ndarray) -> np.ndarray:
        """Boolean array: which points (mm) lie inside or on the ellipse."""
        c, s = np.cos(self.angle), np.sin(self.angle)
        u = (x - self.cx) * c + (z - self.cz) * s
        v = -(x - self.cx) * s + (z - self.cz) * c
        return (u / self.a) ** 2 + (v / self.b) ** 2 <= 1.0


def pixel_centres_mm() -> tuple[np.ndarray, np.ndarray]:
    """(x, z) of the pixel centres, each (N_PIX, N_PIX) in mm; row index = depth."""
    centres = (np.arange(N_PIX) + 0.5) * PIXEL_MM
    return np.meshgrid(centres - FIELD_MM / 2, centres + TOP_MM)


def draw_lesions(rng: np.random.Generator, layout: tuple[str, ...]) -> list[Lesion]:
    """Non-overlapping lesions of the given size classes, fully inside the field."""
    lesions: list[Lesion] = []
    for size_class in layout:
        lo, hi = SMALL_MM if size_class == "small" else LARGE_MM
        diameter = rng.uniform(lo, hi)
        aspect = rng.uniform(*ASPECT)
        a, b = diameter / 2 / np.sqrt(aspect), diameter / 2 * np.sqrt(aspect)
        angle = rng.uniform(0.0, np.pi)
        gain = 0.0 if rng.random() < ANECHOIC_P else 10 ** (rng.uniform(*HYPO_DB) / 20)
        x_lim = FIELD_MM / 2 - a - LESION_EDGE_MM
        z_lo, z_hi = TOP_MM + NEAR_FIELD_MM + a, TOP_MM + FIELD_MM - LESION_EDGE_MM - a
        while True:  # rejection sampling of the centre; the field leaves ample room for two lesions
            cx, cz = rng.uniform(-x_lim, x_lim), rng.uniform(z_lo, z_hi)
            if all(np.hypot(cx - o.cx, cz - o.cz) > a + o.radius + LESION_EDGE_MM for o in lesions):
                break
        lesions.append(Lesion(float(cx), float(cz), float(a), float(b), float(angle), float(gain)))
    return lesions


def lesion_mask(lesions: list[Lesion]) -> np.ndarray:
    """uint8 (N_PIX, N_PIX) mask: 1 where a pixel centre lies inside any lesion."""
    x, z = pixel_centres_mm()
    inside = np.zeros((N_PIX, N_PIX), dtype=bool)
    for lesion in lesions:
        inside |= lesion.contains(x, z)
    return inside.astype(np.uint8)


_DAS_CACHE: dict[tuple[float, int], object] = {}


def _das_matrix(pymust, param, delays: np.ndarray, angle: float, n_samples: int):
    """Delay-and-sum matrix for one tilt and RF length (depends on nothing else, so cached).

    dasmtx writes the f-number it picks into its param: it gets a copy so every call sees None.
    """
    key = (angle, n_samples)
    if key not in _DAS_CACHE:
        x, z = pixel_centres_mm()
        _DAS_CACHE[key] = pymust.dasmtx(1j * np.array([n_samples, param.Nelements]),
                                        x * 1e-3, z * 1e-3, delays, copy.deepcopy(param))
    return _DAS_CACHE[key]


def simulate(index: int) -> tuple[np.ndarray, np.ndarray, list[Lesion], int]:
    """Simulate image ``index``: (image uint8, mask uint8, lesions, seed). Deterministic in index."""
    import pymust  # dev-only dependency
    import scipy.signal

    seed = BASE_SEED + index
    rng = np.random.default_rng(seed)
    np.random.seed(seed)  # genscat, rf2iq and tgc draw from NumPy's global state
    lesions = draw_lesions(rng, LAYOUTS[index % len(LAYOUTS)])

    param = pymust.getparam(PROBE)
    param.fs = 4 * param.fc
    param.fnumber = None           # dasmtx picks the f-number from the element directivity
    param.TXapodization = scipy.signal.windows.tukey(param.Nelements, TX_TUKEY)
    options = pymust.utils.Options()
    options.ElementSplitting = 1   # one segment per element: faster; cyst contrast within 1 dB
    options.ParPool = False

    side_m = (FIELD_MM + 2 * SCATTER_MARGIN_MM) * 1e-3
    xs, _, zs, rc = pymust.genscat([side_m, side_m], param)   # Rayleigh amplitudes, x centred
    zs = zs + (TOP_MM - SCATTER_MARGIN_MM) * 1e-3
    for lesion in lesions:
        rc[lesion.contains(xs * 1e3, zs * 1e3)] *= lesion.gain
    keep = rc > 0  # anechoic lesions: no scatterers at all (and less to simulate)
    xs, zs, rc = xs[keep], zs[keep], rc[keep]

    compound = np.zeros((N_PIX, N_PIX), dtype=np.complex128)
    for angle in ANGLES_DEG:
        delays = pymust.txdelay(param, np.deg2rad(angle))
        rf, _ = pymust.simus(xs, zs, rc, delays, copy.deepcopy(param), options)
        iq = pymust.rf2iq(rf, param)
        das = _das_matrix(pymust, param, delays, angle, iq.shape[0])
        compound += (das @ iq.flatten(order="F")).reshape((N_PIX, N_PIX), order="F")
    compound, _ = pymust.tgc(compound)
    return log_compress(np.abs(compound)), lesion_mask(lesions), lesions, seed


def log_compress(envelope: np.ndarray) -> np.ndarray:
    """uint8 B-mode: dB relative to the median envelope, BLACK_DB below it -> 0, DYNAMIC_RANGE_DB span."""
    db = 20 * np.log10(np.maximum(envelope, 1e-30) / np.median(envelope))
    return np.clip(np.round((db + BLACK_DB) * (255 / DYNAMIC_RANGE_DB)), 0, 255).astype(np.uint8)


def _reuse_heap() -> None:
    """Let glibc keep freed large arrays in the heap (speed only, results unchanged).

    PyMUST's pfield allocates a ~20 MB temporary per frequency sample; by default each is mmap'ed
    and returned to the OS, and the page faults cost about a third of the run time.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 1 << 30)
    libc.mallopt(m_trim_threshold, 1 << 30)


def _timed(index: int):
    start = time.perf_counter()
    return index, simulate(index), time.perf_counter() - start


def build(count: int, workers: int) -> dict[str, np.ndarray]:
    """Simulate ``count`` images (in ``workers`` processes) and pack them as the npz arrays."""
    images = np.zeros((count, N_PIX, N_PIX), dtype=np.uint8)
    masks = np.zeros_like(images)
    ellipses = np.full((count, MAX_LESIONS, 6), np.nan)   # cx, cz, a, b, angle, gain per lesion
    seeds = np.zeros(count, dtype=np.int64)
    start = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for index, (image, mask, lesions, seed), seconds in pool.imap_unordered(_timed, range(count)):
            images[index], masks[index], seeds[index] = image, mask, seed
            for k, l in enumerate(lesions):
                ellipses[index, k] = (l.cx, l.cz, l.a, l.b, l.angle, l.gain)
            print(f"image {index:2d} seed {seed} lesions "
                  f"{[round(l.diameter, 2) for l in lesions]} mm: {seconds:.1f} s "
                  f"(elapsed {time.perf_counter() - start:.0f} s)", flush=True)
    diameters = 2 * np.sqrt(ellipses[..., 2] * ellipses[..., 3])
    return {
        "images": images,
        "masks": masks,
        "lesion_diameter_mm": diameters,                 # (N, MAX_LESIONS), NaN = no such lesion
        "lesion_ellipse": ellipses,                      # (N, MAX_LESIONS, 6) cx, cz, a, b [mm], angle [rad], gain
        "pixel_size_mm": np.full(count, PIXEL_MM),
        "seed": seeds,
    }


def contact_sheet(images: np.ndarray, masks: np.ndarray, path: Path, columns: int = 8) -> None:
    """PNG grid: each image with its mask outline in red (visual check only)."""
    import cv2

    tiles = []
    for image, mask in zip(images, masks):
        tile = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(tile, contours, -1, (0, 0, 255), 1)
        tiles.append(np.pad(tile, ((2, 2), (2, 2), (0, 0))))
    tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % columns)
    rows = [np.hstack(tiles[i:i + columns]) for i in range(0, len(tiles), columns)]
    cv2.imwrite(str(path), np.vstack(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sheet", type=Path, help="also write a PNG contact sheet here")
    args = parser.parse_args()
    _reuse_heap()  # before the fork: the workers inherit it
    arrays = build(args.count, args.workers)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    if args.sheet:
        contact_sheet(arrays["images"], arrays["masks"], args.sheet)


if __name__ == "__main__":
    main()
