"""Regression tests for issue #13's API defects (hardening round two): each failed before its fix.

The classes, not only the probe's instances: integer bounds checked without int64 wrap-around,
float32 parameters checked as float32, out= buffers that overlap each other, seeds and ids that
are not integers, config values that pass construction but would fail later.
"""

import numpy as np
import pytest

import sas_fast
from sas_fast import api

BACKENDS = ["numpy", "numba"]


@pytest.fixture
def pair():
    image = np.arange(2 * 16 * 16, dtype=np.uint32).reshape(2, 16, 16).astype(np.uint8)
    mask = np.zeros((2, 16, 16), np.uint8)
    mask[:, 4:10, 5:12] = 1
    return image, mask


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    "crop",
    [
        (2**62, 0, 2**62, 16),  # sy0 + sh wraps in int64: was a segfault on numba
        (0, 0, 2**63 - 1, 16),
        (-(2**62), 0, 2**62 + 16, 16),
        np.array([2**63, 0, 4, 4], dtype=np.uint64),  # would wrap negative in an int64 cast
        (0.0, 0.0, 1e300, 16.0),
    ],
)
def test_crop_bounds_never_wrap(backend, crop):
    with pytest.raises(ValueError, match="crop: "):
        sas_fast.rescale_paste(np.zeros((1, 16, 16), np.uint8), scale=1e-18, crop=crop, backend=backend, channel_axis=None)


@pytest.mark.parametrize("offset", [(2**63, 0), np.array([2**63 + 5, 0], np.uint64), (2**31, 0), (0.0, 1e19)])
def test_offsets_beyond_the_limit_are_refused(offset):
    with pytest.raises(ValueError, match=r"offset: expected integers in \[-1073741824, 1073741824\]"):
        sas_fast.rescale_paste(np.zeros((1, 8, 8), np.uint8), scale=0.5, offset=offset, backend="numpy", channel_axis=None)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma": 1e39}, "sigma: expected finite float32"),
        ({"kind": "poisson", "peak": 1e-46}, "peak: expected finite float32 values > 0"),
        ({"kind": "poisson", "peak": 1e39}, "peak: expected finite float32"),
    ],
)
def test_parameters_are_checked_as_float32(pair, backend, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sas_fast.noise_in_mask(*pair, backend=backend, **kwargs)


@pytest.mark.parametrize("value_range", [(0.0, 1e39), (-1e39, 0.0), (0.0, 1e-39), (1.0, 1.0 + 1e-12)])
def test_value_ranges_that_overflow_float32_are_refused(value_range):
    image = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="value_range: expected finite float32"):
        sas_fast.noise_in_mask(image, np.ones((1, 8, 8), np.uint8), value_range=value_range, backend="numpy")


@pytest.mark.parametrize("value_range", ["ab", (0,), 5, (0, 1, 2), None.__class__])
def test_malformed_value_ranges_name_the_argument(value_range):
    with pytest.raises(ValueError, match="value_range: "):
        sas_fast.noise_in_mask(np.zeros((1, 4, 4), np.float32), np.ones((1, 4, 4), np.uint8), value_range=value_range)


def test_float32_fill_must_be_finite_in_float32():
    with pytest.raises(ValueError, match="fill: expected finite values"):
        sas_fast.rescale_paste(np.zeros((1, 8, 8), np.float32), scale=0.5, fill=1e39, backend="numpy", channel_axis=None)


@pytest.mark.parametrize("backend", BACKENDS)
def test_image_and_mask_out_buffers_may_not_overlap(pair, backend):
    image, mask = pair
    params = sas_fast.SASConfig().sample(2, seed=0, masks=mask)
    buf = np.empty((2, 16, 16), np.uint8)
    with pytest.raises(ValueError, match="out: the image and mask buffers overlap"):
        sas_fast.augment(image, mask, params, seed=0, backend=backend, out=(buf, buf))
    big = np.empty((2, 16, 24), np.uint8)
    with pytest.raises(ValueError, match="out: the image and mask buffers overlap"):
        sas_fast.rescale_paste(image, mask, scale=0.5, backend=backend, out=(big[:, :, :16], big[:, :, 8:]))


def test_memory_check_counts_image_and_mask_together(pair, monkeypatch):
    image, mask = pair
    each = 2 * 16 * 16  # bytes of the image result, and of the mask result
    monkeypatch.setattr(api, "MEMORY_CHECK_MIN_BYTES", 0)
    monkeypatch.setattr(api, "_available_host_memory", lambda: each + each // 2)  # room for one, not both
    with pytest.raises(MemoryError, match="the results need"):
        sas_fast.rescale_paste(image, mask, scale=0.5, backend="numpy")
    sas_fast.rescale_paste(image, scale=0.5, backend="numpy", channel_axis=None)  # the image alone fits


def test_a_canvas_whose_size_wraps_is_refused():
    with pytest.raises(ValueError, match=r"canvas: expected \(Ho, Wo\) integers in \[1, 2147483647\]"):
        sas_fast.rescale_paste(np.zeros((1, 4, 4), np.uint8), scale=1.0, canvas=(2**31, 2**31), channel_axis=None)
    with pytest.raises(MemoryError, match="results need"):
        sas_fast.rescale_paste(np.zeros((1, 4, 4), np.uint8), scale=1.0, canvas=(2**31 - 1, 2**31 - 1), channel_axis=None)


@pytest.mark.parametrize("seed", [1.5, "7", True, 1e19, None, float("nan"), np.float64(3.0)])
def test_seeds_must_be_integers(pair, seed):
    with pytest.raises(TypeError, match="seed: expected an integer"):
        sas_fast.SAS(seed=seed)
    with pytest.raises(TypeError, match="seed: expected an integer"):
        sas_fast.noise_in_mask(*pair, seed=seed)
    with pytest.raises(TypeError, match="seed: expected an integer"):
        sas_fast.SASConfig().sample(2, seed=seed, masks=pair[1])


@pytest.mark.parametrize("ids", [["0", "1"], [True, False], np.array([0.5, 1.0]), [0, 2**32], [-1, 0]])
def test_sample_ids_must_be_integers_in_range(pair, ids):
    with pytest.raises((TypeError, ValueError), match="sample_ids: expected"):
        sas_fast.noise_in_mask(*pair, sample_ids=ids)


def test_concatenate_refuses_parts_of_another_canvas_or_label_set():
    a = sas_fast.SASConfig().sample(2, seed=0, shape=(16, 16))
    b = sas_fast.SASConfig().sample(2, seed=0, shape=(16, 20))
    c = sas_fast.SASConfig(labels=(2,)).sample(2, seed=0, shape=(16, 16))
    for other in (b, c):
        with pytest.raises(ValueError, match="parts: part 1 has canvas"):
            sas_fast.SASParams.concatenate([a, other])
    assert len(sas_fast.SASParams.concatenate([a, a])) == 4


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"p_scale": "0.5"}, TypeError),
        ({"p_noise": None}, TypeError),
        ({"min_object_pixels": float("inf")}, ValueError),
        ({"min_object_pixels": 2.5}, ValueError),
        ({"noise": {"speckle": 1e308, "poisson": 1e308}}, ValueError),  # made every sample Poisson
        ({"noise": ["speckle"]}, TypeError),
        ({"roi_margin": "1"}, TypeError),
    ],
)
def test_config_values_that_would_fail_later_are_refused_now(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        sas_fast.SASConfig(**kwargs)


def test_a_huge_roi_margin_means_the_whole_image():
    mask = np.zeros((1, 20, 20), np.uint8)
    mask[0, 5:8, 5:9] = 1
    params = sas_fast.SASConfig(source="roi", roi_margin=1e308).sample(1, seed=0, masks=mask)
    np.testing.assert_array_equal(params.crop, [[0, 0, 20, 20]])


def _record():
    return sas_fast.SASConfig().sample(3, seed=1, shape=(20, 20)).to_dict()


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (lambda d: d.pop("scale"), ValueError, r"params: missing key\(s\) \['scale'\]"),
        (lambda d: d.update(scale=["a", 1, 2]), TypeError, "params: scale must hold numbers"),
        (lambda d: d.update(offset=[[float("nan"), 0]] * 3), ValueError, "params: offset must be finite"),
        (lambda d: d.update(sample_ids=[2**64, 0, 1]), ValueError, "params: sample_ids must be integers"),
        (lambda d: d.update(sample_ids=[2**32, 0, 1]), ValueError, r"params: sample_ids must lie in \[0, 2\*\*32\)"),
        (lambda d: d.update(sample_ids=[1.5, 0, 1]), ValueError, "params: sample_ids must be integers"),
        (lambda d: d.update(sample_ids=[True, 0, 1]), ValueError, "params: sample_ids must be numbers"),
        (lambda d: d.update(kind=["salt"] * 3), ValueError, "params: kind must be 3 names"),
        (lambda d: d.update(crop=[[0, 0, 20, 20]] * 2), ValueError, r"params: crop must be numbers of shape \(3, 4\)"),
        (lambda d: d.update(canvas=[0, 5]), ValueError, "params: canvas must be two positive integers"),
        (lambda d: d.update(labels={1: 2}), TypeError, "params: labels must be null or a list"),
        (lambda d: d.update(extra=1), ValueError, r"unknown key\(s\) \['extra'\]"),
    ],
)
def test_params_from_dict_names_the_bad_key(change, error, message):
    data = _record()
    change(data)
    with pytest.raises(error, match=message):
        sas_fast.SASParams.from_dict(data)


def test_params_round_trip_through_the_field_table():
    params = sas_fast.SASConfig(labels=(1, 3)).sample(4, seed=2, shape=(30, 20))
    again = sas_fast.SASParams.from_dict(params.to_dict())
    assert again.to_json() == params.to_json()
    assert params[1:3].to_dict()["sample_ids"] == [1, 2]
    both = sas_fast.SASParams.concatenate([params[:1], params[1:]])
    assert both.to_json() == params.to_json()


@pytest.mark.parametrize("call", ["rescale_paste", "augment"])
def test_images_with_zero_channels_still_resample_their_mask(any_backend, call):
    image = np.zeros((2, 5, 6, 0), np.uint8)
    mask = np.zeros((2, 5, 6), np.uint8)
    mask[:, 1:4, 2:5] = 1
    if call == "rescale_paste":
        run = lambda b: sas_fast.rescale_paste(image, mask, scale=0.5, offset=(1, 1), mask_fill=3, backend=b)  # noqa: E731
    else:
        params = sas_fast.SASConfig(scale_range=(0.5, 0.5)).sample(2, seed=0, masks=mask)
        run = lambda b: sas_fast.augment(image, mask, params, seed=0, backend=b)  # noqa: E731
    got, want = run(any_backend), run("numpy")
    assert got[0].shape == (2, 5, 6, 0)
    np.testing.assert_array_equal(got[1], want[1])  # numba gave an all-fill mask
    assert (want[1] != want[1][0, 0, 0]).any()


def test_batches_of_tiny_images():
    image = np.zeros((20_000, 1, 1), np.uint8)
    mask = np.ones((20_000, 1, 1), np.uint8)
    params = sas_fast.SASConfig().sample(20_000, seed=0, masks=mask)
    got = sas_fast.augment(image, mask, params, seed=0, backend="numba")
    want = sas_fast.augment(image[:500], mask[:500], params[:500], seed=0, backend="numpy")
    np.testing.assert_array_equal(got[0][:500], want[0])


@pytest.mark.parametrize("peak", [1e10, 1e20, 1e30, 3e38])
def test_poisson_with_huge_peaks_agrees_on_every_backend(any_backend, peak):
    """Counts beyond int64 (means near 1e30) are whole float64 numbers everywhere (the reference
    and the CUDA source wrapped them to -2**63, so a uint8 200 became 0)."""
    image = np.full((1, 8, 8), 200, np.uint8)
    mask = np.ones((1, 8, 8), np.uint8)
    got = sas_fast.noise_in_mask(image, mask, kind="poisson", peak=peak, seed=1, backend=any_backend)
    np.testing.assert_array_equal(got, sas_fast.noise_in_mask(image, mask, kind="poisson", peak=peak, seed=1, backend="numba"))
    assert abs(float(got.mean()) - 200) < 1
