"""The Numba backend's random-number building blocks equal the NumPy definitions bit for bit (SPEC §4).

Philox words, ``log_u`` and ``cos_turns`` over every uniform the generator can produce, and
Box–Muller normals over a large sample of word pairs: any difference here would make the
Numba noise differ from the reference's.
"""

import numpy as np
import pytest
from numba import njit

from sas_fast.backends._numba_rng import box_muller, cos_turns, log_u, philox
from sas_fast.fmath import box_muller as np_box_muller
from sas_fast.fmath import cos_turns as np_cos_turns
from sas_fast.fmath import log_u as np_log_u
from sas_fast.philox import philox4x32_10

#: every word the generator can turn into a distinct uniform: r >> 9 takes 2**23 values
ALL_WORDS = np.arange(1 << 23, dtype=np.uint32) << np.uint32(9)


@njit(error_model="numpy")
def _logs(words, out):
    for k in range(words.shape[0]):
        out[k] = log_u(np.uint64(words[k]))


@njit(error_model="numpy")
def _coss(words, out):
    for k in range(words.shape[0]):
        out[k] = cos_turns(np.uint64(words[k]))


@njit(error_model="numpy")
def _normals(r0, r1, out):
    for k in range(r0.shape[0]):
        out[k] = box_muller(np.uint64(r0[k]), np.uint64(r1[k]))


@njit(error_model="numpy")
def _philox_words(counters, key, out):
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for k in range(counters.shape[0]):
        c = counters[k]
        w = philox(np.uint64(c[0]), np.uint64(c[1]), np.uint64(c[2]), np.uint64(c[3]), k0, k1)
        for j in range(4):
            out[k, j] = w[j]


def assert_bits_equal(a, b):
    """Equal as IEEE bit patterns (distinguishes -0.0 from 0.0, unlike ==)."""
    np.testing.assert_array_equal(a.view(np.uint32), b.view(np.uint32))


@pytest.mark.parametrize(
    ("numba_fn", "numpy_fn"), [(_logs, np_log_u), (_coss, np_cos_turns)], ids=["log_u", "cos_turns"]
)
def test_log_and_cos_bit_exact_over_every_uniform(numba_fn, numpy_fn):
    out = np.empty(ALL_WORDS.shape, np.float32)
    numba_fn(ALL_WORDS, out)
    assert_bits_equal(out, numpy_fn(ALL_WORDS))


def test_box_muller_bit_exact_on_4m_word_pairs():
    rng = np.random.default_rng(11)
    words = rng.integers(0, 1 << 32, size=(1 << 22, 2), dtype=np.uint64).astype(np.uint32)
    words[:4] = [[0, 0], [0xFFFFFFFF, 0xFFFFFFFF], [0x1FF, 0x200], [0x80000000, 0x40000000]]  # extremes
    out = np.empty(len(words), np.float32)
    _normals(words[:, 0], words[:, 1], out)
    assert_bits_equal(out, np_box_muller(words[:, 0], words[:, 1]))


def test_philox_words_match_reference_including_known_answers():
    rng = np.random.default_rng(12)
    counters = rng.integers(0, 1 << 32, size=(4096, 4), dtype=np.uint64).astype(np.uint32)
    key = np.array([0xA4093822, 0x299F31D0], np.uint32)
    counters[0] = [0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344]
    out = np.empty_like(counters)
    _philox_words(counters, key, out)
    np.testing.assert_array_equal(out, philox4x32_10(counters, key))
    assert out[0].tolist() == [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]  # Random123 known answer
