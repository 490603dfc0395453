"""Compiled backends (Numba; CUDA where it runs) against the NumPy reference, SPEC §2-4.

Geometry, speckle and gaussian noise must be bit-identical; Poisson counts may differ by one on a
tiny fraction of pixels (libm vs NumPy float64 ``exp``/``log``), bounded by ``tests/tolerances.py``.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sas_fast
from sas_fast.arrays import from_backend, to_backend
from sas_fast.backends import load
from sas_fast.backends._numba_poisson import poisson, settle_block0
from sas_fast.backends._numba_rng import philox
from sas_fast.plan import dtype_range, make_geometry, make_noise
from tests.conftest import ellipse_masks, random_image
from tests.tolerances import POISSON_MISMATCH_COUNTS, POISSON_MISMATCH_FRACTION

IMAGE_DTYPES = [np.uint8, np.uint16, np.float32]
MASK_DTYPES = [np.bool_, np.uint8, np.uint16, np.int32]


def labelled_masks(rng, n, h, w, dtype):
    """Ellipses of labels 1, 2, 3 (bool: True), overlapping, plus scattered single pixels of label 2."""
    masks = np.zeros((n, h, w), np.int32)
    for label in (1, 2, 3):
        masks = np.where(ellipse_masks(rng, n, h, w) != 0, label, masks)
    masks[rng.random((n, h, w)) < 0.02] = 2
    return (masks != 0) if dtype == np.bool_ else masks.astype(dtype)


def both(fn, backend, *args, **kwargs):
    """``fn`` through ``backend`` and through the reference."""
    return fn(*args, backend=backend, **kwargs), fn(*args, backend="numpy", **kwargs)


def assert_pairs_equal(got, want):
    """Image and mask results equal (a ``None`` mask on both sides)."""
    for g, w in zip(got, want):
        if w is None:
            assert g is None
        else:
            np.testing.assert_array_equal(g, w)


# ----------------------------------------------------------------------------- geometry


@pytest.mark.parametrize("mask_dtype", MASK_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 3])
def test_rescale_paste_equals_reference(backend, rng, dtype, mask_dtype, channels):
    n, h, w = 7, 19, 27
    image = random_image(rng, (n, h, w, channels), dtype)
    mask = labelled_masks(rng, n, h, w, mask_dtype)
    # per sample: tiny, shrink, identity, enlarge, crop + border crossings, fully outside
    scale = [0.05, 0.37, 1.0, 1.6, 3.0, 0.8, 0.5]
    offset = [(3, 5), (-4, -9), (0, 0), (-10, 12), (20, -30), (40, 2), (-5, 60)]
    crop = [(0, 0, h, w), (2, 3, 15, 20), (0, 0, h, w), (5, 1, 1, 26), (0, 7, 19, 1), (1, 1, 17, 25), (0, 0, h, w)]
    fill = [7, 9, 11][:channels] if dtype != np.float32 else 0.25
    got, want = both(
        sas_fast.rescale_paste, backend, image, mask, scale=scale, offset=offset, crop=crop, canvas=(23, 41),
        fill=fill, mask_fill=1,
    )  # fmt: skip
    assert_pairs_equal(got, want)
    assert (got[0][5] == np.asarray(fill, dtype)).all()  # sample 5 lies wholly outside the canvas


@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_rescale_paste_without_mask_and_identity(backend, rng, dtype):
    image = random_image(rng, (3, 16, 9, 2), dtype)
    got, want = both(sas_fast.rescale_paste, backend, image, scale=[0.3, 1.0, 2.2], offset="random", seed=4)
    assert_pairs_equal(got, want)
    identity, _ = sas_fast.rescale_paste(image, scale=1.0, offset=(0, 0), backend=backend)
    np.testing.assert_array_equal(identity, image)


@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (2, 3), (64, 5)])
def test_degenerate_shapes(backend, rng, shape):
    image = random_image(rng, (3, *shape), np.uint8)
    mask = (rng.random((3, *shape)) < 0.5).astype(np.uint8)
    for scale in (0.01, 0.5, 1.0, 4.0):
        got, want = both(sas_fast.rescale_paste, backend, image, mask, scale=scale, offset="center")
        assert_pairs_equal(got, want)
    got, want = both(sas_fast.noise_in_mask, backend, image, mask, kind="speckle", sigma=0.5, seed=3)
    np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("mask_dtype", [np.bool_, np.uint16, np.int32], ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", ["speckle", "gaussian"])
def test_normal_noise_bit_exact(backend, rng, kind, channels, dtype, mask_dtype):
    image = random_image(rng, (4, 24, 37, channels), dtype)
    mask = labelled_masks(rng, 4, 24, 37, mask_dtype)
    ids = [5, 0, 2**32 - 1, 77]
    got, want = both(
        sas_fast.noise_in_mask, backend, image, mask, kind=kind, sigma=[0.1, 0.0, 0.7, 2.5], seed=2**40 + 9,
        sample_ids=ids,
    )  # fmt: skip
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[mask == 0], image[mask == 0])


@pytest.mark.parametrize(
    ("labels", "mask_dtype"),
    [([2], np.uint8), ([1, 3], np.uint16), ([-7, 3, 100_000], np.int32), ([], np.uint8), ([0, 2], np.uint8)],
    ids=["one", "table", "sorted-search", "none-selected", "with-background"],
)
def test_label_selection(backend, rng, labels, mask_dtype):
    image = random_image(rng, (3, 30, 30), np.uint8)
    mask = labelled_masks(rng, 3, 30, 30, mask_dtype)
    if mask_dtype == np.int32:
        mask[mask == 1] = -7
    got, want = both(sas_fast.noise_in_mask, backend, image, mask, kind="speckle", sigma=0.3, labels=labels, seed=1)
    np.testing.assert_array_equal(got, want)
    untouched = ~np.isin(mask, labels)
    np.testing.assert_array_equal(got[untouched], image[untouched])
    assert (got != image).any() == bool(labels)


def test_float32_value_range_and_no_clip(backend, rng):
    image = rng.uniform(-2.0, 5.0, size=(3, 20, 25, 2)).astype(np.float32)
    mask = labelled_masks(rng, 3, 20, 25, np.uint8)
    for kind in ("speckle", "gaussian"):
        got, want = both(
            sas_fast.noise_in_mask, backend, image, mask, kind=kind, sigma=0.4, value_range=(-1.0, 3.0), clip=False,
        )  # fmt: skip
        np.testing.assert_array_equal(got, want)
        assert got.max() > 5.0 or got.min() < -2.0  # unclipped values leave the range


def test_per_sample_kinds(backend, rng):
    image = random_image(rng, (4, 32, 32), np.uint16)
    mask = labelled_masks(rng, 4, 32, 32, np.uint8)
    kinds = ["none", "gaussian", "speckle", "none"]
    got, want = both(sas_fast.noise_in_mask, backend, image, mask, kind=kinds, sigma=[0.1, 0.2, 0.3, 0.4])
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got[[0, 3]], image[[0, 3]])  # "none" is bit-identical


def poisson_counts(backend, image, mask, peak, seed):
    """Poisson counts ``k = y * peak`` (float32 images in [0, 1], no clipping keeps them exact)."""
    out = sas_fast.noise_in_mask(image, mask, kind="poisson", peak=peak, seed=seed, clip=False, backend=backend)
    return np.rint(out.astype(np.float64) * np.asarray(peak, np.float64).reshape(-1, 1, 1, 1)[: len(out)])


def test_poisson_within_tolerance(backend, rng, record_property, capsys):
    """Counts agree with the reference except for a tiny fraction of pixels, by at most one count."""
    n, h, w = 8, 96, 96
    image = rng.random((n, h, w, 1), dtype=np.float32)
    image[0] = 0.0  # lam = 0
    image[1] *= 10 / 256  # all inversion (lam < 10)
    mask = np.ones((n, h, w), np.uint8)
    peak = np.array([256, 256, 256, 9.5, 30, 1000, 1e5, 12], np.float32)
    got = poisson_counts(backend, image, mask, peak, seed=5)
    want = poisson_counts("numpy", image, mask, peak, seed=5)
    diff = np.abs(got - want)
    fraction = float((diff > 0).mean())
    record_property("poisson_mismatch_fraction", fraction)
    with capsys.disabled():
        print(f"\n[{backend}] Poisson mismatch: {fraction:.2e} of {diff.size} pixels, max {diff.max():.0f} count")
    assert fraction <= POISSON_MISMATCH_FRACTION
    assert diff.max() <= POISSON_MISMATCH_COUNTS
    assert got[0].max() == 0 and got[1].max() > 0


@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_poisson_integer_images(backend, rng, dtype):
    image = random_image(rng, (3, 40, 40, 3), dtype)
    mask = labelled_masks(rng, 3, 40, 40, np.uint8)
    got, want = both(sas_fast.noise_in_mask, backend, image, mask, kind="poisson", peak=[256, 3, 5000], seed=8)
    diff = np.abs(got.astype(np.float64) - want)
    one_count = dtype_range(np.dtype(dtype))[1] / np.array([256.0, 3.0, 5000.0]).reshape(3, 1, 1, 1)
    allowed = POISSON_MISMATCH_COUNTS * one_count * (1 + 1e-6)
    if dtype != np.float32:
        allowed = np.ceil(allowed)  # a count smaller than one level can still round to a one-level step
    assert (diff <= allowed).all()
    assert (diff > 0).sum() <= max(1, POISSON_MISMATCH_FRACTION * diff.size)


@numba.njit(error_model="numpy")
def _settle_vs_exact(lam, key, settled_out):
    """How many block-0 settlements disagree with the exact sampler (must be none)."""
    wrong = 0
    for k in range(lam.shape[0]):
        p, sid, c = np.uint64(k), np.uint64(3), np.uint64(0)
        r0, r1, r2, r3 = philox(p, sid, c, np.uint64(1 << 16), np.uint64(key[0]), np.uint64(key[1]))
        fast, settled = settle_block0(lam[k], r0, r1, r2, r3)
        settled_out[k] = settled
        if settled:
            exact = poisson(lam[k], r0, r1, r2, r3, p, sid, c, np.uint64(key[0]), np.uint64(key[1]))
            wrong += fast != exact
    return wrong


def test_vectorised_ptrs_settles_exactly_like_the_full_sampler():
    """The branch-free PTRS filter only settles pixels where it provably agrees with libm's decision."""
    lam = np.random.default_rng(13).uniform(0.0, 3000.0, size=400_000)
    settled = np.zeros(len(lam), np.bool_)
    assert _settle_vs_exact(lam, np.array([9, 4], np.uint32), settled) == 0
    assert settled[lam < 10].sum() == 0
    assert settled[lam >= 10].mean() > 0.95


# ----------------------------------------------------------------------------- augment and calling conventions


@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=lambda d: np.dtype(d).name)
def test_augment_equals_reference_and_composition(backend, rng, dtype):
    n, h, w = 6, 40, 31
    image = random_image(rng, (n, h, w, 1), dtype)
    mask = labelled_masks(rng, n, h, w, np.uint8)
    params = sas_fast.SASConfig(
        noise={"speckle": 1, "gaussian": 1, "poisson": 1}, p_noise=0.8, sigma_range=(0.05, 0.4), scale_range=(0.2, 1.5),
    ).sample(n, seed=3, masks=mask)  # fmt: skip
    got = sas_fast.augment(image, mask, params, seed=11, backend=backend)
    want = sas_fast.augment(image, mask, params, seed=11, backend="numpy")
    geo = sas_fast.rescale_paste(
        image, mask, scale=params.scale, offset=params.offset, crop=params.crop, canvas=params.canvas, backend=backend,
    )  # fmt: skip
    composed = sas_fast.noise_in_mask(
        geo[0], geo[1], kind=list(params.kind), sigma=params.sigma, peak=params.peak, labels=params.labels, seed=11,
        sample_ids=params.sample_ids, backend=backend,
    )  # fmt: skip
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[0], composed)
    normal = np.array([k != "poisson" for k in params.kind])
    np.testing.assert_array_equal(got[0][normal], want[0][normal])
    poisson_differs = (got[0][~normal] != want[0][~normal]).mean() if (~normal).any() else 0.0
    assert poisson_differs <= POISSON_MISMATCH_FRACTION * 10


@pytest.mark.parametrize(("mask_fill", "labels"), [(2, [2]), (1, [0, 3])], ids=["fill-label", "background-label"])
def test_augment_noises_selected_fill_and_background(backend, rng, mask_fill, labels):
    """A selected fill label noises the canvas outside the thumbnail; a selected label 0 the thumbnail's background."""
    image = random_image(rng, (3, 20, 24), np.uint8)[..., None]
    mask = labelled_masks(rng, 3, 20, 24, np.uint8)
    geo = make_geometry(image.shape, image.dtype, scale=[0.4, 0.7, 1.2], offset=(2, -3), fill=90, mask_fill=mask_fill)
    noise = make_noise(3, image.dtype, kind=["speckle", "gaussian", "speckle"], sigma=0.3, labels=labels, seed=6)
    results = {}
    for name in (backend, "numpy"):
        impl = load(name)
        out_image = to_backend(np.empty((3, 20, 24, 1), np.uint8), impl.DEVICE)
        out_mask = to_backend(np.empty((3, 20, 24), np.uint8), impl.DEVICE)
        impl.augment(to_backend(image, impl.DEVICE), to_backend(mask, impl.DEVICE), geo, noise, out_image, out_mask)
        results[name] = (from_backend(out_image, image), from_backend(out_mask, image))
    assert_pairs_equal(results[backend], results["numpy"])
    plain = np.empty_like(results["numpy"][0])
    load("numpy").rescale_paste(image, mask, geo, plain, np.empty_like(results["numpy"][1]))
    noised = np.isin(results["numpy"][1], labels)
    assert noised.sum() > 50 and (results[backend][0][noised] != plain[noised]).mean() > 0.5


def test_inputs_untouched_read_only_and_strided(backend, rng):
    base = random_image(rng, (4, 30, 50, 3), np.uint16)
    image = base[:, ::2, ::2][..., ::-1]  # strided, negative steps
    mask_base = labelled_masks(rng, 4, 30, 50, np.int32)
    mask = np.asfortranarray(mask_base[:, ::2, ::2])
    image.flags.writeable = False
    mask.flags.writeable = False
    before = image.copy(), mask.copy()
    got, want = both(sas_fast.rescale_paste, backend, image, mask, scale=0.7, offset="random", seed=1)
    assert_pairs_equal(got, want)
    got, want = both(sas_fast.noise_in_mask, backend, image, mask, kind="speckle", seed=1)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(image, before[0])
    np.testing.assert_array_equal(mask, before[1])


def test_out_buffers_reused_including_strided_views(backend, rng):
    image = random_image(rng, (3, 18, 22), np.uint8)
    mask = labelled_masks(rng, 3, 18, 22, np.uint8)
    want = sas_fast.rescale_paste(image, mask, scale=0.6, backend="numpy")
    out_image = np.zeros((3, 18, 44), np.uint8)[:, :, ::2]  # a strided, writeable view
    out_mask = np.zeros((3, 18, 22), np.uint8)
    got = sas_fast.rescale_paste(image, mask, scale=0.6, backend=backend, out=(out_image, out_mask))
    assert_pairs_equal(got, want)
    assert_pairs_equal((out_image, out_mask), want)


# ----------------------------------------------------------------------------- properties


@st.composite
def cases(draw):
    """A small random batch with per-sample geometry: shapes, scales, crops, offsets, interpolations
    (SPEC §2b), dtypes, channels."""
    n = draw(st.integers(1, 3))
    h, w = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    dtype = draw(st.sampled_from(IMAGE_DTYPES))
    channels = draw(st.sampled_from([1, 3]))
    crops = []
    for _ in range(n):
        sy0, sx0 = draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))
        crops.append((sy0, sx0, draw(st.integers(1, h - sy0)), draw(st.integers(1, w - sx0))))
    scales = draw(st.lists(st.floats(0.05, 3.0), min_size=n, max_size=n))
    offsets = draw(st.lists(st.tuples(st.integers(-25, 25), st.integers(-25, 25)), min_size=n, max_size=n))
    canvas = (draw(st.integers(1, 24)), draw(st.integers(1, 24)))
    interpolation = draw(st.lists(st.sampled_from(["bilinear", "area"]), min_size=n, max_size=n))
    seed = draw(st.integers(0, 2**64 - 1))
    return n, h, w, dtype, channels, crops, scales, offsets, canvas, interpolation, seed


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=cases())
def test_property_geometry_and_speckle_equal_reference(backend, case):
    n, h, w, dtype, channels, crops, scales, offsets, canvas, interpolation, seed = case
    rng = np.random.default_rng(seed % 2**32)
    image = random_image(rng, (n, h, w, channels), dtype)
    mask = (rng.random((n, h, w)) < 0.5).astype(np.uint8) * rng.integers(1, 4, size=(n, h, w), dtype=np.uint8)
    got, want = both(
        sas_fast.rescale_paste, backend, image, mask, scale=scales, offset=offsets, crop=crops, canvas=canvas,
        interpolation=interpolation,
    )  # fmt: skip
    assert_pairs_equal(got, want)
    noisy, noisy_ref = both(sas_fast.noise_in_mask, backend, got[0], got[1], kind="speckle", sigma=0.3, seed=seed)
    np.testing.assert_array_equal(noisy, noisy_ref)


def test_thread_count_and_task_split_do_not_change_results(rng, monkeypatch):
    """Rows are cut into bands per thread count; the serial and parallel kernels and every split
    give the same bits."""
    from sas_fast import threads

    image = random_image(rng, (2, 70, 45), np.uint8)
    mask = labelled_masks(rng, 2, 70, 45, np.uint8)
    config = sas_fast.SASConfig(noise={"speckle": 1, "poisson": 1}, scale_range=(0.3, 1.7))
    params = config.sample(2, seed=1, masks=mask)
    monkeypatch.setattr(threads, "PARALLEL_MIN_PIXELS", 0)  # small calls take the parallel kernel too
    results = []
    try:
        for n_threads in (1, 2, 3):
            threads.set_num_threads(n_threads)
            results.append(sas_fast.augment(image, mask, params, seed=4, backend="numba"))
    finally:
        threads.set_num_threads(None)
    want = sas_fast.augment(image[:1], mask[:1], params[:1], seed=4, backend="numba")  # one sample: more bands
    for got in results:
        assert_pairs_equal((got[0][:1], got[1][:1]), want)


def test_disk_cache_follows_every_backend_source():
    """Numba keys a cache on the function's own file; the backend re-keys it on all the files it compiles from."""
    from sas_fast.backends import _numba_cache, numba_cpu

    assert _numba_cache.registered(), "Numba's cache locator hook moved: stale kernels could load after edits"
    names = {path.name for path in _numba_cache.SOURCES}
    assert {"numba_cpu.py", "_numba_noise.py", "_numba_poisson.py", "_numba_rng.py", "_numba_geometry.py"} <= names
    assert {"fmath.py", "geometry.py", "philox.py", "samplers.py", "plan.py", "records.py"} <= names  # constants baked in
    for kernel in (numba_cpu._kernel_serial, numba_cpu._kernel_parallel):
        assert kernel._cache._impl.locator.get_source_stamp() == _numba_cache._stamp()
