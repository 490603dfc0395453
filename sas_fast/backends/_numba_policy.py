"""SPEC §5 compiled: one sample's parameters drawn straight into its kernel record.

:func:`draw_sample` restates, for one sample id, what :meth:`sas_fast.SASConfig.sample` followed
by ``sas_fast.plan.make_geometry`` / ``make_noise`` compute with NumPy (the parameter stream of
SPEC §4, the coins, scale, placement, kind, sigma and peak, then the thumbnail size and ratios of
``sas_fast.geometry``), for a policy that reads no labels (``records.POLICY_DTYPE``).  It writes a
``records.SAMPLE_DTYPE`` record, so the one-sample path (``sas_fast.percall``) needs no NumPy
operation per call; :func:`draw_params` gives ``SASConfig.sample`` the same draws as arrays.
tests/test_percall.py holds both to the NumPy sampler bit for bit.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..philox import PARAM_TAG
from ..plan import KINDS, MAX_SIDE, SLOT_GEOMETRY, SLOT_NOISE
from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)
from ._numba_rng import philox, uniform64

__all__ = ["DRAW_OK", "DRAW_REFUSED", "draw_params", "draw_sample"]

#: :func:`draw_sample` wrote the record.
DRAW_OK = 0
#: A drawn value that ``sas_fast.plan`` refuses (a thumbnail side over ``MAX_SIDE``, a sigma or
#: peak that is not finite, or a peak of 0, in float32): the general path must raise its error.
DRAW_REFUSED = 1

_u64 = np.uint64
_KIND_NONE = KINDS["none"]


@njit(cache=True, inline="always", error_model="numpy")
def _side(src, scale):
    """``geometry.thumbnail_sides``: ``max(1, floor(src * scale + 0.5))`` in float64."""
    return max(1.0, np.floor(np.float64(src) * scale + 0.5))


@njit(cache=True, inline="always", error_model="numpy")
def _random_offset(word, span_to):
    """``geometry.random_offsets`` on one axis: uniform in ``[min(0, span_to), max(0, span_to)]``."""
    a, b = min(0, span_to), max(0, span_to)
    return a + np.int64((word * _u64(b - a + 1)) >> _u64(32))


@njit(cache=True, inline="always", error_model="numpy")
def _draw(policy, key0, key1, sid, height, width):
    """Sample ``sid``'s draws for an ``height`` x ``width`` image (the canvas too), as
    ``SASConfig.sample`` makes them: ``(ok, scale, hf, wf, oy, ox, kind, sigma, peak)`` with float64
    scale, sigma and peak, the thumbnail sides as float64 and the KINDS code; ``ok`` is False (and
    the offsets 0) when a side exceeds ``MAX_SIDE``, which the plans refuse."""
    P = policy[0]
    k0, k1, sid64 = _u64(key0), _u64(key1), _u64(sid)
    w_coin, w_scale, w_oy, w_ox = philox(_u64(SLOT_GEOMETRY), sid64, _u64(0), _u64(PARAM_TAG), k0, k1)
    n_coin, w_kind, w_sigma, w_peak = philox(_u64(SLOT_NOISE), sid64, _u64(0), _u64(PARAM_TAG), k0, k1)

    # slot 0: the scale coin (float32 compare: both sides are float32 values), scale, offsets
    rescaled = uniform64(w_coin) < np.float64(P.p_scale)
    scale = P.scale_lo + (P.scale_hi - P.scale_lo) * uniform64(w_scale) if rescaled else 1.0
    hf, wf = _side(height, scale), _side(width, scale)
    ok = hf <= MAX_SIDE and wf <= MAX_SIDE
    oy, ox = np.int64(0), np.int64(0)
    if ok and rescaled:
        h, w = np.int64(hf), np.int64(wf)
        if P.center != 0:
            oy, ox = (height - h) // 2, (width - w) // 2
        else:
            oy, ox = _random_offset(w_oy, height - h), _random_offset(w_ox, width - w)

    # slot 1: the noise coin, kind (searchsorted side="right" on the cumulative weights), sigma, peak
    kind = _KIND_NONE
    if uniform64(n_coin) < np.float64(P.p_noise):
        u_kind = uniform64(w_kind)
        pick = 0
        for j in range(P.n_kinds):
            if P.cumulative[j] <= u_kind:
                pick += 1
        kind = P.kinds[min(pick, P.n_kinds - 1)]
    sigma = P.sigma_lo + (P.sigma_hi - P.sigma_lo) * uniform64(w_sigma)
    peak = P.peak_lo * (P.peak_hi / P.peak_lo) ** uniform64(w_peak)  # the C library's pow
    return ok, scale, hf, wf, oy, ox, kind, sigma, peak


@njit(cache=True, error_model="numpy")
def draw_params(policy, key0, key1, sids, height, width, scale, offset, kind, sigma, peak):
    """``SASConfig.sample``'s per-sample arrays for the ids ``sids`` (label-free policies): float64
    ``scale``, ``sigma``, ``peak``, int64 ``offset`` ``(n, 2)``, int32 KINDS codes ``kind``.
    Returns False, the arrays unfinished, when a thumbnail side exceeds ``MAX_SIDE`` (the NumPy
    sampler then decides what such a record holds)."""
    for i in range(sids.shape[0]):
        ok, scale[i], _, _, offset[i, 0], offset[i, 1], kind[i], sigma[i], peak[i] = _draw(
            policy, key0, key1, sids[i], height, width
        )
        if not ok:
            return False
    return True


@njit(cache=True, error_model="numpy")
def draw_sample(policy, key0, key1, sid, height, width, out):
    """Draw sample ``sid``'s parameters for an ``height`` x ``width`` image (the canvas too) into ``out[0]``.

    policy: one ``POLICY_DTYPE`` record; key0, key1: the Philox key; out: ``SAMPLE_DTYPE`` records.
    Returns :data:`DRAW_OK`, or :data:`DRAW_REFUSED` when the plans would refuse a drawn value.
    """
    ok, _, hf, wf, oy, ox, kind, sigma64, peak64 = _draw(policy, key0, key1, sid, height, width)
    sigma, peak = np.float32(sigma64), np.float32(peak64)
    if not (ok and np.isfinite(sigma) and sigma >= 0 and np.isfinite(peak) and peak > 0):
        return DRAW_REFUSED
    s = out[0]
    s.sy0, s.sx0, s.sh, s.sw = 0, 0, height, width
    s.h, s.w, s.oy, s.ox = np.int64(hf), np.int64(wf), oy, ox
    s.ry, s.rx = np.float32(height / hf), np.float32(width / wf)
    s.kind, s.sigma, s.peak, s.sid = kind, sigma, peak, sid
    s.interpolation, s.taps = policy[0].interpolation, 0
    return DRAW_OK
