"""Area interpolation (SPEC §2b): the reference against OpenCV's INTER_AREA, its tap tables, every
backend against the reference bit for bit, and the policy and record plumbing."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sas_fast
from sas_fast import SASConfig, SASParams, geometry
from sas_fast.geometry import AREA_EPSILON, area_taps, thumbnail_sides
from tests.conftest import random_image
from tests.test_numba_backend import IMAGE_DTYPES, MASK_DTYPES, assert_pairs_equal, both, labelled_masks
from tests.test_reference_geometry import opencv_paste

#: Odd, prime, one-row and one-column shapes (H, W).
SHAPES = [(1, 1), (1, 23), (23, 1), (2, 3), (5, 7), (31, 37), (64, 64), (97, 61), (128, 96)]
#: Non-integer and integer shrink factors, 1 (identity) and enlargements (bilinear there).
SCALES = [0.011, 0.1, 0.13, 0.25, 1 / 3, 0.37, 0.5, 0.61, 0.77, 0.9, 0.97, 1.0, 1.4, 2.5]


def _span(dtype) -> float:
    return 1.0 if np.dtype(dtype) == np.float32 else float(np.iinfo(dtype).max)


# ----------------------------------------------------------------------------- the anchor: OpenCV


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [None, 3])
def test_reference_matches_opencv_inter_area_when_shrinking(rng, dtype, channels):
    """uint8 and uint16 within 1 (OpenCV's integer fast path for exact factors), float32 within 1e-4
    of the range, over shrink factors, crops and offsets; the mask stays nearest-exact."""
    worst = 0.0
    compared = 0
    for h, w in SHAPES:
        image = random_image(rng, (h, w) if channels is None else (h, w, channels), dtype)
        mask = rng.integers(0, 3, size=(h, w), dtype=np.uint8)
        for scale in SCALES:
            if scale > 1:  # enlarging: SPEC §2b is bilinear there, OpenCV's INTER_AREA is not (SPEC_NOTES)
                continue
            sh, sw = rng.integers(max(1, h // 2), h + 1), rng.integers(max(1, w // 2), w + 1)
            crop = (int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1)), int(sh), int(sw))
            canvas = (h + 3, w + 2)
            offset = (int(rng.integers(-h // 2, h)), int(rng.integers(-w // 2, w)))
            got, got_mask = sas_fast.rescale_paste(
                image, mask, scale=scale, offset=offset, crop=crop, canvas=canvas, backend="numpy", interpolation="area"
            )
            want, want_mask = opencv_paste(image, mask, scale, offset, crop, canvas, interpolation=cv2.INTER_AREA)
            worst = max(worst, float(np.abs(got.astype(np.float64) - want).max(initial=0)))
            np.testing.assert_array_equal(got_mask, sas_fast.rescale_paste(
                image, mask, scale=scale, offset=offset, crop=crop, canvas=canvas, backend="numpy")[1])  # fmt: skip
            compared += 1
    assert compared > 50
    assert worst <= (1e-4 if np.dtype(dtype) == np.float32 else 1.0)


@pytest.mark.parametrize("factor", [2, 3, 4, 5, 8])
def test_exact_integer_factors_within_one_of_opencv(rng, factor):
    """OpenCV averages exact integer factors in integers (its fast path); SPEC §2b's float taps stay within 1."""
    image = random_image(rng, (8 * factor * 3, 8 * factor * 2), np.uint8)
    h, w = image.shape[0] // factor, image.shape[1] // factor
    got, _ = sas_fast.rescale_paste(image, scale=1 / factor, offset=(0, 0), canvas=(h, w), backend="numpy",
                                    interpolation="area")  # fmt: skip
    want = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    assert np.abs(got.astype(int) - want).max() <= 1
    mean = image.reshape(h, factor, w, factor).mean(axis=(1, 3))  # the exact block means
    assert np.abs(got - mean).max() <= 0.5 + 1e-3


def test_scale_one_and_enlargement(rng):
    """Scale 1 stays the identity; an axis that is not shrunk takes the bilinear taps, so enlarging
    with area is bilinear bit for bit."""
    image = random_image(rng, (3, 29, 31, 2), np.float32)
    same, _ = sas_fast.rescale_paste(image, scale=1.0, offset=(0, 0), backend="numpy", interpolation="area")
    np.testing.assert_array_equal(same, image)
    for scale in (1.3, 2.0, 3.7):
        kw = dict(scale=scale, offset=(-4, 3), canvas=(40, 45), backend="numpy")
        area, _ = sas_fast.rescale_paste(image, interpolation="area", **kw)
        bilinear, _ = sas_fast.rescale_paste(image, **kw)
        np.testing.assert_array_equal(area.view(np.uint32), bilinear.view(np.uint32))


def test_one_axis_shrunk_takes_area_taps_on_that_axis_only(rng):
    """A 40 x 1 crop shrunk to 10 x 1: area down the rows (each output the mean of 4), nothing across."""
    column = random_image(rng, (40, 1), np.float32)
    got, _ = sas_fast.rescale_paste(column, scale=0.25, offset=(0, 0), canvas=(10, 1), backend="numpy",
                                    interpolation="area")  # fmt: skip
    np.testing.assert_allclose(got[:, 0], column[:, 0].reshape(10, 4).mean(axis=1), rtol=1e-6)
    row = column.T.copy()
    got_row, _ = sas_fast.rescale_paste(row, scale=0.25, offset=(0, 0), canvas=(1, 10), backend="numpy",
                                        interpolation="area")  # fmt: skip
    np.testing.assert_array_equal(got_row[0], got[:, 0])


def test_area_averages_speckle_where_bilinear_aliases(rng):
    """Shrinking iid noise by 4: area averages the 16 pixels of each cell (std / 4); bilinear
    averages 2 x 2 of them (its taps fall halfway between pixels: std / 2) and skips the other 12."""
    noise = rng.normal(0.5, 0.1, size=(512, 512)).astype(np.float32)
    area, _ = sas_fast.rescale_paste(noise, scale=0.25, offset=(0, 0), canvas=(128, 128), backend="numpy",
                                     interpolation="area")  # fmt: skip
    bilinear, _ = sas_fast.rescale_paste(noise, scale=0.25, offset=(0, 0), canvas=(128, 128), backend="numpy")
    assert 0.0225 < area.std() < 0.0275 and 0.045 < bilinear.std() < 0.055
    assert abs(area.mean() - noise.mean()) < 1e-3


# ----------------------------------------------------------------------------- the tap tables


def _opencv_area_tab(src: int, side: int) -> list[list[tuple[int, float]]]:
    """OpenCV's computeResizeAreaTab, transcribed line by line (scale = src / side, as SPEC §2b)."""
    scale = src / side
    taps = []
    for dx in range(side):
        fsx1 = dx * scale
        fsx2 = fsx1 + scale
        cell = min(scale, src - fsx1)
        sx1, sx2 = math.ceil(fsx1), math.floor(fsx2)
        sx2 = min(sx2, src - 1)
        sx1 = min(sx1, sx2)
        row = []
        if sx1 - fsx1 > 1e-3:
            row.append((sx1 - 1, float(np.float32((sx1 - fsx1) / cell))))
        row += [(sx, float(np.float32(1.0 / cell))) for sx in range(sx1, sx2)]
        if fsx2 - sx2 > 1e-3:
            row.append((sx2, float(np.float32(min(min(fsx2 - sx2, 1.0), cell) / cell))))
        taps.append(row)
    return taps


@pytest.mark.parametrize("src", [2, 3, 7, 10, 37, 101, 512, 1013, 2001, 2048])
def test_area_tables_are_computeresizeareatab(src):
    for side in sorted({1, 2, 3, src // 7 or 1, src // 4 or 1, src // 3 or 1, src // 2 or 1, src - 1} - {src, 0}):
        taps = area_taps(np.arange(side), src, side)
        want = _opencv_area_tab(src, side)
        got = [list(zip(taps.index[t, : taps.count[t]].tolist(), taps.weight[t, : taps.count[t]].tolist()))
               for t in range(side)]  # fmt: skip
        assert got == want
        assert taps.weight.dtype == np.float32 and (taps.count >= 1).all()
        used = np.arange(taps.index.shape[1]) < taps.count[:, None]
        assert (np.diff(taps.index, axis=1)[used[:, 1:]] == 1).all()  # consecutive source pixels
        # the coverage fractions sum to 1, less what the threshold drops (under 1e-3 pixel a side)
        assert np.allclose(np.where(used, taps.weight, 0).sum(axis=1), 1.0, atol=2 * AREA_EPSILON)


def test_ratios_just_above_one_give_one_tap_coordinates():
    """A cell barely wider than a pixel can cover one source pixel only, its partial neighbours under
    the threshold: one tap, whose weight the tables (checked against OpenCV above) keep."""
    assert AREA_EPSILON == 1e-3
    assert (area_taps(np.arange(2000), 2001, 2000).count == 1).any()


def test_thumbnail_sides_are_the_spec_rule():
    assert thumbnail_sides(np.array([1, 10, 512]), 0.25).tolist() == [1.0, 3.0, 128.0]  # floor(x + 0.5), at least 1
    assert thumbnail_sides(7, 0.5) == 4.0 and geometry.ratios(7, 4) == np.float32(7 / 4)


# ----------------------------------------------------------------------------- backends vs the reference


@pytest.mark.parametrize("mask_dtype", MASK_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_area_rescale_paste_equals_reference(backend, rng, dtype, mask_dtype, channels):
    n, h, w = 7, 23, 29
    image = random_image(rng, (n, h, w, channels), dtype)
    mask = labelled_masks(rng, n, h, w, mask_dtype)
    # per sample: tiny, quarter, odd factor, identity, enlarge, one-column crop, crossing every border
    scale = [0.05, 0.25, 0.37, 1.0, 1.6, 0.4, 0.71]
    offset = [(3, 5), (-4, -9), (0, 0), (0, 0), (-10, 12), (2, 3), (-6, 20)]
    crop = [(0, 0, h, w), (2, 3, 19, 20), (0, 0, h, w), (0, 0, h, w), (5, 1, 9, 26), (1, 7, 20, 1), (0, 0, h, w)]
    got, want = both(
        sas_fast.rescale_paste, backend, image, mask, scale=scale, offset=offset, crop=crop, canvas=(21, 31),
        fill=3, mask_fill=1, interpolation="area",
    )  # fmt: skip
    assert_pairs_equal(got, want)


@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("kinds", [("speckle",), ("speckle", "poisson", "gaussian", "none")], ids=["speckle", "mixed"])
def test_area_augment_fuses_with_noise(backend, rng, dtype, kinds):
    """Fused augment with area params = area rescale_paste then noise, as the reference computes it."""
    n, h, w = 6, 41, 37
    image = random_image(rng, (n, h, w), dtype)
    mask = labelled_masks(rng, n, h, w, np.uint8)
    config = SASConfig(scale_range=(0.1, 1.3), noise={k: 1.0 for k in kinds if k != "none"}, p_noise=0.8,
                       peak_range=(20.0, 300.0), interpolation="area")  # fmt: skip
    params = config.sample(n, seed=3, masks=mask)
    got, want = both(sas_fast.augment, backend, image, mask, params, seed=11)
    np.testing.assert_array_equal(got[1], want[1])
    if "poisson" not in kinds:
        np.testing.assert_array_equal(got[0], want[0])
    else:  # Poisson counts may differ by one on a tiny fraction of pixels (tests/tolerances.py)
        assert np.mean(got[0] != want[0]) < 1e-3
    clean, clean_mask = sas_fast.rescale_paste(image, mask, scale=params.scale, offset=params.offset, crop=params.crop,
                                               backend="numpy", interpolation="area")  # fmt: skip
    np.testing.assert_array_equal(clean_mask, want[1])
    np.testing.assert_array_equal(want[0][want[1] == 0], clean[want[1] == 0])


def test_per_sample_interpolation_mixes_in_one_batch(any_backend, rng):
    image = random_image(rng, (3, 30, 34, 3), np.uint8)
    mixed, _ = sas_fast.rescale_paste(image, scale=0.3, backend=any_backend, interpolation=["area", "bilinear", "area"])
    area, _ = sas_fast.rescale_paste(image, scale=0.3, backend="numpy", interpolation="area")
    bilinear, _ = sas_fast.rescale_paste(image, scale=0.3, backend="numpy")
    np.testing.assert_array_equal(mixed[[0, 2]], area[[0, 2]])
    np.testing.assert_array_equal(mixed[1], bilinear[1])
    assert not np.array_equal(area, bilinear)


@st.composite
def area_cases(draw):
    """Small batches shrunk (mostly) by area: odd sizes, crops, offsets across the borders."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    crops = []
    for _ in range(n):
        sy0, sx0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        crops.append((sy0, sx0, draw(st.integers(1, h - sy0)), draw(st.integers(1, w - sx0))))
    return dict(
        n=n, h=h, w=w, crops=crops, dtype=draw(st.sampled_from(IMAGE_DTYPES)), channels=draw(st.sampled_from([1, 2, 3])),
        scales=draw(st.lists(st.floats(0.02, 1.2), min_size=n, max_size=n)),
        offsets=draw(st.lists(st.tuples(st.integers(-30, 30), st.integers(-30, 30)), min_size=n, max_size=n)),
        canvas=(draw(st.integers(1, 30)), draw(st.integers(1, 30))), seed=draw(st.integers(0, 2**32 - 1)),
    )  # fmt: skip


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=area_cases())
def test_property_area_equals_reference(backend, case):
    rng = np.random.default_rng(case["seed"])
    image = random_image(rng, (case["n"], case["h"], case["w"], case["channels"]), case["dtype"])
    mask = rng.integers(0, 3, size=(case["n"], case["h"], case["w"]), dtype=np.uint8)
    got, want = both(
        sas_fast.rescale_paste, backend, image, mask, scale=case["scales"], offset=case["offsets"], crop=case["crops"],
        canvas=case["canvas"], interpolation="area",
    )  # fmt: skip
    assert_pairs_equal(got, want)


def test_float32_signed_zeros_and_negatives_are_exact(backend):
    """Padding taps must add nothing, not even turn a -0.0 sum into +0.0."""
    image = np.zeros((2, 17, 13), np.float32)
    image[0] = -0.0
    image[1, ::2] = -1.5
    image[1, 1::2] = -0.0
    got, _ = sas_fast.rescale_paste(image, scale=0.3, offset=(1, 1), backend=backend, channel_axis=None,
                                    interpolation="area")  # fmt: skip
    want, _ = sas_fast.rescale_paste(image, scale=0.3, offset=(1, 1), backend="numpy", channel_axis=None,
                                     interpolation="area")  # fmt: skip
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    assert np.signbit(want[0, 1:6, 1:5]).all()


# ----------------------------------------------------------------------------- the policy and the record


def test_config_records_interpolation_and_replays(rng):
    masks = (rng.random((5, 40, 30)) < 0.3).astype(np.uint8)
    bilinear = SASConfig().sample(5, seed=2, masks=masks)
    area = SASConfig(interpolation="area").sample(5, seed=2, masks=masks)
    assert list(bilinear.interpolation) == ["bilinear"] * 5 and list(area.interpolation) == ["area"] * 5
    # the same draws: interpolation is a constant of the policy, drawn from no slot
    for name in ("scale", "crop", "offset", "kind", "sigma", "peak"):
        np.testing.assert_array_equal(getattr(area, name), getattr(bilinear, name))
    again = SASParams.from_json(area.to_json())
    assert again.to_json() == area.to_json() and json.loads(area.to_json())["interpolation"] == ["area"] * 5
    assert list(SASParams.concatenate([area[:2], bilinear[2:]]).interpolation) == ["area"] * 2 + ["bilinear"] * 3
    image = random_image(rng, (5, 40, 30), np.uint8)
    fused = sas_fast.augment(image, masks, again, seed=1, backend="numpy")
    clean, clean_mask = sas_fast.rescale_paste(image, masks, scale=area.scale, offset=area.offset, crop=area.crop,
                                               backend="numpy", interpolation="area")  # fmt: skip
    noisy = sas_fast.noise_in_mask(clean, clean_mask, kind=list(area.kind), sigma=area.sigma, peak=area.peak,
                                   seed=1, sample_ids=area.sample_ids, backend="numpy")  # fmt: skip
    np.testing.assert_array_equal(fused[0], noisy)
    override = sas_fast.augment(image, masks, bilinear, seed=1, backend="numpy", interpolation="area")
    np.testing.assert_array_equal(override[0], fused[0])
    assert SASConfig.from_dict(SASConfig(interpolation="area").to_dict()).interpolation == "area"


def test_records_written_before_interpolation_load_as_bilinear():
    data = SASConfig().sample(3, seed=0, shape=(20, 20)).to_dict()
    del data["interpolation"]
    assert list(SASParams.from_dict(data).interpolation) == ["bilinear"] * 3


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: SASConfig(interpolation="nearest"), r"interpolation: expected one of \['bilinear', 'area'\]"),
        (lambda: sas_fast.rescale_paste(np.zeros((4, 4), np.uint8), scale=0.5, interpolation="cubic"),
         r"interpolation: unknown interpolation\(s\) \['cubic'\]"),
        (lambda: sas_fast.rescale_paste(np.zeros((2, 4, 4), np.uint8), scale=0.5, interpolation=["area"],
                                        channel_axis=None), "interpolation: expected one name or 2 names"),
        (lambda: SASParams.from_dict({**SASConfig().sample(1, seed=0, shape=(4, 4)).to_dict(), "interpolation": ["x"]}),
         "params: interpolation must be 1 names among"),
    ],
)  # fmt: skip
def test_bad_interpolation_names_the_accepted_ones(call, message):
    with pytest.raises(ValueError, match=message):
        call()
