"""A stand-in for CuPy on a machine without a GPU, so that the GPU tests run in CI.

``SAS_FAST_CUPY_STANDIN=1 python -m pytest -m gpu tests`` installs it as the ``cupy`` module
(tests/conftest.py does, before anything imports CuPy).  Then:

* "device arrays" are NumPy arrays of the subclass :class:`ndarray`, which carries
  ``__cuda_array_interface__`` (so sas_fast treats them as GPU arrays) and ``.device``;
  ``asarray`` / ``asnumpy`` copy across the pretend boundary, as CuPy's do;
* ``RawModule(...).get_function(name)`` runs the kernel instance ``name`` of the unchanged
  ``sas_fast/cuda/sas_kernels.cu`` compiled for the CPU (:mod:`host_backend`), with the launch
  record ``backends.cuda`` builds for the real thing (a host array passed by value, as CuPy does; a
  "device array" argument is refused, since CuPy would pass its address instead).

So everything sas_fast does around a GPU launch (dispatch, array conversions, out= buffers across
devices, launch arguments, per-kernel module memoisation) runs in CI against the real kernel
source, and so does benchmarks/bench_gpu.py (tests/test_bench_gpu.py; events time on the host).  What it cannot show: real CuPy's API, NVRTC on a device, the GPU's arithmetic and timing.
Only the calls sas_fast and its GPU tests make are provided; anything else raises AttributeError.
"""

from __future__ import annotations

import sys
import time
import types
from typing import Any

import numpy as np

#: Marks the stand-in: GPU tests too large for the host kernels skip under it, saying so.
STANDIN = True


class ndarray(np.ndarray):  # noqa: N801  (CuPy's class name)
    """A NumPy array that presents itself as device memory."""

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"shape": self.shape, "typestr": self.dtype.str, "data": (self.ctypes.data, False),
                "strides": self.strides, "version": 3}  # fmt: skip

    @property
    def device(self) -> Device:
        return Device()


def _device(arr: np.ndarray) -> ndarray:
    return arr.view(ndarray)


def asarray(a: Any, dtype: Any = None) -> ndarray:
    """Device arrays pass through; anything else is copied "to the device"."""
    if isinstance(a, ndarray) and (dtype is None or a.dtype == np.dtype(dtype)):
        return a
    return _device(np.array(a, dtype=dtype))


def asnumpy(a: Any) -> np.ndarray:
    """A host copy (a plain ``numpy.ndarray``)."""
    return np.array(a)


def ascontiguousarray(a: Any) -> ndarray:
    return _device(np.ascontiguousarray(a))


def _creator(function):
    def create(*args, **kwargs):
        return _device(function(*args, **kwargs))

    create.__name__ = function.__name__
    return create


empty, zeros, full, arange = (_creator(f) for f in (np.empty, np.zeros, np.full, np.arange))
uint8, uint16, int32, float32 = np.uint8, np.uint16, np.int32, np.float32
isfinite, argwhere, may_share_memory = np.isfinite, np.argwhere, np.may_share_memory
clip, where, rint, copyto = np.clip, np.where, np.rint, np.copyto

_generator = np.random.default_rng(20261127)
random = types.SimpleNamespace(
    randint=lambda low, high, size, dtype=int: _device(_generator.integers(low, high, size=size, dtype=dtype)),
    random=lambda size, dtype=float: _device(_generator.random(size, dtype=dtype)),
    standard_normal=lambda size, dtype=float: _device(_generator.standard_normal(size, dtype=dtype)),
)


class Device:
    """The one pretend device (id 0), usable as a context manager like ``cupy.cuda.Device``."""

    id = 0

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def synchronize(self) -> None:
        pass


class Stream(Device):
    """Kernels run when launched, so every stream is always synchronised."""

    def __init__(self, non_blocking: bool = False):
        pass


class Event:
    """``cupy.cuda.Event`` on the host clock (kernels run when launched)."""

    def record(self) -> None:
        self.at = time.perf_counter()

    def synchronize(self) -> None:
        pass


def get_elapsed_time(start: Event, end: Event) -> float:
    """Milliseconds between two recorded events."""
    return (end.at - start.at) * 1e3


class _Pool:
    def free_all_blocks(self) -> None:
        pass


def get_default_memory_pool() -> _Pool:
    return _Pool()


class RawModule:
    """``cupy.RawModule``: the host-compiled kernels, looked up by name expression."""

    def __init__(self, code: str, options: tuple[str, ...], name_expressions: list[str]):
        from sas_fast.backends import cuda

        if code != cuda.kernel_source():
            raise ValueError("the stand-in runs sas_fast/cuda/sas_kernels.cu only")
        self.names = list(name_expressions)

    def get_function(self, name: str):
        if name not in self.names:
            raise KeyError(f"{name!r} was not among the module's name expressions {self.names}")

        def kernel(grid: tuple[int], block: tuple[int], args: tuple) -> None:
            _host().launch(name, grid[0], block[0], args)

        return kernel


def _host():
    """The kernels compiled for the CPU (one build per process, shared with the ``host`` fixture)."""
    from tests.cuda_host import host_backend

    return host_backend.shared()


cuda = types.SimpleNamespace(
    Device=lambda device_id=0: Device(),
    Stream=Stream,
    Event=Event,
    get_elapsed_time=get_elapsed_time,
    runtime=types.SimpleNamespace(
        getDeviceCount=lambda: 1, getDeviceProperties=lambda device_id: {"name": b"CuPy stand-in (CPU)"}
    ),
)


def install() -> None:
    """Make ``import cupy`` return this module (call before anything imports CuPy)."""
    if "cupy" in sys.modules and sys.modules["cupy"] is not sys.modules[__name__]:
        raise RuntimeError("the real CuPy is already imported: the stand-in would shadow a GPU")
    _host()  # compile the kernels now, not inside a test's threads
    sys.modules["cupy"] = sys.modules[__name__]
