// norm.cu — row reductions: rms_norm, layer_norm, group_norm (+SiLU; NCHW or channels last),
// softmax, argmax.
// One block per row (per (n, group) for group_norm); statistics in f32, two passes over the
// row for mean/variance (no single-pass cancellation).
#include "common.cuh"

using namespace nxk;

namespace {

constexpr int kBlock = 256;

// y = x * rsqrt(ss / cols + eps) * w over one row, ss this thread's share of the sum of squares
template <typename T>
__device__ void rms_scale_row(T *yr, const T *xr, const void *w, int w_dt, int64_t cols, float eps, float ss, float *sh)
{
    ss = block_sum(ss, sh);
    float r = rsqrtf(ss / (float)cols + eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = to_f32(xr[i]) * r;
        if (w) v *= load_dyn(w, w_dt, i);
        yr[i] = from_f32<T>(v);
    }
}

template <typename T>
__global__ void rms_norm_kernel(T *y, const T *x, const void *w, int w_dt, int64_t cols, float eps)
{
    __shared__ float sh[32];
    const T *xr = x + blockIdx.x * cols;
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = to_f32(xr[i]);
        ss += v * v;
    }
    rms_scale_row(y + blockIdx.x * cols, xr, w, w_dt, cols, eps, ss, sh);
}

// x += r, then the rms_norm of the stored (rounded) row: the same numbers as the binary add's
// kernel followed by rms_norm_kernel. Each thread re-reads only the elements it wrote itself.
template <typename T>
__global__ void rms_norm_add_kernel(T *y, T *x, const T *r, const void *w, int w_dt, int64_t cols, float eps)
{
    __shared__ float sh[32];
    T *xr = x + blockIdx.x * cols;
    const T *rr = r + blockIdx.x * cols;
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        const T s = from_f32<T>(to_f32(xr[i]) + to_f32(rr[i]));
        xr[i] = s;
        const float v = to_f32(s);
        ss += v * v;
    }
    rms_scale_row(y + blockIdx.x * cols, xr, w, w_dt, cols, eps, ss, sh);
}

template <typename T>
__global__ void layer_norm_kernel(T *y, const T *x, const void *w, int w_dt, const void *b, int b_dt, int64_t cols,
                                  float eps)
{
    __shared__ float sh[32];
    const T *xr = x + blockIdx.x * cols;
    T *yr = y + blockIdx.x * cols;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += to_f32(xr[i]);
    float mean = block_sum(s, sh) / (float)cols;
    float sq = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float d = to_f32(xr[i]) - mean;
        sq += d * d;
    }
    float r = rsqrtf(block_sum(sq, sh) / (float)cols + eps);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
        float v = (to_f32(xr[i]) - mean) * r;
        if (w) v *= load_dyn(w, w_dt, i);
        if (b) v += load_dyn(b, b_dt, i);
        yr[i] = from_f32<T>(v);
    }
}

// y[i] = (x[i] - mean) r, times w and plus b of its channel (c0 + i / S), SiLU'd, for the
// block's share of i in [lo, hi): the normalising pass of both group_norm kernels.
template <typename T>
__device__ __forceinline__ void group_norm_out(T *yr, const T *xr, int64_t lo, int64_t hi, float mean, float r,
                                               const void *w, int w_dt, const void *b, int b_dt, int64_t c0, int64_t S,
                                               int silu)
{
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        const int64_t c = c0 + i / S;
        float v = (to_f32(xr[i]) - mean) * r;
        if (w) v *= load_dyn(w, w_dt, c);
        if (b) v += load_dyn(b, b_dt, c);
        if (silu) v = v / (1.f + expf(-v));
        yr[i] = from_f32<T>(v);
    }
}

// grid: N * groups blocks; the group's (C / groups) channels x S positions are contiguous.
template <typename T>
__global__ void group_norm_kernel(T *y, const T *x, const void *w, int w_dt, const void *b, int b_dt, int64_t C,
                                  int64_t S, int groups, float eps, int silu)
{
    __shared__ float sh[32];
    int64_t cpg = C / groups;
    int g = blockIdx.x % groups;
    int64_t len = cpg * S;
    int64_t base = (int64_t)blockIdx.x * len;  // == (n * C + g * cpg) * S
    const T *xr = x + base;
    T *yr = y + base;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) s += to_f32(xr[i]);
    float mean = block_sum(s, sh) / (float)len;
    float sq = 0.f;
    for (int64_t i = threadIdx.x; i < len; i += blockDim.x) {
        float d = to_f32(xr[i]) - mean;
        sq += d * d;
    }
    float r = rsqrtf(block_sum(sq, sh) / (float)len + eps);
    group_norm_out(yr, xr, 0, len, mean, r, w, w_dt, b, b_dt, g * cpg, S, silu);
}

// Large groups (the SD VAE's: 4 channels x 512^2 positions = 1M elements, 32 groups) would leave
// one block per group streaming megabytes while most SMs idle. Then each group is cut into
// chunks of kGnChunk elements: one block per chunk writes the chunk's mean and M2 (sum of squared
// deviations from that mean, two passes over the chunk, the second from cache), and a second
// kernel's blocks, one per chunk again, combine their group's partials (Chan et al.'s parallel
// variance, no single-pass cancellation) and normalise their chunk.
constexpr int64_t kGnChunk = 8192;

template <typename T>
__global__ void group_norm_stats_kernel(float2 *part, const T *x, int64_t len, int64_t splits)
{
    __shared__ float sh[32];
    const int64_t row = blockIdx.x / splits, sp = blockIdx.x % splits;
    const int64_t lo = sp * kGnChunk, hi = lo + kGnChunk < len ? lo + kGnChunk : len;
    const T *xr = x + row * len;
    float s = 0.f;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) s += to_f32(xr[i]);
    const float mean = block_sum(s, sh) / (float)(hi - lo);
    float sq = 0.f;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) {
        float d = to_f32(xr[i]) - mean;
        sq += d * d;
    }
    sq = block_sum(sq, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = make_float2(mean, sq);
}

// (n, mean, m2) += (nb, mb, m2b)
__device__ __forceinline__ void chan_add(float &n, float &mean, float &m2, float nb, float mb, float m2b)
{
    const float nn = n + nb;
    if (nn <= 0.f) return;
    const float d = mb - mean;
    mean += d * (nb / nn);
    m2 += m2b + d * d * (n * nb / nn);
    n = nn;
}

template <typename T>
__global__ void group_norm_apply_kernel(T *y, const T *x, const float2 *part, const void *w, int w_dt, const void *b,
                                        int b_dt, int64_t C, int64_t S, int groups, int64_t len, int64_t splits,
                                        float eps, int silu)
{
    __shared__ float stat[2];
    const int64_t row = blockIdx.x / splits, sp = blockIdx.x % splits;
    if (threadIdx.x < 32) { // one warp combines the group's partials
        float n = 0.f, mean = 0.f, m2 = 0.f;
        for (int64_t k = threadIdx.x; k < splits; k += 32) {
            const int64_t klo = k * kGnChunk, khi = klo + kGnChunk < len ? klo + kGnChunk : len;
            const float2 p = part[row * splits + k];
            chan_add(n, mean, m2, (float)(khi - klo), p.x, p.y);
        }
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            const float nb = __shfl_down_sync(0xffffffffu, n, o), mb = __shfl_down_sync(0xffffffffu, mean, o),
                        m2b = __shfl_down_sync(0xffffffffu, m2, o);
            chan_add(n, mean, m2, nb, mb, m2b);
        }
        if (threadIdx.x == 0) stat[0] = mean, stat[1] = rsqrtf(m2 / (float)len + eps);
    }
    __syncthreads();
    const float mean = stat[0], r = stat[1];
    const int64_t cpg = C / groups, g = row % groups;
    const int64_t lo = sp * kGnChunk, hi = lo + kGnChunk < len ? lo + kGnChunk : len;
    group_norm_out(y + row * len, x + row * len, lo, hi, mean, r, w, w_dt, b, b_dt, g * cpg, S, silu);
}

// Channels last: x [N, S, C], the channels of group g a slice of every row. Three kernels:
// stats (one block per (n, stripe of rows): each thread sums its channels over the stripe in
// double, shifted by the group's first value x[n, 0, g * cpg] so the single pass does not cancel,
// and adds them into shared per-group double sums), combine (one warp per (n, group): the stripes'
// sums -> mean, rstd) and an element-wise apply.
constexpr int64_t kGnClChunk = 16384; // elements per stripe (rows = chunk / C, at least 1)

template <typename T>
__global__ void group_norm_cl_stats_kernel(double2 *part, const T *x, int64_t S, int64_t C, int groups, int64_t rows,
                                           int64_t splits)
{
    extern __shared__ double gsh[]; // [2 * groups]
    const int64_t n = blockIdx.x / splits, sp = blockIdx.x % splits;
    const int64_t r0 = sp * rows, r1 = r0 + rows < S ? r0 + rows : S;
    const int64_t cpg = C / groups;
    for (int g = threadIdx.x; g < 2 * groups; g += blockDim.x) gsh[g] = 0.0;
    __syncthreads();
    const T *xn = x + n * S * C;
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) {
        const int g = (int)(c / cpg);
        const double k = (double)to_f32(xn[g * cpg]);
        // in double: the shift is one sample, which may sit far from the group's mean
        double s1 = 0.0, s2 = 0.0;
        for (int64_t r = r0; r < r1; r++) {
            const double v = (double)to_f32(xn[r * C + c]) - k;
            s1 += v;
            s2 += v * v;
        }
        atomicAdd(&gsh[2 * g], s1);
        atomicAdd(&gsh[2 * g + 1], s2);
    }
    __syncthreads();
    for (int g = threadIdx.x; g < groups; g += blockDim.x)
        part[(n * splits + sp) * groups + g] = make_double2(gsh[2 * g], gsh[2 * g + 1]);
}

// one warp per (n, g): stat = (mean, rstd)
template <typename T>
__global__ void group_norm_cl_combine_kernel(float2 *stat, const double2 *part, const T *x, int64_t S, int64_t C,
                                             int groups, int64_t splits, float eps)
{
    const int64_t ng = blockIdx.x, n = ng / groups, g = ng % groups, cpg = C / groups;
    double s1 = 0.0, s2 = 0.0;
    for (int64_t k = threadIdx.x; k < splits; k += 32) {
        const double2 p = part[(n * splits + k) * groups + g];
        s1 += p.x;
        s2 += p.y;
    }
    for (int o = 16; o > 0; o >>= 1) {
        s1 += __shfl_xor_sync(0xffffffffu, s1, o);
        s2 += __shfl_xor_sync(0xffffffffu, s2, o);
    }
    if (threadIdx.x == 0) {
        const double cnt = (double)S * (double)cpg, m = s1 / cnt;
        double var = s2 / cnt - m * m;
        if (var < 0.0) var = 0.0;
        const float shift = to_f32(x[n * S * C + g * cpg]);
        stat[ng] = make_float2(shift + (float)m, rsqrtf((float)var + eps));
    }
}

template <typename T>
__global__ void group_norm_cl_apply_kernel(T *y, const T *x, const float2 *stat, const void *w, int w_dt, const void *b,
                                           int b_dt, int64_t N, int64_t S, int64_t C, int groups, int silu)
{
    const int64_t cpg = C / groups;
    GRID_STRIDE(i, N * S * C) {
        const int64_t c = i % C, n = i / (S * C);
        const float2 st = stat[n * groups + c / cpg];
        float v = (to_f32(x[i]) - st.x) * st.y;
        if (w) v *= load_dyn(w, w_dt, c);
        if (b) v += load_dyn(b, b_dt, c);
        if (silu) v = v / (1.f + expf(-v));
        y[i] = from_f32<T>(v);
    }
}

template <typename T>
__global__ void softmax_kernel(T *y, const T *x, int64_t cols, float scale)
{
    __shared__ float sh[32];
    const T *xr = x + blockIdx.x * cols;
    T *yr = y + blockIdx.x * cols;
    float m = -INFINITY;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) m = fmaxf(m, to_f32(xr[i]) * scale);
    m = block_max(m, sh);
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) s += expf(to_f32(xr[i]) * scale - m);
    float inv = 1.f / block_sum(s, sh);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) yr[i] = from_f32<T>(expf(to_f32(xr[i]) * scale - m) * inv);
}

template <typename T>
__global__ void argmax_kernel(int32_t *y, const T *x, int64_t cols)
{
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    const T *xr = x + blockIdx.x * cols;
    float bv = -INFINITY;
    int64_t bi = -1;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {  // per thread: increasing i, keep first max
        float v = to_f32(xr[i]);
        if (bi < 0 || v > bv) {
            bv = v;
            bi = i;
        }
    }
    // (value, index) reduction: larger value wins, the smaller index on ties; bi < 0 = empty
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int64_t oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (oi >= 0 && (bi < 0 || ov > bv || (ov == bv && oi < bi))) {
            bv = ov;
            bi = oi;
        }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        float v = sv[0];
        int64_t id = si[0];
        for (int k = 1; k < (int)(blockDim.x >> 5); k++)
            if (si[k] >= 0 && (id < 0 || sv[k] > v || (sv[k] == v && si[k] < id))) {
                v = sv[k];
                id = si[k];
            }
        y[blockIdx.x] = (int32_t)(id < 0 ? 0 : id);
    }
}

bool rows_ok(int64_t rows) { return rows <= 0x7fffffffLL; }

}  // namespace

extern "C" cudaError_t nxk_rms_norm(void *y, const void *x, int dt, const void *w, int w_dt, int64_t rows, int64_t cols,
                                    float eps, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    if (!rows_ok(rows)) return cudaErrorInvalidValue;
    NXK_DISPATCH_FLOAT(dt, T, rms_norm_kernel<<<(unsigned)rows, kBlock, 0, s>>>((T *)y, (const T *)x, w, w_dt, cols, eps));
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_rms_norm_add(void *y, void *x, const void *r, int dt, const void *w, int w_dt, int64_t rows,
                                        int64_t cols, float eps, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    if (!rows_ok(rows)) return cudaErrorInvalidValue;
    NXK_DISPATCH_FLOAT(dt, T, rms_norm_add_kernel<<<(unsigned)rows, kBlock, 0, s>>>((T *)y, (T *)x, (const T *)r, w, w_dt,
                                                                                      cols, eps));
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_layer_norm(void *y, const void *x, int dt, const void *w, int w_dt, const void *b, int b_dt,
                                      int64_t rows, int64_t cols, float eps, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    if (!rows_ok(rows)) return cudaErrorInvalidValue;
    NXK_DISPATCH_FLOAT(dt, T, layer_norm_kernel<<<(unsigned)rows, kBlock, 0, s>>>((T *)y, (const T *)x, w, w_dt, b, b_dt, cols, eps));
    return cudaGetLastError();
}

extern "C" int64_t nxk_group_norm_parts(int64_t C, int64_t S, int groups)
{
    if (groups <= 0 || C <= 0 || S <= 0) return 0;
    const int64_t len = C / groups * S;
    return len > kGnChunk ? (len + kGnChunk - 1) / kGnChunk : 0;
}

extern "C" cudaError_t nxk_group_norm(void *y, const void *x, int dt, const void *w, int w_dt, const void *b, int b_dt,
                                      int64_t N, int64_t C, int64_t S, int groups, float eps, int silu, void *scratch,
                                      cudaStream_t s)
{
    if (N <= 0 || C <= 0 || S <= 0) return cudaSuccess;
    if (groups <= 0 || C % groups || !rows_ok(N * groups)) return cudaErrorInvalidValue;
    const int64_t splits = nxk_group_norm_parts(C, S, groups);
    if (splits == 0) {
        NXK_DISPATCH_FLOAT(dt, T, group_norm_kernel<<<(unsigned)(N * groups), kBlock, 0, s>>>((T *)y, (const T *)x, w, w_dt, b, b_dt, C, S, groups, eps, silu));
        return cudaGetLastError();
    }
    if (!scratch || !rows_ok(N * groups * splits)) return cudaErrorInvalidValue;
    const int64_t len = C / groups * S;
    const unsigned blocks = (unsigned)(N * groups * splits);
    float2 *part = (float2 *)scratch;
    NXK_DISPATCH_FLOAT(dt, T, group_norm_stats_kernel<<<blocks, kBlock, 0, s>>>(part, (const T *)x, len, splits));
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    NXK_DISPATCH_FLOAT(dt, T, group_norm_apply_kernel<<<blocks, kBlock, 0, s>>>((T *)y, (const T *)x, part, w, w_dt, b, b_dt, C, S, groups, len, splits, eps, silu));
    return cudaGetLastError();
}

static int64_t gn_cl_rows(int64_t C) { return C >= kGnClChunk ? 1 : kGnClChunk / C; }

extern "C" size_t nxk_group_norm_cl_scratch(int64_t N, int64_t C, int64_t S, int groups)
{
    if (N <= 0 || C <= 0 || S <= 0 || groups <= 0) return 0;
    const int64_t splits = (S + gn_cl_rows(C) - 1) / gn_cl_rows(C);
    return (size_t)(N * groups) * (size_t)splits * sizeof(double2) + (size_t)(N * groups) * sizeof(float2);
}

extern "C" cudaError_t nxk_group_norm_cl(void *y, const void *x, int dt, const void *w, int w_dt, const void *b,
                                         int b_dt, int64_t N, int64_t C, int64_t S, int groups, float eps, int silu,
                                         void *scratch, cudaStream_t s)
{
    if (N <= 0 || C <= 0 || S <= 0) return cudaSuccess;
    if (groups <= 0 || C % groups || groups > NXK_GN_CL_MAX_GROUPS || !scratch) return cudaErrorInvalidValue;
    const int64_t rows = gn_cl_rows(C), splits = (S + rows - 1) / rows;
    if (!rows_ok(N * splits) || !rows_ok(N * groups)) return cudaErrorInvalidValue;
    double2 *part = (double2 *)scratch;
    float2 *stat = (float2 *)(part + N * groups * splits);
    const size_t shm = (size_t)(2 * groups) * sizeof(double);
    NXK_DISPATCH_FLOAT(dt, T, group_norm_cl_stats_kernel<<<(unsigned)(N * splits), kBlock, shm, s>>>(part, (const T *)x, S, C, groups, rows, splits));
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    NXK_DISPATCH_FLOAT(dt, T, group_norm_cl_combine_kernel<<<(unsigned)(N * groups), 32, 0, s>>>(stat, part, (const T *)x, S, C, groups, splits, eps));
    e = cudaGetLastError();
    if (e != cudaSuccess) return e;
    NXK_DISPATCH_FLOAT(dt, T, group_norm_cl_apply_kernel<<<grid_for(N * S * C, kBlock), kBlock, 0, s>>>((T *)y, (const T *)x, stat, w, w_dt, b, b_dt, N, S, C, groups, silu));
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_softmax(void *y, const void *x, int dt, int64_t rows, int64_t cols, float scale, cudaStream_t s)
{
    if (rows <= 0 || cols <= 0) return cudaSuccess;
    if (!rows_ok(rows)) return cudaErrorInvalidValue;
    NXK_DISPATCH_FLOAT(dt, T, softmax_kernel<<<(unsigned)rows, kBlock, 0, s>>>((T *)y, (const T *)x, cols, scale));
    return cudaGetLastError();
}

extern "C" cudaError_t nxk_argmax(int32_t *y, const void *x, int dt, int64_t rows, int64_t cols, cudaStream_t s)
{
    if (rows <= 0) return cudaSuccess;
    if (!rows_ok(rows)) return cudaErrorInvalidValue;
    NXK_DISPATCH_FLOAT(dt, T, argmax_kernel<<<(unsigned)rows, kBlock, 0, s>>>(y, (const T *)x, cols));
    return cudaGetLastError();
}
