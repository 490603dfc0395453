"""What the framework adapters share: layout moves, label dtypes, sample ids and the core calls.

The adapters differ only in how their framework hands over a sample; everything that touches
sas_fast goes through :class:`Core`, so the three of them apply exactly ``sas_fast.augment``
(images) and its geometry (masks) with the parameters ``sas_fast.SAS`` samples.

NumPy arrays and torch tensors (CPU or CUDA, plain or a subclass such as ``tv_tensors.Image`` or
MONAI's ``MetaTensor``) are handled alike; this module never imports a framework, and imports torch
only once the caller has (it looks for it in ``sys.modules``).
"""

from __future__ import annotations

import importlib
import operator
import sys
from types import ModuleType
from typing import Any

import numpy as np

from ..api import augment, rescale_paste
from ..config import SASConfig, SASParams
from ..transform import SAS as _CoreSAS

#: Sample ids are one 32-bit Philox counter word (SPEC §4): valid ids are ``0 <= id < ID_LIMIT``.
ID_LIMIT = 1 << 32

#: Mask dtypes the core kernels take as they are (``sas_fast.plan.MASK_DTYPES``).
_CORE_MASK_DTYPES = frozenset({"bool", "uint8", "uint16", "int32"})
_INT32 = np.iinfo(np.int32)


def require(module: str, extra: str, adapter: str) -> ModuleType:
    """Import the framework ``module``; fail saying which sas_fast extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"{adapter} needs {module}, which is not importable here ({exc}); "
            f'install it with: pip install "sas_fast[{extra}]"'
        ) from exc


# -- arrays --------------------------------------------------------------------------------------


def _torch() -> ModuleType | None:
    return sys.modules.get("torch")


def is_tensor(x: Any) -> bool:
    torch = _torch()
    return torch is not None and isinstance(x, torch.Tensor)


def plain(x: Any) -> Any:
    """``x`` as a plain ``torch.Tensor`` (sharing memory) if it is a tensor subclass, else ``x``.

    The core recognises torch tensors by their class's module, so a ``tv_tensors.Image`` or a
    ``MetaTensor`` would otherwise be taken for a NumPy array (and a CUDA one would fail).
    """
    if is_tensor(x) and type(x) is not _torch().Tensor:
        return x.as_subclass(_torch().Tensor)
    return x


def move_channels(x: Any, source: int, destination: int) -> Any:
    """``x`` with axis ``source`` moved to ``destination``: a view (``np.moveaxis`` / ``torch.movedim``).

    Images go to the core in their own layout (``channel_axis``); this is for what the core has
    no layout for: albumentations' ``(H, W, K)`` stacks of masks.
    """
    if source == destination:
        return x
    return x.movedim(source, destination) if is_tensor(x) else np.moveaxis(x, source, destination)


def contiguous(x: Any) -> Any:
    """A C-contiguous ``x`` (a copy only if needed): a channel-first result must not surprise
    downstream code that calls ``.view`` or hands the buffer to C."""
    return x.contiguous() if is_tensor(x) else np.ascontiguousarray(x)


def _dtype_name(x: Any) -> str:
    return str(x.dtype).removeprefix("torch.") if is_tensor(x) else np.dtype(x.dtype).name


def labels_for_core(mask: Any, name: str) -> Any:
    """``mask`` in a label dtype the kernels take: bool / uint8 / uint16 / int32 as they are; other
    integer dtypes (torch's int64 labels) and whole-valued float labels (MONAI loads labels as
    float32) cast to int32, which must hold every label (else a ``ValueError`` naming the range).
    """
    dtype = _dtype_name(mask)
    if dtype in _CORE_MASK_DTYPES:
        return mask
    tensor = is_tensor(mask)
    floating = dtype.startswith(("float", "bfloat"))
    if not (floating or dtype.startswith(("int", "uint"))):
        raise TypeError(f"{name}: expected integer labels (bool, uint8, uint16, int32, int64, ...), got dtype {dtype}")
    if mask.numel() if tensor else mask.size:
        lo, hi = (mask.min(), mask.max())
        lo, hi = (float(lo), float(hi)) if floating else (int(lo), int(hi))
        if lo < _INT32.min or hi > _INT32.max:
            raise ValueError(
                f"{name}: labels of dtype {dtype} are cast to int32 for the kernels and must lie in "
                f"[{_INT32.min}, {_INT32.max}]; got labels in [{lo}, {hi}]"
            )
        if floating:
            whole = bool((mask == mask.round()).all()) if tensor else bool(np.all(mask == np.round(mask)))
            if not whole:
                raise ValueError(
                    f"{name}: a {dtype} mask is read as labels and must hold whole numbers, got a fractional value "
                    "(threshold or round soft masks first)"
                )
    return mask.to(_torch().int32) if tensor else mask.astype(np.int32)


def labels_back(out: Any, like: Any) -> Any:
    """``out`` in ``like``'s dtype (undoes :func:`labels_for_core`; the labels fit by then)."""
    if out.dtype == like.dtype:
        return out
    return out.to(like.dtype) if is_tensor(out) else out.astype(like.dtype)


# -- sample ids ----------------------------------------------------------------------------------


def sample_ids(value: Any, n: int, name: str) -> np.ndarray:
    """``value`` as ``n`` int64 sample ids in ``[0, 2**32)``: an integer for one sample, or one id
    per sample (list, array, tensor) for a batch; ``name`` is the key or argument it came from."""
    if is_tensor(value):
        value = value.detach().cpu().numpy()
    if isinstance(value, (bool, np.bool_)) or isinstance(value, (str, bytes)):
        raise TypeError(f"{name}: expected integer sample ids (the dataset indices), got {value!r}")
    if np.ndim(value) == 0:
        try:
            ids = np.array([operator.index(value)], dtype=object)
        except TypeError:
            raise TypeError(f"{name}: expected an integer sample id (the dataset index), got {value!r}") from None
    else:
        ids = np.asarray(value).reshape(-1)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected integer sample ids (one per sample), got dtype {ids.dtype}: {value!r}")
    if len(ids) != n:
        raise ValueError(f"{name}: expected {n} sample id(s), one per sample, got {len(ids)}")
    if any(not 0 <= int(i) < ID_LIMIT for i in ids):
        raise ValueError(f"{name}: sample ids must lie in [0, 2**32), got {ids.tolist()}")
    return ids.astype(np.int64)


def draw_ids(rng: Any, n: int) -> np.ndarray:
    """``n`` fresh sample ids from a framework's generator (``np.random.Generator`` or
    ``RandomState``): the documented fallback when a sample carries no id."""
    if isinstance(rng, np.random.Generator):
        return rng.integers(0, ID_LIMIT, size=n, dtype=np.int64)
    return rng.randint(0, ID_LIMIT, size=n, dtype=np.int64)


# -- the core ------------------------------------------------------------------------------------


def as_config(config: SASConfig | dict[str, Any] | None) -> SASConfig | None:
    """A :class:`SASConfig` from itself, its ``to_dict()`` form (serialised pipelines) or None."""
    if isinstance(config, dict):
        return SASConfig.from_dict(config)
    if config is not None and not isinstance(config, SASConfig):
        raise TypeError(f"config: expected a SASConfig, its to_dict() form or None, got {type(config).__name__}")
    return config


class Core:
    """The one SAS transform as the adapters call it, on core-layout arrays.

    ``params`` samples ``sas_fast.SAS.params``; ``image`` is ``sas_fast.augment``'s image (the
    noise region comes from the label mask); ``geometry`` is its mask geometry for any stack of
    masks, each slice ``j`` with the parameters of record ``owners[j]``.
    """

    def __init__(
        self,
        config: SASConfig | dict[str, Any] | None,
        sas_seed: int,
        backend: str,
        value_range: tuple[float, float] | None,
    ) -> None:
        self.sas = _CoreSAS(as_config(config), seed=sas_seed, backend=backend, value_range=value_range)
        self._recorded: tuple[dict[str, Any], SASParams] | None = None

    def params(self, labels: Any, ids: np.ndarray) -> SASParams:
        """Parameters for core labels ``(H, W)`` (one sample) or ``(N, H, W)`` and their ids."""
        record = self.sas.params(plain(labels), ids)
        self._recorded = (None, record)  # one tuple: a thread sees a whole pair or another whole pair
        return record

    def params_dict(self, labels: Any, ids: np.ndarray) -> dict[str, Any]:
        """:meth:`params` as ``SASParams.to_dict()`` (JSON-ready), for frameworks that carry plain data."""
        record = self.params(labels, ids)
        data = record.to_dict()
        self._recorded = (data, record)  # the dict stands for the record too
        return data

    def sampled(self, image: Any, labels: Any, params: SASParams | dict[str, Any]) -> tuple[Any, Any] | None:
        """``augment``'s ``(image, mask)`` for one ``image`` and its ``labels`` when ``params`` is the
        one-sample record (or its dict) that :meth:`params` / :meth:`params_dict` just drew: through
        ``SAS``'s one-sample path, which draws the same record again in compiled code (the same
        arrays as :meth:`image`, at a fraction of the cost); None where that path does not serve
        (then use :meth:`image`)."""
        recorded = self._recorded
        if recorded is None or params is not recorded[1] and params is not recorded[0] or len(recorded[1]) != 1:
            return None
        return self.sas._one_sample(image, labels, int(recorded[1].sample_ids[0]))

    def record(self, data: dict[str, Any]) -> SASParams:
        """``SASParams.from_dict(data)``; the record itself when ``data`` is the dict :meth:`params_dict`
        just made (the same call's targets: no second validation of what was sampled, ~0.1 ms each)."""
        recorded = self._recorded
        if recorded is not None and recorded[0] is data:
            return recorded[1]
        return SASParams.from_dict(data)

    def image(self, image: Any, labels: Any, params: SASParams, channel_axis: int | str = "auto") -> Any:
        """``augment``'s image for ``image`` (``channel_axis`` as in :func:`sas_fast.augment`: e.g. 0
        for ``(C, H, W)``, 1 for ``(N, C, H, W)``; the result comes back in that layout) and its labels."""
        out, _ = augment(
            plain(image), plain(labels), params, seed=self.sas.seed, value_range=self.sas.value_range,
            backend=self.sas.backend, channel_axis=channel_axis,
        )
        return out

    def geometry(self, masks: Any, params: SASParams, owners: np.ndarray | None = None) -> Any:
        """``augment``'s mask geometry for ``masks`` ``(H, W)`` or a stack ``(M, H, W)`` (core label dtypes).

        The core pastes masks only beside an image, so a zero uint8 image of the mask's size (a few
        bytes a pixel) goes along and its result is dropped.
        """
        masks = plain(masks)
        if owners is not None:
            params = params[owners]
        if is_tensor(masks):
            dummy = _torch().zeros(masks.shape, dtype=_torch().uint8, device=masks.device)
        else:
            dummy = np.zeros(masks.shape, np.uint8)
        _, out = rescale_paste(
            dummy, masks, scale=params.scale, offset=params.offset, crop=params.crop, canvas=params.canvas,
            backend=self.sas.backend,
        )
        return out
