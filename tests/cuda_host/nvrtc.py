"""Compile CUDA source with NVRTC, the compiler ``cupy.RawModule`` uses at run time, without a GPU.

CuPy cannot compile without a device (it asks the driver for the architecture), but NVRTC itself
only needs its library and an explicit ``--gpu-architecture``.  :func:`library_path` finds
``libnvrtc`` from the ``nvidia-cuda-nvrtc`` wheel (a test dependency on Linux), a CUDA toolkit, or
the loader's search path; :func:`compile_program` compiles one program with name expressions
exactly as CuPy would ask and returns the CUBIN or PTX and each expression's lowered (mangled) name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from pathlib import Path


def library_path() -> str | None:
    """The path (or loader name) of ``libnvrtc``, or None if there is none here."""
    roots = [Path(p) / "nvidia" for p in sys.path if p] + [Path(os.environ.get("CUDA_HOME", "/usr/local/cuda"))]
    for root in roots:
        # wheel layouts: nvidia/cu13/lib (CUDA 13), nvidia/cuda_nvrtc/lib (CUDA 12); toolkit: lib64
        for pattern in ("cu*/lib/libnvrtc.so.*", "cuda_nvrtc/lib/libnvrtc.so.*", "lib64/libnvrtc.so*"):
            found = sorted(p for p in root.glob(pattern) if ".alt." not in p.name)
            if found:
                return str(found[0])
    return ctypes.util.find_library("nvrtc")


class NvrtcError(RuntimeError):
    """NVRTC refused the program; the message carries its log."""


def _load(path: str) -> ctypes.CDLL:
    # NVRTC dlopens libnvrtc-builtins by soname; preloading it from the same folder makes a
    # wheel-installed NVRTC work without LD_LIBRARY_PATH.
    for builtins in sorted(Path(path).parent.glob("libnvrtc-builtins.so.*")):
        if ".alt." not in builtins.name:
            ctypes.CDLL(str(builtins), mode=ctypes.RTLD_GLOBAL)
    lib = ctypes.CDLL(path)
    lib.nvrtcGetErrorString.restype = ctypes.c_char_p
    return lib


def compile_program(
    path: str, source: str, name: str, options: list[str], name_expressions: list[str]
) -> tuple[str | bytes, dict[str, str], str]:
    """Compile ``source`` with the NVRTC at ``path``; return ``(code, {expression: lowered name}, log)``.

    ``code`` is the CUBIN (bytes) for a real architecture (``-arch=sm_XX``, what CuPy asks for on
    a GPU NVRTC supports) and the PTX text for a virtual one (``--gpu-architecture=compute_XX``).
    """
    lib = _load(path)
    prog = ctypes.c_void_p()

    def log() -> str:
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        text = ctypes.create_string_buffer(max(size.value, 1))
        lib.nvrtcGetProgramLog(prog, text)
        return text.value.decode(errors="replace")

    def check(status: int, step: str) -> None:
        if status != 0:
            raise NvrtcError(f"{step}: {lib.nvrtcGetErrorString(status).decode()}\n{log()}")

    check(lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None), "create")
    try:
        for expr in name_expressions:
            check(lib.nvrtcAddNameExpression(prog, expr.encode()), f"add name expression {expr!r}")
        argv = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        check(lib.nvrtcCompileProgram(prog, len(options), argv), "compile")
        lowered = {}
        for expr in name_expressions:
            out = ctypes.c_char_p()
            check(lib.nvrtcGetLoweredName(prog, expr.encode(), ctypes.byref(out)), f"lowered name of {expr!r}")
            lowered[expr] = out.value.decode()
        kind = "CUBIN" if any(o.startswith("-arch=sm_") for o in options) else "PTX"
        size = ctypes.c_size_t()
        check(getattr(lib, f"nvrtcGet{kind}Size")(prog, ctypes.byref(size)), f"{kind} size")
        code = ctypes.create_string_buffer(size.value)
        check(getattr(lib, f"nvrtcGet{kind}")(prog, code), kind)
        return (code.raw if kind == "CUBIN" else code.value.decode()), lowered, log()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))


def compile_kernels(path: str, arch_option: str, names: list[str]) -> tuple[str | bytes, dict[str, str], str]:
    """``sas_fast/cuda/sas_kernels.cu`` compiled as ``cupy.RawModule`` would: the loader's options plus
    what CuPy adds (``-ftz=true`` and ``arch_option``, e.g. ``-arch=sm_90``), with ptxas' report of
    each kernel's registers and spills in the log.  Returns as :func:`compile_program`."""
    from sas_fast.backends import cuda

    options = [*cuda.compile_options(), arch_option, "-ftz=true", "--ptxas-options=-v"]
    return compile_program(path, cuda.kernel_source(), cuda.KERNEL_FILE, options, names)
