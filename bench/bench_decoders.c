/* bench_decoders.c — the diffusion decoders at full size on the CPU, for the same-run PyTorch
 * comparison of bench/run_decoders.sh (PyTorch side: bench/unet_torch.py on the same weights and
 * inputs).
 *
 *   bench_decoders write DIR sd|audioldm
 *       writes a diffusers-layout folder with random F32 weights in the upstream tensor names
 *       (once: existing weight files are kept): Stable Diffusion 1.5's unet/ (config as
 *       bench_unet) and vae/ (decoder tensors), or AudioLDM-l-full's unet/ (block_out 256, 512,
 *       768, 1280, 2 layers, 8 heads, class_embed_type simple_projection 512 -> 1024 concatenated
 *       with the time embedding, no cross-attention input), mel vae/ (128, 256, 512; 8 latent
 *       channels) and the SpeechT5HifiGan vocoder/ (upsample_initial_channel 1024). The UNet's
 *       tensor list is nx_unet_list_tensors', i.e. exactly what the loader asks for.
 *
 *   bench_decoders run DIR sd|audioldm unet|vae|vocoder SIZE REPS
 *       SIZE: pixels for sd (256, 512), seconds of audio for audioldm (5). Makes seeded inputs
 *       (UNet: CFG batch 2, timestep 981, SD: encoder_hidden_states [2, 77, 768], AudioLDM:
 *       class_labels [2, 512]; VAE: 1 latent; vocoder: the mel of SIZE seconds), writes them to
 *       DIR/io/TAG.inputs.safetensors (+ TAG.json naming the component), runs libnextgpt's forward
 *       REPS times per compute mode (UNet and VAE: f32, and bf16 = loaded with BF16 matrices and
 *       filters and run under nx_cpu_set_bf16_compute, as a decoder created with compute_dtype
 *       BF16 on the CPU: linears and convolutions take BF16 inputs on AVX-512; the vocoder's
 *       bf16 row as a BF16 decoder runs it on an AMX CPU: BF16 filters, channels last),
 *       prints the best time, and writes the f32 output to
 *       DIR/io/TAG.ours.f32.safetensors for unet_torch.py to compare against.
 *       NGPT_BENCH_PROFILE=1: one more forward per mode with the per-op profile printed.
 *       NGPT_BENCH_CHANNELS_LAST=1: the UNet and VAE loaded channels last.
 *       NGPT_BENCH_AMX=0: on an AMX CPU, the bf16 rows as on one without (nx_cpu_set_amx: the
 *       AVX512-BF16 paths, NCHW): before/after for the tile unit's paths.
 *       NGPT_BENCH_BF16_ONLY=1: the bf16 row alone (for a profiler; nothing to compare it with).
 */
#include "bench_util.h"
#include "ops/ops.h"
#include "bench_ckpt.h"

#include "core/alloc.h"
#include "core/dtype.h"
#include "core/weights.h"
#include "api/decoder.h"
#include "models/hifigan.h"
#include "models/unet.h"
#include "models/vae.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const char sd15_vae[] =
    "{\"_class_name\": \"AutoencoderKL\", \"_diffusers_version\": \"0.17.0\", \"act_fn\": \"silu\","
    " \"block_out_channels\": [128, 256, 512, 512], \"down_block_types\": [\"DownEncoderBlock2D\","
    " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"in_channels\": 3,"
    " \"latent_channels\": 4, \"layers_per_block\": 2, \"norm_num_groups\": 32, \"out_channels\": 3,"
    " \"sample_size\": 512, \"scaling_factor\": 0.18215, \"up_block_types\": [\"UpDecoderBlock2D\","
    " \"UpDecoderBlock2D\", \"UpDecoderBlock2D\", \"UpDecoderBlock2D\"]}";
/* AudioLDM-l-full as diffusers' convert_original_audioldm_to_diffusers.py writes it (model_channels
 * 256, channel_mult 1, 2, 3, 5; the cvssp/audioldm-m-full config of the same converter has
 * 192, 384, 576, 960 and attention_head_dim 8). */
static const char ldm_unet[] =
    "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.17.0\", \"act_fn\": \"silu\","
    " \"attention_head_dim\": 8, \"block_out_channels\": [256, 512, 768, 1280], \"center_input_sample\": false,"
    " \"class_embed_type\": \"simple_projection\", \"class_embeddings_concat\": true,"
    " \"cross_attention_dim\": [256, 512, 768, 1280], \"down_block_types\": [\"DownBlock2D\","
    " \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\"], \"downsample_padding\": 1,"
    " \"flip_sin_to_cos\": true, \"freq_shift\": 0, \"in_channels\": 8, \"layers_per_block\": 2,"
    " \"mid_block_scale_factor\": 1, \"mid_block_type\": \"UNetMidBlock2DCrossAttn\", \"norm_eps\": 1e-05,"
    " \"norm_num_groups\": 32, \"out_channels\": 8, \"projection_class_embeddings_input_dim\": 512,"
    " \"sample_size\": 128, \"up_block_types\": [\"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\","
    " \"CrossAttnUpBlock2D\", \"UpBlock2D\"], \"use_linear_projection\": false}";
static const char ldm_vae[] =
    "{\"_class_name\": \"AutoencoderKL\", \"_diffusers_version\": \"0.17.0\", \"act_fn\": \"silu\","
    " \"block_out_channels\": [128, 256, 512], \"down_block_types\": [\"DownEncoderBlock2D\","
    " \"DownEncoderBlock2D\", \"DownEncoderBlock2D\"], \"in_channels\": 1, \"latent_channels\": 8,"
    " \"layers_per_block\": 2, \"norm_num_groups\": 32, \"out_channels\": 1, \"sample_size\": 512,"
    " \"scaling_factor\": 0.9654927849769592, \"up_block_types\": [\"UpDecoderBlock2D\", \"UpDecoderBlock2D\","
    " \"UpDecoderBlock2D\"]}";
static const char ldm_vocoder[] =
    "{\"architectures\": [\"SpeechT5HifiGan\"], \"model_type\": \"hifigan\", \"leaky_relu_slope\": 0.1,"
    " \"model_in_dim\": 64, \"normalize_before\": false, \"resblock_dilation_sizes\": [[1, 3, 5], [1, 3, 5],"
    " [1, 3, 5]], \"resblock_kernel_sizes\": [3, 7, 11], \"sampling_rate\": 16000,"
    " \"upsample_initial_channel\": 1024, \"upsample_kernel_sizes\": [16, 16, 8, 4, 4],"
    " \"upsample_rates\": [5, 4, 2, 2, 2], \"torch_dtype\": \"float32\"}";





/* SpeechT5HifiGan tensors for AudioLDM's vocoder config. */
static void vocoder_tensors(bench_ckpt *g)
{
    static const int up_k[5] = {16, 16, 8, 4, 4}, rb_k[3] = {3, 7, 11};
    const int64_t C = 1024, M = 64;
    char n[200];
    bench_ckpt_add(g, "mean", 1, M, 0, 0, 0);
    bench_ckpt_add(g, "scale", 1, M, 0, 0, 0);
    bench_ckpt_add(g, "conv_pre.weight", 3, C, M, 7, 0);
    bench_ckpt_add(g, "conv_pre.bias", 1, C, 0, 0, 0);
    for (int i = 0; i < 5; i++) {
        snprintf(n, sizeof n, "upsampler.%d.weight", i);
        bench_ckpt_add(g, n, 3, C >> i, C >> (i + 1), up_k[i], 0);
        snprintf(n, sizeof n, "upsampler.%d.bias", i);
        bench_ckpt_add(g, n, 1, C >> (i + 1), 0, 0, 0);
    }
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 3; j++)
            for (int c = 1; c <= 2; c++)
                for (int m = 0; m < 3; m++) {
                    int64_t ch = C >> (i + 1);
                    snprintf(n, sizeof n, "resblocks.%d.convs%d.%d.weight", 3 * i + j, c, m);
                    bench_ckpt_add(g, n, 3, ch, ch, rb_k[j], 0);
                    snprintf(n, sizeof n, "resblocks.%d.convs%d.%d.bias", 3 * i + j, c, m);
                    bench_ckpt_add(g, n, 1, ch, 0, 0, 0);
                }
    bench_ckpt_add(g, "conv_post.weight", 3, 1, C >> 5, 7, 0);
    bench_ckpt_add(g, "conv_post.bias", 1, 1, 0, 0, 0);
}

static bool write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) return false;
    bool ok = fputs(text, f) >= 0;
    return (fclose(f) == 0) && ok;
}

static bool exists(const char *p)
{
    struct stat s;
    return stat(p, &s) == 0;
}

static int cmd_write(const char *dir, bool ldm)
{
    char p[600];
    mkdir(dir, 0755);
    const char *subs[3] = {"unet", "vae", "vocoder"};
    for (int s = 0; s < (ldm ? 3 : 2); s++) {
        snprintf(p, sizeof p, "%s/%s", dir, subs[s]);
        mkdir(p, 0755);
    }
    double t0 = bench_now();
    bench_ckpt g = {0};
    /* unet */
    snprintf(p, sizeof p, "%s/unet/config.json", dir);
    if (!write_text(p, ldm ? ldm_unet : bench_sd15_unet_config)) return fprintf(stderr, "cannot write %s\n", p), 1;
    snprintf(p, sizeof p, "%s/unet/diffusion_pytorch_model.safetensors", dir);
    if (!exists(p)) {
        char cfg[600];
        snprintf(cfg, sizeof cfg, "%s/unet/config.json", dir);
        if (nx_unet_list_tensors(cfg, bench_ckpt_record, &g) != NGPT_OK) return fprintf(stderr, "list: %s\n", ngpt_last_error()), 1;
        printf("# unet: %zu tensors, %.1fM parameters\n", g.n, (double)g.params / 1e6);
        if (!bench_ckpt_write(&g, p, NGPT_DTYPE_F32)) return fprintf(stderr, "write %s: %s\n", p, ngpt_last_error()), 1;
    }
    /* vae */
    snprintf(p, sizeof p, "%s/vae/config.json", dir);
    if (!write_text(p, ldm ? ldm_vae : sd15_vae)) return fprintf(stderr, "cannot write %s\n", p), 1;
    snprintf(p, sizeof p, "%s/vae/diffusion_pytorch_model.safetensors", dir);
    if (!exists(p)) {
        static const int64_t sd_ch[4] = {128, 256, 512, 512}, ldm_ch[3] = {128, 256, 512};
        if (ldm) bench_ckpt_vae_decoder(&g, ldm_ch, 3, 2, 8, 1);
        else bench_ckpt_vae_decoder(&g, sd_ch, 4, 2, 4, 3);
        printf("# vae decoder: %zu tensors, %.1fM parameters\n", g.n, (double)g.params / 1e6);
        if (!bench_ckpt_write(&g, p, NGPT_DTYPE_F32)) return fprintf(stderr, "write %s: %s\n", p, ngpt_last_error()), 1;
    }
    if (ldm) {
        snprintf(p, sizeof p, "%s/vocoder/config.json", dir);
        if (!write_text(p, ldm_vocoder)) return fprintf(stderr, "cannot write %s\n", p), 1;
        snprintf(p, sizeof p, "%s/vocoder/model.safetensors", dir);
        if (!exists(p)) {
            vocoder_tensors(&g);
            printf("# vocoder: %zu tensors, %.1fM parameters\n", g.n, (double)g.params / 1e6);
            if (!bench_ckpt_write(&g, p, NGPT_DTYPE_F32)) return fprintf(stderr, "write %s: %s\n", p, ngpt_last_error()), 1;
        }
    }
    printf("# %s: random F32 checkpoint ready in %s (%.1f s)\n", ldm ? "AudioLDM-l-full" : "SD 1.5", dir,
           bench_now() - t0);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */

typedef struct io {
    const char *name;
    int rank;
    int64_t shape[4];
    float *data;
} io;

static void io_fill(io *t, float lo, float hi)
{
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    t->data = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++) t->data[i] = lo + (hi - lo) * 0.5f * (urand() + 1.0f);
}

static bool write_ios(const char *path, const io *t, int n)
{
    nx_st_entry e[4];
    for (int i = 0; i < n; i++) e[i] = (nx_st_entry){t[i].name, NGPT_DTYPE_F32, t[i].rank, t[i].shape, t[i].data};
    return nx_safetensors_write(path, e, (size_t)n, NULL, 0) == NGPT_OK;
}

static int fail(const char *what)
{
    fprintf(stderr, "bench_decoders: %s: %s\n", what, ngpt_last_error());
    return 1;
}

static int cmd_run(const char *dir, bool ldm, const char *comp, int size, int reps)
{
    char p[700], tag[100];
    snprintf(tag, sizeof tag, "%s_%s_%d%s", ldm ? "audioldm" : "sd", comp, size, ldm ? "s" : "px");
    snprintf(p, sizeof p, "%s/io", dir);
    mkdir(p, 0755);
    nx_pool *pool = NULL;
    nx_backend *be = NULL;
    if (nx_pool_create(&pool, bench_threads()) != NGPT_OK || nx_cpu_backend_create(&be, pool, NULL) != NGPT_OK)
        return fail("setup");
    bench_winograd_env(be);
    /* AudioLDM: mel height = int(s / 0.01) rounded up to a multiple of 4, latent height / 4 */
    int mel_t = ldm ? ((size * 100 + 3) / 4) * 4 : 0, lat_h = ldm ? mel_t / 4 : size / 8;
    int lat_w = ldm ? 16 : size / 8;
    io in[3] = {{0}};
    int nin = 0;
    int64_t oshape[4] = {0};
    int orank = 4;
    bool unet = !strcmp(comp, "unet"), vae = !strcmp(comp, "vae"), voc = !strcmp(comp, "vocoder");
    if (!(unet || vae || (voc && ldm))) {
        fprintf(stderr, "bench_decoders: unknown component %s\n", comp);
        return 2;
    }
    bench_rng = 0x9e3779b97f4a7c15ull;
    if (unet) {
        int C = ldm ? 8 : 4;
        in[0] = (io){"sample", 4, {2, C, lat_h, lat_w}, NULL};
        io_fill(&in[0], -1, 1);
        in[1] = (io){"timestep", 1, {2}, NULL};
        io_fill(&in[1], 981, 981);
        if (ldm) in[2] = (io){"class_labels", 2, {2, 512}, NULL};
        else in[2] = (io){"encoder_hidden_states", 3, {2, 77, 768}, NULL};
        io_fill(&in[2], -1, 1);
        nin = 3;
        memcpy(oshape, in[0].shape, sizeof oshape);
    } else if (vae) {
        in[0] = (io){"latents", 4, {1, ldm ? 8 : 4, lat_h, lat_w}, NULL};
        io_fill(&in[0], -1, 1);
        nin = 1;
        int64_t os[4] = {1, ldm ? 1 : 3, 8 * lat_h, 8 * lat_w};
        if (ldm) os[2] = 4 * lat_h, os[3] = 4 * lat_w;
        memcpy(oshape, os, sizeof os);
    } else {
        in[0] = (io){"mel", 3, {1, mel_t, 64}, NULL};
        io_fill(&in[0], -9, -1);
        nin = 1;
    }
    snprintf(p, sizeof p, "%s/io/%s.inputs.safetensors", dir, tag);
    if (!write_ios(p, in, nin)) return fail("write inputs");
    snprintf(p, sizeof p, "%s/io/%s.json", dir, tag);
    char meta[200];
    snprintf(meta, sizeof meta, "{\"component\": \"%s\", \"model\": \"%s\"}\n", comp, comp);
    if (!write_text(p, meta)) return fail("write meta");

    nx_unet *u = NULL;
    nx_vae *v = NULL;
    nx_hifigan *h = NULL;
    double t0 = bench_now();
    snprintf(p, sizeof p, "%s/%s", dir, comp);
    /* NGPT_BENCH_CHANNELS_LAST=1: the UNet and VAE NHWC inside (NGPT_DECODER_FLAG_CHANNELS_LAST) */
    const bool cl = bench_channels_last();
    if (cl) printf("# channels last\n");
    if (unet && nx_unet_load(&u, be, p, NGPT_DTYPE_F32, cl) != NGPT_OK) return fail("unet load");
    if (vae && nx_vae_load(&v, be, p, false, NGPT_DTYPE_F32, cl) != NGPT_OK) return fail("vae load");
    if (voc && nx_hifigan_load(&h, be, p, NGPT_DTYPE_F32, false) != NGPT_OK) return fail("vocoder load");
    double tload = bench_now() - t0;
    if (voc) orank = 2, oshape[0] = 1, oshape[1] = nx_hifigan_out_len(h, mel_t);

    nx_tensor x[3], y;
    for (int i = 0; i < nin; i++) {
        if (unet && i == 1) continue;
        if (nx_tensor_alloc(&x[i], be, NGPT_DTYPE_F32, in[i].rank, in[i].shape) != NGPT_OK) return fail("alloc");
        memcpy(x[i].data, in[i].data, nx_nbytes(&x[i]));
    }
    if (nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, orank, oshape) != NGPT_OK) return fail("alloc");
    float *ref = malloc(nx_nbytes(&y));
    printf("# %s: threads %d, load (mmap) %.2f s; inputs:", tag, nx_pool_threads(pool), tload);
    for (int i = 0; i < nin; i++) {
        printf(" %s [", in[i].name);
        for (int d = 0; d < in[i].rank; d++) printf("%s%lld", d ? "," : "", (long long)in[i].shape[d]);
        printf("]");
    }
    printf("\n");
    /* NGPT_BENCH_BF16_ONLY=1: the bf16 row alone (profiling it; no f32 reference to compare with) */
    const bool bf16_only = getenv("NGPT_BENCH_BF16_ONLY") && atoi(getenv("NGPT_BENCH_BF16_ONLY")) != 0;
    for (int mode = bf16_only ? 1 : 0; mode < 2; mode++) {
        nx_cpu_set_bf16_compute(be, mode == 1);
        if (mode == 1) { /* as a decoder created with compute_dtype BF16: matrices and filters in BF16 */
            t0 = bench_now();
            nx_unet_free(u);
            nx_vae_free(v);
            nx_hifigan_free(h);
            u = NULL, v = NULL, h = NULL;
            snprintf(p, sizeof p, "%s/%s", dir, comp);
            const bool cl16 =
                nx_decoder_channels_last(cl ? NGPT_DECODER_FLAG_CHANNELS_LAST : 0, NGPT_BACKEND_CPU, NGPT_DTYPE_BF16);
            if (unet && nx_unet_load(&u, be, p, NGPT_DTYPE_BF16, cl16) != NGPT_OK) return fail("unet load (bf16)");
            if (vae && nx_vae_load(&v, be, p, false, NGPT_DTYPE_BF16, cl16) != NGPT_OK) return fail("vae load (bf16)");
            if (voc && nx_hifigan_load(&h, be, p, NGPT_DTYPE_BF16, cl16) != NGPT_OK) return fail("vocoder load (bf16)");
            printf("# bf16: matrices and filters converted at load in %.2f s%s\n", bench_now() - t0,
                   cl16 && !cl ? " (channels last, as a BF16 decoder on this CPU)" : "");
        }
        double best = 1e30;
        for (int r = 0; r < reps; r++) {
            double t = bench_now();
            ngpt_status st = unet ? nx_unet_forward(u, &y, &x[0], in[1].data, ldm ? NULL : &x[2], ldm ? &x[2] : NULL)
                             : vae ? nx_vae_decode(v, &y, &x[0])
                                   : nx_hifigan_forward(h, &y, &x[0]);
            if (st != NGPT_OK) return fail("forward");
            t = bench_now() - t;
            if (t < best) best = t;
        }
        bool finite = true;
        const float *o = y.data;
        int64_t n = nx_numel(&y);
        double maxo = 0, maxd = 0;
        for (int64_t i = 0; i < n; i++) {
            finite &= isfinite(o[i]) != 0;
            if (fabs(o[i]) > maxo) maxo = fabs(o[i]);
            if (mode == 1 && !bf16_only && fabs(o[i] - ref[i]) > maxd) maxd = fabs(o[i] - ref[i]);
        }
        char note[160];
        if (mode == 0) {
            memcpy(ref, o, nx_nbytes(&y));
            snprintf(note, sizeof note, "output finite: %s, max |out| %.3g", finite ? "yes" : "NO", maxo);
            snprintf(p, sizeof p, "%s/io/%s.ours.f32.safetensors", dir, tag);
            io out = {"out", orank, {0}, ref};
            memcpy(out.shape, oshape, sizeof oshape);
            if (!write_ios(p, &out, 1)) return fail("write output");
        } else {
            if (bf16_only) snprintf(note, sizeof note, "output finite: %s (no f32 run)", finite ? "yes" : "NO");
            else snprintf(note, sizeof note, "max |ours bf16 - ours f32| %.2e (rel %.2e)", maxd, maxd / (maxo > 0 ? maxo : 1));
        }
        printf("| %s | libnextgpt | %s | %.3f | %s | %.2f |\n", tag, mode ? "bf16" : "f32", best, note,
               bench_load1());
        fflush(stdout);
        if (getenv("NGPT_BENCH_PROFILE")) { /* where the time goes: one more forward, ops timed */
            nx_ops_profile_enable(true);
            if ((unet ? nx_unet_forward(u, &y, &x[0], in[1].data, ldm ? NULL : &x[2], ldm ? &x[2] : NULL)
                 : vae ? nx_vae_decode(v, &y, &x[0])
                       : nx_hifigan_forward(h, &y, &x[0])) != NGPT_OK)
                return fail("forward");
            char title[160];
            snprintf(title, sizeof title, "%s %s", tag, mode ? "bf16" : "f32");
            nx_ops_profile_report(stdout, title);
            nx_ops_profile_enable(false);
        }
    }
    nx_cpu_set_bf16_compute(be, false);
    if (voc) printf("# vocoder real-time factor (audio seconds / compute seconds) is computed by run_decoders.sh\n");
    for (int i = 0; i < nin; i++) {
        if (!(unet && i == 1)) nx_tensor_free(&x[i]);
        free(in[i].data);
    }
    nx_tensor_free(&y);
    free(ref);
    nx_unet_free(u);
    nx_vae_free(v);
    nx_hifigan_free(h);
    nx_backend_free(be);
    nx_pool_free(pool);
    return 0;
}

/* ------------------------------------------------------------------------------------------- */
/* gen: the whole pipeline through the public API (ngpt_decoder_generate), on the device that
 * NGPT_BENCH_DEVICE names (cpu or cuda), for the GPU rows of issues 8 and 9 (bench/gpu_remote.sh;
 * PyTorch side: unet_torch.py --gen / unet3d_torch.py --gen on the same folder). */

typedef struct gen_clock {
    double t0, t_last; /* start, the end of the last denoising step */
} gen_clock;

static bool gen_on_step(int32_t step, int32_t total, float elapsed_s, void *user)
{
    (void)elapsed_s;
    gen_clock *c = user;
    if (step + 1 >= total) c->t_last = bench_now();
    return true;
}

static int cmd_gen(const char *dir, const char *kind, double size, int steps, const char *dts)
{
    bool video = !strcmp(kind, "zeroscope");
    ngpt_dtype dt = !strcmp(dts, "f32") ? NGPT_DTYPE_F32 : !strcmp(dts, "bf16") ? NGPT_DTYPE_BF16 : NGPT_DTYPE_F16;
    const char *dev = getenv("NGPT_BENCH_DEVICE");
    bool cuda = dev && !strcmp(dev, "cuda");
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = cuda ? NGPT_DEVICE_CUDA : NGPT_DEVICE_CPU;
    cp.n_threads = bench_threads();
    cp.log_level = NGPT_LOG_INFO;  /* a step not recorded as a CUDA graph says why */
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) return fail("context");
    ngpt_decoder_params dp;
    ngpt_decoder_params_default(&dp, sizeof dp);
    dp.compute_dtype = cuda ? dt : NGPT_DTYPE_F32;
    const char *gr = getenv("NGPT_BENCH_CUDA_GRAPH");
    if (gr && atoi(gr)) dp.flags |= NGPT_DECODER_FLAG_CUDA_GRAPH;
    if (bench_channels_last()) dp.flags |= NGPT_DECODER_FLAG_CHANNELS_LAST;
    ngpt_decoder *dec = NULL;
    double t0 = bench_now();
    if (ngpt_decoder_create(&dec, ctx, dir, &dp) != NGPT_OK) return fail("decoder_create");
    printf("# bench_decoders gen: %s, %s, compute %s%s%s; load %.2f s\n", kind, ngpt_context_device_name(ctx),
           ngpt_dtype_name(dp.compute_dtype), dp.flags & NGPT_DECODER_FLAG_CUDA_GRAPH ? ", step as a CUDA graph" : "",
           dp.flags & NGPT_DECODER_FLAG_CHANNELS_LAST ? ", channels last" : "", bench_now() - t0);
    /* conditioning: video [1, 77, 1024] (the output projector's), audio [1, 512] (the class label) */
    int64_t cs[3] = {1, 77, 1024}, as[2] = {1, 512};
    size_t n = video ? 77 * 1024 : 512;
    float *hc = malloc(n * sizeof *hc), *hu = malloc(n * sizeof *hu);
    if (!hc || !hu) return 1;
    for (size_t i = 0; i < n; i++) hc[i] = urand(), hu[i] = urand();
    ngpt_tensor cond = {.dtype = NGPT_DTYPE_F32, .rank = video ? 3 : 2, .data = hc};
    ngpt_tensor unc = {.dtype = NGPT_DTYPE_F32, .rank = video ? 3 : 2, .data = hu};
    memcpy(cond.shape, video ? cs : as, (size_t)cond.rank * sizeof(int64_t));
    memcpy(unc.shape, video ? cs : as, (size_t)unc.rank * sizeof(int64_t));
    ngpt_decode_params gp;
    ngpt_decode_params_default(&gp, sizeof gp);
    gp.num_inference_steps = steps;
    gp.guidance_scale = 7.5f;
    gp.seed = 42;
    if (video) gp.num_frames = (int32_t)size, gp.height = 320, gp.width = 576;
    else gp.audio_length_s = size;
    gen_clock clk = {0};
    gp.on_step = gen_on_step;
    gp.user_data = &clk;
    int rc = 0;
    for (int r = 0; r < 2 && rc == 0; r++) { /* r = 0: warm-up with 2 steps (plans, pools) */
        gp.num_inference_steps = r == 0 ? 2 : steps;
        ngpt_tensor out = {0}, aux = {0};
        clk.t0 = bench_now();
        if (ngpt_decoder_generate(dec, &out, video ? NULL : &aux, &cond, &unc, &gp) != NGPT_OK) return fail("generate");
        double t = bench_now() - clk.t0;
        bool finite = true;
        for (int64_t i = 0; i < ngpt_tensor_numel(&out); i++) finite &= isfinite(((float *)out.data)[i]) != 0;
        if (r == 1)
            printf("generate %s %g %s, %d steps, CFG 7.5, %s: %.3f s (denoise %.3f s = %.1f ms/step, decode %.3f s);"
                   " peak device memory %.2f GiB; output finite: %s\n",
                   kind, size, video ? "frames 576x320" : "s of audio", steps, ngpt_dtype_name(dp.compute_dtype), t,
                   clk.t_last - clk.t0, 1e3 * (clk.t_last - clk.t0) / steps, t - (clk.t_last - clk.t0),
                   (double)ngpt_context_memory_peak(ctx) / (1024.0 * 1024.0 * 1024.0), finite ? "yes" : "NO");
        rc = finite ? 0 : 1;
        ngpt_tensor_free(&out);
        ngpt_tensor_free(&aux);
    }
    if (rc == 0 && getenv("NGPT_BENCH_PROFILE")) { /* where a step and the decode spend their time */
        gp.num_inference_steps = 1;
        ngpt_tensor out = {0}, aux = {0};
        nx_ops_profile_enable(true);
        if (ngpt_decoder_generate(dec, &out, video ? NULL : &aux, &cond, &unc, &gp) != NGPT_OK) return fail("generate");
        nx_ops_profile_report(stdout, "generate with 1 step (CFG batch 2) + decode");
        nx_ops_profile_enable(false);
        ngpt_tensor_free(&out);
        ngpt_tensor_free(&aux);
    }
    free(hc), free(hu);
    ngpt_decoder_free(dec);
    ngpt_context_free(ctx);
    return rc;
}

int main(int argc, char **argv)
{
    if (getenv("NGPT_BENCH_AMX") && !strcmp(getenv("NGPT_BENCH_AMX"), "0")) nx_cpu_set_amx(false);
    if (argc == 7 && !strcmp(argv[1], "gen") && (!strcmp(argv[3], "audioldm") || !strcmp(argv[3], "zeroscope")) &&
        atof(argv[4]) > 0 && atoi(argv[5]) > 0)
        return cmd_gen(argv[2], argv[3], atof(argv[4]), atoi(argv[5]), argv[6]);
    if (argc == 4 && !strcmp(argv[1], "write") && (!strcmp(argv[3], "sd") || !strcmp(argv[3], "audioldm")))
        return cmd_write(argv[2], !strcmp(argv[3], "audioldm"));
    if (argc == 7 && !strcmp(argv[1], "run") && (!strcmp(argv[3], "sd") || !strcmp(argv[3], "audioldm")) &&
        atoi(argv[5]) > 0 && atoi(argv[6]) > 0) {
        bool ldm = !strcmp(argv[3], "audioldm");
        int size = atoi(argv[5]);
        if (!ldm && size % 64) return fprintf(stderr, "bench_decoders: sd SIZE must be a multiple of 64\n"), 2;
        return cmd_run(argv[2], ldm, argv[4], size, atoi(argv[6]));
    }
    fprintf(stderr, "usage: bench_decoders write DIR sd|audioldm\n"
                    "       bench_decoders run DIR sd|audioldm unet|vae|vocoder SIZE REPS\n"
                    "       (SIZE: pixels for sd, seconds of audio for audioldm)\n"
                    "       [NGPT_BENCH_DEVICE=cuda] bench_decoders gen DIR audioldm|zeroscope SECONDS|FRAMES STEPS f16|bf16|f32\n");
    return 2;
}
