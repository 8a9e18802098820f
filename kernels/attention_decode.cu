// attention_decode.cu — split-KV attention for one query row per (batch, head): the backbone's
// decode step. The flash kernels give each block 128 query rows of one head, so a decode step
// (Sq = 1) ran 32 blocks for LLaMA-7B's 32 heads, each streaming its head's whole KV cache:
// ~1 ms of a 6.4 ms token on an H200 at ~540 positions (GPU run 6's profile). Here the keys of a
// head are cut into chunks of kDecChunk; one block per (chunk, head, batch) keeps an online
// softmax per warp (a warp takes every 4th key of the chunk: the q.k dot product across the lanes,
// then exp and the V accumulation in f32), merges its warps and writes the chunk's (max, sum,
// accumulator); a second kernel merges the chunks of each head (the same rescaling as the
// flash-decoding combine) and rounds once into out.
//
// With kv_len (a device I32) the keys are the first *kv_len of the Skv rows, read when the kernel
// runs: the splits cover all Skv rows and those past the length write an empty partial. That is
// what lets a decode step be recorded once as a CUDA graph and replayed as the cache fills.
#include "common.cuh"

namespace nxk {
namespace {

constexpr int kDecWarps = 4;
constexpr int kDecChunk = 64;  // keys per block

template <typename T, int D>
__global__ void __launch_bounds__(32 * kDecWarps)
decode_partial(const T *__restrict__ q, const T *__restrict__ k, const T *__restrict__ v, float *__restrict__ part,
               int Skv, const int32_t *__restrict__ kv_len, int H, int Hkv, float scale, int splits)
{
    constexpr int E = (D + 31) / 32;  // elements of a row per lane (lane + 32 e: coalesced; D < 32 masks)
    const int sp = blockIdx.x, h = blockIdx.y, b = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int hk = h / (H / Hkv);
    const int len = kv_len ? min(*kv_len, Skv) : Skv;
    const int lo = sp * kDecChunk, hi = lo + kDecChunk < len ? lo + kDecChunk : len;
    const T *qr = q + ((int64_t)b * H + h) * D;
    float qf[E], acc[E];
#pragma unroll
    for (int e = 0; e < E; e++) {
        const int d = lane + 32 * e;
        qf[e] = (D % 32 == 0 || d < D) ? to_f32(qr[d]) * scale : 0.f;
        acc[e] = 0.f;
    }
    float m = -INFINITY, l = 0.f;
    for (int j = lo + warp; j < hi; j += kDecWarps) {
        const int64_t row = (((int64_t)b * Skv + j) * Hkv + hk) * D;
        float sd = 0.f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            const int d = lane + 32 * e;
            if (D % 32 == 0 || d < D) sd = fmaf(qf[e], to_f32(k[row + d]), sd);
        }
        sd = warp_sum(sd);
        const float mn = fmaxf(m, sd);
        const float corr = __expf(m - mn), pj = __expf(sd - mn);  // m = -inf at first: corr 0
        l = l * corr + pj;
#pragma unroll
        for (int e = 0; e < E; e++) {
            const int d = lane + 32 * e;
            if (D % 32 == 0 || d < D) acc[e] = acc[e] * corr + pj * to_f32(v[row + d]);
        }
        m = mn;
    }
    __shared__ float sm[kDecWarps], sl[kDecWarps], sacc[kDecWarps][D];
    if (lane == 0) sm[warp] = m, sl[warp] = l;
#pragma unroll
    for (int e = 0; e < E; e++) {
        const int d = lane + 32 * e;
        if (D % 32 == 0 || d < D) sacc[warp][d] = acc[e];
    }
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kDecWarps; w++) M = fmaxf(M, sm[w]);
    float *out = part + (((int64_t)b * H + h) * splits + sp) * (D + 2);
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float a = 0.f;
#pragma unroll
        for (int w = 0; w < kDecWarps; w++)
            if (sm[w] > -INFINITY) a += sacc[w][d] * __expf(sm[w] - M);  // a warp without keys adds nothing
        out[2 + d] = a;
    }
    if (threadIdx.x == 0) {
        float L = 0.f;
        for (int w = 0; w < kDecWarps; w++)
            if (sm[w] > -INFINITY) L += sl[w] * __expf(sm[w] - M);
        out[0] = M;
        out[1] = L;
    }
}

template <typename T, int D>
__global__ void decode_combine(T *__restrict__ out, const float *__restrict__ part, int H, int splits)
{
    const int h = blockIdx.x, b = blockIdx.y;
    const float *pp = part + ((int64_t)b * H + h) * splits * (D + 2);
    float M = -INFINITY, L = 0.f;
    for (int s = 0; s < splits; s++) M = fmaxf(M, pp[(int64_t)s * (D + 2)]);
    // no key at all (a length below 1, which the op layer refuses): 0, as the flash kernel writes
    // for a row that sees no key, not exp(-inf - -inf) = NaN
    if (M == -INFINITY) M = 0.f;
    for (int s = 0; s < splits; s++) L += pp[(int64_t)s * (D + 2) + 1] * __expf(pp[(int64_t)s * (D + 2)] - M);
    const float inv = L > 0.f ? 1.f / L : 0.f;
    for (int d = threadIdx.x; d < D; d += blockDim.x) {
        float a = 0.f;
        for (int s = 0; s < splits; s++) a += pp[(int64_t)s * (D + 2) + 2 + d] * __expf(pp[(int64_t)s * (D + 2)] - M);
        out[((int64_t)b * H + h) * D + d] = from_f32<T>(a * inv);
    }
}

template <typename T, int D>
cudaError_t decode_launch(const nxk_attn_params &p, float *scratch, cudaStream_t s)
{
    const int splits = (p.Skv + kDecChunk - 1) / kDecChunk;
    decode_partial<T, D><<<dim3((unsigned)splits, (unsigned)p.H, (unsigned)p.B), 32 * kDecWarps, 0, s>>>(
        (const T *)p.q, (const T *)p.k, (const T *)p.v, scratch, p.Skv, p.kv_len, p.H, p.Hkv, p.scale, splits);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    decode_combine<T, D><<<dim3((unsigned)p.H, (unsigned)p.B), D, 0, s>>>((T *)p.out, scratch, p.H, splits);
    return cudaGetLastError();
}

}  // namespace
}  // namespace nxk

static bool decode_d(int D) { return D == 16 || D == 32 || D == 64 || D == 80 || D == 96 || D == 128; }

extern "C" int nxk_attention_decode_head_dim(int D) { return decode_d(D); }

// Sq 1, no mask (causal is then no restriction: the one query sees every key), the head dims of
// decode_d, Skv >= 1, H a multiple of Hkv.
extern "C" size_t nxk_attention_decode_scratch(const nxk_attn_params *p)
{
    // B and H go on gridDim.z / .y (at most 65535): a larger call is left to nxk_attention
    if (p->Sq != 1 || p->mask || !decode_d(p->D) || p->Skv < 1 || p->B < 1 || p->H < 1 || p->Hkv < 1 ||
        p->H % p->Hkv || p->B > 65535 || p->H > 65535 ||
        (p->dt != NXK_F32 && p->dt != NXK_F16 && p->dt != NXK_BF16))
        return 0;
    const size_t splits = ((size_t)p->Skv + nxk::kDecChunk - 1) / nxk::kDecChunk;
    return (size_t)p->B * (size_t)p->H * splits * (size_t)(p->D + 2) * sizeof(float);
}

extern "C" cudaError_t nxk_attention_decode(const nxk_attn_params *p, float *scratch, cudaStream_t s)
{
    using namespace nxk;
    if (!scratch || nxk_attention_decode_scratch(p) == 0) return cudaErrorInvalidValue;
    switch (p->D) {
    case 16: NXK_DISPATCH_FLOAT(p->dt, T, return (decode_launch<T, 16>(*p, scratch, s))); break;
    case 32: NXK_DISPATCH_FLOAT(p->dt, T, return (decode_launch<T, 32>(*p, scratch, s))); break;
    case 64: NXK_DISPATCH_FLOAT(p->dt, T, return (decode_launch<T, 64>(*p, scratch, s))); break;
    case 80: NXK_DISPATCH_FLOAT(p->dt, T, return (decode_launch<T, 80>(*p, scratch, s))); break;
    case 96: NXK_DISPATCH_FLOAT(p->dt, T, return (decode_launch<T, 96>(*p, scratch, s))); break;
    default: NXK_DISPATCH_FLOAT(p->dt, T, return (decode_launch<T, 128>(*p, scratch, s))); break;
    }
    return cudaErrorInvalidValue;
}
