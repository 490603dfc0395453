"""The bundled simulated ultrasound samples (sas_fast.data): format, lesion geometry, speckle."""

import importlib.util
import sys
from importlib import resources
from pathlib import Path

import cv2
import numpy as np
import pytest

from sas_fast.data import SAMPLES_FILE, load_samples

SIZE = 256
PIXEL_MM = 30.0 / SIZE
SMALL_MM = (2.5, 4.5)
LARGE_MM = (6.0, 12.0)
RASTER_MM = 0.1  # equivalent diameter from a pixel count vs the exact ellipse (~1 pixel)
MAX_BYTES = 2_000_000


@pytest.fixture(scope="module")
def samples():
    return load_samples()


def components(mask):
    """Connected lesion regions of one mask: list of boolean arrays, largest first."""
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    regions = [labels == k for k in range(1, count)]
    return sorted(regions, key=lambda r: -r.sum())


def equivalent_diameter_mm(region, pixel_mm):
    return 2.0 * np.sqrt(region.sum() / np.pi) * pixel_mm


def test_shapes_dtypes_and_metadata(samples):
    images, masks, info = samples
    n = len(images)
    assert n >= 24
    assert images.shape == masks.shape == (n, SIZE, SIZE)
    assert images.dtype == masks.dtype == np.uint8
    assert info["lesion_diameter_mm"].shape == (n, 2)
    assert info["lesion_ellipse"].shape == (n, 2, 6)
    np.testing.assert_allclose(info["pixel_size_mm"], np.full(n, PIXEL_MM))
    assert len(np.unique(info["seed"])) == n


def test_file_fits_the_size_budget():
    with resources.as_file(resources.files("sas_fast.data").joinpath(SAMPLES_FILE)) as path:
        assert path.stat().st_size <= MAX_BYTES


def test_masks_are_binary_and_non_empty(samples):
    _, masks, _ = samples
    assert set(np.unique(masks)) == {0, 1}
    assert (masks.reshape(len(masks), -1).sum(axis=1) > 0).all()


def test_lesion_sizes_match_metadata_and_classes(samples):
    _, masks, info = samples
    sizes = []
    for mask, stated, pixel_mm in zip(masks, info["lesion_diameter_mm"], info["pixel_size_mm"]):
        stated = np.sort(stated[~np.isnan(stated)])[::-1]
        measured = [equivalent_diameter_mm(r, pixel_mm) for r in components(mask)]
        assert len(measured) == len(stated)  # lesions never touch
        np.testing.assert_allclose(measured, stated, atol=RASTER_MM)
        sizes += measured
    sizes = np.array(sizes)
    small = (sizes >= SMALL_MM[0] - RASTER_MM) & (sizes <= SMALL_MM[1] + RASTER_MM)
    large = (sizes >= LARGE_MM[0] - RASTER_MM) & (sizes <= LARGE_MM[1] + RASTER_MM)
    assert (small | large).all(), sizes[~(small | large)]
    assert small.sum() >= len(masks) // 2 and large.sum() >= len(masks) // 4


def test_background_is_speckle_and_lesions_are_darker(samples):
    images, masks, _ = samples
    for image, mask in zip(images, masks):
        # Keep clear of the lesion borders, where the point-spread function blurs both sides.
        background = cv2.dilate(mask, np.ones((9, 9), np.uint8)) == 0
        bg = image[background].astype(float)
        assert bg.std() > 20  # fully developed speckle, not a flat or smoothed image
        assert 90 <= np.median(bg) <= 135
        for region in components(mask):
            core = cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)) == 1
            assert np.median(image[core]) < np.median(bg) - 15


def _generator():
    path = Path(__file__).resolve().parents[1] / "scripts" / "make_samples.py"
    spec = importlib.util.spec_from_file_location("make_samples", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_generator_reproduces_the_bundled_image(samples):
    """Regenerating image 0 (about a minute of PyMUST) gives the bundled pixels bit for bit."""
    pytest.importorskip("pymust", reason="the generator needs the dev-only dependency pymust")
    images, masks, info = samples
    image, mask, lesions, seed = _generator().simulate(0)
    assert seed == info["seed"][0]
    np.testing.assert_array_equal(image, images[0])
    np.testing.assert_array_equal(mask, masks[0])
    np.testing.assert_allclose([l.diameter for l in lesions],
                               info["lesion_diameter_mm"][0][: len(lesions)], rtol=1e-12)
