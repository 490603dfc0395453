// sas_fast CUDA kernels: rescale-and-paste (SPEC §2), noise inside the mask (SPEC §3-4), and the
// two fused in one pass (augment).  Each kernel computes exactly what sas_fast/backends/reference.py
// computes, pixel by pixel, in the same float32 operations (no FMA: see sas_random.cuh).
//
// Kernels (templates over image type T in {unsigned char, unsigned short, float} and mask type M in
// {bool, unsigned char, unsigned short, int}, the noise kernels also over POISSON: whether the
// instance can draw Poisson noise; instantiated by name expression, e.g.
// "sas_augment<unsigned char, bool, false>"):
//   sas_rescale_paste  geometry only (out_mask may be null when there is no mask)
//   sas_noise_in_mask  out = image with noise on the selected pixels
//   sas_augment        geometry, then noise on the selected pixels of the *output* mask
//   sas_area_taps      (not a template) the area tap tables of SPEC §2b, launched before a geometry
//                      kernel whose batch has samples with interpolation "area"
// each with one argument, a LaunchRecord passed by value (sas_fast/backends/cuda.py builds it).
//
// Work split: the batch's N*Ho*Wo canvas pixels are one flat range (64-bit indices); each thread
// takes runs of RUN = max(1, SAS_RUN_BYTES / sizeof(T)) consecutive pixels (grid-stride loop), so a
// one-channel image run is one wide store (uint8: 8 pixels, one 64-bit store with the default 8
// bytes) and a warp writes contiguous memory.  Per-sample parameters come from a
// small device array of SampleParams; addresses, sizes, strides, key and normalisation are the
// fields of the LaunchRecord.
// No shared memory and no __syncthreads: threads are independent (the CPU tests rely on that).
#include "sas_random.cuh"

#if !(defined(SAS_BLOCK_THREADS) && defined(SAS_RUN_BYTES) && defined(SAS_MIN_BLOCKS))
#error "sas_fast: SAS_BLOCK_THREADS / SAS_RUN_BYTES / SAS_MIN_BLOCKS (launch shape) are missing; sas_fast.backends.cuda.compile_defines() passes them"
#endif
#if !(defined(SAS_KIND_NONE) && defined(SAS_KIND_SPECKLE) && defined(SAS_KIND_POISSON))
#error "sas_fast: the noise kind codes of sas_fast.plan.KINDS are missing (sas_fast.backends.cuda.compile_defines() passes them)"
#endif
#if !(defined(SAS_LAUNCH_BYTES) && defined(SAS_SAMPLE_BYTES) && defined(SAS_AREA_TAP_BYTES))
#error "sas_fast: SAS_LAUNCH_BYTES / SAS_SAMPLE_BYTES / SAS_AREA_TAP_BYTES (the record sizes of LAUNCH_DTYPE, SAMPLE_DTYPE, AREA_TAP_DTYPE) are missing; sas_fast.backends.cuda.compile_defines() passes them"
#endif
#if !(defined(SAS_INTERP_AREA) && defined(SAS_AREA_EPSILON))
#error "sas_fast: the area interpolation constants of sas_fast.geometry are missing (sas_fast.backends.cuda.compile_defines() passes them)"
#endif

namespace sas {

// One sample's parameters (16 words); mirrors sas_fast.records.SAMPLE_DTYPE.
struct SampleParams {
    i32 sy0, sx0, sh, sw;  // source crop box
    i32 h, w;              // thumbnail size
    i32 oy, ox;            // paste offset (may be negative)
    float ry, rx;          // float32(sh / h), float32(sw / w)
    i32 kind;              // noise kind code (SAS_KIND_*)
    float sigma, peak;     // noise parameters
    u32 sid;               // global sample id: the Philox counter's second word
    i32 interpolation;     // image interpolation code (SAS_INTERP_*, sas_fast.geometry.INTERPOLATIONS)
    u32 taps;              // the sample's first AreaTap entry: its shrunk rows' entries, then its columns'
};
static_assert(sizeof(SampleParams) == SAS_SAMPLE_BYTES, "SampleParams differs from sas_fast.records.SAMPLE_DTYPE");

// One thumbnail coordinate's area taps (SPEC §2b): count consecutive source pixels from first,
// weighted w_first (the first), w_last (the last) and w_mid (those between); mirrors
// sas_fast.records.AREA_TAP_DTYPE.  sas_area_taps writes them, the geometry kernels read them.
struct AreaTap {
    i32 first, count;
    float w_first, w_mid, w_last;
};
static_assert(sizeof(AreaTap) == SAS_AREA_TAP_BYTES, "AreaTap differs from sas_fast.records.AREA_TAP_DTYPE");

// The kernels' one argument, passed by value: mirrors LAUNCH_DTYPE in sas_fast/backends/cuda.py,
// which fills it by field name.  8-byte fields first, then 4-byte ones, so the layout has no
// padding; the host tests compare every field's offset and size with the dtype.
struct LaunchRecord {
    // device addresses (0: absent)
    u64 img;       // (N, H, W, C) input image, element strides below (any sign)
    u64 msk;       // (N, H, W) input mask, or 0 (rescale_paste without a mask)
    u64 out;       // (N, Ho, Wo, C) contiguous
    u64 out_mask;  // (N, Ho, Wo) contiguous, or 0
    u64 params;    // (N,) SampleParams
    u64 fill;      // (C,) float image fill values (exact in float32 for every image type)
    u64 labels;    // (n_labels,) i32 sorted selected labels
    u64 taps;      // (n_taps,) AreaTap tables of the area samples (0: none)
    i64 n_taps;    // their entries
    i64 img_sn, img_sy, img_sx, img_sc;
    i64 msk_sn, msk_sy, msk_sx;
    i32 n_labels;           // n_labels < 0: every nonzero label is selected
    i32 mask_fill;
    i32 n, ho, wo, ch;
    u32 key0, key1;         // Philox key
    float lo, span, inv;    // x = (v - lo) * inv, v = lo + y * span
    i32 clip;               // clip y to [0, 1]
    i32 aligned;            // out and out_mask are 16-byte aligned: vector stores allowed
    i32 wide;               // the batch has 2^32 canvas pixels or more: 64-bit index division
    i32 shared_channels;    // every channel draws channel 0's noise (SPEC §3 "Channels")
    i32 pad;                // spare: keeps the record a multiple of 8 bytes with no hidden padding
};
static_assert(sizeof(LaunchRecord) == SAS_LAUNCH_BYTES, "LaunchRecord differs from LAUNCH_DTYPE in sas_fast/backends/cuda.py");

enum Mode { GEOMETRY = 1, NOISE = 2, FUSED = 3 };

// ------------------------------------------------------------------------------- pixel types

__device__ __forceinline__ float clamp_rint(float v, float hi) { return fminf(fmaxf(rintf(v), 0.0f), hi); }

// float32 to the image type: integers are rounded half to even, then clipped (reference._to_dtype).
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ unsigned char from_float<unsigned char>(float v) {
    return (unsigned char)clamp_rint(v, 255.0f);
}
template <> __device__ __forceinline__ unsigned short from_float<unsigned short>(float v) {
    return (unsigned short)clamp_rint(v, 65535.0f);
}
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }

// ------------------------------------------------------------------------------- geometry

// Sampling along one axis for thumbnail coordinate t (SPEC §2, reference._axis_taps).
struct Tap {
    bool inside;  // 0 <= t < size
    i32 i0, i1;   // bilinear source taps
    float frac;   // weight of i1
    i32 near;     // nearest-exact source index
};

__device__ __forceinline__ Tap axis_tap(i64 t, i32 size, i32 src, float ratio) {
    Tap tap = {false, 0, 0, 0.0f, 0};
    if (t < 0 || t >= size) return tap;
    tap.inside = true;
    const float tf = (float)(i32)t;  // exact: size <= 2^24
    const float centre = (tf + 0.5f) * ratio;
    const float pos = centre - 0.5f;
    const float fl = floorf(pos);
    float frac = pos - fl;
    i32 i0 = (i32)fl;
    if (i0 < 0) {
        i0 = 0;
        frac = 0.0f;
    } else if (i0 >= src - 1) {
        i0 = src - 1;
        frac = 0.0f;
    }
    tap.i0 = i0;
    tap.i1 = i0 + 1 < src - 1 ? i0 + 1 : src - 1;
    tap.frac = frac;
    const i32 near = (i32)floorf(centre);
    tap.near = near < src - 1 ? near : src - 1;
    return tap;
}

// SPEC §2b area taps of thumbnail coordinate t on an axis shrunk from src to side pixels, in
// double as sas_fast.geometry.area_taps (OpenCV's computeResizeAreaTab), weights rounded to float.
__device__ __forceinline__ AreaTap area_tap(i32 t, i32 side, i32 src) {
    const double r = (double)src / (double)side;
    const double f1 = (double)t * r;
    const double f2 = f1 + r;
    const double cell = fmin(r, (double)src - f1);
    const double i2 = fmin(floor(f2), (double)(src - 1));
    const double i1 = fmin(ceil(f1), i2);
    const bool head = i1 - f1 > SAS_AREA_EPSILON;  // a partial source pixel i1 - 1 first
    const bool tail = f2 - i2 > SAS_AREA_EPSILON;  // a partial source pixel i2 last
    const i32 count = (i32)head + (i32)(i2 - i1) + (i32)tail;
    const float w_mid = (float)(1.0 / cell);
    const float w_head = (float)((i1 - f1) / cell);
    const float w_tail = (float)(fmin(fmin(f2 - i2, 1.0), cell) / cell);
    AreaTap e;
    e.first = (i32)i1 - (i32)head;
    e.count = count;
    e.w_first = head ? w_head : (tail && count == 1 ? w_tail : w_mid);  // one tap: first and last are it
    e.w_mid = w_mid;
    e.w_last = tail ? w_tail : (head && count == 1 ? w_head : w_mid);
    return e;
}

// The image taps of one coordinate as one list: source indices min(first + k, src - 1) for
// k < count, weighted by tap_weight.  An area entry is one already; bilinear is the two taps
// (i0, 1 - frac), (i1, frac) of SPEC §2 (i1 = min(i0 + 1, src - 1)).
__device__ __forceinline__ AreaTap bilinear_taps(const Tap& tap) {
    AreaTap e = {tap.i0, 2, 1.0f - tap.frac, 0.0f, tap.frac};
    return e;
}

__device__ __forceinline__ float tap_weight(const AreaTap& e, i32 k) {
    return k == 0 ? e.w_first : (k == e.count - 1 ? e.w_last : e.w_mid);
}

// Whether the sample takes area taps down its rows / across its columns: area on a shrunk axis.
__device__ __forceinline__ bool area_rows(const SampleParams& s) {
    return s.interpolation == SAS_INTERP_AREA && s.h < s.sh;
}
__device__ __forceinline__ bool area_columns(const SampleParams& s) {
    return s.interpolation == SAS_INTERP_AREA && s.w < s.sw;
}

// One channel of an area sample's thumbnail pixel (SPEC §2b): each row tap's source row summed
// across the column taps, then those sums down the row taps, each from its first product, in
// float without FMA.  crop: the channel's value at the crop's top-left pixel.  Not inlined: it
// runs only for area samples and keeps its loops out of the unrolled pixel loop.
template <typename T>
__device__ __noinline__ float area_value(const T* crop, i64 sy, i64 sx, AreaTap ty, AreaTap tx, i32 sh, i32 sw) {
    float v = 0.0f;
    for (i32 ky = 0; ky < ty.count; ++ky) {
        const T* row = crop + (i64)(ty.first + ky < sh - 1 ? ty.first + ky : sh - 1) * sy;
        float across = (float)row[(i64)tx.first * sx] * tx.w_first;
        for (i32 kx = 1; kx < tx.count; ++kx) {
            const i32 col = tx.first + kx < sw - 1 ? tx.first + kx : sw - 1;
            across = across + (float)row[(i64)col * sx] * tap_weight(tx, kx);
        }
        const float term = across * tap_weight(ty, ky);
        v = ky == 0 ? term : v + term;
    }
    return v;
}

// ------------------------------------------------------------------------------- arguments

// The record as the kernel body reads it: its addresses as typed pointers, which hide the u64
// fields of the same names.
template <typename T, typename M>
struct Batch : LaunchRecord {
    const T* img;
    const M* msk;  // null without a mask
    T* out;
    M* out_mask;   // null without a mask
    const SampleParams* params;
    const float* fill;
    const i32* labels;
    const AreaTap* taps;

    __device__ __forceinline__ explicit Batch(const LaunchRecord& r)
        : LaunchRecord(r),
          img(reinterpret_cast<const T*>(r.img)),
          msk(reinterpret_cast<const M*>(r.msk)),
          out(reinterpret_cast<T*>(r.out)),
          out_mask(reinterpret_cast<M*>(r.out_mask)),
          params(reinterpret_cast<const SampleParams*>(r.params)),
          fill(reinterpret_cast<const float*>(r.fill)),
          labels(reinterpret_cast<const i32*>(r.labels)),
          taps(reinterpret_cast<const AreaTap*>(r.taps)) {}
};

__device__ __forceinline__ bool selected(i32 label, const i32* labels, i32 n_labels) {
    if (n_labels < 0) return label != 0;
    i32 lo = 0, hi = n_labels;  // lower bound in the sorted label set
    while (lo < hi) {
        const i32 mid = (lo + hi) >> 1;
        if (labels[mid] < label)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n_labels && labels[lo] == label;
}

// The noisy value of one channel v (SPEC §3): normalise, draw, clip, map back.  Not inlined: it
// runs only for selected pixels, and a call keeps Philox and PTRS out of the unrolled pixel loop.
// POISSON: the instance can draw Poisson counts.  The Poisson sampler (float64, PTRS) sets the
// whole kernel's register count (ptxas, sm_90: 102 registers a thread at one pixel per thread, 40-56
// without it), so batches without Poisson samples run the instance without it (the loader picks).
template <typename T, bool POISSON>
__device__ __noinline__ T add_noise(T v, i32 kind, float sigma, float peak, u32 sid, u32 p, u32 c, u32 k0, u32 k1,
                                    float lo, float span, float inv, i32 clip) {
    const float x = ((float)v - lo) * inv;
    float y;
    if (POISSON && kind == SAS_KIND_POISSON) {
        const double k = poisson((double)(x * peak), p, sid, c, k0, k1);
        y = (float)k / peak;
    } else {
        const float n = sigma * normal(p, sid, c, k0, k1);
        y = kind == SAS_KIND_SPECKLE ? x + x * n : x + n;
    }
    if (clip) y = fminf(fmaxf(y, 0.0f), 1.0f);
    return from_float<T>(lo + y * span);
}

// Position of the current canvas pixel, its sample's parameters, and the current row's sources.
template <typename T, typename M>
struct Cursor {
    i32 i, y, x;
    SampleParams s;
    bool row_inside;     // geometry: the row lies in the thumbnail
    bool area;           // geometry: the sample takes area taps on some axis (area_value; else bilinear)
    float row_frac;      // geometry, bilinear: weight of row1
    AreaTap ty;          // geometry, area: the row's taps
    const T *row0, *row1;  // geometry: the two source rows at the crop's left edge (area: row0 is the
                           // crop's top-left pixel); NOISE: the input row
    const M* mask_row;   // geometry: the nearest source mask row (null without a mask); NOISE: the input row
};

template <int MODE, typename T, typename M>
__device__ __forceinline__ void load_row(const Batch<T, M>& b, Cursor<T, M>& cur) {
    const T* img = b.img + cur.i * b.img_sn;
    const M* msk = b.msk == nullptr ? nullptr : b.msk + cur.i * b.msk_sn;
    if (MODE == NOISE) {
        cur.row0 = img + cur.y * b.img_sy;
        cur.mask_row = msk + cur.y * b.msk_sy;
        return;
    }
    const SampleParams& s = cur.s;
    const Tap ty = axis_tap((i64)cur.y - s.oy, s.h, s.sh, s.ry);
    cur.row_inside = ty.inside;
    cur.row_frac = ty.frac;
    img += (i64)s.sx0 * b.img_sx;
    cur.area = area_rows(s) || area_columns(s);
    if (cur.area) {
        cur.row0 = img + (i64)s.sy0 * b.img_sy;
        if (ty.inside) cur.ty = area_rows(s) ? b.taps[s.taps + (cur.y - s.oy)] : bilinear_taps(ty);
    } else {
        cur.row0 = img + (i64)(s.sy0 + ty.i0) * b.img_sy;
        cur.row1 = img + (i64)(s.sy0 + ty.i1) * b.img_sy;
    }
    if (msk != nullptr) msk += (i64)(s.sy0 + ty.near) * b.msk_sy + (i64)s.sx0 * b.msk_sx;
    cur.mask_row = msk;
}

// Step to the next canvas pixel in flat order (x, then y, then sample).
template <int MODE, typename T, typename M>
__device__ __forceinline__ void advance(const Batch<T, M>& b, Cursor<T, M>& cur) {
    if (++cur.x < b.wo) return;
    cur.x = 0;
    if (++cur.y == b.ho) {
        cur.y = 0;
        if (++cur.i == b.n) return;  // past the batch's end: nothing more is read
        cur.s = b.params[cur.i];
    }
    load_row<MODE>(b, cur);
}

// One canvas pixel before noise: calls emit(c, value) for each channel and returns its label
// (geometry modes: the output mask label; NOISE: the input mask label).
template <int MODE, typename T, typename M, typename Emit>
__device__ __forceinline__ M pixel(const Batch<T, M>& b, const Cursor<T, M>& cur, Emit emit) {
    if (MODE == NOISE) {
        const T* src = cur.row0 + cur.x * b.img_sx;
        for (i32 c = 0; c < b.ch; ++c) emit(c, src[c * b.img_sc]);
        return cur.mask_row[cur.x * b.msk_sx];
    }
    const SampleParams& s = cur.s;
    const Tap tx = axis_tap((i64)cur.x - s.ox, s.w, s.sw, s.rx);
    if (!(cur.row_inside && tx.inside)) {
        for (i32 c = 0; c < b.ch; ++c) emit(c, (T)b.fill[c]);
        return (M)b.mask_fill;
    }
    if (cur.area) {  // SPEC §2b: area taps on the shrunk axes (the table: rows' entries, then columns')
        const u32 column = s.taps + (area_rows(s) ? s.h : 0) + (u32)(cur.x - s.ox);
        const AreaTap xt = area_columns(s) ? b.taps[column] : bilinear_taps(tx);
        for (i32 c = 0; c < b.ch; ++c)
            emit(c, from_float<T>(area_value(cur.row0 + c * b.img_sc, b.img_sy, b.img_sx, cur.ty, xt, s.sh, s.sw)));
        return cur.mask_row == nullptr ? (M)0 : cur.mask_row[tx.near * b.msk_sx];
    }
    // SPEC §2 bilinear from the four taps, in this order, no FMA
    const i64 c0 = tx.i0 * b.img_sx, c1 = tx.i1 * b.img_sx;
    const float a = tx.frac, bw = cur.row_frac;
    for (i32 c = 0; c < b.ch; ++c) {
        const i64 oc = c * b.img_sc;
        const float top = (float)cur.row0[c0 + oc] * (1.0f - a) + (float)cur.row0[c1 + oc] * a;
        const float bot = (float)cur.row1[c0 + oc] * (1.0f - a) + (float)cur.row1[c1 + oc] * a;
        emit(c, from_float<T>(top * (1.0f - bw) + bot * bw));
    }
    return cur.mask_row == nullptr ? (M)0 : cur.mask_row[tx.near * b.msk_sx];
}

// a / b and a % b for 0 <= a, 0 < b: in 32 bits unless the batch is wide (64-bit integer division
// costs several times as many instructions on a GPU).
struct DivMod {
    i64 quot, rem;
};

__device__ __forceinline__ DivMod divmod(i64 a, i64 b, bool wide) {
    if (!wide) {
        const u32 q = (u32)a / (u32)b;
        DivMod r = {(i64)q, (i64)((u32)a - q * (u32)b)};
        return r;
    }
    DivMod r = {a / b, a % b};
    return r;
}

// Store a run of RUN elements at dst: whole 16/8/4-byte words when the run is complete and the
// buffer aligned, element by element otherwise (the batch's last, partial run).
template <typename U, typename E, int RUN>
__device__ __forceinline__ void store_words(E* dst, const E (&v)[RUN]) {
    union {
        E e[RUN];
        U u[RUN * sizeof(E) / sizeof(U)];
    } pack;
#pragma unroll
    for (int k = 0; k < RUN; ++k) pack.e[k] = v[k];
    U* d = reinterpret_cast<U*>(dst);
#pragma unroll
    for (int j = 0; j < (int)(RUN * sizeof(E) / sizeof(U)); ++j) d[j] = pack.u[j];
}

template <typename E, int RUN>
__device__ __forceinline__ void store_run(E* dst, const E (&v)[RUN], i64 valid, bool aligned) {
    constexpr int bytes = RUN * (int)sizeof(E);
    if (aligned && valid >= RUN) {
        if constexpr (bytes % 16 == 0) {
            store_words<uint4>(dst, v);
            return;
        } else if constexpr (bytes % 8 == 0) {
            store_words<uint2>(dst, v);
            return;
        } else if constexpr (bytes % 4 == 0) {
            store_words<unsigned int>(dst, v);
            return;
        }
    }
#pragma unroll
    for (int k = 0; k < RUN; ++k)
        if (k < valid) dst[k] = v[k];
}

// The kernel body.  Each step of the grid-stride loop handles the RUN canvas pixels from q0:
//   1. geometry (or the input copy): values into vals[] (one channel) or straight to out (several),
//      labels into labels[], and a bit per pixel that needs noise; the mask run is stored;
//   2. noise, pixel by pixel, only where the bit is set (few pixels: little is live across calls);
//   3. the one-channel image run is stored.
template <int MODE, typename T, typename M, bool POISSON>
__device__ __forceinline__ void run(const Batch<T, M>& b) {
    // pixels per thread and step: SAS_RUN_BYTES of image, at least one pixel
    constexpr int RUN = SAS_RUN_BYTES < (int)sizeof(T) ? 1 : SAS_RUN_BYTES / (int)sizeof(T);
    static_assert(RUN >= 1 && RUN <= 32, "SAS_RUN_BYTES / sizeof(T) must be at most 32");
    const i64 per_sample = (i64)b.ho * b.wo;
    const i64 total = b.n * per_sample;
    const i64 step = (i64)gridDim.x * blockDim.x * RUN;
    for (i64 q0 = ((i64)blockIdx.x * blockDim.x + threadIdx.x) * RUN; q0 < total; q0 += step) {
        const i64 valid = total - q0;  // >= RUN except in the batch's last run
        T* out = b.out + q0 * b.ch;
        T vals[RUN];
        M labels[RUN];
        u32 noisy = 0;
        {
            Cursor<T, M> cur;
            const DivMod sample = divmod(q0, per_sample, b.wide);
            const DivMod row = divmod(sample.rem, b.wo, b.wide);
            cur.i = (i32)sample.quot;
            cur.y = (i32)row.quot;
            cur.x = (i32)row.rem;
            cur.s = b.params[cur.i];
            load_row<MODE>(b, cur);
#pragma unroll
            for (int k = 0; k < RUN; ++k) {
                if (k < valid) {
                    labels[k] = pixel<MODE>(b, cur, [&](i32 c, T v) {
                        if (b.ch == 1)
                            vals[k] = v;
                        else
                            out[(i64)k * b.ch + c] = v;
                    });
                    if (MODE != GEOMETRY && cur.s.kind != SAS_KIND_NONE && selected((i32)labels[k], b.labels, b.n_labels))
                        noisy |= 1u << k;
                    if (k + 1 < RUN) advance<MODE>(b, cur);
                }
            }
        }
        if (MODE != NOISE && b.out_mask != nullptr) store_run(b.out_mask + q0, labels, valid, b.aligned);
        if (MODE != GEOMETRY && noisy != 0) {
#pragma unroll
            for (int k = 0; k < RUN; ++k) {
                if (!((noisy >> k) & 1u)) continue;
                const DivMod at = divmod(q0 + k, per_sample, b.wide);
                const u32 p = (u32)at.rem;  // y * Wo + x: SPEC §4 counter word 0 (wraps like the reference)
                const SampleParams& s = b.params[at.quot];
#define SAS_NOISY(V, C) add_noise<T, POISSON>(V, s.kind, s.sigma, s.peak, s.sid, p, C, b.key0, b.key1, b.lo, b.span, b.inv, b.clip)
                if (b.ch == 1) {
                    vals[k] = SAS_NOISY(vals[k], 0u);
                } else {
                    for (i32 c = 0; c < b.ch; ++c)
                        out[(i64)k * b.ch + c] = SAS_NOISY(out[(i64)k * b.ch + c], b.shared_channels ? 0u : (u32)c);
                }
#undef SAS_NOISY
            }
        }
        if (b.ch == 1) store_run(out, vals, valid, b.aligned);
    }
}

// The area tap tables (SPEC §2b), one entry per thread (grid-stride): entry e belongs to the last
// sample whose tables start at or before e (a sample without tables starts where the next one
// does), to its rows' entries if it shrinks them by area, then to its columns'.
__device__ __forceinline__ void build_area_taps(const LaunchRecord& r) {
    const SampleParams* params = reinterpret_cast<const SampleParams*>(r.params);
    AreaTap* taps = reinterpret_cast<AreaTap*>(r.taps);
    const i64 step = (i64)gridDim.x * blockDim.x;
    for (i64 e = (i64)blockIdx.x * blockDim.x + threadIdx.x; e < r.n_taps; e += step) {
        i32 lo = 0, hi = r.n - 1;
        while (lo < hi) {
            const i32 mid = (lo + hi + 1) >> 1;
            if ((i64)params[mid].taps <= e)
                lo = mid;
            else
                hi = mid - 1;
        }
        const SampleParams& s = params[lo];
        const i32 t = (i32)(e - (i64)s.taps);
        const i32 rows = area_rows(s) ? s.h : 0;
        taps[e] = t < rows ? area_tap(t, s.h, s.sh) : area_tap(t - rows, s.w, s.sw);
    }
}

}  // namespace sas

// ------------------------------------------------------------------------------- entry points

__global__ void __launch_bounds__(SAS_BLOCK_THREADS) sas_area_taps(const sas::LaunchRecord r) { sas::build_area_taps(r); }

template <typename T, typename M>
__global__ void __launch_bounds__(SAS_BLOCK_THREADS, SAS_MIN_BLOCKS) sas_rescale_paste(const sas::LaunchRecord r) {
    sas::run<sas::GEOMETRY, T, M, false>(sas::Batch<T, M>(r));
}

template <typename T, typename M, bool POISSON>
__global__ void __launch_bounds__(SAS_BLOCK_THREADS, SAS_MIN_BLOCKS) sas_noise_in_mask(const sas::LaunchRecord r) {
    sas::run<sas::NOISE, T, M, POISSON>(sas::Batch<T, M>(r));
}

template <typename T, typename M, bool POISSON>
__global__ void __launch_bounds__(SAS_BLOCK_THREADS, SAS_MIN_BLOCKS) sas_augment(const sas::LaunchRecord r) {
    sas::run<sas::FUSED, T, M, POISSON>(sas::Batch<T, M>(r));
}
