"""The CUDA backend's source, checked without a GPU.

* nvcc, and NVRTC (what ``cupy.RawModule`` runs), compile ``sas_fast/cuda/sas_kernels.cu`` for sm_80
  and sm_90 with every kernel instance the loader can ask for, and the PTX has no float32 fused
  multiply-add (bit-exactness needs none).
* The same ``.cu`` file, compiled as host C++ (g++, ``tests/cuda_host``), runs the loader's own
  launches on the CPU and must equal the NumPy reference: geometry and speckle/gaussian noise bit
  for bit, Poisson within ``tests/tolerances.py``; Philox against the known answers, log/cos against
  ``sas_fast.fmath`` over every uniform the generator can produce.
* The structs the kernels read (``LaunchRecord``, ``SampleParams``) have the offsets and sizes of
  their NumPy dtypes (``cuda.LAUNCH_DTYPE``, ``records.SAMPLE_DTYPE``), and the source refuses to
  compile when their sizes differ from the ones the loader passes.
* Without CuPy, sas_fast imports and runs, and ``backend="cupy"`` says what to install.
"""

from __future__ import annotations

import ctypes
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sas_fast import fmath, samplers
from sas_fast.backends import cuda, reference
from sas_fast.philox import philox4x32_10
from sas_fast.plan import IMAGE_DTYPES, MASK_DTYPES, make_geometry, make_noise
from sas_fast.geometry import area_taps
from sas_fast.records import AREA_TAP_DTYPE, SAMPLE_DTYPE, area_entries, pack_samples
from tests.conftest import random_image
from tests.cuda_host import host_backend, nvrtc
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

DTYPE_IDS = [d.name for d in IMAGE_DTYPES]
MASK_IDS = [d.name for d in MASK_DTYPES]


# ----------------------------------------------------------------------------- the source compiles


def test_nvcc_compiles_every_instance_for_sm80_and_sm90(tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed: the CUDA source is not compiled here")
    names = cuda.name_expressions()
    unit = tmp_path / "instances.cu"
    unit.write_text(
        f'#include "{cuda.KERNEL_FILE}"\n// every instance the loader names, as NVRTC name expressions would\n'
        "void* sas_instances[] = {\n" + ",\n".join(f"    (void*)&{n}" for n in names) + "\n};\n"
    )
    cmd = [
        nvcc, "-fatbin", "--threads", "2", "--keep", "--keep-dir", str(tmp_path),
        "-gencode", "arch=compute_80,code=sm_80", "-gencode", "arch=compute_90,code=sm_90",
        *cuda.compile_options(), str(unit), "-o", str(tmp_path / "instances.fatbin"),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    for arch in ("80", "90"):
        assert_every_instance_without_fma((tmp_path / f"instances.compute_{arch}.ptx").read_text())


@pytest.mark.parametrize("arch", ["-arch=sm_90", "--gpu-architecture=compute_80"])
def test_nvrtc_compiles_every_instance_as_the_loader_asks(arch):
    # cupy.RawModule compiles with NVRTC, not nvcc: the loader's options, the source text, its name
    # expressions; CuPy adds -ftz=true and -arch=sm_XX (CUBIN, with ptxas' report of each kernel's
    # registers and spills) or compute_XX (PTX, inspected for FMA) for GPUs NVRTC has no SASS for
    path = nvrtc.library_path()
    if path is None:
        pytest.skip("libnvrtc is not installed (pip install nvidia-cuda-nvrtc): NVRTC compilation not checked")
    names = cuda.name_expressions()
    code, lowered, log = nvrtc.compile_kernels(path, arch, names)
    assert set(lowered) == set(names) and len(set(lowered.values())) == len(names)
    if isinstance(code, bytes):
        assert code[:4] == b"\x7fELF" and all(entry.encode() in code for entry in lowered.values())
        # at the default launch knobs (cuda.RUN_BYTES, cuda.MIN_BLOCKS) no kernel spills registers
        spills = [int(v) for v in re.findall(r"(\d+) bytes spill (?:stores|loads)", log)]
        assert len(spills) >= 2 * len(names) and not any(spills), log[-3000:]
    else:
        assert_every_instance_without_fma(code)
        assert set(lowered.values()) == set(re.findall(r"\.entry\s+(\w+)", code))


def assert_every_instance_without_fma(ptx: str) -> None:
    """The PTX holds the 61 kernels (60 template instances: 12 dtype pairs, the noise kernels with
    and without Poisson; the area tap table kernel) and no float32 fused multiply-add."""
    entries = re.findall(r"\.entry\s+(\w+)", ptx)
    assert len(entries) == len(cuda.name_expressions()) == 61
    for function, kernel in cuda.KERNELS.items():
        assert sum(e.startswith(f"_Z{len(kernel)}{kernel}I") for e in entries) == (12 if function == "rescale_paste" else 24)
    kernel = cuda.AREA_TAPS_KERNEL
    assert sum(e.startswith(f"_Z{len(kernel)}{kernel}") for e in entries) == 1
    # no contraction of float32 a * b + c: --fmad=false took effect
    assert not re.search(r"\b(fma|mad)(\.rn)?(\.ftz)?(\.sat)?\.f32\b", ptx)


def _syntax_check(tmp_path, defines: list[str]) -> subprocess.CompletedProcess:
    """g++'s syntax check of the kernel file (through the host shim) with these ``-D`` defines."""
    gxx = host_backend.compiler()
    if gxx is None:
        pytest.skip("g++ is not installed")
    unit = tmp_path / "unit.cpp"
    unit.write_text(f'#include "cuda_shim.h"\n#include "{cuda.KERNEL_FILE}"\n')
    cmd = [gxx, "-std=c++17", "-fsyntax-only", f"-I{host_backend.SHIM_DIR}", f"-I{cuda.SOURCE_DIR}", *defines, str(unit)]
    return subprocess.run(cmd, capture_output=True, text=True)


def test_source_refuses_to_compile_without_the_python_constants(tmp_path):
    result = _syntax_check(tmp_path, [])
    assert result.returncode != 0 and "sas_fast.fmath.COEFFS" in result.stderr


def test_defines_carry_the_python_constants_exactly():
    defines = dict(d[2:].split("=", 1) for d in cuda.compile_defines())
    for name, value in fmath.COEFFS.items():
        assert np.uint32(int(defines[f"SAS_{name}"].rstrip("u"), 16)).view(np.float32) == value
    assert [float.fromhex(defines[f"SAS_LOGGAM_A{i}"]) for i in range(10)] == list(samplers._LOGGAM_A)
    assert float.fromhex(defines["SAS_PTRS_MIN_LAM"]) == samplers.PTRS_MIN_LAM
    assert int(defines["SAS_LAUNCH_BYTES"]) == cuda.LAUNCH_DTYPE.itemsize
    assert int(defines["SAS_SAMPLE_BYTES"]) == SAMPLE_DTYPE.itemsize


def test_source_refuses_to_compile_when_a_record_size_differs(tmp_path):
    sizes = ("-DSAS_LAUNCH_BYTES=", "-DSAS_SAMPLE_BYTES=")
    defines = [d for d in cuda.compile_defines() if not d.startswith(sizes)]
    defines += [f"-DSAS_LAUNCH_BYTES={cuda.LAUNCH_DTYPE.itemsize + 8}", f"-DSAS_SAMPLE_BYTES={SAMPLE_DTYPE.itemsize - 4}"]
    result = _syntax_check(tmp_path, defines)
    assert result.returncode != 0
    assert "LaunchRecord differs from LAUNCH_DTYPE" in result.stderr and "SampleParams differs" in result.stderr


@pytest.mark.parametrize("struct", list(host_backend.RECORDS))
def test_record_structs_lay_out_as_their_dtypes(host, struct):
    # the probe names every dtype field (a field the struct lacks fails to compile); here every
    # offset and size must agree, so a field moved on one side only fails
    dtype = host_backend.RECORDS[struct]
    size, fields = host.layout(struct)
    assert size == dtype.itemsize
    assert fields == {name: (dtype.fields[name][1], dtype.fields[name][0].itemsize) for name in dtype.names}
    # no padding: a field added to the struct alone changes its size, which the source static_asserts
    assert sum(item for _, item in fields.values()) == size


# ----------------------------------------------------------------------------- device samplers


def test_philox_known_answers_and_random_counters(host, rng):
    kat = host.philox(np.zeros((1, 4), np.uint32), np.zeros(2, np.uint32))
    assert kat[0].tolist() == [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]
    kat = host.philox(
        np.array([[0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344]], np.uint32), np.array([0xA4093822, 0x299F31D0], np.uint32)
    )
    assert kat[0].tolist() == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]
    counters = rng.integers(0, 2**32, size=(10_000, 4), dtype=np.uint32)
    key = rng.integers(0, 2**32, size=2, dtype=np.uint32)
    np.testing.assert_array_equal(host.philox(counters, key), philox4x32_10(counters, key))


def test_log_and_cos_equal_fmath_for_every_uniform(host):
    words = np.arange(2**23, dtype=np.uint32) << np.uint32(9)  # one word per uniform k * 2**-24
    log_u, cos_u = host.log_cos(words)
    np.testing.assert_array_equal(log_u.view(np.uint32), fmath.log_u(words).view(np.uint32))
    np.testing.assert_array_equal(cos_u.view(np.uint32), fmath.cos_turns(words).view(np.uint32))


def test_normals_equal_the_reference_bit_for_bit(host, rng):
    p = rng.integers(0, 2**32, size=200_000, dtype=np.uint32)
    key = np.array([12345, 678], np.uint32)
    got = host.normal(p, 77, 2, key)
    np.testing.assert_array_equal(got.view(np.uint32), samplers.normal(p, 77, 2, key).view(np.uint32))
    words = samplers.noise_words(p[:1000], 77, 2, key, 0)
    np.testing.assert_array_equal(got[:1000], fmath.box_muller(words[:, 0], words[:, 1]))


def test_poisson_counts_match_the_reference(host, rng):
    # zero, inversion (< 10), the switch at 10, PTRS, and means where PTRS rejects often
    lam = np.repeat([0.0, 1e-3, 0.5, 3.0, 9.99, 10.0, 10.5, 37.0, 256.0, 1e4, 1e6], 5000)
    p = rng.integers(0, 2**32, size=lam.size, dtype=np.uint32)
    key = np.array([9, 1], np.uint32)
    got = host.poisson(lam, p, 3, 0, key)
    want = samplers.poisson(lam, p, 3, 0, key)
    diff = np.abs(got - want)
    assert np.mean(diff != 0) <= POISSON_MISMATCH_FRACTION
    assert diff.max() <= POISSON_MISMATCH_COUNTS
    assert np.all(got[lam == 0] == 0)


# ----------------------------------------------------------------------------- kernels vs reference


def _noise_plan(dtype, case):
    """The NoisePlan of a NOISE_CASES entry (written as public-API keywords) for N samples."""
    kwargs = dict(NOISE_CASES[case])
    kwargs["sids"] = kwargs.pop("sample_ids", None)
    return make_noise(N, dtype, **kwargs)


def _outputs(n, canvas, channels, dtype, mask_dtype):
    ho, wo = canvas
    return np.empty((n, ho, wo, channels), dtype), np.empty((n, ho, wo), mask_dtype)


def _geometry_pair(host, image, mask, geo):
    """(reference, host) outputs of rescale_paste, image and mask each."""
    want = _outputs(image.shape[0], geo.canvas, image.shape[3], image.dtype, mask.dtype)
    got = _outputs(image.shape[0], geo.canvas, image.shape[3], image.dtype, mask.dtype)
    reference.rescale_paste(image, mask, geo, *want)
    host.rescale_paste(image, mask, geo, *got)
    return want, got


@pytest.mark.parametrize("mask_dtype", MASK_DTYPES, ids=MASK_IDS)
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=DTYPE_IDS)
def test_geometry_is_bit_exact(host, rng, dtype, channels, mask_dtype):
    image = random_image(rng, (N, H, W, channels), dtype)
    mask = label_masks(rng, N, H, W, mask_dtype)
    for case in GEOMETRY_CASES.values():
        geo = make_geometry(image.shape, image.dtype, mask_dtype=mask.dtype, **case)
        want, got = _geometry_pair(host, image, mask, geo)
        assert_same(want, got)


@pytest.mark.parametrize("mask_dtype", MASK_DTYPES, ids=MASK_IDS)
@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("case", list(NOISE_CASES))
def test_noise_in_mask_matches(host, rng, case, dtype, mask_dtype):
    channels = 2 if case == "speckle" else 1
    image = random_image(rng, (N, H, W, channels), dtype)
    mask = label_masks(rng, N, H, W, mask_dtype)
    noise = _noise_plan(image.dtype, case)
    want, got = np.empty_like(image), np.empty_like(image)
    reference.noise_in_mask(image, mask, noise, want)
    host.noise_in_mask(image, mask, noise, got)
    assert_noise_matches(case, want, got, image, reference.selected(mask, noise.labels))


def test_float32_value_range_without_clipping(host, rng):
    image = (random_image(rng, (N, H, W, 1), np.float32) * 3 - 1).astype(np.float32)
    mask = label_masks(rng, N, H, W, np.uint8)
    noise = make_noise(N, image.dtype, kind="gaussian", sigma=0.5, value_range=(-1.0, 2.0), clip=False, seed=3)
    want, got = np.empty_like(image), np.empty_like(image)
    reference.noise_in_mask(image, mask, noise, want)
    host.noise_in_mask(image, mask, noise, got)
    assert_same([want], [got])
    assert want.max() > 2.0 or want.min() < -1.0  # unclipped values exist, so the case tests something


@pytest.mark.parametrize("mask_dtype", MASK_DTYPES, ids=MASK_IDS)
@pytest.mark.parametrize("dtype", IMAGE_DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("channels", [1, 3])
def test_fused_augment_equals_geometry_then_noise(host, rng, dtype, channels, mask_dtype):
    image = random_image(rng, (N, H, W, channels), dtype)
    mask = label_masks(rng, N, H, W, mask_dtype)
    geo = make_geometry(image.shape, image.dtype, mask_dtype=mask.dtype, **GEOMETRY_CASES["crosses-top-left"])
    for case in ("kinds-per-sample", "labels-subset", "poisson-inversion-and-ptrs"):
        noise = _noise_plan(image.dtype, case)
        want = _outputs(N, geo.canvas, channels, dtype, mask.dtype)
        got = _outputs(N, geo.canvas, channels, dtype, mask.dtype)
        reference.augment(image, mask, geo, noise, *want)
        host.augment(image, mask, geo, noise, *got)
        geometry_only = _outputs(N, geo.canvas, channels, dtype, mask.dtype)
        reference.rescale_paste(image, mask, geo, *geometry_only)
        np.testing.assert_array_equal(got[1], want[1])
        assert_noise_matches(case, want[0], got[0], geometry_only[0], reference.selected(want[1], noise.labels))


@settings(deadline=None)
@given(
    h=st.integers(1, 19), w=st.integers(1, 23), n=st.integers(1, 3), channels=st.sampled_from([1, 2, 4]),
    scale=st.floats(0.05, 3.0), oy=st.integers(-25, 25), ox=st.integers(-25, 25),
    ho=st.integers(1, 29), wo=st.integers(1, 29), dtype=st.sampled_from(IMAGE_DTYPES), seed=st.integers(0, 2**32),
)  # fmt: skip
def test_geometry_property_odd_sizes_and_borders(host, h, w, n, channels, scale, oy, ox, ho, wo, dtype, seed):
    rng = np.random.default_rng(seed)
    image = random_image(rng, (n, h, w, channels), dtype)
    mask = rng.integers(0, 5, size=(n, h, w), dtype=np.uint16)
    geo = make_geometry(image.shape, image.dtype, mask_dtype=mask.dtype, scale=scale, offset=(oy, ox), canvas=(ho, wo))
    want, got = _geometry_pair(host, image, mask, geo)
    assert_same(want, got)


# ----------------------------------------------------------------------------- launch shapes


@pytest.mark.parametrize("wide", [False, True], ids=["index32", "index64"])
def test_grid_stride_loop_covers_batches_larger_than_the_grid(host, rng, monkeypatch, wide):
    monkeypatch.setattr(cuda, "MAX_BLOCKS", 1)
    if wide:  # the 64-bit index path, taken on the GPU from 2**32 canvas pixels on
        monkeypatch.setattr(cuda, "WIDE_PIXELS", 1)
    image = random_image(rng, (N, H, W, 1), np.uint8)
    mask = label_masks(rng, N, H, W, np.uint8)
    geo = make_geometry(image.shape, image.dtype, mask_dtype=mask.dtype, scale=0.7, offset="center")
    noise = make_noise(N, image.dtype, kind="speckle", sigma=0.3)
    want, got = _outputs(N, geo.canvas, 1, np.uint8, np.uint8), _outputs(N, geo.canvas, 1, np.uint8, np.uint8)
    reference.augment(image, mask, geo, noise, *want)
    host.augment(image, mask, geo, noise, *got)
    assert host.launches[-1].grid == 1 and host.launches[-1].block * 8 < N * H * W  # each thread loops
    assert host.launches[-1].record["wide"][0] == wide
    assert_same(want, got)


def test_strided_negative_and_misaligned_views(host, rng):
    base = random_image(rng, (N, 2 * H, W + 5, 3), np.uint16)
    image = base[:, ::-2, 5:, 1:2]  # negative row stride, channel view
    masks = label_masks(rng, N, 2 * H, W + 5, np.int32)[:, ::2, :W]
    record = np.zeros(image.shape[:3], dtype=[("tag", "u1"), ("v", "<u2")])  # itemsize 3: odd byte strides
    record["v"] = image[..., 0]
    odd = record["v"][..., None]
    assert any(s % 2 for s in odd.strides)
    geo = make_geometry(image.shape, image.dtype, mask_dtype=masks.dtype, scale=0.6, offset=(-3, 4))
    for img in (image, odd):
        want, got = _geometry_pair(host, img, masks, geo)
        assert_same(want, got)
    # outputs one element off 16-byte alignment: element stores instead of vector stores
    want = _outputs(N, geo.canvas, 1, np.uint16, np.int32)
    reference.rescale_paste(image, masks, geo, *want)
    size = N * geo.canvas[0] * geo.canvas[1]
    got = (np.empty(size + 8, np.uint16)[1 : size + 1].reshape(want[0].shape), np.empty(size + 4, np.int32)[1 : size + 1].reshape(want[1].shape))
    host.rescale_paste(image, masks, geo, *got)
    assert host.launches[-1].record["aligned"][0] == 0
    assert_same(want, got)


def test_strided_outputs_receive_the_results(host, rng):
    # out= views of a caller's buffers: the kernels store contiguous runs, compute() copies back
    image = random_image(rng, (N, H, W, 3), np.uint8)
    mask = label_masks(rng, N, H, W, np.uint8)
    geo = make_geometry(image.shape, image.dtype, mask_dtype=mask.dtype, scale=0.55, offset=(3, -2))
    noise = make_noise(N, image.dtype, kind="speckle", sigma=0.2)
    want = _outputs(N, geo.canvas, 3, np.uint8, np.uint8)
    reference.augment(image, mask, geo, noise, *want)
    ho, wo = geo.canvas
    canvas, labels = np.zeros((N, ho, 2 * wo, 3), np.uint8), np.zeros((N, ho + 1, wo), np.uint8)
    got = (canvas[:, :, ::2], labels[:, 1:])
    assert not got[0].flags.c_contiguous and not got[1].flags.c_contiguous
    host.augment(image, mask, geo, noise, *got)
    assert_same(want, got)
    assert not canvas[:, :, 1::2].any() and not labels[:, 0].any()  # nothing written outside the views


def test_rescale_paste_without_mask_and_empty_outputs(host, rng):
    image = random_image(rng, (N, H, W, 1), np.float32)
    geo = make_geometry(image.shape, image.dtype, scale=0.4, offset=(2, -1))
    want, got = np.empty((N, H, W, 1), np.float32), np.empty((N, H, W, 1), np.float32)
    reference.rescale_paste(image, None, geo, want, None)
    host.rescale_paste(image, None, geo, got, None)
    assert_same([want], [got])
    empty = np.empty((0, H, W, 1), np.float32)
    assert cuda.build_launch("rescale_paste", empty, None, geo, None, empty, None, np) is None


def test_the_poisson_free_instance_runs_unless_a_sample_draws_poisson(host, rng):
    image = random_image(rng, (N, H, W, 1), np.uint8)
    mask = label_masks(rng, N, H, W, np.uint8)
    for kinds, poisson in ((["speckle"] * N, False), (["gaussian", "none"] + ["speckle"] * (N - 2), False),
                           (["speckle"] * (N - 1) + ["poisson"], True)):  # fmt: skip
        noise = make_noise(N, image.dtype, kind=kinds, sigma=0.2, peak=30.0)
        want, got = np.empty_like(image), np.empty_like(image)
        reference.noise_in_mask(image, mask, noise, want)
        host.noise_in_mask(image, mask, noise, got)
        assert host.launches[-1].name == cuda.name_expression("noise_in_mask", np.uint8, np.uint8, poisson)
        if poisson:  # the Poisson sample within tolerance; the others exact
            np.testing.assert_array_equal(got[:-1], want[:-1])
            assert np.abs(got[-1].astype(int) - want[-1]).max() <= POISSON_MISMATCH_COUNTS * 255 / 30 + 1
        else:
            assert_same([want], [got])


def test_launch_names_follow_the_kernel_templates():
    assert cuda.name_expression("augment", np.uint8, np.bool_) == "sas_augment<unsigned char, bool, false>"
    assert len(set(cuda.name_expressions())) == 61 and cuda.name_expressions()[-1] == cuda.AREA_TAPS_KERNEL
    assert cuda.name_expressions(np.float32, np.int32) == [
        "sas_rescale_paste<float, int>",
        "sas_noise_in_mask<float, int, false>", "sas_noise_in_mask<float, int, true>",
        "sas_augment<float, int, false>", "sas_augment<float, int, true>",
    ]  # fmt: skip


def _read(address: int, dtype, count: int) -> np.ndarray:
    """``count`` elements of ``dtype`` at a host address (the CPU tests' "device" memory)."""
    return np.frombuffer(ctypes.string_at(address, count * np.dtype(dtype).itemsize), dtype)


def test_launch_record_holds_the_arrays_and_plans_by_name(rng):
    image = random_image(rng, (2, 9, 7, 3), np.uint16)[:, ::-2]  # negative row stride
    mask = label_masks(rng, 2, 9, 7, np.int32)[:, ::-2]
    geo = make_geometry(image.shape, image.dtype, mask_dtype=mask.dtype, scale=0.5, canvas=(4, 6), fill=9, mask_fill=2)
    noise = make_noise(2, image.dtype, kind=["speckle", "gaussian"], sigma=0.1, labels=[3, 1], seed=2**33 + 5)
    out = _outputs(2, geo.canvas, 3, image.dtype, mask.dtype)
    launch = cuda.build_launch("augment", image, mask, geo, noise, *out, np)
    assert len(launch.args) == 1 and launch.args[0] is launch.record
    assert launch.record.dtype == cuda.LAUNCH_DTYPE and launch.record.shape == (1,)
    r = launch.record[0]
    addresses = {"img": image, "msk": mask, "out": out[0], "out_mask": out[1]}
    assert {name: int(r[name]) for name in addresses} == {name: a.ctypes.data for name, a in addresses.items()}
    assert [int(r[f"img_s{a}"]) for a in "nyxc"] == [s // 2 for s in image.strides]
    assert [int(r[f"msk_s{a}"]) for a in "nyx"] == [s // 4 for s in mask.strides]
    assert [int(r[f]) for f in ("n", "ho", "wo", "ch", "n_labels", "mask_fill", "clip", "wide")] == [2, 4, 6, 3, 2, 2, 1, 0]
    assert [int(r["key0"]), int(r["key1"])] == [int(k) for k in noise.key]
    assert [r[f] for f in ("lo", "span", "inv")] == [np.float32(noise.lo), np.float32(noise.span), np.float32(noise.inv)]
    # the one upload: per-sample records, fill values, selected labels, kept alive by the launch
    upload = [a for a in launch.arrays if a.ctypes.data == int(r["params"])]
    assert len(upload) == 1 and upload[0].dtype == np.uint32
    np.testing.assert_array_equal(_read(int(r["params"]), SAMPLE_DTYPE, 2), pack_samples(2, geo, noise))
    np.testing.assert_array_equal(_read(int(r["fill"]), np.float32, 3), [9.0, 9.0, 9.0])
    np.testing.assert_array_equal(_read(int(r["labels"]), np.int32, 2), [1, 3])
    assert int(r["labels"]) + 2 * 4 == int(r["params"]) + upload[0].nbytes
    # rescale_paste without a mask: null mask addresses, zero strides
    plain = cuda.build_launch("rescale_paste", image, None, geo, None, out[0], None, np).record[0]
    assert [int(plain[f]) for f in ("msk", "out_mask", "msk_sn", "msk_sy", "msk_sx", "n_labels")] == [0, 0, 0, 0, 0, -1]


def test_area_tap_tables_are_written_on_the_device_as_the_reference_computes_them(host, rng):
    """sas_area_taps runs first and fills, per area sample, one entry per shrunk row then per shrunk
    column: sas_fast.geometry.area_taps in compact form (first, count, first / middle / last weight)."""
    image = random_image(rng, (N, H, W, 1), np.uint8)
    mask = label_masks(rng, N, H, W, np.uint8)
    geo = make_geometry(image.shape, image.dtype, mask_dtype=mask.dtype, **GEOMETRY_CASES["area-per-sample"])
    want, got = _geometry_pair(host, image, mask, geo)
    assert_same(want, got)
    main = host.launches[-1]
    assert [launch.name for launch in main.before] == [cuda.AREA_TAPS_KERNEL] and host.launches[-2] is main.before[0]
    n_taps = int(main.record["n_taps"][0])
    assert n_taps == area_entries(geo).sum() > 0
    entries = _read(int(main.record["taps"][0]), AREA_TAP_DTYPE, n_taps)
    expected = []
    for (sh, sw), (h, w) in zip(geo.crop[:, 2:], geo.thumb):
        expected += [area_taps(np.arange(side), src, side) for src, side in ((sh, h), (sw, w)) if side < src]
    index = np.concatenate([t.index[:, 0] for t in expected])
    count = np.concatenate([t.count for t in expected])
    weight = np.concatenate([np.pad(t.weight, ((0, 0), (0, 64 - t.weight.shape[1]))) for t in expected])
    last = weight[np.arange(len(count)), count - 1]
    np.testing.assert_array_equal(entries["first"], index)
    np.testing.assert_array_equal(entries["count"], count)
    np.testing.assert_array_equal(entries["w_first"], weight[:, 0])
    np.testing.assert_array_equal(entries["w_last"], last)
    np.testing.assert_array_equal(entries["w_mid"][count > 2], weight[count > 2, 1])


def test_bilinear_batches_launch_no_table_kernel_and_huge_tables_are_refused(host, rng, monkeypatch):
    image = random_image(rng, (N, H, W, 1), np.uint8)
    geo = make_geometry(image.shape, image.dtype, scale=0.3)
    out = np.empty_like(image)
    launch = cuda.build_launch("rescale_paste", image, None, geo, None, out, None, np)
    assert launch.before == () and int(launch.record["taps"][0]) == 0 and int(launch.record["n_taps"][0]) == 0
    area = make_geometry(image.shape, image.dtype, scale=0.3, interpolation="area")
    monkeypatch.setattr(cuda, "area_entries", lambda geo: np.full(N, 2**31, np.int64))
    with pytest.raises(ValueError, match=r"area tap tables would hold 6442450944 entries \(2\*\*32 at most\)"):
        cuda.build_launch("rescale_paste", image, None, area, None, out, None, np)


def test_launch_record_must_be_given_every_field():
    fields = {name: 0 for name in cuda.LAUNCH_DTYPE.names if name != "wide"}
    with pytest.raises(TypeError, match=r"missing fields \['wide'\], unknown fields \['extra'\]"):
        cuda._launch_record(**fields, extra=1)


# ----------------------------------------------------------------------------- without CuPy


def test_sas_fast_works_without_cupy_and_names_what_to_install():
    script = """
import sys
sys.modules["cupy"] = None  # import cupy -> ImportError, as on a machine without it
import numpy as np
import sas_fast
assert "cupy" not in sas_fast.available_backends()
img, msk = np.full((2, 9, 9), 200, np.uint8), np.ones((2, 9, 9), np.uint8)
for name in sas_fast.available_backends():
    out = sas_fast.noise_in_mask(img, msk, backend=name, seed=1)
    assert out.shape == img.shape and (out != img).any()
try:
    sas_fast.rescale_paste(img, msk, scale=0.5, backend="cupy")
except sas_fast.BackendUnavailable as exc:
    assert "CuPy" in str(exc) or "cupy" in str(exc), exc
    assert "pip install" in str(exc), exc
    print("OK", sas_fast.available_backends())
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=cuda.SOURCE_DIR.parents[1])
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("OK") and "numpy" in result.stdout


def test_check_available_says_why_when_no_gpu_is_usable():
    try:
        cuda.check_available()
    except (ImportError, RuntimeError) as exc:
        assert "CuPy" in str(exc)
    else:
        pytest.skip("a CUDA device is usable here: tests/test_cuda_gpu.py covers this machine")
