"""The NumPy reference backend: SPEC §2-4 in code, readable first, vectorised second.

Every other backend is tested against these three functions.  Loops run over samples (and
channels); each sample's work is whole-array NumPy in float32, in exactly the order of the spec,
so the compiled kernels can reproduce it bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..plan import KINDS, GeometryPlan, NoisePlan
from ..samplers import normal, poisson

DEVICE = "cpu"
f32 = np.float32


# ----------------------------------------------------------------------------- geometry (SPEC §2)


def _axis_taps(n_out: int, offset: int, size: int, src: int, ratio: np.float32):
    """Per-axis sampling for canvas coordinates ``0..n_out-1`` along one axis.

    Returns ``(lo, hi, i0, i1, frac, nearest)``: the canvas span ``[lo, hi)`` that the thumbnail
    covers, and for each covered canvas coordinate the two bilinear source taps, the float32
    weight of the second one, and the nearest-exact source index.
    """
    lo, hi = max(0, offset), min(n_out, offset + size)
    t = np.arange(lo, hi, dtype=np.int64) - offset  # thumbnail coordinate
    tf = t.astype(f32)
    pos = (tf + f32(0.5)) * ratio - f32(0.5)
    i0 = np.floor(pos)
    frac = pos - i0
    i0 = i0.astype(np.int64)
    under, over = i0 < 0, i0 >= src - 1
    i0 = np.where(under, 0, np.where(over, src - 1, i0))
    frac = np.where(under | over, f32(0), frac).astype(f32)
    i1 = np.minimum(i0 + 1, src - 1)
    return lo, hi, i0, i1, frac, nearest_taps(hi - lo, src, ratio, first=lo - offset)


def nearest_taps(count: int, src: int, ratio: np.float32, first: int = 0) -> np.ndarray:
    """Nearest-exact source indices of thumbnail coordinates ``first .. first + count - 1``."""
    tf = np.arange(first, first + count, dtype=np.int64).astype(f32)
    return np.minimum(np.floor((tf + f32(0.5)) * ratio).astype(np.int64), src - 1)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 results to the image dtype: integers are rounded half-to-even, then clipped."""
    if dtype == np.float32:
        return values
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def rescale_paste(image, mask, geo: GeometryPlan, out_image, out_mask) -> None:
    """Rescale each sample's crop by its scale and paste it into the canvas (SPEC §2)."""
    ho, wo = geo.canvas
    for i in range(image.shape[0]):
        sy0, sx0, sh, sw = (int(v) for v in geo.crop[i])
        h, w = (int(v) for v in geo.thumb[i])
        oy, ox = (int(v) for v in geo.offset[i])
        ry, rx = geo.ratio[i]
        y_lo, y_hi, iy, iy1, b, my = _axis_taps(ho, oy, h, sh, ry)
        x_lo, x_hi, ix, ix1, a, mx = _axis_taps(wo, ox, w, sw, rx)

        out_image[i] = geo.fill
        if out_mask is not None:
            out_mask[i] = geo.mask_fill
        if y_lo >= y_hi or x_lo >= x_hi:
            continue  # the thumbnail lies wholly outside the canvas

        src = image[i, sy0 : sy0 + sh, sx0 : sx0 + sw].astype(f32)
        a = a[:, None]  # broadcast over channels
        b = b[:, None, None]
        top = src[iy][:, ix] * (f32(1) - a) + src[iy][:, ix1] * a
        bot = src[iy1][:, ix] * (f32(1) - a) + src[iy1][:, ix1] * a
        value = top * (f32(1) - b) + bot * b
        out_image[i, y_lo:y_hi, x_lo:x_hi] = _to_dtype(value, image.dtype)
        if out_mask is not None:
            out_mask[i, y_lo:y_hi, x_lo:x_hi] = mask[i, sy0 : sy0 + sh, sx0 : sx0 + sw][my][:, mx]


# ----------------------------------------------------------------------------- noise (SPEC §3-4)


def selected(mask: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Boolean map of the pixels whose label is selected (any nonzero label when ``labels`` is None)."""
    if labels is None:
        return mask != 0
    return np.isin(mask.astype(np.int64), labels)


def noise_in_mask(image, mask, noise: NoisePlan, out_image) -> None:
    """Add each sample's noise to the pixels of its selected labels; leave the rest untouched."""
    out_image[...] = image
    n, _, wo, channels = image.shape
    for i in range(n):
        kind = int(noise.kind[i])
        if kind == KINDS["none"]:
            continue  # 'none' leaves the pixels bit-identical (no normalisation round trip)
        ys, xs = np.nonzero(selected(mask[i], noise.labels))
        p = (ys * wo + xs).astype(np.uint32)
        sid = int(noise.sid[i])
        for c in range(channels):
            word = 0 if noise.shared else c  # the counter's channel word (SPEC §3 "Channels")
            v = image[i, ys, xs, c].astype(f32)
            x = (v - noise.lo) * noise.inv
            if kind == KINDS["poisson"]:
                lam = (x * noise.peak[i]).astype(np.float64)
                y = poisson(lam, p, sid, word, noise.key).astype(f32) / noise.peak[i]
            else:
                z = normal(p, sid, word, noise.key)
                n_ = noise.sigma[i] * z
                y = x + x * n_ if kind == KINDS["speckle"] else x + n_
            if noise.clip:
                y = np.minimum(np.maximum(y, f32(0)), f32(1))
            out_image[i, ys, xs, c] = _to_dtype(noise.lo + y * noise.span, image.dtype)


def augment(image, mask, geo: GeometryPlan, noise: NoisePlan, out_image, out_mask) -> None:
    """Geometry then in-mask noise (the reference of the fused kernels)."""
    rescale_paste(image, mask, geo, out_image, out_mask)
    noise_in_mask(out_image.copy(), out_mask, noise, out_image)
