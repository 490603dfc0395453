"""Threads: how many a call uses, and which Numba threading layer runs the parallel ones.

The rules (README, "Threads, processes and DataLoader workers"):

* A call whose canvas has fewer than :data:`PARALLEL_MIN_PIXELS` pixels, or that may use one
  thread, runs the *serial* compiled kernel: no thread pool is started, so nothing can
  oversubscribe and nothing breaks when the process forks afterwards.
* Threads a call may use: :func:`set_num_threads` (process-wide) if called, else the
  ``SAS_FAST_NUM_THREADS`` environment variable, else **1 inside a PyTorch DataLoader worker or
  any process forked after sas_fast was imported** (one thread per worker: the workers are the
  parallelism), else Numba's thread count (``NUMBA_NUM_THREADS``, all cores by default, or less
  where the calling thread set ``numba.set_num_threads``).
* Parallel calls run on a fork-safe layer: unless the user chose one (``NUMBA_THREADING_LAYER``
  or ``numba.config.THREADING_LAYER`` set before the first parallel call), sas_fast asks Numba
  for TBB when the ``tbb`` package is installed and else for ``workqueue``; never GNU OpenMP,
  which kills a forked child at its next parallel call.  ``workqueue`` is not safe for concurrent
  parallel calls from several Python threads, so sas_fast's parallel calls hold a lock under it.
* If the parallel layer that ends up running cannot survive a fork (the user chose ``omp``), a
  forked child runs every call serially and says so once (:class:`RuntimeWarning`), instead of
  being killed.

Nothing here starts a thread pool except :func:`parallel_section`, which only the Numba
backend's parallel path enters.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "PARALLEL_MIN_PIXELS",
    "get_num_threads",
    "parallel_section",
    "set_num_threads",
    "threading_layer",
    "use_parallel",
]

#: Canvas pixels (all samples and channels of one call) below which a call runs serially: below
#: this, starting or waking a pool costs more than the second core saves (one 256^2 image takes
#: about 0.1 ms on one thread).
PARALLEL_MIN_PIXELS = 1 << 20
#: Layers that survive fork, in order of preference (Numba's names).
FORK_SAFE_LAYERS = ("tbb", "workqueue")

_lock = threading.Lock()  # guards the state below and, under workqueue, each parallel call
_requested: int | None = None  # set_num_threads()
_forked = False  # this process is a fork child of one that had imported sas_fast
_layer: str | None = None  # the Numba layer running sas_fast's parallel calls, once started
_warned = False


def _after_fork_in_child() -> None:
    global _forked, _lock
    _forked = True
    _lock = threading.Lock()  # a lock held by another thread at fork time would never be released


os.register_at_fork(after_in_child=_after_fork_in_child)


def set_num_threads(n: int | None) -> None:
    """Use at most ``n`` threads per call in this process (``None``: back to the default rules)."""
    global _requested
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n: expected an integer >= 1 or None, got {n!r}")
    _requested = n


def _in_dataloader_worker() -> bool:
    data = sys.modules.get("torch.utils.data")  # never import torch ourselves
    get_info = getattr(data, "get_worker_info", None)
    return get_info is not None and get_info() is not None


def _env_threads() -> int | None:
    value = os.environ.get("SAS_FAST_NUM_THREADS")
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise ValueError(f"SAS_FAST_NUM_THREADS: expected an integer >= 1, got {value!r}")
    return n


def get_num_threads() -> int:
    """Threads a large call would use here and now (see the module's rules); starts nothing."""
    if _requested is not None:
        return _requested
    env = _env_threads()
    if env is not None:
        return env
    if _forked or _in_dataloader_worker():
        return 1
    import numba

    return int(numba.config.NUMBA_NUM_THREADS)


def use_parallel(pixels: int) -> int:
    """Threads for a call over ``pixels`` canvas values: 1 means the serial kernel."""
    if pixels < PARALLEL_MIN_PIXELS:
        return 1
    threads = get_num_threads()
    if threads > 1 and _forked and _layer_unsafe_after_fork():
        return 1
    return threads


def threading_layer() -> str | None:
    """The Numba threading layer running sas_fast's parallel calls, or None before the first one."""
    return _layer


def _layer_unsafe_after_fork() -> bool:
    """In a fork child: whether the parent had started a layer that does not survive fork."""
    global _warned
    import numba.np.ufunc.parallel as npp

    started = getattr(npp, "_threading_layer", None) if getattr(npp, "_is_initialized", False) else None
    if started is None or started in FORK_SAFE_LAYERS:
        return False
    if not _warned:
        _warned = True
        warnings.warn(
            f"sas_fast: this process was forked after Numba's {started!r} threading layer started, which "
            "cannot run parallel code in a fork child; sas_fast runs serially here. Leave "
            "NUMBA_THREADING_LAYER unset (sas_fast then picks a fork-safe layer) or use the spawn start method.",
            RuntimeWarning,
            stacklevel=4,
        )
    return True


def _tbb_library() -> Path | None:
    """``libtbb.so.12`` of the ``tbb`` wheel in this environment, if installed."""
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        for name in ("libtbb.so.12", "libtbb.12.dylib", "tbb12.dll"):
            path = Path(prefix) / ("Library/bin" if name.endswith(".dll") else "lib") / name
            if path.exists():
                return path
    return None


def _choose_layer() -> str:
    """Start Numba's threading layer for sas_fast's first parallel call; returns its name."""
    import numba
    import numba.np.ufunc.parallel as npp

    if not getattr(npp, "_is_initialized", False):
        chosen = os.environ.get("NUMBA_THREADING_LAYER") or numba.config.THREADING_LAYER
        if chosen not in ("", "default"):
            npp._launch_threads()  # the user's choice: if it cannot load, Numba's own error says why
        else:
            tbb = _tbb_library()
            if tbb is not None:
                # Numba's TBB pool links libtbb.so.12 without a path to a wheel's lib/: load it first.
                try:
                    ctypes.CDLL(str(tbb), mode=getattr(ctypes, "RTLD_GLOBAL", 0))
                except OSError:
                    tbb = None
            numba.config.THREADING_LAYER = "tbb" if tbb is not None else "workqueue"
            try:
                npp._launch_threads()
            except (ValueError, ImportError, OSError) as exc:
                if numba.config.THREADING_LAYER == "workqueue":
                    raise
                warnings.warn(
                    f"sas_fast: Numba's TBB threading layer failed to start ({exc}); using 'workqueue'",
                    RuntimeWarning,
                    stacklevel=4,
                )
                numba.config.THREADING_LAYER = "workqueue"
                npp._launch_threads()
    return numba.threading_layer()


@contextlib.contextmanager
def parallel_section(threads: int) -> Iterator[None]:
    """Run Numba parallel code with ``threads`` threads inside (starting the layer on first use).

    Restores the calling thread's Numba thread count afterwards, and serialises the section under
    ``workqueue`` (which crashes on concurrent parallel calls).
    """
    global _layer
    import numba

    if _layer is None:
        with _lock:
            if _layer is None:
                _layer = _choose_layer()
    guard = _lock if _layer == "workqueue" else contextlib.nullcontext()
    with guard:
        previous = numba.get_num_threads()
        if _requested is None and _env_threads() is None:
            threads = min(threads, previous)  # a numba.set_num_threads() of the caller's still limits us
        numba.set_num_threads(min(threads, int(numba.config.NUMBA_NUM_THREADS)))
        try:
            yield
        finally:
            numba.set_num_threads(previous)
