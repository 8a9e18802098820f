/* bench_unet.c — one UNet2DConditionModel step on the CPU at Stable Diffusion 1.5's real config
 * (block_out 320/640/1280/1280, 2 layers per block, 8 heads, cross_attention_dim 768, GroupNorm
 * 32) with random weights written to /tmp by nx_safetensors_write (the tensor list comes from
 * nx_unet_list_tensors, so it is exactly what the loader asks for), at a reduced resolution:
 * 32x32 latents (256x256 pixels) by default, batch 2 as classifier-free guidance runs it,
 * encoder_hidden_states [2, 77, 768].
 *
 * PyTorch cannot be linked from C, so the same-run baseline is the op layer's own 3x3 convolution
 * on a UNet-shaped input (2x320x32x32): the UNet's GFLOP/s (conv + GEMM + attention FLOPs counted
 * from the weight shapes and the resolution of each block) as a fraction of it says how much
 * time goes to the non-GEMM work (norms, permutes, concats, elementwise) and to small shapes.
 *
 *   ./bench/bench_unet                 32x32 latents, F32 weights
 *   NGPT_BENCH_UNET_RES=64 ./bench/bench_unet      512x512 images
 *   NGPT_BENCH_UNET_F16=1  ./bench/bench_unet      F16 weights (converted per call)
 */
#include "bench_util.h"

#include "core/alloc.h"
#include "core/dtype.h"
#include "core/weights.h"
#include "models/unet.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

static const char sd15_config[] =
    "{\"_class_name\": \"UNet2DConditionModel\", \"_diffusers_version\": \"0.17.0\", \"act_fn\": \"silu\","
    " \"attention_head_dim\": 8, \"block_out_channels\": [320, 640, 1280, 1280], \"center_input_sample\": false,"
    " \"cross_attention_dim\": 768, \"down_block_types\": [\"CrossAttnDownBlock2D\", \"CrossAttnDownBlock2D\","
    " \"CrossAttnDownBlock2D\", \"DownBlock2D\"], \"downsample_padding\": 1, \"flip_sin_to_cos\": true,"
    " \"freq_shift\": 0, \"in_channels\": 4, \"layers_per_block\": 2, \"mid_block_scale_factor\": 1,"
    " \"norm_eps\": 1e-05, \"norm_num_groups\": 32, \"out_channels\": 4, \"sample_size\": 64,"
    " \"up_block_types\": [\"UpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\", \"CrossAttnUpBlock2D\"]}";

enum { N_LEVELS = 4, CTX_LEN = 77 };

typedef struct gen {
    nx_st_entry *e;
    int64_t (*shape)[NGPT_MAX_DIMS];
    char **names;
    size_t n, cap;
    int res, batch;
    double flops, conv_flops, gemm_flops, attn_flops;
    uint64_t params;
} gen;

/* Spatial size of the feature map a tensor's module runs at (down i: res >> i; its downsampler
 * writes res >> (i + 1); mid: the lowest; up i mirrors; upsamplers write the next level). */
static int level_of(const char *name)
{
    int i;
    if (sscanf(name, "down_blocks.%d.", &i) == 1) return strstr(name, "downsamplers") ? i + 1 : i;
    if (sscanf(name, "up_blocks.%d.", &i) == 1) return strstr(name, "upsamplers") ? N_LEVELS - 2 - i : N_LEVELS - 1 - i;
    if (!strncmp(name, "mid_block", 9)) return N_LEVELS - 1;
    return 0;
}

static ngpt_status record(void *user, const char *name, int rank, const int64_t *shape)
{
    gen *g = user;
    if (g->n == g->cap) {
        size_t cap = g->cap ? 2 * g->cap : 512;
        g->e = realloc(g->e, cap * sizeof *g->e);
        g->shape = realloc(g->shape, cap * sizeof *g->shape);
        g->names = realloc(g->names, cap * sizeof *g->names);
        g->cap = cap;
    }
    size_t k = g->n++;
    g->names[k] = strdup(name);
    memcpy(g->shape[k], shape, (size_t)rank * sizeof *shape);
    g->e[k] = (nx_st_entry){g->names[k], NGPT_DTYPE_F32, rank, NULL, NULL};
    uint64_t numel = 1;
    for (int i = 0; i < rank; i++) numel *= (uint64_t)shape[i];
    g->params += numel;

    /* FLOPs (2 per multiply-add) */
    double side = (double)(g->res >> level_of(name)), tokens = side * side, B = g->batch;
    bool w = strlen(name) > 7 && !strcmp(name + strlen(name) - 7, ".weight");
    if (w && rank == 4) {
        double f = 2.0 * (double)numel * tokens * B;
        g->conv_flops += f;
    } else if (w && rank == 2) {
        double rows = tokens;
        if (strstr(name, "time_emb") || strstr(name, "class_embedding")) rows = 1;
        if (strstr(name, "attn2.to_k") || strstr(name, "attn2.to_v")) rows = CTX_LEN;
        g->gemm_flops += 2.0 * (double)numel * rows * B;
        /* scores and weighted sum: 4 L S inner */
        if (strstr(name, "attn1.to_q")) g->attn_flops += 4.0 * tokens * tokens * (double)shape[0] * B;
        if (strstr(name, "attn2.to_q")) g->attn_flops += 4.0 * tokens * CTX_LEN * (double)shape[0] * B;
    }
    return NGPT_OK;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static inline float urand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) * 2.0f - 1.0f;
}

int main(void)
{
    bench_header("bench_unet: one SD-1.5-config UNet step (random weights), CPU");
    int res = getenv("NGPT_BENCH_UNET_RES") ? atoi(getenv("NGPT_BENCH_UNET_RES")) : 32;
    bool f16 = getenv("NGPT_BENCH_UNET_F16") && atoi(getenv("NGPT_BENCH_UNET_F16"));
    if (res < 8 || res % 8) {
        fprintf(stderr, "NGPT_BENCH_UNET_RES must be a multiple of 8\n");
        return 1;
    }
    int B = 2;
    char dir[] = "/tmp/ngpt_bench_unet_XXXXXX", path[256], cfg[256];
    if (!mkdtemp(dir)) return 1;
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
    FILE *f = fopen(cfg, "w");
    fputs(sd15_config, f);
    fclose(f);

    /* the tensor list, FLOPs, random weights */
    gen g = {0};
    g.res = res, g.batch = B;
    if (nx_unet_list_tensors(cfg, record, &g) != NGPT_OK) {
        fprintf(stderr, "list: %s\n", ngpt_last_error());
        return 1;
    }
    g.flops = g.conv_flops + g.gemm_flops + g.attn_flops;
    for (size_t k = 0; k < g.n; k++) g.e[k].shape = g.shape[k];  /* after the last realloc */
    double t0 = bench_now();
    for (size_t k = 0; k < g.n; k++) {
        nx_st_entry *e = &g.e[k];
        size_t numel = 1;
        for (int i = 0; i < e->rank; i++) numel *= (size_t)e->shape[i];
        float *d = malloc(numel * sizeof *d);
        bool norm = e->rank == 1 && strstr(e->name, "norm") && strstr(e->name, ".weight");
        float sc = e->rank > 1 ? sqrtf(3.0f * (float)e->shape[0] / (float)numel) : 0.0f;
        for (size_t i = 0; i < numel; i++) d[i] = norm ? 1.0f : e->rank == 1 ? 0.02f * urand() : sc * urand();
        if (f16) {
            uint16_t *h = malloc(numel * sizeof *h);
            for (size_t i = 0; i < numel; i++) h[i] = nx_f32_to_f16(d[i]);
            free(d);
            e->data = h;
            e->dtype = NGPT_DTYPE_F16;
        } else {
            e->data = d;
        }
    }
    snprintf(path, sizeof path, "%s/diffusion_pytorch_model.safetensors", dir);
    ngpt_status st = nx_safetensors_write(path, g.e, g.n, NULL, 0);
    for (size_t k = 0; k < g.n; k++) free((void *)g.e[k].data), free(g.names[k]);
    free(g.e), free(g.shape), free(g.names);
    if (st != NGPT_OK) {
        fprintf(stderr, "write: %s\n", ngpt_last_error());
        return 1;
    }
    printf("# model: %zu tensors, %.1fM parameters, %s weights, written in %.1f s\n", g.n, (double)g.params / 1e6,
           f16 ? "F16" : "F32", bench_now() - t0);

    nx_pool *pool = NULL;
    nx_backend *be = NULL;
    nx_unet *u = NULL;
    if (nx_pool_create(&pool, bench_threads()) != NGPT_OK || nx_cpu_backend_create(&be, pool, NULL) != NGPT_OK) {
        fprintf(stderr, "setup: %s\n", ngpt_last_error());
        return 1;
    }
    t0 = bench_now();
    if (nx_unet_load(&u, be, dir) != NGPT_OK) {
        fprintf(stderr, "load: %s\n", ngpt_last_error());
        return 1;
    }
    printf("# threads: %d; load (mmap, zero copy): %.1f ms\n", nx_pool_threads(pool), 1e3 * (bench_now() - t0));

    /* inputs */
    int64_t xs[4] = {B, 4, res, res}, es[3] = {B, CTX_LEN, 768};
    nx_tensor x, e, y;
    nx_tensor_alloc(&x, be, NGPT_DTYPE_F32, 4, xs);
    nx_tensor_alloc(&e, be, NGPT_DTYPE_F32, 3, es);
    nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, 4, xs);
    for (int64_t i = 0; i < nx_numel(&x); i++) ((float *)x.data)[i] = urand();
    for (int64_t i = 0; i < nx_numel(&e); i++) ((float *)e.data)[i] = urand();
    float ts[2] = {981.0f, 981.0f};

    /* baseline in the same run: the op layer's 3x3 conv at a UNet shape */
    double base_gflops;
    {
        int64_t cx[4] = {B, 320, res, res}, cw[4] = {320, 320, 3, 3};
        nx_tensor a, w, o;
        nx_tensor_alloc(&a, be, NGPT_DTYPE_F32, 4, cx);
        nx_tensor_alloc(&w, be, NGPT_DTYPE_F32, 4, cw);
        nx_tensor_alloc(&o, be, NGPT_DTYPE_F32, 4, cx);
        for (int64_t i = 0; i < nx_numel(&a); i++) ((float *)a.data)[i] = urand();
        for (int64_t i = 0; i < nx_numel(&w); i++) ((float *)w.data)[i] = 0.02f * urand();
        nx_conv_params p = nx_conv_params_default();
        p.pad[0] = p.pad[1] = 1;
        nx_op_conv(be, &o, &a, &w, NULL, &p);
        int reps = 0;
        double tc = bench_now();
        do nx_op_conv(be, &o, &a, &w, NULL, &p), reps++;
        while (bench_now() - tc < 1.0);
        double ms = 1e3 * (bench_now() - tc) / reps;
        base_gflops = 2.0 * 320 * 320 * 9 * (double)(B * res * res) / (ms * 1e6);
        printf("# baseline: op-layer conv 3x3 %dx320x%dx%d: %.2f ms, %.1f GFLOP/s\n", B, res, res, ms, base_gflops);
        nx_tensor_free(&a), nx_tensor_free(&w), nx_tensor_free(&o);
    }

    /* warm-up, then the median of 5 steps */
    uint64_t base_mem = be->mem_used;
    be->mem_peak = be->mem_used;
    if (nx_unet_forward(u, &y, &x, ts, &e, NULL) != NGPT_OK) {
        fprintf(stderr, "forward: %s\n", ngpt_last_error());
        return 1;
    }
    double peak_mb = (double)(be->mem_peak - base_mem) / 1048576.0;
    double times[5];
    for (int r = 0; r < 5; r++) {
        double t = bench_now();
        nx_unet_forward(u, &y, &x, ts, &e, NULL);
        times[r] = bench_now() - t;
    }
    for (int i = 0; i < 5; i++)
        for (int j = i + 1; j < 5; j++)
            if (times[j] < times[i]) { double tmp = times[i]; times[i] = times[j]; times[j] = tmp; }
    double ms = 1e3 * times[2];
    bool finite = true;
    for (int64_t i = 0; i < nx_numel(&y); i++) finite &= isfinite(((float *)y.data)[i]) != 0;
    printf("# FLOPs per step: conv %.1f G, linear %.1f G, attention %.1f G, total %.1f G\n", g.conv_flops / 1e9,
           g.gemm_flops / 1e9, g.attn_flops / 1e9, g.flops / 1e9);
    printf("# peak activation memory: %.1f MiB; output finite: %s\n\n", peak_mb, finite ? "yes" : "NO");
    printf("| latents | batch | weights | ms/step (median of 5) | GFLOP/s | vs op-layer conv (%.0f GFLOP/s) |\n",
           base_gflops);
    printf("|---|---|---|---|---|---|\n");
    printf("| %dx%d | %d | %s | %.0f | %.1f | %.2f |\n", res, res, B, f16 ? "F16" : "F32", ms, g.flops / (ms * 1e6),
           g.flops / (ms * 1e6) / base_gflops);

    nx_tensor_free(&x), nx_tensor_free(&e), nx_tensor_free(&y);
    nx_unet_free(u);
    nx_backend_free(be);
    nx_pool_free(pool);
    unlink(path);
    unlink(cfg);
    rmdir(dir);
    return 0;
}
