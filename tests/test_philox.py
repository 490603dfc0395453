"""Philox4x32-10 and the stream layout of SPEC §4."""

import numpy as np
import pytest

from sas_fast import philox4x32_10
from sas_fast.philox import seed_to_key, uniform_from_word

# Random123 known-answer vectors (SPEC §4).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize(("counter", "key", "expected"), KAT)
def test_known_answers(counter, key, expected):
    out = philox4x32_10(np.array(counter, np.uint32), np.array(key, np.uint32))
    assert out.dtype == np.uint32
    assert out.tolist() == list(expected)


def test_batched_matches_one_at_a_time():
    counters = np.array([c for c, _, _ in KAT], np.uint32)
    keys = np.array([k for _, k, _ in KAT], np.uint32)
    assert philox4x32_10(counters, keys).tolist() == [list(e) for _, _, e in KAT]
    # a single key broadcasts over many counters
    many = np.arange(40, dtype=np.uint32).reshape(10, 4)
    one_by_one = [philox4x32_10(c, keys[1]).tolist() for c in many]
    assert philox4x32_10(many, keys[1]).tolist() == one_by_one


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="counter"):
        philox4x32_10(np.zeros(3, np.uint32), np.zeros(2, np.uint32))
    with pytest.raises(TypeError, match="key"):
        philox4x32_10(np.zeros(4, np.uint32), np.zeros(2, np.int64))


def test_seed_to_key_splits_64_bits():
    assert seed_to_key(0x0123456789ABCDEF).tolist() == [0x89ABCDEF, 0x01234567]
    with pytest.raises(ValueError, match="seed"):
        seed_to_key(-1)
    with pytest.raises(ValueError, match="seed"):
        seed_to_key(1 << 64)


def test_uniform_is_open_interval_and_exact():
    words = np.array([0, 511, 512, 0xFFFFFFFF], np.uint32)
    u = uniform_from_word(words)
    assert u.dtype == np.float32
    assert u.tolist() == [2.0**-24, 2.0**-24, 3 * 2.0**-24, 1 - 2.0**-24]
