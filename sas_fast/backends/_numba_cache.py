"""On-disk cache invalidation for the Numba backend: a compiled function follows all of its sources.

Numba keys a function's disk cache on the hash of the function's own file.  The backend's
kernels link code from several ``_numba_*`` modules and bake in constants from ``fmath``,
``geometry``, ``philox``, ``samplers``, ``plan`` and ``records``; after an edit to any of those, a kernel cached from the
old code would load silently and compute the old thing.  Importing this module registers cache
locators (Numba's user-directory and in-tree ones), used for the functions defined in this
directory only, whose source stamp is the hash of every one of those files, so an edit anywhere
recompiles all of them.

Every module of the backend imports this one before defining a ``cache=True`` function (Numba
picks the locator when the decorator runs).  It relies on Numba's ``CacheImpl._locator_classes``
list (``_CacheImpl`` before Numba 0.6x); ``tests/test_numba_backend.py`` checks that the hook is
in place, since without it caching silently falls back to Numba's per-file behaviour.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from numba.core import caching

__all__ = ["LOCATORS", "SOURCES", "registered"]

_BACKENDS = Path(__file__).resolve().parent
_PACKAGE = _BACKENDS.parent
#: Every file whose code or constants the backend's compiled functions contain.
SOURCES = tuple(
    sorted(_BACKENDS.glob("_numba_*.py"))
    + [_BACKENDS / "numba_cpu.py"]
    + [_PACKAGE / name for name in ("fmath.py", "geometry.py", "philox.py", "samplers.py", "plan.py", "records.py")]
)


@functools.lru_cache(maxsize=None)
def _stamp() -> str:
    digest = hashlib.sha256()
    for path in SOURCES:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class _AllSourcesStamp:
    """Locator mixin: used for this directory's functions only, stamped with all :data:`SOURCES`."""

    @classmethod
    def from_function(cls, py_func, py_file):
        if Path(py_file).resolve().parent != _BACKENDS:
            return None  # not ours: leave it to Numba's own locators
        return super().from_function(py_func, py_file)

    def get_source_stamp(self):
        return _stamp()


class _UserDirLocator(_AllSourcesStamp, caching.UserProvidedCacheLocator):
    """``NUMBA_CACHE_DIR``, when the user sets one (as Numba's own order has it)."""


class _InTreeLocator(_AllSourcesStamp, caching.InTreeCacheLocator):
    """``__pycache__`` next to the sources, when writable (else Numba's user-wide fallback)."""


_OURS = (_UserDirLocator, _InTreeLocator)


def registered() -> bool:
    """Whether Numba consults these locators first (tested, so that a Numba change is noticed)."""
    return [c.__name__ for c in LOCATORS[: len(_OURS)]] == [c.__name__ for c in _OURS]


_impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # public from Numba 0.6x
#: Numba's list of cache locator classes, tried in order (empty if this Numba has no such hook).
LOCATORS = getattr(_impl, "_locator_classes", [])
if isinstance(LOCATORS, list) and not registered():
    LOCATORS[:0] = _OURS
