"""Bad input gives a TypeError/ValueError naming the argument; inputs are never modified."""

import numpy as np
import pytest

import sas_fast
from tests.conftest import ellipse_masks, random_image


@pytest.fixture
def data(rng):
    return random_image(rng, (2, 20, 30), np.uint8), ellipse_masks(rng, 2, 20, 30)


def rp(image, mask=None, **kw):
    kw.setdefault("scale", 0.5)
    return sas_fast.rescale_paste(image, mask, backend="numpy", **kw)


def nm(image, mask, **kw):
    return sas_fast.noise_in_mask(image, mask, backend="numpy", **kw)


@pytest.mark.parametrize("dtype", [np.int8, np.float16, np.float64, np.complex64, np.int32, object, ">u2"])
def test_image_dtype(data, dtype):
    image, mask = data
    with pytest.raises(TypeError, match=r"image: dtype .* accepted: uint8, uint16, float32"):
        rp(image.astype(dtype), mask)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64])
def test_mask_dtype(data, dtype):
    image, mask = data
    with pytest.raises(TypeError, match=r"mask: dtype .* accepted: bool and integer labels"):
        nm(image, mask.astype(dtype))


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64, np.uint32, np.uint64])
def test_other_integer_masks_compute_as_int32_and_come_back_in_their_dtype(data, dtype):
    image, mask = data
    labels = (mask * 3).astype(dtype)
    params = sas_fast.SASConfig().sample(2, seed=1, masks=labels)
    got_image, got_mask = sas_fast.augment(image, labels, params, seed=2)
    want_image, want_mask = sas_fast.augment(image, labels.astype(np.int32), params, seed=2)
    assert got_mask.dtype == dtype
    np.testing.assert_array_equal(got_image, want_image)
    np.testing.assert_array_equal(got_mask, want_mask.astype(dtype))
    np.testing.assert_array_equal(nm(image, labels), nm(image, labels.astype(np.int32)))


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**40])
def test_integer_masks_beyond_int32_are_refused(data, value):
    image, mask = data
    labels = mask.astype(np.int64)
    labels[0, 0, 0] = value
    with pytest.raises(ValueError, match=r"mask: labels must fit int32"):
        nm(image, labels)


def test_shape_mismatch_and_rank(data):
    image, mask = data
    with pytest.raises(ValueError, match=r"mask: shape \(2, 20, 29\) does not match image shape \(2, 20, 30\)"):
        rp(image, mask[:, :, :29])
    with pytest.raises(ValueError, match="image: expected"):
        rp(image[None, None])
    with pytest.raises(ValueError, match="mask: a label mask is required"):
        nm(image, None)


@pytest.mark.parametrize("scale", [0, -1, np.nan, np.inf])
def test_scale(data, scale):
    with pytest.raises(ValueError, match=r"scale: expected finite values > 0, got"):
        rp(*data, scale=scale)


def test_scale_shape_and_huge(data):
    with pytest.raises(ValueError, match=r"scale: expected a scalar or shape \(2,\)"):
        rp(*data, scale=[0.5, 0.5, 0.5])
    with pytest.raises(ValueError, match="scale: the thumbnail would exceed"):
        rp(*data, scale=1e9)


@pytest.mark.parametrize("crop", [(0, 0, 21, 30), (-1, 0, 5, 5), (0, 0, 0, 5), (19, 29, 2, 1)])
def test_crop_outside(data, crop):
    with pytest.raises(ValueError, match=r"crop: sample 0 box .* is outside the 20x30 image"):
        rp(*data, crop=crop)


def test_crop_and_offset_must_be_integers(data):
    with pytest.raises(ValueError, match="crop: expected integers"):
        rp(*data, crop=(0.5, 0, 5, 5))
    with pytest.raises(ValueError, match="offset: expected integers"):
        rp(*data, offset=(1.5, 0))
    with pytest.raises(ValueError, match="offset: expected 'center', 'random'"):
        rp(*data, offset="middle")


def test_noise_parameters(data):
    with pytest.raises(ValueError, match=r"kind: unknown noise kind\(s\) \['salt'\]; accepted"):
        nm(*data, kind="salt")
    with pytest.raises(ValueError, match="sigma: expected finite float32 values >= 0, got -0.1"):
        nm(*data, sigma=-0.1)
    with pytest.raises(ValueError, match="peak: expected finite float32 values > 0, got 0.0"):
        nm(*data, peak=0)
    with pytest.raises(ValueError, match="kind: expected one name or 2 names"):
        nm(*data, kind=["speckle"])
    with pytest.raises(ValueError, match=r"value_range: expected integers 0 <= lo < hi <= 255 for uint8"):
        nm(*data, value_range=(0, 300))
    with pytest.raises(ValueError, match=r"value_range: expected integers"):
        nm(*data, value_range=(0.5, 10))
    with pytest.raises(ValueError, match=r"channels: expected one of \['independent', 'shared'\]"):
        nm(*data, channels="mono")
    with pytest.raises(ValueError, match="sample_ids: expected 2 ids"):
        nm(*data, sample_ids=[1, 2, 3])
    with pytest.raises(ValueError, match=r"sample_ids: expected integers in \[0, 2\*\*32\)"):
        nm(*data, sample_ids=[0, 2**32])


def test_nan_in_float_image_says_where(data):
    image = data[0].astype(np.float32) / 255
    image[1, 4, 7] = np.nan
    with pytest.raises(ValueError, match=r"image: NaN or inf pixel at \(n, y, x, c\) = \(1, 4, 7, 0\)"):
        rp(image, data[1])


def test_out_buffers(data):
    image, mask = data
    with pytest.raises(ValueError, match=r"out( \((image|mask)\))?: expected shape \(2, 20, 30\) and dtype uint8"):
        nm(image, mask, out=np.empty((2, 20, 31), np.uint8))
    with pytest.raises(ValueError, match="dtype uint8, got shape .* dtype uint16"):
        nm(image, mask, out=np.empty((2, 20, 30), np.uint16))
    with pytest.raises(ValueError, match=r"out( \((image|mask)\))?: the buffer overlaps an input"):
        nm(image, mask, out=image)
    with pytest.raises(TypeError, match="out: expected a tuple"):
        rp(image, mask, out=np.empty_like(image))
    # a correct buffer is filled and returned
    buf = np.empty_like(image)
    got = nm(image, mask, out=buf, seed=1)
    assert got is buf
    np.testing.assert_array_equal(buf, nm(image, mask, seed=1))


def test_unknown_backend(data):
    with pytest.raises(ValueError, match="backend: unknown backend 'tpu'"):
        sas_fast.rescale_paste(*data, scale=0.5, backend="tpu")


def test_read_only_and_non_contiguous_inputs_work_and_stay_unmodified(rng):
    images = random_image(rng, (3, 40, 60, 3), np.uint16)
    masks = ellipse_masks(rng, 3, 40, 60)
    view = images[:, ::2, ::2]  # non-contiguous
    mview = masks[:, ::2, ::2]
    before, mbefore = view.copy(), mview.copy()
    images.flags.writeable = False
    masks.flags.writeable = False
    params = sas_fast.SASConfig().sample(3, seed=0, masks=mview)
    out, out_mask = sas_fast.augment(view, mview, params, seed=0, backend="numpy")
    ref, ref_mask = sas_fast.augment(np.ascontiguousarray(view), np.ascontiguousarray(mview), params, seed=0,
                                     backend="numpy")
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(out_mask, ref_mask)
    np.testing.assert_array_equal(view, before)
    np.testing.assert_array_equal(mview, mbefore)


def test_batch_larger_than_memory_is_a_clear_error_not_an_oom_kill():
    image = np.zeros((2, 8, 8), np.uint8)
    with pytest.raises(MemoryError, match=r"the results need .* GiB but only .* GiB of memory is available"):
        rp(image, canvas=(400_000, 400_000), channel_axis=None)  # 320 GB of output


def test_empty_images_are_refused():
    with pytest.raises(ValueError, match=r"image: expected at least one row and one column, got shape \(2, 0, 5\)"):
        rp(np.zeros((2, 0, 5), np.uint8), channel_axis=None)
