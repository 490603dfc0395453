"""Run sas_fast's CUDA kernels on the CPU: the same ``.cu`` file, compiled as host C++ with g++.

``build(directory)`` writes a translation unit that includes ``cuda_shim.h`` and then
``sas_fast/cuda/sas_kernels.cu`` unchanged, with a table from every kernel instance's name
expression (``sas_fast.backends.cuda.name_expressions()``, the list the GPU loader compiles) to the
shim's grid loop, thin ``extern "C"`` probes of the device samplers, and a layout probe per record
struct of :data:`RECORDS` generated from its dtype's field names (a field the struct lacks fails to
compile; :meth:`HostBackend.layout` reports the offsets and sizes the tests compare with the dtype).
It compiles it with the loader's own ``-D`` defines and ``-ffp-contract=off`` (no FMA, like
``--fmad=false``) into a shared library.  :class:`HostBackend` then implements the backend interface
on NumPy arrays by passing the loader's own launches (``sas_fast.backends.cuda.compute``) to that
library.
"""

from __future__ import annotations

import atexit
import ctypes
import functools
import shutil
import subprocess
import tempfile
from collections import deque
from pathlib import Path

import numpy as np

from sas_fast.backends import cuda
from sas_fast.records import AREA_TAP_DTYPE, SAMPLE_DTYPE

SHIM_DIR = Path(__file__).resolve().parent
CXX_FLAGS = ("-std=c++17", "-O2", "-ffp-contract=off", "-fno-fast-math", "-fPIC", "-shared", "-w")

_PROBES = r"""
extern "C" void probe_philox(const unsigned* ctr, const unsigned* key, unsigned* out, long n) {
    for (long i = 0; i < n; ++i) {
        const sas::Words w = sas::philox4x32_10(ctr[4 * i], ctr[4 * i + 1], ctr[4 * i + 2], ctr[4 * i + 3], key[0], key[1]);
        out[4 * i] = w.w0; out[4 * i + 1] = w.w1; out[4 * i + 2] = w.w2; out[4 * i + 3] = w.w3;
    }
}
extern "C" void probe_log_cos(const unsigned* r, float* log_out, float* cos_out, long n) {
    for (long i = 0; i < n; ++i) { log_out[i] = sas::log_u(r[i]); cos_out[i] = sas::cos_turns(r[i]); }
}
extern "C" void probe_normal(const unsigned* p, unsigned sid, unsigned c, unsigned k0, unsigned k1, float* out, long n) {
    for (long i = 0; i < n; ++i) out[i] = sas::normal(p[i], sid, c, k0, k1);
}
extern "C" void probe_poisson(const double* lam, const unsigned* p, unsigned sid, unsigned c, unsigned k0, unsigned k1,
                              double* out, long n) {
    for (long i = 0; i < n; ++i) out[i] = sas::poisson(lam[i], p[i], sid, c, k0, k1);
}
"""


#: The C structs that mirror a NumPy record dtype: ``{struct: dtype}``.
RECORDS = {"sas::LaunchRecord": cuda.LAUNCH_DTYPE, "sas::SampleParams": SAMPLE_DTYPE, "sas::AreaTap": AREA_TAP_DTYPE}


def _probe_name(struct: str) -> str:
    return "probe_layout_" + struct.rsplit("::", 1)[-1]


def _layout_probe(struct: str, names: tuple[str, ...]) -> str:
    """C source of ``probe_layout_<Struct>(out)``: writes ``sizeof(struct)``, then each named field's
    offset and size, in the order given."""
    rows = "".join(
        f"    out[{1 + 2 * k}] = offsetof({struct}, {name}); out[{2 + 2 * k}] = sizeof({struct}::{name});\n"
        for k, name in enumerate(names)
    )
    head = f'extern "C" void {_probe_name(struct)}(unsigned long long* out) {{\n'
    return f"{head}    out[0] = sizeof({struct});\n{rows}}}\n"


def compiler() -> str | None:
    """The C++ compiler used (g++), or None if there is none."""
    return shutil.which("g++")


def translation_unit() -> str:
    """Host C++ source: shim, the unchanged kernel file, a launch table over every instance, probes
    of the device samplers and of the record structs' layouts."""
    rows = "\n".join(
        f'    if (!strcmp(name, "{expr}")) {{ sas_host::launch({expr}, grid, block, params); return 0; }}'
        for expr in cuda.name_expressions()
    )
    return (
        '#include "cuda_shim.h"\n'
        f'#include "{cuda.KERNEL_FILE}"\n\n'
        'extern "C" int sas_host_launch(const char* name, unsigned grid, unsigned block, void** params) {\n'
        f"{rows}\n    return -1;\n}}\n{_PROBES}"
        + "".join(_layout_probe(struct, dtype.names) for struct, dtype in RECORDS.items())
    )


def build(directory: Path) -> ctypes.CDLL:
    """Compile the kernels as a host shared library in ``directory`` and load it."""
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / "sas_host.cpp"
    library = directory / "sas_host.so"
    source.write_text(translation_unit())
    cmd = [compiler() or "g++", *CXX_FLAGS, f"-I{SHIM_DIR}", f"-I{cuda.SOURCE_DIR}", *cuda.compile_defines()]
    result = subprocess.run([*cmd, str(source), "-o", str(library)], capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"g++ failed on the CUDA sources:\n{result.stderr[-4000:]}")
    return ctypes.CDLL(str(library))


def _ptr(arr: np.ndarray):
    return arr.ctypes.data_as(ctypes.c_void_p)


class HostBackend:
    """The backend interface (``sas_fast.backends``) on NumPy arrays, kernels run on the host."""

    DEVICE = "cpu"

    def __init__(self, library: ctypes.CDLL):
        self.lib = library
        self.lib.sas_host_launch.restype = ctypes.c_int
        self.launches: deque[cuda.Launch] = deque(maxlen=8)  # the last launches run, for tests of their shapes

    def run(self, launch: cuda.Launch | None) -> None:
        """Run one of ``cuda.compute``'s launches (kept in :attr:`launches`)."""
        if launch is None:
            return
        self.launches.append(launch)
        self.launch(launch.name, launch.grid, launch.block, launch.args)

    def launch(self, name: str, grid: int, block: int, args: tuple) -> None:
        """Run kernel instance ``name`` on ``args`` as ``cupy.RawKernel`` passes them: each a host
        structured array of one element, whose bytes are the parameter's value (struct by value)."""
        for a in args:
            if not (type(a) is np.ndarray and a.dtype.names and a.size == 1 and a.flags.c_contiguous):
                got = f"{type(a).__name__} {getattr(a, 'dtype', '')}"
                raise TypeError(f"{name}: kernel arguments are one-element host records, got {got}")
        params = (ctypes.c_void_p * len(args))(*[a.ctypes.data for a in args])
        status = self.lib.sas_host_launch(name.encode(), grid, block, params)
        assert status == 0, f"no host launcher for {name}"

    def layout(self, struct: str) -> tuple[int, dict[str, tuple[int, int]]]:
        """``(sizeof(struct), {field: (offset, size)})`` of a struct of :data:`RECORDS`, as the
        compiler lays it out, for the fields of its dtype."""
        names = RECORDS[struct].names
        out = np.zeros(1 + 2 * len(names), np.uint64)
        getattr(self.lib, _probe_name(struct))(_ptr(out))
        return int(out[0]), {name: (int(out[1 + 2 * k]), int(out[2 + 2 * k])) for k, name in enumerate(names)}

    def rescale_paste(self, image, mask, geo, out_image, out_mask) -> None:
        cuda.compute("rescale_paste", image, mask, geo, None, out_image, out_mask, np, self.run)

    def noise_in_mask(self, image, mask, noise, out_image) -> None:
        cuda.compute("noise_in_mask", image, mask, None, noise, out_image, None, np, self.run)

    def augment(self, image, mask, geo, noise, out_image, out_mask) -> None:
        cuda.compute("augment", image, mask, geo, noise, out_image, out_mask, np, self.run)

    # ------------------------------------------------------------------ device-function probes

    def philox(self, counter: np.ndarray, key: np.ndarray) -> np.ndarray:
        counter = np.ascontiguousarray(counter, dtype=np.uint32).reshape(-1, 4)
        out = np.empty_like(counter)
        self.lib.probe_philox(_ptr(counter), _ptr(np.ascontiguousarray(key, np.uint32)), _ptr(out), ctypes.c_long(len(counter)))
        return out

    def log_cos(self, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        words = np.ascontiguousarray(words, dtype=np.uint32)
        log_out, cos_out = np.empty(words.shape, np.float32), np.empty(words.shape, np.float32)
        self.lib.probe_log_cos(_ptr(words), _ptr(log_out), _ptr(cos_out), ctypes.c_long(words.size))
        return log_out, cos_out

    def normal(self, p: np.ndarray, sid: int, c: int, key: np.ndarray) -> np.ndarray:
        p = np.ascontiguousarray(p, dtype=np.uint32)
        out = np.empty(p.shape, np.float32)
        self.lib.probe_normal(
            _ptr(p), ctypes.c_uint32(sid), ctypes.c_uint32(c), ctypes.c_uint32(int(key[0])),
            ctypes.c_uint32(int(key[1])), _ptr(out), ctypes.c_long(p.size),
        )  # fmt: skip
        return out

    def poisson(self, lam: np.ndarray, p: np.ndarray, sid: int, c: int, key: np.ndarray) -> np.ndarray:
        lam = np.ascontiguousarray(lam, dtype=np.float64)
        p = np.ascontiguousarray(p, dtype=np.uint32)
        out = np.empty(lam.shape, np.float64)
        self.lib.probe_poisson(
            _ptr(lam), _ptr(p), ctypes.c_uint32(sid), ctypes.c_uint32(c), ctypes.c_uint32(int(key[0])),
            ctypes.c_uint32(int(key[1])), _ptr(out), ctypes.c_long(lam.size),
        )  # fmt: skip
        return out


@functools.cache
def shared() -> HostBackend:
    """The kernels compiled for the CPU once per process (a temporary folder, removed at exit):
    the ``host`` test fixture and the CuPy stand-in both run this one build."""
    directory = Path(tempfile.mkdtemp(prefix="sas_cuda_host_"))
    atexit.register(shutil.rmtree, directory, True)
    return HostBackend(build(directory))
