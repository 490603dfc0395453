// sas_fast device random numbers (SPEC §4): Philox4x32-10, uniforms, Box-Muller normals with
// sas_fast's own float32 log/cos (sas_fast/fmath.py), and the Poisson sampler of
// sas_fast/samplers.py.  Every function here reproduces its NumPy twin step by step, in the same
// order of IEEE operations, so normals are bit-identical to the reference.  That needs:
//   * no fused multiply-add: compile with --fmad=false (NVRTC, nvcc) or -ffp-contract=off (g++);
//   * IEEE division and square root (--prec-div=true --prec-sqrt=true, the NVRTC/nvcc defaults).
// The constants are NOT written here: sas_fast.backends.cuda.compile_defines() passes them as -D
// defines from their single Python source (fmath.COEFFS, samplers, philox, plan.KINDS).
//
// Plain C++ plus CUDA built-ins only, no standard headers: the same text compiles under NVRTC,
// nvcc, and g++ through tests/cuda_host/cuda_shim.h (which is how the CPU tests run it).
#pragma once

#if !(defined(SAS_SQRT2) && defined(SAS_LN2_HI) && defined(SAS_LN2_LO) && defined(SAS_LG1) &&     \
      defined(SAS_LG2) && defined(SAS_LG3) && defined(SAS_LG4) && defined(SAS_S1) && defined(SAS_S3) && \
      defined(SAS_S5) && defined(SAS_S7) && defined(SAS_S9) && defined(SAS_C2) && defined(SAS_C4) &&    \
      defined(SAS_C6) && defined(SAS_C8) && defined(SAS_C10))
#error "sas_fast: the float32 constants of sas_fast.fmath.COEFFS are missing; pass them as -DSAS_<NAME>=0x<bits>u (sas_fast.backends.cuda.compile_defines() does)"
#endif
#if !(defined(SAS_LOGGAM_A0) && defined(SAS_LOGGAM_A9) && defined(SAS_LOG_2PI) && defined(SAS_PTRS_BLOCKS) && \
      defined(SAS_INVERSION_MAX_K) && defined(SAS_PTRS_MIN_LAM) && defined(SAS_NOISE_TAG))
#error "sas_fast: the sampler constants of sas_fast.samplers / sas_fast.philox are missing (sas_fast.backends.cuda.compile_defines() passes them)"
#endif

// The float32 constant SAS_<NAME>, given as its IEEE bit pattern (exact, whatever the compiler's
// decimal parsing).
#define SAS_COEF(NAME) __uint_as_float(SAS_##NAME)

namespace sas {

typedef unsigned int u32;
typedef int i32;
typedef long long i64;
typedef unsigned long long u64;

// ------------------------------------------------------------------------------- Philox4x32-10

struct Words {
    u32 w0, w1, w2, w3;
};

// Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1) (Salmon et al., SC'11).
__device__ __forceinline__ Words philox4x32_10(u32 c0, u32 c1, u32 c2, u32 c3, u32 k0, u32 k1) {
    const u32 m0 = 0xD2511F53u, m1 = 0xCD9E8D57u;
#pragma unroll
    for (int round = 0; round < 10; ++round) {
        const u32 hi0 = __umulhi(m0, c0), lo0 = m0 * c0;
        const u32 hi1 = __umulhi(m1, c2), lo1 = m1 * c2;
        const u32 n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
        k0 += 0x9E3779B9u;  // the key bump after the last round is never used
        k1 += 0xBB67AE85u;
    }
    Words out = {c0, c1, c2, c3};
    return out;
}

// The words of noise block `block` for canvas pixel p, sample id sid, channel c (SPEC §4).
__device__ __forceinline__ Words noise_words(u32 p, u32 sid, u32 c, u32 block, u32 k0, u32 k1) {
    return philox4x32_10(p, sid, c, (u32)SAS_NOISE_TAG | block, k0, k1);
}

// The odd 24-bit integer k of the uniform u = k * 2^-24 encoded by word r.
__device__ __forceinline__ u32 odd24(u32 r) { return ((r >> 9) << 1) | 1u; }

// Uniform in (0, 1) from a word, exact in float64 (philox.uniform_from_word, widened).
__device__ __forceinline__ double uniform64(u32 r) { return (double)odd24(r) * 0x1p-24; }

// ------------------------------------------------------------------------------- fmath.py

// float32 log(u) (fmath.log_u): FreeBSD e_logf.c's kernel on the exactly known mantissa of k.
__device__ __forceinline__ float log_u(u32 r) {
    const float kf = (float)odd24(r);  // exact: k < 2^24
    const u32 bits = __float_as_uint(kf);
    i32 e = (i32)(bits >> 23) - 127;
    float m = __uint_as_float((bits & 0x007FFFFFu) | 0x3F800000u);
    if (m > SAS_COEF(SQRT2)) {
        m = m * 0.5f;
        e += 1;
    }
    const float f = m - 1.0f;
    const float s = f / (2.0f + f);
    const float z = s * s;
    const float w = z * z;
    const float r_poly = z * (SAS_COEF(LG1) + w * SAS_COEF(LG3)) + w * (SAS_COEF(LG2) + w * SAS_COEF(LG4));
    const float hfsq = 0.5f * f * f;
    const float dk = (float)(e - 24);
    return dk * SAS_COEF(LN2_HI) - ((hfsq - (s * (hfsq + r_poly) + dk * SAS_COEF(LN2_LO))) - f);
}

// float32 cos(2 pi u) (fmath.cos_turns): exact reduction in turns on k, Taylor polynomials in t.
__device__ __forceinline__ float cos_turns(u32 r) {
    const i32 k = (i32)odd24(r);
    const i32 n = (k + (1 << 21)) >> 22;  // nearest quarter turn, 0..4
    const float t = (float)(k - (n << 22)) * 0x1p-24f;
    const float t2 = t * t;
    const float sin_t =
        t * (SAS_COEF(S1) + t2 * (SAS_COEF(S3) + t2 * (SAS_COEF(S5) + t2 * (SAS_COEF(S7) + t2 * SAS_COEF(S9)))));
    const float cos_t =
        1.0f + t2 * (SAS_COEF(C2) + t2 * (SAS_COEF(C4) + t2 * (SAS_COEF(C6) + t2 * (SAS_COEF(C8) + t2 * SAS_COEF(C10)))));
    const i32 q = n & 3;
    const float v = (q & 1) == 0 ? cos_t : sin_t;
    return (q == 1 || q == 2) ? -v : v;  // cos(pi/2 + x) = -sin x, cos(pi + x) = -cos x
}

// Standard normal sqrt(-2 log u0) * cos(2 pi u1) from two words (fmath.box_muller).
__device__ __forceinline__ float box_muller(u32 r0, u32 r1) {
    return sqrtf(-2.0f * log_u(r0)) * cos_turns(r1);
}

// The standard normal of canvas pixel p, sample sid, channel c: block 0, words 0 and 1.
__device__ __forceinline__ float normal(u32 p, u32 sid, u32 c, u32 k0, u32 k1) {
    const Words w = noise_words(p, sid, c, 0u, k0, k1);
    return box_muller(w.w0, w.w1);
}

// ------------------------------------------------------------------------------- samplers.py

// log Gamma(x), x >= 1, by NumPy's legacy Stirling series (samplers.loggam), float64.
__device__ __forceinline__ double loggam(double x) {
    if (x == 1.0 || x == 2.0) return 0.0;
    const double a[10] = {SAS_LOGGAM_A0, SAS_LOGGAM_A1, SAS_LOGGAM_A2, SAS_LOGGAM_A3, SAS_LOGGAM_A4,
                          SAS_LOGGAM_A5, SAS_LOGGAM_A6, SAS_LOGGAM_A7, SAS_LOGGAM_A8, SAS_LOGGAM_A9};
    double n = x < 7.0 ? floor(7.0 - x) : 0.0;
    double x0 = x + n;
    const double x2 = (1.0 / x0) * (1.0 / x0);
    double gl0 = a[9];
#pragma unroll
    for (int i = 8; i >= 0; --i) gl0 = gl0 * x2 + a[i];
    double gl = gl0 / x0 + 0.5 * SAS_LOG_2PI + (x0 - 0.5) * log(x0) - x0;
    for (; n > 0.0; n -= 1.0) {
        gl = gl - log(x0 - 1.0);
        x0 = x0 - 1.0;
    }
    return gl;
}

// Poisson by inversion (lam < SAS_PTRS_MIN_LAM): sequential search in float64 (samplers._inversion).
// Counts are whole numbers held in double, as in samplers.poisson: a mean near 1e30 (peak 1e30)
// gives a count near 1e30, which no integer type holds.
__device__ __forceinline__ double poisson_inversion(double lam, u32 word) {
    const double u = uniform64(word);
    double prob = exp(-lam);
    double cdf = prob;
    double k = 0.0;
    for (i32 step = 1; step <= SAS_INVERSION_MAX_K && u > cdf; ++step) {
        k = (double)step;
        prob = prob * (lam / (double)step);  // SPEC §4: p *= lam / k
        cdf = cdf + prob;
    }
    return k;
}

// Hörmann's PTRS setup for one mean (NumPy's legacy random_poisson_ptrs; samplers._ptrs_try).
struct Ptrs {
    double lam, loglam, a, b, invalpha, vr;
};

__device__ __forceinline__ Ptrs ptrs_setup(double lam) {
    Ptrs s;
    const double slam = sqrt(lam);
    s.lam = lam;
    s.loglam = log(lam);
    s.b = 0.931 + 2.53 * slam;
    s.a = -0.059 + 0.02483 * s.b;
    s.invalpha = 1.1239 + 1.1328 / (s.b - 3.4);
    s.vr = 0.9277 - 3.6224 / (s.b - 2.0);
    return s;
}

// One PTRS round on words (wu, wv): true and *k set if the candidate is accepted.
__device__ __forceinline__ bool ptrs_try(const Ptrs& s, u32 wu, u32 wv, double* k) {
    const double u = uniform64(wu) - 0.5;
    const double v = uniform64(wv);
    const double us = 0.5 - fabs(u);
    const double kd = floor((2.0 * s.a / us + s.b) * u + s.lam + 0.43);
    *k = kd;
    if (us >= 0.07 && v <= s.vr) return true;
    if (kd < 0.0 || (us < 0.013 && v > us)) return false;
    const double lhs = log(v) + log(s.invalpha) - log(s.a / (us * us) + s.b);
    const double rhs = -s.lam + kd * s.loglam - loggam(kd + 1.0);
    return lhs <= rhs;
}

// Poisson count with mean lam for canvas pixel p, sample sid, channel c (SPEC §4,
// samplers.poisson): 0 unless lam > 0; inversion below SAS_PTRS_MIN_LAM; else PTRS on word
// pairs (0,1), (2,3) of blocks 0.. SAS_PTRS_BLOCKS-1; else the rounded normal approximation.
__device__ __forceinline__ double poisson(double lam, u32 p, u32 sid, u32 c, u32 k0, u32 k1) {
    if (!(lam > 0.0)) return 0.0;
    if (lam < SAS_PTRS_MIN_LAM) return poisson_inversion(lam, noise_words(p, sid, c, 0u, k0, k1).w0);
    const Ptrs s = ptrs_setup(lam);
    double k;
    for (u32 block = 0; block < (u32)SAS_PTRS_BLOCKS; ++block) {
        const Words w = noise_words(p, sid, c, block, k0, k1);
        if (ptrs_try(s, w.w0, w.w1, &k) || ptrs_try(s, w.w2, w.w3, &k)) return k;
    }
    const Words w = noise_words(p, sid, c, (u32)SAS_PTRS_BLOCKS, k0, k1);
    const double z = (double)box_muller(w.w0, w.w1);
    const double approx = rint(lam + sqrt(lam) * z);
    return approx > 0.0 ? approx : 0.0;
}

}  // namespace sas
