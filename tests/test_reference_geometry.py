"""The reference geometry (SPEC §2) against OpenCV, the anchor, and its exact properties."""

import cv2
import numpy as np
import pytest

import sas_fast
from sas_fast.geometry import thumbnail_sides
from tests.conftest import random_image
from tests.tolerances import OPENCV_LINEAR, OPENCV_NEAREST_MISMATCH

SHAPES = [(37, 53), (64, 64), (1, 17), (17, 1), (5, 3), (128, 96)]
SCALES = [0.05, 0.25, 0.5, 0.77, 1.0, 1.3, 3.0]


def opencv_paste(image, mask, scale, offset, crop, canvas, fill=0, interpolation=cv2.INTER_LINEAR):
    """What a careful user would write with OpenCV: resize the crop with dsize (the image with
    ``interpolation``), paste it, clip at the canvas."""
    sy0, sx0, sh, sw = crop
    h, w = (int(v) for v in thumbnail_sides((sh, sw), scale))
    src = image[sy0 : sy0 + sh, sx0 : sx0 + sw]
    thumb = cv2.resize(src, (w, h), interpolation=interpolation).reshape((h, w) + image.shape[2:])
    out = np.full(canvas + image.shape[2:], fill, dtype=image.dtype)
    out_mask = np.zeros(canvas, dtype=mask.dtype)
    mthumb = cv2.resize(mask[sy0 : sy0 + sh, sx0 : sx0 + sw], (w, h), interpolation=cv2.INTER_NEAREST_EXACT)
    oy, ox = offset
    y0, y1, x0, x1 = max(0, oy), min(canvas[0], oy + h), max(0, ox), min(canvas[1], ox + w)
    if y0 < y1 and x0 < x1:
        out[y0:y1, x0:x1] = thumb[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
        out_mask[y0:y1, x0:x1] = mthumb[y0 - oy : y1 - oy, x0 - ox : x1 - ox]
    return out, out_mask


def value_span(dtype):
    return 1.0 if dtype == np.float32 else float(np.iinfo(dtype).max)


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [None, 3])
def test_matches_opencv_over_shapes_scales_crops_offsets(rng, dtype, channels):
    worst, mask_mismatch, mask_total = 0.0, 0, 0
    for h, w in SHAPES:
        shape = (h, w) if channels is None else (h, w, channels)
        image = random_image(rng, shape, dtype)
        mask = rng.integers(0, 4, size=(h, w), dtype=np.uint8)
        for scale in SCALES:
            sh, sw = rng.integers(1, h + 1), rng.integers(1, w + 1)
            crop = (int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1)), int(sh), int(sw))
            canvas = (int(rng.integers(1, 2 * h + 2)), int(rng.integers(1, 2 * w + 2)))
            # offsets from well before the top-left corner to past the bottom-right one
            offset = (int(rng.integers(-h, canvas[0] + 2)), int(rng.integers(-w, canvas[1] + 2)))
            got, got_mask = sas_fast.rescale_paste(
                image, mask, scale=scale, offset=offset, crop=crop, canvas=canvas, backend="numpy"
            )
            want, want_mask = opencv_paste(image, mask, scale, offset, crop, canvas)
            assert got.shape == want.shape and got.dtype == want.dtype
            worst = max(worst, float(np.abs(got.astype(np.float64) - want).max(initial=0)))
            mask_mismatch += int((got_mask != want_mask).sum())
            mask_total += got_mask.size
    assert worst <= OPENCV_LINEAR[np.dtype(dtype)] * (value_span(dtype) if dtype == np.float32 else 1)
    assert mask_mismatch <= OPENCV_NEAREST_MISMATCH * mask_total


def test_nearest_mask_mismatch_is_rare_on_realistic_masks(rng):
    """Blob masks at random scales: boundary shifts only, on a small fraction of pixels."""
    yy, xx = np.mgrid[0:211, 0:157]
    mask = (((yy - 100) / 60.0) ** 2 + ((xx - 70) / 40.0) ** 2 <= 1).astype(np.uint8)
    image = np.zeros((211, 157), np.uint8)
    differing = total = 0
    for scale in rng.uniform(0.1, 1.0, size=40):
        _, got = sas_fast.rescale_paste(image, mask, scale=scale, offset=(0, 0), backend="numpy")
        _, want = opencv_paste(image, mask, scale, (0, 0), (0, 0, 211, 157), (211, 157))
        differing += int((got != want).sum())
        total += int(want.sum())
    assert differing <= OPENCV_NEAREST_MISMATCH * total


@pytest.mark.parametrize("dtype", [np.float32, np.uint8, np.uint16])
def test_identity_is_bit_exact(rng, dtype):
    image = random_image(rng, (3, 31, 45, 2), dtype)
    mask = rng.integers(0, 2**31 - 1, size=(3, 31, 45), dtype=np.int32)
    got, got_mask = sas_fast.rescale_paste(image, mask, scale=1.0, offset=(0, 0), backend="numpy")
    np.testing.assert_array_equal(got, image)
    np.testing.assert_array_equal(got_mask, mask)


def test_fill_values_and_center_placement(rng):
    image = random_image(rng, (40, 60, 3), np.uint8)
    mask = np.ones((40, 60), np.uint16)
    got, got_mask = sas_fast.rescale_paste(image, mask, scale=0.5, fill=(10, 20, 30), mask_fill=7, backend="numpy")
    # thumbnail 20x30 centred: rows 10..29, cols 15..44
    assert got[0, 0].tolist() == [10, 20, 30] and got[39, 59].tolist() == [10, 20, 30]
    assert (got_mask[10:30, 15:45] == 1).all()
    assert (got_mask[:10] == 7).all() and (got_mask[:, :15] == 7).all() and (got_mask[30:] == 7).all()


def test_thumbnail_wholly_outside_the_canvas_gives_fill(rng):
    image = random_image(rng, (2, 16, 16), np.float32)
    got, _ = sas_fast.rescale_paste(image, scale=0.5, offset=(100, -100), fill=0.25, backend="numpy", channel_axis=None)
    assert (got == np.float32(0.25)).all()


def test_per_sample_parameters_equal_single_calls(rng):
    images = random_image(rng, (4, 33, 41), np.uint16)
    masks = rng.integers(0, 3, size=(4, 33, 41), dtype=np.uint8)
    scales = np.array([0.3, 0.9, 1.7, 0.06])
    offsets = np.array([[0, 0], [-5, 7], [10, -3], [32, 40]])
    crops = np.array([[0, 0, 33, 41], [3, 4, 20, 30], [10, 0, 23, 41], [0, 40, 33, 1]])
    batch, batch_mask = sas_fast.rescale_paste(images, masks, scale=scales, offset=offsets, crop=crops, backend="numpy")
    for i in range(4):
        one, one_mask = sas_fast.rescale_paste(
            images[i], masks[i], scale=scales[i], offset=tuple(offsets[i]), crop=tuple(crops[i]), backend="numpy"
        )
        np.testing.assert_array_equal(batch[i], one)
        np.testing.assert_array_equal(batch_mask[i], one_mask)


def test_random_offset_keeps_thumbnail_inside_and_is_reproducible(rng):
    images = random_image(rng, (64, 50, 70), np.uint8)
    masks = np.ones((64, 50, 70), np.uint8)
    scales = rng.uniform(0.25, 1.0, size=64)
    _, m1 = sas_fast.rescale_paste(images, masks, scale=scales, offset="random", seed=9, backend="numpy")
    _, m2 = sas_fast.rescale_paste(images, masks, scale=scales, offset="random", seed=9, backend="numpy")
    np.testing.assert_array_equal(m1, m2)
    h = np.maximum(1, np.floor(50 * scales + 0.5)).astype(int)
    w = np.maximum(1, np.floor(70 * scales + 0.5)).astype(int)
    assert (m1.sum(axis=(1, 2)) == h * w).all()  # nothing clipped: the whole thumbnail is on the canvas
