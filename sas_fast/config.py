"""The SAS policy (SPEC §5): a config describes the distribution, sampling it gives explicit records.

:class:`SASConfig` holds the paper's defaults (scale U(0.25, 1), random placement, speckle or
Poisson inside the mask).  ``config.sample(n, seed=..., masks=...)`` draws, for each global sample
id, from the parameter stream of SPEC §4 (counter ``(slot, sid, 0, PARAM_TAG)``), so a sample's
parameters never depend on the batch it sits in.  The result, :class:`SASParams`, is a plain
record of per-sample arrays that :func:`sas_fast.augment` consumes and that round-trips through
dicts and JSON, so a training run can log exactly what was applied and replay it.

Slot layout (four uint32 words each): slot 0 = (apply-scale coin, scale, offset y, offset x);
slot 1 = (apply-noise coin, kind, sigma, peak).  A word ``r`` becomes a uniform by
:func:`sas_fast.philox.uniform_from_word`; integers in ``[a, b]`` are ``a + (r * (b - a + 1) >> 32)``.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from .arrays import to_host
from .geometry import INTERPOLATIONS, centre_offsets, nearest_taps, random_offsets, ratios, thumbnail_sides
from .philox import seed_to_key, uniform_from_word
from .plan import KINDS, SLOT_GEOMETRY, SLOT_NOISE, numba_function, param_words
from .records import MAX_POLICY_KINDS, POLICY_DTYPE, record
from .plan import sample_ids as _sample_ids

__all__ = ["SASConfig", "SASParams"]


@dataclass(frozen=True)
class SASConfig:
    """Distribution of SAS augmentations (defaults: the paper's).

    p_scale: probability a sample is rescaled (otherwise identity geometry).
    scale_range: (lo, hi) of the uniform scale, > 0.
    placement: "random" (uniform integer offset keeping the thumbnail inside the canvas) or "center".
    p_noise: probability a sample gets noise (otherwise kind "none").
    noise: kind -> weight among "speckle", "gaussian", "poisson".
    sigma_range: (lo, hi) uniform sigma of speckle/gaussian noise (normalised units).
    peak_range: (lo, hi) log-uniform Poisson peak (counts at full intensity).
    source: "image" (the whole image is shrunk) or "roi" (the bounding box of the selected labels,
        grown by ``roi_margin`` times its size on each side, is shrunk and pasted).
    min_object_pixels: if set, the scale is raised just enough that the selected structure keeps at
        least this many pixels (never above 1, or the structure's own size if smaller).
    labels: the labels that count as the structure (default: any nonzero label).
    interpolation: the image resampling, "bilinear" (the paper's) or "area" (antialiased shrinking,
        OpenCV's INTER_AREA: SPEC §2b); recorded per sample in the params.  The mask is always nearest.
    """

    p_scale: float = 1.0
    scale_range: tuple[float, float] = (0.25, 1.0)
    placement: str = "random"
    p_noise: float = 1.0
    noise: dict[str, float] = field(default_factory=lambda: {"speckle": 0.5, "poisson": 0.5})
    sigma_range: tuple[float, float] = (0.1, 0.1)
    peak_range: tuple[float, float] = (256.0, 256.0)
    source: str = "image"
    roi_margin: float = 0.1
    min_object_pixels: int | None = None
    labels: tuple[int, ...] | None = None
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        for name in ("p_scale", "p_noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise TypeError(f"{name}: expected a probability in [0, 1] (a number), got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
            # a plain float: coins compare in float32 (a NumPy float64 would make NumPy compare in float64)
            object.__setattr__(self, name, float(value))
        _check_range("scale_range", self.scale_range, low=0.0, open_low=True)
        _check_range("sigma_range", self.sigma_range, low=0.0, open_low=False)
        _check_range("peak_range", self.peak_range, low=0.0, open_low=True)
        if self.placement not in ("random", "center"):
            raise ValueError(f"placement: expected 'random' or 'center', got {self.placement!r}")
        if self.source not in ("image", "roi"):
            raise ValueError(f"source: expected 'image' or 'roi', got {self.source!r}")
        if not isinstance(self.interpolation, str) or self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation: expected one of {list(INTERPOLATIONS)}, got {self.interpolation!r}")
        if isinstance(self.roi_margin, bool) or not isinstance(self.roi_margin, (int, float, np.integer, np.floating)):
            raise TypeError(f"roi_margin: expected a finite number >= 0, got {self.roi_margin!r}")
        if not (math.isfinite(self.roi_margin) and self.roi_margin >= 0):
            raise ValueError(f"roi_margin: expected a finite value >= 0, got {self.roi_margin!r}")
        if not isinstance(self.noise, dict):
            raise TypeError(f"noise: expected a table {{kind: weight}}, e.g. {{'speckle': 1}}, got {self.noise!r}")
        bad = sorted(set(map(str, self.noise)) - (set(KINDS) - {"none"}))
        weights = list(self.noise.values())
        numeric = all(isinstance(w, (int, float, np.integer, np.floating)) and not isinstance(w, bool) for w in weights)
        if (
            not self.noise or bad or not numeric or any(not (math.isfinite(w) and w >= 0) for w in weights)
            or not 0 < sum(weights) < math.inf  # weights of 1e308 each would overflow the normalisation
        ):  # fmt: skip
            raise ValueError(
                f"noise: expected number weights >= 0 (not all zero, finite sum) for kinds among speckle, gaussian, poisson; got {self.noise!r}"
            )
        mop = self.min_object_pixels
        if mop is not None and (isinstance(mop, bool) or not isinstance(mop, (int, np.integer)) or mop < 1):
            raise ValueError(f"min_object_pixels: expected None or an integer >= 1, got {mop!r}")
        object.__setattr__(self, "scale_range", tuple(float(v) for v in self.scale_range))
        object.__setattr__(self, "sigma_range", tuple(float(v) for v in self.sigma_range))
        object.__setattr__(self, "peak_range", tuple(float(v) for v in self.peak_range))
        if self.labels is not None:
            object.__setattr__(self, "labels", tuple(int(v) for v in self.labels))

    # -- serialisation -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SASConfig:
        """A config from plain data (e.g. a JSON file); unknown keys are an error, never executed."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"config: unknown key(s) {unknown}; accepted: {sorted(known)}")
        kwargs = dict(data)
        for key in ("scale_range", "sigma_range", "peak_range", "labels"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)

    # -- sampling ----------------------------------------------------------------------------

    def sample(
        self,
        n: int,
        *,
        seed: int,
        sample_ids: Any = None,
        masks: Any = None,
        shape: tuple[int, int] | None = None,
    ) -> SASParams:
        """Per-sample parameters for ``n`` samples (global ids ``sample_ids``, default ``0..n-1``).

        ``masks`` ``(n, H, W)`` (or ``shape=(H, W)`` when there are none) give the image size that
        random placement needs; ``source="roi"`` and ``min_object_pixels`` need the masks.
        """
        n = int(n)
        if n < 0:
            raise ValueError(f"n: expected a count >= 0, got {n}")
        reads_labels = self.reads_labels
        if masks is not None:
            dims = tuple(masks.shape) if hasattr(masks, "shape") else np.shape(masks)
            dims = (1, *dims) if len(dims) == 2 else dims
            if len(dims) != 3 or dims[0] != n:
                raise ValueError(f"masks: expected shape ({n}, H, W), got {dims}")
            height, width = (int(v) for v in dims[1:])
            # Only the ROI and min_object_pixels policies read labels; otherwise the shape is enough
            # (CuPy masks or CUDA tensors are then not copied to the host).
            masks = to_host(masks).reshape(dims) if reads_labels else None
        elif shape is not None:
            height, width = (int(v) for v in shape)
        else:
            raise ValueError("shape: give masks=(n, H, W) or shape=(H, W) so placement knows the canvas")
        if masks is None and reads_labels:
            raise ValueError("masks: source='roi' and min_object_pixels need the masks")

        sids = _sample_ids(sample_ids, n)
        key = seed_to_key(seed)
        crop = np.empty((n, 4), np.int64)
        crop[:] = (0, 0, height, width)
        drawn = None if reads_labels else _compiled_draws(self._policy, key, sids, height, width)
        if drawn is not None:  # the same draws, compiled (tests/test_percall.py holds them equal)
            scale, offset, kinds, sigma, peak = drawn
        else:
            scale, crop, offset, kinds, sigma, peak = self._draws(sids, key, height, width, crop, masks)
        return SASParams(
            sample_ids=sids.astype(np.int64),
            scale=scale,
            crop=crop,
            offset=offset,
            canvas=(height, width),
            kind=kinds.astype(object),
            sigma=sigma,
            peak=peak,
            labels=self.labels,
            interpolation=np.full(n, self.interpolation, dtype=object),
        )

    def _draws(self, sids: np.ndarray, key: np.ndarray, height: int, width: int, crop: np.ndarray, masks: Any):
        """:meth:`sample`'s draws with NumPy (SPEC §5, vectorised): ``(scale, crop, offset, kinds,
        sigma, peak)``; ``crop`` comes in as the whole image per sample."""
        geo = param_words(sids, key, SLOT_GEOMETRY)
        noi = param_words(sids, key, SLOT_NOISE)
        # every uniform this policy reads, in one pass: geometry coin, scale; noise coin, kind, sigma, peak
        u32 = uniform_from_word(np.concatenate([geo[:, :2], noi], axis=1))
        u_coin, u_noise = u32[:, 0], u32[:, 2]  # coins compare in float32: u < float32(p)
        _, u_scale, _, u_kind, u_sigma, u_peak = u32.astype(np.float64).T

        # Samples that lose the scale coin keep the identity geometry: whole image, scale 1, offset 0.
        rescaled = u_coin < self.p_scale
        selected = None  # the structure's pixels: only the ROI and min_object_pixels policies look at them
        if self.reads_labels:
            selected = masks != 0 if self.labels is None else np.isin(masks, self.labels)
        if self.source == "roi":
            for i in np.flatnonzero(rescaled):
                crop[i] = _roi_box(selected[i], self.roi_margin)

        lo, hi = self.scale_range
        scale = lo + (hi - lo) * u_scale
        if self.min_object_pixels is not None:
            scale = np.maximum(scale, _min_scales(selected, crop, self.min_object_pixels))
        scale = np.where(rescaled, scale, 1.0)
        thumb = thumbnail_sides(crop[:, 2:], scale[:, None]).astype(np.int64)
        if self.placement == "center":
            offset = centre_offsets((height, width), thumb)
        else:
            offset = random_offsets(geo[:, 2:], (height, width), thumb)
        offset[~rescaled] = 0

        names, cumulative = self._kind_table()
        pick = np.minimum(np.searchsorted(cumulative, u_kind, side="right"), len(names) - 1)
        kinds = np.where(u_noise < self.p_noise, np.array(names, dtype=object)[pick], "none")
        s_lo, s_hi = self.sigma_range
        sigma = s_lo + (s_hi - s_lo) * u_sigma
        p_lo, p_hi = self.peak_range
        peak = log_uniform(p_lo, p_hi, u_peak)
        return scale, crop, offset, kinds, sigma, peak

    @property
    def reads_labels(self) -> bool:
        """Whether sampling reads the masks' labels (``source="roi"`` or ``min_object_pixels``)."""
        return self.source == "roi" or self.min_object_pixels is not None

    def _kind_table(self) -> tuple[list[str], np.ndarray]:
        """The noise kinds in the config's order and their normalised cumulative weights (float64)."""
        names = list(self.noise)
        weights = np.array([self.noise[k] for k in names], dtype=np.float64)
        return names, np.cumsum(weights / weights.sum())

    @functools.cached_property
    def _policy(self) -> np.ndarray:
        """:meth:`policy_record`, built once (a config is frozen)."""
        return self.policy_record()

    def policy_record(self) -> np.ndarray:
        """This policy as the compiled sampler reads it: one ``records.POLICY_DTYPE`` record.

        Only for policies that read no labels (:attr:`reads_labels` false); the compiled sampler
        draws exactly what :meth:`sample` draws (tests/test_percall.py).
        """
        if self.reads_labels:
            raise ValueError("policy_record: source='roi' and min_object_pixels read the masks; only sample() draws them")
        names, cumulative = self._kind_table()
        kinds = np.zeros(MAX_POLICY_KINDS, np.int32)
        kinds[: len(names)] = [KINDS[k] for k in names]
        padded = np.ones(MAX_POLICY_KINDS)
        padded[: len(names)] = cumulative
        return record(
            POLICY_DTYPE,
            p_scale=np.float32(self.p_scale), p_noise=np.float32(self.p_noise),
            scale_lo=self.scale_range[0], scale_hi=self.scale_range[1],
            sigma_lo=self.sigma_range[0], sigma_hi=self.sigma_range[1],
            peak_lo=self.peak_range[0], peak_hi=self.peak_range[1],
            center=self.placement == "center", interpolation=INTERPOLATIONS[self.interpolation],
            n_kinds=len(names), kinds=kinds, cumulative=padded,
        )  # fmt: skip


#: Noise kind names by kernel code (``KINDS``).
_KIND_BY_CODE = np.array(sorted(KINDS, key=KINDS.get), dtype=object)


def _compiled_draws(policy: np.ndarray, key: np.ndarray, sids: np.ndarray, height: int, width: int):
    """:meth:`SASConfig.sample`'s draws of a label-free ``policy`` through the Numba backend's
    compiled sampler (``_numba_policy.draw_params``): ``(scale, offset, kinds, sigma, peak)``, or
    None where Numba cannot run or a thumbnail side exceeds the plans' limit (NumPy decides then)."""
    draw = numba_function("_numba_policy", "draw_params")
    if draw is None:
        return None
    n = len(sids)
    scale, sigma, peak = np.empty(n), np.empty(n), np.empty(n)
    offset, codes = np.empty((n, 2), np.int64), np.empty(n, np.int32)
    if not draw(policy, int(key[0]), int(key[1]), sids, height, width, scale, offset, codes, sigma, peak):
        return None
    return scale, offset, _KIND_BY_CODE[codes], sigma, peak


def log_uniform(lo: float, hi: float, u: np.ndarray) -> np.ndarray:
    """``lo * (hi / lo) ** u`` in float64 (SPEC §5's log-uniform peak), with the C library's ``pow``.

    NumPy's own ``power`` loop (SIMD, chosen by the CPU's instruction set) differs from the C
    library's in the last bit for about 5 % of values, so the peaks would depend on the machine and
    differ from the compiled sampler's (Numba calls the C library).  ``lo == hi`` gives ``lo`` exactly.
    """
    if lo == hi:
        return np.full(len(u), lo)
    ratio = hi / lo
    return np.array([lo * math.pow(ratio, v) for v in u.tolist()], dtype=np.float64)


def _check_range(name: str, value: Any, *, low: float, open_low: bool) -> None:
    try:
        a, b = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a pair (lo, hi), got {value!r}") from None
    bad_low = a <= low if open_low else a < low
    if not (math.isfinite(a) and math.isfinite(b)) or bad_low or b < a:
        relation = ">" if open_low else ">="
        raise ValueError(f"{name}: expected finite lo <= hi with lo {relation} {low}, got {value!r}")


def _roi_box(selected: np.ndarray, margin: float) -> np.ndarray:
    """Bounding box ``(sy0, sx0, sh, sw)`` of the selected pixels grown by ``margin`` of its size (whole image if none)."""
    height, width = selected.shape
    rows, cols = np.flatnonzero(selected.any(axis=1)), np.flatnonzero(selected.any(axis=0))
    if not rows.size:
        return np.array([0, 0, height, width], dtype=np.int64)
    y0, y1, x0, x1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    # capped at the image size first: a huge margin means the whole image, never an overflow
    my, mx = (int(math.ceil(min(margin * int(size), limit))) for size, limit in ((y1 - y0, height), (x1 - x0, width)))
    y0, y1 = max(0, y0 - my), min(height, y1 + my)
    x0, x1 = max(0, x0 - mx), min(width, x1 + mx)
    return np.array([y0, x0, y1 - y0, x1 - x0], dtype=np.int64)


def _kept_pixels(region: np.ndarray, scale: float) -> int:
    """Pixels of the boolean ``region`` that survive its nearest-exact rescale by ``scale`` (SPEC §2)."""
    (sh, sw), (h, w) = region.shape, thumbnail_sides(region.shape, scale).astype(np.int64)
    my = nearest_taps(np.arange(h), sh, ratios(sh, h))
    mx = nearest_taps(np.arange(w), sw, ratios(sw, w))
    return int(region[my][:, mx].sum())


def _min_scales(selected: np.ndarray, crop: np.ndarray, min_pixels: int) -> np.ndarray:
    """Smallest scale per sample keeping ``min(min_pixels, object size)`` pixels of the structure.

    The kept count is measured on the nearest-exact resampled mask itself (SPEC §2), bisecting the
    scale, so the guarantee is exact rather than estimated.
    """
    out = np.zeros(len(selected))
    for i, sel in enumerate(selected):
        sy0, sx0, sh, sw = (int(v) for v in crop[i])
        region = sel[sy0 : sy0 + sh, sx0 : sx0 + sw]
        target = min(int(min_pixels), int(region.sum()))
        if target == 0:
            continue
        lo, hi = 0.0, 1.0  # at scale 1 the whole structure is kept, >= target
        for _ in range(30):
            mid = 0.5 * (lo + hi)
            if _kept_pixels(region, mid) >= target:
                hi = mid
            else:
                lo = mid
        out[i] = hi
    return out


#: The per-sample fields of :class:`SASParams`: name -> (dtype, shape of one sample's value).
#: ``__getitem__``, ``to_dict``, ``from_dict`` and ``concatenate`` all walk this one table.
PER_SAMPLE_FIELDS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "sample_ids": (np.int64, ()),
    "scale": (np.float64, ()),
    "crop": (np.int64, (4,)),
    "offset": (np.int64, (2,)),
    "kind": (object, ()),
    "sigma": (np.float64, ()),
    "peak": (np.float64, ()),
    "interpolation": (object, ()),
}
#: The per-sample fields holding names, and the names each accepts.
NAME_FIELDS: dict[str, dict[str, int]] = {"kind": KINDS, "interpolation": INTERPOLATIONS}
#: Per-sample fields a record may lack (records written before the field existed), and their value.
FIELD_DEFAULTS: dict[str, str] = {"interpolation": "bilinear"}
#: Fields shared by every sample of a record.
SHARED_FIELDS = ("canvas", "labels")


@dataclass
class SASParams:
    """Explicit per-sample SAS parameters (what :func:`sas_fast.augment` applies).

    sample_ids: int64 (n,) global sample ids; scale: float64 (n,); crop: int64 (n, 4)
    ``(sy0, sx0, sh, sw)``; offset: int64 (n, 2) ``(oy, ox)``; canvas: ``(H, W)``; kind: (n,) names
    among speckle / gaussian / poisson / none; sigma, peak: float64 (n,); labels: the selected labels
    (None = any nonzero); interpolation: (n,) names, "bilinear" or "area" (SPEC §2b; None: bilinear
    for every sample).  The per-sample fields are :data:`PER_SAMPLE_FIELDS`.
    """

    sample_ids: np.ndarray
    scale: np.ndarray
    crop: np.ndarray
    offset: np.ndarray
    canvas: tuple[int, int]
    kind: np.ndarray
    sigma: np.ndarray
    peak: np.ndarray
    labels: tuple[int, ...] | None = None
    interpolation: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.interpolation is None:
            self.interpolation = np.full(len(self.scale), FIELD_DEFAULTS["interpolation"], dtype=object)

    def __len__(self) -> int:
        return len(self.scale)

    def _shared(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in SHARED_FIELDS}

    def __getitem__(self, index: Any) -> SASParams:
        """The records of a subset of samples (an int, slice or index array)."""
        idx = np.atleast_1d(np.arange(len(self))[index])
        return SASParams(**{name: getattr(self, name)[idx] for name in PER_SAMPLE_FIELDS}, **self._shared())

    def to_dict(self) -> dict[str, Any]:
        """Plain lists and numbers (JSON-ready); floats keep every bit (repr round-trips)."""
        data: dict[str, Any] = {}
        for name in PER_SAMPLE_FIELDS:
            value = getattr(self, name)
            data[name] = [str(k) for k in value] if name in NAME_FIELDS else np.asarray(value).tolist()
        data["canvas"] = [int(v) for v in self.canvas]
        data["labels"] = None if self.labels is None else [int(v) for v in self.labels]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SASParams:
        """A record from plain data (e.g. one JSON line); every key is checked, errors name it."""
        if not isinstance(data, dict):
            raise TypeError(f"params: expected a mapping of the SASParams fields, got {type(data).__name__}")
        known = (*PER_SAMPLE_FIELDS, *SHARED_FIELDS)
        missing = [k for k in known if k not in data and k != "labels" and k not in FIELD_DEFAULTS]
        unknown = sorted(set(map(str, data)) - set(known))
        if missing or unknown:
            raise ValueError(f"params: missing key(s) {missing}, unknown key(s) {unknown}; expected {list(known)}")
        n = _record_length(data.get("scale"))
        given = {**{name: [value] * n for name, value in FIELD_DEFAULTS.items()}, **data}
        fields = {name: _field(name, given[name], n, dtype, shape) for name, (dtype, shape) in PER_SAMPLE_FIELDS.items()}
        fields["canvas"] = tuple(int(v) for v in _field("canvas", data["canvas"], 2, np.int64, ()))
        if min(fields["canvas"]) < 1:
            raise ValueError(f"params: canvas must be two positive integers, got {data['canvas']!r}")
        labels = data.get("labels")
        if labels is not None and not isinstance(labels, (list, tuple)):
            raise TypeError(f"params: labels must be null or a list of integer labels, got {labels!r}")
        fields["labels"] = None if labels is None else tuple(_field("labels", labels, len(labels), np.int64, ()).tolist())
        return cls(**fields)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> SASParams:
        return cls.from_dict(json.loads(text))

    @classmethod
    def concatenate(cls, parts: list[SASParams]) -> SASParams:
        """One record from several (same canvas and labels), e.g. per-sample records collated into a batch."""
        if not parts:
            raise ValueError("parts: expected at least one SASParams")
        for i, part in enumerate(parts[1:], 1):
            if part._shared() != parts[0]._shared():
                raise ValueError(
                    f"parts: part {i} has canvas {part.canvas} and labels {part.labels}, but part 0 has canvas "
                    f"{parts[0].canvas} and labels {parts[0].labels}; only records of one canvas and label set concatenate"
                )
        return cls(
            **{name: np.concatenate([getattr(p, name) for p in parts]) for name in PER_SAMPLE_FIELDS},
            **parts[0]._shared(),
        )


def _record_length(scale: Any) -> int:
    if not isinstance(scale, (list, tuple, np.ndarray)):
        raise TypeError(f"params: scale must be a list of numbers (one per sample), got {scale!r}")
    return len(scale)


def _field(name: str, value: Any, n: int, dtype: Any, shape: tuple[int, ...]) -> np.ndarray:
    """One field of :meth:`SASParams.from_dict`, checked: ``n`` values of ``shape``, of ``dtype``."""
    want = (n, *shape)
    if dtype is object:  # names: kinds, interpolations
        arr = np.asarray(value, dtype=object) if isinstance(value, (list, tuple, np.ndarray)) else None
        names = set(NAME_FIELDS[name])
        if arr is None or arr.shape != want or not all(isinstance(k, str) and k in names for k in arr):
            raise ValueError(f"params: {name} must be {n} names among {sorted(names)}, got {value!r}")
        return np.array([str(k) for k in arr], dtype=object)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"params: {name} must hold numbers, got {value!r}") from None
    if isinstance(value, (str, bytes)) or arr.shape != want or _has_bool(value):
        raise ValueError(f"params: {name} must be numbers of shape {want}, got {value!r}")
    if not np.isfinite(arr).all():
        raise ValueError(f"params: {name} must be finite, got {value!r}")
    if dtype is np.int64:
        if not (arr == np.floor(arr)).all() or (np.abs(arr) > 2.0**62).any():
            raise ValueError(f"params: {name} must be integers (|value| <= 2**62), got {value!r}")
        exact = np.asarray(value, dtype=object).reshape(-1)  # JSON integers beyond 2**53: compare exactly
        if name == "sample_ids" and any(not 0 <= int(v) < 1 << 32 for v in exact):
            raise ValueError(f"params: sample_ids must lie in [0, 2**32), got {value!r}")
        return np.array([int(v) for v in exact], dtype=np.int64).reshape(want)
    return arr


def _has_bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return True
    if isinstance(value, (list, tuple)):
        return any(_has_bool(v) for v in value)
    return isinstance(value, np.ndarray) and value.dtype == np.bool_
