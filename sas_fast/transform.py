"""The training-loop face of sas_fast: a picklable per-sample transform, like albumentations'.

``SAS(config, seed=s)(image=..., mask=..., sample_id=i)`` samples the SAS policy for global
sample id ``i`` (``config.sample``) and applies it (``sas_fast.augment``).  Parameters and noise
are counter-based on ``(seed, sample id)`` (SPEC §4), so in a ``Dataset.__getitem__`` with
``sample_id=index`` the output of an index never depends on the DataLoader's worker count, the
order workers run in, or the batch a sample lands in.

Same sample id, same output: for fresh augmentations each epoch the id must change with the
epoch.  :class:`sas_fast.EpochSampler` yields ``epoch * len(dataset) + index``; the Dataset reads
item ``id % len(dataset)`` and passes ``sample_id=id`` (ids must stay below ``2**32``).  That works
with ``persistent_workers=True``, where an epoch attribute set on the main process's dataset never
reaches the workers.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from . import percall
from .api import augment
from .arrays import array_kind, from_backend, to_host
from .config import SASConfig, SASParams
from .philox import seed_to_key

__all__ = ["SAS"]

_UNPLANNED = object()
#: One-sample plans kept per transform (one per input shape and dtype seen).
_MAX_PLANS = 64


class SAS:
    """SAS augmentation as a transform: ``t(image=..., mask=..., sample_id=i) -> dict``.

    config: the policy (default: the paper's, ``SASConfig()``).
    seed: the 64-bit run seed; with the sample id it fixes every draw.
    backend: ``"auto"`` (CUDA arrays -> ``"cupy"``, else ``"numba"``, else ``"numpy"``) or a name.
    value_range: ``(lo, hi)`` intensity range (float32 default ``(0, 1)``; integer images: the
        dtype's, or e.g. ``(0, 4095)`` for 12-bit data in uint16).
    channels: ``"independent"`` noise per channel, or ``"shared"`` (channel 0's noise on every
        channel: grey images stored as RGB stay grey).
    channel_axis: the images' channel axis (``"auto"``: read off the shapes, see
        :func:`sas_fast.augment`; ``0`` for channel-first ``(C, H, W)`` / ``1`` for ``(N, C, H, W)``
        torch / MONAI layouts, ``-1`` for channel-last, ``None`` for none).

    Holds only plain values, so it pickles (DataLoader workers, Dask, multiprocessing) and a copy
    gives identical outputs.
    """

    def __init__(
        self,
        config: SASConfig | None = None,
        *,
        seed: int = 0,
        backend: str = "auto",
        value_range: tuple[float, float] | None = None,
        channel_axis: int | str | None = "auto",
        channels: str = "independent",
    ) -> None:
        if config is not None and not isinstance(config, SASConfig):
            raise TypeError(f"config: expected a SASConfig or None, got {type(config).__name__}")
        seed_to_key(seed)  # validates the seed now rather than at the first sample
        self.config = SASConfig() if config is None else config
        self.seed = int(seed)
        self.backend = backend
        self.value_range = value_range
        self.channel_axis = channel_axis
        self.channels = channels

    def __setattr__(self, name: str, value: Any) -> None:
        # the one-sample plans are built from these attributes: any change drops them
        object.__setattr__(self, name, value)
        object.__setattr__(self, "_plans", {})

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_plans"}  # plain values only

    def __setstate__(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            setattr(self, name, value)
        object.__setattr__(self, "_plans", {})

    def __repr__(self) -> str:
        return f"SAS({self.config!r}, seed={self.seed}, backend={self.backend!r})"

    def params(self, masks: Any, sample_ids: Any) -> SASParams:
        """The parameters that samples ``sample_ids`` with label masks ``masks`` ``(N, H, W)`` get."""
        ids = np.atleast_1d(np.asarray(sample_ids))
        # masks of any array type: SASConfig.sample copies them to the host only if its policy reads labels
        return self.config.sample(len(ids), seed=self.seed, sample_ids=ids, masks=masks.reshape((-1, *masks.shape[-2:])))

    def __call__(self, *, image: Any, mask: Any, sample_id: int, return_params: bool = False) -> dict[str, Any]:
        """Augment one sample: ``image`` ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``, ``mask`` ``(H, W)``
        or ``(1, H, W)`` labels.

        ``sample_id`` is the sample's global id (the dataset index); returns
        ``{"image": ..., "mask": ...}`` in the input's array type, plus ``"params"`` (a one-sample
        :class:`SASParams`) when ``return_params``.
        """
        mask_shape = tuple(getattr(mask, "shape", ()))
        if not (len(mask_shape) == 2 or (len(mask_shape) == 3 and mask_shape[0] == 1)):
            raise ValueError(f"mask: expected one (H, W) or (1, H, W) label mask, got shape {getattr(mask, 'shape', None)}")
        if len(getattr(image, "shape", ())) not in (2, 3):
            raise ValueError(f"image: expected one (H, W), (H, W, C) or (C, H, W) image, got shape {getattr(image, 'shape', None)}")
        sid = _one_id(sample_id)
        if not return_params:
            served = self._one_sample(image, mask, sid)
            if served is not None:
                return {"image": served[0], "mask": served[1]}
        return self._apply(image, mask, self.params(mask, [sid]), return_params)

    def _one_sample(self, image: Any, mask: Any, sid: int) -> tuple[Any, Any] | None:
        """The call through ``sas_fast.percall``, or None where it does not serve.  CPU tensors go
        through it as their NumPy views and come back as tensors (as the general path returns them)."""
        if type(image) is not np.ndarray or type(mask) is not np.ndarray:
            if array_kind(image) != "torch" or array_kind(mask) != "torch":
                return None
            served = self._one_sample(to_host(image), to_host(mask), sid)
            return None if served is None else tuple(from_backend(out, image) for out in served)
        key = (image.shape, image.dtype, mask.shape, mask.dtype)
        plans = self._plans
        plan = plans.get(key, _UNPLANNED)
        if plan is _UNPLANNED:
            if len(plans) >= _MAX_PLANS:  # e.g. a dataset of many image sizes: keep the memory bounded
                plans.clear()
            plan = percall.build(self, image, mask)
            if plan is percall.NOT_NOW:
                return None
            plans[key] = plan
        return None if plan is None else plan(image, mask, sid)

    def batch(self, images: Any, masks: Any, sample_ids: Any = None, *, return_params: bool = False) -> dict[str, Any]:
        """Augment a collated batch ``(N, H, W[, C])`` / ``(N, H, W)`` with per-sample parameters.

        ``sample_ids``: the samples' global ids, one per sample (any integer array, list or
        tensor; e.g. the ids an :class:`~sas_fast.EpochSampler` yielded for this batch), so each
        sample gets the same output as through :meth:`__call__`.  Required: without it every batch
        would get the same draws.  ``sample_ids="range"`` uses ``0..N-1`` deliberately.  NumPy,
        CuPy and CUDA torch batches are accepted and returned in kind.
        """
        n = int(images.shape[0])
        ids = np.arange(n) if _range_ids(sample_ids, n) else to_host(sample_ids).reshape(-1)
        if len(ids) != n:
            raise ValueError(f"sample_ids: expected {n} ids (one per sample), got {len(ids)}")
        return self._apply(images, masks, self.params(masks, ids), return_params)

    def _apply(self, image: Any, mask: Any, params: SASParams, return_params: bool) -> dict[str, Any]:
        out_image, out_mask = augment(
            image, mask, params, seed=self.seed, value_range=self.value_range, backend=self.backend,
            channel_axis=self.channel_axis, channels=self.channels,
        )
        result = {"image": out_image, "mask": out_mask}
        if return_params:
            result["params"] = params
        return result


def _one_id(sample_id: Any) -> int:
    try:
        if isinstance(sample_id, (bool, np.bool_)):
            raise TypeError
        return operator.index(sample_id)  # int, NumPy integers, one-element integer tensors
    except TypeError:
        raise TypeError(
            f"sample_id: expected the sample's integer index (e.g. the Dataset index), got {sample_id!r}"
        ) from None


def _range_ids(sample_ids: Any, n: int) -> bool:
    """Whether ``sample_ids`` asks for ``0..n-1``; rejects a missing or unknown value."""
    if sample_ids is None:
        # Defaulting to 0..N-1 gave every batch the same scales and noise, silently.
        raise TypeError(
            f"sample_ids: SAS.batch needs the global sample id of each of the {n} samples "
            "(the dataset indices of the batch, e.g. the ids an EpochSampler yielded), got None; "
            "pass sample_ids='range' to use 0..N-1 on purpose (every such batch then gets the same draws)"
        )
    if isinstance(sample_ids, str):
        if sample_ids == "range":
            return True
        raise ValueError(f"sample_ids: expected integer ids (one per sample) or 'range', got {sample_ids!r}")
    return False
