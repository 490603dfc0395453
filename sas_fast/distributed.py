"""Scale-out with Dask: SAS over chunked arrays and bags, on a laptop or a cluster.

Because every draw is counter-based on ``(seed, global sample id)`` (SPEC §4), a sample's output
does not depend on which chunk, worker or machine computes it: the result equals a one-process
:func:`sas_fast.augment` for the same seed and ids, for any chunking.

* :func:`augment_dask_array`: same-size images as a ``dask.array`` ``(N, H, W[, C])`` with masks
  ``(N, H, W)``, chunked along the batch axis; the sample ids travel with the data as a third
  array (default ``0..N-1``), so each chunk knows its samples' global ids.
* :func:`augment_bag`: a ``dask.bag`` of ``{"image", "mask", "sample_id"}`` records, for images of
  different sizes (e.g. files read by ``dask.bag.from_sequence(paths).map(load)``).

Needs ``pip install "sas_fast[dask]"`` (``dask[distributed]`` for a cluster).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .config import SASConfig
from .transform import SAS

__all__ = ["augment_bag", "augment_dask_array"]


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:
        raise ImportError(f"sas_fast.distributed needs Dask: pip install 'sas_fast[dask]' ({exc})") from None
    return da


def _augment_chunk(images: np.ndarray, masks: np.ndarray, ids: np.ndarray, *, sas: SAS) -> tuple[np.ndarray, np.ndarray]:
    result = sas.batch(images, masks, ids)
    return result["image"], result["mask"]


def augment_dask_array(
    images: Any,
    masks: Any,
    config: SASConfig | None = None,
    *,
    seed: int = 0,
    sample_ids: Any = None,
    backend: str = "auto",
    value_range: tuple[float, float] | None = None,
) -> tuple[Any, Any]:
    """Lazy SAS of a batch: ``(images_out, masks_out)`` as dask arrays with ``images``' batch chunks.

    ``images`` ``(N, H, W)`` or ``(N, H, W, C)`` and ``masks`` ``(N, H, W)``: dask arrays (or
    anything ``dask.array.asarray`` takes); chunks along ``H``, ``W``, ``C`` are merged, since a
    sample is augmented whole.  ``sample_ids``: the samples' global ids (NumPy or dask, length
    ``N``; default ``0..N-1``; e.g. ``dask.array.arange(start, start + N)`` for a shard of a larger
    dataset).  Compute both outputs together (``dask.compute(images_out, masks_out)``) so each
    chunk is augmented once.
    """
    da = _dask_array()
    images, masks = da.asarray(images), da.asarray(masks)
    if images.ndim not in (3, 4) or masks.ndim != 3 or images.shape[:3] != masks.shape:
        raise ValueError(
            f"images (N, H, W[, C]) and masks (N, H, W) must agree, got shapes {images.shape} and {masks.shape}"
        )
    n = images.shape[0]
    sas = SAS(config, seed=seed, backend=backend, value_range=value_range)
    if n == 0:  # nothing to augment (and nothing for dask to infer output types from)
        return images.copy(), masks.copy()
    ids = da.arange(n, dtype=np.int64) if sample_ids is None else da.asarray(sample_ids)
    if ids.shape != (n,):
        raise ValueError(f"sample_ids: expected {n} ids (one per sample), got shape {ids.shape}")
    batch_chunks = images.chunks[0]
    images = images.rechunk((batch_chunks,) + (-1,) * (images.ndim - 1))
    masks = masks.rechunk((batch_chunks, -1, -1))
    ids = ids.rechunk((batch_chunks,))
    core = "(h,w,c)" if images.ndim == 4 else "(h,w)"
    return da.apply_gufunc(
        _augment_chunk,
        f"{core},(h,w),()->{core},(h,w)",
        images,
        masks,
        ids,
        output_dtypes=[images.dtype, masks.dtype],
        sas=sas,
    )


def _augment_record(record: dict[str, Any], sas: SAS) -> dict[str, Any]:
    out = sas(image=record["image"], mask=record["mask"], sample_id=record["sample_id"])  # an integer, never truncated
    return {**record, "image": out["image"], "mask": out["mask"]}


def augment_bag(
    records: Any,
    config: SASConfig | None = None,
    *,
    seed: int = 0,
    backend: str = "auto",
    value_range: tuple[float, float] | None = None,
) -> Any:
    """Lazy SAS of a ``dask.bag`` of ``{"image", "mask", "sample_id", ...}`` records (any sizes).

    Each record comes back with ``image`` and ``mask`` replaced by their augmented versions and
    its other keys kept; ``sample_id`` is the sample's global id.
    """
    return records.map(_augment_record, sas=SAS(config, seed=seed, backend=backend, value_range=value_range))
