"""SAS as a torchvision v2 ``Transform``: ``v2.Compose([..., SAS(...)])`` on channel-first tensors.

Install: ``pip install "sas_fast[torchvision]"``.

    from torchvision import tv_tensors
    from torchvision.transforms import v2
    from sas_fast.integrations.torchvision import SAS

    pipeline = v2.Compose([v2.RandomHorizontalFlip(), SAS(sas_seed=0), v2.ToDtype(torch.float32, scale=True)])
    out = pipeline({"image": tv_tensors.Image(img), "mask": tv_tensors.Mask(mask), "sample_id": index})

The sample id: v2 transforms receive only the sample, so SAS reads the id from the sample dict's
``sample_id_key`` entry (default ``"sample_id"``: an int for one sample, one id per sample --
list, array or tensor -- for a batch), or from ``sample_id=`` when SAS is called directly.  With
the id, the output depends only on ``(sas_seed, sample id)`` and equals ``sas_fast.augment``
with ``SASConfig.sample``'s parameters for that id.  Without it, SAS draws fresh ids from torch's
generator (``generator=``, default torch's global one, which is what v2's own random transforms
use): outputs are then random but depend on call order and on worker seeding (a DataLoader seeds
each worker's torch generator from the main process's, afresh each epoch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..config import SASConfig
from ._common import Core, labels_back, labels_for_core, plain, require, sample_ids

torch = require("torch", "torchvision", "sas_fast.integrations.torchvision")
require("torchvision", "torchvision", "sas_fast.integrations.torchvision")
import PIL.Image  # noqa: E402  (a torchvision dependency)
from torch.utils._pytree import tree_flatten, tree_unflatten  # noqa: E402  (what v2.Transform.forward uses)
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

__all__ = ["SAS"]


class SAS(v2.Transform):
    """SAS augmentation (scale simulation + in-mask noise) as a torchvision v2 transform.

    A sample (a dict, tuple or single structure, as v2 transforms take it) holds one or more images
    (``tv_tensors.Image`` or, if there is none, the first plain tensor: ``(C, H, W)``, or a batch
    ``(N, C, H, W)``; uint8, uint16 or float32; CPU or CUDA) and at least one ``tv_tensors.Mask``.
    The first mask is the label mask (``(1, H, W)`` / ``(H, W)``, batched ``(N, 1, H, W)`` /
    ``(N, H, W)``; int64 labels are cast to int32 when they fit and given back as int64): its labels
    choose where the noise goes.  Images get the geometry and the noise, masks the same geometry
    (nearest; a mask ``(K, H, W)`` / ``(N, K, H, W)`` channel by channel).  Types, dtypes, devices
    and shapes are kept; other entries pass through; boxes, keypoints, videos and PIL images are
    refused (convert PIL images with ``v2.PILToImage()`` first).

    Args:
        config: the SAS policy (default ``SASConfig()``), or its ``to_dict()`` form.
        sas_seed: the sas_fast run seed: with the sample id it fixes every draw.
        sample_id_key: key of the id in a dict sample; ``None`` always draws (module docstring).
        params_key: if set, a dict sample comes back with ``SASParams.to_dict()`` of what was
            applied under this key (absent when the ``p`` coin skips the sample).
        p: probability of applying SAS to the whole sample or batch (default 1: ``config`` has its
            own per-sample ``p_scale`` / ``p_noise``).
        generator: the ``torch.Generator`` for the ``p`` coin and the fallback ids (default torch's).
        backend, value_range: as for :class:`sas_fast.SAS` (float32 images are clipped to
            ``value_range``, default ``(0, 1)``: convert with ``v2.ToDtype(..., scale=True)`` first
            and normalise after SAS).
    """

    _transformed_types = (torch.Tensor, PIL.Image.Image)

    def __init__(
        self,
        config: SASConfig | dict[str, Any] | None = None,
        *,
        sas_seed: int = 0,
        sample_id_key: str | None = "sample_id",
        params_key: str | None = None,
        p: float = 1.0,
        generator: torch.Generator | None = None,
        backend: str = "auto",
        value_range: tuple[float, float] | None = None,
    ) -> None:
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"p: expected a probability in [0, 1], got {p!r}")
        for name, key in (("sample_id_key", sample_id_key), ("params_key", params_key)):
            if key is not None and not isinstance(key, str):
                raise TypeError(f"{name}: expected a dict key (a str) or None, got {key!r}")
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")
        super().__init__()
        self._core = Core(config, sas_seed, backend, value_range)
        self.config = self._core.sas.config
        self.sas_seed = self._core.sas.seed
        self.sample_id_key = sample_id_key
        self.params_key = params_key
        self.p = float(p)
        self.generator = generator
        self.backend = backend
        self.value_range = value_range

    def forward(self, *inputs: Any, sample_id: Any = None) -> Any:
        """Augment one sample (or batch) as ``v2.Transform`` does, with its sample id.

        Overridden (the base forward has no way to pass the id to ``make_params``) to take the id
        from ``sample_id=`` or the dict sample's ``sample_id_key`` entry, which is passed through
        untouched: a tensor of ids is never taken for an image.
        """
        sample = inputs if len(inputs) > 1 else inputs[0]
        key = self.sample_id_key
        body = sample
        if isinstance(sample, Mapping) and key is not None and key in sample:
            if sample_id is None:
                sample_id = sample[key]
            body = {k: v for k, v in sample.items() if k != key}
        if self.p < 1.0 and (self.p <= 0.0 or torch.rand(1, generator=self.generator).item() >= self.p):
            return sample
        flat, spec = tree_flatten(body)
        needs = self._needs_transform_list(flat)
        params = self.make_params([x for x, n in zip(flat, needs) if n], sample_id=sample_id)
        out = tree_unflatten([self.transform(x, params) if n else x for x, n in zip(flat, needs)], spec)
        if body is not sample:
            out = {k: (v if k == key else out[k]) for k, v in sample.items()}
        if self.params_key is not None and isinstance(out, Mapping):
            out = {**out, self.params_key: params["sas_params"].to_dict()}
        return out

    def make_params(self, flat_inputs: list[Any], sample_id: Any = None) -> dict[str, Any]:
        """The SAS parameters of this sample: its label mask, ids and ``SASParams`` record."""
        for x in flat_inputs:
            if _role(x) is None:
                raise TypeError(
                    f"SAS: {type(x).__name__} inputs are not supported (the pasted geometry is not mapped for them); "
                    "accepted: tv_tensors.Image, tv_tensors.Mask and one plain image tensor"
                )
        images = [x for x in flat_inputs if _role(x) == "image"]
        masks = [x for x in flat_inputs if _role(x) == "mask"]
        if not images:
            raise TypeError("SAS: no image in the sample: expected a tv_tensors.Image or a plain (C, H, W) tensor")
        if not masks:
            raise TypeError("SAS: no tv_tensors.Mask in the sample: its labels choose where the noise goes")
        if images[0].ndim not in (3, 4):
            raise ValueError(f"image: expected (C, H, W) or a batch (N, C, H, W), got shape {tuple(images[0].shape)}")
        batched = images[0].ndim == 4
        labels = _label_mask(masks[0], batched)
        n = labels.shape[0] if batched else 1
        if sample_id is not None:
            ids = sample_ids(sample_id, n, f"sample[{self.sample_id_key!r}]" if self.sample_id_key else "sample_id")
        else:
            # the documented fallback: fresh ids from torch's generator, as v2's random transforms draw
            ids = torch.randint(0, 1 << 32, (n,), generator=self.generator).numpy()
        return {"sas_params": self._core.params(labels, ids), "labels": labels, "batched": batched}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        role = _role(inpt)
        if role == "image":
            out = self._image(plain(inpt), params)
        else:
            out = self._mask(plain(inpt), params)
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.TVTensor) else out

    def _image(self, image: Any, params: dict[str, Any]) -> Any:
        batched = params["batched"]
        if image.ndim != (4 if batched else 3):
            want = "(N, C, H, W)" if batched else "(C, H, W)"
            raise ValueError(f"image: expected {want} like the sample's first image, got shape {tuple(image.shape)}")
        if not batched:  # one (C, H, W) CPU image: SAS's one-sample path (the same arrays), where it serves
            served = self._core.sampled(image, params["labels"], params["sas_params"])
            if served is not None:
                return served[0]
        return self._core.image(image, params["labels"], params["sas_params"], channel_axis=1 if batched else 0)

    def _mask(self, mask: Any, params: dict[str, Any]) -> Any:
        batched = params["batched"]
        shape = tuple(mask.shape)
        if batched and mask.ndim == 3 or not batched and mask.ndim == 2:  # one mask per sample
            stack, owners = mask, None
        elif batched and mask.ndim == 4:  # (N, K, H, W): K masks per sample, each with its sample's record
            stack, owners = mask.reshape(-1, *shape[-2:]), np.repeat(np.arange(shape[0]), shape[1])
        elif not batched and mask.ndim == 3:  # (K, H, W)
            stack, owners = mask, np.zeros(shape[0], np.int64)
        else:
            want = "(N, H, W) or (N, K, H, W)" if batched else "(H, W) or (K, H, W)"
            raise ValueError(f"mask: expected {want} like the sample's image, got shape {shape}")
        out = self._core.geometry(labels_for_core(stack, "mask"), params["sas_params"], owners)
        return labels_back(out.reshape(shape), mask)


def _role(x: Any) -> str | None:
    """``"image"``, ``"mask"`` or None (unsupported) for an input v2 chose to transform."""
    if isinstance(x, tv_tensors.Mask):
        return "mask"
    if isinstance(x, tv_tensors.Image) or type(x) is torch.Tensor:  # v2 hands over one plain tensor as the image
        return "image"
    return None


def _label_mask(mask: Any, batched: bool) -> Any:
    """The label mask in core layout, ``(H, W)`` / ``(N, H, W)`` (a view; int32 if cast)."""
    x = plain(mask)
    if batched and x.ndim == 4 and x.shape[1] == 1 or not batched and x.ndim == 3 and x.shape[0] == 1:
        x = x[:, 0] if batched else x[0]
    elif x.ndim != (3 if batched else 2):
        want = "(N, 1, H, W) or (N, H, W)" if batched else "(1, H, W) or (H, W)"
        raise ValueError(f"mask: the label mask (the sample's first Mask) must be {want}, got shape {tuple(x.shape)}")
    return labels_for_core(x, "mask")
