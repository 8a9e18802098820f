// layout.cu — rope, get_rows, permute, resize, the timestep embedding.
#include "common.cuh"

#include "../lib/ops/timestep_math.h"

using namespace nxk;

namespace {

constexpr int kBlock = 256;


// dst[pos[i], :] = src[i, :], elements of 2 or 4 bytes moved as such; a row outside [0, R) is
// skipped (the host guarantees there is none: no flag and no sync, so a graph can hold it).
template <typename E>
__global__ void set_rows_kernel(E *dst, const E *src, const int32_t *pos, int64_t n, int64_t D, int64_t R)
{
    GRID_STRIDE(k, n * D) {
        const int64_t i = k / D, d = k % D;
        const int32_t r = pos[i];
        if (r >= 0 && r < R) dst[(int64_t)r * D + d] = src[k];
    }
}

// One thread per (timestep, frequency) pair; the odd dim's zero column by the i == 0 thread.
template <typename T>
__global__ void timestep_kernel(T *y, const float *t, int64_t B, nx_timestep_params p)
{
    const int half = p.dim / 2;
    GRID_STRIDE(k, B * (half > 0 ? half : 1)) {
        const int64_t b = half > 0 ? k / half : k;
        const int i = half > 0 ? (int)(k % half) : 0;
        T *o = y + b * p.dim;
        if (half > 0) {
            float sn, cs;
            int js, jc;
            nx_timestep_pair(&p, t[b], i, &sn, &cs, &js, &jc);
            o[js] = from_f32<T>(sn);
            o[jc] = from_f32<T>(cs);
        }
        if (i == 0 && (p.dim % 2)) o[p.dim - 1] = from_f32<T>(0.f);
    }
}

// One thread per rotated pair; pass-through dims are copied by rope_copy_kernel when y != x.
template <typename T>
__global__ void rope_kernel(T *y, const T *x, const int32_t *pos, int64_t rows, int64_t S, int64_t H, int64_t D,
                            int n_rot, float theta, int mode)
{
    // rows = B * S * H; row r is (b, s, h) with s = (r / H) % S. Each pair is read and written
    // by exactly one thread, so y may alias x.
    int64_t half = n_rot / 2;
    GRID_STRIDE(t, rows * half) {
        int64_t row = t / half, i = t - row * half;
        int64_t s = (row / H) % S;
        // inv_freq and angle in f32, like HF's LlamaRotaryEmbedding
        float inv_freq = powf(theta, -(float)(2 * i) / (float)n_rot);
        float ang = (float)pos[s] * inv_freq;
        float sn, cs;
        sincosf(ang, &sn, &cs);
        int64_t i0 = mode == 0 ? i : 2 * i;
        int64_t i1 = mode == 0 ? i + half : 2 * i + 1;
        const T *xr = x + row * D;
        T *yr = y + row * D;
        float a = to_f32(xr[i0]), b = to_f32(xr[i1]);
        yr[i0] = from_f32<T>(a * cs - b * sn);
        yr[i1] = from_f32<T>(b * cs + a * sn);
    }
}

template <typename T>
__global__ void rope_copy_kernel(T *y, const T *x, int64_t rows, int64_t D, int n_rot)
{
    int64_t rest = D - n_rot;
    GRID_STRIDE(t, rows * rest) {
        int64_t row = t / rest, i = n_rot + (t - row * rest);
        y[row * D + i] = x[row * D + i];
    }
}

template <typename Y, typename Tb>
__global__ void get_rows_kernel(Y *y, const Tb *table, const int32_t *ids, int64_t n, int64_t D, int64_t V,
                                int32_t *bad_pos)
{
    GRID_STRIDE(t, n * D) {
        int64_t r = t / D, c = t - r * D;
        int32_t id = ids[r];
        if (id < 0 || id >= V) {
            if (c == 0) atomicMin(bad_pos, (int32_t)r);
            y[t] = from_f32<Y>(0.f);
            continue;
        }
        y[t] = from_f32<Y>(to_f32(table[(int64_t)id * D + c]));
    }
}

struct perm_args {
    int rank;
    int64_t yne[NXK_MAX_DIMS];  // y's shape
    int64_t xs[NXK_MAX_DIMS];   // x's stride of the x dim that y dim i comes from
};

template <typename E>
__global__ void permute_kernel(E *y, const E *x, int64_t n, perm_args a)
{
    GRID_STRIDE(t, n) {
        int64_t r = t, off = 0;
        for (int d = a.rank - 1; d >= 0; d--) {
            int64_t c = r % a.yne[d];
            r /= a.yne[d];
            off += c * a.xs[d];
        }
        y[t] = x[off];
    }
}

// The CPU backend's make_ix (lib/ops/cpu/layout.c: PyTorch's area_pixel_compute_source_index
// in float) with the same operations in the same order and no FMA contraction, so that the two
// backends pick the same taps and weights bit for bit.
__device__ __forceinline__ void lerp_index(int64_t d, int64_t in, int64_t out, int align, int64_t *i0, int64_t *i1,
                                           float *l0, float *l1)
{
    const float sc = align ? (out > 1 ? __fdiv_rn((float)(in - 1), (float)(out - 1)) : 0.0f)
                           : __fdiv_rn((float)in, (float)out);
    float src = align ? __fmul_rn(sc, (float)d) : __fsub_rn(__fmul_rn(sc, __fadd_rn((float)d, 0.5f)), 0.5f);
    if (!align && src < 0.0f) src = 0.0f;
    int64_t i = (int64_t)floorf(src);
    if (i > in - 1) i = in - 1;
    float l = __fsub_rn(src, (float)i);
    l = l < 0.0f ? 0.0f : l > 1.0f ? 1.0f : l;
    *i0 = i;
    *i1 = i + (i < in - 1 ? 1 : 0);
    *l0 = __fsub_rn(1.0f, l);
    *l1 = l;
}

template <typename T>
__global__ void resize_kernel(T *y, const T *x, int64_t P, int64_t H, int64_t W, int64_t I, int64_t Ho, int64_t Wo,
                              int mode, int align_corners)
{
    // x [P, H, W, I]: the pixel (sy, sx) of plane p is I elements at xp + (sy * W + sx) * I
    GRID_STRIDE(t, P * Ho * Wo * I) {
        int64_t i = t % I, q = t / I;
        int64_t ox = q % Wo, oy = (q / Wo) % Ho, p = q / (Wo * Ho);
        const T *xp = x + p * H * W * I + i;
        if (mode == 0) {  // nearest: src = floor(dst * in / out), as PyTorch's "nearest"
            int64_t sy = (int64_t)floorf((float)oy * ((float)H / (float)Ho));
            int64_t sx = (int64_t)floorf((float)ox * ((float)W / (float)Wo));
            if (sy > H - 1) sy = H - 1;
            if (sx > W - 1) sx = W - 1;
            y[t] = xp[(sy * W + sx) * I];
            continue;
        }
        int64_t y0, y1, x0, x1;
        float ly0, ly1, lx0, lx1;
        lerp_index(oy, H, Ho, align_corners, &y0, &y1, &ly0, &ly1);
        lerp_index(ox, W, Wo, align_corners, &x0, &x1, &lx0, &lx1);
        float v00 = to_f32(xp[(y0 * W + x0) * I]), v01 = to_f32(xp[(y0 * W + x1) * I]);
        float v10 = to_f32(xp[(y1 * W + x0) * I]), v11 = to_f32(xp[(y1 * W + x1) * I]);
        const float top = __fadd_rn(__fmul_rn(lx0, v00), __fmul_rn(lx1, v01));
        const float bot = __fadd_rn(__fmul_rn(lx0, v10), __fmul_rn(lx1, v11));
        const float v = __fadd_rn(__fmul_rn(ly0, top), __fmul_rn(ly1, bot));
        y[t] = from_f32<T>(v);
    }
}

}  // namespace

extern "C" cudaError_t nxk_rope(void *y, const void *x, int dt, const int32_t *pos, int64_t B, int64_t S, int64_t H,
                                int64_t D, int n_rot, float theta, int mode, cudaStream_t s)
{
    if (B <= 0 || S <= 0 || H <= 0 || D <= 0) return cudaSuccess;
    if (n_rot < 0 || (n_rot & 1) || n_rot > D) return cudaErrorInvalidValue;
    int64_t rows = B * S * H;
    if (n_rot > 0)
        NXK_DISPATCH_FLOAT(dt, T, rope_kernel<<<grid_for(rows * (n_rot / 2), kBlock), kBlock, 0, s>>>((T *)y, (const T *)x, pos, rows, S, H, D, n_rot, theta, mode));
    if (y != x && n_rot < D)
        NXK_DISPATCH_FLOAT(dt, T, rope_copy_kernel<<<grid_for(rows * (D - n_rot), kBlock), kBlock, 0, s>>>((T *)y, (const T *)x, rows, D, n_rot));
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_get_rows(void *y, int y_dt, const void *table, int t_dt, const int32_t *ids, int64_t n,
                                    int64_t D, int64_t V, int32_t *bad_pos, cudaStream_t s)
{
    if (n <= 0 || D <= 0) return cudaSuccess;
    unsigned g = grid_for(n * D, kBlock);
    NXK_DISPATCH_FLOAT(y_dt, Y, {
        switch (t_dt) {
        case NXK_F32: get_rows_kernel<<<g, kBlock, 0, s>>>((Y *)y, (const float *)table, ids, n, D, V, bad_pos); break;
        case NXK_F16: get_rows_kernel<<<g, kBlock, 0, s>>>((Y *)y, (const __half *)table, ids, n, D, V, bad_pos); break;
        case NXK_BF16: get_rows_kernel<<<g, kBlock, 0, s>>>((Y *)y, (const __nv_bfloat16 *)table, ids, n, D, V, bad_pos); break;
        default: return cudaErrorInvalidValue;
        }
    });
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_permute(void *y, const void *x, int elsize, int rank, const int64_t *ne, const int *perm,
                                   cudaStream_t s)
{
    if (rank < 0 || rank > NXK_MAX_DIMS) return cudaErrorInvalidValue;
    perm_args a;
    a.rank = rank;
    int64_t xs[NXK_MAX_DIMS], st = 1, n = 1;
    for (int d = rank - 1; d >= 0; d--) {
        xs[d] = st;
        st *= ne[d];
    }
    for (int d = 0; d < rank; d++) {
        if (perm[d] < 0 || perm[d] >= rank) return cudaErrorInvalidValue;
        a.yne[d] = ne[perm[d]];
        a.xs[d] = xs[perm[d]];
        n *= a.yne[d];
    }
    if (rank == 0) {
        a.rank = 1;
        a.yne[0] = 1;
        a.xs[0] = 0;
        n = 1;
    }
    if (n <= 0) return cudaSuccess;
    unsigned g = grid_for(n, kBlock);
    switch (elsize) {
    case 1: permute_kernel<<<g, kBlock, 0, s>>>((uint8_t *)y, (const uint8_t *)x, n, a); break;
    case 2: permute_kernel<<<g, kBlock, 0, s>>>((uint16_t *)y, (const uint16_t *)x, n, a); break;
    case 4: permute_kernel<<<g, kBlock, 0, s>>>((uint32_t *)y, (const uint32_t *)x, n, a); break;
    case 8: permute_kernel<<<g, kBlock, 0, s>>>((uint64_t *)y, (const uint64_t *)x, n, a); break;
    default: return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_resize(void *y, const void *x, int dt, int64_t P, int64_t H, int64_t W, int64_t I, int64_t Ho,
                                  int64_t Wo, int mode, int align_corners, cudaStream_t s)
{
    int64_t n = P * Ho * Wo * I;
    if (n <= 0) return cudaSuccess;
    if (H <= 0 || W <= 0) return cudaErrorInvalidValue;
    NXK_DISPATCH_FLOAT(dt, T, resize_kernel<<<grid_for(n, kBlock), kBlock, 0, s>>>((T *)y, (const T *)x, P, H, W, I, Ho, Wo, mode, align_corners));
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_timestep_embedding(void *y, int dt, const float *t, int64_t B, const nx_timestep_params *p,
                                              cudaStream_t s)
{
    if (B <= 0 || p->dim <= 0) return cudaSuccess;
    const int64_t n = B * (p->dim / 2 > 0 ? p->dim / 2 : 1);
    NXK_DISPATCH_FLOAT(dt, T, timestep_kernel<<<grid_for(n, kBlock), kBlock, 0, s>>>((T *)y, t, B, *p));
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_set_rows(void *dst, const void *src, int elsize, const int32_t *pos, int64_t n, int64_t D,
                                    int64_t R, cudaStream_t s)
{
    if (n <= 0 || D <= 0) return cudaSuccess;
    if (elsize == 4)
        set_rows_kernel<uint32_t><<<grid_for(n * D, kBlock), kBlock, 0, s>>>((uint32_t *)dst, (const uint32_t *)src, pos, n, D, R);
    else if (elsize == 2)
        set_rows_kernel<uint16_t><<<grid_for(n * D, kBlock), kBlock, 0, s>>>((uint16_t *)dst, (const uint16_t *)src, pos, n, D, R);
    else
        return cudaErrorInvalidValue;
    return cudaGetLastError();
}
