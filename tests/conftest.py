"""Shared fixtures: the backend registry parametrises every equivalence test."""

import os

import numpy as np
import pytest
from hypothesis import settings

if os.environ.get("SAS_FAST_CUPY_STANDIN"):  # the GPU tests on the CPU: tests/cuda_host/cupy_standin.py
    from tests.cuda_host import cupy_standin

    cupy_standin.install()

from benchmarks.workloads import ellipse_masks as workload_ellipses  # noqa: E402
from sas_fast.backends import BACKENDS  # noqa: E402

# Differential fuzzing (hypothesis, reference vs each backend): a bounded profile for CI, a long
# one for local runs: HYPOTHESIS_PROFILE=long python3 -m pytest -k property  (50x the examples).
settings.register_profile("ci", max_examples=40, deadline=None)
settings.register_profile("long", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

#: Backends that need a CUDA GPU: their parameters carry the ``gpu`` marker, so that
#: ``pytest -m gpu`` (benchmarks/gpu_check.sh) runs every backend-parametrised test on the device.
GPU_BACKENDS = ("cupy",)
#: The CUDA kernels compiled for the CPU (tests/cuda_host), run as one more backend of every
#: backend-parametrised test: the ``.cu`` file the GPU runs goes through the whole public API here.
HOST_CUDA = "cuda-host"


def _backend_params(names):
    return [pytest.param(name, marks=pytest.mark.gpu) if name in GPU_BACKENDS else name for name in names]


def _usable(request, name: str) -> str:
    """``name`` once it can run here (the host CUDA backend registered for this test), else skip."""
    from sas_fast import backends

    if name == HOST_CUDA:
        monkeypatch = request.getfixturevalue("monkeypatch")
        monkeypatch.setitem(backends.BACKENDS, HOST_CUDA, ("tests.cuda_host.host_backend", "g++ (tests only)"))
        monkeypatch.setitem(backends._loaded, HOST_CUDA, request.getfixturevalue("host"))
        return name
    try:
        backends.load(name)
    except backends.BackendUnavailable as exc:
        pytest.skip(str(exc))
    return name


#: Every registered backend other than the reference; unavailable ones are skipped with the reason.
COMPILED_BACKENDS = [name for name in BACKENDS if name != "numpy"]


@pytest.fixture(params=[*_backend_params(COMPILED_BACKENDS), HOST_CUDA])
def backend(request):
    """Each compiled backend in turn, and the CUDA kernels on the CPU (skipped, with why, where one cannot run)."""
    return _usable(request, request.param)


@pytest.fixture(scope="session")
def host():
    """The CUDA kernels compiled as a host library (``tests/cuda_host``), once per test process."""
    from tests.cuda_host import host_backend

    if host_backend.compiler() is None:
        pytest.skip("g++ is not installed: the CUDA kernels cannot be run on the CPU")
    return host_backend.shared()


@pytest.fixture
def rng():
    return np.random.default_rng(20261127)


def random_image(rng, shape, dtype):
    """Random pixels over the dtype's full range (float32: [0, 1))."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return rng.random(shape, dtype=np.float32)
    return rng.integers(0, np.iinfo(dtype).max, size=shape, endpoint=True, dtype=dtype)


def ellipse_masks(rng, n, h, w, dtype=np.uint8, label=1):
    """One random filled ellipse per sample covering 5-20 % of the image (the benchmark workloads'
    generator, same draws), as ``dtype`` with ``label`` inside."""
    return np.where(workload_ellipses(rng, n, h, w) != 0, label, 0).astype(dtype)


@pytest.fixture(params=[*_backend_params(BACKENDS), HOST_CUDA])
def any_backend(request):
    """Every registered backend, the reference included, and the CUDA kernels on the CPU (skipped,
    with why, where one cannot run)."""
    return _usable(request, request.param)
