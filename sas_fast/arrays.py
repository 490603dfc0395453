"""Array interop: NumPy, CuPy, torch and other ``__cuda_array_interface__`` arrays in and out.

Backends see NumPy arrays (``DEVICE == "cpu"``) or CuPy arrays (``DEVICE == "cuda"``); results go
back to the caller's array type, zero-copy where possible (torch CPU tensors share memory with
NumPy; CUDA tensors go through DLPack).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["array_kind", "copy_into", "device_of", "from_backend", "native", "to_backend", "to_host"]


def _is_torch(x: Any) -> bool:
    return type(x).__module__.split(".")[0] == "torch" and hasattr(x, "device")


def array_kind(x: Any) -> str:
    """``"numpy"``, ``"torch"`` (CPU tensor), ``"torch-cuda"``, or ``"cuda"`` (CuPy and other device arrays).

    Anything that exposes ``__cuda_array_interface__`` lives on the GPU, whatever its class (the
    CPU tests' CuPy stand-in is a NumPy subclass that does).
    """
    if type(x) is np.ndarray:  # the common case first: this runs several times per call
        return "numpy"
    if _is_torch(x):
        return "torch-cuda" if x.device.type == "cuda" else "torch"
    if hasattr(x, "__cuda_array_interface__"):
        return "cuda"
    return "numpy"


def device_of(x: Any) -> str:
    """``"cuda"`` for CuPy arrays, CUDA tensors and other device arrays, else ``"cpu"``."""
    return "cuda" if array_kind(x) in ("cuda", "torch-cuda") else "cpu"


def native(x: Any) -> Any:
    """``x``'s own memory as the array type of its device (NumPy or CuPy), zero-copy for arrays."""
    return x if type(x) is np.ndarray else to_backend(x, device_of(x))


def to_host(x: Any) -> np.ndarray:
    """``x`` as a NumPy array (CuPy arrays and tensors on any device are copied to the host)."""
    return np.asarray(to_backend(x, "cpu"))


def copy_into(dst: Any, src: Any) -> None:
    """Write ``src`` (NumPy or CuPy, of ``dst``'s shape) into the caller's buffer ``dst``, across devices."""
    native(dst)[...] = to_backend(src, device_of(dst))


def to_backend(x: Any, device: str) -> Any:
    """``x`` as the array type a backend of ``device`` (``"cpu"`` or ``"cuda"``) computes on."""
    if type(x) is np.ndarray and device == "cpu":
        return x
    kind = array_kind(x)
    if device == "cpu":
        if kind == "torch":
            return x.detach().resolve_conj().numpy()
        if kind in ("torch-cuda", "cuda"):
            import cupy

            return cupy.asnumpy(_as_cupy(x, kind))
        return np.asarray(x)
    return _as_cupy(x, kind)


def _as_cupy(x: Any, kind: str) -> Any:
    import cupy

    if kind == "torch-cuda":
        return cupy.from_dlpack(x.detach())
    if kind == "torch":
        return cupy.asarray(x.detach().numpy())
    return cupy.asarray(x)


def from_backend(result: Any, like: Any) -> Any:
    """``result`` (NumPy or CuPy) converted to the array type of ``like``."""
    if result is None:
        return None
    kind = array_kind(like)
    on_device = hasattr(result, "__cuda_array_interface__")
    if kind == "numpy":
        if on_device:
            import cupy

            return cupy.asnumpy(result)
        return result
    if kind in ("torch", "torch-cuda"):
        import torch

        if kind == "torch":
            if on_device:
                import cupy

                result = cupy.asnumpy(result)
            return torch.from_numpy(result)
        if not on_device:
            import cupy

            result = cupy.asarray(result)
        return torch.from_dlpack(result)
    if not on_device:
        import cupy

        return cupy.asarray(result)
    return result
