/* bench_unet3d.c — Zeroscope v2 576w's video decoder on the CPU at its full widths (UNet3D
 * block_out 320/640/1280/1280, 2 layers per block, head size 64, cross_attention_dim 1024,
 * GroupNorm 32; SD-style AutoencoderKL 128/256/512/512) with random weights, for the same-run
 * PyTorch comparison of bench/run_unet3d.sh (bench/unet3d_torch.py runs the same math on the same
 * weights and inputs):
 *   - one UNet3D CFG step: batch 2, 8 frames, 32x32 latents (256x256 pixels), encoder_hidden_states
 *     [2, 77, 1024], timestep 981; the best of `reps` forwards (no warm-up: a step is ~a minute);
 *     on CPUs with AVX512-BF16 also in BF16 compute, loaded as a BF16 decoder would be (row
 *     "ours bf16": matrices and filters BF16, channels last where the CPU has AMX);
 *   - the VAE decode frame by frame as TextToVideoSDPipeline.decode_latents does it (latents /
 *     0.18215, each [1, 4, 32, 32] frame -> [1, 3, 256, 256]): one warm-up frame, then the mean
 *     per frame over NGPT_BENCH_ZS_VAE_FRAMES (default 4) frames, best of `reps`.
 *
 * The checkpoint is a diffusers folder written once to $NGPT_ZS_DIR (default
 * /tmp/ngpt_bench_zeroscope: unet/ 5.6 GB + vae/ 0.2 GB, F32, uniform fan-in-scaled values, norm
 * weights 1) from the loader's own tensor list (nx_unet_list_tensors) and reused when present.
 * Inputs and our outputs go to $NGPT_ZS_DIR/io/ (sample.f32, ehs.f32, latents.f32, eps.ours.f32,
 * frames.ours.f32, meta.json) for the torch script's agreement check.
 *
 *   NGPT_BENCH_THREADS=2 ./bench/bench_unet3d [reps]            (or bench/run_unet3d.sh)
 *   ./bench/bench_unet3d write      only the checkpoint (for bench_decoders gen DIR zeroscope ...)
 *   NGPT_BENCH_ZS_MEM=24 ./bench/bench_unet3d                   peak-memory mode: decode 24 frames of
 *       576x320 (latents 1x4x24x40x72) frame by frame into one [1,3,24,320,576] buffer, print the
 *       backend's peak allocation and the process's peak RSS; no UNet step.
 *   NGPT_BENCH_PROFILE=1: one more UNet step with the per-op profile printed.
 *   NGPT_BENCH_CHANNELS_LAST=1: the UNet3D and VAE loaded channels last.
 *   NGPT_BENCH_ZS_CONV=1: only the level-0 temporal Conv3d and spatial 3x3 conv shapes, alone
 *       (unet3d_torch.py --conv times the same in PyTorch). */
#include "bench_util.h"
#include "bench_ckpt.h"

#include "core/alloc.h"
#include "core/weights.h"
#include "api/decoder.h"
#include "models/unet.h"
#include "models/vae.h"

#include <math.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static const char zs_unet_config[] =
    "{\"_class_name\": \"UNet3DConditionModel\", \"_diffusers_version\": \"0.17.0\", \"act_fn\": \"silu\","
    " \"attention_head_dim\": 64, \"block_out_channels\": [320, 640, 1280, 1280], \"cross_attention_dim\": 1024,"
    " \"down_block_types\": [\"CrossAttnDownBlock3D\", \"CrossAttnDownBlock3D\", \"CrossAttnDownBlock3D\","
    " \"DownBlock3D\"], \"downsample_padding\": 1, \"in_channels\": 4, \"layers_per_block\": 2,"
    " \"mid_block_scale_factor\": 1, \"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"out_channels\": 4,"
    " \"sample_size\": 32, \"up_block_types\": [\"UpBlock3D\", \"CrossAttnUpBlock3D\", \"CrossAttnUpBlock3D\","
    " \"CrossAttnUpBlock3D\"]}";

static const char zs_vae_config[] =
    "{\"_class_name\": \"AutoencoderKL\", \"_diffusers_version\": \"0.17.0\", \"act_fn\": \"silu\","
    " \"block_out_channels\": [128, 256, 512, 512], \"down_block_types\": [\"DownEncoderBlock2D\","
    " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"in_channels\": 3,"
    " \"latent_channels\": 4, \"layers_per_block\": 2, \"norm_num_groups\": 32, \"out_channels\": 3,"
    " \"sample_size\": 512, \"scaling_factor\": 0.18215, \"up_block_types\": [\"UpDecoderBlock2D\","
    " \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";

enum { CTX = 77, CROSS = 1024 };
#define SCALING 0.18215f

/* ---------------------------------------------------------------------------------------------
 * the random checkpoint */






static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    return (fclose(f) == 0) && ok;
}

static bool write_f32(const char *dir, const char *name, const float *p, size_t n)
{
    char path[600];
    snprintf(path, sizeof path, "%s/io/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return false;
    bool ok = fwrite(p, sizeof *p, n, f) == n;
    return (fclose(f) == 0) && ok;
}

static bool exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

/* Write dir/{unet,vae}/ unless both weight files exist; returns false on failure. */
static bool ensure_checkpoint(const char *dir, uint64_t *unet_params)
{
    char p[600], w[600];
    snprintf(p, sizeof p, "%s/unet", dir);
    mkdir(dir, 0755), mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/vae", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/io", dir);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/unet/config.json", dir);
    if (!write_text(p, zs_unet_config)) return false;
    snprintf(p, sizeof p, "%s/vae/config.json", dir);
    if (!write_text(p, zs_vae_config)) return false;

    bench_ckpt g = {0};
    snprintf(p, sizeof p, "%s/unet/config.json", dir);
    if (nx_unet_list_tensors(p, bench_ckpt_record, &g) != NGPT_OK) {
        fprintf(stderr, "list: %s\n", ngpt_last_error());
        return false;
    }
    *unet_params = g.params;
    double t0 = bench_now();
    snprintf(w, sizeof w, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    bool wrote = false;
    if (!exists(w)) {
        if (!bench_ckpt_write(&g, w, NGPT_DTYPE_F32)) return false;
        wrote = true;
    } else {
        bench_ckpt_clear(&g);
    }
    snprintf(w, sizeof w, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    if (!exists(w)) {
        bench_ckpt_sd_vae_decoder(&g);
        if (!bench_ckpt_write(&g, w, NGPT_DTYPE_F32)) return false;
        wrote = true;
    }
    if (wrote) printf("# random checkpoint written to %s in %.1f s\n", dir, bench_now() - t0);
    else printf("# reusing the random checkpoint in %s\n", dir);
    return true;
}

static double peak_rss_mib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_unet3d: %s: %s\n", what, ngpt_last_error());
    return 1;
}

/* Decode latents [1, 4, F, h, w] (pipeline latents) frame by frame into frames [1, 3, F, 8h, 8w]
 * (host buffers; the CPU backend's tensors are host memory). */
static ngpt_status decode_frames(nx_vae *v, nx_backend *be, float *frames, const float *lat, int F, int h, int w)
{
    int64_t li[4] = {1, 4, h, w}, lo[4] = {1, 3, 8 * h, 8 * w};
    nx_tensor x = {0}, y = {0};
    ngpt_status s = nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 4, li);
    if (s == NGPT_OK) s = nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, 4, lo);
    size_t hw = (size_t)h * (size_t)w, HW = 64 * hw;
    for (int f = 0; s == NGPT_OK && f < F; f++) {
        float *xd = x.data, *yd = y.data;
        for (int c = 0; c < 4; c++)
            for (size_t i = 0; i < hw; i++) xd[(size_t)c * hw + i] = lat[((size_t)c * (size_t)F + (size_t)f) * hw + i] / SCALING;
        s = nx_vae_decode(v, &y, &x);
        for (int c = 0; s == NGPT_OK && c < 3; c++)
            memcpy(frames + ((size_t)c * (size_t)F + (size_t)f) * HW, yd + (size_t)c * HW, HW * sizeof *yd);
    }
    nx_tensor_free(&x), nx_tensor_free(&y);
    return s;
}

static int mem_main(nx_backend *be, const char *dir, int F)
{
    enum { H = 40, W = 72 };
    char p[600];
    snprintf(p, sizeof p, "%s/vae", dir);
    double rss0 = peak_rss_mib();
    nx_vae *v = NULL;
    if (nx_vae_load(&v, be, p, false, NGPT_DTYPE_F32, bench_channels_last()) != NGPT_OK) return fail("vae load");
    size_t nl = (size_t)4 * F * H * W, nf = (size_t)3 * F * 64 * H * W;
    float *lat = malloc(nl * sizeof *lat), *frames = malloc(nf * sizeof *frames);
    if (!lat || !frames) return 1;
    for (size_t i = 0; i < nl; i++) lat[i] = urand();
    memset(frames, 0, nf * sizeof *frames);
    uint64_t base = be->mem_used;
    be->mem_peak = be->mem_used;
    double t0 = bench_now();
    if (decode_frames(v, be, frames, lat, F, H, W) != NGPT_OK) return fail("vae decode");
    double t = bench_now() - t0;
    printf("| vae decode 576x320 x %d frames, frame by frame | %.1f s (%.2f s/frame) | backend peak %.1f MiB "
           "| output buffer %.1f MiB | peak RSS %.0f MiB (%.0f MiB before the VAE load) |\n",
           F, t, t / F, (double)(be->mem_peak - base) / 1048576.0, (double)(nf * sizeof *frames) / 1048576.0,
           peak_rss_mib(), rss0);
    free(lat), free(frames);
    nx_vae_free(v);
    return 0;
}

/* NGPT_BENCH_ZS_CONV=1: the two conv shapes that dominate level 0 of the step, alone: the temporal
 * Conv3d (3,1,1) pad (1,0,0) on [2, 320, 8, 32, 32] and the spatial 3x3 on the same data as
 * [16, 320, 32, 32] (same FLOPs: 2 x 320 x 320 x 3 x 16384 vs x 9), best of 5 after a warm-up. */
static int conv_main(nx_backend *be)
{
    int64_t x5[5] = {2, 320, 8, 32, 32}, w5[5] = {320, 320, 3, 1, 1}, x4[4] = {16, 320, 32, 32}, w4[4] = {320, 320, 3, 3};
    int64_t b1[1] = {320};
    nx_tensor x = {0}, y = {0}, w = {0}, w2 = {0}, b = {0};
    if (nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 5, x5) != NGPT_OK || nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, 5, x5) != NGPT_OK ||
        nx_tensor_alloc(&w, be, NGPT_DTYPE_F32, 5, w5) != NGPT_OK || nx_tensor_alloc(&w2, be, NGPT_DTYPE_F32, 4, w4) != NGPT_OK ||
        nx_tensor_alloc(&b, be, NGPT_DTYPE_F32, 1, b1) != NGPT_OK)
        return fail("alloc");
    for (int64_t i = 0; i < nx_numel(&x); i++) ((float *)x.data)[i] = urand();
    for (int64_t i = 0; i < nx_numel(&w); i++) ((float *)w.data)[i] = 0.03f * urand();
    for (int64_t i = 0; i < nx_numel(&w2); i++) ((float *)w2.data)[i] = 0.01f * urand();
    for (int64_t i = 0; i < 320; i++) ((float *)b.data)[i] = 0.02f * urand();
    nx_conv_params p3 = nx_conv_params_default(), p2 = nx_conv_params_default();
    p3.pad[0] = 1;
    p2.pad[0] = p2.pad[1] = 1;
    nx_tensor x2 = nx_view(NGPT_DTYPE_F32, 4, x4, x.data, be), y2 = nx_view(NGPT_DTYPE_F32, 4, x4, y.data, be);
    /* the temporal conv as a 2-D (3, 1) conv over [B, C, F, h*w] (same math) */
    int64_t xt[4] = {2, 320, 8, 1024}, wt[4] = {320, 320, 3, 1};
    nx_tensor xtv = nx_view(NGPT_DTYPE_F32, 4, xt, x.data, be), ytv = nx_view(NGPT_DTYPE_F32, 4, xt, y.data, be);
    nx_tensor wtv = nx_view(NGPT_DTYPE_F32, 4, wt, w.data, be);
    nx_conv_params pt = nx_conv_params_default();
    pt.pad[0] = 1;
    for (int k = 0; k < 3; k++) {
        double best = 1e30;
        for (int r = 0; r < 6; r++) {
            double t0 = bench_now();
            ngpt_status s = k == 0 ? nx_op_conv(be, &y, &x, &w, &b, &p3)
                          : k == 1 ? nx_op_conv(be, &y2, &x2, &w2, &b, &p2) : nx_op_conv(be, &ytv, &xtv, &wtv, &b, &pt);
            if (s != NGPT_OK) return fail("conv");
            double t = bench_now() - t0;
            if (r > 0 && t < best) best = t;
        }
        double gf = 2.0 * 320 * 320 * (k == 1 ? 9 : 3) * 16384 / 1e9;
        printf("| ours | %s | %.1f ms | %.1f GFLOP/s | load %.2f |\n",
               k == 0 ? "conv3d 3x1x1 [2,320,8,32,32]" : k == 1 ? "conv2d 3x3 [16,320,32,32]" : "conv2d 3x1 [2,320,8,1024]",
               best * 1e3, gf / best, bench_load1());
    }
    nx_tensor_free(&x), nx_tensor_free(&y), nx_tensor_free(&w), nx_tensor_free(&w2), nx_tensor_free(&b);
    return 0;
}

int main(int argc, char **argv)
{
    bench_header("bench_unet3d: Zeroscope v2 576w UNet3D CFG step + VAE decode per frame (random weights), CPU");
    int reps = argc > 1 ? atoi(argv[1]) : 1;
    const char *dir = getenv("NGPT_ZS_DIR") ? getenv("NGPT_ZS_DIR") : "/tmp/ngpt_bench_zeroscope";
    int vf = getenv("NGPT_BENCH_ZS_VAE_FRAMES") ? atoi(getenv("NGPT_BENCH_ZS_VAE_FRAMES")) : 4;
    int mem_frames = getenv("NGPT_BENCH_ZS_MEM") ? atoi(getenv("NGPT_BENCH_ZS_MEM")) : 0;
    const bool write_only = argc > 1 && !strcmp(argv[1], "write");
    if ((!write_only && reps < 1) || vf < 1) {
        fprintf(stderr, "usage: bench_unet3d [reps >= 1] (NGPT_BENCH_ZS_VAE_FRAMES >= 1)\n");
        return 2;
    }
    uint64_t params = 0;
    if (!ensure_checkpoint(dir, &params)) return fail("write checkpoint");
    if (write_only) { /* the folder alone (bench_decoders gen on a GPU) */
        printf("# checkpoint ready in %s\n", dir);
        return 0;
    }

    nx_pool *pool = NULL;
    nx_backend *be = NULL;
    if (nx_pool_create(&pool, bench_threads()) != NGPT_OK || nx_cpu_backend_create(&be, pool, NULL) != NGPT_OK)
        return fail("setup");
    bench_winograd_env(be);
    printf("# threads: %d; load average %.2f\n", nx_pool_threads(pool), bench_load1());
    if (getenv("NGPT_BENCH_ZS_CONV") && atoi(getenv("NGPT_BENCH_ZS_CONV"))) {
        int r = conv_main(be);
        nx_backend_free(be);
        nx_pool_free(pool);
        return r;
    }
    if (mem_frames > 0) {
        int r = mem_main(be, dir, mem_frames);
        nx_backend_free(be);
        nx_pool_free(pool);
        return r;
    }

    /* ---- UNet3D CFG step ---- */
    enum { B = 2, NF = 8, LH = 32, LW = 32 };
    char p[600];
    snprintf(p, sizeof p, "%s/unet", dir);
    nx_unet *u = NULL;
    double t0 = bench_now();
    if (nx_unet_load(&u, be, p, NGPT_DTYPE_F32, bench_channels_last()) != NGPT_OK) return fail("unet load");
    double tl = bench_now() - t0;
    printf("# UNet3D: %.1fM parameters, F32, mmapped (load %.2f s)\n", (double)params / 1e6, tl);
    int64_t xs[5] = {B, 4, NF, LH, LW}, es[3] = {B, CTX, CROSS};
    nx_tensor x = {0}, e = {0}, y = {0};
    if (nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 5, xs) != NGPT_OK || nx_tensor_alloc(&e, be, NGPT_DTYPE_F32, 3, es) != NGPT_OK ||
        nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, 5, xs) != NGPT_OK)
        return fail("inputs");
    for (int64_t i = 0; i < nx_numel(&x); i++) ((float *)x.data)[i] = urand();
    for (int64_t i = 0; i < nx_numel(&e); i++) ((float *)e.data)[i] = urand();
    float ts[B] = {981.0f, 981.0f};
    if (!write_f32(dir, "sample.f32", x.data, (size_t)nx_numel(&x)) || !write_f32(dir, "ehs.f32", e.data, (size_t)nx_numel(&e)))
        return fail("write inputs");

    printf("\n| impl | what | load s | s (best of %d) | max rel diff vs other | peak RSS MiB | load avg |\n", reps);
    printf("|---|---|---|---|---|---|---|\n");
    uint64_t base = be->mem_used;
    be->mem_peak = be->mem_used;
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        t0 = bench_now();
        if (nx_unet_forward(u, &y, &x, ts, &e, NULL) != NGPT_OK) return fail("unet forward");
        double t = bench_now() - t0;
        if (t < best) best = t;
    }
    double unet_peak = (double)(be->mem_peak - base) / 1048576.0;
    if (getenv("NGPT_BENCH_PROFILE") && atoi(getenv("NGPT_BENCH_PROFILE"))) {  /* one more step, per op */
        nx_ops_profile_enable(true);
        if (nx_unet_forward(u, &y, &x, ts, &e, NULL) != NGPT_OK) return fail("unet forward");
        nx_ops_profile_report(stdout, "unet cfg step");
        nx_ops_profile_enable(false);
    }
    bool finite = true;
    for (int64_t i = 0; i < nx_numel(&y); i++) finite &= isfinite(((float *)y.data)[i]) != 0;
    if (!write_f32(dir, "eps.ours.f32", y.data, (size_t)nx_numel(&y))) return fail("write eps");
    printf("| ours f32 | unet cfg step | %.2f | %.3f | - | %.0f | %.2f |\n", tl, best, peak_rss_mib(), bench_load1());
    fflush(stdout);
    nx_unet_free(u);
    u = NULL;
    /* BF16, as a decoder created with compute_dtype BF16 on this CPU (matrices and filters BF16,
     * channels last with AMX), where the CPU multiplies BF16 natively */
    if (nx_cpu_has_avx512_bf16()) {
        const bool cl16 = nx_decoder_channels_last(bench_channels_last() ? NGPT_DECODER_FLAG_CHANNELS_LAST : 0, NGPT_BACKEND_CPU,
                                                   NGPT_DTYPE_BF16);
        nx_tensor y16 = {0};
        t0 = bench_now();
        if (nx_unet_load(&u, be, p, NGPT_DTYPE_BF16, cl16) != NGPT_OK) return fail("unet load (bf16)");
        const double tl16 = bench_now() - t0;
        if (nx_tensor_alloc(&y16, be, NGPT_DTYPE_F32, 5, xs) != NGPT_OK) return fail("alloc");
        double best16 = 1e30;
        nx_cpu_set_bf16_compute(be, true);
        for (int r = 0; r < reps; r++) {
            t0 = bench_now();
            if (nx_unet_forward(u, &y16, &x, ts, &e, NULL) != NGPT_OK) return fail("unet forward (bf16)");
            double t = bench_now() - t0;
            if (t < best16) best16 = t;
        }
        nx_cpu_set_bf16_compute(be, false);
        double md = 0, mx = 0;
        for (int64_t i = 0; i < nx_numel(&y); i++) {
            md = fmax(md, fabs((double)((float *)y16.data)[i] - ((float *)y.data)[i]));
            mx = fmax(mx, fabs((double)((float *)y.data)[i]));
        }
        printf("| ours bf16 | unet cfg step | %.2f | %.3f | %.2e (vs ours f32)%s | %.0f | %.2f |\n", tl16, best16,
               mx > 0 ? md / mx : md, cl16 ? ", channels last" : "", peak_rss_mib(), bench_load1());
        fflush(stdout);
        nx_tensor_free(&y16);
        nx_unet_free(u);
    }
    nx_tensor_free(&x), nx_tensor_free(&e), nx_tensor_free(&y);

    /* ---- VAE decode, frame by frame ---- */
    snprintf(p, sizeof p, "%s/vae", dir);
    nx_vae *v = NULL;
    t0 = bench_now();
    if (nx_vae_load(&v, be, p, false, NGPT_DTYPE_F32, bench_channels_last()) != NGPT_OK) return fail("vae load");
    tl = bench_now() - t0;
    size_t nl = (size_t)4 * vf * LH * LW, nfr = (size_t)3 * vf * 64 * LH * LW;
    float *lat = malloc(nl * sizeof *lat), *frames = malloc(nfr * sizeof *frames);
    if (!lat || !frames) return 1;
    for (size_t i = 0; i < nl; i++) lat[i] = urand();
    if (!write_f32(dir, "latents.f32", lat, nl)) return fail("write latents");
    if (decode_frames(v, be, frames, lat, 1, LH, LW) != NGPT_OK) return fail("vae decode");  /* warm-up: frame 0 */
    base = be->mem_used;
    be->mem_peak = be->mem_used;
    best = 1e30;
    for (int r = 0; r < reps; r++) {
        t0 = bench_now();
        if (decode_frames(v, be, frames, lat, vf, LH, LW) != NGPT_OK) return fail("vae decode");
        double t = bench_now() - t0;
        if (t < best) best = t;
    }
    double vae_peak = (double)(be->mem_peak - base) / 1048576.0;
    for (size_t i = 0; i < nfr; i++) finite &= isfinite(frames[i]) != 0;
    if (!write_f32(dir, "frames.ours.f32", frames, nfr)) return fail("write frames");
    printf("| ours f32 | vae decode / frame | %.2f | %.3f | - | %.0f | %.2f |\n", tl, best / vf, peak_rss_mib(),
           bench_load1());
    printf("\n# backend peak activation memory: unet cfg step (2x8 frames, 32x32) %.1f MiB; vae decode (one frame "
           "256x256 at a time) %.1f MiB; outputs finite: %s\n", unet_peak, vae_peak, finite ? "yes" : "NO");
    snprintf(p, sizeof p, "%s/io/meta.json", dir);
    char meta[300];
    snprintf(meta, sizeof meta, "{\"batch\": %d, \"frames\": %d, \"h\": %d, \"w\": %d, \"ctx\": %d, \"cross_dim\": %d, "
             "\"vae_frames\": %d, \"timestep\": 981}\n", B, NF, LH, LW, CTX, CROSS, vf);
    if (!write_text(p, meta)) return fail("write meta");
    free(lat), free(frames);
    nx_vae_free(v);
    nx_backend_free(be);
    nx_pool_free(pool);
    return finite ? 0 : 1;
}
