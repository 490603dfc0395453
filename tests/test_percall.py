"""The one-sample path of SAS.__call__ (sas_fast.percall) against the general path, bit for bit.

The general path is ``SASConfig.sample`` + ``sas_fast.augment`` (what ``return_params=True``
runs); the one-sample path draws the parameters in compiled code and skips the plans.  Every case
here checks that both give the same arrays, or the same error, and that the one-sample path did
serve the calls it is meant to serve (so a silent fallback cannot pass for it).
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sas_fast import SAS, SASConfig
from sas_fast.plan import make_geometry, make_noise
from sas_fast.records import SAMPLE_DTYPE, pack_samples

pytest.importorskip("numba")

from sas_fast.backends._numba_policy import DRAW_OK, DRAW_REFUSED, draw_sample  # noqa: E402
from sas_fast.philox import seed_to_key  # noqa: E402

CONFIGS = {
    "default": SASConfig(),
    "mixed": SASConfig(
        p_scale=0.6, p_noise=0.7, noise={"gaussian": 1.0, "speckle": 2.0, "poisson": 0.5},
        sigma_range=(0.02, 0.3), peak_range=(16.0, 4096.0), scale_range=(0.1, 1.5),
    ),
    "center-area": SASConfig(placement="center", interpolation="area", scale_range=(0.3, 0.9)),
    "labels": SASConfig(labels=(2, 5), noise={"gaussian": 1}),
    "no-noise": SASConfig(p_noise=0.0),
    "grow": SASConfig(scale_range=(1.0, 3.0)),
}  # fmt: skip


def _sample(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype, hw: tuple[int, int], mask_dtype):
    hi = {np.uint8: 255, np.uint16: 65535}.get(np.dtype(dtype).type)
    image = rng.random(shape, dtype=np.float32) if hi is None else rng.integers(0, hi + 1, shape).astype(dtype)
    labels = rng.integers(0, 6, hw)
    mask = (labels > 2) if mask_dtype == np.bool_ else labels.astype(mask_dtype)
    return image, mask


def _general(transform: SAS, image, mask, sid):
    result = transform(image=image, mask=mask, sample_id=sid, return_params=True)  # never the one-sample path
    return result["image"], result["mask"]


@pytest.fixture
def served(monkeypatch):
    """Makes the general path fail for calls without return_params: such a call must be served."""

    def refuse(self, *args, **kwargs):
        raise AssertionError("the one-sample path did not serve this call")

    real = SAS._apply

    def guarded(self, image, mask, params, return_params):
        if not return_params:
            refuse(self)
        return real(self, image, mask, params, return_params)

    monkeypatch.setattr(SAS, "_apply", guarded)


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize(
    "dtype, channels, mask_dtype",
    [(np.uint8, None, np.uint8), (np.uint8, 3, np.bool_), (np.uint16, None, np.uint16), (np.float32, 1, np.int32),
     (np.float32, None, np.bool_)],
)  # fmt: skip
def test_one_sample_equals_general_path(served, name, dtype, channels, mask_dtype):
    rng = np.random.default_rng(7)
    hw = (37, 53)
    shape = hw if channels is None else (*hw, channels)
    transform = SAS(CONFIGS[name], seed=12345)
    for sid in (0, 1, 2, 3, 17, 2**32 - 1, *rng.integers(0, 2**32, 20).tolist()):
        image, mask = _sample(rng, shape, dtype, hw, mask_dtype)
        before = image.copy(), mask.copy()
        got = transform(image=image, mask=mask, sample_id=sid)
        want = _general(transform, image, mask, sid)
        assert got["image"].dtype == want[0].dtype and got["mask"].dtype == want[1].dtype
        np.testing.assert_array_equal(got["image"], want[0])
        np.testing.assert_array_equal(got["mask"], want[1])
        np.testing.assert_array_equal(image, before[0])  # inputs never modified
        np.testing.assert_array_equal(mask, before[1])


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_channel_first_images_are_served(served, channels, dtype):
    """(C, H, W) images (torch's, MONAI's layout): (1, H, W) is the memory of (H, W); more channels
    go through a channel-last copy each way; the result is C-contiguous (C, H, W), as the general path's."""
    rng = np.random.default_rng(5)
    image, _ = _sample(rng, (channels, 24, 31), dtype, (24, 31), np.uint8)
    for axis, mask in ((0, rng.integers(0, 3, (1, 24, 31)).astype(np.uint8)), ("auto", rng.integers(0, 3, (24, 31)).astype(np.uint8))):
        transform = SAS(seed=8, channel_axis=axis)
        for sid in range(12):
            got = transform(image=image, mask=mask, sample_id=sid)
            want = _general(transform, image, mask, sid)
            assert got["image"].shape == image.shape and got["image"].flags.c_contiguous
            assert got["mask"].shape == mask.shape
            np.testing.assert_array_equal(got["image"], want[0])
            np.testing.assert_array_equal(got["mask"], want[1])


def test_value_range_and_shared_channels(served):
    rng = np.random.default_rng(3)
    image = rng.integers(0, 4096, (40, 30, 3)).astype(np.uint16)
    image[..., 1] = image[..., 0]
    mask = rng.integers(0, 2, (1, 40, 30)).astype(np.uint8)  # (1, H, W)
    transform = SAS(seed=9, value_range=(0, 4095), channels="shared")
    for sid in range(40):
        got = transform(image=image, mask=mask, sample_id=sid)
        want = _general(transform, image, mask, sid)
        np.testing.assert_array_equal(got["image"], want[0])
        np.testing.assert_array_equal(got["mask"], want[1])


@given(
    h=st.integers(1, 9), w=st.integers(1, 9), c=st.sampled_from([None, 1, 2, 4]),
    dtype=st.sampled_from([np.uint8, np.uint16, np.float32]), sid=st.integers(0, 2**32 - 1),
    seed=st.integers(0, 2**64 - 1), p_scale=st.floats(0, 1), lo=st.floats(0.01, 2.0), span=st.floats(0, 2.0),
    center=st.booleans(), area=st.booleans(),
)  # fmt: skip
def test_property_tiny_and_odd(h, w, c, dtype, sid, seed, p_scale, lo, span, center, area):
    config = SASConfig(
        p_scale=p_scale, scale_range=(lo, lo + span), placement="center" if center else "random",
        interpolation="area" if area else "bilinear", peak_range=(1.0, 1000.0), sigma_range=(0.0, 0.5),
    )  # fmt: skip
    rng = np.random.default_rng(sid % 1000)
    image, mask = _sample(rng, (h, w) if c is None else (h, w, c), dtype, (h, w), np.uint8)
    transform = SAS(config, seed=seed, channel_axis=-1 if c is not None else "auto")
    got = transform(image=image, mask=mask, sample_id=sid)
    assert any(transform._plans.values()), "the one-sample path did not serve this call"
    want = _general(transform, image, mask, sid)
    np.testing.assert_array_equal(got["image"], want[0])
    np.testing.assert_array_equal(got["mask"], want[1])


def _numpy_sample(config: SASConfig, *args, **kwargs):
    """``config.sample`` through its NumPy sampler (the reference), not the compiled one."""
    import sas_fast.config as config_module

    real = config_module._compiled_draws
    config_module._compiled_draws = lambda *a: None
    try:
        return config.sample(*args, **kwargs)
    finally:
        config_module._compiled_draws = real


def _assert_same_params(got, want):
    assert got.to_dict() == want.to_dict()
    for name in ("sample_ids", "scale", "crop", "offset", "sigma", "peak"):
        assert getattr(got, name).dtype == getattr(want, name).dtype, name
        assert getattr(got, name).tobytes() == getattr(want, name).tobytes(), name


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiled_sample_equals_numpy_sample(name):
    config = CONFIGS[name]
    ids = np.concatenate([np.arange(0, 5000, 3), [2**32 - 1, 2**31]])
    for shape in ((61, 47), (1, 1), (2, 9)):
        got = config.sample(len(ids), seed=2**63 + 5, sample_ids=ids, shape=shape)
        _assert_same_params(got, _numpy_sample(config, len(ids), seed=2**63 + 5, sample_ids=ids, shape=shape))


@given(
    p_scale=st.floats(0, 1), p_noise=st.floats(0, 1), lo=st.floats(1e-3, 4.0), span=st.floats(0, 4.0),
    weights=st.lists(st.floats(0, 10), min_size=3, max_size=3).filter(lambda w: sum(w) > 0),
    sigma=st.tuples(st.floats(0, 1), st.floats(0, 1)), peak=st.tuples(st.floats(0.5, 1e4), st.floats(0, 1e4)),
    center=st.booleans(), h=st.integers(1, 700), w=st.integers(1, 700), seed=st.integers(0, 2**64 - 1),
    first=st.integers(0, 2**32 - 64),
)  # fmt: skip
def test_property_compiled_sample_equals_numpy_sample(p_scale, p_noise, lo, span, weights, sigma, peak, center, h, w,
                                                      seed, first):  # fmt: skip
    config = SASConfig(
        p_scale=p_scale, p_noise=p_noise, scale_range=(lo, lo + span), placement="center" if center else "random",
        noise=dict(zip(("poisson", "speckle", "gaussian"), weights)), sigma_range=(min(sigma), max(sigma)),
        peak_range=(peak[0], peak[0] + peak[1]),
    )  # fmt: skip
    ids = np.arange(first, first + 64)
    got = config.sample(64, seed=seed, sample_ids=ids, shape=(h, w))
    _assert_same_params(got, _numpy_sample(config, 64, seed=seed, sample_ids=ids, shape=(h, w)))


def test_huge_thumbnails_leave_sampling_to_numpy():
    config = SASConfig(scale_range=(1e30, 1e30))
    import sas_fast.config as config_module

    sids = np.arange(4, dtype=np.uint32)
    assert config_module._compiled_draws(config._policy, seed_to_key(1), sids, 8, 8) is None  # refused
    with np.errstate(invalid="ignore"):
        want = _numpy_sample(config, 4, seed=1, shape=(8, 8))
        got = config.sample(4, seed=1, shape=(8, 8))
    assert got.to_dict() == want.to_dict()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_compiled_draw_equals_plans(name):
    """draw_sample's record equals pack_samples of the plans built from SASConfig.sample (NumPy)."""
    config = CONFIGS[name]
    seed, (height, width) = 2**40 + 3, (61, 47)
    key = seed_to_key(seed)
    policy = config.policy_record()
    ids = np.arange(0, 3000, 7, dtype=np.int64)
    params = _numpy_sample(config, len(ids), seed=seed, sample_ids=ids, shape=(height, width))
    geo = make_geometry((len(ids), height, width, 1), np.dtype(np.uint8), scale=params.scale, offset=params.offset,
                        crop=params.crop, canvas=params.canvas, interpolation=params.interpolation)  # fmt: skip
    noise = make_noise(len(ids), np.dtype(np.uint8), kind=params.kind, sigma=params.sigma, peak=params.peak,
                       sids=params.sample_ids)  # fmt: skip
    want = pack_samples(len(ids), geo, noise)
    want["taps"] = 0  # the CUDA backend's area table offsets: the Numba kernels never read them
    got = np.zeros(len(ids), SAMPLE_DTYPE)
    for i, sid in enumerate(ids):
        assert draw_sample(policy, int(key[0]), int(key[1]), int(sid), height, width, got[i : i + 1]) == DRAW_OK
    assert got.tobytes() == want.tobytes()


def test_refused_draws_raise_the_general_error():
    # a peak below float32's smallest value: make_noise refuses it; so must the one-sample call
    transform = SAS(SASConfig(peak_range=(1e-50, 1e-50)), seed=0)
    image, mask = np.zeros((8, 8), np.uint8), np.ones((8, 8), np.uint8)
    with pytest.raises(ValueError, match="peak"):
        transform(image=image, mask=mask, sample_id=0)
    key = seed_to_key(0)
    rec = np.zeros(1, SAMPLE_DTYPE)
    assert draw_sample(transform.config.policy_record(), int(key[0]), int(key[1]), 0, 8, 8, rec) == DRAW_REFUSED
    huge = SAS(SASConfig(scale_range=(1e7, 1e7)), seed=0)  # a thumbnail side over MAX_SIDE
    with pytest.raises(ValueError, match="thumbnail"):
        huge(image=image, mask=mask, sample_id=0)


def test_input_errors_match_the_general_path():
    transform = SAS(seed=0)
    mask = np.ones((6, 6), np.uint8)
    bad = np.full((6, 6), 0.5, np.float32)
    bad[2, 3] = np.nan
    with pytest.raises(ValueError, match=r"NaN or inf pixel at \(n, y, x, c\) = \(0, 2, 3, 0\)"):
        transform(image=bad, mask=mask, sample_id=0)
    outside = np.full((6, 6), 0.5, np.float32)
    outside[1, 1] = 1.5  # inside the mask: it would get noise
    with pytest.raises(ValueError, match="outside the value range"):
        transform(image=outside, mask=mask, sample_id=0)
    outside_unmasked = outside.copy()
    m = mask.copy()
    m[1, 1] = 0  # outside the mask: no noise, no error
    got = transform(image=outside_unmasked, mask=m, sample_id=0)
    want = _general(transform, outside_unmasked, m, 0)
    np.testing.assert_array_equal(got["image"], want[0])
    with pytest.raises(ValueError, match="sample_id"):
        transform(image=outside_unmasked, mask=m, sample_id=2**32)
    twelve_bit = SAS(seed=0, value_range=(0, 4095))
    deep = np.full((6, 6), 1000, np.uint16)
    deep[4, 4] = 5000  # inside the mask, above the 12-bit range
    with pytest.raises(ValueError, match="outside the value range"):
        twelve_bit(image=deep, mask=mask, sample_id=0)
    deep[4, 4] = 4095
    got = twelve_bit(image=deep, mask=mask, sample_id=0)
    np.testing.assert_array_equal(got["image"], _general(twelve_bit, deep, mask, 0)[0])


def test_a_refused_first_image_does_not_stop_the_path(served):
    transform = SAS(seed=0)
    mask = np.ones((6, 6), np.uint8)
    bad = np.full((6, 6), np.nan, np.float32)
    with pytest.raises(AssertionError, match="did not serve"):  # NaN: the general path decides (and raises)
        transform(image=bad, mask=mask, sample_id=0)
    good = np.full((6, 6), 0.5, np.float32)
    for sid in range(5):  # served: the refusal above left no "not served" mark for this shape
        transform(image=good, mask=mask, sample_id=sid)


def test_strided_and_unserved_inputs_take_the_general_path(monkeypatch):
    general = []
    real = SAS._apply
    monkeypatch.setattr(SAS, "_apply", lambda self, *args: general.append(args[-1]) or real(self, *args))
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    mask = rng.integers(0, 3, (20, 30)).astype(np.int64)  # int64 labels: the general path converts them
    for img, msk in ((image[:, ::-1], mask.astype(np.uint8)), (image, mask), (image.transpose(2, 0, 1), mask.astype(np.uint8))):
        axis = 0 if img.shape[0] == 3 else "auto"
        t = SAS(seed=4, channel_axis=axis)
        got = t(image=img, mask=msk, sample_id=5)
        want = _general(t, img, msk, 5)
        np.testing.assert_array_equal(got["image"], want[0])
        np.testing.assert_array_equal(got["mask"], want[1])
        assert got["mask"].dtype == msk.dtype
    assert general == [False, True] * 3  # each call without return_params went the general way too


def test_cpu_tensors_are_served_and_come_back_as_tensors(served):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    image = torch.from_numpy(rng.integers(0, 256, (30, 20, 3), dtype=np.uint8))
    mask = torch.from_numpy(rng.integers(0, 3, (30, 20)).astype(np.uint8))
    transform = SAS(seed=3)
    for sid in range(10):
        got = transform(image=image, mask=mask, sample_id=sid)
        want = transform(image=image.numpy(), mask=mask.numpy(), sample_id=sid, return_params=True)
        assert type(got["image"]) is torch.Tensor and type(got["mask"]) is torch.Tensor
        np.testing.assert_array_equal(got["image"].numpy(), want["image"])
        np.testing.assert_array_equal(got["mask"].numpy(), want["mask"])


def test_changed_attributes_and_pickles_drop_the_plans():
    rng = np.random.default_rng(2)
    image, mask = rng.integers(0, 256, (16, 16), dtype=np.uint8), rng.integers(0, 2, (16, 16)).astype(np.uint8)
    transform = SAS(seed=1)
    first = transform(image=image, mask=mask, sample_id=3)["image"]
    transform.seed = 2
    assert not transform._plans
    np.testing.assert_array_equal(transform(image=image, mask=mask, sample_id=3)["image"],
                                  SAS(seed=2)(image=image, mask=mask, sample_id=3, return_params=True)["image"])  # fmt: skip
    transform.config = SASConfig(p_noise=0.0)
    no_noise = transform(image=image, mask=mask, sample_id=3)["image"]
    np.testing.assert_array_equal(no_noise, SAS(SASConfig(p_noise=0.0), seed=2)(image=image, mask=mask, sample_id=3,
                                  return_params=True)["image"])  # fmt: skip
    clone = pickle.loads(pickle.dumps(SAS(seed=1)))
    assert clone._plans == {} and "_plans" not in SAS(seed=1).__getstate__()
    np.testing.assert_array_equal(clone(image=image, mask=mask, sample_id=3)["image"], first)


def test_many_shapes_keep_the_plan_cache_bounded():
    from sas_fast.transform import _MAX_PLANS

    transform = SAS(seed=0)
    for side in range(1, _MAX_PLANS + 10):
        transform(image=np.zeros((side, 3), np.uint8), mask=np.ones((side, 3), np.uint8), sample_id=0)
        assert len(transform._plans) <= _MAX_PLANS


def test_log_uniform_uses_the_c_library_pow():
    import math

    from sas_fast.config import log_uniform

    u = np.random.default_rng(0).random(2000)
    np.testing.assert_array_equal(log_uniform(3.0, 700.0, u), [3.0 * math.pow(700.0 / 3.0, v) for v in u])
    assert (log_uniform(5.0, 5.0, u) == 5.0).all()


def test_threads_sharing_one_transform_match_serial_calls(served):
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(11)
    images = rng.integers(0, 256, (16, 40, 40), dtype=np.uint8)
    masks = rng.integers(0, 2, (16, 40, 40)).astype(np.uint8)
    transform = SAS(SASConfig(noise={"speckle": 1, "poisson": 1}), seed=21)

    def call(i: int):
        out = transform(image=images[i % 16], mask=masks[i % 16], sample_id=i)
        return out["image"], out["mask"]

    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(call, range(64)))
    for i, (image, mask) in enumerate(together):
        want = _general(transform, images[i % 16], masks[i % 16], i)
        np.testing.assert_array_equal(image, want[0])
        np.testing.assert_array_equal(mask, want[1])


def _bad_inputs():
    m = np.ones((6, 7), np.uint8)
    nan = np.full((6, 7), 0.5, np.float32)
    nan[0, 0] = np.nan
    wide = np.ones((6, 7), np.int64)
    wide[1, 1] = 2**40
    return {
        "int8 image": (np.ones((6, 7), np.int8), m),
        "float64 image": (np.ones((6, 7)), m),
        "big-endian image": (np.ones((6, 7), ">u2"), m),
        "NaN pixel": (nan, m),
        "1-D image": (np.ones(7, np.uint8), m[0]),
        "empty image": (np.ones((0, 7), np.uint8), np.ones((0, 7), np.uint8)),
        "mask shape": (np.ones((6, 7), np.uint8), np.ones((6, 8), np.uint8)),
        "float mask": (np.ones((6, 7), np.uint8), m.astype(np.float32)),
        "labels beyond int32": (np.ones((6, 7), np.uint8), wide),
        "ambiguous layout": (np.ones((3, 3, 3), np.uint8), np.ones((3, 3), np.uint8)),
    }


@pytest.mark.parametrize("case", sorted(_bad_inputs()))
def test_bad_inputs_raise_what_the_general_path_raises(case):
    image, mask = _bad_inputs()[case]
    with pytest.raises(Exception) as general:
        SAS(seed=0)(image=image, mask=mask, sample_id=1, return_params=True)
    with pytest.raises(type(general.value)) as got:
        SAS(seed=0)(image=image, mask=mask, sample_id=1)
    assert str(got.value) == str(general.value)
