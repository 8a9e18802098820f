/* encoder.c — ngpt_encoder: ImageBind's vision and audio branches (lib/models/imagebind.c)
 * behind the public API. This file checks the caller's tensors, flattens items x clips into
 * one batch of clips and moves data across the ABI (bridge.h); the media convenience calls
 * chain the public preprocessing functions. */
#include "bridge.h"
#include "context.h"

#include "../core/alloc.h"
#include "../models/imagebind.h"
#include "../ops/cpu/cpu_ops.h"

#include <stdio.h>
#include <string.h>

/* NGPT_ENCODER_FLAG_CUDA_GRAPH: the recording of one encode shape (the last one seen twice in a
 * row) with the device buffers it reads and writes, kept while the recording lives */
typedef struct enc_graph {
    nx_ib_modality mod;
    int            rank;
    int64_t        shape[NGPT_MAX_DIMS];
    int64_t        clips;
    bool           seen;    /* the previous call had this key */
    bool           failed;  /* recording it failed: op by op until the key changes */
    nx_tensor      x, y;
    nx_graph      *g;
} enc_graph;

struct ngpt_encoder {
    ngpt_context *ctx;
    nx_imagebind *ib;
    ngpt_dtype compute_dtype; /* F32, or BF16 (CPU backend only) */
    bool cuda_graph;          /* NGPT_ENCODER_FLAG_CUDA_GRAPH on a backend that records graphs */
    enc_graph graph;
};

NGPT_API ngpt_status ngpt_encoder_params_default(ngpt_encoder_params *p, size_t struct_size)
{
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_params_default: p is NULL");
    if (struct_size < sizeof(size_t))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_params_default: struct_size %zu too small", struct_size);
    ngpt_encoder_params d;
    memset(&d, 0, sizeof d);
    d.struct_size = sizeof d;
    d.compute_dtype = NGPT_DTYPE_F32;
    size_t n = struct_size < sizeof d ? struct_size : sizeof d;
    memcpy(p, &d, n);
    p->struct_size = n;
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_encoder_create(ngpt_encoder **out, ngpt_context *ctx, const char *path,
                                         const ngpt_encoder_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_create: out is NULL");
    *out = NULL;
    if (!ctx || !path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_create: ctx or path is NULL");
    NX_HOLD_DEVICE(ctx);
    ngpt_encoder_params p;
    ngpt_encoder_params_default(&p, sizeof p);
    if (params) {
        if (params->struct_size < sizeof(size_t) || params->struct_size > 65536)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_create: params->struct_size is %zu", params->struct_size);
        memcpy(&p, params, params->struct_size < sizeof p ? params->struct_size : sizeof p);
    }
    const uint32_t all = NGPT_ENCODER_IMAGE | NGPT_ENCODER_AUDIO | NGPT_ENCODER_VIDEO;
    if (p.modalities & ~all)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_create: unknown modality bits 0x%x", p.modalities & ~all);
    if (p.flags & ~NGPT_ENCODER_FLAG_CUDA_GRAPH)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_create: unknown flags 0x%x",
                      p.flags & ~NGPT_ENCODER_FLAG_CUDA_GRAPH);
    const bool on_cpu = ctx->be == ctx->cpu;
    const bool half = p.compute_dtype == NGPT_DTYPE_F16 || p.compute_dtype == NGPT_DTYPE_BF16;
    if (p.compute_dtype != NGPT_DTYPE_F32 && !(on_cpu ? p.compute_dtype == NGPT_DTYPE_BF16 : half))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_encoder_create: compute_dtype %s is not supported on the %s backend "
                      "(F32, or BF16 on the CPU; F16 or BF16 on CUDA)", ngpt_dtype_name(p.compute_dtype),
                      on_cpu ? "CPU" : "CUDA");
    unsigned want = 0;
    if (p.modalities & (NGPT_ENCODER_IMAGE | NGPT_ENCODER_VIDEO)) want |= NX_IB_BIT(NX_IB_VISION);
    if (p.modalities & NGPT_ENCODER_AUDIO) want |= NX_IB_BIT(NX_IB_AUDIO);

    ngpt_encoder *e = nx_calloc(1, sizeof *e);
    if (!e) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_encoder_create: out of memory");
    e->ctx = ctx;
    e->compute_dtype = p.compute_dtype;
    e->cuda_graph = (p.flags & NGPT_ENCODER_FLAG_CUDA_GRAPH) && ctx->be->v->capture_begin;
    /* CPU BF16 is a GEMM mode (F32 activations, oneDNN bf16: the scope in encode()) on matrices
     * converted to BF16 once here (rounded as the GEMM would round them per call: the same
     * products, half the memory, and oneDNN's bf16 kernels take them in place); on CUDA the
     * compute dtype is the activation dtype */
    ngpt_status s = nx_imagebind_load(&e->ib, ctx->be, path, want, on_cpu ? NGPT_DTYPE_F32 : p.compute_dtype,
                                      on_cpu ? p.compute_dtype : NGPT_DTYPE_F32);
    if (s != NGPT_OK) {
        ngpt_encoder_free(e);
        return s;
    }
    *out = e;
    return NGPT_OK;
}

/* Drop the recording and its buffers (a new key, or the encoder's end). */
static void graph_reset(ngpt_encoder *enc)
{
    enc_graph *eg = &enc->graph;
    nx_backend_graph_free(enc->ctx->be, eg->g);
    nx_tensor_free(&eg->x);
    nx_tensor_free(&eg->y);
    memset(eg, 0, sizeof *eg);
}

NGPT_API void ngpt_encoder_free(ngpt_encoder *enc)
{
    if (!enc) return;
    NX_HOLD_DEVICE(enc->ctx); /* the context outlives its handles */
    graph_reset(enc);
    nx_imagebind_free(enc->ib);
    nx_free(enc);
}

NGPT_API int32_t ngpt_encoder_embed_dim(const ngpt_encoder *enc)
{
    return enc ? nx_imagebind_get_config(enc->ib)->out_embed_dim : 0;
}

NGPT_API uint32_t ngpt_encoder_modalities(const ngpt_encoder *enc)
{
    if (!enc) return 0;
    uint32_t m = 0;
    if (nx_imagebind_has(enc->ib, NX_IB_VISION)) m |= NGPT_ENCODER_IMAGE | NGPT_ENCODER_VIDEO;
    if (nx_imagebind_has(enc->ib, NX_IB_AUDIO)) m |= NGPT_ENCODER_AUDIO;
    return m;
}

typedef struct enc_run {
    ngpt_encoder  *enc;
    nx_ib_modality mod;
    nx_tensor     *y;
    const nx_tensor *x;
    int64_t        clips;
} enc_run;

static ngpt_status run_branch(void *arg)
{
    const enc_run *r = arg;
    return nx_imagebind_encode(r->enc->ib, r->mod, r->y, r->x, r->clips);
}

/* NGPT_ENCODER_FLAG_CUDA_GRAPH: the first call of a shape runs op by op (it makes the plans, pools
 * and constants a recording must find); a second call in a row with the same shape uploads into
 * buffers the encoder keeps, is recorded and launched; later calls of that shape refill the
 * input buffer and launch the recording. *done false: the caller runs the call as usual. */
static ngpt_status encode_graph(ngpt_encoder *enc, nx_ib_modality mod, ngpt_tensor *out, const ngpt_tensor *flat,
                                int64_t clips, const int64_t *ys, const char *what, bool *done)
{
    enc_graph *eg = &enc->graph;
    nx_backend *be = enc->ctx->be;
    bool same = eg->seen && eg->mod == mod && eg->rank == flat->rank && eg->clips == clips &&
                !memcmp(eg->shape, flat->shape, (size_t)flat->rank * sizeof(int64_t));
    *done = false;
    if (!same) {
        graph_reset(enc);
        eg->seen = true;
        eg->mod = mod;
        eg->rank = flat->rank;
        eg->clips = clips;
        memcpy(eg->shape, flat->shape, (size_t)flat->rank * sizeof(int64_t));
        return NGPT_OK;
    }
    if (eg->failed) return NGPT_OK;
    ngpt_status s = NGPT_OK;
    enc_run r = {enc, mod, &eg->y, &eg->x, clips};
    if (!eg->g) {
        s = nx_api_upload(&eg->x, be, flat, NGPT_DTYPE_F32, what);
        if (s == NGPT_OK) s = nx_tensor_alloc(&eg->y, be, NGPT_DTYPE_F32, 2, ys);
        if (s == NGPT_OK) s = nx_backend_record(be, run_branch, &r, &eg->g, what);
    } else {
        s = nx_api_upload_into(&eg->x, flat, what);
        if (s == NGPT_OK) s = nx_backend_replay(be, &eg->g, run_branch, &r, what);
    }
    if (s == NGPT_OK && !eg->g) eg->failed = true; /* ran op by op (logged): do not try again */
    if (s == NGPT_OK) s = nx_api_download(out, &eg->y, NGPT_DTYPE_F32);
    if (s != NGPT_OK) graph_reset(enc); /* a failed call leaves nothing recorded */
    *done = true;
    if (eg->failed) { /* the op-by-op run's buffers are not needed any more */
        nx_tensor_free(&eg->x);
        nx_tensor_free(&eg->y);
    }
    return s;
}

/* Run branch `mod` on `in` seen as [items * clips, clip shape...] (clip_rank dims per clip). */
static ngpt_status encode(ngpt_encoder *enc, nx_ib_modality mod, ngpt_tensor *out, const ngpt_tensor *in,
                          int64_t items, int64_t clips, int clip_rank, const char *what)
{
    NX_HOLD_DEVICE(enc->ctx);
    int64_t ne[NGPT_MAX_DIMS];
    ne[0] = items * clips;
    for (int i = 0; i < clip_rank; i++) ne[1 + i] = in->shape[in->rank - clip_rank + i];
    ngpt_tensor flat = *in;
    flat.rank = 1 + clip_rank;
    for (int i = 0; i <= clip_rank; i++) flat.shape[i] = ne[i];
    nx_backend *be = enc->ctx->be;
    nx_tensor x = {0}, y = {0};
    int64_t ys[2] = {items, nx_imagebind_get_config(enc->ib)->out_embed_dim};
    if (enc->cuda_graph) {
        bool done = false;
        ngpt_status s = encode_graph(enc, mod, out, &flat, clips, ys, what, &done);
        if (done || s != NGPT_OK) return s;
    }
    ngpt_status s = nx_api_upload(&x, be, &flat, NGPT_DTYPE_F32, what);
    if (s == NGPT_OK) s = nx_tensor_alloc(&y, be, NGPT_DTYPE_F32, 2, ys);
    if (s == NGPT_OK) {
        /* BF16: this thread's linears on the CPU backend, for this call only (other handles
         * sharing the context keep their setting, see nx_cpu_bf16_scope_begin) */
        const bool scoped = enc->compute_dtype == NGPT_DTYPE_BF16 && be == enc->ctx->cpu;
        nx_cpu_bf16_scope prev = {0};
        if (scoped) prev = nx_cpu_bf16_scope_begin(be, true);
        s = nx_imagebind_encode(enc->ib, mod, &y, &x, clips);
        if (scoped) nx_cpu_bf16_scope_end(prev);
    }
    if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    nx_tensor_free(&x);
    nx_tensor_free(&y);
    return s;
}

static ngpt_status shape_error(const ngpt_tensor *t, const char *what, const char *want)
{
    char got[160];
    return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: expected %s, got %s", what, want,
                  nx_shape_str(got, sizeof got, t->rank, t->shape));
}

NGPT_API ngpt_status ngpt_encoder_encode_pixels(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_tensor *pixels)
{
    if (!enc || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_encode_pixels: encoder or out is NULL");
    memset(out, 0, sizeof *out);
    if (!nx_imagebind_has(enc->ib, NX_IB_VISION))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_encoder_encode_pixels: the vision branch is not loaded "
                      "(create the encoder with NGPT_ENCODER_IMAGE or NGPT_ENCODER_VIDEO)");
    NX_TRY(nx_api_check_tensor(pixels, "pixels", -1));
    const nx_imagebind_config *c = nx_imagebind_get_config(enc->ib);
    const int64_t S = c->image_size, F = c->video_frames;
    const int r = pixels->rank;
    const int64_t *sh = pixels->shape;
    char want[256];
    snprintf(want, sizeof want, "[N, 3, %lld, %lld], [N, 3, %lld, %lld, %lld] or [N, clips, 3, %lld, %lld, %lld]",
             (long long)S, (long long)S, (long long)F, (long long)S, (long long)S, (long long)F, (long long)S,
             (long long)S);
    bool img_ok = r >= 4 && sh[r - 1] == S && sh[r - 2] == S;
    if (r == 4 && sh[1] == 3 && img_ok) return encode(enc, NX_IB_VISION, out, pixels, sh[0], 1, 3, "pixels");
    if (r == 5 && sh[1] == 3 && (sh[2] == F || sh[2] == 1) && img_ok)
        return encode(enc, NX_IB_VISION, out, pixels, sh[0], 1, 4, "pixels");
    if (r == 6 && sh[1] >= 1 && sh[2] == 3 && (sh[3] == F || sh[3] == 1) && img_ok)
        return encode(enc, NX_IB_VISION, out, pixels, sh[0], sh[1], 4, "pixels");
    return shape_error(pixels, "pixels", want);
}

NGPT_API ngpt_status ngpt_encoder_encode_fbank(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_tensor *fbank)
{
    if (!enc || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_encode_fbank: encoder or out is NULL");
    memset(out, 0, sizeof *out);
    if (!nx_imagebind_has(enc->ib, NX_IB_AUDIO))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_encoder_encode_fbank: the audio branch is not loaded "
                      "(create the encoder with NGPT_ENCODER_AUDIO)");
    NX_TRY(nx_api_check_tensor(fbank, "fbank", -1));
    const nx_imagebind_config *c = nx_imagebind_get_config(enc->ib);
    const int64_t mel = c->audio_num_mel_bins, len = c->audio_target_len;
    const int r = fbank->rank;
    const int64_t *sh = fbank->shape;
    char want[200];
    snprintf(want, sizeof want, "[N, clips, 1, %lld, %lld] or [clips, 1, %lld, %lld]", (long long)mel, (long long)len,
             (long long)mel, (long long)len);
    bool clip_ok = r >= 4 && sh[r - 3] == 1 && sh[r - 2] == mel && sh[r - 1] == len;
    if (r == 5 && clip_ok && sh[1] >= 1) return encode(enc, NX_IB_AUDIO, out, fbank, sh[0], sh[1], 3, "fbank");
    if (r == 4 && clip_ok && sh[0] >= 1) return encode(enc, NX_IB_AUDIO, out, fbank, 1, sh[0], 3, "fbank");
    return shape_error(fbank, "fbank", want);
}

NGPT_API ngpt_status ngpt_encoder_encode_image(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_image *img)
{
    if (!enc || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_encode_image: encoder or out is NULL");
    memset(out, 0, sizeof *out);
    if (!nx_imagebind_has(enc->ib, NX_IB_VISION))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_encoder_encode_image: the vision branch is not loaded");
    ngpt_tensor px = {0};
    NX_TRY(ngpt_image_preprocess(&px, img));
    ngpt_tensor b = px;  // [3, H, W] -> [1, 3, H, W]
    b.rank = 4;
    b.shape[0] = 1;
    for (int i = 0; i < 3; i++) b.shape[1 + i] = px.shape[i];
    ngpt_status s = ngpt_encoder_encode_pixels(enc, out, &b);
    ngpt_tensor_free(&px);
    return s;
}

NGPT_API ngpt_status ngpt_encoder_encode_audio(ngpt_encoder *enc, ngpt_tensor *out, const ngpt_audio *a,
                                               const ngpt_audio_preprocess_params *pp)
{
    if (!enc || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_encode_audio: encoder or out is NULL");
    memset(out, 0, sizeof *out);
    if (!nx_imagebind_has(enc->ib, NX_IB_AUDIO))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_encoder_encode_audio: the audio branch is not loaded");
    ngpt_tensor fb = {0};
    NX_TRY(ngpt_audio_preprocess(&fb, a, pp));
    ngpt_status s = ngpt_encoder_encode_fbank(enc, out, &fb);  // [3, 1, 128, 204]: one item of 3 clips
    ngpt_tensor_free(&fb);
    return s;
}

NGPT_API ngpt_status ngpt_encoder_encode_video_file(ngpt_encoder *enc, ngpt_tensor *out, const char *path,
                                                    const ngpt_video_preprocess_params *pp)
{
    if (!enc || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_encoder_encode_video_file: encoder or out is NULL");
    memset(out, 0, sizeof *out);
    if (!nx_imagebind_has(enc->ib, NX_IB_VISION))
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_encoder_encode_video_file: the vision branch is not loaded");
    ngpt_tensor px = {0};
    NX_TRY(ngpt_video_preprocess(&px, path, pp));
    ngpt_tensor b = px;  // [15, 3, 2, H, W] -> [1, 15, 3, 2, H, W]: one video, mean over its 15 clips
    b.rank = px.rank + 1;
    b.shape[0] = 1;
    for (int i = 0; i < px.rank; i++) b.shape[1 + i] = px.shape[i];
    ngpt_status s = ngpt_encoder_encode_pixels(enc, out, &b);
    ngpt_tensor_free(&px);
    return s;
}
