"""Counter-based streams: a sample's output depends on (seed, sample id), never on its batch."""

import numpy as np
import pytest

import sas_fast
from tests.conftest import ellipse_masks, random_image

KINDS = ["speckle", "gaussian", "poisson"]


@pytest.fixture
def batch(rng):
    images = random_image(rng, (8, 48, 40), np.uint8)
    masks = ellipse_masks(rng, 8, 48, 40)
    return images, masks


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_output_and_other_seed_differs(batch, kind):
    images, masks = batch
    a = sas_fast.noise_in_mask(images, masks, kind=kind, seed=123, backend="numpy")
    b = sas_fast.noise_in_mask(images, masks, kind=kind, seed=123, backend="numpy")
    c = sas_fast.noise_in_mask(images, masks, kind=kind, seed=124, backend="numpy")
    np.testing.assert_array_equal(a, b)
    inside = masks != 0
    assert (a[inside] != c[inside]).mean() > 0.5


@pytest.mark.parametrize("kind", KINDS)
def test_sample_alone_in_batch_or_split_is_identical(batch, kind):
    images, masks = batch
    ids = np.arange(1000, 1008)
    whole = sas_fast.noise_in_mask(images, masks, kind=kind, seed=7, sample_ids=ids, backend="numpy")
    for i in range(8):
        alone = sas_fast.noise_in_mask(images[i], masks[i], kind=kind, seed=7, sample_ids=[ids[i]], backend="numpy")
        np.testing.assert_array_equal(alone, whole[i])
    parts = [slice(0, 3), slice(3, 4), slice(4, 8)]  # a differently split batch
    split = np.concatenate(
        [
            sas_fast.noise_in_mask(images[s], masks[s], kind=kind, seed=7, sample_ids=ids[s], backend="numpy")
            for s in parts
        ]
    )
    np.testing.assert_array_equal(split, whole)


def test_different_sample_ids_give_different_noise(batch):
    images, masks = batch
    same_image = np.repeat(images[:1], 2, axis=0)
    same_mask = np.repeat(masks[:1], 2, axis=0)
    out = sas_fast.noise_in_mask(same_image, same_mask, seed=1, sample_ids=[5, 6], backend="numpy")
    inside = same_mask[0] != 0
    assert (out[0][inside] != out[1][inside]).mean() > 0.5


def test_augment_is_batch_invariant_with_sampled_params(batch):
    images, masks = batch
    cfg = sas_fast.SASConfig()
    ids = np.arange(50, 58)
    params = cfg.sample(8, seed=3, sample_ids=ids, masks=masks)
    whole, whole_mask = sas_fast.augment(images, masks, params, seed=3, backend="numpy")
    for i in range(8):
        one = cfg.sample(1, seed=3, sample_ids=[ids[i]], masks=masks[i : i + 1])
        img, msk = sas_fast.augment(images[i : i + 1], masks[i : i + 1], one, seed=3, backend="numpy")
        np.testing.assert_array_equal(img[0], whole[i])
        np.testing.assert_array_equal(msk[0], whole_mask[i])


def test_augment_equals_rescale_paste_then_noise(batch):
    images, masks = batch
    params = sas_fast.SASConfig(noise={"speckle": 1, "poisson": 1, "gaussian": 1}).sample(8, seed=2, masks=masks)
    img, msk = sas_fast.augment(images, masks, params, seed=9, backend="numpy")
    geo, geo_mask = sas_fast.rescale_paste(
        images, masks, scale=params.scale, offset=params.offset, crop=params.crop, backend="numpy"
    )
    noisy = sas_fast.noise_in_mask(
        geo, geo_mask, kind=list(params.kind), sigma=params.sigma, peak=params.peak, seed=9,
        sample_ids=params.sample_ids, backend="numpy",
    )
    np.testing.assert_array_equal(msk, geo_mask)
    np.testing.assert_array_equal(img, noisy)
