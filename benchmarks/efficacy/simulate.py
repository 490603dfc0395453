"""A seeded convolution B-mode ultrasound simulator with elliptical lesions and exact masks.

Physics (one image, all in pixel units; nominal mapping in ``SimConfig``):

1. **Scatterers.** Real Gaussian amplitudes on a grid oversampled 4x in depth (``4H x W``),
   multiplied by the echogenicity map: 1 in the background times a smooth random texture of
   +-``texture_db`` (low-frequency tissue variation, so the background has darker patches that can
   be mistaken for lesions), 0 inside an anechoic lesion, ``10**(-c/20)`` inside a hypoechoic one of
   contrast ``c`` dB.  The map is evaluated at the sub-pixel sample positions; the mask is the
   same ellipse evaluated at the pixel centres, so mask and image agree exactly.
2. **PSF.** Separable: a Gaussian-modulated cosine axially (centre frequency ``f0`` cycles per
   oversampled sample, Gaussian envelope of ``sigma_axial`` px) and a Gaussian laterally
   (``sigma_lateral`` px).  It is applied as its *analytic* version (the spectrum kept on positive
   axial frequencies only, doubled) by one forward and one inverse 2-D FFT, so the result is the
   analytic RF signal and its modulus is the envelope: convolution and Hilbert transform in the
   same two FFTs.
3. **Electronic noise.** Complex white noise at ``noise_db`` below the mean background echo, so an
   anechoic region shows a noise floor rather than exact black (a black SAS canvas is *darker*
   than any cyst here: it is exactly 0).
4. **Attenuation and partial TGC.** Amplitude times ``10**(-(1 - tgc) * atten_db * depth / 20)``:
   ``atten_db`` of round-trip attenuation over the full depth, of which the fraction ``tgc`` is
   compensated, so images darken gently with depth.
5. **Log compression.** Depth decimated to ``H`` rows (mean of the 4 sub-rows of the envelope),
   ``20 log10`` relative to a white level ``headroom_db`` (20-28 dB) above the mean background
   echo (where a scanner puts its brightest reflectors), clipped to a dynamic range drawn in
   ``dr_db`` (50-60 dB) and mapped to uint8 0..255: background speckle is mid-grey, hypoechoic
   lesions darker, anechoic ones black down to the noise floor.

Everything that varies (lesion type, size, shape, angle, position, contrast, texture, attenuation,
TGC, dynamic range, scatterers) is drawn from ``numpy.random.Generator(PCG64(seed, image index))``,
so image ``i`` of a split is the same on every machine whatever else is generated (NumPy's
PCG64 and pocketfft are deterministic across platforms up to float rounding of the FFT).

Speed: ~2 ms per 64x64 image, ~9 ms per 128x128 on one core of the 2-core development machine (``python -m benchmarks.efficacy.simulate`` prints it
and writes ``simulator.png``).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

OVERSAMPLE = 4


@dataclass(frozen=True)
class SimConfig:
    """Simulator parameters (pixel units).

    Nominal physical mapping: with the axial carrier at a quarter of the 4x depth sampling rate,
    one pixel of depth is half a wavelength (the round-trip carrier period), e.g. 0.1 mm at
    7.5 MHz, so a 64-px image is a ~6.5 mm field seen at full resolution, or equivalently a
    larger field displayed at speckle-limited resolution (grain ~1.3 x 1.9 px FWHM).  The
    simulator itself never uses millimetres; only these ratios matter.
    """

    size: int = 64
    f0: float = 0.25  # axial carrier, cycles per oversampled sample (= fs / 4)
    sigma_axial: float = 0.55  # Gaussian pulse envelope, px (envelope FWHM ~ 1.3 px)
    sigma_lateral: float = 0.8  # lateral beam, px (FWHM ~ 1.9 px)
    noise_db: float = 42.0  # electronic noise, dB below the mean background echo
    texture_db: float = 3.0  # +- amplitude of the smooth background texture, dB
    texture_scale: float = 0.2  # correlation length of the texture, fraction of the side
    atten_db: tuple[float, float] = (15.0, 25.0)  # round-trip attenuation over the depth, dB
    tgc: tuple[float, float] = (0.6, 0.9)  # compensated fraction
    dr_db: tuple[float, float] = (50.0, 60.0)  # log-compression dynamic range
    headroom_db: tuple[float, float] = (20.0, 28.0)  # white level above the mean background echo
    hypo_contrast_db: tuple[float, float] = (6.0, 14.0)  # hypoechoic lesions: echo drop, dB
    aspect: tuple[float, float] = (0.6, 1.0)  # minor / major axis ratio

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class Lesion:
    kind: str  # "anechoic" or "hypoechoic"
    size: float  # equivalent diameter 2 * sqrt(a * b), as a fraction of the image side
    cy: float
    cx: float
    a: float  # semi-axes in px
    b: float
    angle: float
    contrast_db: float  # inf for anechoic


class Simulator:
    """Draws B-mode images; the PSF spectrum is computed once per size."""

    def __init__(self, config: SimConfig | None = None) -> None:
        self.config = config or SimConfig()
        c = self.config
        n_ax, n_lat = OVERSAMPLE * c.size, c.size
        # analytic PSF spectrum: Gaussian around +f0 axially (positive frequencies only, doubled),
        # Gaussian laterally.  A Gaussian pulse of sigma s (samples) has a spectral sigma 1/(2 pi s).
        fz = np.fft.fftfreq(n_ax)[:, None]
        fx = np.fft.fftfreq(n_lat)[None, :]
        s_ax = c.sigma_axial * OVERSAMPLE
        h_ax = np.exp(-0.5 * ((fz - c.f0) * 2 * math.pi * s_ax) ** 2) * (fz > 0) * 2.0
        h_lat = np.exp(-0.5 * (fx * 2 * math.pi * c.sigma_lateral) ** 2)
        self._psf = (h_ax * h_lat).astype(np.complex128)
        # echo level of unit-variance scatterers after the PSF (for the noise floor and the gain)
        self._echo_rms = float(np.sqrt(np.mean(np.abs(self._psf) ** 2)))
        zz = (np.arange(n_ax) + 0.5) / OVERSAMPLE  # sub-pixel depth of each sample row, px
        self._zz = zz
        self._xx = np.arange(n_lat) + 0.5
        self._yc = np.arange(c.size) + 0.5

    # -- lesions ---------------------------------------------------------------------------

    def draw_lesion(self, rng: np.random.Generator, size_range: tuple[float, float], kind: str | None) -> Lesion:
        c = self.config
        kind = kind or ("anechoic" if rng.random() < 0.5 else "hypoechoic")
        size = rng.uniform(*size_range)
        aspect = rng.uniform(*c.aspect)
        # equivalent diameter d = 2 sqrt(ab), b = aspect * a
        a = 0.5 * size * c.size / math.sqrt(aspect)
        b = aspect * a
        angle = rng.uniform(0, math.pi)
        margin = a + 1.0  # keep the whole ellipse inside
        cy = rng.uniform(margin, c.size - margin)
        cx = rng.uniform(margin, c.size - margin)
        contrast = math.inf if kind == "anechoic" else rng.uniform(*c.hypo_contrast_db)
        return Lesion(kind, float(size), float(cy), float(cx), float(a), float(b), float(angle), float(contrast))

    @staticmethod
    def _inside(lesion: Lesion, y: np.ndarray, x: np.ndarray) -> np.ndarray:
        dy, dx = y[:, None] - lesion.cy, x[None, :] - lesion.cx
        ca, sa = math.cos(lesion.angle), math.sin(lesion.angle)
        u = (dy * ca + dx * sa) / lesion.a
        v = (-dy * sa + dx * ca) / lesion.b
        return u * u + v * v <= 1.0

    # -- one image -------------------------------------------------------------------------

    def image(self, rng: np.random.Generator, lesion: Lesion) -> tuple[np.ndarray, np.ndarray]:
        c = self.config
        n_ax, n_lat = OVERSAMPLE * c.size, c.size
        # smooth background texture (in dB), from low-passed white noise
        tex = rng.standard_normal((n_ax, n_lat))
        fz = np.fft.fftfreq(n_ax)[:, None] * OVERSAMPLE
        fx = np.fft.fftfreq(n_lat)[None, :]
        ell = c.texture_scale * c.size
        lp = np.exp(-0.5 * ((fz**2 + fx**2) * (2 * math.pi * ell) ** 2))
        tex = np.fft.ifft2(np.fft.fft2(tex) * lp).real
        tex *= c.texture_db / (np.abs(tex).max() + 1e-12)
        amp = 10.0 ** (tex / 20.0)
        inside = self._inside(lesion, self._zz, self._xx)
        amp[inside] = 0.0 if lesion.kind == "anechoic" else 10.0 ** (-lesion.contrast_db / 20.0)
        scat = rng.standard_normal((n_ax, n_lat)) * amp
        rf = np.fft.ifft2(np.fft.fft2(scat) * self._psf)  # analytic RF: convolution + Hilbert
        noise_amp = self._echo_rms * 10.0 ** (-c.noise_db / 20.0) / math.sqrt(2)
        rf += noise_amp * (rng.standard_normal(rf.shape) + 1j * rng.standard_normal(rf.shape))
        env = np.abs(rf)
        depth = self._zz / c.size  # 0..1
        atten = rng.uniform(*c.atten_db) * (1.0 - rng.uniform(*c.tgc))
        env *= 10.0 ** (-atten * depth / 20.0)[:, None]
        env = env.reshape(c.size, OVERSAMPLE, n_lat).mean(axis=1)
        mask = self._inside(lesion, self._yc, self._yc).astype(np.uint8)
        ref = env[mask == 0].mean() * 10.0 ** (rng.uniform(*c.headroom_db) / 20.0)
        dr = rng.uniform(*c.dr_db)
        db = 20.0 * np.log10(np.maximum(env / ref, 1e-12))
        img = np.clip((db + dr) / dr, 0.0, 1.0) * 255.0
        return np.round(img).astype(np.uint8), mask


def generate(
    n: int,
    *,
    seed: int,
    size_range: tuple[float, float],
    kind: str | None = None,
    config: SimConfig | None = None,
) -> dict[str, np.ndarray]:
    """``n`` images of one split: image ``i`` uses ``PCG64([seed, i])``; ``kind`` None = 50/50."""
    sim = Simulator(config)
    s = sim.config.size
    images = np.empty((n, s, s), np.uint8)
    masks = np.empty((n, s, s), np.uint8)
    sizes = np.empty(n)
    kinds = np.empty(n, dtype="<U10")
    for i in range(n):
        rng = np.random.Generator(np.random.PCG64([seed, i]))
        lesion = sim.draw_lesion(rng, size_range, kind)
        images[i], masks[i] = sim.image(rng, lesion)
        sizes[i], kinds[i] = lesion.size, lesion.kind
    return {"images": images, "masks": masks, "sizes": sizes, "kinds": kinds}


def timing(n: int = 200, size: int = 64) -> float:
    """Milliseconds per image (one core)."""
    generate(4, seed=0, size_range=(0.25, 0.45), config=SimConfig(size=size))
    t = time.perf_counter()
    generate(n, seed=1, size_range=(0.06, 0.45), config=SimConfig(size=size))
    return 1000.0 * (time.perf_counter() - t) / n


def contact_sheet(png: str, size: int = 64, n: int = 6) -> None:
    """Training (large) and test (small) images with their masks, and SAS applied to the training row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import sas_fast

    from .data import sas_mean_fill

    cfg = SimConfig(size=size)
    large = generate(n, seed=1000, size_range=(0.25, 0.45), config=cfg)  # = the first train_large images
    small = generate(n, seed=1006, size_range=(0.06, 0.12), kind=None, config=cfg)  # like test_small (mixed types)
    sas = sas_fast.SAS(sas_fast.SASConfig(), seed=0)
    aug = [sas(image=large["images"][i], mask=large["masks"][i], sample_id=i) for i in range(n)]
    mean = [sas_mean_fill(sas, large["images"][i], large["masks"][i], i, int(round(large["images"][i].mean()))) for i in range(n)]
    rows = [
        ("train: large lesions", large["images"], large["masks"], large),
        ("test: small lesions", small["images"], small["masks"], small),
        ("train + SAS defaults", [a["image"] for a in aug], [a["mask"] for a in aug], None),
        ("train + SAS, mean fill", [m[0] for m in mean], [m[1] for m in mean], None),
    ]
    fig, axes = plt.subplots(len(rows), n, figsize=(1.7 * n, 1.85 * len(rows)))
    for r, (title, imgs, msks, meta) in enumerate(rows):
        for j in range(n):
            ax = axes[r, j]
            ax.imshow(imgs[j], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.contour(msks[j], [0.5], colors="r", linewidths=0.6)
            ax.set_xticks([])
            ax.set_yticks([])
            if meta is not None:
                ax.set_title(f"{meta['kinds'][j][:5]}. {100 * meta['sizes'][j]:.0f} %", fontsize=7)
            if j == 0:
                ax.set_ylabel(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--png", default=None, help="write a contact sheet here (e.g. benchmarks/efficacy/simulator.png)")
    args = ap.parse_args()
    for s in sorted({64, 128, args.size}):
        print(f"{s}x{s}: {timing(size=s):.2f} ms/image (one core)")
    if args.png:
        contact_sheet(args.png, size=args.size)
        print(f"wrote {args.png}")
