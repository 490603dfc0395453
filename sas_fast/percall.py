"""The one-sample path of :class:`sas_fast.SAS`: a per-sample call at kernel speed (issue 10).

Through the general path a call samples its parameters (``SASConfig.sample``), validates them into
plans (``sas_fast.plan``) and packs the kernel's records: some 60 NumPy operations on one-element
arrays, about 100 µs, as long as the kernel itself at 256².  All of that but the sample's own
parameters depends only on the transform and on the input's shape and dtype, so :func:`build`
computes it once per shape, through the general path's own checks and builders, and a call is
then compiled calls only: ``backends._numba_policy.draw_sample`` draws the sample's parameters
straight into its kernel record (SPEC §5), ``backends.numba_cpu.check_inputs`` runs the input
checks of ``sas_fast.api`` where the call needs any (float32 images, integer value sub-ranges),
and the fused serial kernel runs (``numba_cpu._kernel_serial``, as in the general path).

It serves the calls the general path sends to the serial Numba kernel: NumPy arrays (CPU tensors
as their NumPy views: ``SAS._one_sample``), C-contiguous and aligned; an ``(H, W)``, ``(H, W, C)``
or ``(C, H, W)`` image with an ``(H, W)`` or ``(1, H, W)`` mask of a kernel mask dtype; a policy
that reads no labels; fewer than ``threads.PARALLEL_MIN_PIXELS`` canvas values or one thread
allowed.  Anything else, and any call whose compiled step finds a
drawn value the plans refuse, a NaN pixel or a pixel outside the value range, takes the general
path, which returns the same arrays or raises its error (tests/test_percall.py checks both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from . import api, threads
from .records import INPUT_CHECK_DTYPE, SAMPLE_DTYPE, record

if TYPE_CHECKING:
    from .transform import SAS

__all__ = ["OneSample", "build"]

#: The caller layouts served: kernel views are reshapes of the caller's arrays, except for
#: ``CHW`` with several channels, whose image goes through a channel-last copy each way (as in
#: the general path, where the Numba backend computes into contiguous memory and copies back).
_IMAGE_LAYOUTS = ("HW", "HWC", "CHW")
_MASK_LAYOUTS = ("HW", "1HW")


class OneSample:
    """Everything a one-sample call needs besides its sample id, for one input shape and dtype.

    Calling it with a matching image, mask and sample id returns ``(image_out, mask_out)``, new
    arrays in the caller's shapes and dtypes, or None where the general path must decide.
    """

    __slots__ = ("_bool_mask", "_channels_first", "_check", "_check_threads", "_checks", "_draw", "_dtype", "_image3",
                 "_kernel", "_key", "_launch", "_mask3", "_mask_dtype", "_mask_shape", "_policy",
                 "_tail")  # fmt: skip

    def __init__(self, transform: SAS, image: np.ndarray, mask: np.ndarray) -> None:
        from .backends import numba_cpu
        from .backends._numba_noise import NOISE_BATCH_ADDRESS
        from .backends._numba_policy import draw_sample

        config = transform.config
        batch = api._prepare(image, mask, transform.backend, mask_required=True, channel_axis=transform.channel_axis)
        if batch.layout not in _IMAGE_LAYOUTS or batch.mask_layout not in _MASK_LAYOUTS:
            raise _NotServed
        if batch.mask.dtype != mask.dtype:  # a mask the general path converts first (e.g. int64 labels)
            raise _NotServed
        noise = api._noise(
            batch, kind="none", labels=config.labels, seed=transform.seed, value_range=transform.value_range,
            channels=transform.channels,
        )  # fmt: skip
        geo = api._geometry(batch, scale=1.0)  # the fills: the policy's samples all use the defaults
        _, height, width, channels = batch.image.shape
        select = numba_cpu._selection(noise.labels)
        bounds = api.range_bounds(batch.image.dtype, noise)
        self._draw, self._kernel = draw_sample, numba_cpu._kernel_serial
        self._policy = config.policy_record()
        finite = batch.image.dtype == np.float32
        self._checks = record(
            INPUT_CHECK_DTYPE, finite=finite, in_range=bounds is not None,
            lo=0.0 if bounds is None else bounds[0], hi=0.0 if bounds is None else bounds[1],
        )  # fmt: skip
        self._check = numba_cpu.check_inputs if finite or bounds is not None else None
        self._key = (int(noise.key[0]), int(noise.key[1]))
        self._launch = numba_cpu._launch_record(batch.image, geo, noise, width, 1, select, True)
        self._tail = (np.ascontiguousarray(geo.fill), select[1], select[3], NOISE_BATCH_ADDRESS)
        self._mask_shape = mask.shape
        self._dtype, self._mask_dtype = image.dtype, mask.dtype
        self._image3, self._mask3 = (1, height, width * channels), (1, height, width)
        self._bool_mask = mask.dtype == np.bool_
        self._channels_first = batch.layout == "CHW" and channels > 1  # (1, H, W) is the memory of (H, W)
        self._check_threads = height * width * channels >= threads.PARALLEL_MIN_PIXELS

    def __call__(self, image: np.ndarray, mask: np.ndarray, sample_id: int) -> tuple[np.ndarray, np.ndarray] | None:
        if not (
            image.flags.c_contiguous and image.flags.aligned and mask.flags.c_contiguous and mask.flags.aligned
            and 0 <= sample_id < 1 << 32
        ):  # fmt: skip
            return None
        if self._check_threads and threads.use_parallel(self._image3[1] * self._image3[2]) > 1:
            return None  # the general path runs the parallel kernel
        kernel_mask = mask.reshape(self._mask3)
        if self._bool_mask:  # the kernels read and write bool masks as uint8
            kernel_mask = kernel_mask.view(np.uint8)
        if self._channels_first:
            image = np.ascontiguousarray(np.moveaxis(image, 0, -1))
        samples, image3 = np.empty(1, SAMPLE_DTYPE), image.reshape(self._image3)
        fill, lut, labels, noise_batch = self._tail
        height, width = self._mask3[1:]
        if self._draw(self._policy, *self._key, sample_id, height, width, samples):
            return None  # a drawn value the plans refuse
        check = self._check
        if check is not None and check(self._checks, self._launch, samples, image3, kernel_mask, lut, labels):
            return None  # a NaN pixel, or a pixel outside the value range
        out_image = np.empty(image.shape, self._dtype)  # channel-last for a channel-first caller
        out_mask = np.empty(self._mask_shape, self._mask_dtype)
        kernel_out_mask = out_mask.reshape(self._mask3)
        if self._bool_mask:
            kernel_out_mask = kernel_out_mask.view(np.uint8)
        self._kernel(
            self._launch, samples, image3, kernel_mask, out_image.reshape(self._image3), kernel_out_mask, fill, lut,
            labels, noise_batch,
        )  # fmt: skip
        if self._channels_first:
            out_image = np.ascontiguousarray(np.moveaxis(out_image, -1, 0))
        return out_image, out_mask


class _NotServed(Exception):
    """The inputs or the transform are outside what :class:`OneSample` serves."""


#: What :func:`build` returns when these inputs were refused (e.g. a NaN pixel in a float32
#: image): the general path raises the error, and the next call tries to plan again.
NOT_NOW = object()


def build(transform: SAS, image: np.ndarray, mask: np.ndarray) -> OneSample | None | object:
    """The one-sample plan for NumPy inputs like ``image`` and ``mask`` (``SAS._one_sample`` hands
    over only NumPy arrays); None where the general path serves such inputs; :data:`NOT_NOW` where
    these inputs were refused (every error is left to the general path, and a refusal of one image
    must not stop the next from being planned)."""
    if transform.config.reads_labels:
        return None
    from . import backends

    try:
        if api.pick_backend(transform.backend, image) is not backends.load("numba"):
            return None
        return OneSample(transform, image, mask)
    except (_NotServed, backends.BackendUnavailable):
        return None
    except (TypeError, ValueError):
        return NOT_NOW
