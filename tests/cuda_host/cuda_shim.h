// Host shim: just enough of CUDA for sas_fast/cuda/*.cu to compile as plain C++ (g++) and run on
// the CPU, so the CPU tests execute the very file the GPU runs.  Include it before the .cu file.
//
// Execution model: sas_host::launch() calls the kernel once per (block, thread), one after another.
// That is exact for kernels whose threads are independent (no shared memory, no __syncthreads,
// no warp intrinsics): which the sas_fast kernels promise, and which this shim therefore does not
// provide (using one fails to compile here).
//
// Arithmetic: x86-64 SSE float/double with -ffp-contract=off is IEEE-rounded +-*/ and sqrt without
// FMA, the same as CUDA under --fmad=false --prec-div=true --prec-sqrt=true (except that the GPU
// build flushes float32 subnormals: see sas_fast/backends/cuda.py).
#pragma once

#include <math.h>
#include <stddef.h>
#include <string.h>

#include <utility>

// ---------------------------------------------------------------------------- qualifiers
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)

// ---------------------------------------------------------------------------- vector types
struct alignas(16) uint4 {
    unsigned int x, y, z, w;
};
struct alignas(8) uint2 {
    unsigned int x, y;
};
struct dim3 {
    unsigned int x = 1, y = 1, z = 1;
};

// ---------------------------------------------------------------------------- thread indices
// Per host thread: one host thread runs a whole grid, and several may launch at once.
static thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

// ---------------------------------------------------------------------------- intrinsics
static inline float __uint_as_float(unsigned int u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline unsigned int __float_as_uint(float f) {
    unsigned int u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline unsigned int __umulhi(unsigned int a, unsigned int b) {
    return (unsigned int)(((unsigned long long)a * b) >> 32);
}
static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __fsqrt_rn(float a) { return sqrtf(a); }

namespace sas_host {

// Run kernel k over grid x block, the arguments given as cuLaunchKernel's kernelParams: an array
// of pointers, one per parameter, each to a value of that parameter's type.
template <typename... Args, size_t... I>
void call(void (*k)(Args...), void** params, std::index_sequence<I...>) {
    k(*static_cast<Args*>(params[I])...);
}

template <typename... Args>
void launch(void (*k)(Args...), unsigned int grid, unsigned int block, void** params) {
    gridDim.x = grid;
    blockDim.x = block;
    for (unsigned int b = 0; b < grid; ++b) {
        blockIdx.x = b;
        for (unsigned int t = 0; t < block; ++t) {
            threadIdx.x = t;
            call(k, params, std::index_sequence_for<Args...>{});
        }
    }
}

}  // namespace sas_host
