// gemv.cu — y[M, N] = x[M, K] W[N, K]^T (+ b[N]) for a few rows M <= NXK_GEMV_MAX_M: the
// backbone's decode step (M = 1), small projector batches.
//
// Why not cuBLAS: the step is memory-bound (every weight byte read once per token), and
// cublasGemmEx with n <= 8 picks tensor-core tiles of 64-128 output rows — a 4096-row weight is
// then streamed by 32-64 CTAs, a fraction of the SMs, and the decode read ~1 TB/s on an H200
// (bench/RESULTS.md, GPU run 1). Here one warp owns one output row: it streams its W row once
// with 16-byte loads (unrolled for loads in flight) and keeps M F32 dot products; x (M rows, a
// few KB) is re-read from L1/L2. Thousands of warps cover every SM. Any mix of F32/F16/BF16 for
// x, W, b and y; F32 accumulation, one rounding at the store — the same math as the widening
// cuBLAS path, without the widened copy of W.
#include "common.cuh"

namespace nxk {

constexpr int kGemvWarps = 4;  // output rows per block

// The V elements of T in 16 bytes as floats.
template <typename T, int V> __device__ __forceinline__ void unpack16(const uint4 &u, float *f)
{
    static_assert(V * (int)sizeof(T) == 16, "16 bytes");
    const T *t = (const T *)&u;
#pragma unroll
    for (int i = 0; i < V; i++) f[i] = to_f32(t[i]);
}

// V elements of T from p as floats; V * sizeof(T) is 8, 16 or 32 bytes, p aligned to 8 or 16.
template <typename T, int V> __device__ __forceinline__ void load_vec(const T *__restrict__ p, float *f)
{
    constexpr int B = V * (int)sizeof(T);
    static_assert(B == 8 || B == 16 || B == 32, "8, 16 or 32 bytes");
    if (B == 8) {
        uint2 u = __ldg((const uint2 *)p);
        const T *t = (const T *)&u;
#pragma unroll
        for (int i = 0; i < V; i++) f[i] = to_f32(t[i]);
    } else {
        constexpr int per = 16 / (int)sizeof(T);
#pragma unroll
        for (int c = 0; c < B / 16; c++) unpack16<T, per>(__ldg((const uint4 *)p + c), f + c * per);
    }
}

__device__ __forceinline__ void store_dyn(void *p, int dt, int64_t i, float v)
{
    switch (dt) {
    case NXK_F16: ((__half *)p)[i] = __float2half_rn(v); break;
    case NXK_BF16: ((__nv_bfloat16 *)p)[i] = __float2bfloat16_rn(v); break;
    default: ((float *)p)[i] = v; break;
    }
}

// W's 16 bytes at p, read once: streamed past L1 (x, re-read by every warp, keeps the cache).
template <typename T> __device__ __forceinline__ uint4 load_w16(const T *__restrict__ p)
{
    return __ldcs((const uint4 *)p);
}

// vec: W and x are 16-byte aligned and K % 8 == 0, so every row start is too (8 elements of
// any of the dtypes are 16 or 32 bytes); else the element-wise loop alone. The vector loop
// issues kGemvUnroll 16-byte loads of W per lane before it uses any (8 KB of a 4096-wide F16 row
// in flight per warp): a decode-step GEMV is latency-bound per warp, and one load at a time read
// the 7B model's weights at ~45% of an H200's bandwidth (bench/RESULTS.md, GPU run 3).
constexpr int kGemvUnroll = 8;

template <typename Tw, typename Tx, int M>
__global__ void __launch_bounds__(32 * kGemvWarps)
gemv_kernel(void *__restrict__ y, int y_dt, const Tx *__restrict__ x, const Tw *__restrict__ W,
            const void *__restrict__ b, int b_dt, int64_t N, int64_t K, int vec)
{
    constexpr int V = 16 / (int)sizeof(Tw);  // W elements per 16-byte load
    constexpr int U = kGemvUnroll;
    const int lane = threadIdx.x & 31;
    const int64_t n = (int64_t)blockIdx.x * kGemvWarps + (threadIdx.x >> 5);
    if (n >= N) return;  // whole warps leave together: n is per warp
    const Tw *wr = W + n * K;
    float acc[M];
#pragma unroll
    for (int m = 0; m < M; m++) acc[m] = 0.f;
    const int64_t kv = vec ? K / V * V : 0;
    for (int64_t k0 = (int64_t)lane * V; k0 < kv; k0 += 32 * V * U) {
        uint4 raw[U];
#pragma unroll
        for (int u = 0; u < U; u++)
            if (k0 + (int64_t)u * 32 * V < kv) raw[u] = load_w16(wr + k0 + (int64_t)u * 32 * V);
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int64_t k = k0 + (int64_t)u * 32 * V;
            if (k >= kv) break;
            float wf[V];
            unpack16<Tw, V>(raw[u], wf);
#pragma unroll
            for (int m = 0; m < M; m++) {
                float xf[V];
                load_vec<Tx, V>(x + m * K + k, xf);
#pragma unroll
                for (int i = 0; i < V; i++) acc[m] = fmaf(wf[i], xf[i], acc[m]);
            }
        }
    }
    for (int64_t k = kv + lane; k < K; k += 32) {
        const float wv = to_f32(wr[k]);
#pragma unroll
        for (int m = 0; m < M; m++) acc[m] = fmaf(wv, to_f32(x[m * K + k]), acc[m]);
    }
    const float bias = b ? load_dyn(b, b_dt, n) : 0.f;
#pragma unroll
    for (int m = 0; m < M; m++) {
        const float s = warp_sum(acc[m]);
        if (lane == 0) store_dyn(y, y_dt, m * N + n, s + bias);
    }
}

template <typename Tw, typename Tx>
static cudaError_t gemv_launch(void *y, int y_dt, const void *x, const void *w, const void *b, int b_dt, int64_t M,
                               int64_t N, int64_t K, cudaStream_t s)
{
    const int vec = ((uintptr_t)w % 16 == 0) && ((uintptr_t)x % 16 == 0) && (K % 8 == 0);
    const int64_t blocks = (N + kGemvWarps - 1) / kGemvWarps;
    if (blocks > 0x7fffffffLL) return cudaErrorInvalidValue;
    const dim3 grid((unsigned)blocks), block(32 * kGemvWarps);
    const Tx *xx = (const Tx *)x;
    const Tw *ww = (const Tw *)w;
    switch (M) {
#define NXK_GEMV_M(m) \
    case m: gemv_kernel<Tw, Tx, m><<<grid, block, 0, s>>>(y, y_dt, xx, ww, b, b_dt, N, K, vec); break;
    NXK_GEMV_M(1) NXK_GEMV_M(2) NXK_GEMV_M(3) NXK_GEMV_M(4) NXK_GEMV_M(5) NXK_GEMV_M(6) NXK_GEMV_M(7) NXK_GEMV_M(8)
#undef NXK_GEMV_M
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

}  // namespace nxk

extern "C" cudaError_t nxk_gemv(void *y, int y_dt, const void *x, int x_dt, const void *w, int w_dt, const void *b,
                                int b_dt, int64_t M, int64_t N, int64_t K, cudaStream_t stream)
{
    using namespace nxk;
    if (M < 1 || M > NXK_GEMV_MAX_M || N < 0 || K < 0) return cudaErrorInvalidValue;
    if (N == 0) return cudaSuccess;
    NXK_DISPATCH_FLOAT(w_dt, Tw, NXK_DISPATCH_FLOAT(x_dt, Tx, return gemv_launch<Tw, Tx>(y, y_dt, x, w, b, b_dt, M, N, K, stream)));
    return cudaErrorInvalidValue;
}
