"""Philox4x32-10 counter-based random numbers (SPEC §4), vectorised NumPy.

One call maps a 128-bit counter ``(c0, c1, c2, c3)`` and a 64-bit key ``(k0, k1)`` to four
uint32 words (Salmon et al., SC'11; the Random123 library).  Every backend computes the same
words; this module is their reference and also the host-side parameter stream (SPEC §5).

Stream layout (SPEC §4):

* key: ``(seed & 0xffffffff, seed >> 32)``;
* noise block ``j`` of canvas pixel ``p``, sample id ``sid``, channel ``c``:
  counter ``(p, sid, c, NOISE_TAG | j)``;
* parameter slot ``q`` of sample id ``sid``: counter ``(q, sid, 0, PARAM_TAG)``.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "NOISE_TAG",
    "PARAM_TAG",
    "philox4x32_10",
    "seed_to_key",
    "uniform_from_word",
]

PHILOX_M0 = np.uint64(0xD2511F53)
PHILOX_M1 = np.uint64(0xCD9E8D57)
PHILOX_W0 = np.uint32(0x9E3779B9)
PHILOX_W1 = np.uint32(0xBB67AE85)
PHILOX_ROUNDS = 10

NOISE_TAG = 1 << 16
PARAM_TAG = 2 << 16

_LOW32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)


def _mulhilo(a: np.ndarray, m: np.uint64) -> tuple[np.ndarray, np.ndarray]:
    """The 64-bit product of uint32 ``a`` and ``m`` as (high word, low word)."""
    product = a.astype(np.uint64) * m
    return (product >> _SHIFT32).astype(np.uint32), (product & _LOW32).astype(np.uint32)


def philox4x32_10(counter: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Philox4x32-10 of ``counter`` (uint32 ``(..., 4)``) under ``key`` (uint32 ``(2,)`` or ``(..., 2)``).

    Returns uint32 ``(..., 4)``; counter and key broadcast against each other.
    """
    counter = np.asarray(counter)
    key = np.asarray(key)
    for name, arr, width in (("counter", counter, 4), ("key", key, 2)):
        if arr.ndim == 0 or arr.shape[-1] != width:
            raise ValueError(f"{name}: expected shape (..., {width}), got {arr.shape}")
        if arr.dtype != np.uint32:
            raise TypeError(f"{name}: expected dtype uint32, got {arr.dtype}")
    c0, c1, c2, c3 = (counter[..., i] for i in range(4))
    k0, k1 = key[..., 0], key[..., 1]
    c0, c1, c2, c3, k0, k1 = np.broadcast_arrays(c0, c1, c2, c3, k0, k1)
    k0, k1 = k0.copy(), k1.copy()
    with np.errstate(over="ignore"):
        for rnd in range(PHILOX_ROUNDS):
            hi0, lo0 = _mulhilo(c0, PHILOX_M0)
            hi1, lo1 = _mulhilo(c2, PHILOX_M1)
            c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
            if rnd + 1 < PHILOX_ROUNDS:
                k0 = k0 + PHILOX_W0
                k1 = k1 + PHILOX_W1
    return np.stack([c0, c1, c2, c3], axis=-1)


def seed_to_key(seed: int) -> np.ndarray:
    """The Philox key of a user's 64-bit ``seed``: ``(seed & 0xffffffff, seed >> 32)``."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        # 1.5, "7", True or 1e19 would be truncated or converted: a seed is never guessed
        raise TypeError(f"seed: expected an integer in [0, 2**64), got {seed!r} ({type(seed).__name__})")
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise ValueError(f"seed: expected an integer in [0, 2**64), got {seed}")
    return np.array([seed & 0xFFFFFFFF, seed >> 32], dtype=np.uint32)


def uniform_from_word(r: np.ndarray) -> np.ndarray:
    """Uniform float32 in (0, 1) from uint32 words: ``((r >> 9) * 2 + 1) * 2**-24`` (exact)."""
    odd = ((np.asarray(r, dtype=np.uint32) >> np.uint32(9)) << np.uint32(1)) | np.uint32(1)
    return odd.astype(np.float32) * np.float32(2.0**-24)
