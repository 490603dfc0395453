"""In-mask noise of the reference (SPEC §3-4): distributions, locality and rounding."""

import numpy as np
import pytest
from scipy import stats
from skimage.util import random_noise

import sas_fast
from sas_fast.philox import seed_to_key
from sas_fast.samplers import poisson
from tests.conftest import ellipse_masks, random_image


def constant_patch(value=0.5, size=256):
    image = np.full((1, size, size), value, np.float32)
    mask = np.ones((1, size, size), np.uint8)
    return image, mask


@pytest.mark.parametrize(("sigma", "seed"), [(0.05, 1), (0.1, 2), (0.2, 3), (0.3, 4)])
def test_speckle_matches_scikit_image(sigma, seed):
    image, mask = constant_patch()
    ours = sas_fast.noise_in_mask(image, mask, kind="speckle", sigma=sigma, seed=seed, clip=False, backend="numpy")
    theirs = random_noise(image[0], mode="speckle", var=sigma**2, rng=seed, clip=False)
    ours_res = ((ours[0] - 0.5) / 0.5).ravel()
    theirs_res = ((theirs - 0.5) / 0.5).ravel()
    assert stats.ks_2samp(ours_res, theirs_res).pvalue > 0.01
    assert abs(ours_res.std() - sigma) < 0.02 * sigma


def test_gaussian_is_additive_normal():
    image, mask = constant_patch(0.5)
    out = sas_fast.noise_in_mask(image, mask, kind="gaussian", sigma=0.07, seed=5, clip=False, backend="numpy")
    res = (out[0] - 0.5).ravel() / 0.07
    assert stats.kstest(res, "norm").pvalue > 0.01


@pytest.mark.parametrize("lam", [0.3, 4.0, 9.9, 10.0, 37.0, 1000.0])
def test_poisson_counts_match_numpy(lam):
    n = 40_000
    ours = poisson(np.full(n, lam), np.arange(n, dtype=np.uint32), 7, 0, seed_to_key(11))
    theirs = np.random.default_rng(12).poisson(lam, size=n)
    # chi-square on the pooled histogram, bins with < 20 expected merged into the tails
    edges = np.unique(np.quantile(np.concatenate([ours, theirs]), np.linspace(0, 1, 30)))
    if edges.size < 3:
        edges = np.arange(-0.5, max(ours.max(), theirs.max()) + 1.5)
    table = np.stack([np.histogram(ours, bins=edges)[0], np.histogram(theirs, bins=edges)[0]])
    table = table[:, table.sum(axis=0) > 0]
    assert stats.chi2_contingency(table).pvalue > 0.01
    assert abs(ours.mean() - lam) < 5 * np.sqrt(lam / n)


def test_poisson_zero_mean_gives_zero():
    assert poisson(np.zeros(5), np.arange(5, dtype=np.uint32), 0, 0, seed_to_key(0)).tolist() == [0] * 5


def test_poisson_image_has_the_right_shot_noise():
    image = np.full((1, 200, 200), 0.25, np.float32)
    mask = np.ones((1, 200, 200), bool)
    out = sas_fast.noise_in_mask(image, mask, kind="poisson", peak=64.0, seed=3, backend="numpy")
    counts = out[0] * 64.0  # y = k / peak
    assert np.allclose(counts, np.round(counts), atol=1e-4)
    assert abs(counts.mean() - 16.0) < 0.1 and abs(counts.var() - 16.0) < 0.6


@pytest.mark.parametrize("kind", ["speckle", "gaussian", "poisson", "none"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_pixels_outside_the_selection_are_untouched(rng, kind, dtype):
    image = random_image(rng, (3, 40, 50, 2), dtype)
    mask = rng.integers(0, 3, size=(3, 40, 50), dtype=np.int32)
    out = sas_fast.noise_in_mask(image, mask, kind=kind, sigma=0.3, labels=[2], backend="numpy")
    outside = mask != 2
    np.testing.assert_array_equal(out[outside], image[outside])
    if kind != "none":
        assert (out[~outside] != image[~outside]).mean() > 0.5
    else:
        np.testing.assert_array_equal(out, image)


def test_integer_output_is_rounded_and_clipped():
    image = np.array([[0, 128, 255, 250]], np.uint8)[None]
    mask = np.ones_like(image, bool)
    out = sas_fast.noise_in_mask(image, mask, kind="gaussian", sigma=0.5, seed=1, backend="numpy")
    assert out.dtype == np.uint8
    # recompute by the formula: x + sigma*z, clip to [0, 1], rint(255 y)
    from sas_fast.samplers import normal

    z = normal(np.arange(4, dtype=np.uint32), 0, 0, seed_to_key(1))
    x = image[0, 0].astype(np.float32) * np.float32(1 / 255)
    y = np.clip(x + np.float32(0.5) * z, 0, 1)
    assert out[0, 0].tolist() == np.rint(np.float32(255) * y).astype(int).tolist()


def test_float_value_range_and_clip_flag():
    image = np.full((1, 50, 50), 100.0, np.float32)
    mask = np.ones((1, 50, 50), np.uint8)
    clipped = sas_fast.noise_in_mask(image, mask, kind="gaussian", sigma=2.0, value_range=(0, 200), backend="numpy")
    free = sas_fast.noise_in_mask(
        image, mask, kind="gaussian", sigma=2.0, value_range=(0, 200), clip=False, backend="numpy"
    )
    assert clipped.min() == 0.0 and clipped.max() == 200.0
    assert free.min() < -100 and free.max() > 300
    np.testing.assert_array_equal(np.clip(free, 0, 200), clipped)


def test_masks_of_every_dtype_select_the_same_pixels(rng):
    image = random_image(rng, (2, 30, 30), np.uint8)
    base = ellipse_masks(rng, 2, 30, 30)
    outs = [
        sas_fast.noise_in_mask(image, base.astype(dt), seed=4, backend="numpy")
        for dt in (np.bool_, np.uint8, np.uint16, np.int32)
    ]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


HUGE_PEAKS = [1e10, 2.0**62, 2.0**63, 1e19, 1e20, 1e30, 3e38]


def test_poisson_counts_do_not_wrap_for_huge_means():
    # Counts are float64, as in the Numba sampler: int64 counts wrapped to -2**63 beyond 2**63.
    lam = np.array([1e18, 2.0**63, 1e19, 1e20, 7.84e29, 3e38])
    k = poisson(lam, np.arange(lam.size, dtype=np.uint32), 0, 0, seed_to_key(1))
    assert k.dtype == np.float64 and np.all(np.isfinite(k)) and np.all(k >= 0)
    np.testing.assert_allclose(k, lam, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_poisson_with_huge_peaks_matches_numba(rng, dtype):
    # The probe's case: peak=1e30 on uint8 200 gave 0 with the NumPy reference, 200 with Numba.
    if "numba" not in sas_fast.available_backends():
        pytest.skip("the numba backend is not available here")
    image = random_image(rng, (2, 24, 24), dtype)
    image[0, 0, 0] = 200 if dtype == np.uint8 else image[0, 0, 0]
    mask = np.ones(image.shape, np.uint8)
    for peak in HUGE_PEAKS:
        ref = sas_fast.noise_in_mask(image, mask, kind="poisson", peak=peak, seed=9, backend="numpy")
        fast = sas_fast.noise_in_mask(image, mask, kind="poisson", peak=peak, seed=9, backend="numba")
        np.testing.assert_array_equal(ref, fast, err_msg=f"peak={peak}")
        # With such peaks shot noise all but vanishes (sd <= 1e-5 of the range): no value collapses to 0.
        span = 1.0 if dtype == np.float32 else float(np.iinfo(dtype).max)
        change = np.abs(ref.astype(np.float64) - image.astype(np.float64)) / span
        assert change.max() <= 1e-4 + (0 if dtype == np.float32 else 1 / span), peak
    lesion = np.full((1, 8, 8), 200, np.uint8)
    out = sas_fast.noise_in_mask(lesion, np.ones_like(lesion), kind="poisson", peak=1e30, backend="numpy")
    assert out.tolist() == lesion.tolist()
