"""Former home of the folder job, kept so ``sas_fast.io`` imports keep working: see :mod:`sas_fast.folder`.

The code is split by concern in :mod:`sas_fast.folder` (pairs, image files, paths, atomic
writes, manifest, job, replay); this module re-exports its public names.
"""

from .folder import *  # noqa: F403
from .folder import __all__  # noqa: F401
