"""Array layouts: how a caller's image and mask map to the kernels' ``(N, H, W, C)`` / ``(N, H, W)``.

Image layouts: ``HW`` (one grey image), ``HWC`` / ``CHW`` (one image with channels last / first),
``NHW`` (a grey batch), ``NHWC`` / ``NCHW``.  Mask layouts: ``HW`` and ``1HW`` (one image),
``NHW`` and ``N1HW`` (a batch; the ``1`` is torch's and MONAI's channel axis).  A layout is said
(``channel_axis``, scikit-image's spelling) or read off the shapes where they leave no doubt;
a 3-D image whose layout the shapes cannot decide is an error that says how to pass it, never a
guess.  Results come back in the caller's layouts.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AUTO", "image_layout", "mask_layout", "to_image4", "to_mask3", "image_shape", "mask_shape"]

#: ``channel_axis`` default: read the layout off the image's rank and the mask's shape.
AUTO = "auto"

_HOW = (
    "pass channel_axis=-1 for one (H, W, C) image, channel_axis=0 for one (C, H, W) image, "
    "or channel_axis=None for an (N, H, W) batch of grey images"
)


def image_layout(shape: tuple[int, ...], mask_shape: tuple[int, ...] | None, channel_axis: Any) -> str:
    """The layout of an image of ``shape`` (with a mask of ``mask_shape``, if any)."""
    ndim = len(shape)
    if ndim not in (2, 3, 4):
        raise ValueError(f"image: expected 2-D, 3-D or 4-D, got shape {shape}")
    if channel_axis is None:
        if ndim == 4:
            raise ValueError(f"image: a 4-D image {shape} has a channel axis: pass channel_axis=-1 (N, H, W, C) or 1 (N, C, H, W)")
        return "HW" if ndim == 2 else "NHW"
    if isinstance(channel_axis, str):
        if channel_axis != AUTO:
            raise ValueError(f"channel_axis: expected an integer, None or 'auto', got {channel_axis!r}")
        return _inferred(shape, mask_shape)
    if isinstance(channel_axis, bool) or not hasattr(channel_axis, "__index__"):
        raise TypeError(f"channel_axis: expected an integer, None or 'auto', got {channel_axis!r}")
    axis = int(channel_axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"channel_axis: {axis} is out of range for a {ndim}-D image of shape {shape}")
    layout = {(3, 0): "CHW", (3, 2): "HWC", (4, 1): "NCHW", (4, 3): "NHWC"}.get((ndim, axis % ndim))
    if layout is None:
        accepted = {2: "none (a 2-D image has no channel axis)", 3: "0 or -1", 4: "1 or -1"}[ndim]
        raise ValueError(f"channel_axis: {axis} is not supported for a {ndim}-D image; accepted: {accepted}")
    return layout


def _inferred(shape: tuple[int, ...], mask_shape: tuple[int, ...] | None) -> str:
    ndim = len(shape)
    if ndim == 2:
        return "HW"
    if ndim == 4:
        if mask_shape is not None and len(mask_shape) == 4:
            return "NCHW"  # (N, 1, H, W) masks come with channel-first images
        if mask_shape is not None and len(mask_shape) == 3:
            last, first = tuple(shape[1:3]) == tuple(mask_shape[1:]), tuple(shape[2:]) == tuple(mask_shape[1:])
            if first and not last:
                return "NCHW"
        return "NHWC"  # SPEC §1's batch layout
    if mask_shape is None:
        raise ValueError(f"image: the layout of a 3-D image {shape} without a mask is ambiguous; {_HOW}")
    mask_shape = tuple(mask_shape)
    if mask_shape == tuple(shape):
        return "NHW"
    candidates = []
    if mask_shape in (tuple(shape[:2]), (1, *shape[:2])):
        candidates.append("HWC")
    if mask_shape in (tuple(shape[1:]), (1, *shape[1:])):
        candidates.append("CHW")
    if len(candidates) == 1:
        return candidates[0]
    if candidates:
        raise ValueError(f"image: a {shape} image with a {mask_shape} mask could be (H, W, C) or (C, H, W); {_HOW}")
    raise ValueError(f"mask: shape {mask_shape} does not match image shape {shape} in any layout; {_HOW}")


def mask_layout(mask_shape: tuple[int, ...], layout: str, hw: tuple[int, int], n: int) -> str:
    """The layout of the mask that comes with an image of ``layout`` (batch ``n``, size ``hw``)."""
    mask_shape = tuple(mask_shape)
    single = layout in ("HW", "HWC", "CHW")
    accepted = {"HW": hw, "1HW": (1, *hw)} if single else {"NHW": (n, *hw), "N1HW": (n, 1, *hw)}
    for name, want in accepted.items():
        if mask_shape == want:
            return name
    raise ValueError(
        f"mask: shape {mask_shape} does not match the {layout} image; expected "
        + " or ".join(str(w) for w in accepted.values())
    )


def to_image4(image: Any, layout: str) -> Any:
    """A view of ``image`` as ``(N, H, W, C)``."""
    if layout == "HW":
        return image[None, :, :, None]
    if layout == "HWC":
        return image[None]
    if layout == "CHW":
        return image.transpose(1, 2, 0)[None]
    if layout == "NHW":
        return image[..., None]
    if layout == "NCHW":
        return image.transpose(0, 2, 3, 1)
    return image


def to_mask3(mask: Any, layout: str) -> Any:
    """A view of ``mask`` as ``(N, H, W)``."""
    if layout == "HW":
        return mask[None]
    if layout == "N1HW":
        return mask[:, 0]
    return mask  # NHW, and 1HW (already one sample)


def image_shape(layout: str, n: int, h: int, w: int, c: int) -> tuple[int, ...]:
    """The shape, in ``layout``, of ``n`` images of ``h x w`` with ``c`` channels."""
    return {"HW": (h, w), "HWC": (h, w, c), "CHW": (c, h, w), "NHW": (n, h, w), "NHWC": (n, h, w, c),
            "NCHW": (n, c, h, w)}[layout]  # fmt: skip


def mask_shape(layout: str, n: int, h: int, w: int) -> tuple[int, ...]:
    """The shape, in mask ``layout``, of ``n`` masks of ``h x w``."""
    return {"HW": (h, w), "1HW": (1, h, w), "NHW": (n, h, w), "N1HW": (n, 1, h, w)}[layout]
