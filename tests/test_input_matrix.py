"""The bad-input matrix (docs/INPUT_MATRIX.md): every case against every backend.

Each case either gives the reference's result exactly (``REF``) or a ``TypeError`` / ``ValueError``
naming the argument, raised before any kernel runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import sas_fast
from tests.conftest import ellipse_masks, random_image

REF = "reference"
_rng = np.random.default_rng(6)
IMG = random_image(_rng, (3, 21, 34), np.uint8)
MSK = ellipse_masks(_rng, 3, 21, 34)
BIG = random_image(_rng, (3, 42, 68), np.uint8)
PARAMS = sas_fast.SASConfig(noise={"speckle": 1, "poisson": 1}).sample(3, seed=2, masks=MSK)


@dataclass
class Case:
    name: str
    call: str  # "rescale_paste", "noise_in_mask" or "augment"
    inputs: Callable[[], tuple[Any, Any]]
    kwargs: dict = field(default_factory=dict)
    expect: Any = REF  # REF or (exception type, message pattern)


def misaligned_uint16(shape):
    raw = np.zeros(int(np.prod(shape)) * 2 + 1, np.uint8)
    view = np.frombuffer(raw.data, dtype=np.uint16, count=int(np.prod(shape)), offset=1).reshape(shape)
    assert not view.flags.aligned
    return view


def fortran(a):
    return np.asfortranarray(a)


def read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


GEO = {"scale": 0.6, "offset": (3, -4)}
CASES = [
    # dtypes
    *[
        Case(f"image dtype {dt}", "rescale_paste", lambda dt=dt: (IMG.astype(dt), MSK), GEO,
             (TypeError, "image: dtype"))
        for dt in ("int8", "float16", "float64", "complex64", "object", ">u2")
    ],
    *[
        Case(f"mask dtype {dt}", "noise_in_mask", lambda dt=dt: (IMG, MSK.astype(dt)), {},
             (TypeError, "mask: dtype"))
        for dt in ("float32", "float64")
    ],
    # other integer masks (torch's int64 labels) compute as int32 and come back in their dtype
    *[Case(f"mask dtype {dt}", "augment", lambda dt=dt: (IMG, MSK.astype(dt)), {}) for dt in ("int8", "int64", ">i4", "uint64")],
    # ranks and shapes
    Case("1-D image", "rescale_paste", lambda: (IMG[0, 0], None), GEO, (ValueError, "image: expected")),
    Case("5-D image", "rescale_paste", lambda: (IMG[None, ..., None], None), GEO, (ValueError, "image: expected")),
    Case("mask shape mismatch", "augment", lambda: (IMG, MSK[:, :, 1:]), {}, (ValueError, "mask: shape")),
    Case("N = 0", "rescale_paste", lambda: (IMG[:0], MSK[:0]), GEO),
    Case("N = 0 noise", "noise_in_mask", lambda: (IMG[:0], MSK[:0]), {}),
    Case("1x1 image", "rescale_paste", lambda: (IMG[:, :1, :1], MSK[:, :1, :1]), {"scale": 3.0}),
    Case("1xN image", "noise_in_mask", lambda: (IMG[:, :1], np.ones_like(MSK[:, :1])), {}),
    Case("Nx1 image", "rescale_paste", lambda: (IMG[:, :, :1], MSK[:, :, :1]), {"scale": 0.4}),
    # scales
    *[
        Case(f"scale {s}", "rescale_paste", lambda: (IMG, MSK), {"scale": s}, (ValueError, "scale: expected finite"))
        for s in (0.0, -0.5, float("nan"), float("inf"))
    ],
    Case("scale 1e6 (thumbnail too large)", "rescale_paste", lambda: (IMG, MSK), {"scale": 1e6},
         (ValueError, "scale: the thumbnail would exceed")),
    Case("scale 1e5 on a 1x1 crop", "rescale_paste", lambda: (IMG, MSK), {"scale": 1e5, "crop": (5, 5, 1, 1)}),
    # crops and offsets
    Case("crop past the edge", "rescale_paste", lambda: (IMG, MSK), {"scale": 0.5, "crop": (10, 10, 20, 5)},
         (ValueError, "crop: sample 0")),
    Case("empty crop", "rescale_paste", lambda: (IMG, MSK), {"scale": 0.5, "crop": (0, 0, 0, 5)},
         (ValueError, "crop: sample 0")),
    Case("offset far outside", "rescale_paste", lambda: (IMG, MSK), {"scale": 0.5, "offset": (-10**6, 10**6)}),
    Case("offset beyond 2**30", "rescale_paste", lambda: (IMG, MSK), {"scale": 0.5, "offset": (2**31, 0)},
         (ValueError, "offset: expected")),
    # pixel values and masks
    Case("NaN pixel", "rescale_paste", lambda: (np.where(MSK > 0, np.nan, 0.5).astype(np.float32), MSK), GEO,
         (ValueError, "image: NaN or inf pixel at")),
    Case("inf pixel", "noise_in_mask", lambda: (np.where(MSK > 0, np.inf, 0.5).astype(np.float32), MSK), {},
         (ValueError, "image: NaN or inf pixel at")),
    Case("no selected label", "noise_in_mask", lambda: (IMG, np.zeros_like(MSK)), {}),
    Case("labels not present", "noise_in_mask", lambda: (IMG, MSK), {"labels": [7, 9]}),
    # memory layouts
    Case("non-contiguous", "augment", lambda: (BIG[:, ::2, ::2], MSK), {}),
    Case("Fortran order", "augment", lambda: (fortran(IMG), fortran(MSK)), {}),
    Case("read-only", "augment", lambda: (read_only(IMG), read_only(MSK)), {}),
    Case("misaligned uint16", "noise_in_mask", lambda: (misaligned_uint16(IMG.shape), MSK), {}),
    Case("out aliasing the input", "noise_in_mask", lambda: (IMG.copy(), MSK), {"out": "alias"},
         (ValueError, r"out( \((image|mask)\))?: the buffer overlaps")),
]


def run(case: Case, backend: str):
    image, mask = case.inputs()
    kwargs = dict(case.kwargs)
    if kwargs.get("out") == "alias":
        kwargs["out"] = image
    if case.call == "rescale_paste":
        return sas_fast.rescale_paste(image, mask, backend=backend, **kwargs)
    if case.call == "noise_in_mask":
        return sas_fast.noise_in_mask(image, mask, seed=4, backend=backend, **kwargs)
    return sas_fast.augment(image, mask, PARAMS, seed=4, backend=backend, **kwargs)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, any_backend):
    image, mask = case.inputs()
    before = (np.array(image, copy=True), None if mask is None else np.array(mask, copy=True))
    if case.expect is REF:
        got = run(case, any_backend)
        want = run(case, "numpy")
        for g, w in zip(np.atleast_1d(got) if not isinstance(got, tuple) else got,
                        np.atleast_1d(want) if not isinstance(want, tuple) else want):
            if w is None:
                assert g is None
            else:
                np.testing.assert_array_equal(g, w)
    else:
        exc, pattern = case.expect
        with pytest.raises(exc, match=pattern):
            run(case, any_backend)
    # inputs never modified
    image2, mask2 = case.inputs()
    if image2.dtype != object:
        np.testing.assert_array_equal(image2, before[0])
    if mask2 is not None:
        np.testing.assert_array_equal(mask2, before[1])


def test_reference_results_are_meaningful():
    """Spot checks that the REF rows above compute something real, not just agree."""
    out, out_mask = sas_fast.rescale_paste(IMG[:, :1, :1], MSK[:, :1, :1], scale=3.0, backend="numpy")
    assert out.shape == (3, 1, 1) and (out == IMG[:, :1, :1]).all()  # a 1x1 source stays constant
    out, _ = sas_fast.rescale_paste(IMG, MSK, scale=0.5, offset=(-10**6, 10**6), backend="numpy")
    assert (out == 0).all()
    out = sas_fast.noise_in_mask(IMG, np.zeros_like(MSK), backend="numpy")
    np.testing.assert_array_equal(out, IMG)
    out, _ = sas_fast.rescale_paste(IMG[:0], MSK[:0], scale=0.5, backend="numpy")
    assert out.shape == (0, 21, 34)


def test_out_overlapping_any_of_the_callers_inputs_is_refused(any_backend):
    """The mask as out_mask, a torch view of the image as out: both share the caller's memory."""
    torch = pytest.importorskip("torch", reason="torch is not installed: tensor aliasing not checked")
    image, mask = IMG.copy(), MSK.copy()
    with pytest.raises(ValueError, match=r"out( \((image|mask)\))?: the buffer overlaps"):
        sas_fast.rescale_paste(image, mask, scale=0.5, backend=any_backend, out=(np.empty_like(image), mask))
    with pytest.raises(ValueError, match=r"out( \((image|mask)\))?: the buffer overlaps"):
        sas_fast.noise_in_mask(image, mask, backend=any_backend, out=torch.from_numpy(image))
    np.testing.assert_array_equal(image, IMG)
    np.testing.assert_array_equal(mask, MSK)
