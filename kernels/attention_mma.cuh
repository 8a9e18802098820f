// attention_mma.cuh — tensor-core flash-attention forward (FlashAttention-2 style) for F16/BF16,
// instantiated per head dim by attention_mma_hd*.cu and chosen by attention.cu when it applies
// (F16/BF16, no mask, head dim 40/64/80/128/160, 16-byte aligned tensors, sm_80 or newer).
// Everything else keeps the CUDA-core kernel of attention.cuh, which is also the reference the
// parity test (tests/gpu/test_ops_cuda.c) holds this one to.
//
// Organisation. One block of 4 warps per (BQ-query tile, head, batch item); warp w owns MT
// m-tiles of 16 query rows (rows 16*MT*w ..) for the whole key loop, so the online-softmax state
// of a row never leaves its warp (BQ = 128 for D <= 128, 64 for D 160: see cfg). Per key tile of
// BK keys (64; 32 for D 160):
//   S[16 x BK]  = Q[16 x D] . K^T        mma.sync m16n8k16, f16/bf16 in, f32 accumulate
//   online softmax of S in f32 registers (base-2 exponentials, scale * log2(e) folded in)
//   O[16 x D]  += P[16 x BK] . V         P rounded to f16/bf16 straight from S's registers
// and O / l is rounded once to the storage dtype at the end.
//
// Memory. Q (BQ rows) and two stages of K and V (BK rows each) live in shared memory as the
// storage dtype, rows padded from D to DP (next multiple of 16: the k step of the mma) with
// zeros, plus 8 more elements so that the 8 row addresses of one ldmatrix phase fall in distinct
// 16-byte bank groups (row strides of 112/144/176/272/336 bytes). Tiles arrive by cp.async
// (16-byte chunks; rows past Sq/Skv are zero-filled by a zero source size), double-buffered: tile
// t+1 is in flight while tile t is computed. Q's fragments are loaded into registers once
// (D <= 80 and 160) or re-read from shared memory per k step (D 128).
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16" with .f16/.bf16), with
// g = lane / 4 (groupID) and c = lane % 4 (threadID_in_group); each .b32 register holds two
// consecutive-column elements, the lower column in the low half:
//   A 16x16 (row): a0 = (g, 2c..2c+1)   a1 = (g+8, 2c..)   a2 = (g, 2c+8..)   a3 = (g+8, 2c+8..)
//   B 16x8  (col): b0 = (k 2c..2c+1, n g)                  b1 = (k 2c+8..2c+9, n g)
//   C 16x8  (f32): c0,c1 = (g, 2c..2c+1)                   c2,c3 = (g+8, 2c..2c+1)
// ldmatrix .x4 loads four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i,
// and register i of lane l receives row l/4, columns 2(l%4)..+1 of matrix i (.trans: column l/4,
// rows 2(l%4)..+1, i.e. the transpose). Hence:
//   - Q (row-major [query][d]) non-transposed gives A directly: lane l addresses row l%16,
//     column 8*(l/16) of the 16x16 block (matrices: rows 0-7/8-15 x cols 0-7, then cols 8-15).
//   - K (row-major [key][d]) non-transposed gives B of S = Q K^T (B[k=d][n=key] = K[key][d]):
//     matrix (key block, d half) -> lane l addresses key 8*(l/16) + l%8, d 8*((l/8)%2), so the
//     registers are {b0, b1} of key block n and {b0, b1} of key block n+1.
//   - V (row-major [key][d]) transposed gives B of O = P V (B[k=key][n=d] = V[key][d]): lane l
//     addresses key 8*((l/8)%2) + l%8, d 8*(l/16): {b0, b1} of d block n, then of d block n+1.
//   - S's C fragments of key blocks 2j and 2j+1 are exactly A of P's k-slice j: a0 = S[2j].c0c1,
//     a1 = S[2j].c2c3, a2 = S[2j+1].c0c1, a3 = S[2j+1].c2c3 (no shuffles, as in FA2).
// A row's 2 x (BK/8) scores sit in the 4 lanes of one quad (same g), so row max/sum are two
// xor-shuffles (1, 2). The running sum l stays per-lane partial until the end (every lane of the
// quad scales it by the same factor).
#pragma once

#include "common.cuh"

namespace nxk {
namespace attn_mma {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;

// Per head dim: MT m-tiles of 16 query rows per warp (2 halves the shared-memory reads per mma:
// each K/V fragment feeds MT mmas), BK keys per tile, and whether Q's A fragments stay in
// registers for the whole key loop (QREG) or are re-read from shared memory per k step (D 128:
// O (MT x DP/2 floats a lane) + S (MT x BK/2) + Q (MT x DP/4) would not fit in 255 registers).
// Chosen on an H200 (F16, 4096 x 4096 non-causal; see bench/RESULTS.md): MT 2 over 1 took D 64
// from 209 to 250 TFLOP/s and D 80 from 210 to 254; for D 128, MT 2 with BK 64 (296, despite 88
// bytes of register spill) beat MT 2 with BK 32 (264) and MT 1 with BK 64 (210). D 160 keeps
// MT 1 / BK 32 (168 registers, no spill).
template <int D> struct cfg {
    static_assert(D % 8 == 0, "rows are copied in 16-byte chunks");
    static constexpr int DP = (D + 15) / 16 * 16;  // head dim padded to the mma's K step
    static constexpr int LD = DP + 8;              // shared row stride (elements): bank-conflict-free ldmatrix
    static constexpr int MT = D <= 128 ? 2 : 1;    // 16-row m-tiles per warp
    static constexpr bool QREG = D <= 80 || MT == 1;
    static constexpr int BK = D <= 128 ? 64 : 32;  // keys per tile
    static constexpr int BQ = 16 * MT * kWarps;    // query rows per block
    static constexpr int CH = D / 8;               // 16-byte chunks per row in global memory
    static constexpr size_t smem = (size_t)(BQ + 4 * BK) * LD * 2;  // Q + 2 stages of K and V
};

// ---- PTX wrappers ----

__device__ __forceinline__ uint32_t smem_addr(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

// 16 bytes global -> shared, bypassing L1; with in = false nothing is read and 16 zeros are
// written (src must still be a valid address).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void *src, bool in)
{
    const int n = in ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory"); }

__device__ __forceinline__ void ldsm_x4(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr)
                 : "memory");  // orders the read after cp.async.wait + barrier
}
__device__ __forceinline__ void ldsm_x4_t(uint32_t &r0, uint32_t &r1, uint32_t &r2, uint32_t &r3, uint32_t addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r0), "=r"(r1), "=r"(r2), "=r"(r3)
                 : "r"(addr)
                 : "memory");  // orders the read after cp.async.wait + barrier
}

// c += a . b for one m16n8k16 tile (f32 accumulators)
template <typename T> __device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1);
template <> __device__ __forceinline__ void mma16816<__half>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
                 "{%0, %1, %2, %3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// two f32 -> one .b32 of two f16/bf16 (lo in the low half: the lower column of a fragment pair)
template <typename T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <> __device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi)
{
    __half2 v = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}
template <> __device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi)
{
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

// Copy rows [row0, row0 + nrows) of a [*, stride] global array (row r at src + r * stride, D
// elements each) into shared rows of LD elements; rows at or past `limit` are zero-filled.
template <typename T, int D>
__device__ __forceinline__ void load_tile(T *dst, const T *src, int64_t stride, int row0, int nrows, int limit)
{
    constexpr int CH = cfg<D>::CH, LD = cfg<D>::LD;
    for (int i = threadIdx.x; i < nrows * CH; i += kThreads) {
        const int r = i / CH, ch = i - r * CH;
        const bool in = row0 + r < limit;
        const T *s = in ? src + (int64_t)(row0 + r) * stride + ch * 8 : src;
        cp_async16(smem_addr(dst + r * LD + ch * 8), s, in);
    }
}

template <typename T, int D>
__global__ void __launch_bounds__(kThreads) attn_mma_kernel(nxk_attn_params p)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    using C = cfg<D>;
    constexpr int DP = C::DP, LD = C::LD, BK = C::BK, MT = C::MT, BQ = C::BQ;
    constexpr bool QREG = C::QREG;
    constexpr int KS = DP / 16;  // k steps of Q K^T
    constexpr int NS = BK / 8;   // 8-key blocks of S
    constexpr int NO = DP / 8;   // 8-dim blocks of O
    extern __shared__ __align__(16) unsigned char smem_raw[];
    T *Qs = reinterpret_cast<T *>(smem_raw);  // [BQ][LD]
    T *Ks = Qs + BQ * LD;                     // [2][BK][LD]
    T *Vs = Ks + 2 * BK * LD;                 // [2][BK][LD]

    const int b = blockIdx.z, h = blockIdx.y, q0 = blockIdx.x * BQ;
    const int hk = h / (p.H / p.Hkv);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int g = lane >> 2, c = lane & 3;
    const int off = p.Skv - p.Sq;  // causal: key j visible to query i iff j <= i + off
    const int64_t qstride = (int64_t)p.H * D, kstride = (int64_t)p.Hkv * D;
    const T *qg = (const T *)p.q + (int64_t)b * p.Sq * qstride + (int64_t)h * D;
    const T *kg = (const T *)p.k + (int64_t)b * p.Skv * kstride + (int64_t)hk * D;
    const T *vg = (const T *)p.v + (int64_t)b * p.Skv * kstride + (int64_t)hk * D;

    // Keys this block needs: all, or (causal) up to the one its last row sees.
    const int qlast = min(q0 + BQ, p.Sq) - 1;
    const int kend = p.causal ? min(p.Skv, qlast + off + 1) : p.Skv;
    const int ntiles = kend > 0 ? (kend + BK - 1) / BK : 0;

    // Zero the padding columns D..DP-1 of every shared row once (cp.async never writes them):
    // zeros in Q and K keep the dot products exact; in V they only feed discarded output columns.
    if constexpr (DP != D) {
        constexpr int PADCH = (DP - D) / 8;
        for (int i = threadIdx.x; i < (BQ + 4 * BK) * PADCH; i += kThreads) {
            const int r = i / PADCH, ch = i - r * PADCH;
            *reinterpret_cast<uint4 *>(Qs + r * LD + D + ch * 8) = make_uint4(0, 0, 0, 0);
        }
    }

    if (ntiles > 0) {  // prologue: Q and tile 0 in one group
        load_tile<T, D>(Qs, qg, qstride, q0, BQ, p.Sq);
        load_tile<T, D>(Ks, kg, kstride, 0, BK, p.Skv);
        load_tile<T, D>(Vs, vg, kstride, 0, BK, p.Skv);
        cp_async_commit();
    }

    // Warp w owns block rows 16*MT*w .. 16*MT*w + 16*MT - 1; m-tile mt is the 16 rows at
    // 16*MT*w + 16*mt, of which this lane holds rows g and g + 8 (index r = 0, 1 below).
    const int wrow = warp * 16 * MT;
    // lane's ldmatrix address of Q's A fragment: row l%16 of the m-tile, column 8*(l/16) of the k step
    const T *qsm = Qs + (wrow + (lane & 15)) * LD + (lane >> 4) * 8;
    uint32_t qf[QREG ? MT : 1][QREG ? KS : 1][4];  // with QREG: all of Q's A fragments, loaded once
    float o[MT][NO][4];    // O accumulator: rows g / g+8 of m-tile mt, dims 8n + 2c, +1
    float m[MT][2], l[MT][2];  // running max (base-2 scaled scores) and this lane's partial sum
#pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
#pragma unroll
        for (int n = 0; n < NO; n++) o[mt][n][0] = o[mt][n][1] = o[mt][n][2] = o[mt][n][3] = 0.f;
    }
    const float sl2 = p.scale * 1.4426950408889634f;  // scale * log2(e): exp(x*scale) = exp2(x*sl2)

    for (int t = 0; t < ntiles; t++) {
        const int buf = t & 1;
        if (t + 1 < ntiles) {  // prefetch tile t+1 into the other stage (freed by the barrier ending t-1)
            load_tile<T, D>(Ks + (buf ^ 1) * BK * LD, kg, kstride, (t + 1) * BK, BK, p.Skv);
            load_tile<T, D>(Vs + (buf ^ 1) * BK * LD, vg, kstride, (t + 1) * BK, BK, p.Skv);
            cp_async_commit();
            cp_async_wait<1>();  // everything but the newest group: tile t (and Q) has landed
        } else {
            cp_async_wait<0>();
        }
        __syncthreads();  // ... for every thread's copies
        const T *Kt = Ks + buf * BK * LD;
        const T *Vt = Vs + buf * BK * LD;

        if constexpr (QREG) {
            if (t == 0) {
#pragma unroll
                for (int mt = 0; mt < MT; mt++)
#pragma unroll
                    for (int ks = 0; ks < KS; ks++)
                        ldsm_x4(qf[mt][ks][0], qf[mt][ks][1], qf[mt][ks][2], qf[mt][ks][3],
                                smem_addr(qsm + mt * 16 * LD + ks * 16));
            }
        }

        // S = Q K^T (unscaled), key block n covers keys 8n..8n+7 of the tile
        float s[MT][NS][4];
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < NS; n++) s[mt][n][0] = s[mt][n][1] = s[mt][n][2] = s[mt][n][3] = 0.f;
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            uint32_t qa[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                if constexpr (QREG) {
                    qa[mt][0] = qf[mt][ks][0], qa[mt][1] = qf[mt][ks][1], qa[mt][2] = qf[mt][ks][2], qa[mt][3] = qf[mt][ks][3];
                } else {
                    ldsm_x4(qa[mt][0], qa[mt][1], qa[mt][2], qa[mt][3], smem_addr(qsm + mt * 16 * LD + ks * 16));
                }
            }
#pragma unroll
            for (int n = 0; n < NS; n += 2) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4(b0, b1, b2, b3, smem_addr(Kt + (n * 8 + (lane >> 4) * 8 + (lane & 7)) * LD + ks * 16 + ((lane >> 3) & 1) * 8));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(s[mt][n], qa[mt], b0, b1);
                    mma16816<T>(s[mt][n + 1], qa[mt], b2, b3);
                }
            }
        }

        // Scale to base 2 and mask: keys past Skv (tail tile) and, causal, keys past i + off.
        // Only tiles that reach past the block's first row's horizon or past Skv need the test.
        const int k0 = t * BK;
        const bool need_mask = k0 + BK > p.Skv || (p.causal && k0 + BK - 1 > q0 + off);
#pragma unroll
        for (int mt = 0; mt < MT; mt++)
#pragma unroll
            for (int n = 0; n < NS; n++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    float x = s[mt][n][e] * sl2;
                    if (need_mask) {
                        const int j = k0 + n * 8 + 2 * c + (e & 1), i = q0 + wrow + mt * 16 + g + (e >> 1) * 8;
                        if (j >= p.Skv || (p.causal && j > i + off)) x = -INFINITY;
                    }
                    s[mt][n][e] = x;
                }

        // Online softmax: new row max over the tile (quad-wide), rescale O and l, P = exp2(S - m).
#pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            float mx[2] = {m[mt][0], m[mt][1]};
#pragma unroll
            for (int n = 0; n < NS; n++) {
                mx[0] = fmaxf(mx[0], fmaxf(s[mt][n][0], s[mt][n][1]));
                mx[1] = fmaxf(mx[1], fmaxf(s[mt][n][2], s[mt][n][3]));
            }
            float corr[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
                // a row that has seen no visible key yet keeps m = -inf; subtract 0 instead so that
                // exp2(-inf - -inf) never makes a NaN (its P and correction are then both 0)
                const float mu = mx[r] == -INFINITY ? 0.f : mx[r];
                corr[r] = exp2f(m[mt][r] - mu);  // 0 on the first visible tile (m = -inf)
                m[mt][r] = mx[r];
                mx[r] = mu;
            }
            float rs[2] = {0.f, 0.f};
#pragma unroll
            for (int n = 0; n < NS; n++) {
                s[mt][n][0] = exp2f(s[mt][n][0] - mx[0]);
                s[mt][n][1] = exp2f(s[mt][n][1] - mx[0]);
                s[mt][n][2] = exp2f(s[mt][n][2] - mx[1]);
                s[mt][n][3] = exp2f(s[mt][n][3] - mx[1]);
                rs[0] += s[mt][n][0] + s[mt][n][1];
                rs[1] += s[mt][n][2] + s[mt][n][3];
            }
            l[mt][0] = l[mt][0] * corr[0] + rs[0];
            l[mt][1] = l[mt][1] * corr[1] + rs[1];
#pragma unroll
            for (int n = 0; n < NO; n++) {
                o[mt][n][0] *= corr[0], o[mt][n][1] *= corr[0];
                o[mt][n][2] *= corr[1], o[mt][n][3] *= corr[1];
            }
        }

        // O += P V: k-slice j of P (keys 16j..16j+15) is S's key blocks 2j and 2j+1
#pragma unroll
        for (int j = 0; j < BK / 16; j++) {
            uint32_t a[MT][4];
#pragma unroll
            for (int mt = 0; mt < MT; mt++) {
                a[mt][0] = pack2<T>(s[mt][2 * j][0], s[mt][2 * j][1]);
                a[mt][1] = pack2<T>(s[mt][2 * j][2], s[mt][2 * j][3]);
                a[mt][2] = pack2<T>(s[mt][2 * j + 1][0], s[mt][2 * j + 1][1]);
                a[mt][3] = pack2<T>(s[mt][2 * j + 1][2], s[mt][2 * j + 1][3]);
            }
#pragma unroll
            for (int n = 0; n < NO; n += 2) {
                uint32_t b0, b1, b2, b3;
                ldsm_x4_t(b0, b1, b2, b3, smem_addr(Vt + (j * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * LD + n * 8 + (lane >> 4) * 8));
#pragma unroll
                for (int mt = 0; mt < MT; mt++) {
                    mma16816<T>(o[mt][n], a[mt], b0, b1);
                    mma16816<T>(o[mt][n + 1], a[mt], b2, b3);
                }
            }
        }
        __syncthreads();  // every warp is done with stage buf before the next prefetch overwrites it
    }

    // Epilogue: full row sums, normalise, round once. A row that saw no key at all (causal with
    // Sq > Skv) has l = 0 and is written as 0, like the CUDA-core kernel.
    T *og = (T *)p.out + (int64_t)b * p.Sq * qstride + (int64_t)h * D;
#pragma unroll
    for (int mt = 0; mt < MT; mt++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum = l[mt][r];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = sum > 0.f ? 1.f / sum : 0.f;
            const int i = q0 + wrow + mt * 16 + g + r * 8;
            if (i >= p.Sq) continue;
            T *orow = og + (int64_t)i * qstride;
#pragma unroll
            for (int n = 0; n < NO; n++) {
                const int d = n * 8 + 2 * c;
                if (d < D) *reinterpret_cast<uint32_t *>(orow + d) = pack2<T>(o[mt][n][2 * r] * inv, o[mt][n][2 * r + 1] * inv);
            }
        }
#endif
}

// true when the mma kernel handles p (the caller checked D and dt)
bool usable(const nxk_attn_params &p);

template <typename T, int D>
cudaError_t launch(const nxk_attn_params &p, cudaStream_t s)
{
    if (p.Hkv <= 0 || p.H % p.Hkv || p.H > 65535 || p.B > 65535) return cudaErrorInvalidValue;
    auto kern = attn_mma_kernel<T, D>;
    constexpr size_t smem = cfg<D>::smem;
    if (smem > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute((const void *)kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) return e;
    }
    constexpr int BQ = cfg<D>::BQ;
    dim3 grid((unsigned)((p.Sq + BQ - 1) / BQ), (unsigned)p.H, (unsigned)p.B);
    kern<<<grid, kThreads, smem, s>>>(p);
    return cudaGetLastError();
}

template <int D>
cudaError_t dispatch_dtype(const nxk_attn_params &p, cudaStream_t s)
{
    switch (p.dt) {
    case NXK_F16: return launch<__half, D>(p, s);
    case NXK_BF16: return launch<__nv_bfloat16, D>(p, s);
    default: return cudaErrorInvalidValue;
    }
}

// one per attention_mma_hd*.cu
cudaError_t fwd_hd40(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd64(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd80(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd128(const nxk_attn_params &p, cudaStream_t s);
cudaError_t fwd_hd160(const nxk_attn_params &p, cudaStream_t s);

}  // namespace attn_mma
}  // namespace nxk
