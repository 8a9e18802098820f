/* test_ops_gemm.c — CPU linear (oneDNN, fused F16/BF16 GEMM, GEMV) and batched matmul against
 * naive double loops.
 *
 * Tolerances, relative to sum_k |a_k b_k| (+|bias|) of each output:
 *   F32 compute (any weight dtype: weights are rounded first, so the reference sees the same
 *   values): 2e-6 (F32 accumulation over K <= 8192 with blocked sums).
 *   BF16 compute: 8e-3 (x rounded to bf16: 2^-8 relative per term, plus the weight rounding
 *   for F32/F16 weights). */
#include "ops_test_util.h"

#include "core/alloc.h"
#include "ops/cpu/onednn.h"

#include <pthread.h>

static test_rng rng = {0x9e3779b97f4a7c15ull};

static void ref_linear(const float *x, const float *w, const float *b, int64_t M, int64_t N, int64_t K, double *y,
                       double *sc)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double s = b ? b[n] : 0.0, a = b ? fabs(b[n]) : 0.0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)x[m * K + k] * w[n * K + k];
                a += fabs((double)x[m * K + k] * w[n * K + k]);
            }
            y[m * N + n] = s;
            sc[m * N + n] = a;
        }
}

/* pack: W through nx_op_linear_pack first (packed where the CPU has AMX-BF16 and the shape and
 * dtype allow it: gemm.c's packed_md) */
static void check_linear_packed(int64_t M, int64_t N, int64_t K, ngpt_dtype wdt, int bias, int bf16, bool pack)
{
    float *x = malloc(sizeof(float) * (size_t)(M * K + 1)), *w = malloc(sizeof(float) * (size_t)(N * K + 1));
    void *wenc = malloc(4 * (size_t)(N * K + 1));
    float *b = malloc(sizeof(float) * (size_t)(N + 1)), *y = malloc(sizeof(float) * (size_t)(M * N + 1));
    double *want = malloc(sizeof(double) * (size_t)(M * N + 1)), *sc = malloc(sizeof(double) * (size_t)(M * N + 1));
    test_fill(&rng, x, (size_t)(M * K), -1, 1);
    test_fill(&rng, w, (size_t)(N * K), -1, 1);
    test_fill(&rng, b, (size_t)N, -1, 1);
    round_to(wdt, w, wenc, (size_t)(N * K));
    for (int64_t i = 0; i < M * N; i++) y[i] = NAN;
    int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, xs, x, t_be), tw = nx_view(wdt, 2, ws, wenc, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &N, b, t_be), ty = nx_view(NGPT_DTYPE_F32, 2, ys, y, t_be);
    if (pack) {
        CHECK_OK(nx_op_linear_pack(t_be, &tw));
        const bool packable = wdt == NGPT_DTYPE_BF16 && N % 64 == 0 && K % 32 == 0 && nx_cpu_has_amx_bf16();
        CHECK((tw.packed != 0) == packable);
    }
    nx_cpu_set_bf16_compute(t_be, bf16);
    CHECK_OK(nx_cpu_linear(t_be, &ty, &tx, &tw, bias ? &tb : NULL));
    nx_cpu_set_bf16_compute(t_be, false);
    ref_linear(x, w, bias ? b : NULL, M, N, K, want, sc);
    char what[128];
    snprintf(what, sizeof what, "linear M=%lld N=%lld K=%lld %s bias=%d bf16=%d packed=%d", (long long)M, (long long)N,
             (long long)K, nx_dtype_name(wdt), bias, bf16, tw.packed);
    /* bf16 compute only applies to the oneDNN path (M > 4; any M on a packed W) */
    close_scaled(what, y, want, sc, (size_t)(M * N), bf16 && (M > 4 || tw.packed != 0) ? 8e-3 : 2e-6, 1e-6);
    free(x), free(w), free(wenc), free(b), free(y), free(want), free(sc);
}

static void check_linear(int64_t M, int64_t N, int64_t K, ngpt_dtype wdt, int bias, int bf16)
{
    check_linear_packed(M, N, K, wdt, bias, bf16, false);
}

/* Packed W (nx_op_linear_pack): BF16 compute on it as it is, for any M (the GEMV's rows too, and
 * 256 + tail rows); F32 compute unpacks it per call; shapes and dtypes it cannot take stay plain. */
static void test_linear_packed(void)
{
    static const int64_t shapes[][3] = {
        {1, 64, 32}, {3, 128, 64}, {5, 64, 96}, {16, 192, 32}, {257, 128, 160}, {300, 64, 320}, {40, 640, 64},
        {9, 100, 64}, {9, 64, 48}, /* N % 64, K % 32: not packed */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
        for (int bias = 0; bias < 2; bias++)
            for (int bf16 = 0; bf16 < 2; bf16++)
                check_linear_packed(shapes[i][0], shapes[i][1], shapes[i][2], NGPT_DTYPE_BF16, bias, bf16, true);
    check_linear_packed(20, 64, 32, NGPT_DTYPE_F32, 1, 1, true);
    check_linear_packed(20, 64, 32, NGPT_DTYPE_F16, 1, 1, true);

    /* a packed tensor is a linear's w only */
    uint16_t *w = nx_malloc_aligned(64 * 32 * 2);
    float *y = malloc(64 * 32 * sizeof(float));
    for (int i = 0; i < 64 * 32; i++) w[i] = nx_f32_to_bf16((float)(i % 7) - 3.0f);
    int64_t ws[2] = {64, 32};
    nx_tensor tw = nx_view(NGPT_DTYPE_BF16, 2, ws, w, t_be), ty = nx_view(NGPT_DTYPE_F32, 2, ws, y, t_be);
    CHECK_OK(nx_op_linear_pack(t_be, &tw));
    CHECK_OK(nx_op_linear_pack(t_be, &tw)); /* twice: a no-op */
    if (tw.packed) {
        CHECK_ERR(nx_op_cast(t_be, &ty, &tw), NGPT_ERR_INVALID_ARGUMENT, "is packed");
        nx_tensor r;
        CHECK_ERR(nx_reshape(&r, &tw, 1, (const int64_t[]){64 * 32}), NGPT_ERR_INVALID_ARGUMENT, "packed");
    }
    nx_free_aligned(w);
    free(y);

    /* the packing by hand (gemm.c's pack_task) is oneDNN's reorder into BA16a64b2a, byte for byte */
    const int64_t N = 192, K = 96;
    uint16_t *a = nx_malloc_aligned(N * K * 2), *ref = nx_malloc_aligned(N * K * 2);
    for (int64_t i = 0; i < N * K; i++) a[i] = (uint16_t)(i * 2654435761u >> 16);
    nx_tensor ta = nx_view(NGPT_DTYPE_BF16, 2, (int64_t[]){N, K}, a, t_be);
    dnnl_memory_desc_t plain, packed;
    dnnl_memory_desc_init_by_strides(&plain, 2, (dnnl_dims_t){K, N}, dnnl_bf16, (dnnl_dims_t){1, K});
    dnnl_memory_desc_init_by_tag(&packed, 2, (dnnl_dims_t){K, N}, dnnl_bf16, dnnl_BA16a64b2a);
    CHECK_OK(nx_dnnl_reorder(t_be, &plain, a, &packed, ref, "test"));
    CHECK_OK(nx_op_linear_pack(t_be, &ta));
    if (ta.packed) CHECK(memcmp(a, ref, N * K * 2) == 0);
    nx_free_aligned(a), nx_free_aligned(ref);
}

static void test_linear(void)
{
    static const int64_t shapes[][3] = {
        {1, 37, 19}, {1, 11008 / 8, 4096 / 8}, {2, 64, 100}, {3, 33, 257}, {4, 17, 16}, {1, 5, 1},
        {5, 70, 45},  {17, 70, 45}, {17, 129, 511}, {64, 96, 128}, {33, 1, 7}, {2, 40, 30}, /* K 16 + 8 + 6 */
        {1, 37, 83}, {3, 9, 48}, /* the F16/BF16 GEMV's 32-wide steps, then 16, then the tail */
    };
    const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int d = 0; d < 3; d++)
            for (int bias = 0; bias < 2; bias++) check_linear(shapes[s][0], shapes[s][1], shapes[s][2], dts[d], bias, 0);
}

/* W tiled for conversion (N > NB = 256 rows at K = 8192), and the bf16 compute option */
static void test_linear_tiles_bf16(void)
{
    check_linear(5, 300, 8192, NGPT_DTYPE_F16, 1, 0);
    check_linear(6, 300, 8192, NGPT_DTYPE_BF16, 0, 0);
    const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        check_linear(17, 129, 511, dts[d], 1, 1);
        check_linear(7, 300, 8192, dts[d], 0, 1);
        check_linear(2, 33, 100, dts[d], 1, 1); /* GEMV: unaffected */
        /* on AMX, 256 < M < 768 runs as two calls (rows [0, 256k), then the tail: gemm.c,
         * amx_tail_split) */
        check_linear(300, 33, 100, dts[d], 1, 1);
    }
    check_linear(263, 300, 16384, NGPT_DTYPE_F16, 1, 1); /* ... and two W tiles (N 300 > NB 256) */
}

/* nx_op_linear_epi against linear, then the unary and binary ops, on every path: the GEMV (M 3),
 * the fused-convert GEMM (F16 W), oneDNN (F32 W; BF16 compute; packed W; 257 rows split), fused
 * functions and one left to the ops (tanh); accumulate on and off. The fused GELU is oneDNN's
 * erf, ours a rational erfc: within 1e-6 + 1e-5 relative. */
static void check_linear_epi(int64_t M, int64_t N, int64_t K, ngpt_dtype wdt, bool bf16, bool pack)
{
    float *x = malloc(4 * (size_t)(M * K)), *w = malloc(4 * (size_t)(N * K)), *b = malloc(4 * (size_t)N);
    float *r = malloc(4 * (size_t)(M * N)), *y0 = malloc(4 * (size_t)(M * N)), *y1 = malloc(4 * (size_t)(M * N));
    float *t = malloc(4 * (size_t)(M * N));
    void *wenc = nx_malloc_aligned(4 * (size_t)(N * K));
    test_fill(&rng, x, (size_t)(M * K), -1, 1);
    test_fill(&rng, w, (size_t)(N * K), -0.2f, 0.2f);
    test_fill(&rng, b, (size_t)N, -1, 1);
    test_fill(&rng, r, (size_t)(M * N), -1, 1);
    round_to(wdt, w, wenc, (size_t)(N * K));
    int64_t xs[2] = {M, K}, ws[2] = {N, K}, ys[2] = {M, N};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, xs, x, t_be), tw = nx_view(wdt, 2, ws, wenc, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &N, b, t_be), ty0 = nx_view(NGPT_DTYPE_F32, 2, ys, y0, t_be);
    nx_tensor ty1 = nx_view(NGPT_DTYPE_F32, 2, ys, y1, t_be), tt = nx_view(NGPT_DTYPE_F32, 2, ys, t, t_be);
    if (pack) CHECK_OK(nx_op_linear_pack(t_be, &tw));
    static const nx_unary acts[5] = {NX_UNARY_IDENTITY, NX_UNARY_GELU, NX_UNARY_GELU_TANH, NX_UNARY_QUICK_GELU,
                                     NX_UNARY_TANH};
    nx_cpu_set_bf16_compute(t_be, bf16);
    for (int a = 0; a < 5; a++)
        for (int acc = 0; acc < 2; acc++) {
            memcpy(y0, r, 4 * (size_t)(M * N));
            memcpy(y1, r, 4 * (size_t)(M * N));
            nx_tensor *d = acc ? &tt : &ty0;
            CHECK_OK(nx_op_linear(t_be, d, &tx, &tw, &tb));
            if (acts[a] != NX_UNARY_IDENTITY) CHECK_OK(nx_op_unary(t_be, d, d, acts[a], 0.0f));
            if (acc) CHECK_OK(nx_op_binary(t_be, &ty0, &ty0, &tt, NX_BINARY_ADD));
            const nx_linear_epi e = {.act = acts[a], .accumulate = acc, .tmp = &tt};
            CHECK_OK(nx_op_linear_epi(t_be, &ty1, &tx, &tw, &tb, &e));
            double worst = 0;
            for (int64_t i = 0; i < M * N; i++) {
                double err = fabs((double)y1[i] - y0[i]) / (1e-6 + 1e-5 * fabs((double)y0[i]));
                if (!(err <= worst)) worst = err;
            }
            CHECK_MSG(worst <= 1.0, "linear_epi M=%lld N=%lld K=%lld %s bf16=%d packed=%d act=%d acc=%d: %.3g x tol",
                      (long long)M, (long long)N, (long long)K, nx_dtype_name(wdt), bf16, tw.packed, (int)acts[a], acc,
                      worst);
        }
    nx_cpu_set_bf16_compute(t_be, false);
    free(x), free(w), free(b), free(r), free(y0), free(y1), free(t);
    nx_free_aligned(wenc);
}

static void test_linear_epi(void)
{
    check_linear_epi(3, 64, 32, NGPT_DTYPE_F32, false, false);
    check_linear_epi(20, 64, 96, NGPT_DTYPE_F32, false, false);
    check_linear_epi(20, 64, 96, NGPT_DTYPE_F16, false, false);
    check_linear_epi(20, 64, 96, NGPT_DTYPE_BF16, true, false);
    check_linear_epi(257, 128, 64, NGPT_DTYPE_BF16, true, true);
    check_linear_epi(3, 128, 64, NGPT_DTYPE_BF16, true, true);
    check_linear_epi(257, 128, 64, NGPT_DTYPE_BF16, false, true); /* packed, F32: unpacked per call */

    float v[8] = {0};
    nx_tensor a = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){2, 2}, v, t_be), w = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){2, 2}, v + 4, t_be);
    float yb[4];
    nx_tensor y = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){2, 2}, yb, t_be);
    CHECK_ERR(nx_op_linear_epi(t_be, &y, &a, &w, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, "epilogue is NULL");
    CHECK_ERR(nx_op_linear_epi(t_be, &y, &a, &w, NULL, &(nx_linear_epi){.accumulate = true}), NGPT_ERR_INVALID_ARGUMENT,
              "tmp is NULL");
    CHECK_ERR(nx_op_linear_epi(t_be, &y, &a, &w, NULL, &(nx_linear_epi){.accumulate = true, .tmp = &y}),
              NGPT_ERR_INVALID_ARGUMENT, "neither y nor x");
    CHECK_ERR(nx_op_linear_epi(t_be, &a, &a, &w, NULL, &(nx_linear_epi){0}), NGPT_ERR_INVALID_ARGUMENT, "must not be x");
    CHECK_ERR(nx_op_linear_epi(t_be, &y, &a, &w, NULL, &(nx_linear_epi){.act = (nx_unary)99}), NGPT_ERR_INVALID_ARGUMENT,
              "unknown epilogue");
}

/* ---- matmul ---- */

/* The fused convert-in-GEMM path (gemm_wcvt.c) at its block edges: M around the 32-row x
 * panel (M <= 16 goes to the GEMV instead), N around the 14-row micro-tile and the 112-row
 * task, K around the 256 K block. */
static void test_linear_fused(void)
{
    static const int64_t shapes[][3] = {
        {5, 1, 1}, {16, 20, 33}, {17, 1, 1}, {31, 15, 255}, {32, 14, 16}, {33, 113, 257}, {64, 112, 256}, {70, 300, 600}, {40, 225, 1000},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int d = 0; d < 2; d++)
            for (int bias = 0; bias < 2; bias++)
                check_linear(shapes[s][0], shapes[s][1], shapes[s][2], d ? NGPT_DTYPE_BF16 : NGPT_DTYPE_F16, bias, 0);
}

static void check_matmul(int64_t Ba, int64_t Bb, int64_t M, int64_t N, int64_t K, int ta, int tb, float alpha, float beta,
                         int bf16)
{
    int64_t B = Ba > Bb ? Ba : Bb;
    size_t na = (size_t)(Ba * M * K), nb = (size_t)(Bb * K * N), nc = (size_t)(B * M * N);
    float *a = malloc(4 * na + 4), *b = malloc(4 * nb + 4), *c = malloc(4 * nc + 4);
    double *want = malloc(8 * nc + 8), *sc = malloc(8 * nc + 8);
    test_fill(&rng, a, na, -1, 1);
    test_fill(&rng, b, nb, -1, 1);
    test_fill(&rng, c, nc, -1, 1);
    if (beta == 0.0f)
        for (size_t i = 0; i < nc; i++) c[i] = NAN; /* beta = 0 must ignore c */
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                const float *ab = a + (Ba == 1 ? 0 : bi) * M * K, *bb = b + (Bb == 1 ? 0 : bi) * K * N;
                double s = 0, sa = 0;
                for (int64_t k = 0; k < K; k++) {
                    double av = ta ? ab[k * M + m] : ab[m * K + k];
                    double bv = tb ? bb[n * K + k] : bb[k * N + n];
                    s += av * bv;
                    sa += fabs(av * bv);
                }
                size_t ci = (size_t)((bi * M + m) * N + n);
                double old = beta == 0.0f ? 0.0 : (double)beta * c[ci];
                want[ci] = alpha * s + old;
                sc[ci] = fabs(alpha) * sa + fabs(old);
            }
    int64_t as[3] = {Ba, ta ? K : M, ta ? M : K}, bs[3] = {Bb, tb ? N : K, tb ? K : N}, cs[3] = {B, M, N};
    /* rank-2 operands for a batch of 1 */
    nx_tensor tA = Ba == 1 ? nx_view(NGPT_DTYPE_F32, 2, as + 1, a, t_be) : nx_view(NGPT_DTYPE_F32, 3, as, a, t_be);
    nx_tensor tB = Bb == 1 ? nx_view(NGPT_DTYPE_F32, 2, bs + 1, b, t_be) : nx_view(NGPT_DTYPE_F32, 3, bs, b, t_be);
    nx_tensor tC = B == 1 ? nx_view(NGPT_DTYPE_F32, 2, cs + 1, c, t_be) : nx_view(NGPT_DTYPE_F32, 3, cs, c, t_be);
    nx_cpu_set_bf16_compute(t_be, bf16);
    CHECK_OK(nx_cpu_matmul(t_be, &tC, &tA, &tB, ta, tb, alpha, beta));
    nx_cpu_set_bf16_compute(t_be, false);
    char what[160];
    snprintf(what, sizeof what, "matmul Ba=%lld Bb=%lld M=%lld N=%lld K=%lld ta=%d tb=%d alpha=%g beta=%g bf16=%d",
             (long long)Ba, (long long)Bb, (long long)M, (long long)N, (long long)K, ta, tb, (double)alpha,
             (double)beta, bf16);
    close_scaled(what, c, want, sc, nc, bf16 ? 8e-3 : 2e-6, 1e-6);
    free(a), free(b), free(c), free(want), free(sc);
}

static void test_matmul(void)
{
    static const int64_t shapes[][5] = {
        /* Ba, Bb, M, N, K */
        {1, 1, 1, 1, 1}, {1, 1, 3, 5, 7}, {2, 2, 17, 33, 19}, {3, 1, 17, 9, 40}, {1, 4, 5, 31, 64},
        {4, 4, 64, 64, 80}, {2, 2, 1, 130, 257},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                const int64_t *p = shapes[s];
                check_matmul(p[0], p[1], p[2], p[3], p[4], ta, tb, 1.0f, 0.0f, 0);
                check_matmul(p[0], p[1], p[2], p[3], p[4], ta, tb, 0.125f, 1.0f, 0);
                check_matmul(p[0], p[1], p[2], p[3], p[4], ta, tb, -2.0f, 0.5f, 0);
            }
    check_matmul(2, 2, 33, 65, 129, 0, 1, 1.0f, 0.0f, 1);
    check_matmul(1, 3, 33, 65, 129, 1, 0, 0.5f, 1.0f, 1);
}

/* nx_cpu_bf16_scope_*: the override is the calling thread's, for its backend only, and nests. */
static void *read_flag(void *arg)
{
    *(int *)arg = nx_cpu_bf16_compute(t_be) ? 1 : 0;
    return NULL;
}

static void test_bf16_scope(void)
{
    CHECK(!nx_cpu_bf16_compute(t_be));
    nx_cpu_bf16_scope outer = nx_cpu_bf16_scope_begin(t_be, true);
    CHECK(nx_cpu_bf16_compute(t_be));
    int other = -1;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, read_flag, &other) == 0);
    pthread_join(th, NULL);
    CHECK_MSG(other == 0, "another thread saw the override (%d)", other);
    nx_cpu_bf16_scope inner = nx_cpu_bf16_scope_begin(t_be, false);
    CHECK(!nx_cpu_bf16_compute(t_be));
    nx_cpu_bf16_scope_end(inner);
    CHECK(nx_cpu_bf16_compute(t_be));
    nx_cpu_bf16_scope_end(outer);
    CHECK(!nx_cpu_bf16_compute(t_be));
    /* the backend-wide setting still applies outside a scope, and a scope overrides it */
    nx_cpu_set_bf16_compute(t_be, true);
    nx_cpu_bf16_scope sc = nx_cpu_bf16_scope_begin(t_be, false);
    CHECK(!nx_cpu_bf16_compute(t_be));
    nx_cpu_bf16_scope_end(sc);
    CHECK(nx_cpu_bf16_compute(t_be));
    nx_cpu_set_bf16_compute(t_be, false);
}

int main(void)
{
    if (!ops_test_init(2)) {
        fprintf(stderr, "cannot create the CPU backend: %s\n", ngpt_last_error());
        return 1;
    }
    RUN(test_linear);
    RUN(test_linear_tiles_bf16);
    RUN(test_matmul);
    RUN(test_bf16_scope);
    RUN(test_linear_fused);
    RUN(test_linear_packed);
    RUN(test_linear_epi);
    nx_cpu_set_wcvt(false); /* F16/BF16 W: AVX-512 conversion + oneDNN (the fused path's fallback) */
    RUN(test_linear);
    RUN(test_linear_fused);
    RUN(test_linear_tiles_bf16);
    nx_cpu_set_wcvt(true);
    FOR_NARROWER_ISAS { /* the narrower GEMVs; bf16 compute emulated below AVX-512 */
        RUN(test_linear);
        RUN(test_linear_tiles_bf16);
        RUN(test_matmul);
    }
    ops_test_fini();
    return test_done();
}
