"""The registry of backends: one entry per implementation, used by dispatch, tests and benchmarks.

Each backend module exposes the same three functions over validated plans (``sas_fast.plan``)::

    rescale_paste(image, mask, geo, out_image, out_mask)
    noise_in_mask(image, mask, noise, out_image)
    augment(image, mask, geo, noise, out_image, out_mask)

and ``DEVICE`` (``"cpu"`` for NumPy arrays, ``"cuda"`` for CuPy arrays).  A backend may also
expose ``bind_augment`` (same arguments, returns a callable that runs the compiled kernel alone):
the benchmarks time it as the bare kernel.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["BACKENDS", "BackendUnavailable", "available_backends", "load"]


class BackendUnavailable(RuntimeError):
    """A named backend cannot run here; the message says why and what to install."""


#: name -> (module, what to install when it cannot be imported)
BACKENDS: dict[str, tuple[str, str]] = {
    "numpy": ("sas_fast.backends.reference", "numpy"),
    "numba": ("sas_fast.backends.numba_cpu", "pip install numba (a runtime dependency of sas_fast)"),
    "cupy": (
        "sas_fast.backends.cuda",
        "pip install 'sas_fast[cuda12]' or 'sas_fast[cuda13]' (CuPy for your CUDA version) on a machine with an NVIDIA GPU",
    ),
}

_loaded: dict[str, ModuleType] = {}
_failed: dict[str, str] = {}


def load(name: str) -> ModuleType:
    """The backend module called ``name``; :class:`BackendUnavailable` if it cannot run here."""
    if name not in BACKENDS:
        raise ValueError(f"backend: unknown backend {name!r}; accepted: 'auto', {', '.join(map(repr, BACKENDS))}")
    if name in _loaded:
        return _loaded[name]
    if name not in _failed:
        module_name, hint = BACKENDS[name]
        try:
            module = importlib.import_module(module_name)
            check = getattr(module, "check_available", None)
            if check is not None:
                check()
        except (ImportError, RuntimeError, OSError) as exc:
            _failed[name] = f"backend {name!r} is not available here ({type(exc).__name__}: {exc}); to use it: {hint}"
        else:
            _loaded[name] = module
            return module
    raise BackendUnavailable(_failed[name])


def available_backends() -> list[str]:
    """The backends usable in this process, e.g. ``["numpy", "numba"]``."""
    usable = []
    for name in BACKENDS:
        try:
            load(name)
        except BackendUnavailable:
            continue
        usable.append(name)
    return usable
