"""The CuPy CUDA backend on a real GPU, through the public API, against the NumPy reference.

Geometry and speckle/gaussian noise must be bit-identical, Poisson within tests/tolerances.py.
Skipped (with the reason) where CuPy or a CUDA device is missing; run on a GPU machine with
``python -m pytest -m gpu tests`` (benchmarks/gpu_check.sh does).  The CPU-run twin of these
checks, on the same kernel source, is tests/test_cuda_source.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sas_fast
from sas_fast.backends import BackendUnavailable, cuda, load, reference
from tests.conftest import ellipse_masks, random_image
from tests.cuda_host.cases import (
    GEOMETRY_CASES,
    NOISE_CASES,
    H,
    N,
    W,
    assert_noise_matches,
    assert_same,
    label_masks,
)
from tests.tolerances import POISSON_MISMATCH_COUNTS, POISSON_MISMATCH_FRACTION

pytestmark = pytest.mark.gpu

try:
    load("cupy")
except BackendUnavailable as exc:
    pytest.skip(f"no usable CUDA GPU with CuPy here: {exc}", allow_module_level=True)

import cupy as cp  # imported only once the backend is known to work

#: Dtype pairs compiled on the GPU (each is one NVRTC module, a few seconds the first time); the
#: CPU tests run all 12 pairs through the same source.
PAIRS = [
    (np.uint8, np.bool_),
    (np.uint8, np.uint8),
    (np.uint8, np.uint16),
    (np.uint8, np.int32),
    (np.uint16, np.uint8),
    (np.float32, np.uint8),
]
PAIR_IDS = [f"{np.dtype(i).name}-{np.dtype(m).name}" for i, m in PAIRS]


def _host(x):
    return None if x is None else cp.asnumpy(x)


@pytest.fixture
def rng():
    return np.random.default_rng(20261128)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize(("dtype", "mask_dtype"), PAIRS, ids=PAIR_IDS)
def test_geometry_is_bit_exact(rng, dtype, mask_dtype, channels):
    image = random_image(rng, (N, H, W, channels), dtype)
    mask = label_masks(rng, N, H, W, mask_dtype)
    for name, case in GEOMETRY_CASES.items():
        want = sas_fast.rescale_paste(image, mask, backend="numpy", **case)
        got = sas_fast.rescale_paste(cp.asarray(image), cp.asarray(mask), backend="cupy", **case)
        assert isinstance(got[0], cp.ndarray) and isinstance(got[1], cp.ndarray), name
        assert_same(want, [_host(g) for g in got])


@pytest.mark.parametrize(("dtype", "mask_dtype"), PAIRS, ids=PAIR_IDS)
@pytest.mark.parametrize("case", list(NOISE_CASES))
def test_noise_in_mask_matches(rng, case, dtype, mask_dtype):
    channels = 2 if case == "speckle" else 1
    image = random_image(rng, (N, H, W, channels), dtype)
    mask = label_masks(rng, N, H, W, mask_dtype)
    kwargs = NOISE_CASES[case]
    want = sas_fast.noise_in_mask(image, mask, backend="numpy", **kwargs)
    got = _host(sas_fast.noise_in_mask(cp.asarray(image), cp.asarray(mask), backend="cupy", **kwargs))
    labels = kwargs.get("labels")
    assert_noise_matches(case, want, got, image, reference.selected(mask, None if labels is None else np.array(labels)))


def test_float32_value_range_without_clipping(rng):
    image = (random_image(rng, (N, H, W), np.float32) * 3 - 1).astype(np.float32)
    mask = label_masks(rng, N, H, W, np.uint8)
    kwargs = dict(kind="gaussian", sigma=0.5, value_range=(-1.0, 2.0), clip=False, seed=3)
    want = sas_fast.noise_in_mask(image, mask, backend="numpy", **kwargs)
    got = _host(sas_fast.noise_in_mask(cp.asarray(image), cp.asarray(mask), backend="cupy", **kwargs))
    assert_same([want], [got])


def _assert_augment_matches(params, want, got):
    """Per sample: speckle / gaussian / none bit for bit, Poisson within the tolerance."""
    assert_same([want[1]], [got[1]])
    for i, kind in enumerate(params.kind):
        if kind != "poisson":
            assert_same([want[0][i]], [got[0][i]])
            continue
        differ = want[0][i] != got[0][i]
        assert differ.sum() <= POISSON_MISMATCH_FRACTION * max(1, (want[1][i] != 0).sum())
        step = 255.0 / params.peak[i]  # one count, in uint8 values
        assert np.abs(want[0][i].astype(np.float64) - got[0][i])[differ].max(initial=0) <= POISSON_MISMATCH_COUNTS * step + 1


def test_augment_with_sampled_params_matches_the_reference(rng):
    images = random_image(rng, (16, 96, 80), np.uint8)
    masks = ellipse_masks(rng, 16, 96, 80)
    config = sas_fast.SASConfig(noise={"speckle": 0.4, "gaussian": 0.2, "poisson": 0.4}, p_noise=0.9, peak_range=(4.0, 4096.0))
    params = config.sample(16, seed=11, masks=masks)
    want = sas_fast.augment(images, masks, params, seed=11, backend="numpy")
    got = sas_fast.augment(cp.asarray(images), cp.asarray(masks), params, seed=11, backend="auto")
    assert isinstance(got[0], cp.ndarray)  # "auto" chose the GPU for CuPy arrays
    _assert_augment_matches(params, want, [_host(g) for g in got])


@settings(deadline=None)
@given(
    h=st.integers(1, 19), w=st.integers(1, 23), n=st.integers(1, 3), channels=st.sampled_from([1, 2, 4]),
    scale=st.floats(0.05, 3.0), oy=st.integers(-25, 25), ox=st.integers(-25, 25),
    ho=st.integers(1, 29), wo=st.integers(1, 29), seed=st.integers(0, 2**32),
)  # fmt: skip
def test_geometry_property_odd_sizes_and_borders(h, w, n, channels, scale, oy, ox, ho, wo, seed):
    rng = np.random.default_rng(seed)
    image = random_image(rng, (n, h, w, channels), np.uint8)
    mask = rng.integers(0, 5, size=(n, h, w), dtype=np.uint8)
    kwargs = dict(scale=scale, offset=(oy, ox), canvas=(ho, wo))
    want = sas_fast.rescale_paste(image, mask, backend="numpy", **kwargs)
    got = sas_fast.rescale_paste(cp.asarray(image), cp.asarray(mask), backend="cupy", **kwargs)
    assert_same(want, [_host(g) for g in got])


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5)])
def test_tiny_images_and_canvases(rng, shape):
    image = random_image(rng, (4, *shape), np.float32)
    mask = rng.integers(0, 2, size=(4, *shape), dtype=np.uint8)
    for scale in (0.5, 1.0, 3.0):
        for canvas in (shape, (1, 1), (shape[0] + 2, 1)):
            kwargs = dict(scale=scale, offset=(-1, 1), canvas=canvas, fill=0.25)
            want = sas_fast.rescale_paste(image, mask, backend="numpy", **kwargs)
            got = sas_fast.rescale_paste(cp.asarray(image), cp.asarray(mask), backend="cupy", **kwargs)
            assert_same(want, [_host(g) for g in got])
    want = sas_fast.noise_in_mask(image, mask, kind="speckle", sigma=0.5, backend="numpy")
    got = sas_fast.noise_in_mask(cp.asarray(image), cp.asarray(mask), kind="speckle", sigma=0.5, backend="cupy")
    assert_same([want], [_host(got)])


def test_big_batch_past_2_to_the_31_elements(rng):
    """8195 canvases of 512^2 (2.148e9 elements, past 2^31) from 64^2 inputs; samples both sides
    of element 2^31 checked against the reference run on those samples alone (same sample ids)."""
    if getattr(cp, "STANDIN", False):
        pytest.skip("2^31 canvas pixels through the host-compiled kernels take minutes (CuPy stand-in)")
    n, size, canvas = 8195, 64, (512, 512)
    images = random_image(rng, (n, size, size), np.uint8)
    masks = ellipse_masks(rng, 16, size, size)[np.arange(n) % 16]
    kinds = np.array(["speckle", "poisson", "none", "gaussian"], dtype=object)[np.arange(n) % 4]
    params = sas_fast.SASParams(
        sample_ids=np.arange(n, dtype=np.int64),
        scale=rng.uniform(0.25, 8.0, n),
        crop=np.tile(np.array([0, 0, size, size], np.int64), (n, 1)),
        offset=rng.integers(-100, 500, size=(n, 2)).astype(np.int64),
        canvas=canvas,
        kind=kinds,
        sigma=np.full(n, 0.1),
        peak=np.full(n, 256.0),
    )
    assert n * canvas[0] * canvas[1] > 2**31
    got_img, got_mask = sas_fast.augment(cp.asarray(images), cp.asarray(masks), params, seed=5, backend="cupy")
    pick = np.array([0, 4001, 8190, 8191, 8192, 8193, n - 1])  # 8192 * 512^2 == 2^31
    want = sas_fast.augment(images[pick], masks[pick], params[pick], seed=5, backend="numpy")
    _assert_augment_matches(params[pick], want, [_host(got_img[pick]), _host(got_mask[pick])])
    del got_img, got_mask
    cp.get_default_memory_pool().free_all_blocks()


def test_views_misaligned_outputs_and_a_side_stream(rng):
    base = cp.asarray(random_image(rng, (N, 2 * H, W + 3), np.uint16))
    image = base[:, ::-2, 3:]  # negative and doubled row strides
    mask = cp.asarray(label_masks(rng, N, 2 * H, W + 3, np.int32))[:, ::2, :W]
    size = N * H * W
    out = (cp.zeros(size + 8, cp.uint16)[1 : size + 1].reshape(N, H, W), cp.zeros(size + 4, cp.int32)[1 : size + 1].reshape(N, H, W))
    kwargs = dict(scale=0.6, offset=(-3, 4))
    want = sas_fast.rescale_paste(_host(image), _host(mask), backend="numpy", **kwargs)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        got = sas_fast.rescale_paste(image, mask, backend="cupy", out=out, **kwargs)
    stream.synchronize()
    assert got[0] is out[0] and got[1] is out[1]
    assert_same(want, [_host(g) for g in got])


def test_out_buffers_strided_or_on_the_other_device_receive_the_results(rng):
    image = random_image(rng, (N, H, W), np.uint8)
    mask = label_masks(rng, N, H, W, np.uint8)
    want = sas_fast.rescale_paste(image, mask, scale=0.6, backend="numpy")
    outs = {
        # strided device views: the kernel computes contiguous runs, backends.cuda.compute copies back
        "cupy, strided": ("cupy", cp.zeros((N, H, 2 * W), cp.uint8)[:, :, ::2], cp.zeros((N, H + 1, W), cp.uint8)[:, 1:]),
        # host buffers for the GPU backend and device buffers for a CPU backend: api._finish copies
        "cupy, host out": ("cupy", np.zeros((N, H, 2 * W), np.uint8)[:, :, ::2], np.zeros((N, H, W), np.uint8)),
        "numpy, device out": ("numpy", cp.zeros((N, H, W), cp.uint8), cp.zeros((N, H, 2 * W), cp.uint8)[:, :, ::2]),
    }
    for name, (backend, *out) in outs.items():
        got = sas_fast.rescale_paste(image, mask, scale=0.6, backend=backend, out=tuple(out))
        assert got[0] is out[0] and got[1] is out[1], name
        assert_same(want, [_host(o) for o in out])


def test_per_sample_parameters_may_be_device_arrays(rng):
    image = random_image(rng, (N, H, W), np.uint8)
    mask = label_masks(rng, N, H, W, np.uint8)
    scale, ids, labels = np.linspace(0.3, 0.9, N), np.arange(N) + 7, np.array([1, 3])
    want = sas_fast.rescale_paste(image, mask, scale=scale, offset="random", seed=5, sample_ids=ids, backend="numpy")
    got = sas_fast.rescale_paste(
        cp.asarray(image), cp.asarray(mask), scale=cp.asarray(scale), offset="random", seed=5, sample_ids=cp.asarray(ids)
    )
    assert_same(want, [_host(g) for g in got])
    want = sas_fast.noise_in_mask(image, mask, labels=labels, sigma=np.full(N, 0.2), seed=5, backend="numpy")
    got = sas_fast.noise_in_mask(cp.asarray(image), cp.asarray(mask), labels=cp.asarray(labels), sigma=cp.full(N, 0.2), seed=5)
    assert_same([want], [_host(got)])


def test_torch_cuda_tensors_in_and_out(rng):
    torch = pytest.importorskip("torch", reason="torch is not installed: CUDA tensor interop not exercised")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    images = random_image(rng, (3, 40, 56), np.uint8)
    masks = ellipse_masks(rng, 3, 40, 56)
    params = sas_fast.SASConfig(noise={"speckle": 1.0}).sample(3, seed=2, masks=masks)
    want = sas_fast.augment(images, masks, params, seed=2, backend="numpy")
    got = sas_fast.augment(torch.from_numpy(images).cuda(), torch.from_numpy(masks).cuda(), params, seed=2)
    assert all(isinstance(g, torch.Tensor) and g.is_cuda for g in got)
    assert_same(want, [g.cpu().numpy() for g in got])
    # CPU tensors as out= for the GPU backend receive the result too
    out = (torch.zeros(want[0].shape, dtype=torch.uint8), torch.zeros(want[1].shape, dtype=torch.uint8))
    got = sas_fast.augment(torch.from_numpy(images).cuda(), torch.from_numpy(masks).cuda(), params, seed=2, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    assert_same(want, [o.numpy() for o in out])


def test_backend_is_listed_and_modules_are_memoised_per_device():
    assert "cupy" in sas_fast.available_backends()
    image = cp.zeros((1, 8, 8, 1), cp.uint8)  # (N, H, W, C): a 3-D image without a mask is ambiguous
    sas_fast.rescale_paste(image, scale=0.5, backend="cupy")
    name = cuda.name_expression("rescale_paste", np.uint8, cuda.NO_MASK_DTYPE)
    key = (cp.cuda.Device().id, name, cuda.RUN_BYTES, cuda.BLOCK_THREADS, cuda.MIN_BLOCKS)
    module = cuda._modules[key]
    sas_fast.rescale_paste(image, scale=0.25, backend="cupy")
    assert cuda._modules[key] is module
