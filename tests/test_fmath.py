"""sas_fast's float32 log/cos: within 2 ulp of float64 truth over every uniform (SPEC §4)."""

import numpy as np
import pytest
from scipy import stats

from sas_fast.fmath import box_muller, cos_turns, log_u
from sas_fast.philox import uniform_from_word

#: every word the generator can turn into a distinct uniform: r >> 9 takes 2**23 values
ALL_WORDS = np.arange(1 << 23, dtype=np.uint32) << np.uint32(9)


def ulp_error(approx, truth):
    ulp = np.spacing(np.abs(truth.astype(np.float32))).astype(np.float64)
    return np.abs(approx.astype(np.float64) - truth) / ulp


@pytest.fixture(scope="module")
def u64():
    return uniform_from_word(ALL_WORDS).astype(np.float64)


def test_log_within_2_ulp_exhaustive(u64):
    err = ulp_error(log_u(ALL_WORDS), np.log(u64))
    assert err.max() <= 2.0, f"max {err.max():.3f} ulp at u = {u64[err.argmax()]}"


def test_cos_within_2_ulp_exhaustive(u64):
    err = ulp_error(cos_turns(ALL_WORDS), np.cos(2 * np.pi * u64))
    assert err.max() <= 2.0, f"max {err.max():.3f} ulp at u = {u64[err.argmax()]}"


def test_low_bits_do_not_matter():
    words = np.array([0x12345600, 0x123457FF], np.uint32)  # same r >> 9
    assert log_u(words)[0] == log_u(words)[1]
    assert cos_turns(words)[0] == cos_turns(words)[1]


def test_box_muller_is_standard_normal():
    rng = np.random.default_rng(1)
    r0, r1 = rng.integers(0, 1 << 32, size=(2, 200_000), dtype=np.uint32)
    z = box_muller(r0, r1)
    assert z.dtype == np.float32
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1) < 0.01
    assert stats.kstest(z, "norm").pvalue > 0.01
