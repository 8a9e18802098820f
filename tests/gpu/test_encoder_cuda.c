/* test_encoder_cuda.c — the ImageBind encoder on CUDA against the CPU backend (suite 'gpu'; exits
 * 77 without a usable GPU). The golden tiny ImageBind (../shared/golden/models/imagebind-a: vision
 * and audio branches) encodes the same random pixels (2 images, and one video item of 3 clips of
 * 2 frames) and fbank clips (one sound of 3 clips) on the CPU in F32 and on CUDA with compute
 * dtype F32, F16 and BF16; the L2-normalised embeddings must agree.
 *
 * Measure: cosine similarity per embedding (what the embeddings are used for downstream — the
 * projector is linear, and NExT-GPT's ImageBind is used through normalised vectors) and the max
 * abs difference. Bounds: F32 cosine >= 1 - 1e-6 (same math, other summation order); F16 >= 0.999
 * and BF16 >= 0.99 — the CPU's own BF16 GEMM mode is held to 0.99 in test_encoder.c, and F16 keeps
 * 3 more mantissa bits. Measured values are printed so the margin shows in the log. */
#include "test.h"

#include "nextgpt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char g_golden[900], g_model[1000];
static ngpt_context *g_cpu, *g_cuda;

static double cosine(const float *a, const float *b, int64_t n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int64_t i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb + 1e-30);
}

static float *randn(size_t n, uint32_t seed)
{
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; p && i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = ((float)(seed >> 8) / 16777216.0f - 0.5f) * 3.0f; /* CLIP-normalised pixels span ~[-2, 2] */
    }
    return p;
}

typedef ngpt_status (*encode_fn)(ngpt_encoder *, ngpt_tensor *, const ngpt_tensor *);

static bool encode(ngpt_context *ctx, ngpt_dtype dt, encode_fn fn, const ngpt_tensor *in, ngpt_tensor *out)
{
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    p.compute_dtype = dt;
    ngpt_encoder *e = NULL;
    ngpt_status st = ngpt_encoder_create(&e, ctx, g_model, &p);
    CHECK_MSG(st == NGPT_OK, "encoder (%s): %s", ngpt_dtype_name(dt), ngpt_last_error());
    if (st) return false;
    st = fn(e, out, in);
    CHECK_MSG(st == NGPT_OK, "encode (%s): %s", ngpt_dtype_name(dt), ngpt_last_error());
    ngpt_encoder_free(e);
    return st == NGPT_OK;
}

static void compare(const char *what, encode_fn fn, const ngpt_tensor *in)
{
    ngpt_tensor ref = {0};
    if (!encode(g_cpu, NGPT_DTYPE_F32, fn, in, &ref)) return;
    static const ngpt_dtype dts[3] = {NGPT_DTYPE_F32, NGPT_DTYPE_F16, NGPT_DTYPE_BF16};
    static const double bounds[3] = {1.0 - 1e-6, 0.999, 0.99};
    int64_t rows = ref.shape[0], D = ref.shape[1];
    for (int i = 0; i < 3; i++) {
        ngpt_tensor o = {0};
        if (!encode(g_cuda, dts[i], fn, in, &o)) continue;
        CHECK(o.rank == 2 && o.shape[0] == rows && o.shape[1] == D && o.dtype == NGPT_DTYPE_F32);
        double worst = 1.0;
        float maxd = 0.f;
        for (int64_t r = 0; r < rows; r++) {
            const float *a = (const float *)o.data + r * D, *b = (const float *)ref.data + r * D;
            double c = cosine(a, b, D);
            if (!(c >= worst)) worst = c; /* NaN counts as worst */
            for (int64_t j = 0; j < D; j++) maxd = (float)test_worst(maxd, fabsf(a[j] - b[j]));
        }
        fprintf(stderr, "imagebind cuda %-4s %-24s min cosine %.7f, max abs diff %.2e (bound cosine >= %g)\n",
                ngpt_dtype_name(dts[i]), what, worst, (double)maxd, bounds[i]);
        CHECK_MSG(worst >= bounds[i], "%s %s: cosine %.7f < %g", what, ngpt_dtype_name(dts[i]), worst, bounds[i]);
        ngpt_tensor_free(&o);
    }
    ngpt_tensor_free(&ref);
}

static void test_images(void)
{
    float *px = randn((size_t)2 * 3 * 224 * 224, 7u);
    if (!px) return;
    ngpt_tensor t = {NGPT_DTYPE_F32, 4, {2, 3, 224, 224}, px, NULL};
    compare("2 images", ngpt_encoder_encode_pixels, &t);
    free(px);
}

static void test_video(void)
{
    float *px = randn((size_t)3 * 3 * 2 * 224 * 224, 11u);
    if (!px) return;
    ngpt_tensor t = {NGPT_DTYPE_F32, 6, {1, 3, 3, 2, 224, 224}, px, NULL};
    compare("video: 1 item x 3 clips", ngpt_encoder_encode_pixels, &t);
    free(px);
}

static void test_audio(void)
{
    float *fb = randn((size_t)3 * 128 * 204, 13u);
    if (!fb) return;
    ngpt_tensor t = {NGPT_DTYPE_F32, 4, {3, 1, 128, 204}, fb, NULL};
    compare("audio: 3 clips", ngpt_encoder_encode_fbank, &t);
    free(fb);
}

static ngpt_context *g_cuda_log; /* test_cuda_logging_context */

/* NGPT_ENCODER_FLAG_CUDA_GRAPH: four calls of one shape with other pixels each (call 1 op by op,
 * call 2 recorded, calls 3 and 4 replayed with the input refilled) equal an encoder without the
 * flag on the same pixels; a new shape (one image) drops the recording and still agrees; no
 * "not captured" fallback is logged. */
static void test_graph(void)
{
    const size_t n = (size_t)2 * 3 * 224 * 224;
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    p.compute_dtype = NGPT_DTYPE_F16;
    ngpt_encoder *plain = NULL, *rec = NULL;
    CHECK_OK(ngpt_encoder_create(&plain, g_cuda_log, g_model, &p));
    p.flags = NGPT_ENCODER_FLAG_CUDA_GRAPH;
    CHECK_OK(ngpt_encoder_create(&rec, g_cuda_log, g_model, &p));
    *test_graph_fallbacks() = 0;
    for (int call = 0; plain && rec && call < 5; call++) {
        float *px = randn(n, 100u + (uint32_t)call);
        if (!px) break;
        ngpt_tensor t = {NGPT_DTYPE_F32, 4, {call == 4 ? 1 : 2, 3, 224, 224}, px, NULL};
        ngpt_tensor a = {0}, b = {0};
        CHECK_OK(ngpt_encoder_encode_pixels(plain, &a, &t));
        CHECK_OK(ngpt_encoder_encode_pixels(rec, &b, &t));
        if (a.data && b.data) {
            const double maxd = test_max_abs_diff(a.data, b.data, (size_t)(a.shape[0] * a.shape[1]));
            fprintf(stderr, "imagebind cuda graph, call %d: max abs diff %.2e against no graph\n", call + 1, maxd);
            CHECK_MSG(b.shape[0] == a.shape[0] && maxd <= 1e-6f, "call %d: %.3g from the encoder without the flag",
                      call + 1, maxd);
        }
        ngpt_tensor_free(&a);
        ngpt_tensor_free(&b);
        free(px);
    }
    CHECK_MSG(*test_graph_fallbacks() == 0, "the encode was not recorded as a graph (see the log above)");
    ngpt_encoder_free(plain);
    ngpt_encoder_free(rec);
}

static void test_cpu_refuses_f16(void)
{
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    p.compute_dtype = NGPT_DTYPE_F16;
    ngpt_encoder *e = NULL;
    CHECK_ERR(ngpt_encoder_create(&e, g_cpu, g_model, &p), NGPT_ERR_UNSUPPORTED, "F16");
    CHECK(e == NULL);
}

int main(void)
{
    if (!test_golden_dir(g_golden, sizeof g_golden, "models/imagebind-a/config.json")) return TEST_SKIP;
    snprintf(g_model, sizeof g_model, "%s/models/imagebind-a", g_golden);
    if (!(g_cuda = test_cuda_context())) return TEST_SKIP;
    if (!(g_cpu = test_cpu_context(0))) return 1;
    CHECK(g_cuda_log = test_cuda_logging_context());
    RUN(test_images);
    RUN(test_video);
    RUN(test_audio);
    if (g_cuda_log) RUN(test_graph);
    RUN(test_cpu_refuses_f16);
    ngpt_context_free(g_cuda_log);
    ngpt_context_free(g_cuda);
    ngpt_context_free(g_cpu);
    return test_done();
}
