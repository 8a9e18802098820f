/* bench_imagebind.c — full-size ImageBind-huge vision (ViT-H/14: width 1280, 32 blocks, 16 heads,
 * MLP 5120, Conv3d stem 2x14x14 over 2 frames, 257 tokens) on one image through the public API,
 * CPU, compute F32 and BF16: seconds per image, achieved GFLOP/s (linears + attention + stem +
 * head) and its fraction of the op layer's square-2048 GEMM (oneDNN) measured in the same run
 * for the same compute type; and image decode + preprocess time for a 1024x768 JPEG.
 *
 * Random weights (uniform, std 0.02; LayerNorm weight 1, bias 0) are written once, in the upstream
 * tensor names, to $NGPT_IB_WEIGHTS (default /tmp/ngpt_ib_huge_vision.safetensors, 2.5 GB F32)
 * and reused when present. For bench/imagebind_torch.py the run also writes, next to it,
 * <weights>.jpg (the JPEG), <weights>.px.f32 (its preprocessed pixels, [3,224,224]) and
 * <weights>.emb.<f32|bf16>.f32 (our embeddings).
 *
 *   NGPT_BENCH_THREADS=2 ./bench/bench_imagebind [reps]       (or bench/run_imagebind.sh;
 *   NGPT_BENCH_PROFILE=1 adds an op profile of one more encode per compute type)
 *   NGPT_BENCH_DEVICE=cuda [NGPT_BENCH_GEMM_LT=1] ./bench/bench_imagebind [reps]   (see bench_cuda) */
#include "bench_util.h"

#include "nextgpt.h"
#include "api/context.h"
#include "core/alloc.h"
#include "core/weights.h"
#include "ops/backend.h"
#include "ops/ops.h"

#include <math.h>
#include <stdint.h>
#include <sys/stat.h>

enum { D = 1280, NB = 32, NH = 16, R = 4, OUT = 1024, KT = 2, KS = 14, IMG = 224 };
#define NTOK (1 + (IMG / KS) * (IMG / KS))

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;
static void fill_uniform(float *p, size_t n, float std)
{
    const float a = std * 1.7320508f; /* uniform [-a, a] has this std */
    for (size_t i = 0; i < n; i++) {
        g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = a * ((float)(g_rng >> 40) * (2.0f / 16777216.0f) - 1.0f);
    }
}

#define MAXT (8 + NB * 12)
static nx_st_entry g_e[MAXT];
static int64_t g_shape[MAXT][5];
static char g_names[MAXT][96];
static int g_n;

static float *add(const char *name, int rank, const int64_t *shape, int kind /* 0 rand, 1 ones, 2 zeros */)
{
    size_t n = 1;
    for (int i = 0; i < rank; i++) n *= (size_t)shape[i], g_shape[g_n][i] = shape[i];
    float *p = malloc(n * sizeof(float));
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    if (kind == 0) fill_uniform(p, n, 0.02f);
    else for (size_t i = 0; i < n; i++) p[i] = kind == 1 ? 1.0f : 0.0f;
    snprintf(g_names[g_n], sizeof g_names[0], "%s", name);
    g_e[g_n] = (nx_st_entry){g_names[g_n], NGPT_DTYPE_F32, rank, g_shape[g_n], p};
    g_n++;
    return p;
}

static int write_weights(const char *path)
{
    char nm[96];
    int64_t stem[5] = {D, 3, KT, KS, KS}, cls[3] = {1, 1, D}, pos[3] = {1, NTOK, D}, d1[1] = {D};
    int64_t qkv[2] = {3 * D, D}, qkvb[1] = {3 * D}, oo[2] = {D, D}, f1[2] = {R * D, D}, f1b[1] = {R * D},
            f2[2] = {D, R * D}, head[2] = {OUT, D};
    add("modality_preprocessors.vision.rgbt_stem.proj.1.weight", 5, stem, 0);
    add("modality_preprocessors.vision.cls_token", 3, cls, 0);
    add("modality_preprocessors.vision.pos_embedding_helper.pos_embed", 3, pos, 0);
    add("modality_trunks.vision.pre_transformer_layer.0.weight", 1, d1, 1);
    add("modality_trunks.vision.pre_transformer_layer.0.bias", 1, d1, 2);
    for (int i = 0; i < NB; i++) {
#define B(s) (snprintf(nm, sizeof nm, "modality_trunks.vision.blocks.%d." s, i), nm)
        add(B("norm_1.weight"), 1, d1, 1);
        add(B("norm_1.bias"), 1, d1, 2);
        add(B("attn.in_proj_weight"), 2, qkv, 0);
        add(B("attn.in_proj_bias"), 1, qkvb, 0);
        add(B("attn.out_proj.weight"), 2, oo, 0);
        add(B("attn.out_proj.bias"), 1, d1, 0);
        add(B("norm_2.weight"), 1, d1, 1);
        add(B("norm_2.bias"), 1, d1, 2);
        add(B("mlp.fc1.weight"), 2, f1, 0);
        add(B("mlp.fc1.bias"), 1, f1b, 0);
        add(B("mlp.fc2.weight"), 2, f2, 0);
        add(B("mlp.fc2.bias"), 1, d1, 0);
#undef B
    }
    add("modality_heads.vision.0.weight", 1, d1, 1);
    add("modality_heads.vision.0.bias", 1, d1, 2);
    add("modality_heads.vision.2.weight", 2, head, 0);
    ngpt_status s = nx_safetensors_write(path, g_e, (size_t)g_n, NULL, 0);
    for (int i = 0; i < g_n; i++) free((void *)g_e[i].data);
    if (s != NGPT_OK) fprintf(stderr, "writing %s: %s\n", path, ngpt_last_error());
    return s == NGPT_OK;
}

/* FLOPs of one image (2 per multiply-add): stem, per block the 4 linears + QK^T + AV, head. */
static double vit_flops(void)
{
    const double T = NTOK, P = NTOK - 1;
    double stem = 2.0 * P * D * (3.0 * KT * KS * KS);
    double lin = 2.0 * T * D * (3.0 * D + D + 2.0 * R * D);
    double att = 2.0 * 2.0 * T * T * D;
    return stem + NB * (lin + att) + 2.0 * D * OUT;
}

/* The op layer's square GEMM (nx_op_linear, y = x W^T), best of reps; bf16: W stored BF16. */
static double gemm_peak(nx_backend *be, bool bf16, int reps)
{
    const int64_t n = 2048;
    float *x = nx_malloc_aligned((size_t)(n * n) * 4), *y = nx_malloc_aligned((size_t)(n * n) * 4);
    float *w = nx_malloc_aligned((size_t)(n * n) * 4);
    uint16_t *wb = nx_malloc_aligned((size_t)(n * n) * 2);
    fill_uniform(x, (size_t)(n * n), 1.0f);
    fill_uniform(w, (size_t)(n * n), 1.0f);
    nx_f32_to_bf16_n(w, wb, (size_t)(n * n));
    int64_t s[2] = {n, n};
    nx_tensor tx = nx_view(NGPT_DTYPE_F32, 2, s, x, be), ty = nx_view(NGPT_DTYPE_F32, 2, s, y, be);
    nx_tensor tw = bf16 ? nx_view(NGPT_DTYPE_BF16, 2, s, wb, be) : nx_view(NGPT_DTYPE_F32, 2, s, w, be);
    nx_cpu_bf16_scope sc = nx_cpu_bf16_scope_begin(be, bf16);
    double best = 1e30;
    for (int r = 0; r < reps + 1; r++) {
        double t0 = bench_now();
        if (nx_op_linear(be, &ty, &tx, &tw, NULL) != NGPT_OK) fprintf(stderr, "gemm: %s\n", ngpt_last_error());
        double t = bench_now() - t0;
        if (r > 0 && t < best) best = t;
    }
    nx_cpu_bf16_scope_end(sc);
    nx_free_aligned(x), nx_free_aligned(y), nx_free_aligned(w), nx_free_aligned(wb);
    return 2.0 * (double)n * n * n * 1e-9 / best;
}

static void save(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

/* NGPT_BENCH_DEVICE=cuda: the encoder on the GPU in F32, F16 and BF16 compute at batch 1 and 16
 * (random pixels), after a warm-up, F16 and BF16 also recorded as a CUDA graph; ms per batch,
 * images/s and achieved TFLOP/s. The PyTorch
 * baseline on the same weights: bench/imagebind_torch.py WEIGHTS --cuda. */
static int bench_cuda(const char *wp, int reps)
{
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CUDA;
    /* NGPT_BENCH_GEMM_LT=0: the linears through cuBLAS and a bias kernel instead of the default
     * cuBLASLt with the bias fused; the rows then say "- Lt". By default the shapes cuBLASLt
     * refuses are logged at INFO. */
    const bool lt = !getenv("NGPT_BENCH_GEMM_LT") || atoi(getenv("NGPT_BENCH_GEMM_LT"));
    if (lt) cp.log_level = NGPT_LOG_INFO;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) {
        fprintf(stderr, "context: %s\n", ngpt_last_error());
        return 77;
    }
    printf("# device: %s\n", ngpt_context_device_name(ctx));
    nx_cuda_set_gemm_lt(ctx->be, lt);
    printf("# linears: %s\n", lt ? "cuBLASLt, bias in the epilogue (the default)" : "cuBLAS + a bias kernel");
    const int batches[2] = {1, 16};
    float *px = malloc((size_t)16 * 3 * IMG * IMG * sizeof(float));
    if (!px) return 1;
    fill_uniform(px, (size_t)16 * 3 * IMG * IMG, 1.0f);
    const double gf = vit_flops() * 1e-9;
    printf("| compute | batch | ms/batch (best of %d) | images/s | TFLOP/s |\n|---|---|---|---|---|\n", reps);
    static const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    /* F16 and BF16 also with NGPT_ENCODER_FLAG_CUDA_GRAPH (rows "+ graph"): the warm-up runs op by
     * op, the first timed call records, the rest replay (best of reps) */
    for (int dg = 0; dg < 5; dg++) {
        const int d = dg < 3 ? dg : dg - 2, graph = dg >= 3;
        ngpt_encoder_params ep;
        ngpt_encoder_params_default(&ep, sizeof ep);
        ep.modalities = NGPT_ENCODER_IMAGE;
        ep.compute_dtype = dts[d];
        if (graph) ep.flags = NGPT_ENCODER_FLAG_CUDA_GRAPH;
        ngpt_encoder *enc = NULL;
        if (ngpt_encoder_create(&enc, ctx, wp, &ep) != NGPT_OK) {
            fprintf(stderr, "encoder: %s\n", ngpt_last_error());
            return 1;
        }
        for (int bi = 0; bi < 2; bi++) {
            ngpt_tensor in = {NGPT_DTYPE_F32, 4, {batches[bi], 3, IMG, IMG}, px, NULL}, e = {0};
            double best = 1e30;
            for (int r = 0; r <= reps; r++) { /* r = 0: warm-up */
                ngpt_tensor_free(&e);
                double t0 = bench_now();
                if (ngpt_encoder_encode_pixels(enc, &e, &in) != NGPT_OK) {
                    fprintf(stderr, "encode: %s\n", ngpt_last_error());
                    return 1;
                }
                double t = bench_now() - t0;
                if (r > 0 && t < best) best = t;
            }
            ngpt_tensor_free(&e);
            printf("| %s%s%s | %d | %.2f | %.1f | %.1f |\n", ngpt_dtype_name(dts[d]), graph ? " + graph" : "",
                   lt ? "" : " - Lt", batches[bi], best * 1e3, batches[bi] / best, gf * batches[bi] / best * 1e-3);
            if (getenv("NGPT_BENCH_PROFILE") && dts[d] == NGPT_DTYPE_F16 && !graph) { /* where the time goes */
                nx_ops_profile_enable(true);
                if (ngpt_encoder_encode_pixels(enc, &e, &in) != NGPT_OK) return 1;
                ngpt_tensor_free(&e);
                char title[64];
                snprintf(title, sizeof title, "F16 batch %d%s", batches[bi], lt ? "" : ", cuBLAS linears");
                nx_ops_profile_report(stdout, title);
                nx_ops_profile_enable(false);
            }
            fflush(stdout);
        }
        ngpt_encoder_free(enc);
    }
    free(px);
    ngpt_context_free(ctx);
    return 0;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 && atoi(argv[1]) > 0 ? atoi(argv[1]) : 1;
    const int threads = bench_threads();
    bench_header("ImageBind-huge vision, one image (224x224, 2 frames), CPU");
    const char *wp = getenv("NGPT_IB_WEIGHTS") ? getenv("NGPT_IB_WEIGHTS") : "/tmp/ngpt_ib_huge_vision.safetensors";
    char path[1100];
    struct stat st;
    if (stat(wp, &st) != 0 || st.st_size < 2000000000) {
        double t0 = bench_now();
        if (!write_weights(wp)) return 1;
        printf("# wrote %s in %.1f s\n", wp, bench_now() - t0);
    }

    const char *bdev = getenv("NGPT_BENCH_DEVICE");
    if (bdev && !strcmp(bdev, "cuda")) return bench_cuda(wp, reps);

    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = threads;
    ngpt_context *ctx = NULL;
    if (ngpt_context_create(&ctx, &cp) != NGPT_OK) {
        fprintf(stderr, "context: %s\n", ngpt_last_error());
        return 1;
    }
    printf("# threads %d, load average at start %.2f\n", ngpt_context_n_threads(ctx), bench_load1());

    /* the JPEG: 1024x768 of smooth gradients + texture, quality 90 */
    const int W = 1024, H = 768;
    uint8_t *rgb = malloc((size_t)W * H * 3);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            uint8_t *p = rgb + ((size_t)y * W + x) * 3;
            p[0] = (uint8_t)(128 + 100 * sin(x / 90.0));
            p[1] = (uint8_t)(128 + 100 * cos(y / 70.0));
            p[2] = (uint8_t)((x * 3 + y * 5 + ((x * y) % 17) * 4) & 255);
        }
    ngpt_image *img = NULL;
    ngpt_image_from_rgb8(&img, rgb, W, H, 0);
    free(rgb);
    snprintf(path, sizeof path, "%s.jpg", wp);
    if (ngpt_image_save(img, path, NGPT_IMAGE_FORMAT_JPEG, 90, 0) != NGPT_OK) {
        fprintf(stderr, "jpeg: %s\n", ngpt_last_error());
        return 1;
    }
    ngpt_image_free(img);
    img = NULL;

    /* decode + preprocess, best and median of 15 */
    double tt[15];
    ngpt_tensor px = {0};
    for (int r = 0; r < 15; r++) {
        ngpt_tensor_free(&px);
        double t0 = bench_now();
        ngpt_image *im = NULL;
        if (ngpt_image_load(&im, path) != NGPT_OK || ngpt_image_preprocess(&px, im) != NGPT_OK) {
            fprintf(stderr, "decode: %s\n", ngpt_last_error());
            return 1;
        }
        ngpt_image_free(im);
        tt[r] = bench_now() - t0;
    }
    for (int i = 0; i < 15; i++)
        for (int j = i + 1; j < 15; j++)
            if (tt[j] < tt[i]) { double t = tt[i]; tt[i] = tt[j]; tt[j] = t; }
    printf("decode+preprocess 1024x768 JPEG: best %.2f ms, median %.2f ms\n", tt[0] * 1e3, tt[7] * 1e3);
    snprintf(path, sizeof path, "%s.px.f32", wp);
    save(path, px.data, (size_t)3 * IMG * IMG * sizeof(float));

    const double gf = vit_flops() * 1e-9;
    printf("model FLOPs per image: %.1f GFLOP (stem %.2f, attention %.1f)\n", gf,
           2.0 * (NTOK - 1) * D * 3.0 * KT * KS * KS * 1e-9, NB * 4.0 * NTOK * NTOK * D * 1e-9);
    printf("| compute | load s | s/image (best of %d) | GFLOP/s | GEMM-2048 peak GFLOP/s | fraction | load avg |\n", reps);
    printf("|---|---|---|---|---|---|---|\n");
    ngpt_tensor p4 = px;
    p4.rank = 4;
    p4.shape[0] = 1;
    p4.shape[1] = 3;
    p4.shape[2] = p4.shape[3] = IMG;
    p4.owner = NULL;
    for (int bf = 0; bf < 2; bf++) {
        ngpt_encoder_params ep;
        ngpt_encoder_params_default(&ep, sizeof ep);
        ep.modalities = NGPT_ENCODER_IMAGE;
        ep.compute_dtype = bf ? NGPT_DTYPE_BF16 : NGPT_DTYPE_F32;
        ngpt_encoder *enc = NULL;
        double t0 = bench_now();
        if (ngpt_encoder_create(&enc, ctx, wp, &ep) != NGPT_OK) {
            fprintf(stderr, "encoder: %s\n", ngpt_last_error());
            return 1;
        }
        double tl = bench_now() - t0, best = 1e30;
        ngpt_tensor e = {0};
        for (int r = 0; r < reps; r++) {
            ngpt_tensor_free(&e);
            t0 = bench_now();
            if (ngpt_encoder_encode_pixels(enc, &e, &p4) != NGPT_OK) {
                fprintf(stderr, "encode: %s\n", ngpt_last_error());
                return 1;
            }
            double t = bench_now() - t0;
            if (t < best) best = t;
        }
        snprintf(path, sizeof path, "%s.emb.%s.f32", wp, bf ? "bf16" : "f32");
        save(path, e.data, OUT * sizeof(float));
        ngpt_tensor_free(&e);
        if (getenv("NGPT_BENCH_PROFILE")) { /* where the time goes: one more encode, ops timed */
            nx_ops_profile_enable(true);
            if (ngpt_encoder_encode_pixels(enc, &e, &p4) != NGPT_OK) return 1;
            ngpt_tensor_free(&e);
            nx_ops_profile_report(stdout, bf ? "CPU bf16" : "CPU f32");
            nx_ops_profile_enable(false);
        }
        ngpt_encoder_free(enc);
        double peak = gemm_peak(ctx->be, bf, 3);
        printf("| %s | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f |\n", bf ? "bf16" : "f32", tl, best, gf / best, peak,
               gf / best / peak, bench_load1());
        fflush(stdout);
    }
    ngpt_tensor_free(&px);
    ngpt_context_free(ctx);
    return 0;
}
