/* test_ops_conv_stress.c — randomized conv1d / ConvTranspose1d / 3x3 Winograd (in stripes)
 * shapes against a double-precision reference: the direct conv1d (conv1d_direct.c), the 1-D
 * Winograd (wino1d.c) and oneDNN, with and without bias and the fused epilogue (leaky ReLU,
 * residual), N > 1, channels off the 8-row block and the L1 chunk, lengths off the 48-wide tile,
 * pads past the kernel, output padding, k < stride. Buffers are allocated at their exact size
 * (so an ASan build sees any overrun) and outputs are NaN-filled (every element must be
 * written). The direct paths are also run on 1- and 3-thread backends and must agree bit for
 * bit with the 2-thread run. */
#include "ops_test_util.h"
#include "ops/cpu/cpu_util.h"
#include "ref_ops.h"

static test_rng rng = {0xc0ffee1234abcdefull};

static int64_t rnd(int64_t lo, int64_t hi) { return lo + (int64_t)(test_rng_u64(&rng) % (uint64_t)(hi - lo + 1)); }

static float *fill_new(size_t n)
{
    float *p = malloc(4 * (n ? n : 1));
    test_fill(&rng, p, n, -1, 1);
    return p;
}

static nx_backend *be1, *be3;
static int big; /* NX_CONV_STRESS_BIG=1: longer rows, wider pads and strides, more iterations (minutes) */
static nx_pool *pool1, *pool3;

/* Winograd's transforms mix neighbouring outputs, so its error follows the row's largest scale,
 * not each output's own (an output over padding alone comes out near, not at, the bias) */
static double *row_scale(const double *sc, size_t n, int64_t row)
{
    double *r = malloc(8 * n);
    for (size_t i0 = 0; i0 < n; i0 += (size_t)row) {
        double m = 0;
        for (size_t i = i0; i < i0 + (size_t)row; i++) m = fmax(m, sc[i]);
        for (size_t i = i0; i < i0 + (size_t)row; i++) r[i] = m;
    }
    return r;
}

static int bitwise_same(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, 4 * n) == 0;
}

/* One case's exact-size buffers and their op-layer views: random x, w, b (b has ys[1] elements)
 * and, with `residual`, r (drawn in that order), the output y and, with `second`, y2 for the
 * thread-count check, and the double reference `want` with its scale `sc`. */
typedef struct case_bufs {
    float *x, *w, *b, *r, *y, *y2;
    double *want, *sc;
    size_t ny;
    nx_tensor tx, tw, tb, tr, ty, ty2;
} case_bufs;

static void bufs_new(case_bufs *c, int rank, const int64_t *xs, const int64_t *ws, const int64_t *ys, bool residual,
                     bool second)
{
    memset(c, 0, sizeof *c);
    size_t nx = 1, nw = 1, ny = 1;
    for (int i = 0; i < rank; i++) nx *= (size_t)xs[i], nw *= (size_t)ws[i], ny *= (size_t)ys[i];
    c->ny = ny;
    c->x = fill_new(nx);
    c->w = fill_new(nw);
    c->b = fill_new((size_t)ys[1]);
    if (residual) c->r = fill_new(ny);
    c->y = malloc(4 * ny);
    if (second) c->y2 = malloc(4 * ny);
    c->want = malloc(8 * ny);
    c->sc = malloc(8 * ny);
    c->tx = nx_view(NGPT_DTYPE_F32, rank, xs, c->x, t_be);
    c->tw = nx_view(NGPT_DTYPE_F32, rank, ws, c->w, t_be);
    c->tb = nx_view(NGPT_DTYPE_F32, 1, &ys[1], c->b, t_be);
    c->ty = nx_view(NGPT_DTYPE_F32, rank, ys, c->y, t_be);
    if (residual) c->tr = nx_view(NGPT_DTYPE_F32, rank, ys, c->r, t_be);
    if (second) c->ty2 = nx_view(NGPT_DTYPE_F32, rank, ys, c->y2, t_be);
}

static void bufs_free(case_bufs *c)
{
    free(c->x), free(c->w), free(c->b), free(c->r), free(c->y), free(c->y2), free(c->want), free(c->sc);
}

static void conv1d_case(int it)
{
    const int64_t N = rnd(1, 3), C = it % 10 == 0 ? rnd(71, 300) : rnd(1, 70), O = rnd(1, 40);
    const int64_t L = big && it % 3 == 0 ? rnd(1, 2500) : rnd(1, 200);
    const int64_t k = rnd(1, 12), d = rnd(1, big ? 12 : 6), pad = big && it % 2 ? rnd(0, 150) : rnd(0, 20);
    const int64_t Lo = L + 2 * pad - d * (k - 1);
    if (Lo < 1) return;
    const int bias = (int)rnd(0, 1), epi = (int)rnd(0, 4); /* 1 leaky, 2 residual, 3 both, 4 ReLU + residual */
    const int64_t xs[3] = {N, C, L}, ws[3] = {O, C, k}, ys[3] = {N, O, Lo};
    case_bufs c;
    bufs_new(&c, 3, xs, ws, ys, true, true);
    const size_t ny = c.ny;
    float *y = c.y;
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    p.stride[0] = 1;
    p.pad[0] = (int)pad;
    p.dilation[0] = (int)d;
    if (epi == 1 || epi == 3) p.act = NX_UNARY_LEAKY_RELU, p.act_param = 0.15f;
    if (epi == 4) p.act = NX_UNARY_RELU;
    if (epi >= 2) p.residual = &c.tr;
    ref_conv(c.x, c.w, bias ? c.b : NULL, xs, ws, ys, 1, &p, c.want, c.sc);
    ref_epilogue(c.want, c.sc, ny, &p);
    /* wino1d: with the own GEMM (AVX-512); "wino1d oneDNN": with oneDNN's batched matmul; dft:
     * fftconv1d.c (k <= 16; AVX2 and up) */
    static const char *const names[5] = {"direct", "wino1d", "oneDNN", "wino1d oneDNN", "dft"};
    for (int m = 0; m < 5; m++) {
        nx_cpu_set_conv_direct1d(t_be, m == 2 || m == 3 ? NX_CONV_WINOGRAD_OFF : NX_CONV_WINOGRAD_ALWAYS);
        nx_cpu_set_conv_winograd(t_be, m == 1 || m == 3 ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
        nx_cpu_set_conv_fft1d(t_be, m == 4 ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
        memset(y, 0xff, 4 * ny);
        CHECK_OK(nx_cpu_conv(t_be, &c.ty, &c.tx, &c.tw, bias ? &c.tb : NULL, &p));
        char what[200];
        snprintf(what, sizeof what, "conv1d %s N=%lld C=%lld O=%lld L=%lld k=%lld d=%lld pad=%lld bias=%d epi=%d",
                 names[m], (long long)N, (long long)C, (long long)O, (long long)L, (long long)k, (long long)d,
                 (long long)pad, bias, epi);
        if (m == 1 || m == 3 || m == 4) {
            double *rs = row_scale(c.sc, ny, Lo);
            close_scaled(what, y, c.want, rs, ny, 1e-5, 1e-6);
            free(rs);
        } else {
            close_scaled(what, y, c.want, c.sc, ny, 2e-6, 1e-6);
        }
        /* thread-count independence of the own paths (AVX2 and up): the direct conv1d, and the
         * 1-D Winograd and the DFT conv1d on their own GEMM (what they do not take goes to the
         * direct conv1d) */
        if ((m <= 1 || m == 4) && nx_cpu_has_avx2()) {
            nx_backend *bes[2] = {be1, be3};
            for (int q = 0; q < 2; q++) {
                nx_cpu_set_conv_direct1d(bes[q], NX_CONV_WINOGRAD_ALWAYS);
                nx_cpu_set_conv_winograd(bes[q], m == 1 ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
                nx_cpu_set_conv_fft1d(bes[q], m == 4 ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
                memset(c.y2, 0xff, 4 * ny);
                CHECK_OK(nx_cpu_conv(bes[q], &c.ty2, &c.tx, &c.tw, bias ? &c.tb : NULL, &p));
                CHECK_MSG(bitwise_same(y, c.y2, ny), "%s: %d threads differ from 2", what, q ? 3 : 1);
            }
        }
    }
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_AUTO);
    bufs_free(&c);
}

static void test_conv1d_stress(void)
{
    const int n = big ? 2000 : nx_cpu_has_avx2() ? 250 : 60;
    for (int it = 0; it < n; it++) conv1d_case(it);
}

static void convt_case(int it)
{
    const int64_t N = rnd(1, 3), C = it % 10 == 0 ? rnd(71, 256) : rnd(1, 70), O = rnd(1, 40);
    const int64_t L = big && it % 3 == 0 ? rnd(1, 1500) : rnd(1, 200);
    const int64_t k = rnd(1, big ? 24 : 12), s = rnd(1, big ? 12 : 6), pad = rnd(0, 20), opad = rnd(0, s - 1);
    const int64_t Lo = (L - 1) * s - 2 * pad + (k - 1) + opad + 1;
    if (Lo < 1) return;
    const int bias = (int)rnd(0, 1);
    const int64_t xs[3] = {N, C, L}, ws[3] = {C, O, k}, ys[3] = {N, O, Lo};
    case_bufs c;
    bufs_new(&c, 3, xs, ws, ys, false, true);
    const size_t ny = c.ny;
    ref_conv_transpose1d(c.x, c.w, bias ? c.b : NULL, N, C, O, L, Lo, k, s, pad, 1, 1, c.want, c.sc);
    for (int m = 0; m < 2; m++) {
        nx_cpu_set_conv_direct1d(t_be, m ? NX_CONV_WINOGRAD_OFF : NX_CONV_WINOGRAD_ALWAYS);
        memset(c.y, 0xff, 4 * ny);
        CHECK_OK(nx_cpu_conv_transpose1d(t_be, &c.ty, &c.tx, &c.tw, bias ? &c.tb : NULL, (int)s, (int)pad, (int)opad, 1, 1));
        char what[200];
        snprintf(what, sizeof what, "convT %s N=%lld C=%lld O=%lld L=%lld k=%lld s=%lld pad=%lld opad=%lld bias=%d",
                 m ? "oneDNN" : "direct", (long long)N, (long long)C, (long long)O, (long long)L, (long long)k,
                 (long long)s, (long long)pad, (long long)opad, bias);
        close_scaled(what, c.y, c.want, c.sc, ny, 2e-6, 1e-6);
        if (m == 0 && nx_cpu_has_avx2()) {
            nx_backend *bes[2] = {be1, be3};
            for (int q = 0; q < 2; q++) {
                nx_cpu_set_conv_direct1d(bes[q], NX_CONV_WINOGRAD_ALWAYS);
                memset(c.y2, 0xff, 4 * ny);
                CHECK_OK(nx_cpu_conv_transpose1d(bes[q], &c.ty2, &c.tx, &c.tw, bias ? &c.tb : NULL, (int)s, (int)pad,
                                                 (int)opad, 1, 1));
                CHECK_MSG(bitwise_same(c.y, c.y2, ny), "%s: %d threads differ from 2", what, q ? 3 : 1);
            }
        }
    }
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    bufs_free(&c);
}

static void test_convt_stress(void)
{
    for (int it = 0; it < (big ? 2000 : 250); it++) convt_case(it);
}

/* (k, 1) conv2d over x[N, C, L, P] through the 1-D Winograd (P > 1: its other output path), with
 * the fused epilogue */
static void wino1d_2d_case(void)
{
    const int64_t N = rnd(1, 2), C = rnd(1, 40), O = rnd(1, 24), L = rnd(1, 60), P = rnd(2, 9);
    const int64_t k = rnd(3, 9), d = rnd(1, 4), pad = rnd(0, 12), Lo = L + 2 * pad - d * (k - 1);
    if (Lo < 1) return;
    const int bias = (int)rnd(0, 1), epi = (int)rnd(0, 3);
    const int64_t xs[4] = {N, C, L, P}, ws[4] = {O, C, k, 1}, ys[4] = {N, O, Lo, P};
    case_bufs c;
    bufs_new(&c, 4, xs, ws, ys, true, false);
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    p.stride[0] = p.stride[1] = 1;
    p.dilation[0] = (int)d, p.dilation[1] = 1;
    p.pad[0] = (int)pad;
    if (epi & 1) p.act = NX_UNARY_LEAKY_RELU, p.act_param = 0.3f;
    if (epi & 2) p.residual = &c.tr;
    ref_conv(c.x, c.w, bias ? c.b : NULL, xs, ws, ys, 2, &p, c.want, c.sc);
    ref_epilogue(c.want, c.sc, c.ny, &p);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS);
    memset(c.y, 0xff, 4 * c.ny);
    CHECK_OK(nx_cpu_conv(t_be, &c.ty, &c.tx, &c.tw, bias ? &c.tb : NULL, &p));
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    char what[200];
    snprintf(what, sizeof what, "wino1d 2-D N=%lld C=%lld O=%lld L=%lld P=%lld k=%lld d=%lld pad=%lld bias=%d epi=%d",
             (long long)N, (long long)C, (long long)O, (long long)L, (long long)P, (long long)k, (long long)d,
             (long long)pad, bias, epi);
    double *rs = row_scale(c.sc, c.ny, Lo * P);
    close_scaled(what, c.y, c.want, rs, c.ny, 1e-5, 1e-6);
    free(rs);
    bufs_free(&c);
}

static void test_wino1d_2d_stress(void)
{
    const int n = big ? 400 : nx_cpu_has_avx512() ? 60 : 30;
    for (int it = 0; it < n; it++) wino1d_2d_case();
}

/* 3x3 pad-1 conv2d through oneDNN's Winograd in 1-row-budget stripes (4 rows each) */
static void wino_case(int it)
{
    const int64_t N = rnd(1, 2), H = rnd(1, 30), W = rnd(1, 30);
    const int64_t C = it & 1 ? 16 * rnd(1, 2) : rnd(1, 40), O = it & 2 ? 16 * rnd(1, 2) : rnd(1, 40);
    const int bias = (int)rnd(0, 1), epi = (int)rnd(0, 3);
    const int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C, 3, 3}, ys[4] = {N, O, H, W};
    case_bufs c;
    bufs_new(&c, 4, xs, ws, ys, true, false);
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    for (int i = 0; i < 2; i++) p.stride[i] = 1, p.pad[i] = 1, p.dilation[i] = 1;
    if (epi & 1) p.act = NX_UNARY_LEAKY_RELU, p.act_param = 0.1f;
    if (epi & 2) p.residual = &c.tr;
    ref_conv(c.x, c.w, bias ? c.b : NULL, xs, ws, ys, 2, &p, c.want, c.sc);
    ref_epilogue(c.want, c.sc, c.ny, &p);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS);
    for (int st = 0; st < 2; st++) {
        nx_cpu_set_conv_winograd_stripe(t_be, st ? 1 : 0);
        memset(c.y, 0xff, 4 * c.ny);
        CHECK_OK(nx_cpu_conv(t_be, &c.ty, &c.tx, &c.tw, bias ? &c.tb : NULL, &p));
        char what[200];
        snprintf(what, sizeof what, "winograd%s N=%lld C=%lld O=%lld H=%lld W=%lld bias=%d epi=%d", st ? " stripes" : "",
                 (long long)N, (long long)C, (long long)O, (long long)H, (long long)W, bias, epi);
        double *rs = row_scale(c.sc, c.ny, H * W);
        close_scaled(what, c.y, c.want, rs, c.ny, 1e-5, 1e-6);
        free(rs);
    }
    nx_cpu_set_conv_winograd_stripe(t_be, 0);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    bufs_free(&c);
}

static void test_winograd_stripes_stress(void)
{
    for (int it = 0; it < (big ? 400 : 80); it++) wino_case(it);
}

/* x with no channels (C = 0): y = the bias, or an error; never OK with y unwritten (the direct
 * paths once returned OK without a store: no channel chunk ran) */
static void test_no_channels(void)
{
    int64_t O = 3;
    float x[1] = {0}, w[1] = {0}, b[3] = {1, -2, 3}, y[3 * 9];
    const int64_t xs[3] = {2, 0, 4}, ws[3] = {O, 0, 3}, ys[3] = {2, O, 4}, wts[3] = {0, O, 3}, yts[3] = {2, O, 9};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 3, xs, x, t_be), tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be);
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    p.stride[0] = 1;
    p.pad[0] = 1;
    p.dilation[0] = 1;
    for (int tr = 0; tr < 2; tr++) {
        nx_tensor tw = nx_view(NGPT_DTYPE_F32, 3, tr ? wts : ws, w, t_be), ty = nx_view(NGPT_DTYPE_F32, 3, tr ? yts : ys, y, t_be);
        const int64_t Lo = tr ? 9 : 4;
        memset(y, 0xff, sizeof y);
        nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_ALWAYS);
        nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_OFF);
        const ngpt_status s = tr ? nx_cpu_conv_transpose1d(t_be, &ty, &tx, &tw, &tb, 2, 0, 0, 1, 1)
                                 : nx_cpu_conv(t_be, &ty, &tx, &tw, &tb, &p);
        int bad = 0;
        for (int64_t i = 0; s == NGPT_OK && i < 2 * O * Lo; i++) bad += y[i] != b[(i / Lo) % O];
        CHECK_MSG(bad == 0, "%s with C = 0: OK but %d outputs are not the bias", tr ? "conv_transpose1d" : "conv1d", bad);
        ngpt_clear_error();
    }
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
}

int main(void)
{
    if (!ops_test_init(2) || nx_pool_create(&pool1, 1) != NGPT_OK || nx_pool_create(&pool3, 3) != NGPT_OK ||
        nx_cpu_backend_create(&be1, pool1, NULL) != NGPT_OK || nx_cpu_backend_create(&be3, pool3, NULL) != NGPT_OK) {
        fprintf(stderr, "cannot create the CPU backends: %s\n", ngpt_last_error());
        return 1;
    }
    big = getenv("NX_CONV_STRESS_BIG") && atoi(getenv("NX_CONV_STRESS_BIG")) > 0;
    if (!nx_cpu_has_avx2()) fprintf(stderr, "  (no AVX2: the direct conv1d is not taken)\n");
    RUN(test_no_channels);
    RUN(test_conv1d_stress);
    RUN(test_convt_stress);
    RUN(test_wino1d_2d_stress);
    RUN(test_winograd_stripes_stress);
    FOR_NARROWER_ISAS { /* oneDNN for every conv1d, wino1d's portable kernels */
        RUN(test_conv1d_stress);
        RUN(test_wino1d_2d_stress);
    }
    nx_backend_free(be1);
    nx_backend_free(be3);
    nx_pool_free(pool1);
    nx_pool_free(pool3);
    ops_test_fini();
    return test_done();
}
