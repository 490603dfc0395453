"""SAS as a MONAI dictionary transform: ``RandSASd`` in ``monai.transforms.Compose`` and MONAI datasets.

Install: ``pip install "sas_fast[monai]"``.

    from monai.transforms import Compose, EnsureChannelFirstd, ScaleIntensityd
    from sas_fast.integrations.monai import RandSASd

    pipeline = Compose([EnsureChannelFirstd(["image", "label"], channel_dim="no_channel"),
                        ScaleIntensityd("image"), RandSASd(["image", "label"], label_key="label", sas_seed=0)])
    out = pipeline({"image": img, "label": lbl, "sample_id": index})

The sample id: MONAI transforms receive only the data dict, so RandSASd reads the id from
``data[sample_id_key]`` (default ``"sample_id"``).  With the id, the output depends only on
``(sas_seed, sample id)`` and equals ``sas_fast.augment`` with ``SASConfig.sample``'s parameters
for that id.  An id stored in the dataset's records is fixed, so every epoch then gets the same
augmentation of a record; for fresh, reproducible augmentations each epoch, put the global ids an
:class:`sas_fast.EpochSampler` yields into the dict (README, "In MONAI").  Without an id,
RandSASd draws one from its MONAI random state ``self.R`` (``set_random_state``, which
``Compose.set_random_state`` and MONAI's DataLoader worker seeding call): outputs are then random
but depend on call order and on worker seeding.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np

from ..config import SASConfig
from ._common import (
    Core,
    draw_ids,
    labels_back,
    labels_for_core,
    plain,
    require,
    sample_ids,
)

require("monai", "monai", "sas_fast.integrations.monai")
from monai.config import KeysCollection  # noqa: E402
from monai.data import MetaTensor  # noqa: E402
from monai.transforms import MapTransform, RandomizableTransform  # noqa: E402
from monai.utils import TransformBackends, convert_to_dst_type, ensure_tuple  # noqa: E402

__all__ = ["RandSASd"]


class RandSASd(RandomizableTransform, MapTransform):
    """SAS augmentation (scale simulation + in-mask noise) as a MONAI dictionary transform.

    Each key of ``keys`` holds a channel-first 2-D array (NumPy array, torch tensor or
    ``MetaTensor``, CPU or CUDA).  Keys in ``mask_keys`` (default: ``label_key`` alone) are masks:
    ``(1, H, W)`` / ``(H, W)``, or ``(K, H, W)`` channel by channel, resampled nearest with no noise;
    the others are images ``(C, H, W)`` (uint8, uint16 or float32) that get the same geometry and
    the noise inside the structure of ``data[label_key]``, a ``(1, H, W)`` label mask (integer or
    whole-valued float labels, e.g. MONAI's float32; cast to int32 when they fit, given back in
    their dtype).  Array types, dtypes, devices and ``MetaTensor`` metadata (``meta``, ``affine``,
    ``applied_operations``) are kept.  The affine is deliberately unchanged: SAS simulates a
    smaller structure at the same pixel spacing, not a resampling of the same anatomy.

    Args:
        keys: the image and mask keys to augment (MONAI ``KeysCollection``).
        label_key: the label mask whose labels choose where the noise goes (one of ``keys``).
        mask_keys: the keys that are masks (default ``(label_key,)``); each must be in ``keys``.
        prob: probability of augmenting a sample (default 1: ``config`` has its own per-sample
            ``p_scale`` / ``p_noise``); a skipped sample comes back as it was.
        config: the SAS policy (default ``SASConfig()``), or its ``to_dict()`` form.
        sas_seed: the sas_fast run seed: with the sample id it fixes every draw (``set_random_state``
            seeds only the ``prob`` coin and the fallback ids).
        sample_id_key: key of the sample's global id in ``[0, 2**32)``; ``None`` always draws from
            ``self.R`` (module docstring).
        params_key: if set, ``data[params_key]`` receives ``SASParams.to_dict()`` of what was
            applied (absent when ``prob`` skips the sample).
        backend, value_range: as for :class:`sas_fast.SAS` (float32 images are clipped to
            ``value_range``, default ``(0, 1)``: scale intensities, e.g. ``ScaleIntensityd``, first).
        allow_missing_keys: skip keys missing from the data instead of raising (MONAI's meaning;
            ``label_key`` is always required).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        keys: KeysCollection,
        label_key: Hashable = "label",
        *,
        mask_keys: KeysCollection | None = None,
        prob: float = 1.0,
        config: SASConfig | dict[str, Any] | None = None,
        sas_seed: int = 0,
        sample_id_key: Hashable | None = "sample_id",
        params_key: Hashable | None = None,
        backend: str = "auto",
        value_range: tuple[float, float] | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        if isinstance(prob, bool) or not isinstance(prob, (int, float)) or not 0.0 <= prob <= 1.0:
            # MONAI clamps silently; a typo such as prob=5 should not mean "always"
            raise ValueError(f"prob: expected a probability in [0, 1], got {prob!r}")
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if label_key not in self.keys:
            raise ValueError(f"label_key: {label_key!r} must be one of keys {self.keys}, so it moves with the image")
        self.label_key = label_key
        self.mask_keys: tuple[Hashable, ...] = (label_key,) if mask_keys is None else ensure_tuple(mask_keys)
        stray = [k for k in self.mask_keys if k not in self.keys]
        if stray:
            raise ValueError(f"mask_keys: {stray} are not among keys {self.keys}; accepted: a subset of keys")
        self.sample_id_key = sample_id_key
        self.params_key = params_key
        self._core = Core(config, sas_seed, backend, value_range)
        self.config = self._core.sas.config
        self.sas_seed = self._core.sas.seed
        self._drawn_id: np.ndarray | None = None

    def randomize(self, data: Mapping[Hashable, Any] | None = None) -> None:
        """Draw the ``prob`` coin and, for an applied sample without an id, the fallback id (from ``self.R``)."""
        super().randomize(None)
        has_id = data is not None and self.sample_id_key is not None and data.get(self.sample_id_key) is not None
        self._drawn_id = draw_ids(self.R, 1) if self._do_transform and not has_id else None

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(d)
        if not self._do_transform:
            return d
        if self.label_key not in d:
            raise KeyError(
                f"label_key: {self.label_key!r} is not in the data (keys {list(d)}); RandSASd needs the label mask"
            )
        labels = _label_mask(d[self.label_key])
        if self._drawn_id is None:
            ids = sample_ids(d[self.sample_id_key], 1, f"data[{self.sample_id_key!r}]")
        else:
            ids = self._drawn_id
        record = self._core.params(labels, ids)
        for key in self.key_iterator(d):
            value = d[key]
            x = plain(value)
            if key in self.mask_keys:
                out = self._mask(x, record, key)
            else:
                if x.ndim != 3:
                    raise ValueError(f"{key}: expected a channel-first 2-D image (C, H, W), got shape {tuple(x.shape)}")
                served = self._core.sampled(x, labels, record)  # SAS's one-sample path where it serves
                out = served[0] if served is not None else self._core.image(x, labels, record, channel_axis=0)
            d[key] = convert_to_dst_type(out, dst=value)[0] if isinstance(value, MetaTensor) else out
        if self.params_key is not None:
            d[self.params_key] = record.to_dict()
        return d

    def _mask(self, mask: Any, record: Any, key: Hashable) -> Any:
        if mask.ndim == 2:
            stack, owners = mask, None
        elif mask.ndim == 3:  # (K, H, W): each channel one mask, all with the sample's record
            stack, owners = mask, np.zeros(mask.shape[0], np.int64)
        else:
            raise ValueError(
                f"{key}: expected a channel-first 2-D mask (1, H, W), (K, H, W) or (H, W), got shape {tuple(mask.shape)}"
            )
        return labels_back(self._core.geometry(labels_for_core(stack, str(key)), record, owners), mask)


def _label_mask(label: Any) -> Any:
    x = plain(label)
    if x.ndim == 3 and x.shape[0] == 1:
        x = x[0]
    elif x.ndim != 2:
        raise ValueError(f"label_key: the label mask must be (1, H, W) or (H, W), got shape {tuple(x.shape)}")
    return labels_for_core(x, "label_key")
