"""sas_fast's own float32 ``log`` and ``cos`` for Box–Muller normals (SPEC §4), defined once.

Both functions take a Philox word ``r`` (uint32) and work on the uniform it encodes,
``u = k * 2**-24`` with the odd integer ``k = ((r >> 9) << 1) | 1``.  They use only IEEE float32
``+ - * /``, correctly rounded ``sqrt`` and integer bit operations, never a fused multiply-add, so
NumPy, Numba and CUDA get the same bits.  The coefficients below are the single source: the
Numba kernels import them and the CUDA loader passes them to the compiler as ``-D`` defines.

``log_u(r)`` = log(u): with ``k = m * 2**e``, ``m`` in (sqrt(1/2), sqrt(2)], ``f = m - 1`` (exact),
``s = f / (2 + f)``, log(m) = f - hfsq + s*(hfsq + R(s*s)), the Lg polynomial of FreeBSD's
``e_logf.c``; the exponent ``e - 24`` scales a two-part ln 2.  Max error over all 2**23 ``u``:
see ``tests/test_fmath.py`` (asserted <= 2 ulp of the float64 truth).

``cos_turns(r)`` = cos(2*pi*u): the angle is reduced *in turns* on the integer ``k`` (exact):
``n`` = nearest quarter turn, ``t = (k - n * 2**22) * 2**-24`` in [-1/8, 1/8); then
cos or sin of ``2*pi*t`` by Taylor polynomials in ``t`` (the 2*pi is folded into the
coefficients, so ``2*pi*u`` is never rounded) and the quadrant's sign.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["COEFFS", "box_muller", "cos_turns", "log_u"]

_f32 = np.float32

#: Every float32 constant of the normal sampler, by name (CUDA gets them as ``-DSAS_<NAME>=...``).
COEFFS: dict[str, np.float32] = {
    "SQRT2": _f32(math.sqrt(2.0)),
    "LN2_HI": _f32(float.fromhex("0x1.62e300p-1")),  # 0x3f317180
    "LN2_LO": _f32(float.fromhex("0x1.2fefa2p-17")),  # 0x3717f7d1
    "LG1": _f32(float.fromhex("0xaaaaaa.0p-24")),
    "LG2": _f32(float.fromhex("0xccce13.0p-25")),
    "LG3": _f32(float.fromhex("0x91e9ee.0p-25")),
    "LG4": _f32(float.fromhex("0xf89e26.0p-26")),
}
_TWO_PI = 2.0 * math.pi
for _i in range(5):
    # sin(2 pi t) = sum S_{2i+1} t^(2i+1), cos(2 pi t) = sum C_{2i} t^(2i), Taylor in t
    COEFFS[f"S{2 * _i + 1}"] = _f32((-1) ** _i * _TWO_PI ** (2 * _i + 1) / math.factorial(2 * _i + 1))
    COEFFS[f"C{2 * _i + 2}"] = _f32((-1) ** (_i + 1) * _TWO_PI ** (2 * _i + 2) / math.factorial(2 * _i + 2))
del _i


def _odd24(r: np.ndarray) -> np.ndarray:
    r = np.asarray(r, dtype=np.uint32)
    return ((r >> np.uint32(9)) << np.uint32(1)) | np.uint32(1)


def log_u(r: np.ndarray) -> np.ndarray:
    """float32 log(u) of the uniform encoded by Philox words ``r`` (see module docstring)."""
    c = COEFFS
    k = _odd24(r)
    kf = k.astype(np.float32)  # exact: k < 2**24
    e = (kf.view(np.uint32) >> np.uint32(23)).astype(np.int32) - 127
    m = (kf.view(np.uint32) & np.uint32(0x007FFFFF) | np.uint32(0x3F800000)).view(np.float32)
    big = m > c["SQRT2"]
    m = np.where(big, m * _f32(0.5), m)
    e = e + big
    f = m - _f32(1.0)
    s = f / (_f32(2.0) + f)
    z = s * s
    w = z * z
    r_poly = z * (c["LG1"] + w * c["LG3"]) + w * (c["LG2"] + w * c["LG4"])
    hfsq = _f32(0.5) * f * f
    dk = (e - 24).astype(np.float32)
    return dk * c["LN2_HI"] - ((hfsq - (s * (hfsq + r_poly) + dk * c["LN2_LO"])) - f)


def cos_turns(r: np.ndarray) -> np.ndarray:
    """float32 cos(2*pi*u) of the uniform encoded by Philox words ``r`` (see module docstring)."""
    c = COEFFS
    k = _odd24(r).astype(np.int32)
    n = (k + (1 << 21)) >> 22  # nearest quarter turn, 0..4
    t = (k - (n << 22)).astype(np.float32) * _f32(2.0**-24)
    t2 = t * t
    sin_t = t * (c["S1"] + t2 * (c["S3"] + t2 * (c["S5"] + t2 * (c["S7"] + t2 * c["S9"]))))
    cos_t = _f32(1.0) + t2 * (c["C2"] + t2 * (c["C4"] + t2 * (c["C6"] + t2 * (c["C8"] + t2 * c["C10"]))))
    q = n & 3
    out = np.where((q & 1) == 0, cos_t, sin_t)
    # quadrants 1 and 2 are negative: cos(pi/2 + x) = -sin x, cos(pi + x) = -cos x
    return np.where((q == 1) | (q == 2), -out, out)


def box_muller(r0: np.ndarray, r1: np.ndarray) -> np.ndarray:
    """Standard normal float32 ``sqrt(-2 log u0) * cos(2 pi u1)`` from two Philox words."""
    return np.sqrt(_f32(-2.0) * log_u(r0)) * cos_turns(r1)
