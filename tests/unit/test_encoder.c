/* test_encoder.c — the ngpt_encoder API (ImageBind vision + audio) on the shared tiny checkpoint
 * ../shared/golden/models/imagebind-a: media convenience calls equal preprocess + encode, batching
 * and clip averaging, modalities not loaded, wrong shapes, broken checkpoints (temp copies
 * rewritten with nx_safetensors_write) and allocation failures over create + encode.
 * The numbers themselves are checked by the golden cases (imagebind.vision/audio/video). */
#include "test.h"

#include <pthread.h>
#include "alloc_fail.h"

#include "core/weights.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char g_shared[1024], g_model[1100];
static ngpt_context *g_ctx;

static ngpt_encoder *open_enc(uint32_t modalities)
{
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    p.modalities = modalities;
    ngpt_encoder *e = NULL;
    CHECK_OK(ngpt_encoder_create(&e, g_ctx, g_model, &p));
    return e;
}

static ngpt_tensor tensor_of(float *data, int rank, const int64_t *shape)
{
    ngpt_tensor t = {.dtype = NGPT_DTYPE_F32, .rank = rank, .data = data};
    for (int i = 0; i < rank; i++) t.shape[i] = shape[i];
    return t;
}

static void test_basics(void)
{
    ngpt_encoder *e = open_enc(0);
    if (!e) return;
    CHECK(ngpt_encoder_embed_dim(e) == 32);
    CHECK(ngpt_encoder_modalities(e) == (NGPT_ENCODER_IMAGE | NGPT_ENCODER_AUDIO | NGPT_ENCODER_VIDEO));
    CHECK(ngpt_encoder_embed_dim(NULL) == 0 && ngpt_encoder_modalities(NULL) == 0);
    ngpt_encoder_free(e);
    ngpt_encoder_free(NULL);

    e = open_enc(NGPT_ENCODER_VIDEO);
    if (e) CHECK(ngpt_encoder_modalities(e) == (NGPT_ENCODER_IMAGE | NGPT_ENCODER_VIDEO));
    ngpt_encoder_free(e);

    /* params: an old, shorter struct; bad bits */
    ngpt_encoder_params p;
    memset(&p, 0xab, sizeof p);
    CHECK_OK(ngpt_encoder_params_default(&p, sizeof(size_t) + sizeof(uint32_t)));
    CHECK(p.struct_size == sizeof(size_t) + sizeof(uint32_t) && p.modalities == 0);
    CHECK_ERR(ngpt_encoder_params_default(NULL, sizeof p), NGPT_ERR_INVALID_ARGUMENT, NULL);
    ngpt_encoder_params_default(&p, sizeof p);
    p.modalities = 0x80;
    ngpt_encoder *bad = NULL;
    CHECK_ERR(ngpt_encoder_create(&bad, g_ctx, g_model, &p), NGPT_ERR_INVALID_ARGUMENT, "modality bits");
    CHECK(bad == NULL);
    CHECK_ERR(ngpt_encoder_create(&bad, g_ctx, NULL, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_ERR(ngpt_encoder_create(&bad, g_ctx, "/nonexistent/imagebind", NULL), NGPT_ERR_NOT_FOUND, "/nonexistent/imagebind");
    ngpt_encoder_params_default(&p, sizeof p);
    p.flags = 0x2;
    CHECK_ERR(ngpt_encoder_create(&bad, g_ctx, g_model, &p), NGPT_ERR_INVALID_ARGUMENT, "flags 0x2");
    CHECK(bad == NULL);
}

/* NGPT_ENCODER_FLAG_CUDA_GRAPH on the CPU: accepted, no effect (the same embeddings, call after
 * call, as an encoder without it); test_encoder_cuda checks it where it records. */
static void test_graph_flag_on_cpu(void)
{
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    p.flags = NGPT_ENCODER_FLAG_CUDA_GRAPH;
    ngpt_encoder *g = NULL, *e = open_enc(0);
    CHECK_OK(ngpt_encoder_create(&g, g_ctx, g_model, &p));
    const size_t n = (size_t)2 * 3 * 224 * 224;
    float *px = malloc(n * sizeof(float));
    for (size_t i = 0; px && i < n; i++) px[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    const ngpt_tensor t = {NGPT_DTYPE_F32, 4, {2, 3, 224, 224}, px, NULL};
    for (int call = 0; px && g && e && call < 3; call++) {
        ngpt_tensor a = {0}, b = {0};
        CHECK_OK(ngpt_encoder_encode_pixels(e, &a, &t));
        CHECK_OK(ngpt_encoder_encode_pixels(g, &b, &t));
        CHECK(a.data && b.data && a.shape[0] == b.shape[0] && a.shape[1] == b.shape[1] &&
              !memcmp(a.data, b.data, (size_t)(a.shape[0] * a.shape[1]) * sizeof(float)));
        ngpt_tensor_free(&a);
        ngpt_tensor_free(&b);
    }
    free(px);
    ngpt_encoder_free(g);
    ngpt_encoder_free(e);
}

/* encode_image == image_preprocess + encode_pixels; a batch equals its items one by one. */
static void test_image(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/vision/image.preprocess/landscape_jpeg/input.jpg", g_shared);
    ngpt_encoder *e = open_enc(NGPT_ENCODER_IMAGE);
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_load(&img, path));
    if (!e || !img) goto done;
    ngpt_tensor a = {0}, px = {0}, b = {0}, batch = {0};
    CHECK_OK(ngpt_encoder_encode_image(e, &a, img));
    CHECK(a.rank == 2 && a.shape[0] == 1 && a.shape[1] == 32 && a.dtype == NGPT_DTYPE_F32 && a.owner);
    CHECK_OK(ngpt_image_preprocess(&px, img));
    ngpt_tensor p4 = px;
    p4.rank = 4;
    p4.shape[0] = 1;
    p4.shape[1] = 3;
    p4.shape[2] = p4.shape[3] = 224;
    p4.owner = NULL;
    CHECK_OK(ngpt_encoder_encode_pixels(e, &b, &p4));
    if (a.data && b.data) CHECK(memcmp(a.data, b.data, 32 * sizeof(float)) == 0);
    /* L2-normalised */
    double n2 = 0;
    for (int i = 0; a.data && i < 32; i++) n2 += (double)((float *)a.data)[i] * ((float *)a.data)[i];
    CHECK(fabs(n2 - 1.0) < 1e-5);

    /* batch of 3 = [img, noise, img] (more than one chunk is not needed: IB_CHUNK covers it) */
    size_t one = 3 * 224 * 224;
    float *x = malloc(3 * one * sizeof(float));
    test_rng r = {7};
    memcpy(x, px.data, one * sizeof(float));
    test_fill(&r, x + one, one, -2, 2);
    memcpy(x + 2 * one, px.data, one * sizeof(float));
    int64_t s4[4] = {3, 3, 224, 224};
    ngpt_tensor t = tensor_of(x, 4, s4);
    CHECK_OK(ngpt_encoder_encode_pixels(e, &batch, &t));
    if (batch.data && a.data) {
        test_close("batch item 0", (float *)batch.data, a.data, 32, 1e-6f, 1e-5f);
        test_close("batch item 2", (float *)batch.data + 64, a.data, 32, 1e-6f, 1e-5f);
    }
    /* the same image as a 1-frame clip [1, 3, 1, 224, 224] and as 2 identical frames */
    ngpt_tensor c = {0}, d = {0};
    int64_t s5[5] = {1, 3, 1, 224, 224};
    ngpt_tensor t5 = tensor_of(px.data, 5, s5);
    CHECK_OK(ngpt_encoder_encode_pixels(e, &c, &t5));
    float *two = malloc(2 * one * sizeof(float));
    for (int ch = 0; ch < 3; ch++)
        for (int f = 0; f < 2; f++)
            memcpy(two + (size_t)(ch * 2 + f) * 224 * 224, (float *)px.data + (size_t)ch * 224 * 224, 224 * 224 * sizeof(float));
    s5[2] = 2;
    t5 = tensor_of(two, 5, s5);
    CHECK_OK(ngpt_encoder_encode_pixels(e, &d, &t5));
    if (c.data && d.data && a.data) {
        CHECK(memcmp(c.data, a.data, 32 * sizeof(float)) == 0);
        CHECK(memcmp(d.data, a.data, 32 * sizeof(float)) == 0);
    }
    /* 6-D: one video of 2 clips [img, img] -> the mean = the image's embedding */
    float *two2 = malloc(4 * one * sizeof(float));
    memcpy(two2, two, 2 * one * sizeof(float));
    memcpy(two2 + 2 * one, two, 2 * one * sizeof(float));
    int64_t s6[6] = {1, 2, 3, 2, 224, 224};
    ngpt_tensor t6 = tensor_of(two2, 6, s6);
    ngpt_tensor v = {0};
    CHECK_OK(ngpt_encoder_encode_pixels(e, &v, &t6));
    CHECK(v.rank == 2 && v.shape[0] == 1);
    if (v.data && a.data) test_close("mean of 2 equal clips", v.data, a.data, 32, 1e-7f, 1e-6f);
    ngpt_tensor_free(&v);
    free(two2);
    free(two);
    ngpt_tensor_free(&c);
    ngpt_tensor_free(&d);
    free(x);
    ngpt_tensor_free(&batch);
    ngpt_tensor_free(&a);
    ngpt_tensor_free(&b);
    ngpt_tensor_free(&px);
done:
    ngpt_image_free(img);
    ngpt_encoder_free(e);
}

/* encode_audio == audio_preprocess + encode_fbank ([3,1,128,204] = one item of 3 clips);
 * encode_video_file == video_preprocess + encode_pixels([1, 15, ...]). */
static void test_audio_video(void)
{
    char path[1200];
    ngpt_encoder *e = open_enc(0);
    if (!e) return;
    snprintf(path, sizeof path, "%s/vision/audio.fbank/mono16k_3s/input.wav", g_shared);
    ngpt_audio *au = NULL;
    CHECK_OK(ngpt_audio_load(&au, path));
    ngpt_tensor a = {0}, fb = {0}, b = {0};
    CHECK_OK(ngpt_encoder_encode_audio(e, &a, au, NULL));
    CHECK(a.rank == 2 && a.shape[0] == 1 && a.shape[1] == 32);
    CHECK_OK(ngpt_audio_preprocess(&fb, au, NULL));
    CHECK_OK(ngpt_encoder_encode_fbank(e, &b, &fb));
    if (a.data && b.data) CHECK(memcmp(a.data, b.data, 32 * sizeof(float)) == 0);
    /* 5-D [2, 3, ...] with the same sound twice -> 2 equal rows */
    if (fb.data) {
        size_t n = (size_t)ngpt_tensor_numel(&fb);
        float *x = malloc(2 * n * sizeof(float));
        memcpy(x, fb.data, n * sizeof(float));
        memcpy(x + n, fb.data, n * sizeof(float));
        int64_t s5[5] = {2, 3, 1, 128, 204};
        ngpt_tensor t = tensor_of(x, 5, s5), c = {0};
        CHECK_OK(ngpt_encoder_encode_fbank(e, &c, &t));
        if (c.data && a.data) {
            test_close("fbank batch row 0", c.data, a.data, 32, 1e-6f, 1e-5f);
            test_close("fbank batch row 1", (float *)c.data + 32, a.data, 32, 1e-6f, 1e-5f);
        }
        ngpt_tensor_free(&c);
        free(x);
    }
    ngpt_tensor_free(&a);
    ngpt_tensor_free(&b);
    ngpt_tensor_free(&fb);
    ngpt_audio_free(au);

    snprintf(path, sizeof path, "%s/vision/video.preprocess/mandelbrot_h264_24fps_4_5s/input.mp4", g_shared);
    ngpt_tensor v = {0}, px = {0}, w = {0};
    CHECK_OK(ngpt_encoder_encode_video_file(e, &v, path, NULL));
    CHECK(v.rank == 2 && v.shape[0] == 1 && v.shape[1] == 32);
    CHECK_OK(ngpt_video_preprocess(&px, path, NULL));
    if (px.data) {
        ngpt_tensor p6 = px;
        p6.owner = NULL;
        p6.rank = 6;
        p6.shape[0] = 1;
        for (int i = 0; i < 5; i++) p6.shape[1 + i] = px.shape[i];
        CHECK_OK(ngpt_encoder_encode_pixels(e, &w, &p6));
        if (v.data && w.data) CHECK(memcmp(v.data, w.data, 32 * sizeof(float)) == 0);
        /* the mean of 15 unit vectors is not re-normalised: its norm is below 1 */
        double n2 = 0;
        for (int i = 0; v.data && i < 32; i++) n2 += (double)((float *)v.data)[i] * ((float *)v.data)[i];
        CHECK(n2 < 1.0 - 1e-4);
    }
    ngpt_tensor_free(&v);
    ngpt_tensor_free(&w);
    ngpt_tensor_free(&px);
    CHECK_ERR(ngpt_encoder_encode_video_file(e, &v, "/nonexistent.mp4", NULL), NGPT_ERR_NOT_FOUND, "/nonexistent.mp4");
    ngpt_encoder_free(e);
}

static void test_not_loaded_and_shapes(void)
{
    ngpt_encoder *img = open_enc(NGPT_ENCODER_IMAGE), *aud = open_enc(NGPT_ENCODER_AUDIO);
    if (!img || !aud) goto done;
    float *x = calloc(2 * 3 * 2 * 224 * 224, sizeof(float));
    ngpt_tensor out = {0};
    int64_t fs[4] = {3, 1, 128, 204};
    ngpt_tensor fb = tensor_of(x, 4, fs);
    CHECK_ERR(ngpt_encoder_encode_fbank(img, &out, &fb), NGPT_ERR_UNSUPPORTED, "audio branch is not loaded");
    CHECK(out.data == NULL && out.rank == 0);
    int64_t ps[4] = {1, 3, 224, 224};
    ngpt_tensor px = tensor_of(x, 4, ps);
    CHECK_ERR(ngpt_encoder_encode_pixels(aud, &out, &px), NGPT_ERR_UNSUPPORTED, "vision branch is not loaded");
    ngpt_audio *a = NULL;
    float pcm[32000] = {0};
    CHECK_OK(ngpt_audio_from_pcm(&a, pcm, 32000, 1, 16000));
    CHECK_ERR(ngpt_encoder_encode_audio(img, &out, a, NULL), NGPT_ERR_UNSUPPORTED, "audio branch is not loaded");
    ngpt_audio_free(a);
    CHECK_ERR(ngpt_encoder_encode_video_file(aud, &out, "x.mp4", NULL), NGPT_ERR_UNSUPPORTED, "vision branch is not loaded");

    /* wrong shapes: the message names the tensor, what was expected and what came */
    int64_t s1[4] = {1, 3, 224, 225};
    ngpt_tensor t = tensor_of(x, 4, s1);
    CHECK_ERR(ngpt_encoder_encode_pixels(img, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "got [1, 3, 224, 225]");
    int64_t s2[3] = {3, 224, 224};
    t = tensor_of(x, 3, s2);
    CHECK_ERR(ngpt_encoder_encode_pixels(img, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "pixels: expected [N, 3, 224, 224]");
    int64_t s3[5] = {1, 3, 3, 224, 224};
    t = tensor_of(x, 5, s3);
    CHECK_ERR(ngpt_encoder_encode_pixels(img, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "got [1, 3, 3, 224, 224]");
    int64_t s4[6] = {1, 2, 4, 2, 224, 224};
    t = tensor_of(x, 6, s4);
    CHECK_ERR(ngpt_encoder_encode_pixels(img, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "got [1, 2, 4, 2, 224, 224]");
    int64_t s5[4] = {3, 1, 128, 200};
    t = tensor_of(x, 4, s5);
    CHECK_ERR(ngpt_encoder_encode_fbank(aud, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "fbank: expected [N, clips, 1, 128, 204]");
    int64_t s6[2] = {128, 204};
    t = tensor_of(x, 2, s6);
    CHECK_ERR(ngpt_encoder_encode_fbank(aud, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "got [128, 204]");
    t = tensor_of(NULL, 4, ps);
    CHECK_ERR(ngpt_encoder_encode_pixels(img, &out, &t), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_ERR(ngpt_encoder_encode_pixels(img, &out, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_ERR(ngpt_encoder_encode_pixels(NULL, &out, &px), NGPT_ERR_INVALID_ARGUMENT, NULL);
    CHECK_ERR(ngpt_encoder_encode_image(img, &out, NULL), NGPT_ERR_INVALID_ARGUMENT, NULL);
    /* an empty batch is fine */
    int64_t s0[4] = {0, 3, 224, 224};
    t = tensor_of(x, 4, s0);
    CHECK_OK(ngpt_encoder_encode_pixels(img, &out, &t));
    CHECK(out.rank == 2 && out.shape[0] == 0 && out.shape[1] == 32);
    ngpt_tensor_free(&out);
    int64_t f0[5] = {0, 3, 1, 128, 204};  // no sounds: as no images
    t = tensor_of(x, 5, f0);
    CHECK_OK(ngpt_encoder_encode_fbank(aud, &out, &t));
    CHECK(out.rank == 2 && out.shape[0] == 0 && out.shape[1] == 32);
    ngpt_tensor_free(&out);
    /* a sound or a video of no clips has no mean */
    int64_t c0[4] = {0, 1, 128, 204}, c1[5] = {2, 0, 1, 128, 204}, v0[6] = {1, 0, 3, 2, 224, 224};
    t = tensor_of(x, 4, c0);
    CHECK_ERR(ngpt_encoder_encode_fbank(aud, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "got [0, 1, 128, 204]");
    t = tensor_of(x, 5, c1);
    CHECK_ERR(ngpt_encoder_encode_fbank(aud, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "got [2, 0, 1, 128, 204]");
    t = tensor_of(x, 6, v0);
    CHECK_ERR(ngpt_encoder_encode_pixels(img, &out, &t), NGPT_ERR_SHAPE_MISMATCH, "got [1, 0, 3, 2, 224, 224]");
    free(x);
done:
    ngpt_encoder_free(img);
    ngpt_encoder_free(aud);
}

// ----------------------------------------------------------------------------
// broken checkpoints

static char g_tmp[256];

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb"), *g = fopen(to, "wb");
    char buf[4096];
    size_t n;
    while (f && g && (n = fread(buf, 1, sizeof buf, f)) > 0) fwrite(buf, 1, n, g);
    if (f) fclose(f);
    if (g) fclose(g);
}

/* Rewrite tmp/model.safetensors from the shared one: drop `drop`, give `reshape` the shape
 * `shape` (same data, fewer elements), add `extra` (a [4] tensor). */
static void write_variant(const char *drop, const char *reshape, int rank, const int64_t *shape, const char *extra)
{
    char src[1200], dst[512];
    snprintf(src, sizeof src, "%s/model.safetensors", g_model);
    snprintf(dst, sizeof dst, "%s/model.safetensors", g_tmp);
    nx_weights *w = NULL;
    CHECK_OK(nx_weights_open(&w, src));
    if (!w) return;
    size_t n = nx_weights_count(w);
    nx_st_entry *e = calloc(n + 1, sizeof *e);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const nx_wtensor *t = nx_weights_at(w, i);
        if (drop && strcmp(t->name, drop) == 0) continue;
        e[k] = (nx_st_entry){t->name, t->dtype, t->rank, t->shape, t->data};
        if (reshape && strcmp(t->name, reshape) == 0) {
            e[k].rank = rank;
            e[k].shape = shape;
        }
        k++;
    }
    static const float four[4] = {1, 2, 3, 4};
    static const int64_t s4[1] = {4};
    if (extra) e[k++] = (nx_st_entry){extra, NGPT_DTYPE_F32, 1, s4, four};
    CHECK_OK(nx_safetensors_write(dst, e, k, NULL, 0));
    free(e);
    nx_weights_close(w);
}

/* compute_dtype: BF16 within cosine 0.99 of F32 (image and audio); scoped to the encoder's own
 * calls (an F32 encoder on the same context, run before, after and concurrently on another
 * thread, gives bit-identical results); F16 refused. */
typedef struct cd_job {
    ngpt_encoder *e;
    const ngpt_tensor *px;
    float out[4][32];
    int n;
    ngpt_status st;
} cd_job;

static void *cd_run(void *arg)
{
    cd_job *j = arg;
    j->st = NGPT_OK;
    for (int i = 0; i < j->n && j->st == NGPT_OK; i++) {
        ngpt_tensor o = {0};
        j->st = ngpt_encoder_encode_pixels(j->e, &o, j->px);
        if (j->st == NGPT_OK) memcpy(j->out[i], o.data, sizeof j->out[i]);
        ngpt_tensor_free(&o);
    }
    return NULL;
}

static double cosine(const float *a, const float *b, int n)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    return ab / sqrt(aa * bb + 1e-30);
}

static void test_compute_dtype(void)
{
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    CHECK(p.compute_dtype == NGPT_DTYPE_F32);
    ngpt_encoder *bad = NULL;
    p.compute_dtype = NGPT_DTYPE_F16;
    CHECK_ERR(ngpt_encoder_create(&bad, g_ctx, g_model, &p), NGPT_ERR_UNSUPPORTED, "compute_dtype F16");
    CHECK(bad == NULL);
    /* a caller built before compute_dtype existed: its struct_size stops at flags -> F32 */
    p.struct_size = offsetof(ngpt_encoder_params, compute_dtype);
    p.compute_dtype = (ngpt_dtype)77; /* beyond the caller's struct: never read */
    ngpt_encoder *old = NULL;
    CHECK_OK(ngpt_encoder_create(&old, g_ctx, g_model, &p));
    ngpt_encoder_free(old);

    ngpt_encoder *f32 = open_enc(0), *bf = NULL;
    ngpt_encoder_params_default(&p, sizeof p);
    p.compute_dtype = NGPT_DTYPE_BF16;
    CHECK_OK(ngpt_encoder_create(&bf, g_ctx, g_model, &p));
    char path[1200];
    snprintf(path, sizeof path, "%s/vision/image.preprocess/landscape_jpeg/input.jpg", g_shared);
    ngpt_image *img = NULL;
    CHECK_OK(ngpt_image_load(&img, path));
    ngpt_tensor px = {0};
    if (img) CHECK_OK(ngpt_image_preprocess(&px, img));
    if (!f32 || !bf || !px.data) goto done;
    ngpt_tensor p4 = px;
    p4.rank = 4;
    p4.shape[0] = 1;
    p4.shape[1] = 3;
    p4.shape[2] = p4.shape[3] = 224;
    p4.owner = NULL;

    cd_job a = {f32, &p4, {{0}}, 1, 0}, b = {bf, &p4, {{0}}, 1, 0}, a2 = {f32, &p4, {{0}}, 1, 0};
    cd_run(&a);
    cd_run(&b);
    cd_run(&a2);
    CHECK_OK(a.st);
    CHECK_OK(b.st);
    CHECK_OK(a2.st);
    double c = cosine(a.out[0], b.out[0], 32);
    CHECK_MSG(c > 0.99, "image: cosine(bf16, f32) = %.6f", c);
    CHECK_MSG(memcmp(a.out[0], b.out[0], sizeof a.out[0]) != 0, "bf16 gave exactly the f32 result: not switched?");
    CHECK_MSG(memcmp(a.out[0], a2.out[0], sizeof a.out[0]) == 0, "f32 changed after a bf16 call");

    /* audio: a 1 s tone */
    {
        float pcm[16000];
        for (int i = 0; i < 16000; i++) pcm[i] = 0.4f * sinf((float)i * 0.07f) + 0.1f * sinf((float)i * 0.9f);
        ngpt_audio *au = NULL;
        CHECK_OK(ngpt_audio_from_pcm(&au, pcm, 16000, 1, 16000));
        ngpt_tensor ea = {0}, eb = {0};
        CHECK_OK(ngpt_encoder_encode_audio(f32, &ea, au, NULL));
        CHECK_OK(ngpt_encoder_encode_audio(bf, &eb, au, NULL));
        if (ea.data && eb.data) {
            double ca = cosine(ea.data, eb.data, 32);
            CHECK_MSG(ca > 0.99, "audio: cosine(bf16, f32) = %.6f", ca);
        }
        ngpt_tensor_free(&ea);
        ngpt_tensor_free(&eb);
        ngpt_audio_free(au);
    }

    /* interleaved on one context: each keeps its own compute type (the per-thread scoping is
     * checked across threads in tests/ops/test_ops_gemm.c) */
    cd_job ta = {f32, &p4, {{0}}, 1, 0}, tb = {bf, &p4, {{0}}, 1, 0};
    for (int i = 0; i < 2; i++) {
        cd_run(&tb);
        cd_run(&ta);
        CHECK_MSG(ta.st == NGPT_OK && memcmp(ta.out[0], a.out[0], sizeof a.out[0]) == 0, "f32 run %d differs", i);
        CHECK_MSG(tb.st == NGPT_OK && memcmp(tb.out[0], b.out[0], sizeof b.out[0]) == 0, "bf16 run %d differs", i);
    }
    printf("  compute_dtype: image cosine(bf16, f32) = %.6f\n", c);
done:
    ngpt_tensor_free(&px);
    ngpt_image_free(img);
    ngpt_encoder_free(f32);
    ngpt_encoder_free(bf);
}

static void test_bad_checkpoints(void)
{
    snprintf(g_tmp, sizeof g_tmp, "/tmp/ngpt_test_encoder_XXXXXX");
    if (!mkdtemp(g_tmp)) {
        CHECK_MSG(0, "mkdtemp failed");
        return;
    }
    char cfg_src[1200], cfg_dst[512], st[512];
    snprintf(cfg_src, sizeof cfg_src, "%s/config.json", g_model);
    snprintf(cfg_dst, sizeof cfg_dst, "%s/config.json", g_tmp);
    snprintf(st, sizeof st, "%s/model.safetensors", g_tmp);
    copy_file(cfg_src, cfg_dst);
    ngpt_encoder *e = NULL;

    write_variant("modality_trunks.vision.blocks.1.mlp.fc2.bias", NULL, 0, NULL, NULL);
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_NOT_FOUND, "modality_trunks.vision.blocks.1.mlp.fc2.bias");
    CHECK(e == NULL);
    /* ... but an audio-only encoder does not need it */
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    p.modalities = NGPT_ENCODER_AUDIO;
    CHECK_OK(ngpt_encoder_create(&e, g_ctx, g_tmp, &p));
    ngpt_encoder_free(e);
    e = NULL;

    int64_t pos[3] = {1, 256, 64};
    write_variant(NULL, "modality_preprocessors.vision.pos_embedding_helper.pos_embed", 3, pos, NULL);
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_SHAPE_MISMATCH, "expected [1, 257, 64], got [1, 256, 64]");

    int64_t kv[3] = {1, 1, 40};
    write_variant(NULL, "modality_trunks.audio.blocks.0.attn.bias_k", 3, kv, NULL);
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_SHAPE_MISMATCH, "modality_trunks.audio.blocks.0.attn.bias_k");

    /* other ImageBind modalities are skipped; anything else is reported */
    write_variant(NULL, NULL, 0, NULL, "modality_trunks.text.blocks.0.norm_1.weight");
    CHECK_OK(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL));
    ngpt_encoder_free(e);
    e = NULL;
    write_variant(NULL, NULL, 0, NULL, "modality_trunks.vision.blocks.0.attn.extra");
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_UNEXPECTED_TENSOR, "modality_trunks.vision.blocks.0.attn.extra");
    write_variant(NULL, NULL, 0, NULL, "logit_scale");
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_UNEXPECTED_TENSOR, "logit_scale");

    /* a checkpoint file alone is imagebind_huge: the tiny one does not fit */
    write_variant(NULL, NULL, 0, NULL, NULL);
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, st, NULL), NGPT_ERR_SHAPE_MISMATCH, "1280");

    /* bad config.json */
    FILE *f = fopen(cfg_dst, "w");
    if (f) {
        fputs("{\"vision_embed_dim\": 64, \"vision_num_heads\": 5}", f);
        fclose(f);
    }
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_BAD_FORMAT, "not a multiple");
    f = fopen(cfg_dst, "w");
    if (f) {
        fputs("{\"out_embed_dim\": \"big\"}", f);
        fclose(f);
    }
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_BAD_FORMAT, "out_embed_dim");
    /* no checkpoint in the folder (and no config.json: imagebind_huge's sizes) */
    unlink(cfg_dst);
    unlink(st);
    CHECK_ERR(ngpt_encoder_create(&e, g_ctx, g_tmp, NULL), NGPT_ERR_NOT_FOUND, "model.safetensors");
    rmdir(g_tmp);
}

// ----------------------------------------------------------------------------
// allocation failures

static ngpt_status create_and_encode(void *user)
{
    (void)user;
    ngpt_encoder *e = NULL;
    NX_TRY(ngpt_encoder_create(&e, g_ctx, g_model, NULL));
    static float x[3 * 1 * 128 * 204];
    int64_t s[4] = {3, 1, 128, 204};
    ngpt_tensor t = tensor_of(x, 4, s), out = {0};
    ngpt_status st = ngpt_encoder_encode_fbank(e, &out, &t);
    ngpt_tensor_free(&out);
    ngpt_encoder_free(e);
    return st;
}

/* A handle used on one thread and then on another (oneDNN primitives are cached per context and
 * built on the first thread): same result, no crash. */
typedef struct {
    ngpt_encoder *enc;
    const ngpt_tensor *px;
    ngpt_tensor out;
    ngpt_status s;
} thread_job;

static void *encode_job(void *arg)
{
    thread_job *j = arg;
    j->s = ngpt_encoder_encode_pixels(j->enc, &j->out, j->px);
    return NULL;
}

static void test_other_thread(void)
{
    ngpt_encoder *e = open_enc(0);
    if (!e) return;
    static float px_data[3 * 224 * 224];
    for (size_t i = 0; i < sizeof px_data / sizeof px_data[0]; i++) px_data[i] = (float)((i * 7919) % 255) / 255.0f - 0.5f;
    const int64_t shape[4] = {1, 3, 224, 224};
    ngpt_tensor px = tensor_of(px_data, 4, shape);
    thread_job a = {.enc = e, .px = &px}, b = {.enc = e, .px = &px};
    encode_job(&a);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, encode_job, &b) == 0);
    pthread_join(t, NULL);
    CHECK_OK(a.s);
    CHECK_OK(b.s);
    if (a.s == NGPT_OK && b.s == NGPT_OK)
        CHECK(memcmp(a.out.data, b.out.data, ngpt_tensor_nbytes(&a.out)) == 0);
    ngpt_tensor_free(&a.out);
    ngpt_tensor_free(&b.out);
    ngpt_encoder_free(e);
}

static void test_alloc_failures(void)
{
    int64_t n = test_alloc_fail_all("ngpt_encoder_create + encode_fbank", create_and_encode, NULL);
    CHECK(n > 10);
}

int main(void)
{
    const char *src = getenv("NGPT_SOURCE_ROOT");
    const char *gd = getenv("NGPT_GOLDEN_DIR");
    if (gd) snprintf(g_shared, sizeof g_shared, "%s", gd);
    else snprintf(g_shared, sizeof g_shared, "%s/../shared/golden", src ? src : ".");
    snprintf(g_model, sizeof g_model, "%s/models/imagebind-a", g_shared);
    struct stat sb;
    if (stat(g_model, &sb) != 0) {
        fprintf(stderr, "SKIP: the shared ImageBind model is not at %s (set NGPT_GOLDEN_DIR)\n", g_model);
        return TEST_SKIP;
    }
    ngpt_context_params cp;
    ngpt_context_params_default(&cp, sizeof cp);
    cp.device = NGPT_DEVICE_CPU;
    cp.n_threads = 2;
    CHECK_OK(ngpt_context_create(&g_ctx, &cp));
    if (!g_ctx) return test_done();
    RUN(test_basics);
    RUN(test_image);
    RUN(test_audio_video);
    RUN(test_not_loaded_and_shapes);
    RUN(test_compute_dtype);
    RUN(test_graph_flag_on_cpu);
    RUN(test_bad_checkpoints);
    RUN(test_other_thread);
    RUN(test_alloc_failures);
    ngpt_context_free(g_ctx);
    return test_done();
}
