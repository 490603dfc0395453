"""SPEC §3 "Channels" and "Intensity range" (issue #11): shared channel noise and value ranges
for every dtype, exact across backends; pixels outside the range are an error, never a silent clip."""

import numpy as np
import pytest

import sas_fast
from tests.conftest import ellipse_masks, random_image


@pytest.fixture
def grey_rgb(rng):
    grey = random_image(rng, (3, 40, 36), np.uint8)
    return np.repeat(grey[..., None], 3, axis=3), ellipse_masks(rng, 3, 40, 36)


@pytest.mark.parametrize("kind", ["speckle", "gaussian", "poisson"])
def test_shared_noise_keeps_grey_images_grey_on_every_backend(any_backend, grey_rgb, kind):
    image, mask = grey_rgb
    kwargs = dict(kind=kind, sigma=0.2, peak=64.0, seed=3, sample_ids=[4, 5, 6])
    shared = sas_fast.noise_in_mask(image, mask, channels="shared", backend=any_backend, **kwargs)
    want = sas_fast.noise_in_mask(image, mask, channels="shared", backend="numpy", **kwargs)
    np.testing.assert_array_equal(shared, want)
    for c in (1, 2):
        np.testing.assert_array_equal(shared[..., c], shared[..., 0])
    independent = sas_fast.noise_in_mask(image, mask, backend=any_backend, **kwargs)
    np.testing.assert_array_equal(independent[..., 0], shared[..., 0])  # channel 0's draws either way
    assert (independent[..., 1] != independent[..., 0]).any()  # the colour speckle of issue #11


def test_shared_noise_through_augment_and_the_transform(any_backend, grey_rgb):
    image, mask = grey_rgb
    params = sas_fast.SASConfig().sample(3, seed=1, masks=mask)
    got, got_mask = sas_fast.augment(image, mask, params, seed=2, channels="shared", backend=any_backend)
    want, want_mask = sas_fast.augment(image, mask, params, seed=2, channels="shared", backend="numpy")
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got_mask, want_mask)
    assert (got[..., 2] == got[..., 0]).all()
    one = sas_fast.SAS(seed=2, channels="shared")(image=image[0], mask=mask[0], sample_id=0)["image"]
    assert (one[..., 1] == one[..., 0]).all()


def test_value_range_for_12_bit_data_in_uint16(any_backend, rng):
    """Poisson noise is as strong as the data's own range says: (0, 4095), not uint16's 65535."""
    image = np.full((1, 64, 64), 2000, np.uint16)
    mask = np.ones((1, 64, 64), np.uint8)
    kwargs = dict(kind="poisson", peak=256.0, seed=1)
    got = sas_fast.noise_in_mask(image, mask, value_range=(0, 4095), backend=any_backend, **kwargs)
    np.testing.assert_array_equal(got, sas_fast.noise_in_mask(image, mask, value_range=(0, 4095), backend="numpy", **kwargs))
    x = 2000 / 4095
    expected_std = 4095 * np.sqrt(x / 256.0)  # y = k / peak, k ~ Poisson(x * peak)
    assert abs(got.astype(float).std() / expected_std - 1) < 0.1
    full_range = sas_fast.noise_in_mask(image, mask, backend=any_backend, **kwargs)  # the dtype's range
    assert full_range.astype(float).std() > 3 * got.astype(float).std()  # 4x too strong for 12-bit data
    assert got.max() <= 4095  # clipped to the range, not only to the dtype


def test_pixels_outside_the_range_are_an_error_not_a_clip(any_backend, rng):
    zscored = rng.normal(0, 1, (2, 32, 32)).astype(np.float32)
    mask = np.zeros((2, 32, 32), np.uint8)
    mask[1, 8:20, 8:20] = 1
    zscored[1, 8:20, 8:20] -= 1.2  # a dark lesion: a mean of about -1.2
    with pytest.raises(ValueError, match=r"image: sample 1 has pixels that get noise in \[.*\], outside the value range \(0.0, 1.0\)"):
        sas_fast.noise_in_mask(zscored, mask, backend=any_backend)
    kept = sas_fast.noise_in_mask(zscored, mask, clip=False, sigma=0.01, kind="gaussian", backend=any_backend)
    assert abs(kept[1, 8:20, 8:20].mean() - zscored[1, 8:20, 8:20].mean()) < 0.01  # was clipped to 0.00
    sas_fast.noise_in_mask(zscored, mask, value_range=(-8.0, 8.0), backend=any_backend)
    params = sas_fast.SASConfig().sample(2, seed=0, masks=mask)
    with pytest.raises(ValueError, match="outside the value range"):
        sas_fast.augment(zscored, mask, params, seed=0, backend=any_backend)
    twelve_bit = np.full((1, 8, 8), 5000, np.uint16)
    with pytest.raises(ValueError, match=r"outside the value range \(0.0, 4095.0\)"):
        sas_fast.noise_in_mask(twelve_bit, np.ones((1, 8, 8), np.uint8), value_range=(0, 4095), backend=any_backend)


def test_pixels_outside_the_selection_may_lie_outside_the_range(rng):
    image = rng.random((1, 16, 16), dtype=np.float32)
    image[0, :4] = 7.0  # outside (0, 1), but no noise there
    mask = np.zeros((1, 16, 16), np.uint8)
    mask[0, 8:12, 8:12] = 1
    out = sas_fast.noise_in_mask(image, mask, backend="numpy")
    np.testing.assert_array_equal(out[0, :4], image[0, :4])
