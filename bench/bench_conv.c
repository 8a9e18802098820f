/* bench_conv.c — CPU convolution: the op layer (oneDNN on the plain PyTorch layouts ncw/nchw,
 * F16 weights converted per call) against oneDNN called directly in the same run (a) on the same
 * plain layouts and (b) with blocked layouts (nChw16c...) and no reorders: the ceiling for a
 * network whose activations and weights stay blocked end to end. (Letting oneDNN pick blocked
 * layouts inside the op with per-call reorders of x, w and y was tried and measured slower than
 * plain on most of these shapes: the reorders, weights especially, eat the gain.)
 * Shapes: SD UNet / VAE 3x3 convs and a HiFi-GAN dilated conv1d. */
#include "bench_util.h"

#include "core/alloc.h"
#include "core/dtype.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

static nx_pool *pool;
static nx_backend *be;

static double direct(int nd, const int64_t *xs, const int64_t *ws, const int64_t *ys, int pad, int dil, int any)
{
    dnnl_engine_t e;
    dnnl_stream_t s;
    dnnl_engine_create(&e, dnnl_cpu, 0);
    dnnl_stream_create(&s, e, dnnl_stream_default_flags);
    dnnl_format_tag_t tp = nd == 3 ? dnnl_ncw : dnnl_nchw, tw = nd == 3 ? dnnl_oiw : dnnl_oihw;
    dnnl_dims_t a, b, c, st = {1, 1}, dl = {dil - 1, dil - 1}, pd = {pad, pad};
    for (int i = 0; i < nd; i++) a[i] = xs[i], b[i] = ws[i], c[i] = ys[i];
    dnnl_memory_desc_t ms, mw, md;
    dnnl_memory_desc_init_by_tag(&ms, nd, a, dnnl_f32, any ? dnnl_format_tag_any : tp);
    dnnl_memory_desc_init_by_tag(&mw, nd, b, dnnl_f32, any ? dnnl_format_tag_any : tw);
    dnnl_memory_desc_init_by_tag(&md, nd, c, dnnl_f32, any ? dnnl_format_tag_any : tp);
    dnnl_convolution_desc_t cd;
    dnnl_dilated_convolution_forward_desc_init(&cd, dnnl_forward_inference, dnnl_convolution_direct, &ms, &mw, NULL, &md,
                                               st, dl, pd, pd);
    dnnl_primitive_desc_t pdsc;
    if (dnnl_primitive_desc_create(&pdsc, &cd, NULL, e, NULL) != dnnl_success) return -1;
    dnnl_primitive_t p;
    dnnl_primitive_create(&p, pdsc);
    dnnl_memory_t m[3];
    const dnnl_query_t q[3] = {dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
    for (int i = 0; i < 3; i++)
        dnnl_memory_create(&m[i], dnnl_primitive_desc_query_md(pdsc, q[i], 0), e, DNNL_MEMORY_ALLOCATE);
    dnnl_primitive_desc_destroy(pdsc);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, m[0]}, {DNNL_ARG_WEIGHTS, m[1]}, {DNNL_ARG_DST, m[2]}};
    omp_set_num_threads(nx_pool_threads(pool));
    double best = 1e30;
    for (int r = 0; r < 4; r++) {
        double t0 = bench_now();
        dnnl_primitive_execute(p, s, 3, args);
        dnnl_stream_wait(s);
        double t = bench_now() - t0;
        if (r && t < best) best = t;
    }
    for (int i = 0; i < 3; i++) dnnl_memory_destroy(m[i]);
    dnnl_primitive_destroy(p);
    dnnl_stream_destroy(s);
    dnnl_engine_destroy(e);
    return best;
}

/* The op with the Winograd mode OFF (t[0], direct) and, when n_modes is 2, ALWAYS (t[1]): best of
 * 3 after a warm-up run. 0 when the conv fails (printed). */
static int time_modes(nx_tensor *ty, const nx_tensor *tx, const nx_tensor *tw, const nx_conv_params *p, int n_modes,
                      double *t)
{
    /* mode 0: oneDNN direct; 1: Winograd forced (its GEMMs through oneDNN); 2: the direct conv1d
     * forced (conv1d_direct.c); 3: Winograd forced with the own GEMM (conv1d); 4: the DFT conv1d
     * forced (fftconv1d.c) */
    for (int m = 0; m < n_modes; m++) {
        nx_cpu_set_conv_winograd(be, m == 1 || m == 3 ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
        nx_cpu_set_conv_direct1d(be, m >= 2 ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
        nx_cpu_set_conv_fft1d(be, m == 4 ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
        for (int r = 0; r < 4; r++) {
            double t0 = bench_now();
            if (nx_cpu_conv(be, ty, tx, tw, NULL, p) != NGPT_OK) {
                printf("conv failed: %s\n", ngpt_last_error());
                nx_cpu_set_conv_winograd(be, NX_CONV_WINOGRAD_AUTO);
                nx_cpu_set_conv_direct1d(be, NX_CONV_WINOGRAD_AUTO);
                nx_cpu_set_conv_fft1d(be, NX_CONV_WINOGRAD_AUTO);
                return 0;
            }
            double dt = bench_now() - t0;
            if (r && dt < t[m]) t[m] = dt;
        }
    }
    nx_cpu_set_conv_winograd(be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_direct1d(be, NX_CONV_WINOGRAD_AUTO);
    nx_cpu_set_conv_fft1d(be, NX_CONV_WINOGRAD_AUTO);
    return 1;
}


static void run(const char *name, int nd, const int64_t *xs, const int64_t *ws, int pad, int dil, ngpt_dtype wdt)
{
    int64_t ys[4] = {xs[0], ws[0]};
    int64_t nx = xs[0] * xs[1], nw = ws[0] * ws[1], ny = ys[0] * ys[1], flops_k = ws[1];
    for (int i = 2; i < nd; i++) {
        ys[i] = xs[i] + 2 * pad - dil * (ws[i] - 1);
        nx *= xs[i], nw *= ws[i], ny *= ys[i], flops_k *= ws[i];
    }
    float *x = nx_malloc_aligned((size_t)nx * 4), *w = nx_malloc_aligned((size_t)nw * 4), *y = nx_malloc_aligned((size_t)ny * 4);
    for (int64_t i = 0; i < nx; i++) x[i] = (float)(i % 97) * 0.01f;
    for (int64_t i = 0; i < nw; i++) w[i] = (float)(i % 89) * 0.001f;
    void *wd = w;
    if (wdt != NGPT_DTYPE_F32) {
        wd = nx_malloc_aligned((size_t)nw * 2);
        nx_f32_to_f16_n(w, wd, (size_t)nw);
    }
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    for (int i = 0; i < 3; i++) p.stride[i] = 1, p.pad[i] = pad, p.dilation[i] = dil;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, nd, xs, x, be), tw = nx_view(wdt, nd, ws, wd, be);
    nx_tensor ty = nx_view(NGPT_DTYPE_F32, nd, ys, y, be);
    /* the op with Winograd off (direct), then forced (3x3 only; reorders and transform included) */
    double t_mode[2] = {1e30, 1e30};
    const int wino = nd == 4 && ws[2] == 3 && ws[3] == 3 && pad == 1 && dil == 1;
    if (!time_modes(&ty, &tx, &tw, &p, 1 + wino, t_mode)) return;
    const double t_op = t_mode[0];
    double t_plain = direct(nd, xs, ws, ys, pad, dil, 0), t_blk = direct(nd, xs, ws, ys, pad, dil, 1);
    double gf = 2.0 * (double)ny * flops_k * 1e-9;
    char wcol[64] = "-";
    if (wino) snprintf(wcol, sizeof wcol, "%.2f | %.2fx", t_mode[1] * 1e3, t_op / t_mode[1]);
    else snprintf(wcol, sizeof wcol, "- | -");
    printf("| %s | %s | %.2f | %.1f | %.1f | %.2f | %.1f | %.2f | %s |\n", name, nx_dtype_name(wdt), t_op * 1e3,
           gf / t_op, gf / t_plain, t_plain / t_op, gf / t_blk, t_blk / t_op, wcol);
    fflush(stdout);
    if (wd != w) nx_free_aligned(wd);
    nx_free_aligned(x), nx_free_aligned(w), nx_free_aligned(y);
}

/* A conv along one axis — conv1d [N, C, L], or (k, 1) over [N, C, L, P] with pad (pad, 0) —
 * through oneDNN direct, wino1d.c's F(4, 3) and (conv1d only) conv1d_direct.c: ms and GFLOP/s of
 * the direct work. */
static void run1d(const char *name, int64_t N, int64_t C, int64_t L, int64_t P, int64_t k, int dil)
{
    const int pad = dil * (int)(k - 1) / 2, nd = P ? 4 : 3;
    int64_t xs[4] = {N, C, L, P}, ws[4] = {C, C, k, 1}, ys[4] = {N, C, L, P};
    const int64_t nx = N * C * L * (P ? P : 1), nw = C * C * k;
    float *x = nx_malloc_aligned((size_t)nx * 4), *w = nx_malloc_aligned((size_t)nw * 4), *y = nx_malloc_aligned((size_t)nx * 4);
    for (int64_t i = 0; i < nx; i++) x[i] = (float)(i % 97) * 0.01f;
    for (int64_t i = 0; i < nw; i++) w[i] = (float)(i % 89) * 0.001f;
    nx_conv_params p;
    memset(&p, 0, sizeof p);
    p.groups = 1;
    p.stride[0] = p.stride[1] = 1;
    p.dilation[0] = dil;
    p.dilation[1] = 1;
    p.pad[0] = pad;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, nd, xs, x, be), tw = nx_view(NGPT_DTYPE_F32, nd, ws, w, be);
    nx_tensor ty = nx_view(NGPT_DTYPE_F32, nd, ys, y, be);
    double t[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
    if (!time_modes(&ty, &tx, &tw, &p, P ? 2 : 5, t)) return;
    const double gf = 2.0 * (double)N * C * C * k * L * (P ? P : 1) * 1e-9;
    char dcol[64] = "- | - | -", ocol[64] = "- | - | -", fcol[64] = "- | - | -";
    if (!P) snprintf(dcol, sizeof dcol, "%.2f | %.1f | %.2fx", t[2] * 1e3, gf / t[2], t[0] / t[2]);
    if (!P) snprintf(ocol, sizeof ocol, "%.2f | %.1f | %.2fx", t[3] * 1e3, gf / t[3], t[0] / t[3]);
    if (!P) snprintf(fcol, sizeof fcol, "%.2f | %.1f | %.2fx", t[4] * 1e3, gf / t[4], t[0] / t[4]);
    printf("| %s | %.2f | %.1f | %.2f | %.1f | %.2fx | %s | %s | %s |\n", name, t[0] * 1e3, gf / t[0], t[1] * 1e3,
           gf / t[1], t[0] / t[1], dcol, ocol, fcol);
    fflush(stdout);
    nx_free_aligned(x), nx_free_aligned(w), nx_free_aligned(y);
}

/* ConvTranspose1d [1, C, L] -> [1, C / 2, (L - 1) s - 2 pad + k] (HiFi-GAN's upsamplers) through
 * oneDNN's deconvolution and through the direct conv1d per output phase: ms, GFLOP/s, ratio. */
static void run1dt(const char *name, int64_t C, int64_t L, int64_t k, int s)
{
    const int64_t O = C / 2, pad = (k - s) / 2, Lo = (L - 1) * s - 2 * pad + k;
    const int64_t xs[3] = {1, C, L}, ws[3] = {C, O, k}, ys[3] = {1, O, Lo};
    float *x = nx_malloc_aligned((size_t)(C * L) * 4), *w = nx_malloc_aligned((size_t)(C * O * k) * 4);
    float *y = nx_malloc_aligned((size_t)(O * Lo) * 4);
    for (int64_t i = 0; i < C * L; i++) x[i] = (float)(i % 97) * 0.01f;
    for (int64_t i = 0; i < C * O * k; i++) w[i] = (float)(i % 89) * 0.001f;
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 3, xs, x, be), tw = nx_view(NGPT_DTYPE_F32, 3, ws, w, be);
    nx_tensor ty = nx_view(NGPT_DTYPE_F32, 3, ys, y, be);
    double t[2] = {1e30, 1e30};
    for (int m = 0; m < 2; m++) {
        nx_cpu_set_conv_direct1d(be, m ? NX_CONV_WINOGRAD_ALWAYS : NX_CONV_WINOGRAD_OFF);
        for (int r = 0; r < 4; r++) {
            const double t0 = bench_now();
            if (nx_cpu_conv_transpose1d(be, &ty, &tx, &tw, NULL, s, (int)pad, 0, 1, 1) != NGPT_OK) {
                printf("conv_transpose1d failed: %s\n", ngpt_last_error());
                break;
            }
            const double dt = bench_now() - t0;
            if (r && dt < t[m]) t[m] = dt;
        }
    }
    nx_cpu_set_conv_direct1d(be, NX_CONV_WINOGRAD_AUTO);
    const double gf = 2.0 * (double)C * O * k * L * 1e-9;
    printf("| %s | %.2f | %.1f | - | - | - | %.2f | %.1f | %.2fx |\n", name, t[0] * 1e3, gf / t[0], t[1] * 1e3, gf / t[1],
           t[0] / t[1]);
    fflush(stdout);
    nx_free_aligned(x), nx_free_aligned(w), nx_free_aligned(y);
}

int main(void)
{
    bench_header("bench_conv: op-layer conv vs oneDNN direct (plain layouts / blocked, no reorders)");
    if (nx_pool_create(&pool, bench_threads()) != NGPT_OK || nx_cpu_backend_create(&be, pool, NULL) != NGPT_OK) {
        fprintf(stderr, "setup failed: %s\n", ngpt_last_error());
        return 1;
    }
    printf("# threads: %d\n\n", nx_pool_threads(pool));
    /* NGPT_BENCH_CONV=1d: only the conv-along-one-axis table (the HiFi-GAN and UNet3D rows);
     * =2d: only the first table */
    const char *only = getenv("NGPT_BENCH_CONV");
    if (!only || strcmp(only, "1d")) {
        printf("| shape | W | op ms | op GFLOP/s | oneDNN plain GFLOP/s | op / plain | oneDNN blocked GFLOP/s | op / blocked "
               "| op Winograd ms | direct / Winograd |\n"
               "|---|---|---|---|---|---|---|---|---|---|\n");
        run("UNet 2x320x64x64, 3x3", 4, (int64_t[]){2, 320, 64, 64}, (int64_t[]){320, 320, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("UNet 2x320x64x64, 3x3", 4, (int64_t[]){2, 320, 64, 64}, (int64_t[]){320, 320, 3, 3}, 1, 1, NGPT_DTYPE_F16);
        run("UNet 2x640x32x32, 3x3", 4, (int64_t[]){2, 640, 32, 32}, (int64_t[]){640, 640, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("UNet 2x1280x16x16, 3x3", 4, (int64_t[]){2, 1280, 16, 16}, (int64_t[]){1280, 1280, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("UNet 2x1280x8x8, 3x3", 4, (int64_t[]){2, 1280, 8, 8}, (int64_t[]){1280, 1280, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("UNet3D 16x320x32x32, 3x3", 4, (int64_t[]){16, 320, 32, 32}, (int64_t[]){320, 320, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("UNet3D 16x640x16x16, 3x3", 4, (int64_t[]){16, 640, 16, 16}, (int64_t[]){640, 640, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("VAE 1x512x64x64, 3x3", 4, (int64_t[]){1, 512, 64, 64}, (int64_t[]){512, 512, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("VAE 1x512x128x128, 3x3", 4, (int64_t[]){1, 512, 128, 128}, (int64_t[]){512, 512, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("VAE 1x256x256x256, 3x3", 4, (int64_t[]){1, 256, 256, 256}, (int64_t[]){256, 256, 3, 3}, 1, 1, NGPT_DTYPE_F32);
        run("UNet 2x640x32x32, 1x1", 4, (int64_t[]){2, 640, 32, 32}, (int64_t[]){640, 640, 1, 1}, 0, 1, NGPT_DTYPE_F32);
        if (bench_full())
            run("VAE 1x128x512x512, 3x3", 4, (int64_t[]){1, 128, 512, 512}, (int64_t[]){128, 128, 3, 3}, 1, 1,
                NGPT_DTYPE_F32);
        run("HiFi-GAN 1x256x8192, k3 d3", 3, (int64_t[]){1, 256, 8192}, (int64_t[]){256, 256, 3}, 3, 3, NGPT_DTYPE_F32);
    }
    if (only && !strcmp(only, "2d")) {
        nx_backend_free(be);
        nx_pool_free(pool);
        return 0;
    }
    printf("\n| conv along one axis | oneDNN direct ms | GFLOP/s | 1-D Winograd ms | GFLOP/s (direct work) | oneDNN / "
           "Winograd | own direct ms | GFLOP/s | oneDNN / own direct | Winograd, own GEMM ms | GFLOP/s | oneDNN / it "
           "| DFT ms | GFLOP/s | oneDNN / DFT |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    const int64_t vc[5] = {512, 256, 128, 64, 32}, vl[5] = {2500, 10000, 20000, 40000, 80000}, vk[3] = {3, 7, 11};
    for (int st = 0; st < 5; st++)
        for (int kk = 0; kk < 3; kk++) {
            char nm[96];
            snprintf(nm, sizeof nm, "HiFi-GAN 1x%lldx%lld, k%lld d3", (long long)vc[st], (long long)vl[st], (long long)vk[kk]);
            run1d(nm, 1, vc[st], vl[st], 0, vk[kk], 3);
        }
    run1d("HiFi-GAN 1x512x2500, k3 d1", 1, 512, 2500, 0, 3, 1);
    run1dt("HiFi-GAN upsampler 1x1024x500, k16 s5", 1024, 500, 16, 5);
    run1dt("HiFi-GAN upsampler 1x512x2501, k16 s4", 512, 2501, 16, 4);
    run1dt("HiFi-GAN upsampler 1x256x10004, k8 s2", 256, 10004, 8, 2);
    run1dt("HiFi-GAN upsampler 1x128x20008, k4 s2", 128, 20008, 4, 2);
    run1dt("HiFi-GAN upsampler 1x64x40016, k4 s2", 64, 40016, 4, 2);
    run1d("UNet3D temporal 2x320x8x1024, (3,1)", 2, 320, 8, 1024, 3, 1);
    run1d("UNet3D temporal 2x640x8x256, (3,1)", 2, 640, 8, 256, 3, 1);
    run1d("UNet3D temporal 2x1280x8x64, (3,1)", 2, 1280, 8, 64, 3, 1);
    run1d("UNet3D temporal 2x1280x8x16, (3,1)", 2, 1280, 8, 16, 3, 1);
    nx_backend_free(be);
    nx_pool_free(pool);
    return 0;
}
