"""SAS as an albumentations ``DualTransform`` (albumentations 2.x): ``A.Compose([..., SAS(...)])``.

Install: ``pip install "sas_fast[albumentations]"``.

    import albumentations as A
    from sas_fast.integrations.albumentations import SAS

    pipeline = A.Compose([A.HorizontalFlip(), SAS(sas_seed=0), A.Normalize()], save_applied_params=True)
    out = pipeline(image=image, mask=mask, sample_id=index)     # the dataset index of the sample

The sample id: albumentations passes every keyword of the call through its pipeline, so SAS reads
the id from ``data[sample_id_key]`` (default ``"sample_id"``).  With the id, the output depends
only on ``(sas_seed, sample id)`` and equals ``sas_fast.augment`` with ``SASConfig.sample``'s
parameters for that id (on the data SAS receives).  Without it (the key missing, or
``sample_id_key=None``), SAS draws a fresh id from the transform's albumentations generator
(``Compose(seed=...)`` seeds it), warning once per instance when a configured key was missing:
outputs are then still random, but they depend on call order, and with ``Compose(seed=s)`` every
DataLoader worker starts from the same generator state and repeats the other workers' draws.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..config import SASConfig
from ._common import Core, contiguous, draw_ids, labels_back, labels_for_core, move_channels, require, sample_ids

require("albumentations", "albumentations", "sas_fast.integrations.albumentations")
from albumentations.core.transforms_interface import DualTransform  # noqa: E402
from albumentations.core.type_definitions import Targets  # noqa: E402

__all__ = ["SAS"]


class SAS(DualTransform):
    """SAS augmentation (scale simulation + in-mask noise) as an albumentations ``DualTransform``.

    Targets: ``image`` / ``images`` (uint8, uint16 or float32 ``(H, W)`` / ``(H, W, C)``) get the
    geometry and the noise; ``mask`` / ``masks`` get the same geometry (nearest, no noise).
    ``data["mask"]`` is required: its labels (``(H, W)`` integers; int64 and whole-valued float
    masks are cast to int32, and given back in their dtype) choose where the noise goes and, for
    ``SASConfig(source="roi")``, what is shrunk.  Extra targets (``Compose(additional_targets=
    {"image2": "image", "mask2": "mask"})``) get the same geometry, extra images the same noise
    draws inside the region of ``data["mask"]``.  Bounding boxes and keypoints are refused.

    Args:
        config: the SAS policy (default ``SASConfig()``, the paper's), or its ``to_dict()`` form.
        sas_seed: the sas_fast run seed: with the sample id it fixes every draw (named so because
            albumentations' ``seed`` is the pipeline generator's).
        sample_id_key: the data key holding the sample's global id (an integer in ``[0, 2**32)``,
            e.g. the dataset index or an :class:`sas_fast.EpochSampler` id); ``None`` always draws
            the id from the transform's generator (see the module docstring for what that loses).
        backend, value_range: as for :class:`sas_fast.SAS` (float32 images are clipped to
            ``value_range``, default ``(0, 1)``: put SAS before ``Normalize``).
        p: probability of applying the transform at all (default 1: ``config`` has its own
            ``p_scale`` / ``p_noise``).

    Applied parameters: ``self.params`` / ``Compose(save_applied_params=True)``'s
    ``data["applied_transforms"]`` hold ``"sas_params"`` (``SASParams.to_dict()``, JSON-ready:
    ``SASParams.from_dict`` replays it with ``sas_fast.augment``), ``"sample_id"`` and
    ``"sample_id_drawn"`` (True when the id came from the fallback).  ``ReplayCompose`` replays them.
    """

    _targets = (Targets.IMAGE, Targets.MASK)

    def __init__(
        self,
        config: SASConfig | dict[str, Any] | None = None,
        *,
        sas_seed: int = 0,
        sample_id_key: str | None = "sample_id",
        backend: str = "auto",
        value_range: tuple[float, float] | None = None,
        p: float = 1.0,
    ) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)) or not (
            math.isfinite(p) and 0.0 <= p <= 1.0
        ):
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        if sample_id_key is not None and not isinstance(sample_id_key, str):
            raise TypeError(f"sample_id_key: expected a data key (a str) or None, got {sample_id_key!r}")
        super().__init__(p=float(p))
        self._core = Core(config, sas_seed, backend, None if value_range is None else tuple(value_range))
        self.config = self._core.sas.config
        self.sas_seed = self._core.sas.seed
        self.sample_id_key = sample_id_key
        self.backend = backend
        self.value_range = self._core.sas.value_range
        self._warned = False
        self._pasted: tuple[dict[str, Any], Any, np.ndarray] | None = None  # (params, label mask, its geometry)
        if sample_id_key is not None:
            # declared, so Compose(strict=True) accepts the id key; not a target: it passes through unchanged
            self._available_keys.add(sample_id_key)

    # -- parameters ------------------------------------------------------------------------------

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        labels = _labels(data.get("mask"))
        key = self.sample_id_key
        if key is not None and data.get(key) is not None:
            ids, drawn = sample_ids(data[key], 1, f"data[{key!r}]"), False
        else:
            ids, drawn = draw_ids(self.random_generator, 1), True
            if key is not None and not self._warned:
                self._warned = True
                warnings.warn(
                    f"sas_fast SAS: no {key!r} in the data, so the sample id is drawn from the albumentations "
                    f"generator: outputs depend on call order and worker seeding; pass {key}=<dataset index> "
                    "(or sample_id_key=None to draw on purpose, without this warning)",
                    stacklevel=2,
                )
        return {"sas_params": self._core.params_dict(labels, ids), "sample_id": int(ids[0]), "sample_id_drawn": drawn}

    def apply_with_params(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Run the targets with ``params`` plus the call's own label mask.

        The labels are read from this call's data rather than stored in ``params``: a replay
        (``ReplayCompose``) on new data must put the noise inside the new data's structure, and the
        recorded parameters stay plain JSON.
        """
        mask = kwargs.get("mask")
        return super().apply_with_params({**params, "labels": _labels(mask), "labels_source": mask}, *args, **kwargs)

    # -- targets ---------------------------------------------------------------------------------

    def apply(self, img: np.ndarray, sas_params: dict[str, Any], labels: np.ndarray, labels_source: Any = None,
              **params: Any) -> np.ndarray:  # fmt: skip
        if img.ndim not in (2, 3):
            raise ValueError(f"image: expected (H, W) or (H, W, C), got shape {img.shape}")
        served = self._core.sampled(img, labels, sas_params)
        if served is None:
            return self._core.image(img, labels, self._core.record(sas_params))
        # the label mask's own geometry came with it: apply_to_mask of the same call takes it
        self._pasted = (sas_params, labels_source, served[1])
        return served[0]

    def apply_to_mask(self, mask: np.ndarray, sas_params: dict[str, Any], **params: Any) -> np.ndarray:
        pasted = self._pasted
        if pasted is not None and pasted[0] is sas_params and pasted[1] is mask:
            self._pasted = None
            return labels_back(pasted[2], mask)
        record = self._core.record(sas_params)
        core = labels_for_core(mask, "mask")
        if core.ndim == 2:
            out = self._core.geometry(core, record)
        elif core.ndim == 3:  # albumentations' multi-channel mask (H, W, K): K masks, one geometry
            stack = move_channels(core, -1, 0)
            out = contiguous(move_channels(self._core.geometry(stack, record, np.zeros(len(stack), np.int64)), 0, -1))
        else:
            raise ValueError(f"mask: expected (H, W) or (H, W, K), got shape {mask.shape}")
        return labels_back(out, mask)

    def apply_to_bboxes(self, bboxes: np.ndarray, *args: Any, **params: Any) -> np.ndarray:
        raise NotImplementedError("SAS: bounding boxes are not supported (the pasted geometry is not mapped for them)")

    def apply_to_keypoints(self, keypoints: np.ndarray, *args: Any, **params: Any) -> np.ndarray:
        raise NotImplementedError("SAS: keypoints are not supported (the pasted geometry is not mapped for them)")

    # -- serialisation ---------------------------------------------------------------------------

    def get_transform_init_args(self) -> dict[str, Any]:
        # plain data, so A.to_dict / A.save (JSON) and ReplayCompose rebuild the same transform
        return {
            "config": self.config.to_dict(),
            "sas_seed": self.sas_seed,
            "sample_id_key": self.sample_id_key,
            "backend": self.backend,
            "value_range": None if self.value_range is None else list(self.value_range),
        }


def _labels(mask: Any) -> Any:
    if mask is None:
        raise ValueError(
            "mask: SAS needs data['mask'], the (H, W) integer label mask whose labels choose where the noise "
            "goes; got none"
        )
    if getattr(mask, "ndim", None) != 2:
        shape = getattr(mask, "shape", None)
        raise ValueError(f"mask: expected one (H, W) label mask as data['mask'], got shape {shape}")
    return labels_for_core(mask, "mask")
