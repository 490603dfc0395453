"""Layouts said, not guessed (issue #11): channel-first and channel-last images, (1, H, W) and
(N, 1, H, W) masks, torch layouts; ambiguous 3-D images are errors that say how to pass them."""

import numpy as np
import pytest

import sas_fast
from tests.conftest import ellipse_masks, random_image


@pytest.fixture
def sample(rng):
    image = random_image(rng, (2, 24, 30, 3), np.uint8)
    mask = ellipse_masks(rng, 2, 24, 30)
    params = sas_fast.SASConfig(noise={"speckle": 1, "poisson": 1}).sample(2, seed=3, masks=mask)
    return image, mask, params


def test_channel_first_batches_equal_channel_last(sample):
    image, mask, params = sample
    want_image, want_mask = sas_fast.augment(image, mask, params, seed=5)
    nchw = np.ascontiguousarray(image.transpose(0, 3, 1, 2))
    for masks in (mask, mask[:, None]):  # (N, H, W) and (N, 1, H, W)
        got_image, got_mask = sas_fast.augment(nchw, masks, params, seed=5, channel_axis=1)
        np.testing.assert_array_equal(got_image, want_image.transpose(0, 3, 1, 2))
        np.testing.assert_array_equal(got_mask.reshape(want_mask.shape), want_mask)
        assert got_mask.shape == masks.shape
    # an (N, 1, H, W) mask says the layout by itself
    got_image, _ = sas_fast.augment(nchw, mask[:, None], params, seed=5)
    np.testing.assert_array_equal(got_image, want_image.transpose(0, 3, 1, 2))


def test_one_channel_first_image_equals_channel_last(sample):
    image, mask, params = sample
    want_image, want_mask = sas_fast.augment(image[0], mask[0], params[0], seed=5)
    chw = np.ascontiguousarray(image[0].transpose(2, 0, 1))
    for one_mask in (mask[0], mask[:1]):  # (H, W) and (1, H, W)
        got_image, got_mask = sas_fast.augment(chw, one_mask, params[0], seed=5)
        np.testing.assert_array_equal(got_image, want_image.transpose(2, 0, 1))
        np.testing.assert_array_equal(got_mask.reshape(want_mask.shape), want_mask)
        assert got_mask.shape == one_mask.shape


def test_out_buffers_take_the_callers_layout(sample):
    image, mask, params = sample
    want_image, want_mask = sas_fast.augment(image, mask, params, seed=5)
    out_image = np.empty((2, 3, 24, 30), np.uint8)
    out_mask = np.empty((2, 1, 24, 30), np.uint8)
    got = sas_fast.augment(image.transpose(0, 3, 1, 2), mask[:, None], params, seed=5, out=(out_image, out_mask))
    assert got[0] is out_image and got[1] is out_mask
    np.testing.assert_array_equal(out_image, want_image.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(out_mask[:, 0], want_mask)


def test_a_3d_image_without_a_mask_must_say_its_layout(rng):
    rgb = random_image(rng, (20, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"ambiguous; pass channel_axis=-1 for one \(H, W, C\) image"):
        sas_fast.rescale_paste(rgb, scale=0.5)  # was processed as 20 grey images of 16x3, silently
    got, _ = sas_fast.rescale_paste(rgb, scale=0.5, channel_axis=-1)
    for c in range(3):
        want, _ = sas_fast.rescale_paste(rgb[..., c], scale=0.5)
        np.testing.assert_array_equal(got[..., c], want)
    batch, _ = sas_fast.rescale_paste(rgb, scale=0.5, channel_axis=None)  # a grey batch, said explicitly
    np.testing.assert_array_equal(batch[4], sas_fast.rescale_paste(rgb[4], scale=0.5)[0])


def test_shapes_that_fit_two_layouts_are_an_error(rng):
    image = random_image(rng, (5, 5, 5), np.uint8)
    with pytest.raises(ValueError, match=r"could be \(H, W, C\) or \(C, H, W\)"):
        sas_fast.noise_in_mask(image, np.ones((5, 5), np.uint8))
    out = sas_fast.noise_in_mask(image, np.ones((5, 5), np.uint8), channel_axis=0)
    assert out.shape == (5, 5, 5)


@pytest.mark.parametrize(("axis", "ndim"), [(1, 3), (0, 4), (2, 4), (0, 2), (5, 4)])
def test_unsupported_channel_axes_are_refused(axis, ndim):
    with pytest.raises(ValueError, match="channel_axis: "):
        sas_fast.rescale_paste(np.zeros((2,) * ndim, np.uint8), scale=1.0, channel_axis=axis)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_other_float_images_are_refused_saying_how_to_convert(dtype):
    with pytest.raises(TypeError, match=r"image: dtype .* convert with \.astype\(np\.float32\)"):
        sas_fast.rescale_paste(np.zeros((4, 4), dtype), scale=0.5)


def test_torch_nchw_tensors_with_int64_masks(sample):
    torch = pytest.importorskip("torch")
    image, mask, params = sample
    want_image, want_mask = sas_fast.augment(image, mask, params, seed=5)
    t_image = torch.from_numpy(np.ascontiguousarray(image.transpose(0, 3, 1, 2)))
    t_mask = torch.from_numpy(mask[:, None].astype(np.int64))
    got_image, got_mask = sas_fast.augment(t_image, t_mask, params, seed=5)
    assert isinstance(got_image, torch.Tensor) and got_mask.dtype == torch.int64 and got_mask.shape == t_mask.shape
    np.testing.assert_array_equal(got_image.numpy(), want_image.transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(got_mask.numpy()[:, 0], want_mask)


def test_sas_transform_takes_channel_first_samples(sample):
    image, mask, _ = sample
    t = sas_fast.SAS(seed=2)
    want = t(image=image[0], mask=mask[0], sample_id=7)
    got = t(image=np.ascontiguousarray(image[0].transpose(2, 0, 1)), mask=mask[:1], sample_id=7)
    np.testing.assert_array_equal(got["image"], want["image"].transpose(2, 0, 1))
    np.testing.assert_array_equal(got["mask"][0], want["mask"])
