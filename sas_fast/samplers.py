"""Noise samplers of SPEC §4 in vectorised NumPy: the reference the kernels are checked against.

Each function takes the Philox coordinates of the pixels to draw for (flat canvas index ``p``,
channel ``c``) together with the sample's ``sid`` and the key, and returns one draw per pixel.
"""

from __future__ import annotations

import numpy as np

from .fmath import box_muller
from .philox import NOISE_TAG, philox4x32_10, uniform_from_word

__all__ = ["noise_words", "normal", "poisson"]

#: PTRS takes uniform pairs from this many blocks before the normal approximation (SPEC §4).
PTRS_BLOCKS = 64
INVERSION_MAX_K = 1000
#: Below this mean Poisson uses inversion, at or above it PTRS.
PTRS_MIN_LAM = 10.0

# Stirling series of NumPy's legacy random_loggam.
_LOGGAM_A = (
    8.333333333333333e-02,
    -2.777777777777778e-03,
    7.936507936507937e-04,
    -5.952380952380952e-04,
    8.417508417508418e-04,
    -1.917526917526918e-03,
    6.410256410256410e-03,
    -2.955065359477124e-02,
    1.796443723688307e-01,
    -1.39243221690590e00,
)
_LOG_2PI = 1.8378770664093453


def noise_words(p: np.ndarray, sid: int, c: int, key: np.ndarray, block: int) -> np.ndarray:
    """The four words of noise block ``block`` for canvas pixels ``p``: counter ``(p, sid, c, NOISE_TAG | block)``."""
    counter = np.empty((len(p), 4), dtype=np.uint32)
    counter[:, 0] = p
    counter[:, 1] = sid
    counter[:, 2] = c
    counter[:, 3] = NOISE_TAG | block
    return philox4x32_10(counter, key)


def normal(p: np.ndarray, sid: int, c: int, key: np.ndarray) -> np.ndarray:
    """Standard normals (float32) from block 0: Box–Muller on words 0 and 1."""
    words = noise_words(p, sid, c, key, 0)
    return box_muller(words[:, 0], words[:, 1])


def loggam(x: np.ndarray) -> np.ndarray:
    """log Gamma(x) for x >= 1 by NumPy's legacy Stirling series (``random_loggam``), float64."""
    x = np.asarray(x, dtype=np.float64)
    n = np.where(x < 7.0, np.floor(7.0 - x), 0.0)
    x0 = x + n
    x2 = (1.0 / x0) * (1.0 / x0)
    gl0 = np.full_like(x0, _LOGGAM_A[9])
    for a in _LOGGAM_A[8::-1]:
        gl0 = gl0 * x2 + a
    gl = gl0 / x0 + 0.5 * _LOG_2PI + (x0 - 0.5) * np.log(x0) - x0
    for _ in range(int(n.max(initial=0))):  # gl -= log(x0 - 1); x0 -= 1, n times per element
        step = n > 0
        gl = np.where(step, gl - np.log(np.where(step, x0 - 1.0, 1.0)), gl)
        x0 = np.where(step, x0 - 1.0, x0)
        n = n - step
    return np.where((x == 1.0) | (x == 2.0), 0.0, gl)


def poisson(lam: np.ndarray, p: np.ndarray, sid: int, c: int, key: np.ndarray) -> np.ndarray:
    """Poisson counts with means ``lam`` (float64) for canvas pixels ``p`` (SPEC §4), as float64.

    The counts are whole numbers held in float64, as the Numba sampler computes them
    (``_numba_poisson.poisson``): an integer type would wrap for means beyond 2**63 (a ``peak`` of
    1e30 gives means near 1e30; int64 counts came out as -2**63 and the pixel as 0).  Every count
    below 2**53 is exact; above, the count is PTRS's float64 candidate, as in the kernels.
    """
    lam = np.asarray(lam, dtype=np.float64)
    k = np.zeros(lam.shape, dtype=np.float64)

    small = np.flatnonzero((lam > 0) & (lam < PTRS_MIN_LAM))
    if small.size:
        k[small] = _inversion(lam[small], noise_words(p[small], sid, c, key, 0)[:, 0])

    pending = np.flatnonzero(lam >= PTRS_MIN_LAM)
    for block in range(PTRS_BLOCKS):
        if not pending.size:
            break
        words = noise_words(p[pending], sid, c, key, block)
        for pair in ((0, 1), (2, 3)):
            if not pending.size:
                break
            got, accepted = _ptrs_try(lam[pending], words[:, pair[0]], words[:, pair[1]])
            k[pending[accepted]] = got[accepted]
            pending, words = pending[~accepted], words[~accepted]
    if pending.size:
        words = noise_words(p[pending], sid, c, key, PTRS_BLOCKS)
        z = box_muller(words[:, 0], words[:, 1]).astype(np.float64)
        lp = lam[pending]
        k[pending] = np.maximum(0.0, np.rint(lp + np.sqrt(lp) * z))
    return k


def _inversion(lam: np.ndarray, word: np.ndarray) -> np.ndarray:
    """Inversion by sequential search for lam < 10, u from ``word``, stopping at k = 1000 (float64 counts)."""
    u = uniform_from_word(word).astype(np.float64)
    prob = np.exp(-lam)
    cdf = prob.copy()
    k = np.zeros(lam.shape, dtype=np.float64)
    for step in range(1, INVERSION_MAX_K + 1):
        going = u > cdf
        if not going.any():
            break
        k = np.where(going, step, k)
        prob = np.where(going, prob * (lam / step), prob)  # SPEC: p *= lam / k
        cdf = np.where(going, cdf + prob, cdf)
    return k


def _ptrs_try(lam: np.ndarray, word_u: np.ndarray, word_v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One round of Hörmann's PTRS (NumPy's legacy ``random_poisson_ptrs``): (candidate k as float64, accepted)."""
    slam = np.sqrt(lam)
    loglam = np.log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2)

    u = uniform_from_word(word_u).astype(np.float64) - 0.5
    v = uniform_from_word(word_v).astype(np.float64)
    us = 0.5 - np.abs(u)
    k = np.floor((2 * a / us + b) * u + lam + 0.43)
    quick = (us >= 0.07) & (v <= vr)
    rejected = (k < 0) | ((us < 0.013) & (v > us))
    kk = np.maximum(k, 0.0)
    with np.errstate(divide="ignore"):
        lhs = np.log(v) + np.log(invalpha) - np.log(a / (us * us) + b)
    rhs = -lam + kk * loglam - loggam(kk + 1)
    accepted = quick | (~rejected & (lhs <= rhs))
    return k, accepted

