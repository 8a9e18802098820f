/* gemm.c — linear and batched matmul through oneDNN's matmul primitive (cached per shape in the
 * backend state, see onednn.h); linear with M <= 4 goes to the hand-written GEMV (gemv.c), and
 * with F16/BF16 weights (F32 compute, AVX-512) to the fused convert GEMM (gemm_wcvt.c).
 *
 * F16/BF16 weights: what was measured (2-core Xeon 6/207 KVM guest, bench/RESULTS.md) and chosen.
 *  - oneDNN 2.6 has no "f32 activations x bf16/f16 weights" matmul (weights decompression came in
 *    3.x), and its f16 matmul/reorders are reference-only or unimplemented here (an f16 -> f32
 *    oneDNN reorder took 25x longer than an AVX-512 loop: core/dtype.c's bulk conversions). Keeping a converted F32 copy of
 *    every weight would double the model's memory.
 *  - Default, F32 compute, AVX-512: gemm_wcvt.c, a GEMM that converts W block by block inside
 *    itself on our pool (0.9-1.1x of oneDNN f32 on F32 W; why there, in its header).
 *  - F32 compute without AVX-512 (or nx_cpu_set_wcvt(false)): W is converted to F32 in tiles of
 *    NB rows (NB*K*4 ~ 8 MiB, so the tile is still in cache for the GEMM) on the pool, and each
 *    tile is one oneDNN f32 matmul writing y[:, n0:n0+NB] in place. Results equal an F32 GEMM on
 *    the exactly converted weights. With 2 threads on the shared 2 cores this ran at 0.2-0.6x of
 *    F32 W: not the conversion (~8% of the time) but the ~20 short oneDNN calls per linear,
 *    whose spinning OpenMP waiters suffer from other tenants (bench/RESULTS.md, "F16 prefill").
 *  - BF16 compute (nx_cpu_set_bf16_compute, opt-in): x is rounded to BF16 and BF16 W is used in
 *    place by oneDNN's bf16 kernels with F32 accumulation and output; F32/F16 W are rounded tile by
 *    tile as above. On AVX512-BF16 without AMX oneDNN's bf16 matmul ran at ~0.5x of its f32 (170
 *    vs 326 GFLOP/s at 2048^3), so it is not the default; with AMX it is the fast path (1,230-1,500
 *    GFLOP/s on 2 cores, bench/RESULTS.md session 29). It loses precision (x and F16 W lose 3+
 *    mantissa bits). Without AVX-512 oneDNN has no bf16 matmul: emulated (to_bf16_compute).
 *  - M <= 4 uses gemv.c (F32 accumulation, weights read in their own dtype), and so do
 *    F16/BF16 W up to WCVT_GEMV_MAX_ROWS where the fused GEMM would run (see there) and on AVX2,
 *    where the tiles above would convert all of W.
 *  - Packed W (nx_cpu_linear_pack, AMX hosts): BF16 W reordered once into oneDNN's own AMX
 *    layout, which its matmul takes as it is (else it copies W into it on every call); every M
 *    goes to oneDNN (the GEMV cannot read that layout), and F32 compute unpacks W per call.
 *  - Epilogues (nx_cpu_linear_epi): an activation and/or an accumulate into y as post-ops of the
 *    oneDNN matmul; the other paths run the ops after the product. */
#include "cpu_ops.h"
#include "onednn.h"

#include "../../core/alloc.h"
#include "../../core/error.h"

#include <string.h>

#define GEMV_MAX_ROWS 4
/* F16/BF16 W, F32 compute: up to this many rows the GEMV (one pass over W per 4 rows, memory
 * bound) beat the fused GEMM (which pads M to its 32-row x panel): at 11008 x 4096, load 3,
 * M 5/8/12/13/16: 13.3/14.4/21.5/27.3/28.5 ms vs 31.4/32.2/32.2/31.2/34.7 (bench/RESULTS.md). */
#define WCVT_GEMV_MAX_ROWS 16
#define TILE_BYTES ((int64_t)8 << 20)

enum { KEY_LINEAR = 1, KEY_MATMUL = 2 };

static dnnl_data_type_t dnnl_dt(ngpt_dtype dt)
{
    switch (dt) {
    case NGPT_DTYPE_F16: return dnnl_f16;
    case NGPT_DTYPE_BF16: return dnnl_bf16;
    default: return dnnl_f32;
    }
}

/* ---- conversion on the pool ---- */

typedef struct cvt_job {
    const void *src;
    void       *dst;
    ngpt_dtype  sdt, ddt;
    int64_t     n, chunk;
    bool        bf16_round; /* F32 destination rounded to BF16 precision (round_bf16) */
} cvt_job;

/* x rounded to BF16 (nearest even, NaN quieted, as nx_f32_to_bf16) and widened back. */
static void round_bf16(float *x, int64_t n)
{
    uint32_t *u = (uint32_t *)x;
    for (int64_t i = 0; i < n; i++) {
        uint32_t v = u[i];
        u[i] = (v & 0x7fffffffu) > 0x7f800000u ? (v & 0xffff0000u) | 0x00400000u
                                                : (v + 0x7fffu + ((v >> 16) & 1u)) & 0xffff0000u;
    }
}

static void cvt_task(int64_t t, int64_t nt, void *arg)
{
    (void)nt;
    const cvt_job *j = arg;
    int64_t i0 = t * j->chunk, n = j->n - i0 < j->chunk ? j->n - i0 : j->chunk;
    size_t ss = nx_dtype_size(j->sdt), ds = nx_dtype_size(j->ddt);
    const void *s = (const char *)j->src + i0 * (int64_t)ss;
    void *d = (char *)j->dst + i0 * (int64_t)ds;
    if (j->sdt == j->ddt) {
        memcpy(d, s, (size_t)n * ss);
    } else if (j->ddt == NGPT_DTYPE_F32) {
        nx_dtype_to_f32_n(s, j->sdt, d, (size_t)n);
    } else if (j->sdt == NGPT_DTYPE_F32) {
        if (j->ddt == NGPT_DTYPE_BF16) nx_f32_to_bf16_n(s, d, (size_t)n);
        else nx_f32_to_f16_n(s, d, (size_t)n);
    } else { /* f16 <-> bf16 through f32 */
        float buf[256];
        for (int64_t i = 0; i < n; i += 256) {
            int64_t c = n - i < 256 ? n - i : 256;
            nx_dtype_to_f32_n((const uint16_t *)s + i, j->sdt, buf, (size_t)c);
            if (j->ddt == NGPT_DTYPE_BF16) nx_f32_to_bf16_n(buf, (uint16_t *)d + i, (size_t)c);
            else nx_f32_to_f16_n(buf, (uint16_t *)d + i, (size_t)c);
        }
    }
    if (j->bf16_round) round_bf16(d, n);
}

static void convert(nx_backend *be, void *dst, ngpt_dtype ddt, const void *src, ngpt_dtype sdt, int64_t n, bool round)
{
    if (n <= 0) return;
    cvt_job j = {.src = src, .dst = dst, .sdt = sdt, .ddt = ddt, .n = n, .chunk = 1 << 16, .bf16_round = round};
    nx_pool_run(be->pool, (n + j.chunk - 1) / j.chunk, cvt_task, &j);
}

/* Convert n elements src(sdt) -> dst(ddt) on the pool (exact widening, round-to-nearest-even
 * narrowing: nx_f32_to_bf16 / nx_f32_to_f16). */
void nx_cpu_convert(nx_backend *be, void *dst, ngpt_dtype ddt, const void *src, ngpt_dtype sdt, int64_t n)
{
    convert(be, dst, ddt, src, sdt, n, false);
}

/* BF16 compute. oneDNN 2.x multiplies bf16 only from AVX-512 (avx512_core) up: on AVX2 its bf16
 * matmul is "unimplemented". There the operands are rounded to BF16 and widened back to F32 for
 * an F32 matmul: a product of two BF16 values is exact in F32, so the result differs from a
 * native BF16 GEMM (F32 accumulation) only in the order of the sums. */
static bool bf16_native(void) { return nx_cpu_has_avx512(); }

/* n operand elements src(sdt) in the BF16 compute type: BF16, or BF16-rounded F32 (see above). */
static void to_bf16_compute(nx_backend *be, void *dst, const void *src, ngpt_dtype sdt, int64_t n)
{
    if (bf16_native()) convert(be, dst, NGPT_DTYPE_BF16, src, sdt, n, false);
    else convert(be, dst, NGPT_DTYPE_F32, src, sdt, n, true);
}

/* ---- oneDNN matmul builder ---- */

typedef struct mm_desc {
    int     ndims;             /* 2 or 3 */
    int64_t src_dims[3], src_strides[3];
    int64_t wei_dims[3], wei_strides[3];
    int64_t dst_dims[3], dst_strides[3];
    int     src_dt, wei_dt;    /* dnnl_data_type_t; dst is f32 */
    int     has_bias;          /* bias f32 [1, N] (or [1, 1, N]); with bias_rows [1, M, 1] */
    int     bias_rows;
    float   alpha, beta;
    int     wei_packed;        /* 2-D, W in packed_md's layout (nx_cpu_linear_pack) */
    int     elt_alg;           /* 0, or a dnnl_alg_kind_t applied to the product + bias (before beta's sum) */
    float   elt_alpha;
} mm_desc;

static ngpt_status packed_md(dnnl_memory_desc_t *md, int64_t N, int64_t K);

/* The matmul's memory descriptors as the caller holds them (args: src, wei, bias, dst). */
static ngpt_status mm_mds(const mm_desc *d, dnnl_memory_desc_t *src, dnnl_memory_desc_t *wei, dnnl_memory_desc_t *bias,
                          dnnl_memory_desc_t *dst)
{
    NX_TRY(nx_dnnl_md(src, d->ndims, d->src_dims, (dnnl_data_type_t)d->src_dt, d->src_strides));
    if (d->wei_packed) NX_TRY(packed_md(wei, d->wei_dims[1], d->wei_dims[0]));
    else NX_TRY(nx_dnnl_md(wei, d->ndims, d->wei_dims, (dnnl_data_type_t)d->wei_dt, d->wei_strides));
    NX_TRY(nx_dnnl_md(dst, d->ndims, d->dst_dims, dnnl_f32, d->dst_strides));
    if (d->has_bias) {
        int64_t bd[3] = {1, 1, 1};
        if (d->bias_rows) bd[d->ndims - 2] = d->dst_dims[d->ndims - 2];
        else bd[d->ndims - 1] = d->dst_dims[d->ndims - 1];
        NX_TRY(nx_dnnl_md(bias, d->ndims, bd, dnnl_f32, NULL));
    }
    return NGPT_OK;
}

/* The primitive for the mm_desc arg, and the caller's layout of each arg in user_mds: the
 * primitive takes them, except a packed W, for which it picks its own (packed_md's on AMX). A
 * nx_dnnl_build_blocked_fn (mm_run's for a packed W). */
static ngpt_status mm_pd(dnnl_engine_t eng, void *arg, dnnl_primitive_desc_t *pd, int *ids,
                         dnnl_memory_desc_t *user_mds, int *n)
{
    const mm_desc *d = arg;
    dnnl_memory_desc_t src, wei, dst, bias;
    NX_TRY(mm_mds(d, &src, &wei, &bias, &dst));
    int k = 0;
    ids[k] = DNNL_ARG_SRC, user_mds[k++] = src;
    ids[k] = DNNL_ARG_WEIGHTS, user_mds[k++] = wei;
    if (d->has_bias) ids[k] = DNNL_ARG_BIAS, user_mds[k++] = bias;
    ids[k] = DNNL_ARG_DST, user_mds[k++] = dst;
    *n = k;
    if (d->wei_packed) { /* the primitive's own choice: packed_md's on AMX; reordered per call if not */
        dnnl_dims_t wd = {d->wei_dims[0], d->wei_dims[1]};
        if (dnnl_memory_desc_init_by_tag(&wei, 2, wd, (dnnl_data_type_t)d->wei_dt, dnnl_format_tag_any) != dnnl_success)
            return nx_err(NGPT_ERR_INTERNAL, "matmul: weights descriptor");
    }
    dnnl_matmul_desc_t md;
    dnnl_status_t r = dnnl_matmul_desc_init(&md, &src, &wei, d->has_bias ? &bias : NULL, &dst);
    if (r != dnnl_success) return nx_err(NGPT_ERR_INTERNAL, "matmul descriptor: %s", nx_dnnl_status_str(r));
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    NX_TRY(nx_dnnl_attr_new(&attr));
    if (r == dnnl_success && d->alpha != 1.0f) r = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &d->alpha);
    if (r == dnnl_success && (d->beta != 0.0f || d->elt_alg)) {
        r = dnnl_post_ops_create(&po);
        if (r == dnnl_success && d->elt_alg)
            r = dnnl_post_ops_append_eltwise(po, 1.0f, (dnnl_alg_kind_t)d->elt_alg, d->elt_alpha, 0.0f);
        if (r == dnnl_success && d->beta != 0.0f) r = dnnl_post_ops_append_sum(po, d->beta);
        if (r == dnnl_success) r = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    if (r == dnnl_success) r = dnnl_primitive_desc_create(pd, &md, attr, eng, NULL);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (r != dnnl_success) return nx_err(NGPT_ERR_INTERNAL, "matmul primitive descriptor: %s", nx_dnnl_status_str(r));
    return NGPT_OK;
}

static ngpt_status mm_build(dnnl_engine_t eng, void *arg, dnnl_primitive_desc_t *pd, int *ids, int *n)
{
    dnnl_memory_desc_t user_mds[NX_DNNL_MAX_ARGS];
    return mm_pd(eng, arg, pd, ids, user_mds, n);
}

static nx_dnnl_key mm_key(int tag, const mm_desc *d)
{
    nx_dnnl_key k;
    memset(&k, 0, sizeof k);
    int i = 0;
    k.v[i++] = tag;
    k.v[i++] = d->ndims;
    for (int a = 0; a < 3; a++) {
        k.v[i++] = d->src_dims[a];
        k.v[i++] = d->src_strides[a];
        k.v[i++] = d->wei_dims[a];
        k.v[i++] = d->wei_strides[a];
        k.v[i++] = d->dst_dims[a];
        k.v[i++] = d->dst_strides[a];
    }
    k.v[i++] = d->src_dt;
    k.v[i++] = d->wei_dt;
    k.v[i++] = d->has_bias;
    k.v[i++] = d->bias_rows;
    uint32_t ua, ub;
    memcpy(&ua, &d->alpha, 4);
    memcpy(&ub, &d->beta, 4);
    k.v[i++] = ua;
    k.v[i++] = ub;
    k.v[i++] = d->wei_packed;
    k.v[i++] = d->elt_alg;
    uint32_t ue;
    memcpy(&ue, &d->elt_alpha, 4);
    k.v[i++] = ue;
    return k;
}

static ngpt_status mm_run(nx_backend *be, int tag, const mm_desc *d, const void *src, const void *wei,
                          const float *bias, float *dst, const char *what)
{
    nx_dnnl_key key = mm_key(tag, d);
    void *h[4];
    int k = 0;
    h[k++] = (void *)src;
    h[k++] = (void *)wei;
    if (d->has_bias) h[k++] = (void *)bias;
    h[k++] = dst;
    if (d->wei_packed) return nx_dnnl_run_blocked(be, &key, mm_pd, (void *)d, h, what);
    return nx_dnnl_run(be, &key, mm_build, (void *)d, h, what);
}

/* ---- packed W ---- */

/* W[N, K] seen as oneDNN's [K, N] (as the linear below gives it), in the layout oneDNN 2.6's AMX
 * BF16 matmul picks for itself on every M (brg:avx512_core_amx_bf16, also its M = 1 kernel):
 * blocks of 32 K x 64 N, in each 16 pairs of K x 64 N. N % 64 == 0 and K % 32 == 0 make it the
 * plain tensor's size exactly, so it replaces W in place. */
static ngpt_status packed_md(dnnl_memory_desc_t *md, int64_t N, int64_t K)
{
    dnnl_dims_t d = {K, N};
    if (dnnl_memory_desc_init_by_tag(md, 2, d, dnnl_bf16, dnnl_BA16a64b2a) != dnnl_success)
        return nx_err(NGPT_ERR_INTERNAL, "linear: packed weights descriptor (%lld x %lld)", (long long)N, (long long)K);
    return NGPT_OK;
}

/* W's plain bytes into the packed layout (to_packed) or back, N x K BF16, on the pool. Element
 * (n, k) sits in block (n / 64, k / 32) — blocks N-major, 2048 values each — at ((k % 32) / 2) x
 * 64 + n % 64 pairs in, k % 2 within the pair: per block a 16 x 64 transpose of K pairs. By hand
 * rather than oneDNN's reorder, which ran at ~0.8 GB/s here (ImageBind-huge's matrices: ~1.5 s
 * of a load); test_ops_gemm checks the two agree byte for byte. */
typedef struct pack_job {
    const uint32_t *src;
    uint32_t       *dst;
    int64_t         N, K;
    bool            to_packed;
} pack_job;

static void pack_task(int64_t nb, int64_t n_tasks, void *arg)
{
    (void)n_tasks;
    const pack_job *j = arg;
    const int64_t KP = j->K / 2, KB = j->K / 32; /* pairs per row, K blocks */
    for (int64_t kb = 0; kb < KB; kb++) {
        uint32_t *blk = (j->to_packed ? j->dst : (uint32_t *)j->src) + (nb * KB + kb) * 1024;
        for (int64_t nn = 0; nn < 64; nn++) {
            const int64_t row = (nb * 64 + nn) * KP + kb * 16;
            if (j->to_packed)
                for (int ka = 0; ka < 16; ka++) blk[ka * 64 + nn] = j->src[row + ka];
            else
                for (int ka = 0; ka < 16; ka++) j->dst[row + ka] = blk[ka * 64 + nn];
        }
    }
}

static void pack_run(nx_backend *be, void *dst, const void *src, int64_t N, int64_t K, bool to_packed)
{
    pack_job j = {.src = src, .dst = dst, .N = N, .K = K, .to_packed = to_packed};
    nx_pool_run(be->pool, N / 64, pack_task, &j);
}

ngpt_status nx_cpu_linear_pack(nx_backend *be, nx_tensor *w)
{
    const int64_t N = w->ne[0], K = w->ne[1];
    if (w->dtype != NGPT_DTYPE_BF16 || !nx_cpu_has_amx_bf16() || N <= 0 || K <= 0 || N % 64 || K % 32) return NGPT_OK;
    const size_t n = nx_nbytes(w);
    void *tmp = nx_cpu_block_alloc(be, n);
    if (!tmp)
        return nx_err(NGPT_ERR_OUT_OF_MEMORY, "linear: cannot allocate %zu bytes to pack %s", n,
                      w->name ? w->name : "a weight");
    pack_run(be, tmp, w->data, N, K, true);
    memcpy(w->data, tmp, n);
    w->packed = dnnl_BA16a64b2a;
    nx_cpu_block_free(be, tmp);
    return NGPT_OK;
}

/* y = x W^T + b on a packed W outside the BF16 compute it was packed for: W unpacked for the call. */
static ngpt_status linear_unpacked(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                   const nx_tensor *b)
{
    const size_t n = nx_nbytes(w);
    void *tmp = nx_cpu_block_alloc(be, n);
    if (!tmp) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "linear: cannot allocate %zu bytes to unpack W", n);
    nx_tensor wv = nx_view(w->dtype, 2, w->ne, tmp, w->be);
    wv.name = w->name;
    pack_run(be, tmp, w->data, w->ne[0], w->ne[1], false);
    ngpt_status s = nx_cpu_linear(be, y, x, &wv, b);
    nx_cpu_block_free(be, tmp);
    return s;
}

/* ---- linear ---- */

/* oneDNN 2.6's AMX matmul deals rows to the threads in blocks of ~256: with 2 threads M = 257
 * ran as 256 rows on one and 1 on the other, and a row tail is slow even on one thread. Measured
 * (bench/RESULTS.md, session 29; BF16 x BF16 -> F32, 2 threads): 257 x 3840 x 1280 3.84 ms in one
 * call, 2.27 as 256 + 1 rows; 257 x 1280 x 5120 5.96 -> 3.20; 300 x 4096 x 4096 16.4 -> 11.7;
 * 320 x 3840 x 1280 4.07 -> 3.01; 600 x 3840 x 1280 5.45 -> 5.22; but 1000 rows as 256-row calls
 * lost (9.3 -> 13.4 ms). So between 256 and 768 rows the tail past a multiple of 256 becomes its
 * own call (ImageBind's 257 tokens, prompts of that length): the split row, or M for one call. */
static int64_t amx_tail_split(bool bf16, int64_t M)
{
    if (!bf16 || !nx_cpu_has_amx_bf16() || M <= 256 || M >= 768 || M % 256 == 0) return M;
    return M - M % 256;
}

/* Which kernel a linear of M rows on W runs on. */
enum { PATH_GEMV, PATH_WCVT, PATH_UNPACK, PATH_ONEDNN };

static int linear_path(nx_backend *be, int64_t M, int64_t K, const nx_tensor *w)
{
    const bool bf16 = nx_cpu_bf16_compute(be);
    if (w->packed) return bf16 && bf16_native() ? PATH_ONEDNN : PATH_UNPACK;
    if (M <= GEMV_MAX_ROWS || K == 0) return PATH_GEMV;
    /* F16/BF16 W, a few rows: the GEMV (ceil(M / 4) passes over W) beats both the fused GEMM and,
     * without AVX-512, converting all of W for oneDNN (AVX2 host, 2 layers of 7B dims, 12-16
     * tokens: see bench/RESULTS.md, session 11) */
    if (!bf16 && M <= WCVT_GEMV_MAX_ROWS && w->dtype != NGPT_DTYPE_F32 &&
        (nx_cpu_linear_wcvt_ok(w->dtype) || nx_cpu_isa() == NX_ISA_AVX2))
        return PATH_GEMV;
    if (!bf16 && nx_cpu_linear_wcvt_ok(w->dtype)) return PATH_WCVT;
    return PATH_ONEDNN;
}

/* The oneDNN path, with an eltwise (elt_alg: 0 or a dnnl_alg_kind_t) on the product + bias and,
 * with beta 1, y added after it. */
static ngpt_status linear_onednn(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                                 const float *bias, int elt_alg, float elt_alpha, float beta)
{
    const int64_t N = w->ne[0], K = w->ne[1], M = nx_numel(x) / K;
    if (N == 0) return NGPT_OK;
    const bool bf16 = nx_cpu_bf16_compute(be);
    /* dtype of x and W as oneDNN multiplies them (BF16 compute emulated in F32: to_bf16_compute) */
    const ngpt_dtype cdt = bf16 && bf16_native() ? NGPT_DTYPE_BF16 : NGPT_DTYPE_F32;
    ngpt_status s = NGPT_OK;
    void *xs = NULL, *wt = NULL;
    const void *xsrc = x->data;
    if (bf16) {
        xs = nx_malloc_aligned((size_t)(M * K) * nx_dtype_size(cdt));
        if (!xs) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "linear: cannot allocate %lld x %lld bf16 input", (long long)M, (long long)K);
        to_bf16_compute(be, xs, x->data, NGPT_DTYPE_F32, M * K);
        xsrc = xs;
    }
    /* W used in place when its dtype is the compute dtype; otherwise converted tile by tile. */
    int64_t NB = N;
    const size_t csz = nx_dtype_size(cdt);
    if (w->dtype != cdt || (bf16 && !bf16_native())) { /* emulated BF16 rounds even F32 W */
        NB = TILE_BYTES / (K * (int64_t)csz);
        NB = NB < 256 ? 256 : NB & ~(int64_t)63;
        if (NB > N) NB = N;
        wt = nx_malloc_aligned((size_t)(NB * K) * csz);
        if (!wt) {
            nx_free_aligned(xs);
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "linear: cannot allocate a %lld x %lld weight tile", (long long)NB, (long long)K);
        }
    }
    const int64_t M0 = amx_tail_split(bf16, M);
    for (int64_t n0 = 0; n0 < N && s == NGPT_OK; n0 += NB) {
        const int64_t nb = N - n0 < NB ? N - n0 : NB;
        const void *wsrc = (const char *)w->data + n0 * K * (int64_t)nx_dtype_size(w->dtype);
        if (wt && bf16) {
            to_bf16_compute(be, wt, wsrc, w->dtype, nb * K);
            wsrc = wt;
        } else if (wt) {
            nx_cpu_convert(be, wt, cdt, wsrc, w->dtype, nb * K);
            wsrc = wt;
        }
        for (int64_t m0 = 0; m0 < M && s == NGPT_OK; m0 = m0 < M0 ? M0 : M) { /* rows [0, M0), [M0, M) */
            const int64_t mb = (m0 < M0 ? M0 : M) - m0;
            mm_desc d = {
                .ndims = 2,
                .src_dims = {mb, K}, .src_strides = {K, 1},
                .wei_dims = {K, nb}, .wei_strides = {1, K},   /* W[n, k] seen as [K, nb] */
                .dst_dims = {mb, nb}, .dst_strides = {N, 1},  /* columns n0.. of y */
                .src_dt = dnnl_dt(cdt), .wei_dt = dnnl_dt(cdt),
                .has_bias = bias != NULL, .alpha = 1.0f, .beta = beta, .wei_packed = w->packed != 0,
                .elt_alg = elt_alg, .elt_alpha = elt_alpha,
            };
            const char *xm = (const char *)xsrc + m0 * K * (int64_t)nx_dtype_size(cdt);
            s = mm_run(be, KEY_LINEAR, &d, xm, wsrc, bias ? bias + n0 : NULL, (float *)y->data + m0 * N + n0, "linear");
        }
    }
    nx_free_aligned(xs);
    nx_free_aligned(wt);
    return s;
}

/* b as F32: b's own data, or converted into *owned. */
static ngpt_status bias_f32(nx_backend *be, const nx_tensor *b, const float **out, float **owned)
{
    *out = NULL;
    *owned = NULL;
    if (!b) return NGPT_OK;
    if (b->dtype == NGPT_DTYPE_F32) {
        *out = b->data;
        return NGPT_OK;
    }
    *owned = nx_malloc_aligned((size_t)b->ne[0] * sizeof(float));
    if (!*owned) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "linear: out of memory (bias)");
    nx_cpu_convert(be, *owned, NGPT_DTYPE_F32, b->data, b->dtype, b->ne[0]);
    *out = *owned;
    return NGPT_OK;
}

ngpt_status nx_cpu_linear(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w, const nx_tensor *b)
{
    const int64_t N = w->ne[0], K = w->ne[1];
    const int64_t M = K ? nx_numel(x) / K : nx_numel(y) / (N ? N : 1);
    if (w->packed && w->packed != dnnl_BA16a64b2a)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "linear: W %s is packed for another op", w->name ? w->name : "");
    const int path = linear_path(be, M, K, w);
    if (path == PATH_UNPACK) return linear_unpacked(be, y, x, w, b);
    if (path == PATH_GEMV) return nx_cpu_gemv(be, y, x, w, b);
    if (N == 0) return NGPT_OK;
    const float *bias;
    float *bf;
    NX_TRY(bias_f32(be, b, &bias, &bf));
    ngpt_status s = path == PATH_WCVT ? nx_cpu_linear_wcvt(be, y->data, x->data, w->data, w->dtype, bias, M, N, K)
                                      : linear_onednn(be, y, x, w, bias, 0, 0.0f, 0.0f);
    nx_free_aligned(bf);
    return s;
}

/* oneDNN's eltwise (a dnnl_alg_kind_t, its alpha in *alpha) for act; 0 where we keep our own
 * (ReLU, tanh and the rest are not worth a primitive per epilogue: never fused by a model yet) */
static int dnnl_act(nx_unary act, float param, float *alpha)
{
    *alpha = 0.0f;
    switch (act) {
    case NX_UNARY_GELU: return dnnl_eltwise_gelu_erf;
    case NX_UNARY_GELU_TANH: return dnnl_eltwise_gelu_tanh;
    case NX_UNARY_SILU: *alpha = 1.0f; return dnnl_eltwise_swish;
    case NX_UNARY_QUICK_GELU: *alpha = 1.702f; return dnnl_eltwise_swish; /* x sigmoid(1.702 x) */
    default: (void)param; return 0;
    }
}

ngpt_status nx_cpu_linear_epi(nx_backend *be, nx_tensor *y, const nx_tensor *x, const nx_tensor *w,
                              const nx_tensor *b, const nx_linear_epi *e)
{
    const int64_t K = w->ne[1];
    const int64_t M = K ? nx_numel(x) / K : 0;
    float alpha;
    const int alg = dnnl_act(e->act, e->act_param, &alpha);
    if (K > 0 && linear_path(be, M, K, w) == PATH_ONEDNN && (e->act == NX_UNARY_IDENTITY || alg)) {
        const float *bias;
        float *bf;
        NX_TRY(bias_f32(be, b, &bias, &bf));
        ngpt_status s = linear_onednn(be, y, x, w, bias, alg, alpha, e->accumulate ? 1.0f : 0.0f);
        nx_free_aligned(bf);
        return s;
    }
    /* the other kernels: the product, then the epilogue's ops */
    nx_tensor *dst = e->accumulate ? e->tmp : y;
    NX_TRY(nx_cpu_linear(be, dst, x, w, b));
    if (e->act != NX_UNARY_IDENTITY) NX_TRY(nx_cpu_unary(be, dst, dst, e->act, e->act_param));
    if (e->accumulate) NX_TRY(nx_cpu_binary(be, y, y, dst, NX_BINARY_ADD));
    return NGPT_OK;
}

/* ---- matmul ---- */

ngpt_status nx_cpu_matmul(nx_backend *be, nx_tensor *c, const nx_tensor *a, const nx_tensor *b,
                          bool trans_a, bool trans_b, float alpha, float beta)
{
    const int64_t M = c->ne[c->rank - 2], N = c->ne[c->rank - 1];
    const int64_t K = trans_a ? a->ne[a->rank - 2] : a->ne[a->rank - 1];
    const int64_t MK = M * K, KN = K * N, MN = M * N;
    const int64_t Ba = nx_numel(a) / (MK > 0 ? MK : 1), Bb = nx_numel(b) / (KN > 0 ? KN : 1);
    const int64_t B = nx_numel(c) / (MN > 0 ? MN : 1);
    if (B == 0 || M == 0 || N == 0) return NGPT_OK;
    float *cd = c->data;
    if (K == 0 || Ba == 0 || Bb == 0) { /* c = beta * c */
        for (int64_t i = 0; i < B * M * N; i++) cd[i] = beta == 0.0f ? 0.0f : beta * cd[i];
        return NGPT_OK;
    }
    const bool bf16 = nx_cpu_bf16_compute(be);
    void *ac = NULL, *bc = NULL;
    const void *ad = a->data, *bd = b->data;
    const size_t csz = bf16 && bf16_native() ? 2 : 4;
    if (bf16) {
        ac = nx_malloc_aligned((size_t)(Ba * M * K) * csz);
        bc = nx_malloc_aligned((size_t)(Bb * K * N) * csz);
        if (!ac || !bc) {
            nx_free_aligned(ac);
            nx_free_aligned(bc);
            return nx_err(NGPT_ERR_OUT_OF_MEMORY, "matmul: cannot allocate bf16 operands");
        }
        to_bf16_compute(be, ac, a->data, a->dtype, Ba * M * K);
        to_bf16_compute(be, bc, b->data, b->dtype, Bb * K * N);
        ad = ac;
        bd = bc;
    }
    const int dt = csz == 2 ? dnnl_bf16 : dnnl_f32;
    mm_desc d = {
        .ndims = 3,
        .src_dims = {Ba, M, K},
        .src_strides = {M * K, trans_a ? 1 : K, trans_a ? M : 1},
        .wei_dims = {Bb, K, N},
        .wei_strides = {K * N, trans_b ? 1 : N, trans_b ? K : 1},
        .dst_dims = {B, M, N}, .dst_strides = {M * N, N, 1},
        .src_dt = dt, .wei_dt = dt, .has_bias = 0, .alpha = alpha, .beta = beta,
    };
    ngpt_status s = mm_run(be, KEY_MATMUL, &d, ad, bd, NULL, cd, "matmul");
    nx_free_aligned(ac);
    nx_free_aligned(bc);
    return s;
}

/* ---- 1x1 convolution as a batched matmul (conv.c) ----
 * y[n] (O x P) = W (O x C) @ x[n] (C x P) (+ b[O] per row), P = spatial size. oneDNN's
 * plain-layout (ncw/nchw) convolution runs 1x1 kernels as gemm:jit; its matmul was 1.06x of that
 * on an idle host and up to 3.6x under load from other tenants (bench_conv), so conv.c routes
 * stride-1, unpadded, ungrouped 1x1 convs here. */
typedef struct rowbias_job { float *y; const float *b; int64_t O, P; } rowbias_job;

static void rowbias_task(int64_t task, int64_t n_tasks, void *arg)
{
    const rowbias_job *j = arg;
    (void)n_tasks;
    float *row = j->y + task * j->P;
    const float v = j->b[task % j->O];
    for (int64_t i = 0; i < j->P; i++) row[i] += v;
}

void nx_cpu_add_row_bias(nx_backend *be, float *y, const float *b, int64_t N, int64_t O, int64_t P)
{
    rowbias_job j = {y, b, O, P};
    nx_pool_run(be->pool, N * O, rowbias_task, &j);
}

/* The bias is added by a separate pass: oneDNN 2.6 has no JIT matmul for a per-row bias ({1, O, 1})
 * and falls back to its reference kernel, measured ~2000x slower (24 s instead of 13 ms for
 * 2x640x32x32 -> 320, the ResnetBlock2D conv_shortcut of a UNet up block). */
ngpt_status nx_cpu_conv1x1(nx_backend *be, float *y, const float *x, const float *w, const float *b, int64_t N,
                           int64_t O, int64_t C, int64_t P)
{
    mm_desc d = {
        .ndims = 3,
        .src_dims = {1, O, C}, .src_strides = {O * C, C, 1},
        .wei_dims = {N, C, P}, .wei_strides = {C * P, P, 1},
        .dst_dims = {N, O, P}, .dst_strides = {O * P, P, 1},
        .src_dt = dnnl_f32, .wei_dt = dnnl_f32,
        .has_bias = 0, .bias_rows = 0, .alpha = 1.0f, .beta = 0.0f,
    };
    NX_TRY(mm_run(be, KEY_MATMUL, &d, w, x, NULL, y, "conv (1x1)"));
    if (b) {
        nx_cpu_add_row_bias(be, y, b, N, O, P);
    }
    return NGPT_OK;
}

/* ---- BF16 convolution GEMM (conv_bf16.c) ----
 * y[n] (O x Pc, row stride ldy) = W (O x K) @ col[n] (K x Pc), both BF16 with F32 accumulation,
 * for n < N (image n of y at y + n * y_img). The same broadcast-W batched matmul as the 1x1 conv
 * above; no bias (the caller adds it with the epilogue). */
ngpt_status nx_cpu_conv_gemm_bf16(nx_backend *be, float *y, int64_t y_img, int64_t ldy, const uint16_t *w,
                                  const uint16_t *col, int64_t N, int64_t O, int64_t K, int64_t Pc)
{
    mm_desc d = {
        .ndims = 3,
        .src_dims = {1, O, K}, .src_strides = {O * K, K, 1},
        .wei_dims = {N, K, Pc}, .wei_strides = {K * Pc, Pc, 1},
        .dst_dims = {N, O, Pc}, .dst_strides = {y_img, ldy, 1},
        .src_dt = dnnl_bf16, .wei_dt = dnnl_bf16,
        .has_bias = 0, .bias_rows = 0, .alpha = 1.0f, .beta = 0.0f,
    };
    return mm_run(be, KEY_MATMUL, &d, w, col, NULL, y, "conv (bf16 gemm)");
}
