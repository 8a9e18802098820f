// common.cuh — helpers shared by the kernels: dtype dispatch, f32 load/store, warp/block
// reductions, launch geometry. Device code computes in f32 whatever the storage dtype.
#pragma once

#include "kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

// for (i over [0, n)) spread over the whole grid
#define GRID_STRIDE(i, n) \
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < (n); i += (int64_t)gridDim.x * blockDim.x)

namespace nxk {

__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T> __device__ __forceinline__ T from_f32(float v);
template <> __device__ __forceinline__ float from_f32<float>(float v) { return v; }
template <> __device__ __forceinline__ __half from_f32<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }

// Load element i of an array whose dtype is only known at run time (small per-channel vectors:
// weights and biases of norms, biases of linear/conv).
__device__ __forceinline__ float load_dyn(const void *p, int dt, int64_t i)
{
    switch (dt) {
    case NXK_F16: return __half2float(((const __half *)p)[i]);
    case NXK_BF16: return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    case NXK_I32: return (float)((const int32_t *)p)[i];
    default: return ((const float *)p)[i];
    }
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide reductions for blockDim.x a multiple of 32 (<= 1024). `sh` holds 32 floats.
// Every thread gets the result. Safe to call repeatedly (syncs before reusing sh).
__device__ __forceinline__ float block_sum(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

// 1-D grid for n elements with grid-stride loops.
static inline unsigned grid_for(int64_t n, int block)
{
    int64_t g = (n + block - 1) / block;
    if (g < 1) g = 1;
    if (g > 65535LL * 16) g = 65535LL * 16;  // grid-stride loops cover the rest
    return (unsigned)g;
}

}  // namespace nxk

// Call F<T>() with T the storage type of float dtype `dt`; unknown dt -> cudaErrorInvalidValue.
#define NXK_DISPATCH_FLOAT(dt, T, ...)                        \
    do {                                                      \
        switch (dt) {                                         \
        case NXK_F32: { typedef float T; __VA_ARGS__; } break; \
        case NXK_F16: { typedef __half T; __VA_ARGS__; } break; \
        case NXK_BF16: { typedef __nv_bfloat16 T; __VA_ARGS__; } break; \
        default: return cudaErrorInvalidValue;                \
        }                                                     \
    } while (0)
