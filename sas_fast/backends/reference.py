"""The NumPy reference backend: SPEC §2-4 in code, readable first, vectorised second.

Every other backend is tested against these three functions.  Loops run over samples (and
channels); each sample's work is whole-array NumPy in float32, in exactly the order of the spec,
so the compiled kernels can reproduce it bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..geometry import AxisTaps, axis_taps, nearest_taps
from ..plan import KINDS, GeometryPlan, NoisePlan
from ..samplers import normal, poisson

DEVICE = "cpu"
f32 = np.float32


# ----------------------------------------------------------------------------- geometry (SPEC §2, §2b)


def _span(n_out: int, offset: int, side: int) -> tuple[int, int, np.ndarray]:
    """The canvas span ``[lo, hi)`` a thumbnail of ``side`` pasted at ``offset`` covers along one
    axis of ``n_out`` canvas pixels, and the thumbnail coordinates of that span."""
    lo, hi = max(0, offset), min(n_out, offset + side)
    return lo, hi, np.arange(lo, hi, dtype=np.int64) - offset


def _tap_sum(values: np.ndarray, taps: AxisTaps, axis: int) -> np.ndarray:
    """``sum_k values[taps.index[:, k]] * taps.weight[:, k]`` along ``axis``, in float32, left to
    right from the first product (SPEC §2b), each coordinate over its own ``taps.count`` taps."""
    v = np.moveaxis(values, axis, 0)
    column = (-1,) + (1,) * (v.ndim - 1)  # one weight per coordinate, broadcast over the other axes
    acc = v[taps.index[:, 0]] * taps.weight[:, 0].reshape(column)
    for k in range(1, taps.index.shape[1]):
        more = acc + v[taps.index[:, k]] * taps.weight[:, k].reshape(column)
        acc = np.where((k < taps.count).reshape(column), more, acc)
    return np.moveaxis(acc, 0, axis)


def _to_dtype(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """float32 results to the image dtype: integers are rounded half-to-even, then clipped."""
    if dtype == np.float32:
        return values
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


def rescale_paste(image, mask, geo: GeometryPlan, out_image, out_mask) -> None:
    """Rescale each sample's crop by its scale and paste it into the canvas (SPEC §2; the image by
    its sample's interpolation, bilinear or area, §2b; the mask nearest)."""
    ho, wo = geo.canvas
    for i in range(image.shape[0]):
        sy0, sx0, sh, sw = (int(v) for v in geo.crop[i])
        h, w = (int(v) for v in geo.thumb[i])
        oy, ox = (int(v) for v in geo.offset[i])
        ry, rx = geo.ratio[i]
        y_lo, y_hi, ty = _span(ho, oy, h)
        x_lo, x_hi, tx = _span(wo, ox, w)

        out_image[i] = geo.fill
        if out_mask is not None:
            out_mask[i] = geo.mask_fill
        if y_lo >= y_hi or x_lo >= x_hi:
            continue  # the thumbnail lies wholly outside the canvas

        # the tap tables, then the two sums: each needed source row across (x taps), then the rows down (y taps)
        mode = int(geo.interpolation[i])
        y_taps = axis_taps(mode, ty, sh, h, ry)
        x_taps = axis_taps(mode, tx, sw, w, rx)
        rows, where = np.unique(y_taps.index, return_inverse=True)
        src = image[i, sy0 + rows, sx0 : sx0 + sw].astype(f32)
        across = _tap_sum(src, x_taps, axis=1)
        value = _tap_sum(across, y_taps._replace(index=where.reshape(y_taps.index.shape)), axis=0)
        out_image[i, y_lo:y_hi, x_lo:x_hi] = _to_dtype(value, image.dtype)
        if out_mask is not None:
            labels = mask[i, sy0 + nearest_taps(ty, sh, ry)]  # the mask is always nearest
            out_mask[i, y_lo:y_hi, x_lo:x_hi] = labels[:, sx0 + nearest_taps(tx, sw, rx)]


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
