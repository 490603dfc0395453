"""Numba Poisson sampler of SPEC §4: :mod:`sas_fast.samplers` one pixel at a time.

Same algorithm on the same Philox words as the NumPy reference: inversion for ``0 < lam < 10``,
Hörmann's PTRS for ``lam >= 10`` (uniform pairs ``(r0, r1)``, ``(r2, r3)`` of block 0, 1, ... up
to ``PTRS_BLOCKS`` blocks), then the normal approximation from block ``PTRS_BLOCKS``.
:func:`poisson` writes the float64 arithmetic in the reference's evaluation order with libm
``exp``/``log``; only libm's rounding against NumPy's may move a count by one on a tiny fraction
of pixels.

Speed: PTRS's accept test needs ``log`` (libm calls do not vectorise), and about a third of the
pairs need that test.  :func:`settle_block0` therefore decides block 0's two pairs in a
branch-free, vectorisable way with :func:`log_estimate` (fdlibm's polynomial, < 1 ulp) and a
safety margin a million times larger than any rounding difference: a pair is declared accepted or
rejected only when the estimated ``lhs - rhs`` is farther from 0 than the margin, where the libm
evaluation necessarily agrees.  The rare pixels it cannot settle (inside the margin, rejected
twice, or ``lam < 10``) go to :func:`poisson`.  The result is therefore exactly :func:`poisson`'s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..samplers import _LOG_2PI, _LOGGAM_A, INVERSION_MAX_K, PTRS_BLOCKS, PTRS_MIN_LAM
from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)
from ._numba_rng import bits_of_f64, box_muller, f64_of_bits, noise_counter_tag, philox, uniform64

__all__ = ["log_estimate", "poisson", "settle_block0"]

_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8, _A9 = _LOGGAM_A
_HALF_LOG_2PI = 0.5 * _LOG_2PI

#: Relative safety margin of the vectorised accept/reject decisions (see the module docstring).
_MARGIN = 1e-9

# fdlibm e_log.c: log(1 + f) = f - f*f/2 + s*(f*f/2 + R(s*s)), s = f / (2 + f); error < 1 ulp.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2 = math.sqrt(2.0)
_MANTISSA = np.uint64(0x000FFFFFFFFFFFFF)
_EXP_ONE = np.uint64(0x3FF0000000000000)
_SHIFT52 = np.uint64(52)


@njit(cache=True, inline="always", error_model="numpy")
def log_estimate(x):
    """log(x) for positive normal float64 ``x`` within 1 ulp, branch-free (vectorises); not libm's bits."""
    bits = bits_of_f64(x)
    e = np.int64(bits >> _SHIFT52) - 1023
    m = f64_of_bits((bits & _MANTISSA) | _EXP_ONE)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1 if big else e
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    r = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7))) + w * (_LG2 + w * (_LG4 + w * _LG6))
    hfsq = 0.5 * f * f
    dk = np.float64(e)
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r) + dk * _LN2_LO)) - f)


@njit(cache=True, inline="always", error_model="numpy")
def _stirling(x0, log_x0):
    """The Stirling series of NumPy's legacy ``random_loggam`` at ``x0 >= 7``, given ``log(x0)``."""
    x2 = (1.0 / x0) * (1.0 / x0)
    gl0 = _A9
    gl0 = gl0 * x2 + _A8
    gl0 = gl0 * x2 + _A7
    gl0 = gl0 * x2 + _A6
    gl0 = gl0 * x2 + _A5
    gl0 = gl0 * x2 + _A4
    gl0 = gl0 * x2 + _A3
    gl0 = gl0 * x2 + _A2
    gl0 = gl0 * x2 + _A1
    gl0 = gl0 * x2 + _A0
    return gl0 / x0 + _HALF_LOG_2PI + (x0 - 0.5) * log_x0 - x0


@njit(cache=True, error_model="numpy")
def _loggam(x):
    """log Gamma(x), x >= 1, exactly as :func:`sas_fast.samplers.loggam` (libm ``log``, same order)."""
    if x == 1.0 or x == 2.0:
        return 0.0
    n = math.floor(7.0 - x) if x < 7.0 else 0.0
    x0 = x + n
    gl = _stirling(x0, math.log(x0))
    for _ in range(int(n)):
        gl = gl - math.log(x0 - 1.0)
        x0 = x0 - 1.0
    return gl


@njit(cache=True, inline="always", error_model="numpy")
def _ptrs_constants(lam):
    """PTRS's per-mean constants ``(b, a, invalpha, vr)`` (NumPy's legacy ``random_poisson_ptrs``)."""
    b = 0.931 + 2.53 * np.sqrt(lam)
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)
    return b, a, invalpha, vr


@njit(cache=True, inline="always", error_model="numpy")
def _ptrs_estimate(lam, loglam, invalpha, b, a, vr, word_u, word_v):
    """One PTRS round decided branch-free: ``(k, verdict)``, verdict 1 accept, -1 reject, 0 unsure.

    ``k`` is exact (it is computed as in :func:`_ptrs_try`).  The log test is estimated as
    ``log(v * invalpha / q)`` against ``-lam + k * loglam - loggam(k + 1)`` (Stirling at
    ``k + 1 >= 7``; smaller ``k`` is left unsure), and trusted only outside the margin.
    """
    u = uniform64(word_u) - 0.5
    v = uniform64(word_v)
    us = 0.5 - np.abs(u)
    k = np.floor((2 * a / us + b) * u + lam + 0.43)
    quick = (us >= 0.07) & (v <= vr)
    rejected = (k < 0) | ((us < 0.013) & (v > us))
    x0 = max(k, 6.0) + 1.0
    log_x0 = log_estimate(x0)
    gl = _stirling(x0, log_x0)
    us2 = us * us
    lhs = log_estimate(v * invalpha * us2 / (a + b * us2))  # = log(v) + log(invalpha) - log(a / us2 + b)
    rhs = -lam + k * loglam - gl
    margin = _MARGIN * (1.0 + np.abs(lhs) + lam + x0 * (loglam + log_x0))
    trusted = k >= 6.0
    if quick | ((not rejected) & trusted & (lhs < rhs - margin)):
        return k, 1
    if rejected | (trusted & (lhs > rhs + margin)):
        return k, -1
    return k, 0


@njit(cache=True, inline="always", error_model="numpy")
def settle_block0(lam, r0, r1, r2, r3):
    """PTRS on block 0's pairs ``(r0, r1)``, ``(r2, r3)`` without libm: ``(k, settled)``.

    ``settled`` is False where :func:`poisson` must decide (``lam < 10``, an unsure test, or both
    pairs rejected); elsewhere ``k`` equals :func:`poisson`'s count.
    """
    b, a, invalpha, vr = _ptrs_constants(lam)
    loglam = log_estimate(lam)
    k_first, first = _ptrs_estimate(lam, loglam, invalpha, b, a, vr, r0, r1)
    k_second, second = _ptrs_estimate(lam, loglam, invalpha, b, a, vr, r2, r3)
    settled = (lam >= PTRS_MIN_LAM) & ((first == 1) | ((first == -1) & (second == 1)))
    return (k_first if first == 1 else k_second), settled


@njit(cache=True, error_model="numpy")
def _ptrs_try(lam, loglam, word_u, word_v):
    """One full PTRS round (:func:`sas_fast.samplers._ptrs_try`): ``(k, accepted)``."""
    b, a, invalpha, vr = _ptrs_constants(lam)
    u = uniform64(word_u) - 0.5
    v = uniform64(word_v)
    us = 0.5 - abs(u)
    k = np.floor((2 * a / us + b) * u + lam + 0.43)
    if us >= 0.07 and v <= vr:
        return k, True
    if k < 0 or (us < 0.013 and v > us):
        return k, False
    lhs = math.log(v) + math.log(invalpha) - math.log(a / (us * us) + b)
    rhs = -lam + k * loglam - _loggam(k + 1.0)
    return k, lhs <= rhs


@njit(cache=True, error_model="numpy")
def _inversion(lam, word):
    """Sequential-search inversion for ``0 < lam < 10`` (:func:`sas_fast.samplers._inversion`)."""
    u = uniform64(word)
    prob = math.exp(-lam)
    cdf = prob
    k = 0
    while u > cdf and k < INVERSION_MAX_K:
        k += 1
        prob = prob * (lam / k)  # SPEC §4: p *= lam / k
        cdf = cdf + prob
    return np.float64(k)


@njit(cache=True, error_model="numpy")
def poisson(lam, r0, r1, r2, r3, p, sid, c, k0, k1):
    """Poisson count (float64) with mean ``lam`` for pixel ``p``; ``r0..r3`` are its block-0 words.

    ``p, sid, c, k0, k1`` (uint64) address the further blocks PTRS may need (SPEC §4).
    """
    if lam >= PTRS_MIN_LAM:
        loglam = math.log(lam)
        for block in range(PTRS_BLOCKS):
            if block > 0:
                r0, r1, r2, r3 = philox(p, sid, c, noise_counter_tag(block), k0, k1)
            k, ok = _ptrs_try(lam, loglam, r0, r1)
            if ok:
                return k
            k, ok = _ptrs_try(lam, loglam, r2, r3)
            if ok:
                return k
        r0, r1, _, _ = philox(p, sid, c, noise_counter_tag(PTRS_BLOCKS), k0, k1)
        z = np.float64(box_muller(r0, r1))
        return max(0.0, np.rint(lam + np.sqrt(lam) * z))
    if lam > 0:
        return _inversion(lam, r0)
    return 0.0
