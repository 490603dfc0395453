"""sas_fast: fast, reproducible SAS augmentation (scale simulation + in-mask noise) for ultrasound.

Public API (SPEC §6): :func:`rescale_paste`, :func:`noise_in_mask`, :func:`augment`,
:class:`SASConfig` / :class:`SASParams`, :func:`philox4x32_10`, :func:`available_backends`; threads:
:func:`get_num_threads` / :func:`set_num_threads` / :func:`threading_layer` (``sas_fast.threads``).
"""

from .api import augment, noise_in_mask, rescale_paste
from .backends import BackendUnavailable, available_backends
from .config import SASConfig, SASParams
from .epochs import EpochSampler
from .philox import philox4x32_10
from .threads import get_num_threads, set_num_threads, threading_layer
from .transform import SAS

__version__ = "0.1.0"


def __getattr__(name: str):
    """``sas_fast.data`` and ``sas_fast.integrations`` after a plain ``import sas_fast``, imported
    on first use (neither is needed to augment, and the integrations import their frameworks)."""
    if name in ("data", "integrations"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'sas_fast' has no attribute {name!r}")


__all__ = [
    "BackendUnavailable",
    "EpochSampler",
    "SAS",
    "SASConfig",
    "SASParams",
    "__version__",
    "augment",
    "available_backends",
    "get_num_threads",
    "noise_in_mask",
    "philox4x32_10",
    "rescale_paste",
    "set_num_threads",
    "threading_layer",
]
