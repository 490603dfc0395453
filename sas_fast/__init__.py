"""sas_fast: fast, reproducible SAS augmentation (scale simulation + in-mask noise) for ultrasound.

Public API (SPEC §6): :func:`rescale_paste`, :func:`noise_in_mask`, :func:`augment`,
:class:`SASConfig` / :class:`SASParams`, :func:`philox4x32_10`, :func:`available_backends`.
"""

from .api import augment, noise_in_mask, rescale_paste
from .backends import BackendUnavailable, available_backends
from .config import SASConfig, SASParams
from .epochs import EpochSampler
from .philox import philox4x32_10
from .transform import SAS

__version__ = "0.1.0"

__all__ = [
    "BackendUnavailable",
    "EpochSampler",
    "SAS",
    "SASConfig",
    "SASParams",
    "__version__",
    "augment",
    "available_backends",
    "noise_in_mask",
    "philox4x32_10",
    "rescale_paste",
]
