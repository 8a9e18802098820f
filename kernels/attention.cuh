// attention.cuh — flash-style attention forward, instantiated per head dim by attention_hd*.cu
// (one head dim per file: STYLE.md §5) and dispatched by attention.cu.
//
// One block of 4 warps per (query tile of 16 rows, head, batch item); each warp owns 4 query
// rows. K/V tiles of 32 keys are staged in shared memory as f32 (rows padded to D + 1 floats so
// that lane j reading key j is bank-conflict free); lane j scores key j, the tile's max and sum
// are warp shuffles, and the output accumulator (f32, online-softmax rescaled) is spread over
// the lanes by head dim (lane owns dims lane, lane + 32, ...). Scores, softmax and accumulation
// are f32 whatever the storage dtype; the output is rounded once at the end.
//
// This is the simple, obviously-correct CUDA-core version (no tensor cores; about 9 TFLOP/s on
// an H200). F16/BF16 without a mask at head dims 40/64/80/128/160 take the tensor-core kernel
// (attention_mma.cuh) instead; this one serves F32, masks and other head dims, and is the
// reference the other is checked against (tests/gpu/test_ops_cuda.c).
#pragma once

#include "common.cuh"

namespace nxk {
namespace attn {

constexpr int kWarps = 4;
constexpr int kRowsPerWarp = 4;
constexpr int kBQ = kWarps * kRowsPerWarp;  // query rows per block
constexpr int kBK = 32;                     // keys per tile (one per lane)
constexpr int kThreads = kWarps * 32;

// DMAX: the head dim (EXACT) or an upper bound on the run-time p.D (generic).
template <typename T, int DMAX, bool EXACT>
__global__ void __launch_bounds__(kThreads) attn_fwd_kernel(nxk_attn_params p)
{
    constexpr int NO = (DMAX + 31) / 32;  // output dims per lane
    const int D = EXACT ? DMAX : p.D;
    const int DP = D + 1;
    extern __shared__ float smem[];
    float *Ks = smem;
    float *Vs = Ks + kBK * DP;
    float *Qs = Vs + kBK * DP;

    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * kBQ;
    const int hk = h / (p.H / p.Hkv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const T *q = (const T *)p.q;
    const T *k = (const T *)p.k;
    const T *v = (const T *)p.v;
    T *out = (T *)p.out;
    const int off = p.Skv - p.Sq;  // causal: key j visible to query i iff j <= i + off

    for (int idx = threadIdx.x; idx < kBQ * D; idx += kThreads) {
        int r = idx / D, d = idx - r * D, qi = q0 + r;
        Qs[r * DP + d] = qi < p.Sq ? to_f32(q[(((int64_t)b * p.Sq + qi) * p.H + h) * D + d]) * p.scale : 0.f;
    }

    float m[kRowsPerWarp], l[kRowsPerWarp], o[kRowsPerWarp][NO];
#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; rr++) {
        m[rr] = -INFINITY;
        l[rr] = 0.f;
#pragma unroll
        for (int s = 0; s < NO; s++) o[rr][s] = 0.f;
    }

    int kend = p.Skv;
    if (p.causal) {
        int last = q0 + kBQ - 1 + off + 1;  // one past the last key the tile's last row sees
        if (last < kend) kend = last;
    }
    for (int kt = 0; kt < kend; kt += kBK) {
        __syncthreads();  // previous tile fully consumed (and Qs written, on the first pass)
        for (int idx = threadIdx.x; idx < kBK * D; idx += kThreads) {
            int j = idx / D, d = idx - j * D, kv = kt + j;
            bool in = kv < p.Skv;
            int64_t g = (((int64_t)b * p.Skv + kv) * p.Hkv + hk) * D + d;
            Ks[j * DP + d] = in ? to_f32(k[g]) : 0.f;
            Vs[j * DP + d] = in ? to_f32(v[g]) : 0.f;
        }
        __syncthreads();

#pragma unroll
        for (int rr = 0; rr < kRowsPerWarp; rr++) {
            const int r = warp * kRowsPerWarp + rr, qi = q0 + r;
            if (qi >= p.Sq) continue;  // warp-uniform
            const int kv = kt + lane;
            const bool valid = kv < p.Skv && (!p.causal || kv <= qi + off);
            float s = -INFINITY;
            if (valid) {
                const float *qr = Qs + r * DP;
                const float *kr = Ks + lane * DP;
                float acc = 0.f;
#pragma unroll 8
                for (int d = 0; d < D; d++) acc = fmaf(qr[d], kr[d], acc);
                s = acc;
                if (p.mask) s += p.mask[(int64_t)b * p.mask_bstride + (int64_t)qi * p.Skv + kv];
            }
            const float m_new = fmaxf(m[rr], warp_max(s));
            if (m_new == -INFINITY) continue;  // nothing visible yet (warp-uniform)
            const float corr = expf(m[rr] - m_new);  // 0 on the first visible tile (m = -inf)
            const float pj = s == -INFINITY ? 0.f : expf(s - m_new);
            l[rr] = l[rr] * corr + warp_sum(pj);
#pragma unroll
            for (int sl = 0; sl < NO; sl++) o[rr][sl] *= corr;
            for (int j = 0; j < kBK; j++) {
                const float pb = __shfl_sync(0xffffffffu, pj, j);
                if (pb == 0.f) continue;  // uniform: pb is the same in every lane
                const float *vr = Vs + j * DP;
#pragma unroll
                for (int sl = 0; sl < NO; sl++) {
                    const int d = sl * 32 + lane;
                    if (d < D) o[rr][sl] = fmaf(pb, vr[d], o[rr][sl]);
                }
            }
            m[rr] = m_new;
        }
    }

#pragma unroll
    for (int rr = 0; rr < kRowsPerWarp; rr++) {
        const int qi = q0 + warp * kRowsPerWarp + rr;
        if (qi >= p.Sq) continue;
        // a row that sees no key at all (causal with Sq > Skv, or a fully -inf mask) is 0
        const float inv = l[rr] > 0.f ? 1.f / l[rr] : 0.f;
        T *orow = out + (((int64_t)b * p.Sq + qi) * p.H + h) * D;
#pragma unroll
        for (int sl = 0; sl < NO; sl++) {
            const int d = sl * 32 + lane;
            if (d < D) orow[d] = from_f32<T>(o[rr][sl] * inv);
        }
    }
}

template <typename T, int DMAX, bool EXACT>
cudaError_t launch(const nxk_attn_params &p, cudaStream_t s)
{
    const int D = EXACT ? DMAX : p.D;
    if (D <= 0 || D > DMAX || p.Hkv <= 0 || p.H % p.Hkv || p.H > 65535 || p.B > 65535) return cudaErrorInvalidValue;
    const size_t smem = (size_t)(2 * kBK + kBQ) * (size_t)(D + 1) * sizeof(float);
    auto kern = attn_fwd_kernel<T, DMAX, EXACT>;
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute((const void *)kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    dim3 grid((unsigned)((p.Sq + kBQ - 1) / kBQ), (unsigned)p.H, (unsigned)p.B);
    kern<<<grid, kThreads, smem, s>>>(p);
    return cudaGetLastError();
}

template <int DMAX, bool EXACT>
cudaError_t dispatch_dtype(const nxk_attn_params &p, cudaStream_t s)
{
    NXK_DISPATCH_FLOAT(p.dt, T, return launch<T, DMAX, EXACT>(p, s));
    return cudaErrorInvalidValue;
}

// one per attention_hd*.cu
cudaError_t fwd_hd40(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd64(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd80(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd128(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd160(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_generic(const nxk_attn_params &p, cudaStream_t s);  // any D <= NXK_ATTN_MAX_D

}  // namespace attn
}  // namespace nxk
