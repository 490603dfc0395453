"""Cases shared by the CPU-run CUDA tests (test_cuda_source.py) and the GPU tests (test_cuda_gpu.py).

Each geometry case is the keyword arguments of ``sas_fast.rescale_paste`` /
``sas_fast.plan.make_geometry`` for a batch of ``N`` samples of ``H x W``; each noise case those of
``sas_fast.noise_in_mask`` / ``sas_fast.plan.make_noise``.  Sizes are odd on purpose, so runs of
pixels cross rows and samples.
"""

from __future__ import annotations

import numpy as np

from tests.tolerances import POISSON_MISMATCH_COUNTS, POISSON_MISMATCH_FRACTION

N, H, W = 3, 37, 41

GEOMETRY_CASES: dict[str, dict] = {
    "identity": dict(scale=1.0, offset=(0, 0)),
    "half-centre": dict(scale=0.5, offset="center"),
    "crosses-top-left": dict(scale=0.77, offset=(-5, -9), fill=7, mask_fill=1),
    "crosses-bottom-right": dict(scale=0.6, offset=(H - 3, W - 4)),
    "wholly-outside": dict(scale=0.5, offset=(H + 5, 0), fill=3),
    "upscale-bigger-canvas": dict(scale=1.7, offset=(-2, 3), canvas=(2 * H + 1, W + 3)),
    "per-sample": dict(
        scale=np.array([0.25, 1.3, 0.93]),
        offset=np.array([[0, 0], [-11, 17], [30, -2]]),
        crop=np.array([[0, 0, H, W], [5, 3, 20, 31], [10, 12, 1, 7]]),
        canvas=(29, 53),
    ),
    "one-pixel-thumb": dict(scale=0.01, offset=(4, 5)),
    "one-pixel-canvas": dict(scale=0.3, offset=(0, 0), canvas=(1, 1)),
    "one-row-canvas": dict(scale=0.8, offset=(-3, 2), canvas=(1, 13)),
    # SPEC §2b: area taps on the shrunk axes (several taps per pixel), bilinear on the others
    "area-quarter": dict(scale=0.25, offset="center", interpolation="area"),
    "area-crosses-borders": dict(scale=0.61, offset=(-6, W - 12), canvas=(H + 4, W), fill=5, interpolation="area"),
    "area-per-sample": dict(
        scale=np.array([0.13, 0.4, 0.4]),
        offset=np.array([[2, 3], [-4, 0], [-9, -20]]),
        crop=np.array([[0, 0, H, W], [3, 0, 30, 1], [0, 5, 1, 36]]),  # one-column and one-row crops
        interpolation=["area", "area", "area"],
        canvas=(31, 43),
    ),
    "area-and-bilinear": dict(scale=np.array([0.33, 0.33, 0.05]), interpolation=["bilinear", "area", "area"]),
    "area-enlarges": dict(scale=np.array([1.7, 1.0, 0.9]), offset=(-3, -4), interpolation="area"),  # = bilinear
}

NOISE_CASES: dict[str, dict] = {
    "speckle": dict(kind="speckle", sigma=0.2),
    "gaussian-per-sample-sigma": dict(kind="gaussian", sigma=np.array([0.0, 0.05, 0.3])),
    "kinds-per-sample": dict(kind=["speckle", "none", "gaussian"], sigma=0.1, seed=2**40 + 7, sample_ids=[5, 2**32 - 1, 0]),
    "labels-subset": dict(kind="speckle", sigma=0.4, labels=[2, 3, 70000]),
    "poisson-inversion-and-ptrs": dict(kind="poisson", peak=np.array([4.0, 60.0, 3000.0])),
}

#: Noise cases whose outputs are bit-identical between backends (Poisson: tests/tolerances.py).
EXACT_NOISE = [name for name, case in NOISE_CASES.items() if "poisson" not in str(case["kind"])]


def label_masks(rng: np.random.Generator, n: int, h: int, w: int, dtype) -> np.ndarray:
    """Masks with labels 0-3 in blobs of random rectangles (bool: 0/1), so label selection matters."""
    masks = np.zeros((n, h, w), dtype=np.int32)
    for i in range(n):
        for label in (1, 2, 3):
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            masks[i, y0 : y0 + rng.integers(1, h // 2 + 2), x0 : x0 + rng.integers(1, w // 2 + 2)] = label
    return (masks != 0) if np.dtype(dtype) == np.bool_ else masks.astype(dtype)


def assert_same(want, got) -> None:
    """Arrays equal bit for bit (float32 -0.0 and +0.0 differ), pairwise over two sequences."""
    for w, g in zip(want, got, strict=True):
        assert w.dtype == g.dtype and w.shape == g.shape
        np.testing.assert_array_equal(np.ascontiguousarray(g).view(np.uint8), np.ascontiguousarray(w).view(np.uint8))


def assert_noise_matches(case: str, want, got, before, selected) -> None:
    """``got`` equals the reference ``want`` after noise case ``case``: pixels outside ``selected``
    equal ``before``; exact cases bit for bit; Poisson within tests/tolerances.py."""
    assert np.array_equal(got[~selected], before[~selected])
    if case in EXACT_NOISE:
        assert_same([want], [got])
        return
    differ = want != got
    assert differ.sum() <= POISSON_MISMATCH_FRACTION * max(1, selected.sum() * want.shape[-1])
    span = 1.0 if want.dtype == np.float32 else float(np.iinfo(want.dtype).max)
    count_step = span / np.min(NOISE_CASES[case]["peak"])  # one count, in pixel values
    assert np.abs(want.astype(np.float64) - got)[differ].max(initial=0) <= POISSON_MISMATCH_COUNTS * count_step + 1
