/* test_ops_basic.c — the CPU backend's non-GEMM ops against the naive references of ref_ops.c
 * (random inputs, odd sizes, size-1 dims, broadcasting), ops.c's argument validation (every op:
 * wrong shape / dtype / parameter gives the right status and a message naming the op), the
 * f16/bf16 conversions, and thread-count independence (1 vs 2 threads: identical bits). */
#include "ref_ops.h"
#include "test.h"

#include "core/alloc.h"

#include <float.h>
#include "core/dtype.h"
#include "core/error.h"
#include "core/pool.h"
#include "ops/backend.h"
#include "ops/cpu/cpu_util.h"

static nx_backend *g_be;
static test_rng g_rng = {0x9e3779b97f4a7c15ull};

/* Tolerances, per the dtype of the weights involved (references use the decoded weights, so the
 * difference is F32 arithmetic only; reduced-precision weights get a little more room). */
static const float k_rtol[3] = {[NGPT_DTYPE_F32] = 1e-5f, [NGPT_DTYPE_F16] = 2e-5f, [NGPT_DTYPE_BF16] = 2e-5f};
static const float k_atol = 1e-6f;
static const ngpt_dtype k_wdt[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};

/* NE(2, 3) -> rank, shape */
#define NE(...) (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), (const int64_t[]){__VA_ARGS__}

static nx_tensor tnew(ngpt_dtype dt, int rank, const int64_t *ne)
{
    nx_tensor t;
    ngpt_status s = nx_tensor_alloc(&t, g_be, dt, rank, ne);
    CHECK_OK(s);
    if (s == NGPT_OK && nx_nbytes(&t)) memset(t.data, 0, nx_nbytes(&t));
    return t;
}

static nx_tensor trand(int rank, const int64_t *ne, float lo, float hi)
{
    nx_tensor t = tnew(NGPT_DTYPE_F32, rank, ne);
    test_fill(&g_rng, t.data, (size_t)nx_numel(&t), lo, hi);
    return t;
}

/* A weight of dtype dt with random values; *dec receives its F32 decoding (malloc'd). */
static nx_tensor tweight(ngpt_dtype dt, int rank, const int64_t *ne, float lo, float hi, float **dec)
{
    nx_tensor t = tnew(dt, rank, ne);
    size_t n = (size_t)nx_numel(&t);
    float *f = malloc((n ? n : 1) * sizeof *f);
    test_fill(&g_rng, f, n, lo, hi);
    if (dt == NGPT_DTYPE_F16) {
        nx_f32_to_f16_n(f, t.data, n);
        nx_f16_to_f32_n(t.data, f, n);
    } else if (dt == NGPT_DTYPE_BF16) {
        nx_f32_to_bf16_n(f, t.data, n);
        nx_bf16_to_f32_n(t.data, f, n);
    } else {
        memcpy(t.data, f, n * sizeof *f);
    }
    *dec = f;
    return t;
}

static float *fbuf(int64_t n) { return calloc((size_t)(n ? n : 1), sizeof(float)); }

/* ---- norms ---- */

/* rms_norm_add == binary ADD then rms_norm, bit for bit (x updated, y the norm); bad
 * arguments named */
static void test_rms_norm_add(void)
{
    const int64_t shapes[][3] = {{1, 1, 1}, {2, 5, 64}, {1, 3, 4096}, {3, 2, 33}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int wi = 0; wi < 2; wi++) {
            const int64_t *s = shapes[si];
            nx_tensor x = trand(NE(s[0], s[1], s[2]), -3, 3), r = trand(NE(s[0], s[1], s[2]), -3, 3);
            nx_tensor x2 = tnew(NGPT_DTYPE_F32, NE(s[0], s[1], s[2]));
            nx_tensor y = tnew(NGPT_DTYPE_F32, NE(s[0], s[1], s[2])), y2 = tnew(NGPT_DTYPE_F32, NE(s[0], s[1], s[2]));
            memcpy(x2.data, x.data, nx_nbytes(&x));
            float *wf = NULL;
            nx_tensor w = wi ? tweight(NGPT_DTYPE_F32, NE(s[2]), 0.5f, 1.5f, &wf) : (nx_tensor){0};
            CHECK_OK(nx_op_rms_norm_add(g_be, &y, &x, &r, wi ? &w : NULL, 1e-6f));
            CHECK_OK(nx_op_binary(g_be, &x2, &x2, &r, NX_BINARY_ADD));
            CHECK_OK(nx_op_rms_norm(g_be, &y2, &x2, wi ? &w : NULL, 1e-6f));
            CHECK_MSG(!memcmp(x.data, x2.data, nx_nbytes(&x)) && !memcmp(y.data, y2.data, nx_nbytes(&y)),
                      "rms_norm_add shape %zu w %d differs from add + rms_norm", si, wi);
            if (si == 1 && wi == 0) {
                CHECK_ERR(nx_op_rms_norm_add(g_be, &x, &x, &r, NULL, 1e-6f), NGPT_ERR_INVALID_ARGUMENT, "aliases");
                nx_tensor small = tnew(NGPT_DTYPE_F32, NE(s[0], s[1], s[2] - 1));
                CHECK_ERR(nx_op_rms_norm_add(g_be, &y, &x, &small, NULL, 1e-6f), NGPT_ERR_SHAPE_MISMATCH, "r");
                nx_tensor_free(&small);
            }
            free(wf);
            nx_tensor_free(&x), nx_tensor_free(&x2), nx_tensor_free(&r), nx_tensor_free(&y), nx_tensor_free(&y2);
            nx_tensor_free(&w);
        }
}

static void test_rms_norm(void)
{
    const int64_t shapes[][3] = {{1, 1, 1}, {1, 3, 7}, {2, 5, 64}, {1, 1, 4096}, {3, 2, 33}, {1, 300, 129}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int wi = 0; wi < 4; wi++) {
            const int64_t *s = shapes[si];
            nx_tensor x = trand(NE(s[0], s[1], s[2]), -3, 3), y = tnew(NGPT_DTYPE_F32, NE(s[0], s[1], s[2]));
            float *wf = NULL;
            nx_tensor w = {0};
            ngpt_dtype dt = wi < 3 ? k_wdt[wi] : NGPT_DTYPE_F32;
            if (wi < 3) w = tweight(dt, NE(s[2]), 0.5f, 1.5f, &wf);
            CHECK_OK(nx_op_rms_norm(g_be, &y, &x, wi < 3 ? &w : NULL, 1e-6f));
            float *want = fbuf(nx_numel(&x));
            ref_rms_norm(want, x.data, s[0] * s[1], s[2], wf, 1e-6);
            char what[64];
            snprintf(what, sizeof what, "rms_norm shape %zu w %d", si, wi);
            test_close(what, y.data, want, (size_t)nx_numel(&y), k_atol, k_rtol[dt]);
            /* in place */
            CHECK_OK(nx_op_rms_norm(g_be, &x, &x, wi < 3 ? &w : NULL, 1e-6f));
            test_close(what, x.data, want, (size_t)nx_numel(&y), k_atol, k_rtol[dt]);
            free(want);
            free(wf);
            nx_tensor_free(&x);
            nx_tensor_free(&y);
            nx_tensor_free(&w);
        }
}

static void test_layer_norm(void)
{
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {10, 64}, {1, 4097}, {257, 96}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (int wi = 0; wi < 4; wi++) {
            const int64_t *s = shapes[si];
            /* an offset mean checks the two-pass variance */
            nx_tensor x = trand(NE(s[0], s[1]), 97, 103), y = tnew(NGPT_DTYPE_F32, NE(s[0], s[1]));
            float *wf = NULL, *bf = NULL;
            nx_tensor w = {0}, b = {0};
            ngpt_dtype dt = wi < 3 ? k_wdt[wi] : NGPT_DTYPE_F32;
            if (wi < 3) {
                w = tweight(dt, NE(s[1]), -2, 2, &wf);
                b = tweight(dt, NE(s[1]), -1, 1, &bf);
            }
            CHECK_OK(nx_op_layer_norm(g_be, &y, &x, wi < 3 ? &w : NULL, wi < 3 ? &b : NULL, 1e-5f));
            float *want = fbuf(nx_numel(&x));
            ref_layer_norm(want, x.data, s[0], s[1], wf, bf, 1e-5);
            char what[64];
            snprintf(what, sizeof what, "layer_norm shape %zu w %d", si, wi);
            test_close(what, y.data, want, (size_t)nx_numel(&y), 2e-5f, 20 * k_rtol[dt]);
            free(want);
            free(wf);
            free(bf);
            nx_tensor_free(&x);
            nx_tensor_free(&y);
            nx_tensor_free(&w);
            nx_tensor_free(&b);
        }
}

static void test_group_norm(void)
{
    const struct { int64_t n, c, h, w; int groups; } cases[] = {
        {1, 4, 1, 1, 2}, {2, 6, 3, 5, 3}, {1, 32, 8, 8, 32}, {2, 64, 9, 7, 32}, {1, 3, 1, 1, 1}, {1, 8, 64, 64, 4}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int silu = 0; silu < 2; silu++)
            for (int wi = 0; wi < 4; wi++) {
                int64_t n = cases[ci].n, c = cases[ci].c, h = cases[ci].h, w_ = cases[ci].w;
                nx_tensor x = trand(NE(n, c, h, w_), -4, 6), y = tnew(NGPT_DTYPE_F32, NE(n, c, h, w_));
                float *wf = NULL, *bf = NULL;
                nx_tensor w = {0}, b = {0};
                ngpt_dtype dt = wi < 3 ? k_wdt[wi] : NGPT_DTYPE_F32;
                if (wi < 3) {
                    w = tweight(dt, NE(c), -2, 2, &wf);
                    b = tweight(dt, NE(c), -1, 1, &bf);
                }
                CHECK_OK(nx_op_group_norm(g_be, &y, &x, wi < 3 ? &w : NULL, wi < 3 ? &b : NULL, cases[ci].groups,
                                          1e-5f, silu));
                float *want = fbuf(nx_numel(&x));
                ref_group_norm(want, x.data, n, c, h * w_, cases[ci].groups, wf, bf, 1e-5, silu);
                char what[64];
                snprintf(what, sizeof what, "group_norm case %zu silu %d w %d", ci, silu, wi);
                test_close(what, y.data, want, (size_t)nx_numel(&y), 1e-5f, 2 * k_rtol[dt]);
                free(want);
                free(wf);
                free(bf);
                nx_tensor_free(&x);
                nx_tensor_free(&y);
                nx_tensor_free(&w);
                nx_tensor_free(&b);
            }
    /* rank 3 (GroupNorm over [N, C, L]) */
    nx_tensor x = trand(NE(2, 6, 11), -1, 1), y = tnew(NGPT_DTYPE_F32, NE(2, 6, 11));
    CHECK_OK(nx_op_group_norm(g_be, &y, &x, NULL, NULL, 2, 1e-6f, 0));
    float want[132];
    ref_group_norm(want, x.data, 2, 6, 11, 2, NULL, NULL, 1e-6, 0);
    test_close("group_norm rank 3", y.data, want, 132, 1e-5f, 1e-5f);
    nx_tensor_free(&x);
    nx_tensor_free(&y);
}

/* NX_GN_CHANNELS_LAST: the same numbers as the NCHW op on the permuted tensor, for group sizes
 * of 1 channel to all of them and sizes that do not fill the CPU's 64 row stripes */
static void test_group_norm_channels_last(void)
{
    const struct { int64_t n, c, h, w; int groups; } cases[] = {
        {1, 4, 1, 1, 2}, {2, 6, 3, 5, 3}, {1, 32, 8, 8, 32}, {2, 64, 9, 7, 32}, {1, 3, 1, 1, 1}, {2, 320, 16, 16, 32},
        {1, 8, 130, 3, 4}, {1, 20, 80, 80, 5} /* 100 rows a stripe: nx_vcolstats' 64-row blocks, a 4-column tail */};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int silu = 0; silu < 2; silu++) {
            const int64_t n = cases[ci].n, c = cases[ci].c, h = cases[ci].h, w_ = cases[ci].w;
            nx_tensor x = trand(NE(n, c, h, w_), -4, 6), y = tnew(NGPT_DTYPE_F32, NE(n, c, h, w_));
            nx_tensor xl = tnew(NGPT_DTYPE_F32, NE(n, h, w_, c)), yl = tnew(NGPT_DTYPE_F32, NE(n, h, w_, c));
            float *wf = NULL, *bf = NULL;
            nx_tensor w = tweight(NGPT_DTYPE_F16, NE(c), -2, 2, &wf), b = tweight(NGPT_DTYPE_F32, NE(c), -1, 1, &bf);
            ref_to_nhwc(xl.data, x.data, n, c, h * w_);
            unsigned fl = silu ? NX_GN_SILU : 0;
            CHECK_OK(nx_op_group_norm(g_be, &y, &x, &w, &b, cases[ci].groups, 1e-5f, fl));
            CHECK_OK(nx_op_group_norm(g_be, &yl, &xl, &w, &b, cases[ci].groups, 1e-5f, fl | NX_GN_CHANNELS_LAST));
            float *want = fbuf(nx_numel(&y));
            ref_to_nhwc(want, y.data, n, c, h * w_);
            char what[80];
            snprintf(what, sizeof what, "group_norm channels last case %zu silu %d", ci, silu);
            test_close(what, yl.data, want, (size_t)nx_numel(&y), 1e-5f, 1e-5f);
            free(want), free(wf), free(bf);
            nx_tensor_free(&x), nx_tensor_free(&y), nx_tensor_free(&xl), nx_tensor_free(&yl);
            nx_tensor_free(&w), nx_tensor_free(&b);
        }
    /* rank 3 [N, L, C] and the errors that name the layout */
    nx_tensor x = trand(NE(2, 11, 6), -1, 1), y = tnew(NGPT_DTYPE_F32, NE(2, 11, 6));
    CHECK_OK(nx_op_group_norm(g_be, &y, &x, NULL, NULL, 3, 1e-6f, NX_GN_CHANNELS_LAST));
    CHECK_ERR(nx_op_group_norm(g_be, &y, &x, NULL, NULL, 4, 1e-6f, NX_GN_CHANNELS_LAST), NGPT_ERR_INVALID_ARGUMENT,
              "channels last");
    CHECK_ERR(nx_op_group_norm(g_be, &y, &x, NULL, NULL, 3, 1e-6f, 8u), NGPT_ERR_INVALID_ARGUMENT, "unknown flags");
    nx_tensor_free(&x);
    nx_tensor_free(&y);
}

/* ---- rope ---- */

static void test_rope(void)
{
    const struct { int64_t b, s, h, d; int n_rot; } cases[] = {
        {1, 1, 1, 2, 2}, {2, 5, 3, 8, 8}, {1, 7, 4, 64, 64}, {1, 3, 2, 80, 40}, {2, 4, 2, 10, 6}, {1, 33, 8, 128, 128}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int mode = 0; mode < 2; mode++) {
            int64_t b = cases[ci].b, s = cases[ci].s, h = cases[ci].h, d = cases[ci].d;
            nx_tensor x = trand(NE(b, s, h, d), -2, 2), y = tnew(NGPT_DTYPE_F32, NE(b, s, h, d));
            nx_tensor pos = tnew(NGPT_DTYPE_I32, NE(s));
            int32_t *p = pos.data;
            for (int64_t i = 0; i < s; i++) p[i] = (int32_t)(i * 3 + (int64_t)(test_rng_u64(&g_rng) % 50));
            CHECK_OK(nx_op_rope(g_be, &y, &x, &pos, cases[ci].n_rot, 10000.0f, (nx_rope_mode)mode));
            float *want = fbuf(nx_numel(&x));
            ref_rope(want, x.data, b, s, h, d, p, cases[ci].n_rot, 10000.0, (nx_rope_mode)mode);
            char what[64];
            snprintf(what, sizeof what, "rope case %zu mode %d", ci, mode);
            test_close(what, y.data, want, (size_t)nx_numel(&y), 1e-5f, 1e-5f);
            CHECK_OK(nx_op_rope(g_be, &x, &x, &pos, cases[ci].n_rot, 10000.0f, (nx_rope_mode)mode));  /* in place */
            test_close(what, x.data, want, (size_t)nx_numel(&y), 1e-5f, 1e-5f);
            free(want);
            nx_tensor_free(&x);
            nx_tensor_free(&y);
            nx_tensor_free(&pos);
        }
}

/* ---- element-wise ---- */

static void test_softmax(void)
{
    const int64_t shapes[][2] = {{1, 1}, {3, 7}, {17, 100}, {2, 4099}, {300, 64}};
    const float scales[] = {1.0f, 0.125f, -2.0f};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++)
        for (size_t k = 0; k < 3; k++) {
            nx_tensor x = trand(NE(shapes[si][0], shapes[si][1]), -20, 20);
            nx_tensor y = tnew(NGPT_DTYPE_F32, NE(shapes[si][0], shapes[si][1]));
            CHECK_OK(nx_op_softmax(g_be, &y, &x, scales[k]));
            float *want = fbuf(nx_numel(&x));
            ref_softmax(want, x.data, shapes[si][0], shapes[si][1], scales[k]);
            char what[64];
            snprintf(what, sizeof what, "softmax shape %zu scale %g", si, (double)scales[k]);
            test_close(what, y.data, want, (size_t)nx_numel(&y), 1e-7f, 2e-5f);
            free(want);
            nx_tensor_free(&x);
            nx_tensor_free(&y);
        }
    /* -inf entries (masked) get exactly 0 */
    float xv[4] = {1.0f, -INFINITY, 2.0f, -INFINITY}, yv[4];
    nx_tensor x = nx_view(NGPT_DTYPE_F32, NE(1, 4), xv, NULL), y = nx_view(NGPT_DTYPE_F32, NE(1, 4), yv, NULL);
    CHECK_OK(nx_op_softmax(g_be, &y, &x, 1.0f));
    CHECK(yv[1] == 0.0f && yv[3] == 0.0f && fabsf(yv[0] + yv[2] - 1.0f) < 1e-6f);
}

static void test_unary(void)
{
    const int64_t sizes[] = {1, 7, 100, 20001};
    for (int op = 0; op <= NX_UNARY_NEG; op++)
        for (size_t si = 0; si < 4; si++) {
            /* wide enough for the tails (GELU(-20) ~ -5e-88: relative accuracy there too) */
            float lo = op == NX_UNARY_SQRT ? 0.0f : op == NX_UNARY_EXP ? -80.0f : -20.0f;
            float hi = op == NX_UNARY_EXP ? 80.0f : 20.0f;
            nx_tensor x = trand(NE(sizes[si]), lo, hi), y = tnew(NGPT_DTYPE_F32, NE(sizes[si]));
            CHECK_OK(nx_op_unary(g_be, &y, &x, (nx_unary)op, 0.2f));
            float *want = fbuf(sizes[si]);
            ref_unary(want, x.data, sizes[si], (nx_unary)op, 0.2);
            char what[64];
            snprintf(what, sizeof what, "unary %d size %lld", op, (long long)sizes[si]);
            /* tanh-GELU: rounding of its float argument 1.6 (x + 0.044715 x^3) shows up in the far
             * negative tail (values ~1e-17 at x = -9); GELU reaches ~4e-6 near x = -11 */
            float rtol = op == NX_UNARY_GELU_TANH ? 2e-5f : op == NX_UNARY_GELU ? 8e-6f : 4e-6f;
            test_close(what, y.data, want, (size_t)sizes[si], 1e-30f, rtol);
            CHECK_OK(nx_op_unary(g_be, &x, &x, (nx_unary)op, 0.2f));
            test_close(what, x.data, want, (size_t)sizes[si], 1e-30f, rtol);
            free(want);
            nx_tensor_free(&x);
            nx_tensor_free(&y);
        }
    /* GELU is the exact erf form, not the tanh one: at x = 1 they differ by ~1.6e-4 */
    float xv = 1.0f, yv;
    nx_tensor x = nx_view(NGPT_DTYPE_F32, NE(1), &xv, NULL), y = nx_view(NGPT_DTYPE_F32, NE(1), &yv, NULL);
    CHECK_OK(nx_op_unary(g_be, &y, &x, NX_UNARY_GELU, 0));
    CHECK_MSG(fabs(yv - 0.8413447460685429) < 1e-6, "gelu(1) = %.9g", (double)yv);
}

static void test_binary(void)
{
    static const struct { int ra; int64_t a[4]; int rb; int64_t b[4]; } cases[] = {
        {2, {3, 5}, 2, {3, 5}},         {2, {3, 5}, 1, {5}},        {1, {5}, 2, {3, 5}},
        {3, {2, 3, 4}, 3, {2, 1, 4}},   {3, {2, 1, 4}, 3, {1, 3, 1}}, {4, {2, 3, 4, 5}, 2, {4, 1}},
        {1, {1}, 3, {2, 3, 7}},         {3, {2, 3, 7}, 0, {0}},     {4, {2, 1, 3, 1}, 4, {1, 4, 1, 5}},
        {2, {1, 70001}, 2, {1, 70001}}, {2, {1, 70001}, 1, {1}},    {3, {4, 1, 9000}, 3, {4, 5, 9000}},
        {2, {1, 1}, 1, {1}},            {4, {2, 32, 16, 16}, 4, {2, 32, 1, 1}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int op = 0; op <= NX_BINARY_DIV; op++) {
            nx_tensor a = trand(cases[ci].ra, cases[ci].a, 0.5f, 2.0f), b = trand(cases[ci].rb, cases[ci].b, 0.5f, 2.0f);
            int r = cases[ci].ra > cases[ci].rb ? cases[ci].ra : cases[ci].rb;
            int64_t ne[4];
            for (int i = 0; i < r; i++) {
                int ia = i - (r - cases[ci].ra), ib = i - (r - cases[ci].rb);
                int64_t da = ia >= 0 ? cases[ci].a[ia] : 1, db = ib >= 0 ? cases[ci].b[ib] : 1;
                ne[i] = da > db ? da : db;
            }
            nx_tensor y = tnew(NGPT_DTYPE_F32, r, ne);
            CHECK_OK(nx_op_binary(g_be, &y, &a, &b, (nx_binary)op));
            float *want = fbuf(nx_numel(&y));
            ref_binary(want, a.data, a.rank, a.ne, b.data, b.rank, b.ne, (nx_binary)op);
            char what[64];
            snprintf(what, sizeof what, "binary case %zu op %d", ci, op);
            test_close(what, y.data, want, (size_t)nx_numel(&y), 0, 1e-6f);
            if (nx_same_shape(&a, &y)) {  /* aliasing y = a */
                CHECK_OK(nx_op_binary(g_be, &a, &a, &b, (nx_binary)op));
                test_close(what, a.data, want, (size_t)nx_numel(&y), 0, 1e-6f);
            }
            free(want);
            nx_tensor_free(&a);
            nx_tensor_free(&b);
            nx_tensor_free(&y);
        }
}

static void test_scale_glu_argmax(void)
{
    const int64_t sizes[] = {1, 13, 50000};
    for (size_t si = 0; si < 3; si++) {
        nx_tensor x = trand(NE(sizes[si]), -5, 5), y = tnew(NGPT_DTYPE_F32, NE(sizes[si]));
        CHECK_OK(nx_op_scale(g_be, &y, &x, 0.18215f, -0.5f));
        float *want = fbuf(sizes[si]);
        ref_scale(want, x.data, sizes[si], 0.18215f, -0.5f);
        test_close("scale", y.data, want, (size_t)sizes[si], 1e-6f, 1e-6f);
        free(want);
        nx_tensor_free(&x);
        nx_tensor_free(&y);
    }
    const nx_unary acts[] = {NX_UNARY_SILU, NX_UNARY_GELU, NX_UNARY_GELU_TANH, NX_UNARY_IDENTITY, NX_UNARY_SIGMOID};
    const int64_t gs[][2] = {{1, 1}, {3, 5}, {2, 1376}, {70, 300}};
    for (size_t ai = 0; ai < 5; ai++)
        for (size_t si = 0; si < 4; si++)
            for (int gf = 0; gf < 2; gf++) {
                nx_tensor x = trand(NE(gs[si][0], 2 * gs[si][1]), -4, 4), y = tnew(NGPT_DTYPE_F32, NE(gs[si][0], gs[si][1]));
                CHECK_OK(nx_op_glu(g_be, &y, &x, acts[ai], gf));
                float *want = fbuf(nx_numel(&y));
                ref_glu(want, x.data, gs[si][0], gs[si][1], acts[ai], gf);
                char what[64];
                snprintf(what, sizeof what, "glu act %d shape %zu gate_first %d", (int)acts[ai], si, gf);
                test_close(what, y.data, want, (size_t)nx_numel(&y), 1e-6f, 4e-6f);
                free(want);
                nx_tensor_free(&x);
                nx_tensor_free(&y);
            }
    const int64_t as[][2] = {{1, 1}, {4, 9}, {3, 32000}, {500, 17}};
    for (size_t si = 0; si < 4; si++) {
        nx_tensor x = trand(NE(as[si][0], as[si][1]), -1, 1), y = tnew(NGPT_DTYPE_I32, NE(as[si][0]));
        float *xv = x.data;
        if (as[si][1] > 3) xv[3] = xv[1] = 5.0f;  /* tie: the first index wins */
        CHECK_OK(nx_op_argmax(g_be, &y, &x));
        int32_t want[500];
        ref_argmax(want, x.data, as[si][0], as[si][1]);
        CHECK(memcmp(want, y.data, (size_t)as[si][0] * 4) == 0);
        nx_tensor_free(&x);
        nx_tensor_free(&y);
    }
    /* rank 1 -> rank 0 */
    float xv[5] = {1, 9, 3, 9, 2};
    int32_t yv = -1;
    nx_tensor x = nx_view(NGPT_DTYPE_F32, NE(5), xv, NULL), y = nx_view(NGPT_DTYPE_I32, 0, NULL, &yv, NULL);
    CHECK_OK(nx_op_argmax(g_be, &y, &x));
    CHECK(yv == 1);
}

/* ---- layout ---- */

static void test_get_rows(void)
{
    for (int wi = 0; wi < 3; wi++) {
        float *tf;
        nx_tensor table = tweight(k_wdt[wi], NE(1000, 37), -1, 1, &tf);
        nx_tensor ids = tnew(NGPT_DTYPE_I32, NE(9));
        int32_t *id = ids.data;
        for (int i = 0; i < 9; i++) id[i] = (int32_t)(test_rng_u64(&g_rng) % 1000);
        id[0] = 0;
        id[8] = 999;
        nx_tensor y = tnew(NGPT_DTYPE_F32, NE(9, 37));
        CHECK_OK(nx_op_get_rows(g_be, &y, &table, &ids));
        float want[9 * 37];
        ref_get_rows(want, tf, 37, id, 9);
        CHECK(memcmp(want, y.data, sizeof want) == 0);
        /* an id out of range names the id and its position */
        id[4] = 1000;
        CHECK_ERR(nx_op_get_rows(g_be, &y, &table, &ids), NGPT_ERR_INVALID_ARGUMENT, "id 1000 at position 4");
        id[4] = -1;
        CHECK_ERR(nx_op_get_rows(g_be, &y, &table, &ids), NGPT_ERR_INVALID_ARGUMENT, "get_rows");
        free(tf);
        nx_tensor_free(&table);
        nx_tensor_free(&ids);
        nx_tensor_free(&y);
    }
}

static void test_concat_slice(void)
{
    static const struct { int rank; int64_t a[4], b[4]; int axis; } cases[] = {
        {1, {3}, {4}, 0}, {2, {2, 3}, {5, 3}, 0}, {2, {2, 3}, {2, 1}, 1}, {3, {2, 3, 4}, {2, 5, 4}, 1},
        {4, {1, 2, 3, 4}, {1, 2, 3, 7}, 3}, {3, {1, 1, 1}, {1, 1, 2}, -1}, {3, {2, 0, 3}, {2, 4, 3}, 1},
        {2, {300, 200}, {300, 100}, 1},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int r = cases[ci].rank, ax = cases[ci].axis < 0 ? cases[ci].axis + r : cases[ci].axis;
        nx_tensor a = trand(r, cases[ci].a, -1, 1), b = trand(r, cases[ci].b, -1, 1);
        int64_t ne[4];
        memcpy(ne, cases[ci].a, sizeof ne);
        ne[ax] += cases[ci].b[ax];
        nx_tensor y = tnew(NGPT_DTYPE_F32, r, ne);
        CHECK_OK(nx_op_concat(g_be, &y, &a, &b, cases[ci].axis));
        float *want = fbuf(nx_numel(&y));
        ref_concat(want, a.data, b.data, 4, r, a.ne, b.ne, ax);
        CHECK_MSG(memcmp(want, y.data, nx_nbytes(&y)) == 0, "concat case %zu", ci);
        /* slicing y back gives b */
        nx_tensor s = tnew(NGPT_DTYPE_F32, r, cases[ci].b);
        CHECK_OK(nx_op_slice(g_be, &s, &y, cases[ci].axis, cases[ci].a[ax]));
        CHECK_MSG(memcmp(b.data, s.data, nx_nbytes(&b)) == 0, "slice case %zu", ci);
        /* a middle slice against the reference */
        if (ne[ax] >= 3) {
            int64_t sn[4];
            memcpy(sn, ne, sizeof sn);
            sn[ax] = ne[ax] - 2;
            nx_tensor m = tnew(NGPT_DTYPE_F32, r, sn);
            CHECK_OK(nx_op_slice(g_be, &m, &y, ax, 1));
            float *w2 = fbuf(nx_numel(&m));
            ref_slice(w2, y.data, 4, r, y.ne, ax, 1, sn[ax]);
            CHECK_MSG(memcmp(w2, m.data, nx_nbytes(&m)) == 0, "middle slice case %zu", ci);
            free(w2);
            nx_tensor_free(&m);
        }
        free(want);
        nx_tensor_free(&a);
        nx_tensor_free(&b);
        nx_tensor_free(&y);
        nx_tensor_free(&s);
    }
}

static void test_permute(void)
{
    static const struct { int rank; int64_t ne[8]; int perm[8]; } cases[] = {
        {1, {5}, {0}},
        {2, {3, 7}, {1, 0}},
        {2, {300, 257}, {1, 0}},
        {3, {2, 3, 4}, {0, 2, 1}},
        {3, {2, 3, 4}, {2, 0, 1}},
        {4, {2, 5, 3, 8}, {0, 2, 1, 3}},  /* [B, S, H, D] -> [B, H, S, D] */
        {4, {2, 1, 3, 1}, {3, 2, 1, 0}},
        {5, {2, 3, 1, 4, 5}, {4, 0, 3, 2, 1}},
        {8, {2, 1, 3, 2, 1, 2, 3, 2}, {7, 6, 5, 4, 3, 2, 1, 0}},
        {8, {2, 3, 2, 2, 1, 2, 2, 3}, {1, 0, 3, 2, 5, 4, 7, 6}},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        int r = cases[ci].rank;
        nx_tensor x = trand(r, cases[ci].ne, -1, 1);
        int64_t ne[8];
        for (int i = 0; i < r; i++) ne[i] = cases[ci].ne[cases[ci].perm[i]];
        nx_tensor y = tnew(NGPT_DTYPE_F32, r, ne);
        CHECK_OK(nx_op_permute(g_be, &y, &x, cases[ci].perm));
        float *want = fbuf(nx_numel(&y));
        ref_permute(want, x.data, 4, r, x.ne, cases[ci].perm);
        CHECK_MSG(memcmp(want, y.data, nx_nbytes(&y)) == 0, "permute case %zu", ci);
        free(want);
        nx_tensor_free(&x);
        nx_tensor_free(&y);
    }
}

static void test_cast(void)
{
    const ngpt_dtype dts[] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    const int64_t n = 10007;
    nx_tensor x = trand(NE(n), -70000, 70000);
    float *xv = x.data;
    xv[0] = 1e-6f;   /* f16 subnormal */
    xv[1] = 65520.0f; /* rounds to inf in f16 */
    xv[2] = NAN;
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++) {
            /* F32 -> a -> b, compared with the scalar conversions */
            nx_tensor ta = tnew(dts[a], NE(n)), tb = tnew(dts[b], NE(n));
            CHECK_OK(nx_op_cast(g_be, &ta, &x));
            CHECK_OK(nx_op_cast(g_be, &tb, &ta));
            int bad = 0;
            for (int64_t i = 0; i < n; i++) {
                float v = xv[i];
                if (dts[a] == NGPT_DTYPE_F16) v = nx_f16_to_f32(nx_f32_to_f16(v));
                if (dts[a] == NGPT_DTYPE_BF16) v = nx_bf16_to_f32(nx_f32_to_bf16(v));
                uint32_t want;
                if (dts[b] == NGPT_DTYPE_F32) {
                    memcpy(&want, &v, 4);
                    bad += memcmp(&want, (const float *)tb.data + i, 4) != 0;
                } else {
                    uint16_t h = dts[b] == NGPT_DTYPE_F16 ? nx_f32_to_f16(v) : nx_f32_to_bf16(v);
                    bad += h != ((const uint16_t *)tb.data)[i];
                }
            }
            CHECK_MSG(bad == 0, "cast F32 -> %s -> %s: %d elements differ", nx_dtype_name(dts[a]), nx_dtype_name(dts[b]), bad);
            nx_tensor_free(&ta);
            nx_tensor_free(&tb);
        }
    nx_tensor_free(&x);
    /* I32 <-> F32: truncation toward zero, saturation, NaN -> 0 */
    float fv[7] = {1.9f, -1.9f, 0.0f, 3e9f, -3e9f, NAN, 16777216.0f};
    int32_t iv[7], want[7] = {1, -1, 0, INT32_MAX, INT32_MIN, 0, 16777216};
    nx_tensor f = nx_view(NGPT_DTYPE_F32, NE(7), fv, NULL), i = nx_view(NGPT_DTYPE_I32, NE(7), iv, NULL);
    CHECK_OK(nx_op_cast(g_be, &i, &f));
    CHECK(memcmp(iv, want, sizeof iv) == 0);
    int32_t iv2[3] = {-5, 7, 123456};
    float fv2[3];
    nx_tensor i2 = nx_view(NGPT_DTYPE_I32, NE(3), iv2, NULL), f2 = nx_view(NGPT_DTYPE_F32, NE(3), fv2, NULL);
    CHECK_OK(nx_op_cast(g_be, &f2, &i2));
    CHECK(fv2[0] == -5.0f && fv2[1] == 7.0f && fv2[2] == 123456.0f);
}

static void test_resize(void)
{
    static const struct { int64_t n, c, h, w, ho, wo; } cases[] = {
        {1, 1, 1, 1, 3, 2}, {1, 2, 4, 4, 8, 8}, {2, 3, 5, 7, 10, 14}, {1, 1, 5, 7, 3, 4}, {1, 2, 3, 3, 7, 5},
        {1, 1, 4, 6, 1, 1}, {1, 4, 32, 32, 64, 64}, {1, 1, 7, 3, 7, 3},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int mode = 0; mode < 3; mode++) {
            nx_resize_mode m = mode == 0 ? NX_RESIZE_NEAREST : NX_RESIZE_BILINEAR;
            int align = mode == 2;
            nx_tensor x = trand(NE(cases[ci].n, cases[ci].c, cases[ci].h, cases[ci].w), -1, 1);
            nx_tensor y = tnew(NGPT_DTYPE_F32, NE(cases[ci].n, cases[ci].c, cases[ci].ho, cases[ci].wo));
            CHECK_OK(nx_op_resize(g_be, &y, &x, m, align, false));
            float *want = fbuf(nx_numel(&y));
            ref_resize(want, x.data, cases[ci].n, cases[ci].c, cases[ci].h, cases[ci].w, cases[ci].ho, cases[ci].wo, m,
                       align);
            char what[64];
            snprintf(what, sizeof what, "resize case %zu mode %d", ci, mode);
            test_close(what, y.data, want, (size_t)nx_numel(&y), 1e-6f, 1e-6f);
            free(want);
            nx_tensor_free(&x);
            nx_tensor_free(&y);
        }
    /* Known values from torch.nn.functional.interpolate on x = [[0, 1], [2, 3]] (1x1x2x2) to 3x3 */
    float xv[4] = {0, 1, 2, 3}, yv[9];
    nx_tensor x = nx_view(NGPT_DTYPE_F32, NE(1, 1, 2, 2), xv, NULL), y = nx_view(NGPT_DTYPE_F32, NE(1, 1, 3, 3), yv, NULL);
    const float want_ac[9] = {0, 0.5f, 1, 1, 1.5f, 2, 2, 2.5f, 3};
    const float want_hp[9] = {0, 0.5f, 1, 1, 1.5f, 2, 2, 2.5f, 3};
    const float want_nn[9] = {0, 0, 1, 0, 0, 1, 2, 2, 3};
    CHECK_OK(nx_op_resize(g_be, &y, &x, NX_RESIZE_BILINEAR, true, false));
    test_close("bilinear align_corners", yv, want_ac, 9, 1e-6f, 1e-6f);
    CHECK_OK(nx_op_resize(g_be, &y, &x, NX_RESIZE_BILINEAR, false, false));
    test_close("bilinear half-pixel", yv, want_hp, 9, 1e-6f, 1e-6f);
    CHECK_OK(nx_op_resize(g_be, &y, &x, NX_RESIZE_NEAREST, false, false));
    test_close("nearest", yv, want_nn, 9, 0, 0);
    /* torch 1.13 F.interpolate outputs for x[i] = ((37 i) % 11) / 7, shape 1x1x5x7 */
    static const struct { int64_t ho, wo; int mode, align; float y[130]; } tv[] = {
{3, 4, 0, 0, {0.0f, 0.571428597f, 0.142857149f, 1.28571427f, 0.857142866f, 1.42857146f, 1.0f, 0.571428597f, 1.0f, 0.0f, 1.14285719f, 0.714285731f}},
{3, 4, 1, 0, {0.49999997f, 0.845238149f, 0.470238119f, 0.75f, 0.357142895f, 1.16071427f, 0.785714269f, 0.803571403f, 0.541666687f, 1.08333325f, 0.708333254f, 0.595238149f}},
{3, 4, 1, 1, {0.0f, 1.14285719f, 0.714285731f, 0.285714298f, 0.142857149f, 1.28571427f, 0.857142866f, 0.428571433f, 0.285714298f, 1.42857146f, 1.0f, 0.571428597f}},
{8, 13, 0, 0, {0.0f, 0.0f, 0.571428597f, 0.571428597f, 1.14285719f, 1.14285719f, 0.142857149f, 0.142857149f, 0.714285731f, 0.714285731f, 1.28571427f, 1.28571427f, 0.285714298f, 0.0f, 0.0f, 0.571428597f, 0.571428597f, 1.14285719f, 1.14285719f, 0.142857149f, 0.142857149f, 0.714285731f, 0.714285731f, 1.28571427f, 1.28571427f, 0.285714298f, 0.857142866f, 0.857142866f, 1.42857146f, 1.42857146f, 0.428571433f, 0.428571433f, 1.0f, 1.0f, 0.0f, 0.0f, 0.571428597f, 0.571428597f, 1.14285719f, 0.857142866f, 0.857142866f, 1.42857146f, 1.42857146f, 0.428571433f, 0.428571433f, 1.0f, 1.0f, 0.0f, 0.0f, 0.571428597f, 0.571428597f, 1.14285719f, 0.142857149f, 0.142857149f, 0.714285731f, 0.714285731f, 1.28571427f, 1.28571427f, 0.285714298f, 0.285714298f, 0.857142866f, 0.857142866f, 1.42857146f, 1.42857146f, 0.428571433f, 1.0f, 1.0f, 0.0f, 0.0f, 0.571428597f, 0.571428597f, 1.14285719f, 1.14285719f, 0.142857149f, 0.142857149f, 0.714285731f, 0.714285731f, 1.28571427f, 1.0f, 1.0f, 0.0f, 0.0f, 0.571428597f, 0.571428597f, 1.14285719f, 1.14285719f, 0.142857149f, 0.142857149f, 0.714285731f, 0.714285731f, 1.28571427f, 0.285714298f, 0.285714298f, 0.857142866f, 0.857142866f, 1.42857146f, 1.42857146f, 0.428571433f, 0.428571433f, 1.0f, 1.0f, 0.0f, 0.0f, 0.571428597f}},
{8, 13, 1, 0, {0.0f, 0.17582421f, 0.483516544f, 0.791208863f, 1.09890127f, 0.681318581f, 0.142857254f, 0.450549573f, 0.758241892f, 1.06593418f, 1.13186789f, 0.59340626f, 0.285714298f, 0.375f, 0.550824225f, 0.858516574f, 0.901785731f, 0.839285731f, 0.686126351f, 0.517857134f, 0.455357134f, 0.445741922f, 0.753434241f, 0.925137281f, 0.756868064f, 0.660714328f, 0.8125f, 0.988324225f, 1.29601657f, 1.03708792f, 0.55151087f, 0.700549483f, 0.955356956f, 0.469780028f, 0.0975276083f, 0.405219942f, 0.697802365f, 0.952610075f, 1.09821427f, 0.366071433f, 0.541895628f, 0.849587977f, 0.968406618f, 1.01167583f, 0.782966971f, 0.508928597f, 0.552197814f, 0.633241892f, 0.940934241f, 1.08241737f, 0.808378994f, 0.651785731f, 0.410714298f, 0.435439587f, 0.478708833f, 0.710851729f, 1.01854408f, 0.827609837f, 0.553571463f, 0.59684068f, 0.677884758f, 0.985577106f, 1.12706029f, 0.853021801f, 0.696428537f, 0.946428597f, 0.668956041f, 0.183379069f, 0.264423132f, 0.572115481f, 0.83447808f, 1.08928561f, 0.603708625f, 0.231456175f, 0.53914851f, 0.831730902f, 1.08653855f, 1.23214281f, 0.598214269f, 0.5625f, 0.5f, 0.701923132f, 1.00961554f, 0.90934062f, 0.741071403f, 0.678571403f, 0.600961506f, 0.43269223f, 0.400412261f, 0.70810461f, 0.883928597f, 0.285714298f, 0.461538494f, 0.769230843f, 1.07692313f, 1.38461554f, 0.96703285f, 0.428571552f, 0.736263871f, 0.923076689f, 0.384615123f, 0.0879122615f, 0.395604581f, 0.571428597f}},
{8, 13, 1, 1, {0.0f, 0.285714298f, 0.571428597f, 0.857142925f, 1.14285719f, 0.642857194f, 0.142857149f, 0.428571433f, 0.714285731f, 1.0f, 1.28571427f, 0.785714269f, 0.285714298f, 0.489795953f, 0.775510252f, 1.06122458f, 0.897959232f, 0.734693885f, 0.683673501f, 0.632653058f, 0.46938777f, 0.306122452f, 0.591836751f, 0.877551019f, 0.826530635f, 0.775510252f, 0.755102038f, 1.04081631f, 1.32653058f, 0.938775539f, 0.551020443f, 0.724489808f, 0.897959173f, 0.510204077f, 0.122449026f, 0.408163309f, 0.693877637f, 0.867347002f, 1.04081631f, 0.346938729f, 0.632652998f, 0.918367326f, 0.979591846f, 1.04081643f, 0.765306115f, 0.489795864f, 0.551020443f, 0.612244964f, 0.897959292f, 1.18367362f, 0.908163309f, 0.632652998f, 0.387755185f, 0.448979616f, 0.510204017f, 0.795918286f, 1.08163261f, 0.806122482f, 0.53061235f, 0.591836751f, 0.653061152f, 0.93877548f, 1.22448981f, 0.948979616f, 0.673469484f, 0.877551138f, 0.489795923f, 0.10204073f, 0.387755036f, 0.673469305f, 0.846938789f, 1.02040827f, 0.632653117f, 0.244897872f, 0.530612171f, 0.816326439f, 0.989795923f, 1.16326535f, 0.693877459f, 0.53061229f, 0.367347062f, 0.65306139f, 0.938775659f, 0.887755156f, 0.836734593f, 0.673469424f, 0.510204196f, 0.459183693f, 0.40816316f, 0.693877459f, 0.979591727f, 0.285714298f, 0.571428597f, 0.857142866f, 1.14285719f, 1.42857146f, 0.928571463f, 0.428571433f, 0.714285731f, 1.0f, 0.5f, 0.0f, 0.285714298f, 0.571428597f}},
{5, 10, 0, 0, {0.0f, 0.0f, 0.571428597f, 1.14285719f, 1.14285719f, 0.142857149f, 0.714285731f, 0.714285731f, 1.28571427f, 0.285714298f, 0.857142866f, 0.857142866f, 1.42857146f, 0.428571433f, 0.428571433f, 1.0f, 0.0f, 0.0f, 0.571428597f, 1.14285719f, 0.142857149f, 0.142857149f, 0.714285731f, 1.28571427f, 1.28571427f, 0.285714298f, 0.857142866f, 0.857142866f, 1.42857146f, 0.428571433f, 1.0f, 1.0f, 0.0f, 0.571428597f, 0.571428597f, 1.14285719f, 0.142857149f, 0.142857149f, 0.714285731f, 1.28571427f, 0.285714298f, 0.285714298f, 0.857142866f, 1.42857146f, 1.42857146f, 0.428571433f, 1.0f, 1.0f, 0.0f, 0.571428597f}},
{5, 10, 1, 0, {0.0f, 0.314285696f, 0.714285731f, 1.11428571f, 0.492857188f, 0.342857122f, 0.742857099f, 1.14285707f, 0.83571434f, 0.285714298f, 0.857142866f, 1.17142856f, 1.17857146f, 0.478571504f, 0.800000012f, 0.650000095f, 0.0285713859f, 0.428571373f, 0.828571379f, 1.14285719f, 0.142857149f, 0.45714283f, 0.857142806f, 1.25714278f, 0.635714293f, 0.485714257f, 0.885714233f, 1.28571427f, 0.978571534f, 0.428571433f, 1.0f, 0.450000048f, 0.142857134f, 0.542857111f, 0.942857146f, 0.792857289f, 0.171428531f, 0.571428537f, 0.971428514f, 1.28571427f, 0.285714298f, 0.599999964f, 1.0f, 1.39999998f, 0.778571486f, 0.628571391f, 0.950000048f, 0.250000119f, 0.257142812f, 0.571428597f}},
{5, 10, 1, 1, {0.0f, 0.380952418f, 0.761904836f, 1.14285707f, 0.476190418f, 0.333333403f, 0.714285791f, 1.09523821f, 0.952380776f, 0.285714298f, 0.857142866f, 1.23809528f, 1.09523809f, 0.428571463f, 0.80952388f, 0.666666567f, 6.81195971e-08f, 0.380952477f, 0.761904895f, 1.14285719f, 0.142857149f, 0.523809552f, 0.90476191f, 1.28571427f, 0.619047523f, 0.476190537f, 0.857142925f, 1.2380954f, 1.09523797f, 0.428571433f, 1.0f, 0.333333313f, 0.190476224f, 0.571428657f, 0.952381015f, 0.809523761f, 0.142857224f, 0.523809612f, 0.90476203f, 1.28571427f, 0.285714298f, 0.666666687f, 1.0476191f, 1.42857134f, 0.761904716f, 0.619047701f, 0.999999881f, 0.333333194f, 0.190476283f, 0.571428597f}},
    };
    float xs[35];
    for (int i = 0; i < 35; i++) xs[i] = (float)((i * 37) % 11) / 7.0f;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, NE(1, 1, 5, 7), xs, NULL);
    for (size_t i = 0; i < sizeof tv / sizeof tv[0]; i++) {
        float out[130];
        nx_tensor ty = nx_view(NGPT_DTYPE_F32, NE(1, 1, tv[i].ho, tv[i].wo), out, NULL);
        CHECK_OK(nx_op_resize(g_be, &ty, &tx, (nx_resize_mode)tv[i].mode, tv[i].align, false));
        char what[64];
        snprintf(what, sizeof what, "resize vs torch %zu", i);
        test_close(what, out, tv[i].y, (size_t)(tv[i].ho * tv[i].wo), 1e-6f, 1e-6f);
    }
}

/* ---- validation ---- */


/* channels last: the NCHW op's numbers on the permuted tensors */
static void test_resize_channels_last(void)
{
    static const struct { int64_t n, c, h, w, ho, wo; } cases[] = {
        {1, 1, 1, 1, 3, 2}, {1, 2, 4, 4, 8, 8}, {2, 3, 5, 7, 10, 14}, {1, 5, 5, 7, 3, 4}, {2, 64, 9, 5, 18, 10}};
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++)
        for (int mode = 0; mode < 3; mode++) {
            const int64_t n = cases[ci].n, c = cases[ci].c;
            nx_resize_mode m = mode == 0 ? NX_RESIZE_NEAREST : NX_RESIZE_BILINEAR;
            nx_tensor x = trand(NE(n, c, cases[ci].h, cases[ci].w), -1, 1);
            nx_tensor y = tnew(NGPT_DTYPE_F32, NE(n, c, cases[ci].ho, cases[ci].wo));
            nx_tensor xl = tnew(NGPT_DTYPE_F32, NE(n, cases[ci].h, cases[ci].w, c));
            nx_tensor yl = tnew(NGPT_DTYPE_F32, NE(n, cases[ci].ho, cases[ci].wo, c));
            ref_to_nhwc(xl.data, x.data, n, c, cases[ci].h * cases[ci].w);
            CHECK_OK(nx_op_resize(g_be, &y, &x, m, mode == 2, false));
            CHECK_OK(nx_op_resize(g_be, &yl, &xl, m, mode == 2, true));
            float *want = fbuf(nx_numel(&y));
            ref_to_nhwc(want, y.data, n, c, cases[ci].ho * cases[ci].wo);
            char what[64];
            snprintf(what, sizeof what, "resize channels last case %zu mode %d", ci, mode);
            test_close(what, yl.data, want, (size_t)nx_numel(&y), 0, 0);
            free(want);
            nx_tensor_free(&x), nx_tensor_free(&y), nx_tensor_free(&xl), nx_tensor_free(&yl);
        }
    /* C must match in the last dim, not the second */
    nx_tensor x = tnew(NGPT_DTYPE_F32, NE(1, 4, 4, 3)), y = tnew(NGPT_DTYPE_F32, NE(1, 8, 8, 4));
    CHECK_ERR(nx_op_resize(g_be, &y, &x, NX_RESIZE_NEAREST, false, true), NGPT_ERR_SHAPE_MISMATCH, "channels last");
    nx_tensor_free(&x), nx_tensor_free(&y);
}

static float g_host[1 << 16];  /* backing store of views in validation tests (never read by failing calls) */

static nx_tensor hv(ngpt_dtype dt, int rank, const int64_t *ne) { return nx_view(dt, rank, ne, g_host, NULL); }

/* A backend of kind CUDA without ops: calls that pass validation return UNSUPPORTED, and host
 * views are not resident on it. */
static const nx_backend_vtbl k_fake_vtbl = {.name = "fake"};
static nx_backend g_fake = {.v = &k_fake_vtbl, .kind = NGPT_BACKEND_CUDA,
                            .act_dtypes = NX_DTYPE_BIT(NGPT_DTYPE_F32) | NX_DTYPE_BIT(NGPT_DTYPE_F16)};
static nx_tensor fv(ngpt_dtype dt, int rank, const int64_t *ne) { return nx_view(dt, rank, ne, g_host, &g_fake); }

#define F32 NGPT_DTYPE_F32
#define F16 NGPT_DTYPE_F16
#define I32 NGPT_DTYPE_I32
#define E_SHAPE NGPT_ERR_SHAPE_MISMATCH
#define E_DTYPE NGPT_ERR_DTYPE_MISMATCH
#define E_ARG NGPT_ERR_INVALID_ARGUMENT
#define E_UNSUP NGPT_ERR_UNSUPPORTED

static void test_validate_linear_matmul(void)
{
    nx_backend *be = g_be, *fk = &g_fake;
    nx_tensor y = fv(F32, NE(5, 64)), x = fv(F32, NE(5, 48)), w = fv(F16, NE(64, 48)), b = fv(F32, NE(64));
    CHECK_ERR(nx_op_linear(fk, &y, &x, &w, &b), E_UNSUP, "fake: op linear not supported");
    CHECK_ERR(nx_op_linear(fk, &y, &x, &w, NULL), E_UNSUP, "linear");
    nx_tensor w2 = fv(F16, NE(64, 32));
    CHECK_ERR(nx_op_linear(fk, &y, &x, &w2, NULL), E_SHAPE, "linear: w F16[64, 32] does not match x F32[5, 48] (K 32 != 48)");
    w2.name = "blk.0.wq";
    CHECK_ERR(nx_op_linear(fk, &y, &x, &w2, NULL), E_SHAPE, "w 'blk.0.wq' F16[64, 32]");
    nx_tensor y2 = fv(F32, NE(5, 63));
    CHECK_ERR(nx_op_linear(fk, &y2, &x, &w, NULL), E_SHAPE, "linear: y F32[5, 63] should be [5, 64]");
    nx_tensor wi = fv(I32, NE(64, 48));
    CHECK_ERR(nx_op_linear(fk, &y, &x, &wi, NULL), E_DTYPE, "linear");
    nx_tensor b2 = fv(F32, NE(63));
    CHECK_ERR(nx_op_linear(fk, &y, &x, &w, &b2), E_SHAPE, "linear");
    CHECK_ERR(nx_op_linear(fk, &y, NULL, &w, NULL), E_ARG, "linear: x is NULL");
    CHECK_ERR(nx_op_linear(NULL, &y, &x, &w, NULL), E_ARG, "linear");
    nx_tensor xh = hv(F32, NE(5, 48));
    CHECK_ERR(nx_op_linear(fk, &y, &xh, &w, NULL), E_ARG, "linear: x F32[5, 48] lives in host memory");
    /* CPU: F16 activations are not supported; a tensor of another backend is not resident */
    nx_tensor hy = hv(F32, NE(5, 64)), hw = hv(F32, NE(64, 48)), hx16 = hv(F16, NE(5, 48));
    CHECK_ERR(nx_op_linear(be, &hy, &hx16, &hw, NULL), E_DTYPE, "linear");
    CHECK_ERR(nx_op_linear(be, &hy, &x, &hw, NULL), E_ARG, "linear");
    nx_tensor nodata = fv(F32, NE(5, 48));
    nodata.data = NULL;
    CHECK_ERR(nx_op_linear(fk, &y, &nodata, &w, NULL), E_ARG, "linear");
    nx_tensor x3 = fv(F32, NE(2, 3, 48)), y3 = fv(F32, NE(2, 3, 64));
    CHECK_ERR(nx_op_linear(fk, &y3, &x3, &w, NULL), E_UNSUP, "linear");

    nx_tensor a = fv(F32, NE(2, 4, 8)), bm = fv(F32, NE(2, 8, 6)), c = fv(F32, NE(2, 4, 6)), c22 = fv(F32, NE(4, 6));
    CHECK_ERR(nx_op_matmul(fk, &c, &a, &bm, false, false, 1, 0), E_UNSUP, "matmul");
    nx_tensor bt = fv(F32, NE(1, 6, 8)), at = fv(F32, NE(8, 4)), c1 = fv(F32, NE(1, 4, 6));
    CHECK_ERR(nx_op_matmul(fk, &c1, &at, &bt, true, true, 1, 0), E_UNSUP, "matmul");
    CHECK_ERR(nx_op_matmul(fk, &c22, &at, &bt, true, true, 1, 0), E_UNSUP, "matmul");
    CHECK_ERR(nx_op_matmul(fk, &c, &a, &bt, false, true, 1, 0), E_UNSUP, "matmul");  /* batch 1 broadcasts */
    CHECK_ERR(nx_op_matmul(fk, &c, &a, &bt, false, false, 1, 0), E_SHAPE, "matmul: a F32[2, 4, 8] does not match b F32[1, 6, 8] (K 8 != 6)");
    nx_tensor b3 = fv(F32, NE(3, 8, 6));
    CHECK_ERR(nx_op_matmul(fk, &c, &a, &b3, false, false, 1, 0), E_SHAPE, "matmul: batch");
    nx_tensor c2 = fv(F32, NE(2, 4, 5));
    CHECK_ERR(nx_op_matmul(fk, &c2, &a, &bm, false, false, 1, 0), E_SHAPE, "matmul");
    CHECK_ERR(nx_op_matmul(fk, &c22, &a, &bm, false, false, 1, 0), E_SHAPE, "matmul");
    nx_tensor a4 = fv(F32, NE(1, 2, 4, 8));
    CHECK_ERR(nx_op_matmul(fk, &c, &a4, &bm, false, false, 1, 0), E_SHAPE, "matmul");
    CHECK_ERR(nx_op_matmul(fk, &c, &a, &bm, false, false, NAN, 0), E_ARG, "matmul");
}

static void test_validate_conv_attention(void)
{
    nx_backend *fk = &g_fake;
    nx_conv_params p = nx_conv_params_default();
    CHECK(p.stride[2] == 1 && p.pad[0] == 0 && p.dilation[1] == 1 && p.groups == 1);
    nx_tensor x = fv(F32, NE(2, 4, 9, 9)), w = fv(F16, NE(8, 4, 3, 3)), b = fv(F32, NE(8)), y = fv(F32, NE(2, 8, 7, 7));
    x.data = g_host + 2048; /* views share g_host; a conv's y must not be its x */
    CHECK_ERR(nx_op_conv(fk, &y, &x, &w, &b, &p), E_UNSUP, "conv");
    p.stride[0] = p.stride[1] = 2;
    p.pad[0] = p.pad[1] = 1;
    nx_tensor y2 = fv(F32, NE(2, 8, 5, 5));  /* (9 + 2 - 3) / 2 + 1 = 5 */
    CHECK_ERR(nx_op_conv(fk, &y2, &x, &w, &b, &p), E_UNSUP, "conv");
    CHECK_ERR(nx_op_conv(fk, &y, &x, &w, &b, &p), E_SHAPE, "conv: y F32[2, 8, 7, 7] should be [2, 8, 5, 5]");
    p = nx_conv_params_default();
    p.groups = 3;
    CHECK_ERR(nx_op_conv(fk, &y, &x, &w, &b, &p), E_ARG, "conv");
    p.groups = 2;  /* w must then be [8, 2, 3, 3] */
    CHECK_ERR(nx_op_conv(fk, &y, &x, &w, &b, &p), E_SHAPE, "conv");
    p = nx_conv_params_default();
    p.stride[1] = 0;
    CHECK_ERR(nx_op_conv(fk, &y, &x, &w, &b, &p), E_ARG, "conv");
    p = nx_conv_params_default();
    nx_tensor wbig = fv(F16, NE(8, 4, 11, 3));
    CHECK_ERR(nx_op_conv(fk, &y, &x, &wbig, &b, &p), E_SHAPE, "conv");
    CHECK_ERR(nx_op_conv(fk, &y, &x, &w, &b, NULL), E_ARG, "conv");
    nx_tensor b7 = fv(F32, NE(7));
    CHECK_ERR(nx_op_conv(fk, &y, &x, &w, &b7, &p), E_SHAPE, "conv");
    nx_tensor x1 = fv(F32, NE(1, 4, 20)), w1 = fv(F32, NE(6, 4, 5)), y1 = fv(F32, NE(1, 6, 16));
    x1.data = g_host + 2048;
    CHECK_ERR(nx_op_conv(fk, &y1, &x1, &w1, NULL, &p), E_UNSUP, "conv");
    nx_tensor x5 = fv(F32, NE(1, 2, 3, 4, 5)), w5 = fv(F32, NE(3, 2, 1, 3, 3)), y5 = fv(F32, NE(1, 3, 3, 2, 3));
    x5.data = g_host + 2048;
    CHECK_ERR(nx_op_conv(fk, &y5, &x5, &w5, NULL, &p), E_UNSUP, "conv");
    CHECK_ERR(nx_op_conv(fk, &y5, &x5, &w1, NULL, &p), E_SHAPE, "conv");
    /* the epilogue: a residual of y's shape and dtype that is not y, a known finite activation */
    nx_tensor r1 = fv(F32, NE(1, 6, 16)), r1s = fv(F32, NE(1, 6, 15));
    r1.data = g_host + 4096; /* nor the residual y */
    p.residual = &r1;
    p.act = NX_UNARY_LEAKY_RELU;
    p.act_param = 0.1f;
    CHECK_ERR(nx_op_conv(fk, &y1, &x1, &w1, NULL, &p), E_UNSUP, "conv");
    p.residual = &r1s;
    CHECK_ERR(nx_op_conv(fk, &y1, &x1, &w1, NULL, &p), E_SHAPE, "conv: y F32[1, 6, 16] does not match residual F32[1, 6, 15]");
    p.residual = &y1;
    CHECK_ERR(nx_op_conv(fk, &y1, &x1, &w1, NULL, &p), E_ARG, "conv: the residual must not be y itself");
    p.residual = NULL;
    p.act_param = NAN;
    CHECK_ERR(nx_op_conv(fk, &y1, &x1, &w1, NULL, &p), E_ARG, "conv");
    p.act = (nx_unary)99;
    CHECK_ERR(nx_op_conv(fk, &y1, &x1, &w1, NULL, &p), E_ARG, "conv: unknown epilogue function 99");
    p = nx_conv_params_default();
    CHECK(p.act == NX_UNARY_IDENTITY && p.residual == NULL);
    nx_tensor xs = fv(F32, NE(1, 6, 16)), ws = fv(F32, NE(6, 6, 1)); /* same shape in and out, same buffer */
    CHECK_ERR(nx_op_conv(fk, &xs, &xs, &ws, NULL, &p), E_ARG, "conv: y must not be x");

    /* conv_transpose1d: Lo = (L - 1) * s - 2p + d (k - 1) + op + 1 = 9 * 4 - 4 + 7 + 1 + 1 = 41 */
    nx_tensor xt = fv(F32, NE(1, 6, 10)), wt = fv(F32, NE(6, 2, 8)), yt = fv(F32, NE(1, 4, 41));
    CHECK_ERR(nx_op_conv_transpose1d(fk, &yt, &xt, &wt, NULL, 4, 2, 1, 1, 2), E_UNSUP, "conv_transpose1d");
    CHECK_ERR(nx_op_conv_transpose1d(fk, &yt, &xt, &wt, NULL, 4, 2, 0, 1, 2), E_SHAPE, "conv_transpose1d");
    CHECK_ERR(nx_op_conv_transpose1d(fk, &yt, &xt, &wt, NULL, 4, 2, 4, 1, 2), E_ARG, "conv_transpose1d");
    CHECK_ERR(nx_op_conv_transpose1d(fk, &yt, &xt, &wt, NULL, 4, 2, 1, 1, 4), E_ARG, "conv_transpose1d");
    nx_tensor wt2 = fv(F32, NE(5, 2, 8));
    CHECK_ERR(nx_op_conv_transpose1d(fk, &yt, &xt, &wt2, NULL, 4, 2, 1, 1, 2), E_SHAPE, "conv_transpose1d");

    nx_tensor q = fv(F32, NE(2, 5, 8, 16)), k = fv(F32, NE(2, 7, 2, 16)), v = fv(F32, NE(2, 7, 2, 16));
    nx_tensor o = fv(F32, NE(2, 5, 8, 16)), m2 = fv(F32, NE(5, 7)), m3 = fv(F32, NE(2, 5, 7)), m4 = fv(F32, NE(2, 1, 5, 7));
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k, &v, NULL, 0.25f, true), E_UNSUP, "attention");
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k, &v, &m2, 0.25f, false), E_UNSUP, "attention");
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k, &v, &m3, 0.25f, false), E_UNSUP, "attention");
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k, &v, &m4, 0.25f, false), E_UNSUP, "attention");
    nx_tensor mbad = fv(F32, NE(5, 6)), m16 = fv(F16, NE(5, 7));
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k, &v, &mbad, 0.25f, false), E_SHAPE, "attention: mask");
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k, &v, &m16, 0.25f, false), E_DTYPE, "attention: mask");
    nx_tensor k3 = fv(F32, NE(2, 7, 3, 16)), v3 = fv(F32, NE(2, 7, 3, 16));
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k3, &v3, NULL, 0.25f, false), E_SHAPE, "attention");
    nx_tensor vd = fv(F32, NE(2, 7, 2, 8));
    CHECK_ERR(nx_op_attention(fk, &o, &q, &k, &vd, NULL, 0.25f, false), E_SHAPE, "attention");
    nx_tensor kd = fv(F32, NE(2, 7, 2, 8));
    CHECK_ERR(nx_op_attention(fk, &o, &q, &kd, &kd, NULL, 0.25f, false), E_SHAPE, "attention");
    nx_tensor ks = fv(F32, NE(2, 3, 2, 16));
    CHECK_ERR(nx_op_attention(fk, &o, &q, &ks, &ks, NULL, 0.25f, true), E_ARG, "attention");
    nx_tensor obad = fv(F32, NE(2, 5, 8, 15));
    CHECK_ERR(nx_op_attention(fk, &obad, &q, &k, &v, NULL, 0.25f, false), E_SHAPE, "attention");
}

static void test_validate_rest(void)
{
    nx_backend *be = g_be, *fk = &g_fake;
    nx_tensor x = hv(F32, NE(3, 8)), y = hv(F32, NE(3, 8)), w8 = hv(F16, NE(8)), w7 = hv(F32, NE(7)), y7 = hv(F32, NE(3, 7));
    CHECK_ERR(nx_op_rms_norm(be, &y, &x, &w8, 0.0f), E_ARG, "rms_norm: eps");
    CHECK_ERR(nx_op_rms_norm(be, &y, &x, &w7, 1e-5f), E_SHAPE, "rms_norm");
    CHECK_ERR(nx_op_rms_norm(be, &y7, &x, &w8, 1e-5f), E_SHAPE, "rms_norm");
    CHECK_ERR(nx_op_rms_norm(be, &y, &x, NULL, NAN), E_ARG, "rms_norm");
    CHECK_ERR(nx_op_layer_norm(be, &y, &x, &w8, &w7, 1e-5f), E_SHAPE, "layer_norm: b");
    CHECK_ERR(nx_op_layer_norm(be, &y, &x, NULL, NULL, -1.0f), E_ARG, "layer_norm");
    nx_tensor xi = hv(I32, NE(3, 8));
    CHECK_ERR(nx_op_layer_norm(be, &y, &xi, NULL, NULL, 1e-5f), E_DTYPE, "layer_norm");
    nx_tensor gx = hv(F32, NE(2, 4, 3, 3)), gy = hv(F32, NE(2, 4, 3, 3)), g1 = hv(F32, NE(4));
    CHECK_ERR(nx_op_group_norm(be, &gy, &gx, NULL, NULL, 3, 1e-5f, 0), E_ARG, "group_norm: groups 3");
    CHECK_ERR(nx_op_group_norm(be, &gy, &gx, NULL, NULL, 0, 1e-5f, 0), E_ARG, "group_norm");
    CHECK_ERR(nx_op_group_norm(be, &g1, &g1, NULL, NULL, 1, 1e-5f, 0), E_SHAPE, "group_norm");
    CHECK_ERR(nx_op_group_norm(be, &gy, &gx, &w7, NULL, 2, 1e-5f, NX_GN_SILU), E_SHAPE, "group_norm");

    nx_tensor rx = hv(F32, NE(1, 4, 2, 8)), ry = hv(F32, NE(1, 4, 2, 8)), pos = hv(I32, NE(4)), posf = hv(F32, NE(4)),
              pos3 = hv(I32, NE(3));
    CHECK_ERR(nx_op_rope(be, &ry, &rx, &pos, 7, 1e4f, NX_ROPE_HALF), E_ARG, "rope: n_rot 7");
    CHECK_ERR(nx_op_rope(be, &ry, &rx, &pos, 10, 1e4f, NX_ROPE_HALF), E_ARG, "rope");
    CHECK_ERR(nx_op_rope(be, &ry, &rx, &pos, 0, 1e4f, NX_ROPE_HALF), E_ARG, "rope");
    CHECK_ERR(nx_op_rope(be, &ry, &rx, &posf, 8, 1e4f, NX_ROPE_HALF), E_DTYPE, "rope: pos");
    CHECK_ERR(nx_op_rope(be, &ry, &rx, &pos3, 8, 1e4f, NX_ROPE_HALF), E_SHAPE, "rope: pos");
    CHECK_ERR(nx_op_rope(be, &ry, &rx, &pos, 8, 0.0f, NX_ROPE_HALF), E_ARG, "rope: theta");
    CHECK_ERR(nx_op_rope(be, &ry, &rx, &pos, 8, 1e4f, (nx_rope_mode)5), E_ARG, "rope");
    CHECK_ERR(nx_op_rope(be, &ry, &x, &pos, 8, 1e4f, NX_ROPE_HALF), E_SHAPE, "rope");

    CHECK_ERR(nx_op_softmax(be, &y7, &x, 1.0f), E_SHAPE, "softmax");
    CHECK_ERR(nx_op_softmax(be, &y, &x, INFINITY), E_ARG, "softmax");
    CHECK_ERR(nx_op_unary(be, &y, &x, (nx_unary)99, 0), E_ARG, "unary");
    CHECK_ERR(nx_op_unary(be, &y7, &x, NX_UNARY_SILU, 0), E_SHAPE, "unary");
    CHECK_ERR(nx_op_unary(be, &y, NULL, NX_UNARY_SILU, 0), E_ARG, "unary: x is NULL");
    CHECK_ERR(nx_op_scale(be, &y7, &x, 1, 0), E_SHAPE, "scale");

    nx_tensor a = hv(F32, NE(2, 3, 4)), b = hv(F32, NE(3, 5)), ob = hv(F32, NE(2, 3, 4)), b1 = hv(F32, NE(3, 1));
    CHECK_ERR(nx_op_binary(be, &ob, &a, &b, NX_BINARY_ADD), E_SHAPE, "binary: a F32[2, 3, 4] and b F32[3, 5] do not broadcast");
    CHECK_ERR(nx_op_binary(be, &ob, &a, &b1, (nx_binary)9), E_ARG, "binary");
    nx_tensor obad = hv(F32, NE(3, 4));
    CHECK_ERR(nx_op_binary(be, &obad, &a, &b1, NX_BINARY_MUL), E_SHAPE, "binary");
    nx_tensor bc1 = hv(F32, NE(1, 3, 1)), bc2 = hv(F32, NE(2, 1, 4)), obc = hv(F32, NE(2, 3, 4));
    /* a broadcast output may not have the shape of either input: fine */
    float ba[3] = {1, 2, 3}, bb[8] = {1, 2, 3, 4, 5, 6, 7, 8}, bo[24];
    bc1.data = ba;
    bc2.data = bb;
    obc.data = bo;
    CHECK_OK(nx_op_binary(be, &obc, &bc1, &bc2, NX_BINARY_ADD));
    CHECK(bo[0] == 2 && bo[23] == 11 && bo[5] == 4);
    nx_tensor alias = obc;
    alias.data = ba;  /* y over the smaller input's memory */
    CHECK_ERR(nx_op_binary(be, &alias, &bc1, &bc2, NX_BINARY_ADD), E_ARG, "binary: y F32[2, 3, 4] aliases");

    nx_tensor gx2 = hv(F32, NE(3, 7)), gy2 = hv(F32, NE(3, 4)), gy3 = hv(F32, NE(3, 4));
    CHECK_ERR(nx_op_glu(be, &gy2, &gx2, NX_UNARY_SILU, true), E_SHAPE, "glu");
    gx2.ne[1] = 8;
    gy3.ne[1] = 5;
    CHECK_ERR(nx_op_glu(be, &gy3, &gx2, NX_UNARY_SILU, true), E_SHAPE, "glu");
    CHECK_ERR(nx_op_glu(be, &gy2, &gx2, (nx_unary)42, true), E_ARG, "glu");

    nx_tensor table = hv(F16, NE(10, 4)), ids = hv(I32, NE(3)), idsf = hv(F32, NE(3)), ry2 = hv(F32, NE(3, 4)),
              ry3 = hv(F32, NE(3, 5)), t1 = hv(F32, NE(40)), ti = hv(I32, NE(10, 4));
    CHECK_ERR(nx_op_get_rows(be, &ry2, &table, &idsf), E_DTYPE, "get_rows: ids");
    CHECK_ERR(nx_op_get_rows(be, &ry3, &table, &ids), E_SHAPE, "get_rows");
    CHECK_ERR(nx_op_get_rows(be, &ry2, &t1, &ids), E_SHAPE, "get_rows");
    CHECK_ERR(nx_op_get_rows(be, &ry2, &ti, &ids), E_DTYPE, "get_rows");

    nx_tensor ca = hv(F32, NE(2, 3)), cb = hv(F32, NE(2, 4)), cy = hv(F32, NE(2, 7)), cb16 = fv(F16, NE(2, 4));
    CHECK_ERR(nx_op_concat(be, &cy, &ca, &cb, 2), E_ARG, "concat: axis 2");
    CHECK_ERR(nx_op_concat(be, &cy, &ca, &cb, 0), E_SHAPE, "concat");
    CHECK_ERR(nx_op_concat(be, &cy, &ca, &cy, 1), E_SHAPE, "concat");
    nx_tensor fca = fv(F32, NE(2, 3)), fcy = fv(F32, NE(2, 7));
    CHECK_ERR(nx_op_concat(fk, &fcy, &fca, &cb16, 1), E_DTYPE, "concat");
    CHECK_ERR(nx_op_concat(fk, &fcy, &fca, &fca, -1), E_SHAPE, "concat");
    nx_tensor fcb = fv(F32, NE(2, 4));
    CHECK_ERR(nx_op_concat(fk, &fcy, &fca, &fcb, -1), E_UNSUP, "concat");

    nx_tensor sx = hv(F32, NE(4, 6)), sy = hv(F32, NE(4, 2)), sy2 = hv(F32, NE(3, 2));
    CHECK_ERR(nx_op_slice(be, &sy, &sx, 1, 5), E_ARG, "slice");
    CHECK_ERR(nx_op_slice(be, &sy, &sx, 1, -1), E_ARG, "slice");
    CHECK_ERR(nx_op_slice(be, &sy2, &sx, 1, 0), E_SHAPE, "slice");
    CHECK_ERR(nx_op_slice(be, &sy, &sx, 2, 0), E_ARG, "slice: axis 2");

    nx_tensor px = hv(F32, NE(2, 3, 4)), py = hv(F32, NE(4, 2, 3)), py2 = hv(F32, NE(2, 4, 3));
    const int p_dup[3] = {0, 0, 1}, p_ok[3] = {2, 0, 1}, p_oob[3] = {0, 1, 3};
    CHECK_ERR(nx_op_permute(be, &py, &px, p_dup), E_ARG, "permute");
    CHECK_ERR(nx_op_permute(be, &py, &px, p_oob), E_ARG, "permute");
    CHECK_ERR(nx_op_permute(be, &py2, &px, p_ok), E_SHAPE, "permute");
    CHECK_ERR(nx_op_permute(be, &py, &px, NULL), E_ARG, "permute");

    nx_tensor c16 = hv(F16, NE(5)), ci = hv(I32, NE(5)), cu8 = hv(NGPT_DTYPE_U8, NE(5)), cf = hv(F32, NE(6));
    CHECK_ERR(nx_op_cast(be, &ci, &c16), E_DTYPE, "cast");
    CHECK_ERR(nx_op_cast(be, &cu8, &c16), E_DTYPE, "cast");
    CHECK_ERR(nx_op_cast(be, &cf, &c16), E_SHAPE, "cast");

    nx_tensor zx = hv(F32, NE(1, 2, 4, 4)), zy = hv(F32, NE(1, 3, 8, 8)), z3 = hv(F32, NE(2, 4, 4)), zy2 = hv(F32, NE(1, 2, 8, 8));
    CHECK_ERR(nx_op_resize(be, &zy, &zx, NX_RESIZE_BILINEAR, false, false), E_SHAPE, "resize");
    CHECK_ERR(nx_op_resize(be, &zy2, &z3, NX_RESIZE_BILINEAR, false, false), E_SHAPE, "resize");
    CHECK_ERR(nx_op_resize(be, &zy2, &zx, (nx_resize_mode)7, false, false), E_ARG, "resize");
    CHECK_ERR(nx_op_resize(be, &zy2, &zx, NX_RESIZE_NEAREST, true, false), E_ARG, "resize");

    nx_tensor mx = hv(F32, NE(3, 9)), my = hv(I32, NE(3)), myf = hv(F32, NE(3)), my2 = hv(I32, NE(3, 1));
    CHECK_ERR(nx_op_argmax(be, &myf, &mx), E_DTYPE, "argmax");
    CHECK_ERR(nx_op_argmax(be, &my2, &mx), E_SHAPE, "argmax");
    (void)my;

    /* rank out of range and negative dims are rejected before anything reads them */
    nx_tensor bad = hv(F32, NE(2, 2));
    bad.rank = 9;
    CHECK_ERR(nx_op_scale(be, &y, &bad, 1, 0), E_ARG, "scale");
    bad.rank = 2;
    bad.ne[0] = -2;
    CHECK_ERR(nx_op_scale(be, &y, &bad, 1, 0), E_ARG, "scale");
    /* every op with a backend that lacks it */
    nx_tensor f1 = fv(F32, NE(4, 8)), f2 = fv(F32, NE(4, 8)), fw = fv(F32, NE(8));
    fw.data = g_host + 1024;  /* views share g_host; y may not alias an input of another shape */
    CHECK_ERR(nx_op_rms_norm(fk, &f1, &f2, &fw, 1e-5f), E_UNSUP, "fake: op rms_norm not supported");
    CHECK_ERR(nx_op_layer_norm(fk, &f1, &f2, &fw, &fw, 1e-5f), E_UNSUP, "layer_norm");
    CHECK_ERR(nx_op_softmax(fk, &f1, &f2, 1), E_UNSUP, "softmax");
    CHECK_ERR(nx_op_unary(fk, &f1, &f2, NX_UNARY_GELU, 0), E_UNSUP, "unary");
    CHECK_ERR(nx_op_binary(fk, &f1, &f2, &fw, NX_BINARY_ADD), E_UNSUP, "binary");
    CHECK_ERR(nx_op_scale(fk, &f1, &f2, 2, 1), E_UNSUP, "scale");
    CHECK_ERR(nx_op_argmax(fk, &(nx_tensor){0}, &f2), E_ARG, "argmax");
}

/* ---- f16 / bf16 conversions ---- */

static uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* nx_cpu_isa: the level agrees with what the compiler's own CPU check says, and the cap lowers
 * it and lifts again (the narrower-level reruns below depend on that). */
static void test_isa_levels(void)
{
    __builtin_cpu_init();
    const nx_isa isa = nx_cpu_isa();
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    const bool z512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    CHECK_MSG(isa == (z512 ? NX_ISA_AVX512 : avx2 ? NX_ISA_AVX2 : NX_ISA_PORTABLE),
              "nx_cpu_isa %s, the compiler sees avx2 %d avx512 %d", nx_isa_name(isa), avx2, z512);
    for (int cap = NX_ISA_PORTABLE; cap <= NX_ISA_AVX512; cap++) {
        nx_isa old = nx_isa_limit((nx_isa)cap);
        CHECK(old == NX_ISA_AVX512);
        CHECK(nx_cpu_isa() == ((int)isa < cap ? isa : (nx_isa)cap));
        CHECK(nx_isa_limit(old) == (nx_isa)cap);
    }
    CHECK(nx_cpu_isa() == isa);
    fprintf(stderr, "  (this CPU: %s kernels)\n", nx_isa_name(isa));
}

static void test_f16_conversions(void)
{
    /* every f16 value round-trips (NaNs come back quiet) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = nx_f16_to_f32((uint16_t)h);
        uint16_t back = nx_f32_to_f16(f);
        bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
        if (nan ? (back != (h | 0x200) || !isnan(f)) : back != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d f16 values do not round-trip", bad);
    CHECK(nx_f16_to_f32(0x3c00) == 1.0f && nx_f16_to_f32(0x0001) == ldexpf(1, -24) && nx_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(nx_f16_to_f32(0x7c00) == INFINITY && nx_f16_to_f32(0xfc00) == -INFINITY && f2u(nx_f16_to_f32(0x8000)) == 0x80000000u);
    /* f32 -> f16 rounding at the boundaries */
    static const struct { float f; uint16_t h; } cases[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {0.0f, 0x0000}, {-0.0f, 0x8000},
        {1.0f + 0x1p-11f, 0x3c00},             /* tie -> even (down) */
        {1.0f + 3 * 0x1p-11f, 0x3c02},         /* tie -> even (up) */
        {1.0f + 0x1p-11f + 0x1p-20f, 0x3c01},  /* just above the tie */
        {65504.0f, 0x7bff}, {65519.0f, 0x7bff}, {65520.0f, 0x7c00} /* tie -> even = inf */, {1e9f, 0x7c00},
        {-1e9f, 0xfc00}, {INFINITY, 0x7c00}, {-INFINITY, 0xfc00},
        {0x1p-24f, 0x0001},                    /* smallest subnormal */
        {0x1p-25f, 0x0000},                    /* tie between 0 and it -> even (0) */
        {0x1.000002p-25f, 0x0001},             /* just above */
        {3 * 0x1p-25f, 0x0002},                /* tie between 1 and 2 -> 2 */
        {1023 * 0x1p-24f, 0x03ff},             /* largest subnormal */
        {0x1p-14f, 0x0400},                    /* smallest normal */
        {0x1p-14f - 0x1p-25f, 0x0400},         /* tie between 0x3ff and 0x400 -> even (0x400) */
        {1e-10f, 0x0000}, {-1e-10f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        CHECK_MSG(nx_f32_to_f16(cases[i].f) == cases[i].h, "f32 %a -> f16 %04x, want %04x", (double)cases[i].f,
                  nx_f32_to_f16(cases[i].f), cases[i].h);
    uint16_t hn = nx_f32_to_f16(NAN);
    CHECK((hn & 0x7c00) == 0x7c00 && (hn & 0x3ff) != 0);
    /* random finite values round to the nearest f16 (ties to even), checked by neighbours */
    test_rng r = {12345};
    bad = 0;
    for (int i = 0; i < 200000; i++) {
        float f = u2f((uint32_t)(test_rng_u64(&r) >> 32));
        if (!isfinite(f) || fabsf(f) >= 65504.0f) continue;
        uint16_t h = nx_f32_to_f16(f);
        double d = fabs((double)nx_f16_to_f32(h) - f);
        uint16_t up = (uint16_t)(h + 1), dn = (uint16_t)(h - 1);
        double du = (h & 0x7fff) < 0x7bff ? fabs((double)nx_f16_to_f32(up) - f) : INFINITY;
        double dd = (h & 0x7fff) > 0 ? fabs((double)nx_f16_to_f32(dn) - f) : INFINITY;
        if (d > du || d > dd || ((d == du || d == dd) && (h & 1))) bad++;
    }
    CHECK_MSG(bad == 0, "%d random f32 values not rounded to the nearest-even f16", bad);
    /* bf16 */
    CHECK(nx_f32_to_bf16(1.0f) == 0x3f80 && nx_f32_to_bf16(1.0f + 0x1p-8f) == 0x3f80 && nx_f32_to_bf16(1.0f + 3 * 0x1p-8f) == 0x3f82);
    CHECK(nx_f32_to_bf16(FLT_MAX) == 0x7f80 && nx_f32_to_bf16(-INFINITY) == 0xff80 && nx_f32_to_bf16(0x1p-130f) == 0x0008);
    CHECK(isnan(nx_bf16_to_f32(nx_f32_to_bf16(NAN))) && isnan(nx_bf16_to_f32(nx_f32_to_bf16(u2f(0x7f800001u)))));
    bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        bool nan = (h & 0x7f80) == 0x7f80 && (h & 0x7f);
        if (!nan && nx_f32_to_bf16(nx_bf16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK_MSG(bad == 0, "%d bf16 values do not round-trip", bad);
}

static void test_bulk_conversions(void)
{
    enum { N = 70000 };
    uint16_t *h = malloc(N * 2), *h2 = malloc(N * 2);
    float *f = malloc(N * 4), *f2 = malloc(N * 4);
    test_rng r = {777};
    for (int level = 0; level <= 2; level++) {
        nx_isa old = nx_isa_limit((nx_isa)level);
        /* all 16-bit patterns (+ a tail) through both widening conversions */
        for (int i = 0; i < N; i++) h[i] = (uint16_t)i;
        for (int kind = 0; kind < 2; kind++) {
            int bad = 0;
            if (kind == 0) nx_f16_to_f32_n(h, f, N);
            else nx_bf16_to_f32_n(h, f, N);
            for (int i = 0; i < N; i++) {
                float s = kind == 0 ? nx_f16_to_f32(h[i]) : nx_bf16_to_f32(h[i]);
                bad += f2u(s) != f2u(f[i]);
            }
            CHECK_MSG(bad == 0, "%s: bulk %s -> f32 differs from scalar in %d values", nx_isa_name(nx_cpu_isa()),
                      kind ? "bf16" : "f16", bad);
        }
        /* random bit patterns (NaNs, infinities, subnormals included) and special values, narrowing */
        for (int i = 0; i < N; i++) f[i] = u2f((uint32_t)(test_rng_u64(&r) >> 32));
        for (int i = 0; i < N / 4; i++) f[i] = ldexpf(f[i] - truncf(f[i]), -14 - (i % 12));  /* f16 subnormal range */
        f[0] = 65520.0f;
        f[1] = NAN;
        f[2] = -0.0f;
        f[3] = 0x1p-25f;
        for (int kind = 0; kind < 2; kind++) {
            int bad = 0;
            /* odd lengths and offsets exercise the tails */
            for (int len = 0; len < 40; len++) {
                if (kind == 0) nx_f32_to_f16_n(f + len, h2 + len, (size_t)len);
                else nx_f32_to_bf16_n(f + len, h2 + len, (size_t)len);
                for (int i = 0; i < len; i++)
                    bad += h2[len + i] != (kind == 0 ? nx_f32_to_f16(f[len + i]) : nx_f32_to_bf16(f[len + i]));
            }
            if (kind == 0) nx_f32_to_f16_n(f, h2, N);
            else nx_f32_to_bf16_n(f, h2, N);
            for (int i = 0; i < N; i++) bad += h2[i] != (kind == 0 ? nx_f32_to_f16(f[i]) : nx_f32_to_bf16(f[i]));
            CHECK_MSG(bad == 0, "%s: bulk f32 -> %s differs from scalar in %d values", nx_isa_name(nx_cpu_isa()),
                      kind ? "bf16" : "f16", bad);
        }
        /* widening tails */
        for (int len = 0; len < 40; len++) {
            for (int i = 0; i < len; i++) f2[i] = -1;
            nx_f16_to_f32_n(h + 15360, f2, (size_t)len);
            int bad = 0;
            for (int i = 0; i < len; i++) bad += f2[i] != nx_f16_to_f32(h[15360 + i]);
            CHECK(bad == 0);
        }
        nx_isa_limit(old);
    }
    free(h);
    free(h2);
    free(f);
    free(f2);
}

/* ---- thread-count independence ---- */

typedef struct {
    nx_tensor y;
} run_out;

/* Runs a fixed set of ops with large inputs on backend be, appending every output to out (F32 bits). */
static size_t run_suite(nx_backend *be, unsigned char *out, size_t cap)
{
    nx_backend *saved = g_be;
    g_be = be;
    test_rng saved_rng = g_rng;
    g_rng = (test_rng){42};
    size_t used = 0;
#define KEEP(t)                                                                   \
    do {                                                                          \
        size_t nb_ = nx_nbytes(&(t));                                             \
        if (used + nb_ <= cap) memcpy(out + used, (t).data, nb_);                 \
        used += nb_;                                                              \
    } while (0)
    nx_tensor x = trand(NE(64, 4096), -3, 3), y = tnew(F32, NE(64, 4096)), w = trand(NE(4096), -1, 1);
    CHECK_OK(nx_op_rms_norm(be, &y, &x, &w, 1e-6f));
    KEEP(y);
    CHECK_OK(nx_op_layer_norm(be, &y, &x, &w, &w, 1e-6f));
    KEEP(y);
    CHECK_OK(nx_op_softmax(be, &y, &x, 0.3f));
    KEEP(y);
    CHECK_OK(nx_op_unary(be, &y, &x, NX_UNARY_GELU, 0));
    KEEP(y);
    CHECK_OK(nx_op_scale(be, &y, &x, 2, 1));
    KEEP(y);
    CHECK_OK(nx_op_binary(be, &y, &x, &w, NX_BINARY_MUL));
    KEEP(y);
    nx_tensor yg = tnew(F32, NE(64, 2048));
    CHECK_OK(nx_op_glu(be, &yg, &x, NX_UNARY_SILU, true));
    KEEP(yg);
    nx_tensor am = tnew(I32, NE(64));
    CHECK_OK(nx_op_argmax(be, &am, &x));
    KEEP(am);
    nx_tensor xr = tnew(F32, NE(1, 64, 32, 128)), pos = tnew(I32, NE(64));
    memcpy(xr.data, x.data, nx_nbytes(&xr));
    for (int i = 0; i < 64; i++) ((int32_t *)pos.data)[i] = i;
    CHECK_OK(nx_op_rope(be, &xr, &xr, &pos, 128, 1e4f, NX_ROPE_HALF));
    KEEP(xr);
    nx_tensor pr = tnew(F32, NE(1, 32, 64, 128));
    CHECK_OK(nx_op_permute(be, &pr, &xr, (const int[]){0, 2, 1, 3}));
    KEEP(pr);
    nx_tensor gx = tnew(F32, NE(2, 64, 32, 32)), gy = tnew(F32, NE(2, 64, 32, 32)), gz = tnew(F32, NE(2, 64, 64, 64));
    memcpy(gx.data, x.data, nx_nbytes(&gx));
    nx_tensor w64 = nx_view(F32, NE(64), w.data, be);
    CHECK_OK(nx_op_group_norm(be, &gy, &gx, &w64, NULL, 32, 1e-5f, NX_GN_SILU));
    KEEP(gy);
    CHECK_OK(nx_op_resize(be, &gz, &gy, NX_RESIZE_BILINEAR, false, false));
    KEEP(gz);
    CHECK_OK(nx_op_resize(be, &gz, &gy, NX_RESIZE_NEAREST, false, false));
    KEEP(gz);
    nx_tensor c = tnew(F32, NE(64, 8192));
    CHECK_OK(nx_op_concat(be, &c, &x, &y, 1));
    KEEP(c);
    CHECK_OK(nx_op_slice(be, &y, &c, 1, 1000));
    KEEP(y);
    nx_tensor h = tnew(NGPT_DTYPE_BF16, NE(64, 4096));
    CHECK_OK(nx_op_cast(be, &h, &x));
    KEEP(h);
    nx_tensor ids = tnew(I32, NE(50));
    for (int i = 0; i < 50; i++) ((int32_t *)ids.data)[i] = (i * 7) % 64;
    nx_tensor gr = tnew(F32, NE(50, 4096));
    CHECK_OK(nx_op_get_rows(be, &gr, &h, &ids));
    KEEP(gr);
#undef KEEP
    nx_tensor *all[] = {&x, &y, &w, &yg, &am, &xr, &pos, &pr, &gx, &gy, &gz, &c, &h, &ids, &gr};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) nx_tensor_free(all[i]);
    g_be = saved;
    g_rng = saved_rng;
    return used;
}

static void test_threads_identical(void)
{
    size_t cap = 64u << 20;
    unsigned char *o1 = malloc(cap), *o2 = malloc(cap);
    nx_pool *p1 = NULL, *p2 = NULL;
    nx_backend *b1 = NULL, *b2 = NULL;
    CHECK_OK(nx_pool_create(&p1, 1));
    CHECK_OK(nx_pool_create(&p2, 2));
    CHECK_OK(nx_cpu_backend_create(&b1, p1, NULL));
    CHECK_OK(nx_cpu_backend_create(&b2, p2, NULL));
    size_t n1 = run_suite(b1, o1, cap), n2 = run_suite(b2, o2, cap);
    CHECK(n1 == n2 && n1 <= cap);
    CHECK_MSG(memcmp(o1, o2, n1 < cap ? n1 : cap) == 0, "1-thread and 2-thread results differ");
    nx_backend_free(b1);
    nx_backend_free(b2);
    nx_pool_free(p1);
    nx_pool_free(p2);
    free(o1);
    free(o2);
}

/* ---- memory: an allocation failure inside an op is a clean OUT_OF_MEMORY ---- */

static void test_op_oom(void)
{
    float *wf;
    nx_tensor x = trand(NE(4, 16), -1, 1), y = tnew(F32, NE(4, 16)), w = tweight(F16, NE(16), -1, 1, &wf);
    uint64_t bytes = nx_alloc_bytes();
    int64_t blocks = nx_alloc_blocks();
    nx_alloc_fail_at(1);
    CHECK_ERR(nx_op_rms_norm(g_be, &y, &x, &w, 1e-5f), NGPT_ERR_OUT_OF_MEMORY, "rms_norm");
    nx_alloc_fail_at(1);
    CHECK_ERR(nx_op_layer_norm(g_be, &y, &x, &w, &w, 1e-5f), NGPT_ERR_OUT_OF_MEMORY, "layer_norm");
    nx_alloc_fail_at(2);
    CHECK_ERR(nx_op_layer_norm(g_be, &y, &x, &w, &w, 1e-5f), NGPT_ERR_OUT_OF_MEMORY, "layer_norm");
    nx_alloc_fail_at(0);
    CHECK(nx_alloc_bytes() == bytes && nx_alloc_blocks() == blocks);
    free(wf);
    nx_tensor_free(&x);
    nx_tensor_free(&y);
    nx_tensor_free(&w);
}

/* set_rows and attention_len: the backbone's decode step by device-held position and length */
static void test_decode_ops(void)
{
    /* set_rows: rows land where pos says, the others stay; a position outside is named */
    nx_tensor dst = trand(NE(6, 5), -1, 1), src = trand(NE(2, 5), -1, 1), pos = tnew(NGPT_DTYPE_I32, NE(2));
    float before[30];
    memcpy(before, dst.data, sizeof before);
    ((int32_t *)pos.data)[0] = 4, ((int32_t *)pos.data)[1] = 0;
    CHECK_OK(nx_op_set_rows(g_be, &dst, &src, &pos));
    const float *d = dst.data, *s = src.data;
    CHECK(memcmp(d + 20, s, 5 * sizeof(float)) == 0 && memcmp(d, s + 5, 5 * sizeof(float)) == 0);
    CHECK(memcmp(d + 5, before + 5, 15 * sizeof(float)) == 0 && memcmp(d + 25, before + 25, 5 * sizeof(float)) == 0);
    ((int32_t *)pos.data)[1] = 6;
    CHECK_ERR(nx_op_set_rows(g_be, &dst, &src, &pos), NGPT_ERR_INVALID_ARGUMENT, "position 6 (row 1) outside [0, 6)");
    nx_tensor src3 = trand(NE(2, 4), -1, 1);
    CHECK_ERR(nx_op_set_rows(g_be, &dst, &src3, &pos), NGPT_ERR_SHAPE_MISMATCH, "set_rows");
    CHECK_ERR(nx_op_set_rows(g_be, &dst, &dst, &pos), NGPT_ERR_SHAPE_MISMATCH, "set_rows");

    /* attention_len == attention over the first len keys, bit for bit (B 2, GQA) */
    const int64_t B = 2, H = 4, Hkv = 2, D = 8, S = 20;
    nx_tensor q = trand(NE(B, 1, H, D), -2, 2), k = trand(NE(B, S, Hkv, D), -2, 2), v = trand(NE(B, S, Hkv, D), -1, 1);
    nx_tensor o = tnew(NGPT_DTYPE_F32, NE(B, 1, H, D)), o2 = tnew(NGPT_DTYPE_F32, NE(1, 1, H, D));
    nx_tensor len = tnew(NGPT_DTYPE_I32, NE(1));
    for (int32_t L = 1; L <= S; L += 6) {
        *(int32_t *)len.data = L;
        CHECK_OK(nx_op_attention_len(g_be, &o, &q, &k, &v, &len, 0.3f));
        for (int64_t b = 0; b < B; b++) {
            const int64_t qn[4] = {1, 1, H, D}, kn[4] = {1, L, Hkv, D};
            nx_tensor qb = nx_view(NGPT_DTYPE_F32, 4, qn, (float *)q.data + b * H * D, g_be);
            nx_tensor kb = nx_view(NGPT_DTYPE_F32, 4, kn, (float *)k.data + b * S * Hkv * D, g_be);
            nx_tensor vb = nx_view(NGPT_DTYPE_F32, 4, kn, (float *)v.data + b * S * Hkv * D, g_be);
            CHECK_OK(nx_op_attention(g_be, &o2, &qb, &kb, &vb, NULL, 0.3f, false));
            CHECK_MSG(memcmp((float *)o.data + b * H * D, o2.data, (size_t)(H * D) * sizeof(float)) == 0,
                      "attention_len L %d batch %lld", L, (long long)b);
        }
    }
    *(int32_t *)len.data = S + 1;
    CHECK_ERR(nx_op_attention_len(g_be, &o, &q, &k, &v, &len, 0.3f), NGPT_ERR_INVALID_ARGUMENT, "length 21 outside [1, 20]");
    *(int32_t *)len.data = 0;
    CHECK_ERR(nx_op_attention_len(g_be, &o, &q, &k, &v, &len, 0.3f), NGPT_ERR_INVALID_ARGUMENT, "length 0");
    nx_tensor q2 = trand(NE(B, 2, H, D), -2, 2), len2 = tnew(NGPT_DTYPE_I32, NE(2));
    CHECK_ERR(nx_op_attention_len(g_be, &o, &q2, &k, &v, &len, 0.3f), NGPT_ERR_SHAPE_MISMATCH, "q [B, 1, H, D]");
    CHECK_ERR(nx_op_attention_len(g_be, &o, &q, &k, &v, &len2, 0.3f), NGPT_ERR_SHAPE_MISMATCH, "one length");
    CHECK_ERR(nx_op_attention_len(g_be, &o, &q, &k, &v, &k, 0.3f), NGPT_ERR_DTYPE_MISMATCH, "I32");
    nx_tensor *ts[] = {&dst, &src, &pos, &src3, &q, &k, &v, &o, &o2, &len, &q2, &len2};
    for (size_t i = 0; i < sizeof ts / sizeof *ts; i++) nx_tensor_free(ts[i]);
}

/* ---- nx_backend_record / nx_backend_replay: a graph is a speed-up, never a new failure ----
 * The CPU backend records no graphs; a copy of it with scripted capture hooks drives the
 * fallbacks the CUDA backend can hit (capture refused, a recorded op failing, a replay failing). */
typedef struct fake_graph_state {
    int begin_fail, end_fail, launch_fail; /* scripted outcomes */
    int begins, ends, launches, frees, runs, logs_not_captured;
} fake_graph_state;
static fake_graph_state g_fg;
static nx_graph *const k_fake_graph = (nx_graph *)&g_fg;

static ngpt_status fg_begin(nx_backend *be)
{
    (void)be;
    g_fg.begins++;
    return g_fg.begin_fail ? nx_err(NGPT_ERR_DEVICE, "fake: capture refused") : NGPT_OK;
}
static ngpt_status fg_end(nx_backend *be, nx_graph **out)
{
    (void)be;
    g_fg.ends++;
    *out = g_fg.end_fail ? NULL : k_fake_graph;
    return g_fg.end_fail ? nx_err(NGPT_ERR_DEVICE, "fake: instantiate failed") : NGPT_OK;
}
static ngpt_status fg_launch(nx_backend *be, nx_graph *g)
{
    (void)be;
    CHECK(g == k_fake_graph);
    g_fg.launches++;
    return g_fg.launch_fail ? nx_err(NGPT_ERR_DEVICE, "fake: launch failed") : NGPT_OK;
}
static void fg_free(nx_backend *be, nx_graph *g)
{
    (void)be;
    CHECK(g == k_fake_graph);
    g_fg.frees++;
}
static void fg_log(ngpt_log_level level, const char *msg, void *user)
{
    (void)level, (void)user;
    if (strstr(msg, "not captured")) g_fg.logs_not_captured++;
}
static ngpt_status fg_run(void *arg)
{
    g_fg.runs++;
    return *(const ngpt_status *)arg;
}

static void test_graph_record_replay(void)
{
    nx_backend_vtbl vt = *g_be->v;
    vt.capture_begin = fg_begin, vt.capture_end = fg_end, vt.graph_launch = fg_launch, vt.graph_free = fg_free;
    nx_backend fake = *g_be;
    fake.v = &vt;
    fake.log = (nx_logger){NGPT_LOG_INFO, fg_log, NULL};
    ngpt_status ok = NGPT_OK, bad = NGPT_ERR_INVALID_ARGUMENT;
    nx_graph *g = NULL;
    /* recorded, launched once, replayed */
    memset(&g_fg, 0, sizeof g_fg);
    CHECK_OK(nx_backend_record(&fake, fg_run, &ok, &g, "fake step"));
    CHECK(g == k_fake_graph && g_fg.runs == 1 && g_fg.launches == 1 && g_fg.logs_not_captured == 0);
    CHECK_OK(nx_backend_replay(&fake, &g, fg_run, &ok, "fake step"));
    CHECK(g == k_fake_graph && g_fg.runs == 1 && g_fg.launches == 2 && g_fg.frees == 0);
    /* a replay that fails: run op by op, the graph freed and forgotten, logged */
    g_fg.launch_fail = 1;
    CHECK_OK(nx_backend_replay(&fake, &g, fg_run, &ok, "fake step"));
    CHECK(g == NULL && g_fg.runs == 2 && g_fg.launches == 3 && g_fg.frees == 1 && g_fg.logs_not_captured == 1);
    /* the op-by-op run's own failure is what the caller sees */
    memset(&g_fg, 0, sizeof g_fg);
    CHECK_OK(nx_backend_record(&fake, fg_run, &ok, &g, "fake step"));
    g_fg.launch_fail = 1;
    CHECK_ERR(nx_backend_replay(&fake, &g, fg_run, &bad, "fake step"), NGPT_ERR_INVALID_ARGUMENT, "");
    CHECK(g == NULL && g_fg.frees == 1);
    /* capture refused: run directly, no graph, logged */
    memset(&g_fg, 0, sizeof g_fg);
    g_fg.begin_fail = 1;
    CHECK_OK(nx_backend_record(&fake, fg_run, &ok, &g, "fake step"));
    CHECK(g == NULL && g_fg.runs == 1 && g_fg.ends == 0 && g_fg.logs_not_captured == 1);
    /* the recorded run fails: the recording is dropped and the step runs again op by op */
    memset(&g_fg, 0, sizeof g_fg);
    CHECK_ERR(nx_backend_record(&fake, fg_run, &bad, &g, "fake step"), NGPT_ERR_INVALID_ARGUMENT, "");
    CHECK(g == NULL && g_fg.runs == 2 && g_fg.ends == 1 && g_fg.frees == 1 && g_fg.launches == 0);
    /* recorded, but its first launch fails: op by op, no graph kept */
    memset(&g_fg, 0, sizeof g_fg);
    g_fg.launch_fail = 1;
    CHECK_OK(nx_backend_record(&fake, fg_run, &ok, &g, "fake step"));
    CHECK(g == NULL && g_fg.runs == 2 && g_fg.launches == 1 && g_fg.frees == 1 && g_fg.logs_not_captured == 1);
    /* instantiation fails */
    memset(&g_fg, 0, sizeof g_fg);
    g_fg.end_fail = 1;
    CHECK_OK(nx_backend_record(&fake, fg_run, &ok, &g, "fake step"));
    CHECK(g == NULL && g_fg.runs == 2 && g_fg.launches == 0 && g_fg.logs_not_captured == 1);
    ngpt_clear_error();
}

int main(void)
{
    nx_pool *pool = NULL;
    uint64_t bytes0 = nx_alloc_bytes();
    int64_t blocks0 = nx_alloc_blocks();
    if (nx_pool_create(&pool, 2) != NGPT_OK || nx_cpu_backend_create(&g_be, pool, NULL) != NGPT_OK) {
        fprintf(stderr, "setup: %s\n", ngpt_last_error());
        return 1;
    }
    RUN(test_isa_levels);
    RUN(test_rms_norm);
    RUN(test_rms_norm_add);
    RUN(test_layer_norm);
    RUN(test_group_norm);
    RUN(test_group_norm_channels_last);
    RUN(test_rope);
    RUN(test_softmax);
    RUN(test_unary);
    RUN(test_binary);
    RUN(test_scale_glu_argmax);
    RUN(test_get_rows);
    RUN(test_decode_ops);
    RUN(test_concat_slice);
    RUN(test_permute);
    RUN(test_cast);
    RUN(test_resize);
    RUN(test_resize_channels_last);
    /* the numeric tests again on the narrower kernels (what a CPU without AVX-512 runs) */
    FOR_NARROWER_ISAS {
        RUN(test_rms_norm);
        RUN(test_layer_norm);
        RUN(test_group_norm);
        RUN(test_group_norm_channels_last);
        RUN(test_softmax);
        RUN(test_unary);
        RUN(test_binary);
        RUN(test_scale_glu_argmax);
        RUN(test_get_rows);
        RUN(test_cast);
        RUN(test_threads_identical);
    }
    fprintf(stderr, "--\n");
    RUN(test_validate_linear_matmul);
    RUN(test_validate_conv_attention);
    RUN(test_validate_rest);
    RUN(test_f16_conversions);
    RUN(test_bulk_conversions);
    RUN(test_threads_identical);
    RUN(test_op_oom);
    RUN(test_graph_record_replay);
    nx_backend_free(g_be);
    nx_pool_free(pool);
    CHECK_MSG(nx_alloc_bytes() == bytes0 && nx_alloc_blocks() == blocks0, "leak: %llu bytes in %lld blocks",
              (unsigned long long)(nx_alloc_bytes() - bytes0), (long long)(nx_alloc_blocks() - blocks0));
    return test_done();
}
