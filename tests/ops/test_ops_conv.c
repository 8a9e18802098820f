/* test_ops_conv.c — CPU conv1d/2d/3d and conv_transpose1d (oneDNN) against naive double loops.
 * Weights are rounded to their dtype first (the reference sees the stored values), so every
 * dtype gets the F32 tolerance: 2e-6 relative to sum |x w| (+|bias|) per output. */
#include "ops_test_util.h"
#include "alloc_fail.h"
#include "ref_ops.h"
#include "ops/cpu/cpu_util.h"

static test_rng rng = {0x1234567887654321ull};

static int64_t prod(const int64_t *v, int n)
{
    int64_t p = 1;
    for (int i = 0; i < n; i++) p *= v[i];
    return p;
}

/* sp: input spatial sizes, k: kernel sizes */
/* check_conv's tolerance, relative to each output's sum |x w|: 2e-6 for the direct paths; the
 * forced Winograd checks raise it to 1e-5, since F(4x4, 3x3)'s error follows the magnitudes of
 * the whole tile (the transforms' growth), as the 1-D Winograd checks allow */
static double g_conv_rel = 2e-6;
/* the reference sees x rounded to BF16 (the BF16 compute path's columns) */
static bool g_round_x;

static void check_conv(int nsp, int64_t N, int64_t C, int64_t O, const int64_t *sp, const int64_t *k, int stride, int pad,
                       int dil, int groups, ngpt_dtype wdt, int bias)
{
    nx_conv_params p; /* not nx_conv_params_default(): that lives in ops.c, tested elsewhere */
    memset(&p, 0, sizeof p);
    p.groups = groups;
    int64_t xs[5] = {N, C}, ws[5] = {O, C / groups}, ys[5] = {N, O};
    for (int i = 0; i < nsp; i++) {
        p.stride[i] = stride + (i == nsp - 1 ? 0 : 0);
        p.pad[i] = pad;
        p.dilation[i] = dil;
        xs[2 + i] = sp[i];
        ws[2 + i] = k[i];
        ys[2 + i] = (sp[i] + 2 * pad - dil * (k[i] - 1) - 1) / stride + 1;
    }
    size_t nx = (size_t)prod(xs, 2 + nsp), nw = (size_t)prod(ws, 2 + nsp), ny = (size_t)prod(ys, 2 + nsp);
    float *x = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * (size_t)O), *y = malloc(4 * ny);
    void *wenc = malloc(4 * nw);
    double *want = malloc(8 * ny), *sc = malloc(8 * ny);
    test_fill(&rng, x, nx, -1, 1);
    test_fill(&rng, w, nw, -1, 1);
    test_fill(&rng, b, (size_t)O, -1, 1);
    round_to(wdt, w, wenc, nw);
    float *xr = malloc(4 * nx);
    memcpy(xr, x, 4 * nx);
    for (size_t i = 0; g_round_x && i < nx; i++) xr[i] = nx_bf16_to_f32(nx_f32_to_bf16(xr[i]));
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2 + nsp, xs, x, t_be), tw = nx_view(wdt, 2 + nsp, ws, wenc, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be), ty = nx_view(NGPT_DTYPE_F32, 2 + nsp, ys, y, t_be);
    CHECK_OK(nx_cpu_conv(t_be, &ty, &tx, &tw, bias ? &tb : NULL, &p));
    ref_conv(xr, w, bias ? b : NULL, xs, ws, ys, nsp, &p, want, sc);
    char what[160];
    snprintf(what, sizeof what, "conv%dd N=%lld C=%lld O=%lld s=%d p=%d d=%d g=%d %s bias=%d", nsp, (long long)N,
             (long long)C, (long long)O, stride, pad, dil, groups, nx_dtype_name(wdt), bias);
    close_scaled(what, y, want, sc, ny, g_conv_rel, 1e-6);
    free(x), free(xr), free(w), free(b), free(y), free(wenc), free(want), free(sc);
}

static void test_conv(void)
{
    const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        /* 1d: HiFi-GAN-like (dilation, padding), strided, grouped */
        check_conv(1, 2, 6, 10, (int64_t[]){37}, (int64_t[]){7}, 1, 3, 1, 1, dts[d], 1);
        check_conv(1, 1, 8, 8, (int64_t[]){50}, (int64_t[]){3}, 1, 5, 5, 1, dts[d], 1);
        check_conv(1, 2, 6, 9, (int64_t[]){41}, (int64_t[]){4}, 3, 2, 2, 3, dts[d], 0);
        /* 2d: 3x3 same, strided downsample (floor), 1x1, depthwise, patch embed */
        check_conv(2, 2, 5, 7, (int64_t[]){9, 11}, (int64_t[]){3, 3}, 1, 1, 1, 1, dts[d], 1);
        check_conv(2, 1, 4, 6, (int64_t[]){10, 9}, (int64_t[]){3, 3}, 2, 1, 1, 1, dts[d], 1);
        check_conv(2, 1, 16, 8, (int64_t[]){5, 6}, (int64_t[]){1, 1}, 1, 0, 1, 1, dts[d], 0);
        check_conv(2, 3, 17, 9, (int64_t[]){5, 7}, (int64_t[]){1, 1}, 1, 0, 1, 1, dts[d], 1); /* 1x1 -> matmul */
        check_conv(1, 2, 12, 5, (int64_t[]){33}, (int64_t[]){1}, 1, 0, 1, 1, dts[d], 1);
        check_conv(3, 2, 4, 6, (int64_t[]){3, 4, 5}, (int64_t[]){1, 1, 1}, 1, 0, 1, 1, dts[d], 1);
        check_conv(2, 1, 8, 4, (int64_t[]){7, 9}, (int64_t[]){1, 1}, 2, 0, 1, 1, dts[d], 1);  /* strided 1x1: oneDNN conv */
        check_conv(2, 2, 6, 6, (int64_t[]){8, 7}, (int64_t[]){3, 3}, 1, 2, 2, 6, dts[d], 1);
        check_conv(2, 1, 3, 8, (int64_t[]){16, 16}, (int64_t[]){4, 4}, 4, 0, 1, 1, dts[d], 1);
        check_conv(2, 1, 8, 4, (int64_t[]){7, 9}, (int64_t[]){3, 2}, 1, 1, 1, 2, dts[d], 1);
        /* 3d: ImageBind video patch embed (2, 14, 14)-like, and a padded 3x3x3 */
        check_conv(3, 1, 3, 5, (int64_t[]){4, 14, 14}, (int64_t[]){2, 7, 7}, 2, 0, 1, 1, dts[d], 1);
        check_conv(3, 2, 4, 6, (int64_t[]){5, 6, 7}, (int64_t[]){3, 3, 3}, 1, 1, 1, 2, dts[d], 0);
    }
}

/* BF16 compute (nx_cpu_set_bf16_compute): with AVX-512 the plain-layout conv1d/conv2d without
 * groups take BF16 columns of x and BF16 W (conv_bf16.c): against the reference on x rounded to
 * BF16, to F32 tolerance (the products of BF16 values are exact in F32; only the order of the sums
 * differs). W stored F32 is rounded by the path; here it is BF16-valued already, so the reference
 * sees what the path multiplies. Shapes: stride, padding and dilation at the edges, taps past
 * the whole input, conv1d, 1x1, columns in chunks of images and of rows (32 MiB a chunk).
 * Without AVX-512 (and for grouped, 3-D and transposed convs) BF16 compute leaves convolutions in
 * F32: the reference on x as given. */
/* y = conv3x3(x, pad 1) + b for x [N, C, H, W] (static buffers of the allocation-failure runs) */
static ngpt_status conv3x3_pad1(float *x, float *w, float *b, float *y, int64_t N, int64_t C, int64_t O, int64_t H,
                                int64_t W)
{
    const int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C, 3, 3}, ys[4] = {N, O, H, W};
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    for (int i = 0; i < 2; i++) p.stride[i] = 1, p.pad[i] = 1, p.dilation[i] = 1;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 4, xs, x, t_be), tw = nx_view(NGPT_DTYPE_F32, 4, ws, w, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be), ty = nx_view(NGPT_DTYPE_F32, 4, ys, y, t_be);
    return nx_cpu_conv(t_be, &ty, &tx, &tw, &tb, &p);
}

static ngpt_status bf16_conv_once(void *u)
{
    (void)u;
    static float x[2 * 8 * 9 * 10], w[6 * 8 * 9], b[6], y[2 * 6 * 9 * 10];
    nx_cpu_set_bf16_compute(t_be, true);
    ngpt_status s = conv3x3_pad1(x, w, b, y, 2, 8, 6, 9, 10);
    nx_cpu_set_bf16_compute(t_be, false);
    return s;
}

static void test_conv_bf16(void)
{
    const bool path = nx_cpu_has_avx512();
    nx_cpu_set_bf16_compute(t_be, true);
    g_round_x = path;
    for (int d = 0; d < 2; d++) {
        const ngpt_dtype wdt = d ? NGPT_DTYPE_F16 : NGPT_DTYPE_BF16; /* F16 W: rounded to BF16 by the path */
        if (d && path) continue; /* F16 values are not BF16 values: the path's rounding of W is checked below */
        check_conv(2, 2, 5, 7, (int64_t[]){9, 11}, (int64_t[]){3, 3}, 1, 1, 1, 1, wdt, 1);
        check_conv(2, 1, 4, 6, (int64_t[]){10, 9}, (int64_t[]){3, 3}, 2, 1, 1, 1, wdt, 1);
        check_conv(2, 3, 17, 9, (int64_t[]){5, 7}, (int64_t[]){1, 1}, 1, 0, 1, 1, wdt, 1);
        check_conv(2, 1, 3, 8, (int64_t[]){16, 16}, (int64_t[]){4, 4}, 4, 0, 1, 1, wdt, 0);
        check_conv(2, 2, 6, 5, (int64_t[]){8, 7}, (int64_t[]){3, 3}, 1, 2, 2, 1, wdt, 1);
        check_conv(2, 1, 5, 4, (int64_t[]){4, 5}, (int64_t[]){3, 3}, 1, 3, 3, 1, wdt, 1);  /* taps wholly outside */
        check_conv(2, 1, 8, 4, (int64_t[]){7, 9}, (int64_t[]){3, 2}, 1, 1, 1, 1, wdt, 1);
        check_conv(1, 2, 6, 10, (int64_t[]){37}, (int64_t[]){7}, 1, 3, 1, 1, wdt, 1);
        check_conv(1, 1, 8, 8, (int64_t[]){50}, (int64_t[]){3}, 2, 5, 5, 1, wdt, 0);
        /* 3 images of 11.8 MB of columns: chunks of 2 + 1; one image of 75 MB: chunks of rows */
        check_conv(2, 3, 32, 5, (int64_t[]){128, 160}, (int64_t[]){3, 3}, 1, 1, 1, 1, wdt, 1);
        check_conv(2, 1, 64, 3, (int64_t[]){256, 256}, (int64_t[]){3, 3}, 1, 1, 1, 1, wdt, 1);
        /* not taken: groups and 3-D */
        g_round_x = false;
        check_conv(2, 2, 6, 6, (int64_t[]){8, 7}, (int64_t[]){3, 3}, 1, 2, 2, 6, wdt, 1);
        check_conv(3, 2, 4, 6, (int64_t[]){3, 4, 5}, (int64_t[]){3, 3, 3}, 1, 1, 1, 1, wdt, 1);
        g_round_x = path;
    }
    g_round_x = false;
    nx_cpu_set_bf16_compute(t_be, false);
    if (!path) return;
    /* F32 W is rounded to BF16 by the path: the same result as the BF16-valued W above */
    const int64_t xs[4] = {2, 5, 9, 11}, ws[4] = {7, 5, 3, 3}, ys[4] = {2, 7, 9, 11}, O = 7;
    float x[2 * 5 * 99], w[7 * 5 * 9], wr[7 * 5 * 9], b[7], y1[2 * 7 * 99], y2[2 * 7 * 99];
    uint16_t wenc[7 * 5 * 9];
    test_fill(&rng, x, sizeof x / 4, -1, 1);
    test_fill(&rng, w, sizeof w / 4, -1, 1);
    test_fill(&rng, b, 7, -1, 1);
    memcpy(wr, w, sizeof w);
    round_to(NGPT_DTYPE_BF16, wr, wenc, sizeof w / 4);
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    for (int i = 0; i < 2; i++) p.stride[i] = 1, p.pad[i] = 1, p.dilation[i] = 1;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 4, xs, x, t_be), tw = nx_view(NGPT_DTYPE_F32, 4, ws, w, t_be);
    nx_tensor twb = nx_view(NGPT_DTYPE_BF16, 4, ws, wenc, t_be), tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be);
    nx_tensor ty1 = nx_view(NGPT_DTYPE_F32, 4, ys, y1, t_be), ty2 = nx_view(NGPT_DTYPE_F32, 4, ys, y2, t_be);
    nx_cpu_set_bf16_compute(t_be, true);
    CHECK_OK(nx_cpu_conv(t_be, &ty1, &tx, &tw, &tb, &p));
    CHECK_OK(nx_cpu_conv(t_be, &ty2, &tx, &twb, &tb, &p));
    nx_cpu_set_bf16_compute(t_be, false);
    CHECK(memcmp(y1, y2, sizeof y1) == 0);
    CHECK_OK(bf16_conv_once(NULL));
    CHECK(test_alloc_fail_all("BF16 conv", bf16_conv_once, NULL) >= 2);
}

/* yw (a Winograd path, or not, per `wino`) against yd (direct): within 1e-5 of max |yd|, and
 * differing in the last bits iff the Winograd path ran. */
static void check_vs_direct(const char *what, const float *yd, const float *yw, size_t ny, int wino)
{
    size_t differ = 0;
    double worst = 0, mx = 0;
    for (size_t i = 0; i < ny; i++) {
        differ += yd[i] != yw[i];
        worst = fmax(worst, fabs((double)yd[i] - yw[i]));
        mx = fmax(mx, fabs((double)yd[i]));
    }
    CHECK_MSG(worst <= 1e-5 * mx, "%s: Winograd vs direct: max |diff| %.3g vs max |y| %.3g", what, worst, mx);
    CHECK_MSG((differ > 0) == (wino != 0), "%s: the Winograd path %s (%zu outputs differ from direct)", what,
              wino ? "ran" : "did not run", differ);
}

/* y = conv3x3(x) + b with Winograd in `mode` and with it OFF (direct): they must agree to F32
 * tolerance, and differ in the last bits iff `wino` (the Winograd path ran). */
static void compare_winograd(nx_conv_winograd_mode mode, int wino, int64_t N, int64_t C, int64_t O, int64_t H, int64_t W)
{
    const int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C, 3, 3}, ys[4] = {N, O, H, W};
    const size_t nx = (size_t)prod(xs, 4), nw = (size_t)prod(ws, 4), ny = (size_t)prod(ys, 4);
    float *x = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * (size_t)O), *yd = malloc(4 * ny), *yw = malloc(4 * ny);
    test_fill(&rng, x, nx, -1, 1);
    test_fill(&rng, w, nw, -1, 1);
    test_fill(&rng, b, (size_t)O, -1, 1);
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    for (int i = 0; i < 2; i++) p.stride[i] = 1, p.pad[i] = 1, p.dilation[i] = 1;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 4, xs, x, t_be), tw = nx_view(NGPT_DTYPE_F32, 4, ws, w, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be);
    nx_tensor tyd = nx_view(NGPT_DTYPE_F32, 4, ys, yd, t_be), tyw = nx_view(NGPT_DTYPE_F32, 4, ys, yw, t_be);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_OFF);
    CHECK_OK(nx_cpu_conv(t_be, &tyd, &tx, &tw, &tb, &p));
    nx_cpu_set_conv_winograd(t_be, mode);
    CHECK_OK(nx_cpu_conv(t_be, &tyw, &tx, &tw, &tb, &p));
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    char what[96];
    snprintf(what, sizeof what, "%lldx%lldx%lldx%lld -> %lld", (long long)N, (long long)C, (long long)H, (long long)W,
             (long long)O);
    check_vs_direct(what, yd, yw, ny, wino && nx_cpu_has_avx2()); /* oneDNN's (AVX-512) or wino2d.c (AVX2) */
    free(x), free(w), free(b), free(yd), free(yw);
}

/* every allocation of the own 2-D Winograd (wino2d.c, AVX2 without AVX-512) made to fail in turn */
static ngpt_status wino2d_once(void *u)
{
    (void)u;
    static float x[2 * 16 * 12 * 10], w[24 * 16 * 9], b[24], y[2 * 24 * 12 * 10];
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS);
    ngpt_status s = conv3x3_pad1(x, w, b, y, 2, 16, 24, 12, 10);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_trim(t_be);
    return s;
}

/* The own 2-D Winograd's edges, forced (on AVX-512 these run oneDNN's): images smaller than a
 * tile and not multiples of 4, one channel, channel counts off the 8-row blocks, padding 0 and
 * 2, several batch items whose tiles share a chunk, and columns in several chunks. */
static void test_conv_wino2d(void)
{
    const bool own = nx_cpu_has_avx2() && !nx_cpu_has_avx512();
    if (own) {
        CHECK_OK(wino2d_once(NULL));
        CHECK(test_alloc_fail_all("2-D Winograd conv", wino2d_once, NULL) >= 3);
    }
    g_conv_rel = 1e-5;
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS);
    check_conv(2, 1, 1, 1, (int64_t[]){5, 7}, (int64_t[]){3, 3}, 1, 1, 1, 1, NGPT_DTYPE_F32, 1);
    check_conv(2, 3, 9, 13, (int64_t[]){11, 6}, (int64_t[]){3, 3}, 1, 0, 1, 1, NGPT_DTYPE_F32, 1);
    check_conv(2, 2, 17, 10, (int64_t[]){3, 3}, (int64_t[]){3, 3}, 1, 2, 1, 1, NGPT_DTYPE_F32, 0);
    check_conv(2, 2, 70, 90, (int64_t[]){21, 19}, (int64_t[]){3, 3}, 1, 1, 1, 1, NGPT_DTYPE_F16, 1);
    /* no padding, 45 wide: 8 tiles of a row inside x and y, read and written as whole rows */
    check_conv(2, 2, 5, 7, (int64_t[]){9, 45}, (int64_t[]){3, 3}, 1, 0, 1, 1, NGPT_DTYPE_F32, 1);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    g_conv_rel = 2e-6;
    /* 400 tiles: our AVX2 path's chunks of 336 (with AVX-512 oneDNN's Winograd runs instead, and
     * it takes only output channels in blocks of 16: 200 would run direct) */
    if (own) compare_winograd(NX_CONV_WINOGRAD_ALWAYS, 1, 4, 256, 200, 40, 40);
}

/* Winograd (nx_cpu_set_conv_winograd): forced on small 3x3 shapes against the reference; the
 * F(4x4, 3x3) kernels (whose weights winograd.c transforms, oneDNN picks them for wider
 * images), padded channel blocks included; and the AUTO rule on a shape it selects. */
static void test_conv_winograd(void)
{
    g_conv_rel = 1e-5;
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS);
    check_conv(2, 2, 32, 48, (int64_t[]){12, 10}, (int64_t[]){3, 3}, 1, 1, 1, 1, NGPT_DTYPE_F32, 1);
    check_conv(2, 1, 64, 16, (int64_t[]){9, 17}, (int64_t[]){3, 3}, 1, 1, 1, 1, NGPT_DTYPE_F16, 0);
    check_conv(2, 1, 16, 16, (int64_t[]){8, 8}, (int64_t[]){3, 3}, 2, 1, 1, 1, NGPT_DTYPE_F32, 1); /* strided: direct */
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    compare_winograd(NX_CONV_WINOGRAD_ALWAYS, 1, 1, 256, 256, 32, 32);
    compare_winograd(NX_CONV_WINOGRAD_ALWAYS, 1, 2, 320, 336, 24, 20);
    compare_winograd(NX_CONV_WINOGRAD_AUTO, 1, 2, 64, 64, 32, 32);  /* N*H*W = 2048: the rule takes it */
    compare_winograd(NX_CONV_WINOGRAD_AUTO, 0, 2, 64, 64, 16, 16);  /* 512: direct */
    compare_winograd(NX_CONV_WINOGRAD_AUTO, 0, 1, 64, 64, 32, 32);  /* 1024 (break-even): direct */
    compare_winograd(NX_CONV_WINOGRAD_AUTO, 1, 1, 64, 64, 125, 16); /* 2000 (the mel VAE's): Winograd */
    compare_winograd(NX_CONV_WINOGRAD_AUTO, 0, 2, 48, 64, 32, 32);  /* < 64 channels in: direct */
    /* in row stripes (nx_cpu_set_conv_winograd_stripe): a budget of a few rows of (36/16 + 1)
     * (C + O) N W floats, so first, middle, last and short last stripes, and 4-row stripes */
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS);
    nx_cpu_set_conv_winograd_stripe(t_be, (size_t)(3.25 * 80 * 2 * 10 * 4 * 8)); /* 8 rows: 8+8+8+8+5 */
    check_conv(2, 2, 32, 48, (int64_t[]){37, 10}, (int64_t[]){3, 3}, 1, 1, 1, 1, NGPT_DTYPE_F32, 1);
    nx_cpu_set_conv_winograd_stripe(t_be, 1); /* 4 rows: 4 + 2 */
    check_conv(2, 1, 16, 24, (int64_t[]){6, 13}, (int64_t[]){3, 3}, 1, 1, 1, 1, NGPT_DTYPE_F16, 0);
    check_conv(2, 1, 16, 24, (int64_t[]){5, 9}, (int64_t[]){3, 3}, 1, 1, 1, 1, NGPT_DTYPE_F32, 1);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_winograd_stripe(t_be, (size_t)(3.25 * 512 * 32 * 4 * 12)); /* F(4x4, 3x3): 12 + 12 + 8 */
    compare_winograd(NX_CONV_WINOGRAD_ALWAYS, 1, 1, 256, 256, 32, 32);
    nx_cpu_set_conv_winograd_stripe(t_be, (size_t)(3.25 * 656 * 2 * 20 * 4 * 8)); /* 2 batch items: 8 + 8 + 8 */
    compare_winograd(NX_CONV_WINOGRAD_ALWAYS, 1, 2, 320, 336, 24, 20);
    nx_cpu_set_conv_winograd_stripe(t_be, 0);
    g_conv_rel = 2e-6;
}

/* The 1-D Winograd (wino1d.c) on x[N, C, L] (P 0) or x[N, C, L, P] with a (k, 1) kernel, pad
 * (pad, 0), dilation (dil, 1): against the double reference (2e-6 of sum |x w| as for direct),
 * and against direct with the mode OFF — differing in the last bits iff `wino` (the path ran). */
static void check_wino1d(nx_conv_winograd_mode mode, int wino, int64_t N, int64_t C, int64_t O, int64_t L, int64_t P,
                         int64_t k, int pad, int dil, int bias)
{
    const int nsp = P ? 2 : 1;
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    p.stride[0] = p.stride[1] = 1;
    p.pad[0] = pad;
    p.dilation[0] = dil;
    p.dilation[1] = 1;
    const int64_t Lo = L + 2 * pad - dil * (k - 1);
    int64_t xs[4] = {N, C, L, P}, ws[4] = {O, C, k, 1}, ys[4] = {N, O, Lo, P};
    const size_t nx = (size_t)prod(xs, 2 + nsp), nw = (size_t)prod(ws, 2 + nsp), ny = (size_t)prod(ys, 2 + nsp);
    float *x = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * (size_t)O), *yd = malloc(4 * ny), *yw = malloc(4 * ny);
    double *want = malloc(8 * ny), *sc = malloc(8 * ny);
    test_fill(&rng, x, nx, -1, 1);
    test_fill(&rng, w, nw, -1, 1);
    test_fill(&rng, b, (size_t)O, -1, 1);
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2 + nsp, xs, x, t_be), tw = nx_view(NGPT_DTYPE_F32, 2 + nsp, ws, w, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be);
    nx_tensor tyd = nx_view(NGPT_DTYPE_F32, 2 + nsp, ys, yd, t_be), tyw = nx_view(NGPT_DTYPE_F32, 2 + nsp, ys, yw, t_be);
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_OFF); /* it would take 7+ taps at 128+ channels first */
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_OFF);
    CHECK_OK(nx_cpu_conv(t_be, &tyd, &tx, &tw, bias ? &tb : NULL, &p));
    nx_cpu_set_conv_winograd(t_be, mode);
    CHECK_OK(nx_cpu_conv(t_be, &tyw, &tx, &tw, bias ? &tb : NULL, &p));
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    char what[192];
    snprintf(what, sizeof what, "wino1d N=%lld C=%lld O=%lld L=%lld P=%lld k=%lld pad=%d dil=%d bias=%d", (long long)N,
             (long long)C, (long long)O, (long long)L, (long long)P, (long long)k, pad, dil, bias);
    const bool ref = (double)ny * (double)(C * k) < 4e7; /* the double reference where it is quick */
    if (ref) {
        ref_conv(x, w, bias ? b : NULL, xs, ws, ys, nsp, &p, want, sc);
        close_scaled(what, yw, want, sc, ny, 2e-6, 1e-6);
    }
    check_vs_direct(what, yd, yw, ny, wino);
    if (!P && wino && nx_cpu_has_avx2()) { /* that ran the own GEMM; now oneDNN's batched matmul */
        nx_cpu_set_conv_winograd(t_be, mode);
        nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_OFF);
        CHECK_OK(nx_cpu_conv(t_be, &tyw, &tx, &tw, bias ? &tb : NULL, &p));
        nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
        nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
        strcat(what, ", oneDNN GEMM");
        if (ref) close_scaled(what, yw, want, sc, ny, 2e-6, 1e-6);
        check_vs_direct(what, yd, yw, ny, 1);
    }
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_AUTO);
    free(x), free(w), free(b), free(yd), free(yw), free(want), free(sc);
}

/* One "same"-length conv1d [1, C, L] -> [1, O, L] (k 7, pad 3 dil, zeros) through nx_cpu_conv, for
 * the allocation-failure runs (C <= 32, O <= 24, L <= 300). */
static ngpt_status conv1d_k7(int64_t C, int64_t O, int64_t L, int dil)
{
    static float x[32 * 300], w[24 * 32 * 7], b[24], y[24 * 300];
    const int64_t xs[3] = {1, C, L}, ws[3] = {O, C, 7}, ys[3] = {1, O, L};
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    p.stride[0] = 1;
    p.pad[0] = 3 * dil;
    p.dilation[0] = dil;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 3, xs, x, t_be), tw = nx_view(NGPT_DTYPE_F32, 3, ws, w, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be), ty = nx_view(NGPT_DTYPE_F32, 3, ys, y, t_be);
    return nx_cpu_conv(t_be, &ty, &tx, &tw, &tb, &p);
}

/* every allocation of the 1-D Winograd path made to fail in turn: NGPT_ERR_OUT_OF_MEMORY, nothing
 * left behind (the block cache trimmed after each run); *gemm_mode picks the own GEMM (AUTO) or
 * oneDNN's (OFF) */
static ngpt_status wino1d_once(void *gemm_mode)
{
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS);
    if (gemm_mode) nx_cpu_set_conv_direct1d(t_be, *(const nx_conv_winograd_mode *)gemm_mode);
    ngpt_status s = conv1d_k7(32, 24, 50, 1);
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_trim(t_be);
    return s;
}

static void test_conv_wino1d(void)
{
    nx_conv_winograd_mode gemm_onednn = NX_CONV_WINOGRAD_OFF;
    CHECK_OK(wino1d_once(&gemm_onednn)); /* warm oneDNN's per-shape primitive cache (owned by the backend) */
    CHECK(test_alloc_fail_all("1-D Winograd conv, oneDNN GEMM", wino1d_once, &gemm_onednn) >= 4);
    CHECK(test_alloc_fail_all("1-D Winograd conv", wino1d_once, NULL) >= (nx_cpu_has_avx2() ? 3 : 4));
    const nx_conv_winograd_mode AL = NX_CONV_WINOGRAD_ALWAYS, AU = NX_CONV_WINOGRAD_AUTO;
    /* HiFi-GAN's resblock convs: k 3/7/11, dilation 1/3/5, "same" padding; lengths not multiples
     * of 4 or 4 d; channels not multiples of 16; one and two batch items */
    const int64_t ks[4] = {3, 5, 7, 11};
    for (int i = 0; i < 4; i++)
        for (int dil = 1; dil <= 5; dil += 2)
            check_wino1d(AL, 1, 1 + (i & 1), 19, 13, 61 + 4 * i, 0, ks[i], (int)(dil * (ks[i] - 1) / 2), dil, i != 2);
    check_wino1d(AL, 1, 2, 8, 8, 9, 0, 3, 0, 1, 1);      /* no padding: Lo = L - 2 */
    check_wino1d(AL, 1, 1, 5, 7, 2, 0, 7, 3, 1, 1);      /* L < k */
    check_wino1d(AL, 1, 1, 4, 4, 1, 0, 3, 1, 1, 1);      /* L = 1 */
    check_wino1d(AL, 1, 1, 6, 5, 23, 0, 7, 4, 2, 0);     /* padding larger than "same" */
    /* Zeroscope's temporal conv: (3, 1) over [B, C, F, h*w], pad (1, 0) */
    check_wino1d(AL, 1, 2, 24, 20, 8, 37, 3, 1, 1, 1);
    check_wino1d(AL, 1, 1, 17, 16, 5, 9, 3, 1, 1, 0);
    /* the AUTO rule (conv.c use_wino1d): where bench_conv measured a win */
    check_wino1d(AU, 1, 1, 256, 256, 60, 0, 11, 15, 3, 1); /* vocoder: 11 taps at 256 channels */
    check_wino1d(AU, 0, 1, 256, 256, 60, 0, 7, 9, 3, 1);   /* 7 taps: the direct conv1d (or oneDNN) */
    check_wino1d(AU, 1, 1, 512, 512, 40, 0, 3, 3, 3, 1);   /* 3 dilated taps at 512 */
    check_wino1d(AU, 1, 1, 512, 512, 40, 0, 3, 1, 1, 0);   /* 3 undilated taps at 512 */
    check_wino1d(AU, 0, 1, 128, 128, 60, 0, 11, 15, 3, 1); /* 128 channels: direct */
    check_wino1d(AU, 0, 1, 256, 256, 60, 0, 3, 3, 3, 1);   /* 3 dilated taps: direct */
    check_wino1d(AU, 1, 1, 320, 320, 8, 512, 3, 1, 1, 1);  /* temporal: 320 channels x 1024 columns */
    check_wino1d(AU, 0, 2, 1280, 1280, 8, 16, 3, 1, 1, 1); /* temporal at 4x4 pixels: direct */
    check_wino1d(AU, 0, 1, 256, 256, 8, 512, 3, 1, 1, 1);  /* temporal at 256 channels: direct */
}

/* conv_transpose1d reference: y[n, o, t] += x[n, c, l] * w[c, o - g*Og, kk] where
 * t = l * stride - pad + kk * dil. */
static void check_convt(int64_t N, int64_t C, int64_t O, int64_t L, int64_t k, int stride, int pad, int opad, int dil,
                        int groups, ngpt_dtype wdt, int bias)
{
    int64_t Og = O / groups;
    int64_t Lo = (L - 1) * stride - 2 * pad + dil * (k - 1) + opad + 1;
    size_t nx = (size_t)(N * C * L), nw = (size_t)(C * Og * k), ny = (size_t)(N * O * Lo);
    float *x = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * (size_t)O), *y = malloc(4 * ny);
    void *wenc = malloc(4 * nw);
    double *want = calloc(ny, 8), *sc = calloc(ny, 8);
    test_fill(&rng, x, nx, -1, 1);
    test_fill(&rng, w, nw, -1, 1);
    test_fill(&rng, b, (size_t)O, -1, 1);
    round_to(wdt, w, wenc, nw);
    ref_conv_transpose1d(x, w, bias ? b : NULL, N, C, O, L, Lo, k, stride, pad, dil, groups, want, sc);
    int64_t xs[3] = {N, C, L}, ws[3] = {C, Og, k}, ys[3] = {N, O, Lo};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 3, xs, x, t_be), tw = nx_view(wdt, 3, ws, wenc, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be), ty = nx_view(NGPT_DTYPE_F32, 3, ys, y, t_be);
    for (int mode = 0; mode < 2; mode++) { /* the direct conv1d per phase (where it applies), then oneDNN */
        nx_cpu_set_conv_direct1d(t_be, mode ? NX_CONV_WINOGRAD_OFF : NX_CONV_WINOGRAD_AUTO);
        memset(y, 0xff, 4 * ny); /* NaN: every output must be written */
        CHECK_OK(nx_cpu_conv_transpose1d(t_be, &ty, &tx, &tw, bias ? &tb : NULL, stride, pad, opad, dil, groups));
        char what[192];
        snprintf(what, sizeof what, "conv_transpose1d C=%lld O=%lld L=%lld k=%lld s=%d p=%d op=%d d=%d g=%d %s %s",
                 (long long)C, (long long)O, (long long)L, (long long)k, stride, pad, opad, dil, groups,
                 nx_dtype_name(wdt), mode ? "oneDNN" : "auto");
        close_scaled(what, y, want, sc, ny, 2e-6, 1e-6);
    }
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    free(x), free(w), free(b), free(y), free(wenc), free(want), free(sc);
}

static void test_conv_transpose1d(void)
{
    const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        /* HiFi-GAN upsamplers: k = 2u, stride u, pad (k - u) / 2 */
        check_convt(1, 8, 4, 13, 16, 8, 4, 0, 1, 1, dts[d], 1);
        check_convt(2, 6, 4, 9, 4, 2, 1, 0, 1, 1, dts[d], 1);
        check_convt(1, 6, 9, 7, 3, 2, 1, 1, 1, 3, dts[d], 0);
        check_convt(1, 4, 4, 10, 3, 1, 2, 0, 2, 2, dts[d], 1);
        check_convt(2, 3, 5, 5, 5, 3, 0, 2, 1, 1, dts[d], 1);
    }
    /* AudioLDM's upsamplers (rates 5, 4, 2, 2 with kernels 16, 16, 8, 4), more input channels than
     * one L1 chunk, output channels off the 8-row block; kernels shorter than the stride (phases
     * with no tap: the bias alone), pads past the kernel, output padding, one input sample */
    check_convt(1, 100, 12, 30, 16, 5, 5, 0, 1, 1, NGPT_DTYPE_F32, 1);
    check_convt(2, 24, 20, 61, 16, 4, 6, 0, 1, 1, NGPT_DTYPE_F32, 1);
    check_convt(1, 16, 8, 130, 8, 2, 3, 0, 1, 1, NGPT_DTYPE_F16, 1);
    check_convt(1, 8, 4, 75, 4, 2, 1, 0, 1, 1, NGPT_DTYPE_F32, 0);
    check_convt(1, 5, 3, 9, 2, 3, 0, 0, 1, 1, NGPT_DTYPE_F32, 1);
    check_convt(1, 5, 3, 9, 2, 3, 0, 2, 1, 1, NGPT_DTYPE_F32, 1);
    check_convt(1, 4, 6, 7, 3, 2, 4, 1, 1, 1, NGPT_DTYPE_F32, 1);
    check_convt(2, 7, 9, 1, 5, 3, 1, 0, 1, 1, NGPT_DTYPE_F32, 1);
}

/* Random x, w, b and a residual r (in [-1, 1]), outputs y and y2, and the reference with its error
 * scale, for the epilogue tests. */
typedef struct conv_bufs {
    float  *x, *w, *b, *r, *y, *y2;
    double *want, *sc;
} conv_bufs;

static conv_bufs bufs_new(size_t nx, size_t nw, size_t no, size_t ny)
{
    conv_bufs c = {malloc(4 * nx), malloc(4 * nw), malloc(4 * no), malloc(4 * ny), malloc(4 * ny), malloc(4 * ny),
                   malloc(8 * ny), malloc(8 * ny)};
    test_fill(&rng, c.x, nx, -1, 1);
    test_fill(&rng, c.w, nw, -1, 1);
    test_fill(&rng, c.b, no, -1, 1);
    test_fill(&rng, c.r, ny, -1, 1);
    return c;
}

static void bufs_free(conv_bufs *c)
{
    free(c->x), free(c->w), free(c->b), free(c->r), free(c->y), free(c->y2), free(c->want), free(c->sc);
}

/* One conv1d case on x[N, C, L] with w[O, C, k] ("same"-style symmetric pad, dilation dil, the
 * fused epilogue when `epi`: 1 leaky ReLU, 2 + residual, 3 both): params, random buffers and
 * their views, ty1 / ty0 for the two paths compared. */
typedef struct case1d {
    nx_conv_params p;
    int64_t        xs[3], ws[3], ys[3], Lo;
    size_t         ny;
    conv_bufs      c;
    nx_tensor      tx, tw, tb, tr, ty1, ty0;
} case1d;

static void case1d_new(case1d *t, int64_t N, int64_t C, int64_t O, int64_t L, int64_t k, int pad, int dil, int epi)
{
    memset(t, 0, sizeof *t);
    t->p.groups = 1;
    t->p.stride[0] = 1;
    t->p.pad[0] = pad;
    t->p.dilation[0] = dil;
    t->Lo = L + 2 * pad - dil * (k - 1);
    const int64_t xs[3] = {N, C, L}, ws[3] = {O, C, k}, ys[3] = {N, O, t->Lo};
    memcpy(t->xs, xs, sizeof xs), memcpy(t->ws, ws, sizeof ws), memcpy(t->ys, ys, sizeof ys);
    t->ny = (size_t)prod(ys, 3);
    t->c = bufs_new((size_t)prod(xs, 3), (size_t)prod(ws, 3), (size_t)O, t->ny);
    t->tx = nx_view(NGPT_DTYPE_F32, 3, t->xs, t->c.x, t_be);
    t->tw = nx_view(NGPT_DTYPE_F32, 3, t->ws, t->c.w, t_be);
    t->tb = nx_view(NGPT_DTYPE_F32, 1, &t->ws[0], t->c.b, t_be);
    t->tr = nx_view(NGPT_DTYPE_F32, 3, t->ys, t->c.r, t_be);
    t->ty1 = nx_view(NGPT_DTYPE_F32, 3, t->ys, t->c.y, t_be);
    t->ty0 = nx_view(NGPT_DTYPE_F32, 3, t->ys, t->c.y2, t_be);
    if (epi & 1) {
        t->p.act = NX_UNARY_LEAKY_RELU;
        t->p.act_param = 0.1f;
    }
    if (epi & 2) t->p.residual = &t->tr;
}

/* the double reference of t's conv (bias when `bias`) and its epilogue into c.want / c.sc */
static void case1d_ref(case1d *t, int bias)
{
    ref_conv(t->c.x, t->c.w, bias ? t->c.b : NULL, t->xs, t->ws, t->ys, 1, &t->p, t->c.want, t->c.sc);
    ref_epilogue(t->c.want, t->c.sc, t->ny, &t->p);
}

/* The direct conv1d (conv1d_direct.c): against the double reference and against oneDNN
 * (nx_cpu_set_conv_direct1d OFF). Without AVX2 both runs are oneDNN's. */
static void check_direct1d(int64_t N, int64_t C, int64_t O, int64_t L, int64_t k, int pad, int dil, int bias, int epi)
{
    case1d t;
    case1d_new(&t, N, C, O, L, k, pad, dil, epi);
    const nx_tensor *b = bias ? &t.tb : NULL;
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_OFF); /* 256+ channels: not wino1d either */
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_OFF);
    CHECK_OK(nx_cpu_conv(t_be, &t.ty1, &t.tx, &t.tw, b, &t.p));
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_OFF);
    CHECK_OK(nx_cpu_conv(t_be, &t.ty0, &t.tx, &t.tw, b, &t.p));
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    case1d_ref(&t, bias);
    char what[192];
    snprintf(what, sizeof what, "direct1d N=%lld C=%lld O=%lld L=%lld k=%lld pad=%d dil=%d bias=%d epi=%d", (long long)N,
             (long long)C, (long long)O, (long long)L, (long long)k, pad, dil, bias, epi);
    close_scaled(what, t.c.y, t.c.want, t.c.sc, t.ny, 2e-6, 1e-6);
    close_scaled(what, t.c.y2, t.c.want, t.c.sc, t.ny, 2e-6, 1e-6);
    bufs_free(&t.c);
}

/* every allocation of the direct conv1d (and of the transposed one) made to fail in turn */
static ngpt_status direct1d_once(void *u)
{
    (void)u;
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_ALWAYS); /* on AVX2, AUTO leaves the transposed one to oneDNN */
    ngpt_status s = conv1d_k7(16, 12, 300, 3);
    /* ConvTranspose1d 16 -> 12, k 8, stride 4, pad 2: (300 - 1) 4 - 4 + 8 = 1200 */
    static float x[16 * 300], w[16 * 12 * 8], y[12 * 1200];
    const int64_t xs[3] = {1, 16, 300}, ws[3] = {16, 12, 8}, ys[3] = {1, 12, 1200};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 3, xs, x, t_be), tw = nx_view(NGPT_DTYPE_F32, 3, ws, w, t_be);
    nx_tensor ty = nx_view(NGPT_DTYPE_F32, 3, ys, y, t_be);
    if (s == NGPT_OK) s = nx_cpu_conv_transpose1d(t_be, &ty, &tx, &tw, NULL, 4, 2, 0, 1, 1);
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_trim(t_be);
    return s;
}

static void test_conv_direct1d(void)
{
    if (!nx_cpu_has_avx2()) fprintf(stderr, "  (no AVX2: the direct conv1d is not taken; oneDNN both ways)\n");
    CHECK_OK(direct1d_once(NULL)); /* trims what earlier tests left in the block cache */
    if (nx_cpu_has_avx2()) CHECK(test_alloc_fail_all("direct conv1d", direct1d_once, NULL) >= 5);
    /* HiFi-GAN's resblock convs, "same" padding, k 3/7/11, dilations 1/3/5, the fused epilogue
     * (forced: on AVX2 AUTO leaves fewer than 7 taps to oneDNN) */
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_ALWAYS);
    const int64_t ks[3] = {3, 7, 11};
    for (int i = 0; i < 3; i++)
        for (int dil = 1; dil <= 5; dil += 2)
            check_direct1d(1 + (i & 1), 32, 32, 150 + 7 * i, ks[i], (int)(dil * (ks[i] - 1) / 2), dil, 1, (i + dil) & 3);
    /* output channels off the 8-row block, lengths off the 48-position tile, both edges in one
     * tile, padding wider than the kernel, no padding, one tap, one channel */
    check_direct1d(2, 5, 9, 49, 3, 1, 1, 1, 3);
    check_direct1d(1, 3, 7, 1, 3, 1, 1, 0, 0);      /* L = 1 */
    check_direct1d(1, 6, 17, 5, 7, 3, 1, 1, 1);     /* L < k */
    check_direct1d(1, 4, 8, 47, 5, 9, 2, 1, 2);     /* pad > the kernel's span */
    check_direct1d(1, 8, 16, 96, 3, 0, 1, 0, 0);    /* no padding */
    check_direct1d(1, 7, 1, 100, 1, 2, 1, 1, 3);    /* one tap, padded: not the 1x1 path */
    check_direct1d(2, 1, 24, 200, 11, 25, 5, 1, 3);
    check_direct1d(1, 64, 128, 1000, 11, 15, 3, 1, 3); /* the widest it takes */
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    check_direct1d(1, 40, 256, 300, 7, 3, 1, 1, 3);    /* 256 out: oneDNN both ways */
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_ALWAYS);
    check_direct1d(1, 40, 256, 300, 7, 3, 1, 1, 3);    /* ... unless forced */
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
    /* the epilogue on the paths that do not fuse it (oneDNN, Winograd 2-D) and on wino1d */
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_OFF);
    check_direct1d(1, 16, 24, 80, 5, 2, 1, 1, 3);
    nx_cpu_set_conv_direct1d(t_be, NX_CONV_WINOGRAD_AUTO);
}

/* The DFT conv1d (fftconv1d.c) in `mode`: against the double reference (its error follows the
 * row's scale, as Winograd's) and against the direct conv1d (nx_cpu_set_conv_fft1d OFF), from
 * which it differs in the last bits iff `dft` (it ran). */
static void check_fft1d(nx_conv_winograd_mode mode, int dft, int64_t N, int64_t C, int64_t O, int64_t L, int64_t k,
                        int pad, int dil, int bias, int epi)
{
    case1d t;
    case1d_new(&t, N, C, O, L, k, pad, dil, epi);
    const nx_tensor *b = bias ? &t.tb : NULL;
    const size_t ny = t.ny;
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_OFF);
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_OFF);
    CHECK_OK(nx_cpu_conv(t_be, &t.ty0, &t.tx, &t.tw, b, &t.p));
    nx_cpu_set_conv_fft1d(t_be, mode);
    memset(t.c.y, 0xff, 4 * ny); /* NaN: every output must be written */
    CHECK_OK(nx_cpu_conv(t_be, &t.ty1, &t.tx, &t.tw, b, &t.p));
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
    char what[192];
    snprintf(what, sizeof what, "dft1d N=%lld C=%lld O=%lld L=%lld k=%lld pad=%d dil=%d bias=%d epi=%d", (long long)N,
             (long long)C, (long long)O, (long long)L, (long long)k, pad, dil, bias, epi);
    if ((double)ny * (double)(C * k) < 4e7) {
        case1d_ref(&t, bias);
        for (size_t i0 = 0; i0 < ny; i0 += (size_t)t.Lo) { /* the row's largest scale */
            double m = 0;
            for (size_t i = i0; i < i0 + (size_t)t.Lo; i++) m = fmax(m, t.c.sc[i]);
            for (size_t i = i0; i < i0 + (size_t)t.Lo; i++) t.c.sc[i] = m;
        }
        close_scaled(what, t.c.y, t.c.want, t.c.sc, ny, 1e-5, 1e-6);
    }
    check_vs_direct(what, t.c.y2, t.c.y, ny, dft);
    bufs_free(&t.c);
}

/* every allocation of the DFT conv1d made to fail in turn */
static ngpt_status fft1d_once(void *u)
{
    (void)u;
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_ALWAYS);
    ngpt_status s = conv1d_k7(32, 24, 300, 3);
    nx_cpu_set_conv_fft1d(t_be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_trim(t_be);
    return s;
}

static void test_conv_fft1d(void)
{
    if (!nx_cpu_has_avx2()) {
        fprintf(stderr, "  (no AVX2: the DFT conv1d is not taken)\n");
        check_fft1d(NX_CONV_WINOGRAD_ALWAYS, 0, 1, 16, 16, 100, 7, 3, 1, 1, 0);
        return;
    }
    CHECK_OK(fft1d_once(NULL));
    CHECK(test_alloc_fail_all("DFT conv1d", fft1d_once, NULL) >= 2);
    const nx_conv_winograd_mode AL = NX_CONV_WINOGRAD_ALWAYS, AU = NX_CONV_WINOGRAD_AUTO;
    /* HiFi-GAN's resblock convs: k 3/7/11, dilation 1/3/5, "same" padding, the fused epilogue;
     * channels off the 8-row block, lengths off the 22-26-output blocks and the 16-column lanes */
    const int64_t ks[4] = {3, 5, 7, 11};
    for (int i = 0; i < 4; i++)
        for (int dil = 1; dil <= 5; dil += 2) {
            const int pad = (int)(dil * (ks[i] - 1) / 2);
            check_fft1d(AL, 1, 1 + (i & 1), 19 + i, 13, 301 + 7 * i, ks[i], pad, dil, i != 2, (i + dil) & 3);
        }
    check_fft1d(AL, 1, 1, 5, 7, 2, 7, 3, 1, 1, 3);      /* L < k */
    check_fft1d(AL, 1, 1, 24, 20, 1, 3, 1, 1, 1, 0);    /* L = 1 (enough outputs that some round differently) */
    check_fft1d(AL, 1, 1, 6, 5, 40, 7, 9, 2, 0, 2);     /* padding wider than the kernel's span */
    check_fft1d(AL, 1, 2, 8, 8, 64, 16, 0, 1, 1, 1);    /* 16 taps (blocks of 17 outputs), no padding */
    check_fft1d(AL, 1, 1, 3, 9, 200, 2, 0, 7, 1, 0);    /* 2 taps, dilation 7 */
    check_fft1d(AL, 1, 1, 33, 40, 3000, 11, 25, 5, 1, 3); /* many columns: chunks on both threads */
    check_fft1d(AL, 0, 1, 8, 8, 64, 17, 8, 1, 1, 0);    /* 17 taps: not taken */
    /* the AUTO rule (conv.c use_fft1d) */
    check_fft1d(AU, 1, 1, 128, 128, 200, 7, 9, 3, 1, 3);   /* 7 taps at 128 channels */
    check_fft1d(AU, 1, 1, 256, 256, 120, 11, 15, 3, 1, 0); /* 11 taps at 256 */
    check_fft1d(AU, !nx_cpu_has_avx512(), 1, 64, 64, 200, 11, 5, 1, 1, 0); /* 64 channels: AVX2 only */
    check_fft1d(AU, 0, 1, 64, 64, 200, 7, 3, 1, 1, 0);      /* 64 channels, 7 taps: direct */
    check_fft1d(AU, 0, 1, 32, 32, 200, 11, 5, 1, 1, 0);     /* 32 channels: direct */
    check_fft1d(AU, 0, 1, 256, 256, 120, 3, 3, 3, 1, 0);    /* 3 taps: not taken */
}

/* The epilogue after a 2-D conv (oneDNN, unfused) and after the 1-D Winograd (fused). */
static void test_conv_epilogue(void)
{
    for (int path = 0; path < 2; path++) {
        const int64_t N = 2, C = 8, O = 12, H = 10, W = path ? 1 : 9, k = 3;
        const int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C, k, path ? 1 : k}, ys[4] = {N, O, H, W};
        const size_t nx = (size_t)prod(xs, 4), nw = (size_t)prod(ws, 4), ny = (size_t)prod(ys, 4);
        conv_bufs c = bufs_new(nx, nw, (size_t)O, ny);
        nx_tensor tx = nx_view(NGPT_DTYPE_F32, 4, xs, c.x, t_be), tw = nx_view(NGPT_DTYPE_F32, 4, ws, c.w, t_be);
        nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, c.b, t_be), ty = nx_view(NGPT_DTYPE_F32, 4, ys, c.y, t_be);
        nx_tensor tr = nx_view(NGPT_DTYPE_F32, 4, ys, c.r, t_be);
        nx_conv_params p;
        memset(&p, 0, sizeof p);
        p.groups = 1;
        p.stride[0] = p.stride[1] = 1;
        p.dilation[0] = p.dilation[1] = 1;
        p.pad[0] = 1;
        p.pad[1] = path ? 0 : 1;
        p.act = path ? NX_UNARY_LEAKY_RELU : NX_UNARY_RELU;
        p.act_param = 0.2f;
        p.residual = &tr;
        if (path) nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_ALWAYS); /* (3, 1) kernel: wino1d */
        CHECK_OK(nx_cpu_conv(t_be, &ty, &tx, &tw, &tb, &p));
        nx_cpu_set_conv_winograd(t_be, NX_CONV_WINOGRAD_AUTO);
        ref_conv(c.x, c.w, c.b, xs, ws, ys, 2, &p, c.want, c.sc);
        ref_epilogue(c.want, c.sc, ny, &p);
        close_scaled(path ? "epilogue after wino1d" : "epilogue after a 2-D conv", c.y, c.want, c.sc, ny, 2e-6, 1e-6);
        bufs_free(&c);
    }
}

/* channels last (nx_conv_params.channels_last): x, y [N, H, W, C], w [O, kh, kw, C/g], checked
 * against the NCHW reference permuted; through nx_op_conv, so the shape rules are exercised too */
static void check_conv_cl(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int64_t kh, int64_t kw, int stride,
                          int pad, int dil, int groups, ngpt_dtype wdt, int bias, int epi)
{
    nx_conv_params p = nx_conv_params_default();
    p.groups = groups;
    for (int i = 0; i < 2; i++) p.stride[i] = stride, p.pad[i] = pad, p.dilation[i] = dil;
    const int64_t Ho = (H + 2 * pad - dil * (kh - 1) - 1) / stride + 1, Wo = (W + 2 * pad - dil * (kw - 1) - 1) / stride + 1;
    const int64_t xs[4] = {N, C, H, W}, ws[4] = {O, C / groups, kh, kw}, ys[4] = {N, O, Ho, Wo};
    const int64_t xl[4] = {N, H, W, C}, wl[4] = {O, kh, kw, C / groups}, yl[4] = {N, Ho, Wo, O};
    const size_t nx = (size_t)prod(xs, 4), nw = (size_t)prod(ws, 4), ny = (size_t)prod(ys, 4);
    float *x = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * (size_t)O), *r = malloc(4 * ny);
    float *xc = malloc(4 * nx), *wc = malloc(4 * nw), *rc = malloc(4 * ny), *y = malloc(4 * ny);
    void *wenc = malloc(4 * nw);
    double *want = malloc(8 * ny), *sc = malloc(8 * ny), *wantc = malloc(8 * ny), *scc = malloc(8 * ny);
    test_fill(&rng, x, nx, -1, 1);
    test_fill(&rng, w, nw, -1, 1);
    test_fill(&rng, b, (size_t)O, -1, 1);
    test_fill(&rng, r, ny, -1, 1);
    for (size_t i = 0; g_round_x && i < nx; i++) x[i] = nx_bf16_to_f32(nx_f32_to_bf16(x[i])); /* BF16 values */
    round_to(wdt, w, wenc, nw); /* w now holds the stored values; wenc them in wdt */
    ref_to_nhwc(xc, x, N, C, H * W);
    ref_to_nhwc(rc, r, N, O, Ho * Wo);
    /* the filter [O, Cg, kh, kw] -> [O, kh, kw, Cg] in its dtype: permute the decoded values and
     * encode them again (exact: they are representable) */
    ref_to_nhwc(wc, w, O, C / groups, kh * kw);
    round_to(wdt, wc, wenc, nw);
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 4, xl, xc, t_be), tw = nx_view(wdt, 4, wl, wenc, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be), ty = nx_view(NGPT_DTYPE_F32, 4, yl, y, t_be);
    nx_tensor tr = nx_view(NGPT_DTYPE_F32, 4, yl, rc, t_be);
    p.channels_last = true;
    if (epi) {
        p.act = NX_UNARY_LEAKY_RELU;
        p.act_param = 0.1f;
        p.residual = &tr;
    }
    CHECK_OK(nx_op_conv(t_be, &ty, &tx, &tw, bias ? &tb : NULL, &p));
    nx_conv_params pr = p; /* the reference reads NCHW */
    nx_tensor trn = nx_view(NGPT_DTYPE_F32, 4, ys, r, t_be);
    pr.channels_last = false;
    pr.residual = epi ? &trn : NULL;
    ref_conv(x, w, bias ? b : NULL, xs, ws, ys, 2, &pr, want, sc);
    if (epi) ref_epilogue(want, sc, ny, &pr);
    ref_to_nhwc_d(wantc, want, N, O, Ho * Wo);
    ref_to_nhwc_d(scc, sc, N, O, Ho * Wo);
    char what[160];
    snprintf(what, sizeof what, "conv2d channels last N=%lld C=%lld O=%lld k=%lldx%lld s=%d p=%d d=%d g=%d %s bias=%d epi=%d",
             (long long)N, (long long)C, (long long)O, (long long)kh, (long long)kw, stride, pad, dil, groups,
             nx_dtype_name(wdt), bias, epi);
    close_scaled(what, y, wantc, scc, ny, 2e-6, 1e-6);
    free(x), free(w), free(b), free(r), free(xc), free(wc), free(rc), free(y), free(wenc);
    free(want), free(sc), free(wantc), free(scc);
}

static void test_conv_channels_last(void)
{
    const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    for (int d = 0; d < 3; d++) {
        check_conv_cl(2, 5, 7, 9, 11, 3, 3, 1, 1, 1, 1, dts[d], 1, 0);   /* 3x3 same */
        check_conv_cl(1, 4, 6, 10, 9, 3, 3, 2, 1, 1, 1, dts[d], 1, 0);   /* strided downsample */
        check_conv_cl(2, 17, 9, 5, 7, 1, 1, 1, 0, 1, 1, dts[d], 1, 0);   /* 1x1: a linear layer */
        check_conv_cl(2, 17, 9, 5, 7, 1, 1, 1, 0, 1, 1, dts[d], 0, 1);   /* 1x1 + epilogue, no bias */
        check_conv_cl(2, 6, 6, 8, 7, 3, 3, 1, 2, 2, 6, dts[d], 1, 0);    /* depthwise, dilated */
        check_conv_cl(1, 8, 4, 7, 9, 3, 2, 1, 1, 1, 2, dts[d], 1, 1);    /* grouped, rectangular, epilogue */
        check_conv_cl(1, 8, 4, 7, 9, 3, 1, 1, 0, 1, 1, dts[d], 1, 0);    /* (3, 1): the temporal shape */
    }
    /* a size where the NCHW op takes Winograd (64 channels, 48x48): channels last must not */
    check_conv_cl(1, 64, 64, 48, 48, 3, 3, 1, 1, 1, 1, NGPT_DTYPE_F32, 1, 1);
    /* errors: rank 3 and 5, w in the NCHW layout */
    nx_conv_params p = nx_conv_params_default();
    p.channels_last = true;
    float buf[4096];
    nx_tensor x3 = nx_view(NGPT_DTYPE_F32, 3, (int64_t[]){1, 8, 4}, buf, t_be), y3 = x3;
    nx_tensor w3 = nx_view(NGPT_DTYPE_F32, 3, (int64_t[]){4, 1, 4}, buf, t_be);
    CHECK_ERR(nx_op_conv(t_be, &y3, &x3, &w3, NULL, &p), NGPT_ERR_SHAPE_MISMATCH, "channels last");
    nx_tensor x4 = nx_view(NGPT_DTYPE_F32, 4, (int64_t[]){1, 6, 6, 8}, buf, t_be);
    nx_tensor w4 = nx_view(NGPT_DTYPE_F32, 4, (int64_t[]){4, 8, 3, 3}, buf + 512, t_be);
    nx_tensor y4 = nx_view(NGPT_DTYPE_F32, 4, (int64_t[]){1, 4, 4, 4}, buf + 2048, t_be);
    CHECK_ERR(nx_op_conv(t_be, &y4, &x4, &w4, NULL, &p), NGPT_ERR_SHAPE_MISMATCH, "C/groups");
}

/* BF16 compute on a CPU with AMX-BF16: conv1d/conv2d without groups go to oneDNN's channels-last
 * BF16 kernels (conv.c, use_amx_conv) in either layout; the NCHW side is test_conv_bf16 above.
 * Channels last here, x BF16-valued (the path's rounding of x is checked in NCHW), so the
 * reference sees what the path multiplies; grouped convs stay F32 on the same values. */
static void test_conv_bf16_channels_last(void)
{
    if (!nx_cpu_has_amx_bf16()) {
        printf("  (no AMX-BF16 on this CPU: the AMX convolution path is not exercised)\n");
        return;
    }
    nx_cpu_set_bf16_compute(t_be, true);
    g_round_x = true;
    check_conv_cl(2, 5, 7, 9, 11, 3, 3, 1, 1, 1, 1, NGPT_DTYPE_BF16, 1, 0);
    check_conv_cl(1, 4, 6, 10, 9, 3, 3, 2, 1, 1, 1, NGPT_DTYPE_BF16, 1, 1);
    check_conv_cl(2, 17, 9, 5, 7, 1, 1, 1, 0, 1, 1, NGPT_DTYPE_BF16, 0, 1);
    check_conv_cl(1, 8, 4, 7, 9, 3, 1, 1, 0, 1, 1, NGPT_DTYPE_BF16, 1, 0);
    check_conv_cl(1, 6, 5, 8, 7, 3, 3, 1, 3, 3, 1, NGPT_DTYPE_BF16, 1, 0); /* taps wholly outside */
    check_conv_cl(1, 64, 48, 40, 40, 3, 3, 1, 1, 1, 1, NGPT_DTYPE_BF16, 1, 1);
    check_conv_cl(1, 8, 4, 7, 9, 3, 2, 1, 1, 1, 2, NGPT_DTYPE_BF16, 1, 1); /* grouped: F32 */
    /* AudioLDM's shapes (mel latents 128 x 16): conv_in from 8 channels, a 1x1 shortcut, conv_out
     * to 8, and the downsampler (stride 2) that oneDNN 2.6's AMX kernel got ~1% wrong (so strided
     * convolutions stay off it); SD's downsampler and a dilated 3x3 */
    check_conv_cl(2, 8, 256, 128, 16, 3, 3, 1, 1, 1, 1, NGPT_DTYPE_BF16, 1, 0);
    check_conv_cl(2, 256, 512, 64, 8, 1, 1, 1, 0, 1, 1, NGPT_DTYPE_BF16, 1, 0);
    check_conv_cl(2, 256, 8, 128, 16, 3, 3, 1, 1, 1, 1, NGPT_DTYPE_BF16, 1, 0);
    check_conv_cl(2, 256, 256, 128, 16, 3, 3, 2, 1, 1, 1, NGPT_DTYPE_BF16, 1, 0);
    check_conv_cl(2, 320, 320, 64, 64, 3, 3, 2, 1, 1, 1, NGPT_DTYPE_BF16, 1, 0);
    check_conv_cl(2, 64, 64, 32, 16, 3, 3, 1, 2, 2, 1, NGPT_DTYPE_BF16, 1, 0);
    g_round_x = false;
    nx_cpu_set_bf16_compute(t_be, false);
}

/* A filter packed by nx_op_conv_pack gives the same y as the plain one, bit for bit: under
 * BF16 compute on AMX (the blocked layout in place of oneDNN's per-call reorder; at a size where
 * oneDNN picks another layout, reordered from the packed one), and under F32 compute (unpacked
 * per call). What cannot be packed stays plain; other ops refuse a packed filter. */
static void check_conv_packed(int64_t N, int64_t C, int64_t O, int64_t H, int64_t W, int64_t k, int stride, int groups,
                              bool cl, bool want_packed)
{
    const bool two = W > 0;
    nx_conv_params p = nx_conv_params_default();
    p.groups = groups;
    p.channels_last = cl;
    for (int i = 0; i < 2; i++) p.stride[i] = stride, p.pad[i] = (int)(k / 2);
    const int64_t Ho = (H + 2 * (k / 2) - k) / stride + 1, Wo = two ? (W + 2 * (k / 2) - k) / stride + 1 : 0;
    int64_t xs[4], ws[4], ys[4];
    const int r = two ? 4 : 3;
    if (!two) {
        memcpy(xs, (int64_t[]){N, C, H}, sizeof(int64_t[3]));
        memcpy(ws, (int64_t[]){O, C / groups, k}, sizeof(int64_t[3]));
        memcpy(ys, (int64_t[]){N, O, Ho}, sizeof(int64_t[3]));
    } else if (cl) {
        memcpy(xs, (int64_t[]){N, H, W, C}, sizeof xs);
        memcpy(ws, (int64_t[]){O, k, k, C / groups}, sizeof ws);
        memcpy(ys, (int64_t[]){N, Ho, Wo, O}, sizeof ys);
    } else {
        memcpy(xs, (int64_t[]){N, C, H, W}, sizeof xs);
        memcpy(ws, (int64_t[]){O, C / groups, k, k}, sizeof ws);
        memcpy(ys, (int64_t[]){N, O, Ho, Wo}, sizeof ys);
    }
    const size_t nx = (size_t)prod(xs, r), nw = (size_t)prod(ws, r), ny = (size_t)prod(ys, r);
    float *x = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * (size_t)O), *y0 = malloc(4 * ny), *y1 = malloc(4 * ny);
    uint16_t *wp = nx_malloc_aligned(2 * nw), *wq = nx_malloc_aligned(2 * nw);
    test_fill(&rng, x, nx, -1, 1);
    test_fill(&rng, w, nw, -1, 1);
    test_fill(&rng, b, (size_t)O, -1, 1);
    for (size_t i = 0; i < nw; i++) wp[i] = wq[i] = nx_f32_to_bf16(w[i]);
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, r, xs, x, t_be), tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be);
    nx_tensor tw = nx_view(NGPT_DTYPE_BF16, r, ws, wp, t_be), tq = nx_view(NGPT_DTYPE_BF16, r, ws, wq, t_be);
    nx_tensor ty0 = nx_view(NGPT_DTYPE_F32, r, ys, y0, t_be), ty1 = nx_view(NGPT_DTYPE_F32, r, ys, y1, t_be);
    CHECK_OK(nx_op_conv_pack(t_be, &tq, &p));
    CHECK_MSG((tq.packed != 0) == (want_packed && nx_cpu_has_amx_bf16()), "conv %lldx%lld->%lld k%lld s%d g%d cl%d: packed %d",
              (long long)H, (long long)W, (long long)O, (long long)k, stride, groups, cl, tq.packed);
    for (int bf16 = 1; bf16 >= 0; bf16--) {
        nx_cpu_set_bf16_compute(t_be, bf16);
        CHECK_OK(nx_op_conv(t_be, &ty0, &tx, &tw, &tb, &p));
        CHECK_OK(nx_op_conv(t_be, &ty1, &tx, &tq, &tb, &p));
        nx_cpu_set_bf16_compute(t_be, false);
        CHECK_MSG(memcmp(y0, y1, 4 * ny) == 0, "conv %lldx%lld C%lld->%lld k%lld cl%d bf16 %d: packed filter differs",
                  (long long)H, (long long)W, (long long)C, (long long)O, (long long)k, cl, bf16);
    }
    if (tq.packed) {
        nx_tensor tc = nx_view(NGPT_DTYPE_F32, r, ws, w, t_be);
        CHECK_ERR(nx_op_cast(t_be, &tc, &tq), NGPT_ERR_INVALID_ARGUMENT, "is packed");
        nx_tensor tl = nx_view(NGPT_DTYPE_BF16, 2, (int64_t[]){O, (int64_t)(nw / (size_t)O)}, wq, t_be);
        tl.packed = tq.packed;
        nx_tensor tly = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){1, O}, y1, t_be);
        nx_tensor tlx = nx_view(NGPT_DTYPE_F32, 2, (int64_t[]){1, tl.ne[1]}, x, t_be);
        CHECK_ERR(nx_op_linear(t_be, &tly, &tlx, &tl, NULL), NGPT_ERR_INVALID_ARGUMENT, "packed for another op");
    }
    free(x), free(w), free(b), free(y0), free(y1);
    nx_free_aligned(wp), nx_free_aligned(wq);
}

static void test_conv_packed(void)
{
    check_conv_packed(2, 64, 64, 12, 10, 3, 1, 1, true, true);
    check_conv_packed(2, 32, 64, 12, 10, 3, 1, 1, false, true);
    check_conv_packed(2, 64, 48, 12, 10, 3, 1, 1, true, false); /* its layout pads O 48 to 64: plain */
    check_conv_packed(1, 32, 64, 9, 7, 1, 1, 1, true, true);  /* 1x1 */
    check_conv_packed(2, 32, 64, 40, 0, 3, 1, 1, false, true); /* conv1d */
    check_conv_packed(1, 128, 128, 256, 256, 3, 1, 1, true, true); /* oneDNN picks another layout at 256² */
    check_conv_packed(1, 4, 8, 6, 6, 3, 1, 1, true, false);  /* its layout pads 4 channels: plain */
    check_conv_packed(2, 32, 32, 12, 10, 3, 2, 1, true, false); /* strided: not the AMX path */
    check_conv_packed(2, 32, 32, 12, 10, 3, 1, 2, true, false); /* grouped */
}

/* nx_op_group_norm_conv gives what nx_op_group_norm into a temporary then nx_op_conv give, bit
 * for bit: under F32 compute (the two ops), and under BF16 compute with a BF16 filter, plain or
 * packed (on AMX, channels last: the norm written in BF16, rounded as oneDNN's reorder rounds).
 * And the layouts of the two halves must agree. */
static void check_gn_conv(int64_t N, int64_t H, int64_t W, int64_t C, int64_t O, int groups, int64_t k, bool cl,
                          bool silu, bool packed)
{
    nx_conv_params p = nx_conv_params_default();
    p.pad[0] = p.pad[1] = (int)(k / 2);
    p.channels_last = cl;
    const int64_t xs[4] = {N, cl ? H : C, cl ? W : H, cl ? C : W}, ys[4] = {N, cl ? H : O, cl ? W : H, cl ? O : W};
    const int64_t ws[4] = {O, cl ? k : C, k, cl ? C : k};
    const size_t nx = (size_t)prod(xs, 4), nw = (size_t)prod(ws, 4), ny = (size_t)prod(ys, 4);
    float *x = malloc(4 * nx), *t = malloc(4 * nx), *w = malloc(4 * nw), *b = malloc(4 * (size_t)O);
    float *gw = malloc(4 * (size_t)C), *gb = malloc(4 * (size_t)C), *y0 = malloc(4 * ny), *y1 = malloc(4 * ny);
    uint16_t *wb = nx_malloc_aligned(2 * nw);
    test_fill(&rng, x, nx, -2, 3);
    test_fill(&rng, w, nw, -1, 1);
    test_fill(&rng, b, (size_t)O, -1, 1);
    test_fill(&rng, gw, (size_t)C, 0.5f, 1.5f);
    test_fill(&rng, gb, (size_t)C, -0.5f, 0.5f);
    for (size_t i = 0; i < nw; i++) wb[i] = nx_f32_to_bf16(w[i]);
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 4, xs, x, t_be), tt = nx_view(NGPT_DTYPE_F32, 4, xs, t, t_be);
    nx_tensor tgw = nx_view(NGPT_DTYPE_F32, 1, &C, gw, t_be), tgb = nx_view(NGPT_DTYPE_F32, 1, &C, gb, t_be);
    nx_tensor tb = nx_view(NGPT_DTYPE_F32, 1, &O, b, t_be);
    nx_tensor ty0 = nx_view(NGPT_DTYPE_F32, 4, ys, y0, t_be), ty1 = nx_view(NGPT_DTYPE_F32, 4, ys, y1, t_be);
    const unsigned gn = (silu ? NX_GN_SILU : 0) | (cl ? NX_GN_CHANNELS_LAST : 0);
    for (int bf16 = 0; bf16 < 2; bf16++) {
        nx_tensor tw = bf16 ? nx_view(NGPT_DTYPE_BF16, 4, ws, wb, t_be) : nx_view(NGPT_DTYPE_F32, 4, ws, w, t_be);
        if (bf16 && packed) CHECK_OK(nx_op_conv_pack(t_be, &tw, &p)); /* wb rewritten: last use */
        nx_cpu_set_bf16_compute(t_be, bf16);
        CHECK_OK(nx_op_group_norm(t_be, &tt, &tx, &tgw, &tgb, groups, 1e-5f, gn));
        CHECK_OK(nx_op_conv(t_be, &ty0, &tt, &tw, &tb, &p));
        CHECK_OK(nx_op_group_norm_conv(t_be, &ty1, &tx, &tgw, &tgb, groups, 1e-5f, gn, &tw, &tb, &p));
        nx_cpu_set_bf16_compute(t_be, false);
        CHECK_MSG(memcmp(y0, y1, 4 * ny) == 0,
                  "group_norm_conv %lldx%lldx%lld C%lld->%lld g%d k%lld cl%d silu%d bf16 %d packed %d: differs from the two ops",
                  (long long)N, (long long)H, (long long)W, (long long)C, (long long)O, groups, (long long)k, cl, silu, bf16,
                  packed && tw.packed);
    }
    nx_tensor tw = nx_view(NGPT_DTYPE_F32, 4, ws, w, t_be);
    CHECK_ERR(nx_op_group_norm_conv(t_be, &ty1, &tx, &tgw, &tgb, groups, 1e-5f, gn ^ NX_GN_CHANNELS_LAST, &tw, &tb, &p),
              NGPT_ERR_INVALID_ARGUMENT, "layout");
    free(x), free(t), free(w), free(b), free(gw), free(gb), free(y0), free(y1);
    nx_free_aligned(wb);
}

static void test_group_norm_conv(void)
{
    check_gn_conv(2, 9, 7, 64, 32, 32, 3, true, true, false);
    check_gn_conv(2, 9, 7, 64, 32, 32, 3, true, true, true);
    check_gn_conv(1, 16, 12, 128, 64, 32, 3, true, false, true);
    check_gn_conv(1, 5, 6, 48, 16, 16, 1, true, true, false);   /* 1x1 */
    check_gn_conv(2, 6, 5, 32, 16, 8, 3, false, true, false);   /* NCHW: the two ops on every CPU */
    check_gn_conv(1, 3, 1300, 1280, 64, 32, 3, true, true, false); /* rows wider than the norm's chunk */
}

int main(void)
{
    if (!ops_test_init(2)) {
        fprintf(stderr, "cannot create the CPU backend: %s\n", ngpt_last_error());
        return 1;
    }
    RUN(test_conv);
    RUN(test_conv_winograd);
    RUN(test_conv_wino2d);
    RUN(test_conv_wino1d);
    RUN(test_conv_direct1d);
    RUN(test_conv_fft1d);
    RUN(test_conv_epilogue);
    RUN(test_conv_channels_last);
    RUN(test_conv_transpose1d);
    RUN(test_conv_bf16);
    RUN(test_conv_bf16_channels_last);
    RUN(test_conv_packed);
    RUN(test_group_norm_conv);
    /* without AVX-512: oneDNN for every conv1d and ConvTranspose1d, the other 1-D Winograd rule */
    FOR_NARROWER_ISAS {
        RUN(test_conv_winograd);
        RUN(test_conv_wino2d);
        RUN(test_conv_wino1d);
        RUN(test_conv_direct1d);
        RUN(test_conv_fft1d);
        RUN(test_conv_epilogue);
        RUN(test_conv_transpose1d);
        RUN(test_conv_bf16);
    }
    ops_test_fini();
    return test_done();
}
