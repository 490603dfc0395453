"""Numba device functions for SPEC §4 random numbers: Philox4x32-10, uniforms, float32 normals.

These are the scalar building blocks of the Numba backend's noise loops.  They are written so
that LLVM vectorises a loop calling them over consecutive counters:

* Philox words are carried in ``uint64`` values that always hold 32-bit numbers (every result is
  masked with ``& 0xffffffff``), so each 32x32->64 product is one ``vpmuludq``, not a 64-bit
  multiply;
* ``log_u`` / ``cos_turns`` / ``box_muller`` are the exact algorithms of :mod:`sas_fast.fmath`
  (float32 ``+ - * /``, ``sqrt`` and integer bit operations, constants imported from
  ``fmath.COEFFS``), so the normals are bit-identical to the NumPy reference.  Every float
  constant is a ``np.float32`` global: a Python float literal would promote the arithmetic to
  float64 and change the bits.

Callers must compile with ``error_model="numpy"``: Python's error model adds a zero-division check
to every float division, which blocks vectorisation.  The constants are baked into the machine
code; ``_numba_cache`` makes an edit of ``fmath.py`` or ``philox.py`` recompile it.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from ..fmath import COEFFS
from ..philox import NOISE_TAG, PHILOX_M0, PHILOX_M1, PHILOX_ROUNDS, PHILOX_W0, PHILOX_W1
from . import _numba_cache  # noqa: F401  (registers the cache locator before any cache=True function)

__all__ = [
    "bits_of_f64",
    "box_muller",
    "cos_turns",
    "f64_of_bits",
    "log_u",
    "noise_counter_tag",
    "param_words",
    "philox",
    "uniform64",
]

_u64 = np.uint64
_f32 = np.float32

_MASK32 = _u64(0xFFFFFFFF)
_SHIFT32 = _u64(32)
_M0 = _u64(PHILOX_M0)
_M1 = _u64(PHILOX_M1)
_W0 = _u64(PHILOX_W0)
_W1 = _u64(PHILOX_W1)
_NOISE_TAG = _u64(NOISE_TAG)

_SQRT2 = COEFFS["SQRT2"]
_LN2_HI = COEFFS["LN2_HI"]
_LN2_LO = COEFFS["LN2_LO"]
_LG1, _LG2, _LG3, _LG4 = (COEFFS[f"LG{i}"] for i in (1, 2, 3, 4))
_S1, _S3, _S5, _S7, _S9 = (COEFFS[f"S{i}"] for i in (1, 3, 5, 7, 9))
_C2, _C4, _C6, _C8, _C10 = (COEFFS[f"C{i}"] for i in (2, 4, 6, 8, 10))
_ONE = _f32(1.0)
_TWO = _f32(2.0)
_HALF = _f32(0.5)
_MINUS_TWO = _f32(-2.0)
_TWO_M24 = _f32(2.0**-24)
_TWO_M24_F64 = 2.0**-24


def _bitcast(source, target, ir_target, doc):
    """An intrinsic reinterpreting the IEEE bits of a ``source`` value as ``target`` (a register
    bitcast, which vectorises)."""

    def cast(typingctx, x):
        if x != source:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], ir_target)

        return target(source), codegen

    cast.__doc__ = doc
    return intrinsic(cast)


_bits_of_f32 = _bitcast(types.float32, types.uint32, ir.IntType(32), "The IEEE bits of a float32 as uint32.")
_f32_of_bits = _bitcast(types.uint32, types.float32, ir.FloatType(), "The float32 whose IEEE bits are the uint32.")
bits_of_f64 = _bitcast(types.float64, types.uint64, ir.IntType(64), "The IEEE bits of a float64 as uint64.")
f64_of_bits = _bitcast(types.uint64, types.float64, ir.DoubleType(), "The float64 whose IEEE bits are the uint64.")


@njit(cache=True, inline="always", error_model="numpy")
def philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter ``(c0..c3)`` under key ``(k0, k1)``; all uint64 holding 32-bit values."""
    for _ in range(PHILOX_ROUNDS):
        p0 = c0 * _M0
        p1 = c2 * _M1
        c0, c1, c2, c3 = (p1 >> _SHIFT32) ^ c1 ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c3 ^ k1, p0 & _MASK32
        k0 = (k0 + _W0) & _MASK32
        k1 = (k1 + _W1) & _MASK32
    return c0, c1, c2, c3


@njit(cache=True, error_model="numpy")
def param_words(sids, slot, tag, k0, k1, out):
    """``out[i]`` = the four Philox words of counter ``(slot, sids[i], 0, tag)``: the parameter
    stream of SPEC §4-5 (``sas_fast.plan.param_words``), one compiled call for a few samples."""
    for i in range(sids.shape[0]):
        w0, w1, w2, w3 = philox(_u64(slot), _u64(sids[i]), _u64(0), _u64(tag), _u64(k0), _u64(k1))
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = w0, w1, w2, w3


@njit(cache=True, inline="always", error_model="numpy")
def noise_counter_tag(block):
    """Counter word 3 of noise block ``block`` (SPEC §4): ``NOISE_TAG | block`` as uint64."""
    return _NOISE_TAG | _u64(block)


@njit(cache=True, inline="always", error_model="numpy")
def _odd24(r):
    """The odd integer ``k = ((r >> 9) << 1) | 1`` of a Philox word (u = k * 2**-24)."""
    return ((r >> _u64(9)) << _u64(1)) | _u64(1)


@njit(cache=True, inline="always", error_model="numpy")
def uniform64(r):
    """The uniform of SPEC §4 from word ``r`` (float32-exact), as float64 for the Poisson sampler."""
    return np.float64(_odd24(r)) * _TWO_M24_F64


@njit(cache=True, inline="always", error_model="numpy")
def log_u(r):
    """float32 log(u) of word ``r``: :func:`sas_fast.fmath.log_u`, operation for operation."""
    bits = _bits_of_f32(_f32(_odd24(r)))  # exact: k < 2**24
    e = np.int32(bits >> np.uint32(23)) - np.int32(127)
    m = _f32_of_bits(np.uint32((bits & np.uint32(0x007FFFFF)) | np.uint32(0x3F800000)))
    big = m > _SQRT2
    m = m * _HALF if big else m
    e = e + np.int32(1) if big else e
    f = m - _ONE
    s = f / (_TWO + f)
    z = s * s
    w = z * z
    r_poly = z * (_LG1 + w * _LG3) + w * (_LG2 + w * _LG4)
    hfsq = _HALF * f * f
    dk = _f32(e - np.int32(24))
    return dk * _LN2_HI - ((hfsq - (s * (hfsq + r_poly) + dk * _LN2_LO)) - f)


@njit(cache=True, inline="always", error_model="numpy")
def cos_turns(r):
    """float32 cos(2*pi*u) of word ``r``: :func:`sas_fast.fmath.cos_turns`, operation for operation."""
    k = np.int32(_odd24(r))
    n = (k + np.int32(1 << 21)) >> np.int32(22)  # nearest quarter turn
    t = _f32(k - (n << np.int32(22))) * _TWO_M24
    t2 = t * t
    sin_t = t * (_S1 + t2 * (_S3 + t2 * (_S5 + t2 * (_S7 + t2 * _S9))))
    cos_t = _ONE + t2 * (_C2 + t2 * (_C4 + t2 * (_C6 + t2 * (_C8 + t2 * _C10))))
    q = n & np.int32(3)
    out = cos_t if (q & np.int32(1)) == np.int32(0) else sin_t
    return -out if (q == np.int32(1) or q == np.int32(2)) else out


@njit(cache=True, inline="always", error_model="numpy")
def box_muller(r0, r1):
    """Standard normal float32 from two Philox words: :func:`sas_fast.fmath.box_muller`."""
    return np.sqrt(_MINUS_TWO * log_u(r0)) * cos_turns(r1)
