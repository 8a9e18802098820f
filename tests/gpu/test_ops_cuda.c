/* test_ops_cuda.c — op parity, CUDA vs the CPU reference backend (suite 'gpu').
 *
 * Every op runs with random inputs on the CPU backend (F32 activations) and on CUDA in F32, F16
 * and BF16. Inputs are rounded to the tested dtype first, so both backends see identical values
 * and the only differences are the CUDA side's compute/output precision; the tolerances below are
 * per op and per dtype. Attention is also checked against an independent float64 reference
 * written here: the CUDA error must stay within 2x the error of a naive attention computed in the
 * same precision (scores and probabilities rounded to the dtype, as in FlashAttention's tests),
 * plus a small absolute floor. cast is checked against the host conversions of lib/core/dtype.h.
 *
 * The backends are called through their vtables (lib/ops/backend.h) with valid arguments, so this
 * test does not depend on lib/ops/ops.c. A CPU op that is still NGPT_ERR_UNIMPLEMENTED fails the
 * case, unless NGPT_GPU_TEST_ALLOW_CPU_UNIMPLEMENTED=1 (then it is reported and skipped).
 * Without a usable GPU the test prints "SKIP: no usable CUDA device: <why>" and exits 77. */
#include "test.h"

#include "core/dtype.h"
#include "ops/backend.h"
#include "sched/sched.h"

#include <stdbool.h>

static nx_backend *g_cpu, *g_gpu;
static int g_cpu_missing;
static bool g_allow_missing;
static test_rng g_rng = {0x9e3779b97f4a7c15ull};

static const ngpt_dtype k_dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};

/* ---- host helpers ---- */

static float round_dt(ngpt_dtype dt, float v)
{
    if (dt == NGPT_DTYPE_F16) return nx_f16_to_f32(nx_f32_to_f16(v));
    if (dt == NGPT_DTYPE_BF16) return nx_bf16_to_f32(nx_f32_to_bf16(v));
    return v;
}

/* f32 host values -> bytes of dtype dt (values already representable) */
static void *to_bytes(const float *h, int64_t n, ngpt_dtype dt)
{
    void *b = malloc((size_t)(n ? n : 1) * nx_dtype_size(dt));
    for (int64_t i = 0; i < n; i++) {
        if (dt == NGPT_DTYPE_F32) ((float *)b)[i] = h[i];
        else if (dt == NGPT_DTYPE_F16) ((uint16_t *)b)[i] = nx_f32_to_f16(h[i]);
        else if (dt == NGPT_DTYPE_BF16) ((uint16_t *)b)[i] = nx_f32_to_bf16(h[i]);
        else if (dt == NGPT_DTYPE_I32) ((int32_t *)b)[i] = (int32_t)h[i];
    }
    return b;
}

static void from_bytes(float *h, const void *b, int64_t n, ngpt_dtype dt)
{
    for (int64_t i = 0; i < n; i++) {
        if (dt == NGPT_DTYPE_F32) h[i] = ((const float *)b)[i];
        else if (dt == NGPT_DTYPE_F16) h[i] = nx_f16_to_f32(((const uint16_t *)b)[i]);
        else if (dt == NGPT_DTYPE_BF16) h[i] = nx_bf16_to_f32(((const uint16_t *)b)[i]);
        else if (dt == NGPT_DTYPE_I32) h[i] = (float)((const int32_t *)b)[i];
    }
}

/* A tensor pair: the same values on the CPU backend (c) and on CUDA (g). */
typedef struct pt {
    nx_tensor c, g;
    float *h;  /* host values (inputs: what was uploaded) */
    int64_t n;
} pt;

static int64_t numel_of(int rank, const int64_t *ne)
{
    int64_t n = 1;
    for (int i = 0; i < rank; i++) n *= ne[i];
    return n;
}

static bool upload(nx_tensor *t, nx_backend *be, ngpt_dtype dt, int rank, const int64_t *ne, const float *h)
{
    ngpt_status st = nx_tensor_alloc(t, be, dt, rank, ne);
    if (st != NGPT_OK) {
        fprintf(stderr, "alloc on %s: %s\n", be->v->name, ngpt_last_error());
        t_failed++;
        return false;
    }
    void *b = to_bytes(h, nx_numel(t), dt);
    st = nx_tensor_upload(t, b, nx_nbytes(t));
    free(b);
    if (st != NGPT_OK) {
        fprintf(stderr, "upload to %s: %s\n", be->v->name, ngpt_last_error());
        t_failed++;
        return false;
    }
    return true;
}

/* Input with explicit values; cdt/gdt are the CPU and CUDA dtypes (values must be exact in both). */
static pt mk_vals(int rank, const int64_t *ne, ngpt_dtype cdt, ngpt_dtype gdt, const float *vals)
{
    pt p;
    memset(&p, 0, sizeof p);
    p.n = numel_of(rank, ne);
    p.h = malloc((size_t)(p.n ? p.n : 1) * sizeof(float));
    memcpy(p.h, vals, (size_t)p.n * sizeof(float));
    upload(&p.c, g_cpu, cdt, rank, ne, p.h);
    upload(&p.g, g_gpu, gdt, rank, ne, p.h);
    return p;
}

/* Random input in [lo, hi), rounded so that both dtypes represent it exactly. */
static pt mk(int rank, const int64_t *ne, ngpt_dtype cdt, ngpt_dtype gdt, float lo, float hi)
{
    int64_t n = numel_of(rank, ne);
    float *v = malloc((size_t)(n ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        float x = test_rng_f(&g_rng, lo, hi);
        if (cdt == NGPT_DTYPE_BF16 || gdt == NGPT_DTYPE_BF16) x = round_dt(NGPT_DTYPE_BF16, x);
        if (cdt == NGPT_DTYPE_F16 || gdt == NGPT_DTYPE_F16) x = round_dt(NGPT_DTYPE_F16, x);
        v[i] = x;
    }
    pt p = mk_vals(rank, ne, cdt, gdt, v);
    free(v);
    return p;
}

/* An activation: F32 on the CPU, dt on CUDA. */
static pt act(int rank, const int64_t *ne, ngpt_dtype dt, float lo, float hi)
{
    return mk(rank, ne, NGPT_DTYPE_F32, dt, lo, hi);
}

/* Output tensors (contents irrelevant: zero-filled to make stale data visible as NaN-free). */
static pt out(int rank, const int64_t *ne, ngpt_dtype cdt, ngpt_dtype gdt)
{
    int64_t n = numel_of(rank, ne);
    float *z = calloc((size_t)(n ? n : 1), sizeof(float));
    pt p = mk_vals(rank, ne, cdt, gdt, z);
    free(z);
    return p;
}

static void drop(pt *p)
{
    nx_tensor_free(&p->c);
    nx_tensor_free(&p->g);
    free(p->h);
    memset(p, 0, sizeof *p);
}

static float *download_f32(const nx_tensor *t)
{
    int64_t n = nx_numel(t);
    void *b = malloc(nx_nbytes(t) ? nx_nbytes(t) : 1);
    float *h = malloc((size_t)(n ? n : 1) * sizeof(float));
    ngpt_status st = nx_tensor_download(t, b, nx_nbytes(t));
    if (st != NGPT_OK) {
        fprintf(stderr, "download from %s: %s\n", t->be->v->name, ngpt_last_error());
        t_failed++;
        memset(h, 0, (size_t)n * sizeof(float));
    } else {
        from_bytes(h, b, n, t->dtype);
    }
    free(b);
    return h;
}

typedef struct tol {
    float atol, rtol;
} tol;

/* per-dtype tolerance triple: F32, F16, BF16 */
static tol tol_for(ngpt_dtype dt, tol f32, tol f16, tol bf16)
{
    return dt == NGPT_DTYPE_F16 ? f16 : dt == NGPT_DTYPE_BF16 ? bf16 : f32;
}

/* Check both statuses; compare y.c (CPU) with y.g (CUDA). Returns true if compared and equal. */
static bool finish(const char *what, ngpt_status sc, ngpt_status sg, const pt *y, tol t)
{
    t_checks++;
    if (sg != NGPT_OK) {
        t_failed++;
        fprintf(stderr, "%s: cuda failed: %s: %s\n", what, ngpt_status_string(sg), ngpt_last_error());
        return false;
    }
    ngpt_status ss = g_gpu->v->sync(g_gpu);
    if (ss != NGPT_OK) {
        t_failed++;
        fprintf(stderr, "%s: cuda sync failed: %s\n", what, ngpt_last_error());
        return false;
    }
    if (sc == NGPT_ERR_UNIMPLEMENTED) {
        g_cpu_missing++;
        fprintf(stderr, "%s: the CPU reference is not implemented yet: not compared\n", what);
        if (!g_allow_missing) t_failed++;
        return false;
    }
    if (sc != NGPT_OK) {
        t_failed++;
        fprintf(stderr, "%s: cpu failed: %s: %s\n", what, ngpt_status_string(sc), ngpt_last_error());
        return false;
    }
    float *a = download_f32(&y->g), *b = download_f32(&y->c);
    int ok = test_close(what, a, b, (size_t)y->g.rank ? (size_t)nx_numel(&y->g) : 1, t.atol, t.rtol);
    free(a);
    free(b);
    return ok != 0;
}

static const char *dtn(ngpt_dtype dt) { return nx_dtype_name(dt); }

/* ---- linear / matmul ---- */

/* Every linear case runs with the cuBLASLt path (nx_cuda_set_gemm_lt) off and on (the default):
 * mode names which. */
static void linear_cases(const char *mode)
{
    /* M <= 8: the GEMV kernel (K 96: 16-byte loads; K 100: the element-wise loop); 37: cuBLAS
     * (cuBLASLt when on and x, w, y share a dtype) */
    const int64_t Ms[] = {1, 3, 8, 37}, Ks[] = {96, 100};
    for (int di = 0; di < 3; di++)
        for (int wi = 0; wi < 3; wi++)
            for (int mi = 0; mi < 8; mi++)
                for (int bias = 0; bias < 2; bias++) {
                    ngpt_dtype dt = k_dts[di], wdt = k_dts[wi];
                    int64_t M = Ms[mi % 4], K = Ks[mi / 4], N = 72;
                    int64_t xs[] = {M, K}, ws[] = {N, K}, bs[] = {N}, ys[] = {M, N};
                    pt x = act(2, xs, dt, -1, 1), w = mk(2, ws, wdt, wdt, -0.5f, 0.5f);
                    pt b = mk(1, bs, wdt, wdt, -1, 1), y = out(2, ys, NGPT_DTYPE_F32, dt);
                    ngpt_status sc = g_cpu->v->linear(g_cpu, &y.c, &x.c, &w.c, bias ? &b.c : NULL);
                    ngpt_status sg = g_gpu->v->linear(g_gpu, &y.g, &x.g, &w.g, bias ? &b.g : NULL);
                    char what[128];
                    snprintf(what, sizeof what, "linear act %s w %s M %lld K %lld bias %d (%s)", dtn(dt), dtn(wdt),
                             (long long)M, (long long)K, bias, mode);
                    finish(what, sc, sg, &y, tol_for(dt, (tol){1e-4f, 1e-4f}, (tol){4e-3f, 4e-3f}, (tol){2e-2f, 1e-2f}));
                    drop(&x), drop(&w), drop(&b), drop(&y);
                }
}

/* t's data seen from element off on, with shape ne (a less aligned view into a larger buffer). */
static nx_tensor view_at(const nx_tensor *t, int64_t off, int rank, const int64_t *ne)
{
    return nx_view(t->dtype, rank, ne, (char *)t->data + off * (int64_t)nx_dtype_size(t->dtype), t->be);
}

/* Shapes for the cuBLASLt path, x, w and y of one dtype: M just above the GEMV's range, odd sizes,
 * a tensor-core-sized one; each without a bias, with one in the activation dtype, in F32
 * (cuBLASLt's CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: fused or refused) and in a third dtype (never
 * given to cuBLASLt). A shape runs twice with two different biases, both allocated (its plan
 * reused, with the second bias's pointer), then once with x, y and the bias one element into
 * their buffers (less aligned: another plan, and a bias under 16-byte alignment, which goes to the
 * cuBLAS path; element 0 of y must stay untouched), and once eight elements in (16 or 32 bytes:
 * a bias cuBLASLt may take, not 256-byte aligned). */
static void linear_lt_cases(const char *mode)
{
    static const int64_t shapes[3][3] = {{9, 40, 64}, {130, 130, 257}, {256, 384, 320}}; /* M, N, K */
    for (int di = 0; di < 3; di++)
        for (int si = 0; si < 3; si++)
            for (int bk = 0; bk < 4; bk++) { /* bias: 0 none, 1 activation dtype, 2 F32, 3 another */
                ngpt_dtype dt = k_dts[di];
                if (bk == 2 && dt == NGPT_DTYPE_F32) continue; /* = case 1 */
                ngpt_dtype other = dt == NGPT_DTYPE_BF16 ? NGPT_DTYPE_F16 : NGPT_DTYPE_BF16;
                ngpt_dtype bdt = bk == 1 ? dt : bk == 2 ? NGPT_DTYPE_F32 : other;
                int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                static const int64_t offs[3] = {0, 1, 8};
                for (int oi = 0; oi < 3; oi++) {
                    const int64_t off = offs[oi];
                    int64_t xn[] = {M * K + off}, wn[] = {N, K}, bn[] = {N + off}, yn[] = {M * N + off};
                    int64_t xs[] = {M, K}, bs[] = {N}, ys[] = {M, N};
                    pt x = act(1, xn, dt, -1, 1), w = mk(2, wn, dt, dt, -0.5f, 0.5f);
                    pt b1 = mk(1, bn, bdt, bdt, -1, 1), b2 = mk(1, bn, bdt, bdt, -1, 1);
                    pt y = out(1, yn, NGPT_DTYPE_F32, dt);
                    nx_tensor xc = view_at(&x.c, off, 2, xs), xg = view_at(&x.g, off, 2, xs);
                    nx_tensor yc = view_at(&y.c, off, 2, ys), yg = view_at(&y.g, off, 2, ys);
                    for (int rep = 0; rep < (off ? 1 : 2); rep++) {
                        const pt *b = rep ? &b2 : &b1;
                        nx_tensor bc = view_at(&b->c, off, 1, bs), bg = view_at(&b->g, off, 1, bs);
                        ngpt_status sc = g_cpu->v->linear(g_cpu, &yc, &xc, &w.c, bk ? &bc : NULL);
                        ngpt_status sg = g_gpu->v->linear(g_gpu, &yg, &xg, &w.g, bk ? &bg : NULL);
                        char what[160];
                        snprintf(what, sizeof what, "linear %s M %lld N %lld K %lld bias %s offset %lld call %d (%s)",
                                 dtn(dt), (long long)M, (long long)N, (long long)K, bk ? dtn(bdt) : "none",
                                 (long long)off, rep, mode);
                        finish(what, sc, sg, &y,
                               tol_for(dt, (tol){1e-4f, 1e-4f}, (tol){4e-3f, 4e-3f}, (tol){2e-2f, 1e-2f}));
                    }
                    drop(&x), drop(&w), drop(&b1), drop(&b2), drop(&y);
                }
            }
}

static void test_linear(void)
{
    nx_cuda_set_gemm_lt(g_gpu, false);
    linear_cases("cublas");
    linear_lt_cases("cublas");
    nx_cuda_set_gemm_lt(g_gpu, true); /* the default */
    linear_cases("cublaslt");
    linear_lt_cases("cublaslt");
}

/* New random values into an input pair's existing tensors (what a graph launch then reads). */
static void refill(pt *p, float lo, float hi)
{
    for (int64_t i = 0; i < p->n; i++) {
        float v = test_rng_f(&g_rng, lo, hi);
        if (p->c.dtype == NGPT_DTYPE_BF16 || p->g.dtype == NGPT_DTYPE_BF16) v = round_dt(NGPT_DTYPE_BF16, v);
        if (p->c.dtype == NGPT_DTYPE_F16 || p->g.dtype == NGPT_DTYPE_F16) v = round_dt(NGPT_DTYPE_F16, v);
        p->h[i] = v;
    }
    const nx_tensor *ts[2] = {&p->c, &p->g};
    for (int i = 0; i < 2; i++) {
        void *bytes = to_bytes(p->h, p->n, ts[i]->dtype);
        CHECK_OK(nx_tensor_upload((nx_tensor *)ts[i], bytes, nx_nbytes(ts[i])));
        free(bytes);
    }
}

/* A linear recorded as a CUDA graph (nx_backend_capture_*), the cuBLAS path and the cuBLASLt one
 * (its plan made during the capture: a new shape), then launched after x and the bias were
 * refilled in place: the recording uses the backend's own workspace and reads the buffers anew. */
static void test_linear_graph(void)
{
    for (int lt = 0; lt < 2; lt++)
        for (int di = 0; di < 3; di++) {
            ngpt_dtype dt = k_dts[di];
            int64_t M = 64 + lt, N = 96, K = 128; /* M: a shape new to each mode */
            int64_t xs[] = {M, K}, ws[] = {N, K}, bs[] = {N}, ys[] = {M, N};
            pt x = act(2, xs, dt, -1, 1), w = mk(2, ws, dt, dt, -0.5f, 0.5f);
            pt b = mk(1, bs, dt, dt, -1, 1), y = out(2, ys, NGPT_DTYPE_F32, dt);
            nx_cuda_set_gemm_lt(g_gpu, lt);
            char what[96];
            snprintf(what, sizeof what, "linear %s M %lld graph (%s)", dtn(dt), (long long)M,
                     lt ? "cublaslt" : "cublas");
            nx_graph *gr = NULL;
            ngpt_status sg = nx_backend_capture_begin(g_gpu);
            if (sg == NGPT_ERR_UNSUPPORTED) { /* no stream-ordered allocation on this device */
                fprintf(stderr, "%s: not tested: %s\n", what, ngpt_last_error());
                drop(&x), drop(&w), drop(&b), drop(&y);
                continue;
            }
            if (sg == NGPT_OK) {
                sg = g_gpu->v->linear(g_gpu, &y.g, &x.g, &w.g, &b.g);
                ngpt_status se = nx_backend_capture_end(g_gpu, &gr);
                if (sg == NGPT_OK) sg = se;
            }
            if (sg == NGPT_OK) {
                refill(&x, -1, 1);
                refill(&b, -1, 1);
                sg = nx_backend_graph_launch(g_gpu, gr);
            }
            ngpt_status sc = g_cpu->v->linear(g_cpu, &y.c, &x.c, &w.c, &b.c);
            finish(what, sc, sg, &y, tol_for(dt, (tol){1e-4f, 1e-4f}, (tol){4e-3f, 4e-3f}, (tol){2e-2f, 1e-2f}));
            nx_backend_graph_free(g_gpu, gr);
            drop(&x), drop(&w), drop(&b), drop(&y);
        }
    nx_cuda_set_gemm_lt(g_gpu, true); /* the default */
}

static void test_matmul(void)
{
    for (int di = 0; di < 3; di++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                for (int bc = 0; bc < 3; bc++) { /* 0: both batched, 1: a batch 1, 2: b rank 2 */
                    ngpt_dtype dt = k_dts[di];
                    int64_t B = 3, M = 19, N = 33, K = 40;
                    int64_t as[3] = {bc == 1 ? 1 : B, ta ? K : M, ta ? M : K};
                    int64_t bs3[3] = {B, tb ? N : K, tb ? K : N};
                    int64_t cs[3] = {B, M, N};
                    pt a = act(3, as, dt, -1, 1);
                    pt b = bc == 2 ? act(2, bs3 + 1, dt, -1, 1) : act(3, bs3, dt, -1, 1);
                    pt c = act(3, cs, dt, -1, 1);
                    float alpha = 0.75f, beta = (bc == 0) ? 0.5f : 0.0f;
                    ngpt_status sc = g_cpu->v->matmul(g_cpu, &c.c, &a.c, &b.c, ta, tb, alpha, beta);
                    ngpt_status sg = g_gpu->v->matmul(g_gpu, &c.g, &a.g, &b.g, ta, tb, alpha, beta);
                    char what[96];
                    snprintf(what, sizeof what, "matmul %s ta %d tb %d bcast %d", dtn(dt), ta, tb, bc);
                    finish(what, sc, sg, &c, tol_for(dt, (tol){1e-4f, 1e-4f}, (tol){4e-3f, 4e-3f}, (tol){2e-2f, 1e-2f}));
                    drop(&a), drop(&b), drop(&c);
                }
}

/* ---- convolutions ---- */

typedef struct conv_case {
    int nsp;             /* spatial dims */
    int64_t N, C, O, sp[3], k[3];
    int stride, pad, dil, groups;  /* stride 0: the kernel's size along each axis (non-overlapping) */
} conv_case;

static int64_t conv_out(int64_t in, int64_t k, int s, int p, int d) { return (in + 2 * p - d * (k - 1) - 1) / s + 1; }

/* Every case with the algorithms measured (cudnnFind on a shape's first call) and with cuDNN's
 * heuristic (the default, left set); each shape runs three times per mode, so kept plans are
 * reused too. */
static void conv_cases(const char *mode);

static void test_conv(void)
{
    nx_cuda_set_conv_search(g_gpu, true);
    conv_cases("measured");
    nx_cuda_set_conv_search(g_gpu, false);
    conv_cases("heuristic");
    nx_cuda_set_conv_nhwc(g_gpu, true); /* the 2-D F16/BF16 cases on channels-last copies */
    conv_cases("nhwc");
    nx_cuda_set_conv_nhwc(g_gpu, false);
    /* the 2-D cases with nx_conv_params.channels_last, both backends: with algorithms measured
     * (which also drops the plans the NHWC-copies mode made for the same keys), then heuristic */
    nx_cuda_set_conv_search(g_gpu, true);
    conv_cases("channels last, measured");
    nx_cuda_set_conv_search(g_gpu, false);
    conv_cases("channels last");
    fprintf(stderr, "  channels-last convolutions without an NHWC plan (ran on NCHW copies): %llu\n",
            (unsigned long long)nx_cuda_conv_cl_fallbacks(g_gpu));
    nx_cuda_set_conv_cl_via_nchw(g_gpu, true); /* the path where cuDNN makes no NHWC plan */
    conv_cases("channels last via NCHW");
    nx_cuda_set_conv_cl_via_nchw(g_gpu, false);
}

/* More shapes than the backend keeps plans for (NX_CUDA_PLANS_MAX = 256): the oldest are
 * replaced and made again when they come back. */
static void test_conv_plan_eviction(void)
{
    int bad = 0;
    for (int round = 0; round < 2; round++)
        for (int L = 8; L < 8 + 300; L++) {
            int64_t xs[3] = {1, 2, L}, ws[3] = {3, 2, 3}, ys[3] = {1, 3, L};
            pt x = act(3, xs, NGPT_DTYPE_F32, -1, 1), w = mk(3, ws, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -1, 1);
            pt y = out(3, ys, NGPT_DTYPE_F32, NGPT_DTYPE_F32);
            nx_conv_params p = nx_conv_params_default();
            p.pad[0] = 1;
            ngpt_status sc = g_cpu->v->conv(g_cpu, &y.c, &x.c, &w.c, NULL, &p);
            ngpt_status sg = g_gpu->v->conv(g_gpu, &y.g, &x.g, &w.g, NULL, &p);
            if (L % 50 == 0 || sc != NGPT_OK || sg != NGPT_OK) {
                char what[64];
                snprintf(what, sizeof what, "conv1d plan round %d L %d", round, L);
                finish(what, sc, sg, &y, (tol){1e-5f, 1e-5f});
            }
            bad += sc != NGPT_OK || sg != NGPT_OK;
            drop(&x), drop(&w), drop(&y);
        }
    CHECK(bad == 0);
}

static void conv_cases(const char *mode)
{
    const conv_case cases[] = {
        {2, 1, 32, 32, {2, 64}, {3, 1}, 1, 1, 1, 1}, /* the UNet3D's temporal conv as 2-D: (3, 1) over frames */
        {1, 2, 8, 6, {50}, {3}, 1, 1, 1, 1},
        {1, 1, 6, 9, {64}, {5}, 2, 2, 2, 3},
        {2, 2, 8, 16, {17, 13}, {3, 3}, 1, 1, 1, 1},
        {2, 1, 8, 8, {16, 16}, {3, 3}, 2, 1, 1, 2},
        {2, 1, 4, 6, {9, 11}, {1, 1}, 1, 0, 1, 1},
        {3, 1, 4, 6, {5, 8, 7}, {3, 3, 3}, 1, 1, 1, 1},
        {3, 1, 4, 4, {4, 6, 6}, {1, 3, 3}, 1, 0, 1, 2},
        /* non-overlapping ("patchify": CUDA gathers the patches for one GEMM): ImageBind's vision
         * stem shape class (Conv3d 2x14x14 over two frames), a 2-D and a 1-D one, and a near miss
         * (padded) that stays with cuDNN */
        {3, 2, 3, 16, {2, 28, 42}, {2, 14, 14}, 0, 0, 1, 1},
        {2, 2, 5, 12, {12, 16}, {4, 4}, 0, 0, 1, 1},
        {1, 3, 7, 9, {30}, {5}, 0, 0, 1, 1},
        {2, 1, 4, 8, {12, 12}, {4, 4}, 0, 1, 1, 1},
        {2, 1, 8, 8, {13, 11}, {3, 3}, 1, 2, 2, 2}, /* dilated and grouped */
    };
    const bool cl = strncmp(mode, "channels last", 13) == 0, via_nchw = strstr(mode, "via NCHW") != NULL;
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int di = 0; di < 3; di++)
            for (int bias = 0; bias < 3; bias++) { /* 2: bias and the epilogue (leaky ReLU + residual) */
                const conv_case *cc = &cases[ci];
                if (cl && cc->nsp != 2) continue;
                ngpt_dtype dt = k_dts[di];
                int r = cc->nsp + 2;
                int64_t xs[5] = {cc->N, cc->C}, ws[5] = {cc->O, cc->C / cc->groups}, ys[5] = {cc->N, cc->O}, bs[1] = {cc->O};
                nx_conv_params p;
                memset(&p, 0, sizeof p);
                p.groups = cc->groups;
                for (int i = 0; i < 3; i++) {
                    p.stride[i] = i < cc->nsp ? (cc->stride ? cc->stride : (int)cc->k[i]) : 1;
                    p.pad[i] = i < cc->nsp ? cc->pad : 0;
                    p.dilation[i] = i < cc->nsp ? cc->dil : 1;
                }
                for (int i = 0; i < cc->nsp; i++) {
                    /* 3-D case 6 has a 1-wide depth kernel: no pad along depth there */
                    if (cc->k[i] == 1) p.pad[i] = 0;
                    xs[2 + i] = cc->sp[i];
                    ws[2 + i] = cc->k[i];
                    ys[2 + i] = conv_out(cc->sp[i], cc->k[i], p.stride[i], p.pad[i], p.dilation[i]);
                }
                if (cl) { /* [N, C, H, W] -> [N, H, W, C]; w [O, Cg, kh, kw] -> [O, kh, kw, Cg] */
                    int64_t *sh[3] = {xs, ws, ys};
                    for (int t = 0; t < 3; t++) {
                        const int64_t c = sh[t][1];
                        sh[t][1] = sh[t][2], sh[t][2] = sh[t][3], sh[t][3] = c;
                    }
                    p.channels_last = true;
                }
                /* CUDA weights in the activation dtype, the CPU's in F32 with the same values */
                pt x = act(r, xs, dt, -1, 1), w = mk(r, ws, NGPT_DTYPE_F32, dt, -0.5f, 0.5f);
                pt b = mk(1, bs, NGPT_DTYPE_F32, dt, -1, 1), y = out(r, ys, NGPT_DTYPE_F32, dt);
                pt res = act(r, ys, dt, -1, 1);
                nx_conv_params pc = p, pg = p;
                if (bias == 2) {
                    pc.act = pg.act = NX_UNARY_LEAKY_RELU;
                    pc.act_param = pg.act_param = 0.1f;
                    pc.residual = &res.c;
                    pg.residual = &res.g;
                }
                const uint64_t fb = nx_cuda_conv_cl_fallbacks(g_gpu);
                ngpt_status sc = g_cpu->v->conv(g_cpu, &y.c, &x.c, &w.c, bias ? &b.c : NULL, &pc);
                ngpt_status sg = g_gpu->v->conv(g_gpu, &y.g, &x.g, &w.g, bias ? &b.g : NULL, &pg);
                char what[96];
                snprintf(what, sizeof what, "conv%dd case %zu %s bias %d (%s)", cc->nsp, ci, dtn(dt), bias, mode);
                /* F16/BF16 without groups is what cuDNN's NHWC kernels are for (the NHWC-copies
                 * mode above runs them): the copies there would hide a descriptor bug */
                if (cl && !via_nchw && dt != NGPT_DTYPE_F32 && cc->groups == 1)
                    CHECK_MSG(nx_cuda_conv_cl_fallbacks(g_gpu) == fb, "%s: ran on NCHW copies (no NHWC plan): %s",
                              what, ngpt_last_error());
                finish(what, sc, sg, &y, tol_for(dt, (tol){1e-4f, 1e-4f}, (tol){5e-3f, 4e-3f}, (tol){3e-2f, 1e-2f}));
                drop(&x), drop(&w), drop(&b), drop(&y), drop(&res);
            }
}

static void test_conv_transpose1d(void)
{
    /* N, C, O, L, k, stride, pad, out_pad, dil, groups */
    const int cases[][10] = {
        {2, 8, 6, 20, 4, 2, 1, 0, 1, 1},
        {1, 6, 4, 17, 3, 3, 1, 2, 1, 2},
        {1, 4, 4, 9, 5, 1, 2, 0, 2, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int di = 0; di < 3; di++) {
            const int *c = cases[ci];
            ngpt_dtype dt = k_dts[di];
            int64_t N = c[0], C = c[1], O = c[2], L = c[3], k = c[4];
            int s = c[5], pd = c[6], op = c[7], dl = c[8], g = c[9];
            int64_t Lo = (L - 1) * s - 2 * pd + dl * (k - 1) + op + 1;
            int64_t xs[] = {N, C, L}, ws[] = {C, O / g, k}, ys[] = {N, O, Lo}, bs[] = {O};
            pt x = act(3, xs, dt, -1, 1), w = mk(3, ws, NGPT_DTYPE_F32, dt, -0.5f, 0.5f), b = mk(1, bs, NGPT_DTYPE_F32, dt, -1, 1);
            pt y = out(3, ys, NGPT_DTYPE_F32, dt);
            ngpt_status sc = g_cpu->v->conv_transpose1d(g_cpu, &y.c, &x.c, &w.c, &b.c, s, pd, op, dl, g);
            ngpt_status sg = g_gpu->v->conv_transpose1d(g_gpu, &y.g, &x.g, &w.g, &b.g, s, pd, op, dl, g);
            char what[96];
            snprintf(what, sizeof what, "conv_transpose1d case %zu %s", ci, dtn(dt));
            finish(what, sc, sg, &y, tol_for(dt, (tol){1e-4f, 1e-4f}, (tol){5e-3f, 4e-3f}, (tol){3e-2f, 1e-2f}));
            drop(&x), drop(&w), drop(&b), drop(&y);
        }
}

/* ---- attention (independent reference) ---- */

typedef struct attn_case {
    int B, Sq, Skv, H, Hkv, D;
    int causal;
    int mask;  /* 0 none, 1 [Sq, Skv], 2 [B, Sq, Skv] */
} attn_case;

/* out[B, Sq, H, D] in double (rd = 0) or the naive same-precision version (rd = dtype: scores and
 * probabilities rounded to it, f32 softmax, output rounded). A row with no visible key is 0. */
static void attn_ref(const attn_case *c, const float *q, const float *k, const float *v, const float *mask, float scale,
                     ngpt_dtype rd, bool naive, double *out)
{
    int off = c->Skv - c->Sq;
    double *s = malloc((size_t)c->Skv * sizeof(double));
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->Sq; i++)
            for (int h = 0; h < c->H; h++) {
                int hk = h / (c->H / c->Hkv);
                const float *qr = q + (((size_t)b * c->Sq + i) * c->H + h) * c->D;
                double mx = -INFINITY;
                for (int j = 0; j < c->Skv; j++) {
                    if (c->causal && j > i + off) {
                        s[j] = -INFINITY;
                        continue;
                    }
                    const float *kr = k + (((size_t)b * c->Skv + j) * c->Hkv + hk) * c->D;
                    double acc = 0;
                    for (int d = 0; d < c->D; d++) acc += (double)qr[d] * kr[d];
                    acc *= scale;
                    if (naive) acc = round_dt(rd, (float)acc);
                    if (mask) acc += mask[(c->mask == 2 ? (size_t)b * c->Sq * c->Skv : 0) + (size_t)i * c->Skv + j];
                    s[j] = acc;
                    if (acc > mx) mx = acc;
                }
                double sum = 0;
                for (int j = 0; j < c->Skv; j++) {
                    s[j] = s[j] == -INFINITY ? 0 : exp(s[j] - mx);
                    if (naive) s[j] = (float)s[j];
                    sum += s[j];
                }
                double *o = out + (((size_t)b * c->Sq + i) * c->H + h) * c->D;
                for (int d = 0; d < c->D; d++) {
                    double acc = 0;
                    for (int j = 0; j < c->Skv; j++) {
                        if (s[j] == 0) continue;
                        double p = s[j] / sum;
                        if (naive) p = round_dt(rd, (float)p);
                        acc += p * v[(((size_t)b * c->Skv + j) * c->Hkv + hk) * c->D + d];
                    }
                    o[d] = naive ? round_dt(rd, (float)acc) : acc;
                }
            }
    free(s);
}

static void test_attention(void)
{
    const attn_case cases[] = {
        {1, 1, 1, 1, 1, 64, 0, 0},      /* single key */
        {64, 2, 2, 4, 4, 8, 0, 0},      /* the UNet3D's temporal attention: frames as keys, pixels as batch */
        {2, 1, 700, 8, 2, 128, 1, 0},   /* decode at 700 positions, GQA 4:1: 11 key chunks when split */
        {1, 1, 64, 4, 4, 64, 0, 0},     /* decode, exactly one chunk */
        {1, 1, 3, 4, 4, 128, 1, 0},     /* decode, fewer keys than the split kernel's warps */
        {64, 24, 24, 4, 4, 64, 0, 0},   /* the same at Zeroscope's 24 frames and head size */
        /* a batch past gridDim.z's 65535 (the temporal attention of frames over ~2.1 Mpx): chunks */
        {65600, 3, 3, 1, 1, 40, 0, 0},
        {65540, 2, 3, 1, 1, 8, 0, 2},   /* per-batch mask, advanced with each chunk */
        {2, 37, 37, 4, 4, 64, 1, 0},    /* causal prefill */
        {2, 37, 37, 4, 4, 64, 0, 0},
        {1, 70, 70, 2, 1, 128, 1, 0},   /* GQA, several key tiles */
        {1, 1, 93, 8, 2, 128, 1, 0},    /* decode with a cache */
        {1, 5, 45, 4, 2, 80, 1, 1},     /* chunked prefill with a cache, shared mask */
        {2, 33, 50, 2, 2, 40, 0, 2},    /* per-batch mask */
        {1, 17, 17, 3, 3, 160, 1, 0},
        {1, 20, 31, 2, 1, 72, 0, 0},    /* generic-D kernel */
        {1, 9, 9, 2, 2, 33, 1, 1},      /* generic, odd D */
        {1, 16, 40, 2, 2, 256, 0, 0},   /* generic at the maximum D */
        {2, 70, 64, 1, 1, 512, 0, 0},   /* beyond it: one head (the SD VAE's), the cuBLAS path */
        /* F16/BF16 without a mask take the tensor-core kernel (attention_mma.cuh: 128-query
         * blocks and 64-key tiles; 64 and 32 for D 160) for D 40/64/80/128/160: query and key tails, several
         * tiles, causal tiles that need the per-element test and those that do not, GQA, decode,
         * Skv = 77 cross-attention (SD1.5), Sq < Skv causal (chunked prefill). F32 and the masked
         * cases above keep the CUDA-core kernel. */
        {2, 130, 130, 2, 2, 40, 0, 0},  /* SD self-attention shape class, padded D (40 -> 48) */
        {2, 100, 77, 2, 2, 40, 0, 0},   /* cross-attention over 77 text tokens */
        {1, 67, 67, 2, 2, 40, 1, 0},
        {1, 129, 129, 4, 2, 64, 1, 0},  /* causal, GQA 2:1, one-row query tail */
        {1, 1, 200, 4, 1, 64, 1, 0},    /* decode, GQA 4:1, 4 key tiles with a tail */
        {2, 64, 64, 2, 2, 64, 0, 0},    /* exactly one key tile */
        {1, 128, 128, 2, 2, 128, 1, 0}, /* exactly one query block, two key tiles */
        {2, 65, 77, 2, 2, 80, 0, 0},
        {1, 96, 96, 2, 2, 80, 1, 0},
        {1, 150, 150, 4, 4, 128, 1, 0}, /* causal across 3 query blocks and 3 key tiles */
        {1, 1, 129, 8, 2, 128, 0, 0},   /* decode without causal */
        {1, 40, 100, 2, 1, 128, 1, 0},  /* chunked prefill: Sq < Skv causal, bottom-right aligned */
        {2, 70, 77, 2, 2, 160, 0, 0},
        {1, 100, 100, 2, 2, 160, 1, 0}, /* causal over 32-key tiles */
        {1, 3, 250, 2, 2, 160, 1, 0},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int di = 0; di < 3; di++) {
            const attn_case *c = &cases[ci];
            ngpt_dtype dt = k_dts[di];
            int64_t qs[] = {c->B, c->Sq, c->H, c->D}, ks[] = {c->B, c->Skv, c->Hkv, c->D};
            int64_t ms[3] = {c->B, c->Sq, c->Skv};
            pt q = act(4, qs, dt, -2, 2), k = act(4, ks, dt, -2, 2), v = act(4, ks, dt, -1, 1), o = out(4, qs, NGPT_DTYPE_F32, dt);
            pt m;
            memset(&m, 0, sizeof m);
            if (c->mask == 1) m = mk(2, ms + 1, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -2, 0);
            if (c->mask == 2) m = mk(3, ms, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -2, 0);
            if (c->mask) { /* key 1 is masked out (-inf) for query 0; no row is fully masked */
                m.h[1] = -INFINITY;
                void *bytes = to_bytes(m.h, m.n, NGPT_DTYPE_F32);
                CHECK_OK(nx_tensor_upload(&m.c, bytes, nx_nbytes(&m.c)));
                CHECK_OK(nx_tensor_upload(&m.g, bytes, nx_nbytes(&m.g)));
                free(bytes);
            }
            float scale = 1.0f / sqrtf((float)c->D);
            ngpt_status sg = g_gpu->v->attention(g_gpu, &o.g, &q.g, &k.g, &v.g, c->mask ? &m.g : NULL, scale, c->causal);
            char what[128];
            snprintf(what, sizeof what, "attention B%d Sq%d Skv%d H%d/%d D%d causal %d mask %d %s", c->B, c->Sq, c->Skv,
                     c->H, c->Hkv, c->D, c->causal, c->mask, dtn(dt));
            if (sg != NGPT_OK || g_gpu->v->sync(g_gpu) != NGPT_OK) {
                t_checks++, t_failed++;
                fprintf(stderr, "%s: cuda failed: %s\n", what, ngpt_last_error());
            } else {
                size_t n = (size_t)o.n;
                double *ref = malloc(n * sizeof(double)), *naive = malloc(n * sizeof(double));
                attn_ref(c, q.h, k.h, v.h, c->mask ? m.h : NULL, scale, dt, false, ref);
                attn_ref(c, q.h, k.h, v.h, c->mask ? m.h : NULL, scale, dt, true, naive);
                float *got = download_f32(&o.g);
                double e_gpu = 0, e_naive = 0;
                size_t worst = 0;
                for (size_t i = 0; i < n; i++) {
                    double eg = fabs(got[i] - ref[i]), en = fabs(naive[i] - ref[i]);
                    if (!(eg <= e_gpu)) e_gpu = eg, worst = i;
                    if (en > e_naive) e_naive = en;
                }
                double limit = 2 * e_naive + (dt == NGPT_DTYPE_F32 ? 5e-6 : 1e-4);
                printf("%-60s max err %.3g (naive %.3g, limit %.3g)\n", what, e_gpu, e_naive, limit);
                CHECK_MSG(e_gpu <= limit, "%s: max error %g (at %zu: got %g want %g) > 2 x naive %s error %g + floor",
                          what, e_gpu, worst, (double)got[worst], ref[worst], dtn(dt), e_naive);
                /* and the CPU backend agrees (F32, its own precision) */
                ngpt_status sc = g_cpu->v->attention(g_cpu, &o.c, &q.c, &k.c, &v.c, c->mask ? &m.c : NULL, scale, c->causal);
                if (sc == NGPT_OK) {
                    float *cpu = download_f32(&o.c);
                    float *reff = malloc(n * sizeof(float));
                    for (size_t i = 0; i < n; i++) reff[i] = (float)ref[i];
                    char w2[160];
                    snprintf(w2, sizeof w2, "%s (cpu backend vs f64 reference)", what);
                    test_close(w2, cpu, reff, n, 1e-4f, 1e-4f);
                    free(cpu);
                    free(reff);
                } else if (sc == NGPT_ERR_UNIMPLEMENTED) {
                    g_cpu_missing++; /* the CUDA side was still checked against the f64 reference */
                } else {
                    t_checks++, t_failed++;
                    fprintf(stderr, "%s: cpu failed: %s\n", what, ngpt_last_error());
                }
                free(got);
                free(ref);
                free(naive);
            }
            drop(&q), drop(&k), drop(&v), drop(&o);
            if (c->mask) drop(&m);
        }
}

/* ---- norms ---- */

static void test_norms(void)
{
    for (int di = 0; di < 3; di++)
        for (int aff = 0; aff < 2; aff++) {
            ngpt_dtype dt = k_dts[di];
            ngpt_dtype wdt = k_dts[(di + aff) % 3]; /* weights of another dtype too */
            int64_t xs[] = {7, 3, 320}, ws[] = {320};
            pt x = act(3, xs, dt, -3, 3), w = mk(1, ws, NGPT_DTYPE_F32, wdt, 0.5f, 1.5f);
            pt b = mk(1, ws, NGPT_DTYPE_F32, wdt, -1, 1);
            pt y = out(3, xs, NGPT_DTYPE_F32, dt);
            tol t = tol_for(dt, (tol){1e-5f, 1e-4f}, (tol){4e-3f, 3e-3f}, (tol){3e-2f, 1e-2f});
            char what[96];
            snprintf(what, sizeof what, "rms_norm %s w %s affine %d", dtn(dt), dtn(wdt), aff);
            finish(what, g_cpu->v->rms_norm(g_cpu, &y.c, &x.c, aff ? &w.c : NULL, 1e-6f),
                   g_gpu->v->rms_norm(g_gpu, &y.g, &x.g, aff ? &w.g : NULL, 1e-6f), &y, t);
            snprintf(what, sizeof what, "layer_norm %s w %s affine %d", dtn(dt), dtn(wdt), aff);
            finish(what, g_cpu->v->layer_norm(g_cpu, &y.c, &x.c, aff ? &w.c : NULL, aff ? &b.c : NULL, 1e-5f),
                   g_gpu->v->layer_norm(g_gpu, &y.g, &x.g, aff ? &w.g : NULL, aff ? &b.g : NULL, 1e-5f), &y, t);
            drop(&x), drop(&w), drop(&b), drop(&y);
            /* rms_norm_add: the norm's output and the updated x, both compared */
            pt xa = act(3, xs, dt, -3, 3), ra = act(3, xs, dt, -3, 3), ya = out(3, xs, NGPT_DTYPE_F32, dt);
            w = mk(1, ws, NGPT_DTYPE_F32, wdt, 0.5f, 1.5f);
            snprintf(what, sizeof what, "rms_norm_add %s w %s affine %d", dtn(dt), dtn(wdt), aff);
            if (finish(what, g_cpu->v->rms_norm_add(g_cpu, &ya.c, &xa.c, &ra.c, aff ? &w.c : NULL, 1e-6f),
                       g_gpu->v->rms_norm_add(g_gpu, &ya.g, &xa.g, &ra.g, aff ? &w.g : NULL, 1e-6f), &ya, t)) {
                snprintf(what, sizeof what, "rms_norm_add %s: x + r", dtn(dt));
                finish(what, NGPT_OK, NGPT_OK, &xa, t);
            }
            drop(&xa), drop(&ra), drop(&ya), drop(&w);
        }
    for (int di = 0; di < 3; di++)
        for (int silu = 0; silu < 2; silu++)
            for (int sp = 0; sp < 4; sp++) {
                ngpt_dtype dt = k_dts[di];
                /* sp 2: the UNet3D's temporal GroupNorm, 32 groups of one channel over frames x pixels;
                 * sp 3: groups of 18000 elements, split across blocks (3 chunks, the last partial) */
                int64_t xs4[] = {2, 64, 9, 7}, xs3[] = {1, 32, 50}, xs5[] = {1, 32, 2, 8, 8}, xsb[] = {2, 64, 100, 90};
                int64_t cs[] = {64};
                int rank = sp == 2 ? 5 : sp ? 4 : 3;
                int64_t *xs = sp == 3 ? xsb : sp == 2 ? xs5 : sp ? xs4 : xs3;
                cs[0] = xs[1];
                pt x = act(rank, xs, dt, -2, 4), w = mk(1, cs, NGPT_DTYPE_F32, NGPT_DTYPE_F32, 0.5f, 1.5f);
                pt b = mk(1, cs, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -1, 1), y = out(rank, xs, NGPT_DTYPE_F32, dt);
                char what[96];
                snprintf(what, sizeof what, "group_norm %s silu %d rank %d%s", dtn(dt), silu, rank, sp == 3 ? " split" : "");
                finish(what, g_cpu->v->group_norm(g_cpu, &y.c, &x.c, &w.c, &b.c, 32, 1e-5f, silu),
                       g_gpu->v->group_norm(g_gpu, &y.g, &x.g, &w.g, &b.g, 32, 1e-5f, silu), &y,
                       tol_for(dt, (tol){1e-5f, 1e-4f}, (tol){4e-3f, 3e-3f}, (tol){3e-2f, 1e-2f}));
                drop(&x), drop(&w), drop(&b), drop(&y);
            }
    /* channels last (NX_GN_CHANNELS_LAST): x [N, *spatial, C]; the SD UNet's 320 channels in 32
     * groups of 10, the VAE's 128 at a size that takes many row stripes, one channel per group,
     * values offset far from 0 (the stats kernel's shifted sums must not cancel) */
    for (int di = 0; di < 3; di++)
        for (int silu = 0; silu < 2; silu++)
            for (int sp = 0; sp < 4; sp++) {
                ngpt_dtype dt = k_dts[di];
                int64_t xa[] = {2, 9, 7, 320}, xb[] = {1, 160, 150, 128}, xc[] = {1, 2, 8, 8, 32}, xd[] = {2, 50, 64};
                int64_t *xs = sp == 0 ? xa : sp == 1 ? xb : sp == 2 ? xc : xd;
                const int rank = sp == 2 ? 5 : sp == 3 ? 3 : 4;
                int64_t cs[] = {xs[rank - 1]};
                const float off = sp == 3 ? 40.f : 0.f;
                pt x = act(rank, xs, dt, off - 2, off + 4), w = mk(1, cs, NGPT_DTYPE_F32, NGPT_DTYPE_F32, 0.5f, 1.5f);
                pt b = mk(1, cs, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -1, 1), y = out(rank, xs, NGPT_DTYPE_F32, dt);
                const unsigned fl = NX_GN_CHANNELS_LAST | (silu ? NX_GN_SILU : 0);
                char what[96];
                snprintf(what, sizeof what, "group_norm channels last %s silu %d case %d", dtn(dt), silu, sp);
                finish(what, g_cpu->v->group_norm(g_cpu, &y.c, &x.c, &w.c, &b.c, 32, 1e-5f, fl),
                       g_gpu->v->group_norm(g_gpu, &y.g, &x.g, &w.g, &b.g, 32, 1e-5f, fl), &y,
                       tol_for(dt, (tol){1e-5f, 1e-4f}, (tol){4e-3f, 3e-3f}, (tol){3e-2f, 1e-2f}));
                drop(&x), drop(&w), drop(&b), drop(&y);
            }
}

/* ---- rope ---- */

static void test_rope(void)
{
    for (int di = 0; di < 3; di++)
        for (int mode = 0; mode < 2; mode++)
            for (int partial = 0; partial < 2; partial++)
                for (int inplace = 0; inplace < 2; inplace++) {
                    ngpt_dtype dt = k_dts[di];
                    int64_t xs[] = {2, 11, 3, 64}, ps[] = {11};
                    int n_rot = partial ? 32 : 64;
                    float pv[11];
                    for (int i = 0; i < 11; i++) pv[i] = (float)(i * 37 + 5 * partial);  /* non-contiguous positions */
                    pt x = act(4, xs, dt, -2, 2), pos = mk_vals(1, ps, NGPT_DTYPE_I32, NGPT_DTYPE_I32, pv);
                    pt y = out(4, xs, NGPT_DTYPE_F32, dt);
                    nx_tensor *yc = inplace ? &x.c : &y.c, *yg = inplace ? &x.g : &y.g;
                    ngpt_status sc = g_cpu->v->rope(g_cpu, yc, &x.c, &pos.c, n_rot, 10000.0f, (nx_rope_mode)mode);
                    ngpt_status sg = g_gpu->v->rope(g_gpu, yg, &x.g, &pos.g, n_rot, 10000.0f, (nx_rope_mode)mode);
                    char what[96];
                    snprintf(what, sizeof what, "rope %s mode %d n_rot %d inplace %d", dtn(dt), mode, n_rot, inplace);
                    pt view = inplace ? x : y;
                    /* F32: 2e-4 absolute covers a 1-ulp difference in the f32 angle (pos up to 375) */
                    finish(what, sc, sg, &view, tol_for(dt, (tol){2e-4f, 1e-4f}, (tol){4e-3f, 3e-3f}, (tol){3e-2f, 1e-2f}));
                    drop(&x), drop(&pos), drop(&y);
                }
}

/* ---- element-wise ---- */

static void test_softmax_unary_scale(void)
{
    for (int di = 0; di < 3; di++) {
        ngpt_dtype dt = k_dts[di];
        tol t = tol_for(dt, (tol){1e-6f, 1e-5f}, (tol){2e-3f, 2e-3f}, (tol){1e-2f, 8e-3f});
        int64_t xs[] = {13, 1000};
        pt x = act(2, xs, dt, -4, 4), y = out(2, xs, NGPT_DTYPE_F32, dt);
        char what[96];
        snprintf(what, sizeof what, "softmax %s", dtn(dt));
        finish(what, g_cpu->v->softmax(g_cpu, &y.c, &x.c, 0.7f), g_gpu->v->softmax(g_gpu, &y.g, &x.g, 0.7f), &y, t);
        snprintf(what, sizeof what, "scale %s", dtn(dt));
        finish(what, g_cpu->v->scale(g_cpu, &y.c, &x.c, -1.5f, 0.25f), g_gpu->v->scale(g_gpu, &y.g, &x.g, -1.5f, 0.25f), &y, t);
        drop(&x);
        pt xp = act(2, xs, dt, 0.01f, 4);  /* SQRT wants x >= 0 */
        x = act(2, xs, dt, -4, 4);
        for (int op = NX_UNARY_IDENTITY; op <= NX_UNARY_NEG; op++) {
            pt *in = op == NX_UNARY_SQRT ? &xp : &x;
            snprintf(what, sizeof what, "unary %d %s", op, dtn(dt));
            finish(what, g_cpu->v->unary(g_cpu, &y.c, &in->c, (nx_unary)op, 0.1f),
                   g_gpu->v->unary(g_gpu, &y.g, &in->g, (nx_unary)op, 0.1f), &y,
                   tol_for(dt, (tol){1e-5f, 2e-5f}, (tol){2e-3f, 2e-3f}, (tol){1e-2f, 8e-3f}));
        }
        /* in place */
        snprintf(what, sizeof what, "unary silu in place %s", dtn(dt));
        finish(what, g_cpu->v->unary(g_cpu, &x.c, &x.c, NX_UNARY_SILU, 0), g_gpu->v->unary(g_gpu, &x.g, &x.g, NX_UNARY_SILU, 0),
               &x, tol_for(dt, (tol){1e-5f, 2e-5f}, (tol){2e-3f, 2e-3f}, (tol){1e-2f, 8e-3f}));
        drop(&x), drop(&xp), drop(&y);
    }
}

static void test_binary(void)
{
    /* (a shape, b shape) pairs; y is the broadcast shape */
    const int64_t shapes[][2][4] = {
        {{4, 5, 6, 7}, {4, 5, 6, 7}},
        {{4, 5, 6, 7}, {1, 1, 1, 7}},
        {{4, 5, 6, 7}, {1, 5, 1, 1}},
        {{4, 1, 6, 1}, {1, 5, 1, 7}},
        {{1, 1, 1, 1}, {4, 5, 6, 7}},
    };
    const int ranks[][2] = {{4, 4}, {4, 1}, {4, 3}, {4, 4}, {1, 4}};
    for (int di = 0; di < 3; di++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
            for (int op = 0; op < 4; op++) {
                ngpt_dtype dt = k_dts[di];
                int ra = ranks[si][0], rb = ranks[si][1];
                const int64_t *a4 = shapes[si][0], *b4 = shapes[si][1];
                int64_t ys[4];
                for (int d = 0; d < 4; d++) ys[d] = a4[d] > b4[d] ? a4[d] : b4[d];
                pt a = act(ra, a4 + (4 - ra), dt, -2, 2), b = act(rb, b4 + (4 - rb), dt, 0.5f, 2);
                pt y = out(4, ys, NGPT_DTYPE_F32, dt);
                char what[96];
                snprintf(what, sizeof what, "binary op %d shapes %zu %s", op, si, dtn(dt));
                finish(what, g_cpu->v->binary(g_cpu, &y.c, &a.c, &b.c, (nx_binary)op),
                       g_gpu->v->binary(g_gpu, &y.g, &a.g, &b.g, (nx_binary)op), &y,
                       tol_for(dt, (tol){1e-6f, 1e-6f}, (tol){2e-3f, 1e-3f}, (tol){1e-2f, 4e-3f}));
                drop(&a), drop(&b), drop(&y);
            }
}

static void test_glu(void)
{
    const nx_unary acts[] = {NX_UNARY_SILU, NX_UNARY_GELU, NX_UNARY_GELU_TANH};
    for (int di = 0; di < 3; di++)
        for (int ai = 0; ai < 3; ai++)
            for (int gf = 0; gf < 2; gf++) {
                ngpt_dtype dt = k_dts[di];
                int64_t xs[] = {3, 9, 2 * 48}, ys[] = {3, 9, 48};
                pt x = act(3, xs, dt, -3, 3), y = out(3, ys, NGPT_DTYPE_F32, dt);
                char what[96];
                snprintf(what, sizeof what, "glu act %d gate_first %d %s", (int)acts[ai], gf, dtn(dt));
                finish(what, g_cpu->v->glu(g_cpu, &y.c, &x.c, acts[ai], gf), g_gpu->v->glu(g_gpu, &y.g, &x.g, acts[ai], gf), &y,
                       tol_for(dt, (tol){1e-5f, 2e-5f}, (tol){3e-3f, 2e-3f}, (tol){2e-2f, 8e-3f}));
                drop(&x), drop(&y);
            }
}

/* ---- a decode step by device-held position and length (set_rows, attention_len) ---- */

static void upload_i32(pt *p, const int32_t *v)
{
    CHECK_OK(nx_tensor_upload(&p->c, v, nx_nbytes(&p->c)));
    CHECK_OK(nx_tensor_upload(&p->g, v, nx_nbytes(&p->g)));
}

static void test_set_rows(void)
{
    for (int di = 0; di < 3; di++) {
        ngpt_dtype dt = k_dts[di];
        const int64_t ds[] = {50, 40}, ss[] = {3, 40}, ps[] = {3};
        pt dst = act(2, ds, dt, -1, 1), src = act(2, ss, dt, -1, 1);
        pt pos = out(1, ps, NGPT_DTYPE_I32, NGPT_DTYPE_I32);
        const int32_t where[3] = {0, 49, 17};
        upload_i32(&pos, where);
        char what[64];
        snprintf(what, sizeof what, "set_rows %s", dtn(dt));
        finish(what, g_cpu->v->set_rows(g_cpu, &dst.c, &src.c, &pos.c), g_gpu->v->set_rows(g_gpu, &dst.g, &src.g, &pos.g),
               &dst, (tol){0.0f, 0.0f});
        drop(&dst), drop(&src), drop(&pos);
    }
}

/* The device copy of k or v [B, S, Hkv, D] with the rows s >= from set to NaN (rowlen = Hkv * D):
 * a KV cache past its length holds whatever was there, so a kernel that read past the length
 * would turn its output NaN instead of passing on ordinary numbers. */
static void poison_rows_gpu(pt *p, int64_t B, int64_t S, int64_t rowlen, int64_t from)
{
    float *h = malloc((size_t)p->n * sizeof *h);
    memcpy(h, p->h, (size_t)p->n * sizeof *h);
    for (int64_t b = 0; b < B; b++)
        for (int64_t r = from; r < S; r++)
            for (int64_t i = 0; i < rowlen; i++) h[(b * S + r) * rowlen + i] = NAN;
    void *bytes = to_bytes(h, p->n, p->g.dtype);
    CHECK_OK(nx_tensor_upload(&p->g, bytes, nx_nbytes(&p->g)));
    free(bytes);
    free(h);
}

static void test_attention_len(void)
{
    static const int ds[] = {16, 32, 64, 80, 96, 128};
    static const int32_t lens[] = {1, 63, 64, 65, 200};
    for (int di = 0; di < 3; di++)
        for (size_t d = 0; d < sizeof ds / sizeof ds[0]; d++)
            for (int gqa = 0; gqa < 2; gqa++)
                for (size_t li = 0; li < sizeof lens / sizeof lens[0]; li++) {
                    ngpt_dtype dt = k_dts[di];
                    const int64_t B = 2, H = 4, Hkv = gqa ? 2 : 4, D = ds[d], Skv = 200;
                    const int64_t qs[] = {B, 1, H, D}, ks[] = {B, Skv, Hkv, D}, ls[] = {1};
                    pt q = act(4, qs, dt, -2, 2), k = act(4, ks, dt, -2, 2), v = act(4, ks, dt, -1, 1);
                    pt o = out(4, qs, NGPT_DTYPE_F32, dt), len = out(1, ls, NGPT_DTYPE_I32, NGPT_DTYPE_I32);
                    upload_i32(&len, &lens[li]);
                    poison_rows_gpu(&k, B, Skv, Hkv * D, lens[li]);
                    poison_rows_gpu(&v, B, Skv, Hkv * D, lens[li]);
                    const float scale = 1.0f / sqrtf((float)D);
                    char what[96];
                    snprintf(what, sizeof what, "attention_len D%lld H%lld/%lld len %d %s", (long long)D, (long long)H,
                             (long long)Hkv, lens[li], dtn(dt));
                    finish(what, g_cpu->v->attention_len(g_cpu, &o.c, &q.c, &k.c, &v.c, &len.c, scale),
                           g_gpu->v->attention_len(g_gpu, &o.g, &q.g, &k.g, &v.g, &len.g, scale), &o,
                           tol_for(dt, (tol){1e-5f, 1e-4f}, (tol){2e-3f, 4e-3f}, (tol){1.6e-2f, 1.6e-2f}));
                    drop(&q), drop(&k), drop(&v), drop(&o), drop(&len);
                }
}

/* A recorded append + attention replayed at another position and length: what the backbone's
 * decode graph relies on (the kernels read both when they run, not when they were recorded). */
static void test_decode_step_graph(void)
{
    for (int di = 0; di < 3; di++) {
        ngpt_dtype dt = k_dts[di];
        const int64_t H = 4, D = 64, Skv = 300;
        const int64_t qs[] = {1, 1, H, D}, rs[] = {1, H * D}, cs[] = {Skv, H * D}, ks[] = {1, Skv, H, D}, one[] = {1};
        pt q = act(4, qs, dt, -2, 2), kr = act(2, rs, dt, -2, 2), cache = act(2, cs, dt, -2, 2);
        pt v = act(4, ks, dt, -1, 1), o = out(4, qs, NGPT_DTYPE_F32, dt);
        pt pos = out(1, one, NGPT_DTYPE_I32, NGPT_DTYPE_I32), len = out(1, one, NGPT_DTYPE_I32, NGPT_DTYPE_I32);
        nx_tensor k4c = nx_view(cache.c.dtype, 4, ks, cache.c.data, cache.c.be);
        nx_tensor k4g = nx_view(cache.g.dtype, 4, ks, cache.g.data, cache.g.be);
        const float scale = 0.125f;
        int32_t p = 10, l = 11;
        upload_i32(&pos, &p);
        upload_i32(&len, &l);
        char what[96];
        snprintf(what, sizeof what, "decode step graph %s", dtn(dt));
        nx_graph *gr = NULL;
        ngpt_status sg = nx_backend_capture_begin(g_gpu);
        if (sg == NGPT_ERR_UNSUPPORTED) {
            fprintf(stderr, "%s: not tested: %s\n", what, ngpt_last_error());
        } else {
            if (sg == NGPT_OK) {
                sg = g_gpu->v->set_rows(g_gpu, &cache.g, &kr.g, &pos.g);
                if (sg == NGPT_OK) sg = g_gpu->v->attention_len(g_gpu, &o.g, &q.g, &k4g, &v.g, &len.g, scale);
                ngpt_status se = nx_backend_capture_end(g_gpu, &gr);
                if (sg == NGPT_OK) sg = se;
            }
            /* replay at position 250, length 251, with a new key row */
            p = 250, l = 251;
            upload_i32(&pos, &p);
            upload_i32(&len, &l);
            refill(&kr, -2, 2);
            poison_rows_gpu(&v, 1, Skv, H * D, l); /* v past the length (the cache's rows are compared) */
            if (sg == NGPT_OK) sg = nx_backend_graph_launch(g_gpu, gr);
            ngpt_status sc = g_cpu->v->set_rows(g_cpu, &cache.c, &kr.c, &pos.c);
            if (sc == NGPT_OK) sc = g_cpu->v->attention_len(g_cpu, &o.c, &q.c, &k4c, &v.c, &len.c, scale);
            finish(what, sc, sg, &o, tol_for(dt, (tol){1e-5f, 1e-4f}, (tol){2e-3f, 4e-3f}, (tol){1.6e-2f, 1.6e-2f}));
            snprintf(what, sizeof what, "decode step graph %s: the cache", dtn(dt));
            finish(what, NGPT_OK, NGPT_OK, &cache, (tol){0.0f, 0.0f});
            nx_backend_graph_free(g_gpu, gr);
        }
        drop(&q), drop(&kr), drop(&cache), drop(&v), drop(&o), drop(&pos), drop(&len);
    }
}

/* ---- the UNet's sinusoidal time input (kernels/layout.cu) ---- */
static void test_timestep_embedding(void)
{
    const nx_timestep_params ps[3] = {{320, true, 0.0f, 10000.0f}, {9, false, 1.0f, 10000.0f}, {1, true, 0.0f, 10000.0f}};
    for (int di = 0; di < 3; di++)
        for (int k = 0; k < 3; k++) {
            ngpt_dtype dt = k_dts[di];
            const int64_t tn[1] = {5}, ys[2] = {5, ps[k].dim};
            const float tv[5] = {999.0f, 981.0f, 21.0f, 1.0f, 0.0f};
            pt t = mk_vals(1, tn, NGPT_DTYPE_F32, NGPT_DTYPE_F32, tv), y = out(2, ys, NGPT_DTYPE_F32, dt);
            char what[96];
            snprintf(what, sizeof what, "timestep_embedding dim %d %s", ps[k].dim, dtn(dt));
            /* One ulp of a frequency near 1 times t = 999 moves the angle by ~1.2e-4 rad: with
             * CUDA's own expf (within 2 ulp) the two sides differed by up to 2.4e-4 (checked on
             * the host by perturbing expf). The device now takes exp/sin/cos in double, rounded
             * once, which is what glibc's float functions give but for rare misroundings: 1e-5
             * leaves room for one in a sin/cos, not for one in the exp. */
            finish(what, g_cpu->v->timestep_embedding(g_cpu, &y.c, &t.c, &ps[k]),
                   g_gpu->v->timestep_embedding(g_gpu, &y.g, &t.g, &ps[k]), &y,
                   tol_for(dt, (tol){1e-5f, 1e-5f}, (tol){1e-3f, 1e-3f}, (tol){8e-3f, 8e-3f}));
            drop(&t), drop(&y);
        }
}

/* ---- the scheduler step fused with the CFG combine (kernels/sched.cu) ----
 * Each scheduler stepped along its trajectory on both backends from the same latents and
 * model outputs ([uncond; cond], guidance 7.5); the latents and every state slot compared after
 * each step. F32 throughout, and sched.cu is built without FMA contraction (--fmad=false), so the
 * two should agree bit for bit; 1e-5 leaves room for a host compiler that contracts. */
static void test_sched_step(void)
{
    /* uncond: a plan without CFG (guidance <= 1: eps is [n], as AudioLDM or a caller may run) */
    static const struct { const char *json; ngpt_scheduler_kind kind; float eta; int steps; bool uncond; } cases[] = {
        {"{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": true, \"steps_offset\": 1}", NGPT_SCHEDULER_AUTO, 0, 8, false},
        {"{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": false}", NGPT_SCHEDULER_AUTO, 0, 6, false},
        {"{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": true}", NGPT_SCHEDULER_AUTO, 0.5f, 5, false},
        {"{\"solver_order\": 3}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 7, false},
        {"{\"solver_order\": 2, \"algorithm_type\": \"sde-dpmsolver++\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 5, false},
        {"{\"use_karras_sigmas\": true, \"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_EULER, 0, 6, false},
        {"{\"beta_schedule\": \"scaled_linear\"}", NGPT_SCHEDULER_EULER_ANCESTRAL, 0, 6, false},
        {"{\"solver_order\": 3, \"disable_corrector\": [2]}", NGPT_SCHEDULER_UNIPC_MULTISTEP, 0, 7, false},
        {"{\"predict_x0\": false, \"solver_type\": \"bh1\"}", NGPT_SCHEDULER_UNIPC_MULTISTEP, 0, 5, false},
        {"{\"use_karras_sigmas\": true}", NGPT_SCHEDULER_LMS, 0, 7, false},
        {"{\"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_KDPM2, 0, 5, false},
        {"{\"beta_schedule\": \"scaled_linear\"}", NGPT_SCHEDULER_KDPM2_ANCESTRAL, 0, 5, false},
        {"{\"solver_order\": 3, \"prediction_type\": \"v_prediction\"}", NGPT_SCHEDULER_DEIS_MULTISTEP, 0, 7, false},
        {"{\"variance_type\": \"fixed_small_log\"}", NGPT_SCHEDULER_DDPM, 0, 6, false},
        {"{\"solver_order\": 3, \"solver_type\": \"heun\"}", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, 0, 8, false},
        {"{}", NGPT_SCHEDULER_HEUN, 0, 5, false}, /* the one plan that keeps a derivative and a sample (m[0], m[1]) */
        {"{\"solver_order\": 2, \"solver_type\": \"midpoint\"}", NGPT_SCHEDULER_DPMSOLVER_SINGLESTEP, 0, 6, true},
        {"{\"algorithm_type\": \"dpmsolver\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 6, true},
        {"{\"algorithm_type\": \"sde-dpmsolver\"}", NGPT_SCHEDULER_DPMSOLVER_MULTISTEP, 0, 5, false},
        {"{\"_class_name\": \"DDIMScheduler\"}", NGPT_SCHEDULER_AUTO, 0, 5, true},
        {"{\"_class_name\": \"PNDMScheduler\", \"skip_prk_steps\": true, \"prediction_type\": \"v_prediction\"}",
         NGPT_SCHEDULER_AUTO, 0, 6, true},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        ngpt_scheduler_params sp;
        ngpt_scheduler_params_default(&sp, sizeof sp);
        sp.kind = cases[ci].kind;
        sp.eta = cases[ci].eta;
        ngpt_scheduler *sc = NULL, *sg = NULL;
        CHECK_OK(ngpt_scheduler_create_from_json(&sc, cases[ci].json, strlen(cases[ci].json), &sp));
        CHECK_OK(ngpt_scheduler_create_from_json(&sg, cases[ci].json, strlen(cases[ci].json), &sp));
        if (!sc || !sg) { ngpt_scheduler_free(sc); ngpt_scheduler_free(sg); continue; }
        CHECK_OK(ngpt_scheduler_set_timesteps(sc, cases[ci].steps));
        CHECK_OK(ngpt_scheduler_set_timesteps(sg, cases[ci].steps));
        const bool noisy = nx_sched_needs_noise(sc);
        const bool cfg = !cases[ci].uncond;
        const int64_t n = 4 * 24 * 40 + 3, ne1[1] = {n}, ne2[1] = {cfg ? 2 * n : n};
        pt x = mk(1, ne1, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -2, 2), slot[NX_SCHED_SLOTS];
        nx_tensor *slot_c[NX_SCHED_SLOTS] = {0}, *slot_g[NX_SCHED_SLOTS] = {0};
        const int n_slots = nx_sched_slots(sc);
        for (int j = 0; j < n_slots; j++) {
            slot[j] = out(1, ne1, NGPT_DTYPE_F32, NGPT_DTYPE_F32);
            slot_c[j] = &slot[j].c;
            slot_g[j] = &slot[j].g;
        }
        const double *ts = NULL;
        size_t nts = 0;
        CHECK_OK(ngpt_scheduler_timesteps_f64(sc, &ts, &nts));
        for (size_t k = 0; k < nts; k++) {
            pt eps = mk(1, ne2, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -2, 2), nz = mk(1, ne1, NGPT_DTYPE_F32, NGPT_DTYPE_F32, -2, 2);
            nx_sched_step pc, pg;
            CHECK_OK(nx_sched_plan(sc, ts[k], (size_t)n, noisy, &pc));
            CHECK_OK(nx_sched_plan(sg, ts[k], (size_t)n, noisy, &pg));
            pc.cfg = pg.cfg = cfg;
            pc.guidance = pg.guidance = cfg ? 7.5f : 1.0f;
            char what[192];
            snprintf(what, sizeof what, "sched_step %s%s step %zu", cases[ci].json, cfg ? "" : " (no CFG)", k);
            finish(what, g_cpu->v->sched_step(g_cpu, &pc, &x.c, &eps.c, noisy ? &nz.c : NULL, slot_c),
                   g_gpu->v->sched_step(g_gpu, &pg, &x.g, &eps.g, noisy ? &nz.g : NULL, slot_g), &x, (tol){1e-5f, 1e-5f});
            for (int j = 0; j < n_slots; j++) {
                snprintf(what, sizeof what, "sched_step %s%s step %zu slot %d", cases[ci].json, cfg ? "" : " (no CFG)", k, j);
                finish(what, NGPT_OK, NGPT_OK, &slot[j], (tol){1e-5f, 1e-5f});
            }
            drop(&eps), drop(&nz);
        }
        drop(&x);
        for (int j = 0; j < n_slots; j++) drop(&slot[j]);
        ngpt_scheduler_free(sc);
        ngpt_scheduler_free(sg);
    }
}

/* ---- layout ---- */

static void test_get_rows(void)
{
    for (int di = 0; di < 3; di++)
        for (int ti = 0; ti < 3; ti++) {
            ngpt_dtype dt = k_dts[di], tdt = k_dts[ti];
            int64_t ts[] = {50, 24}, is[] = {7}, ys[] = {7, 24};
            float ids[7] = {0, 49, 3, 3, 17, 22, 1};
            pt t = mk(2, ts, tdt, tdt, -2, 2), id = mk_vals(1, is, NGPT_DTYPE_I32, NGPT_DTYPE_I32, ids);
            /* values exact in the output dtype as well (get_rows only converts) */
            pt y = out(2, ys, NGPT_DTYPE_F32, dt);
            char what[96];
            snprintf(what, sizeof what, "get_rows table %s out %s", dtn(tdt), dtn(dt));
            tol t0 = tol_for(dt, (tol){0, 0}, (tol){0, 1e-3f}, (tol){0, 4e-3f});
            finish(what, g_cpu->v->get_rows(g_cpu, &y.c, &t.c, &id.c), g_gpu->v->get_rows(g_gpu, &y.g, &t.g, &id.g), &y, t0);
            if (di == 0 && ti == 0) {
                float bad[7] = {0, 1, 2, 50, 4, -1, 6};
                pt idb = mk_vals(1, is, NGPT_DTYPE_I32, NGPT_DTYPE_I32, bad);
                CHECK_ERR(g_gpu->v->get_rows(g_gpu, &y.g, &t.g, &idb.g), NGPT_ERR_INVALID_ARGUMENT, "id 50 at position 3");
                drop(&idb);
                /* recorded into a graph (ImageBind's class-token rows in the encoder's graph):
                 * no range check read back there, the same rows */
                pt y2 = out(2, ys, NGPT_DTYPE_F32, dt);
                nx_graph *gr = NULL;
                ngpt_status sg = nx_backend_capture_begin(g_gpu);
                if (sg == NGPT_ERR_UNSUPPORTED) {
                    fprintf(stderr, "get_rows in a graph: not tested: %s\n", ngpt_last_error());
                } else {
                    if (sg == NGPT_OK) {
                        sg = g_gpu->v->get_rows(g_gpu, &y2.g, &t.g, &id.g);
                        ngpt_status se = nx_backend_capture_end(g_gpu, &gr);
                        if (sg == NGPT_OK) sg = se;
                    }
                    if (sg == NGPT_OK) sg = nx_backend_graph_launch(g_gpu, gr);
                    finish("get_rows recorded in a graph", g_cpu->v->get_rows(g_cpu, &y2.c, &t.c, &id.c), sg, &y2, t0);
                    nx_backend_graph_free(g_gpu, gr);
                }
                drop(&y2);
            }
            drop(&t), drop(&id), drop(&y);
        }
}

static void test_concat_slice_permute(void)
{
    for (int di = 0; di < 3; di++) {
        ngpt_dtype dt = k_dts[di];
        tol exact = {0, 0};
        for (int axis = 0; axis < 3; axis++) {
            int64_t as[] = {3, 4, 5}, bs[] = {3, 4, 5}, ys[] = {3, 4, 5};
            bs[axis] = 2;
            ys[axis] = as[axis] + bs[axis];
            pt a = act(3, as, dt, -2, 2), b = act(3, bs, dt, -2, 2), y = out(3, ys, NGPT_DTYPE_F32, dt);
            char what[96];
            snprintf(what, sizeof what, "concat axis %d %s", axis, dtn(dt));
            finish(what, g_cpu->v->concat(g_cpu, &y.c, &a.c, &b.c, axis), g_gpu->v->concat(g_gpu, &y.g, &a.g, &b.g, axis), &y, exact);
            int64_t ss[] = {3, 4, 5};
            ss[axis] = 2;
            pt s = out(3, ss, NGPT_DTYPE_F32, dt);
            snprintf(what, sizeof what, "slice axis %d %s", axis, dtn(dt));
            finish(what, g_cpu->v->slice(g_cpu, &s.c, &y.c, axis, 1), g_gpu->v->slice(g_gpu, &s.g, &y.g, axis, 1), &s, exact);
            drop(&a), drop(&b), drop(&y), drop(&s);
        }
        const int perms5[][5] = {{0, 2, 1, 3, 4}, {0, 3, 4, 2, 1}, {0, 3, 4, 1, 2}}; /* the UNet3D's */
        for (int pi = 0; pi < 3; pi++) {
            int64_t xs[] = {2, 3, 4, 5, 6}, ys[5];
            for (int d = 0; d < 5; d++) ys[d] = xs[perms5[pi][d]];
            pt x = act(5, xs, dt, -2, 2), y = out(5, ys, NGPT_DTYPE_F32, dt);
            char what[96];
            snprintf(what, sizeof what, "permute %d%d%d%d%d %s", perms5[pi][0], perms5[pi][1], perms5[pi][2],
                     perms5[pi][3], perms5[pi][4], dtn(dt));
            finish(what, g_cpu->v->permute(g_cpu, &y.c, &x.c, perms5[pi]), g_gpu->v->permute(g_gpu, &y.g, &x.g, perms5[pi]), &y, exact);
            drop(&x), drop(&y);
        }
        const int perms[][4] = {{0, 2, 1, 3}, {3, 2, 1, 0}, {1, 0, 3, 2}, {0, 1, 2, 3}};
        for (int pi = 0; pi < 4; pi++) {
            int64_t xs[] = {2, 3, 5, 7}, ys[4];
            for (int d = 0; d < 4; d++) ys[d] = xs[perms[pi][d]];
            pt x = act(4, xs, dt, -2, 2), y = out(4, ys, NGPT_DTYPE_F32, dt);
            char what[96];
            snprintf(what, sizeof what, "permute %d%d%d%d %s", perms[pi][0], perms[pi][1], perms[pi][2], perms[pi][3], dtn(dt));
            finish(what, g_cpu->v->permute(g_cpu, &y.c, &x.c, perms[pi]), g_gpu->v->permute(g_gpu, &y.g, &x.g, perms[pi]), &y, exact);
            drop(&x), drop(&y);
        }
    }
}

/* cast on CUDA against the host conversions of lib/core/dtype.h (no CPU backend needed). */
static void test_cast(void)
{
    const ngpt_dtype all[] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16, NGPT_DTYPE_I32};
    int64_t ne[] = {1000};
    float *src = malloc(1000 * sizeof(float));
    for (int i = 0; i < 1000; i++) src[i] = test_rng_f(&g_rng, -300, 300);
    src[0] = 0.5f, src[1] = -2.5f, src[2] = 60000.f, src[3] = 1e-6f;  /* rounding edge cases */
    for (int si = 0; si < 4; si++)
        for (int di = 0; di < 4; di++) {
            ngpt_dtype sdt = all[si], ddt = all[di];
            if ((sdt == NGPT_DTYPE_I32 && ddt != NGPT_DTYPE_F32 && ddt != NGPT_DTYPE_I32) ||
                (ddt == NGPT_DTYPE_I32 && sdt != NGPT_DTYPE_F32 && sdt != NGPT_DTYPE_I32))
                continue;
            /* source values exactly representable in the source dtype */
            float *sv = malloc(1000 * sizeof(float)), *want = malloc(1000 * sizeof(float));
            for (int i = 0; i < 1000; i++) {
                sv[i] = sdt == NGPT_DTYPE_I32 ? truncf(src[i]) : round_dt(sdt, src[i]);
                want[i] = ddt == NGPT_DTYPE_I32 ? truncf(sv[i]) : round_dt(ddt, sv[i]);
            }
            nx_tensor x, y;
            if (!upload(&x, g_gpu, sdt, 1, ne, sv)) continue;
            CHECK_OK(nx_tensor_alloc(&y, g_gpu, ddt, 1, ne));
            ngpt_status st = g_gpu->v->cast(g_gpu, &y, &x);
            char what[64];
            snprintf(what, sizeof what, "cast %s -> %s", dtn(sdt), dtn(ddt));
            if (st != NGPT_OK) {
                t_checks++, t_failed++;
                fprintf(stderr, "%s: %s\n", what, ngpt_last_error());
            } else {
                float *got = download_f32(&y);
                test_close(what, got, want, 1000, 0, 0);
                free(got);
            }
            nx_tensor_free(&x);
            nx_tensor_free(&y);
            free(sv);
            free(want);
        }
    free(src);
}

static void test_resize_argmax(void)
{
    const int64_t outs[][2] = {{16, 20}, {5, 3}, {8, 10}};
    for (int di = 0; di < 3; di++) {
        ngpt_dtype dt = k_dts[di];
        for (int oi = 0; oi < 3; oi++)
            for (int mode = 0; mode < 2; mode++)
                for (int ac = 0; ac < 4; ac++) { /* ac & 1: align_corners; ac & 2: channels last */
                    const bool align = ac & 1, cl = ac & 2;
                    if (mode == 0 && align) continue;
                    int64_t xs[] = {2, 3, 8, 10}, ys[] = {2, 3, outs[oi][0], outs[oi][1]};
                    int64_t xl[] = {2, 8, 10, 3}, yl[] = {2, outs[oi][0], outs[oi][1], 3};
                    pt x = act(4, cl ? xl : xs, dt, -2, 2), y = out(4, cl ? yl : ys, NGPT_DTYPE_F32, dt);
                    char what[96];
                    snprintf(what, sizeof what, "resize %s %lldx%lld mode %d align %d%s", dtn(dt), (long long)ys[2],
                             (long long)ys[3], mode, align, cl ? " channels last" : "");
                    finish(what, g_cpu->v->resize(g_cpu, &y.c, &x.c, (nx_resize_mode)mode, align, cl),
                           g_gpu->v->resize(g_gpu, &y.g, &x.g, (nx_resize_mode)mode, align, cl), &y,
                           tol_for(dt, (tol){1e-5f, 1e-5f}, (tol){2e-3f, 1e-3f}, (tol){1e-2f, 4e-3f}));
                    drop(&x), drop(&y);
                }
        /* argmax, with ties (values on a coarse grid) and a vocabulary-sized row */
        int64_t xs[] = {5, 32000}, ys[] = {5};
        int64_t n = xs[0] * xs[1];
        float *v = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) v[i] = (float)(int)test_rng_f(&g_rng, 0, 50) * 0.25f;
        v[3] = 100.f, v[32000 + 7] = 100.f, v[32000 + 31999] = 100.f;  /* ties: first index wins */
        pt x = mk_vals(2, xs, NGPT_DTYPE_F32, dt, v), y = out(1, ys, NGPT_DTYPE_I32, NGPT_DTYPE_I32);
        char what[64];
        snprintf(what, sizeof what, "argmax %s", dtn(dt));
        finish(what, g_cpu->v->argmax(g_cpu, &y.c, &x.c), g_gpu->v->argmax(g_gpu, &y.g, &x.g), &y, (tol){0, 0});
        free(v);
        drop(&x), drop(&y);
    }
}

/* Errors are statuses with messages, and the backend stays usable after one. */
static void test_errors(void)
{
    nx_tensor t;
    int64_t huge[] = {(int64_t)1 << 50};
    CHECK_ERR(nx_tensor_alloc(&t, g_gpu, NGPT_DTYPE_F32, 1, huge), NGPT_ERR_OUT_OF_MEMORY, "cudaMalloc");
    int64_t ne[] = {4};
    CHECK_OK(nx_tensor_alloc(&t, g_gpu, NGPT_DTYPE_F32, 1, ne));
    nx_tensor_free(&t);
    CHECK(strstr(g_gpu->device_name, "sm_") != NULL);
    CHECK(g_gpu->act_dtypes == NX_FLOAT_DTYPES);
}

int main(void)
{
    nx_backend *gpu = NULL;
    ngpt_status st = nx_cuda_backend_create(&gpu, 0, NULL, NULL);
    if (st != NGPT_OK) {
        const char *why = ngpt_last_error();
        if (!test_no_gpu(why)) {
            fprintf(stderr, "FAIL: CUDA start-up failed with a GPU present: %s\n", why);
            return 1;
        }
        fprintf(stderr, "SKIP: %s%s\n", strstr(why, "no usable CUDA device") == why ? "" : "no usable CUDA device: ", why);
        return TEST_SKIP;
    }
    g_gpu = gpu;
    CHECK_OK(nx_cpu_backend_create(&g_cpu, NULL, NULL));
    if (!g_cpu) return 1;
    const char *allow = getenv("NGPT_GPU_TEST_ALLOW_CPU_UNIMPLEMENTED");
    g_allow_missing = allow && allow[0] == '1';
    fprintf(stderr, "device: %s\n", g_gpu->device_name);

    RUN(test_errors);
    RUN(test_cast);
    RUN(test_attention);
    /* again with decode steps (Sq 1) through the flash kernel instead of the split-KV one (the
     * default) */
    nx_cuda_set_attention_split(g_gpu, false);
    RUN(test_attention);
    nx_cuda_set_attention_split(g_gpu, true);
    RUN(test_linear);
    RUN(test_linear_graph);
    RUN(test_matmul);
    RUN(test_conv);
    RUN(test_conv_plan_eviction);
    RUN(test_conv_transpose1d);
    RUN(test_norms);
    RUN(test_rope);
    RUN(test_softmax_unary_scale);
    RUN(test_binary);
    RUN(test_glu);
    RUN(test_set_rows);
    RUN(test_attention_len);
    RUN(test_decode_step_graph);
    RUN(test_timestep_embedding);
    RUN(test_sched_step);
    RUN(test_get_rows);
    RUN(test_concat_slice_permute);
    RUN(test_resize_argmax);

    if (g_cpu_missing)
        fprintf(stderr, "%d case(s) had no CPU reference yet (NGPT_ERR_UNIMPLEMENTED)%s\n", g_cpu_missing,
                g_allow_missing ? " and were skipped" : "");
    nx_backend_free(g_cpu);
    nx_backend_free(g_gpu);
    return test_done();
}
