"""Folders of image/mask pairs: the ``sas-fast augment`` job and ``sas-fast replay``.

One module per concern, each safety rule in one place:

* :mod:`~sas_fast.folder.pairs`: which files pair up (layouts, mask names);
* :mod:`~sas_fast.folder.imagefiles`: decoding, with the pixel cap checked from the file header
  before decoding (:data:`MAX_IMAGE_PIXELS`), and PNG encoding;
* :mod:`~sas_fast.folder.paths`: path rules (real paths, disjoint input/output trees, safe
  relative paths from the manifest, names escaped in messages);
* :mod:`~sas_fast.folder.atomic`: the only writer (atomic files, never through a link);
* :mod:`~sas_fast.folder.manifest`: ``params.jsonl`` / ``sas_run.json`` records, parsed and checked;
* :mod:`~sas_fast.folder.job`: the resumable job (:func:`augment_folder`), in bounded chunks;
* :mod:`~sas_fast.folder.replay`: regenerating a run from its manifest (:func:`replay`).
"""

from .atomic import TMP_PREFIX, OutputTree
from .errors import ConfigError, JobError, PairError, UnsafePath
from .imagefiles import MAX_IMAGE_PIXELS, encode_png, read_pair
from .job import CHUNK_BYTES, TASK_COPIES, RunSummary, augment_folder, backend_name
from .manifest import MANIFEST, RUN_FILE, output_paths
from .pairs import IMAGE_EXTENSIONS, Pair, find_pairs
from .replay import ReplaySummary, replay

__all__ = [
    "CHUNK_BYTES",
    "IMAGE_EXTENSIONS",
    "MANIFEST",
    "MAX_IMAGE_PIXELS",
    "RUN_FILE",
    "TASK_COPIES",
    "TMP_PREFIX",
    "ConfigError",
    "JobError",
    "OutputTree",
    "Pair",
    "PairError",
    "ReplaySummary",
    "RunSummary",
    "UnsafePath",
    "augment_folder",
    "backend_name",
    "encode_png",
    "find_pairs",
    "output_paths",
    "read_pair",
    "replay",
]
