/* decoder.c — ngpt_decoder: a diffusers pipeline folder (SD 1.5, AudioLDM, Zeroscope) loaded
 * component by component, and its stage-by-stage entry points. The networks live in
 * lib/models (unet, vae, hifigan); this file reads model_index.json, checks the caller's
 * tensors against the loaded configs and moves data across the ABI (bridge.h). */
#include "bridge.h"
#include "context.h"
#include "decoder.h"

#include "../core/fs.h"
#include "../core/alloc.h"
#include "../core/cpu_isa.h"
#include "../core/json.h"
#include "../core/params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


static const ngpt_decoder_params k_defaults = {.struct_size = sizeof(ngpt_decoder_params), .kind = NGPT_DECODER_AUTO,
                                               .compute_dtype = NGPT_DTYPE_F32};

NGPT_API ngpt_status ngpt_decoder_params_default(ngpt_decoder_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_defaults, sizeof k_defaults, "ngpt_decoder_params_default");
}

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = nx_malloc(n);
    if (p) snprintf(p, n, "%s/%s", a, b);
    return p;
}

/* The kind named by model_index.json's _class_name. */
static ngpt_status read_kind(const char *dir, ngpt_decoder_kind *kind)
{
    char *path = path_join(dir, "model_index.json");
    if (!path) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "decoder: out of memory");
    json_t *j = NULL;
    ngpt_status s = nx_json_load_file(&j, path);
    const char *cls = NULL;
    if (s == NGPT_OK) s = nx_json_str(j, "_class_name", path, &cls);
    if (s == NGPT_OK) {
        if (strcmp(cls, "StableDiffusionPipeline") == 0) *kind = NGPT_DECODER_IMAGE;
        else if (strcmp(cls, "AudioLDMPipeline") == 0) *kind = NGPT_DECODER_AUDIO;
        else if (strcmp(cls, "TextToVideoSDPipeline") == 0) *kind = NGPT_DECODER_VIDEO;
        else
            s = nx_err(NGPT_ERR_UNSUPPORTED,
                       "%s: pipeline '%s' is not supported (StableDiffusionPipeline, AudioLDMPipeline, "
                       "TextToVideoSDPipeline are)", path, cls);
    }
    json_decref(j);
    nx_free(path);
    return s;
}

const char *nx_decoder_kind_name(ngpt_decoder_kind k)
{
    return k == NGPT_DECODER_IMAGE ? "image"
         : k == NGPT_DECODER_AUDIO ? "audio"
         : k == NGPT_DECODER_VIDEO ? "video"
                                   : "unknown";
}

/* Whether a "_diffusers_version" string is below 0.9.0 (its release part, as packaging's
 * base_version: "0.8.0.dev0" is, "0.9.0.dev0" is not). Unparsable: no. */
static bool before_0_9(const char *v)
{
    char *end;
    long major = strtol(v, &end, 10);
    if (end == v || major != 0 || *end != '.') return false;
    v = end + 1;
    long minor = strtol(v, &end, 10);
    return end != v && minor < 9;
}

ngpt_status nx_decoder_sample_size(const json_t *unet_cfg, const char *path, ngpt_decoder_kind kind, int64_t *out)
{
    const char *ver = "";
    ngpt_status s = nx_json_int_opt(unet_cfg, "sample_size", path, 64, out);
    if (s == NGPT_OK && (*out < 1 || *out > 4096))  /* in latents; x the VAE's scale stays far from overflow */
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: sample_size %lld is not in 1..4096", path, (long long)*out);
    if (s == NGPT_OK) s = nx_json_str_opt(unet_cfg, "_diffusers_version", path, "", &ver);
    if (s == NGPT_OK && kind == NGPT_DECODER_IMAGE && *out < 64 && before_0_9(ver)) *out = 64;
    return s;
}

static ngpt_status read_sample_size(const char *unet_dir, ngpt_decoder_kind kind, int64_t *out)
{
    char *path = path_join(unet_dir, "config.json");
    if (!path) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "decoder: out of memory");
    json_t *j = NULL;
    ngpt_status s = nx_json_load_file(&j, path);
    if (s == NGPT_OK) s = nx_decoder_sample_size(j, path, kind, out);
    json_decref(j);
    nx_free(path);
    return s;
}

/* Load component `sub` of d->dir when wanted (bit set, or components == 0 and the folder has it). */
static bool want(uint32_t components, uint32_t bit, const char *dir, const char *sub, ngpt_status *s, char **path)
{
    *path = NULL;
    if (*s != NGPT_OK) return false;
    *path = path_join(dir, sub);
    if (!*path) {
        *s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "decoder: out of memory");
        return false;
    }
    bool present = nx_is_dir(*path);
    if (components && (components & bit) && !present) {
        *s = nx_err(NGPT_ERR_NOT_FOUND, "%s: folder not found (the decoder was asked to load it)", *path);
        return false;
    }
    return present && (!components || (components & bit));
}

/* NGPT_DECODER_FLAG_SAFETY_CHECKER: safety_checker/ and feature_extractor/, both required. */
static ngpt_status load_safety_checker(ngpt_decoder *d, const char *model_dir)
{
    if (d->kind != NGPT_DECODER_IMAGE)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: NGPT_DECODER_FLAG_SAFETY_CHECKER is for image decoders "
                      "(Stable Diffusion's safety checker)", model_dir);
    char *sc = path_join(model_dir, "safety_checker"), *fe = path_join(model_dir, "feature_extractor");
    ngpt_status s = sc && fe ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "decoder: out of memory");
    if (s == NGPT_OK && (!nx_is_dir(sc) || !nx_is_dir(fe)))
        s = nx_err(NGPT_ERR_NOT_FOUND, "%s: folder not found (the decoder was asked to load the safety checker)",
                   nx_is_dir(sc) ? fe : sc);
    if (s == NGPT_OK) s = nx_safety_load(&d->safety, d->ctx->be, sc, fe, d->dt);
    nx_free(sc);
    nx_free(fe);
    return s;
}

/* With AMX, oneDNN's BF16 convolutions take channels-last activations: NCHW would cost two
 * transposing reorders per convolution (SD VAE decode 512²: 4.1 s against 3.1 s). cuDNN's F16/BF16
 * tensor-core convolutions are NHWC-native: on an H200 the SD 1.5 UNet step took 13.3 ms channels
 * last against 19.5 ms NCHW, AudioLDM 9 s 0.50 s against 0.57 s, Zeroscope 24 frames 13.0 s
 * against 14.0 s (bench/RESULTS.md, GPU run 7). CUDA in F32 keeps NCHW: not measured. */
bool nx_decoder_channels_last(unsigned flags, ngpt_backend kind, ngpt_dtype compute)
{
    const bool half = compute == NGPT_DTYPE_F16 || compute == NGPT_DTYPE_BF16;
    return (flags & NGPT_DECODER_FLAG_CHANNELS_LAST) || (kind == NGPT_BACKEND_CUDA && half) ||
           (kind == NGPT_BACKEND_CPU && compute == NGPT_DTYPE_BF16 && nx_cpu_has_amx_bf16());
}

bool nx_decoder_vocoder_bf16(ngpt_backend kind, ngpt_dtype compute)
{
    return kind == NGPT_BACKEND_CPU && compute == NGPT_DTYPE_BF16 && nx_cpu_has_amx_bf16();
}

NGPT_API ngpt_status ngpt_decoder_create(ngpt_decoder **out, ngpt_context *ctx, const char *model_dir,
                                         const ngpt_decoder_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_create: out is NULL");
    *out = NULL;
    if (!ctx || !model_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_create: ctx or model_dir is NULL");
    NX_HOLD_DEVICE(ctx);
    ngpt_decoder_params p;
    NX_TRY(nx_params_read(&p, params, &k_defaults, sizeof p, "ngpt_decoder_create"));
    if ((unsigned)p.kind > NGPT_DECODER_VIDEO)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_create: unknown kind %d", (int)p.kind);
    if (p.components & ~0xfu)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_create: unknown component bits 0x%x", p.components);
    if (p.flags & ~(NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER | NGPT_DECODER_FLAG_CUDA_GRAPH |
                    NGPT_DECODER_FLAG_CHANNELS_LAST | NGPT_DECODER_FLAG_SAFETY_CHECKER))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_create: unknown flag bits 0x%x", p.flags);
    if (p.compute_dtype != NGPT_DTYPE_F32 && p.compute_dtype != NGPT_DTYPE_F16 && p.compute_dtype != NGPT_DTYPE_BF16)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_create: compute_dtype %s (%d) is not F32, F16 or BF16",
                      ngpt_dtype_name(p.compute_dtype), (int)p.compute_dtype);
    /* the CPU computes in F32, or in BF16 with F32 activations (cpu_bf16) */
    const bool cpu_bf16 = ctx->be->kind == NGPT_BACKEND_CPU && p.compute_dtype == NGPT_DTYPE_BF16;
    if (!(ctx->be->act_dtypes & NX_DTYPE_BIT(p.compute_dtype)) && !cpu_bf16)
        return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_decoder_create: compute_dtype %s needs a backend that computes in it "
                      "(the CUDA backend); the %s backend computes decoders in F32 or BF16",
                      ngpt_dtype_name(p.compute_dtype), ctx->be->v->name);
    if (!nx_is_dir(model_dir)) return nx_err(NGPT_ERR_NOT_FOUND, "%s: decoder folder not found", model_dir);

    ngpt_decoder *d = nx_calloc(1, sizeof *d);
    if (!d) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_create: out of memory");
    d->ctx = ctx;
    d->dir = nx_strdup(model_dir);
    ngpt_status s = d->dir ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_create: out of memory");
    d->kind = p.kind;
    d->dt = cpu_bf16 ? NGPT_DTYPE_F32 : p.compute_dtype;
    d->cpu_bf16 = cpu_bf16;
    const ngpt_dtype wdt = p.compute_dtype; /* the UNet's and VAE's weights (CPU: matrices and filters) */
    d->cuda_graph = (p.flags & NGPT_DECODER_FLAG_CUDA_GRAPH) != 0;
    if (s == NGPT_OK && d->kind == NGPT_DECODER_AUTO) {
        s = read_kind(model_dir, &d->kind);
    } else if (s == NGPT_OK) {
        /* a kind named by the caller must agree with model_index.json, when there is one and it
         * names a pipeline we know (an unknown _class_name is what naming the kind is for) */
        char *mi = path_join(model_dir, "model_index.json");
        ngpt_decoder_kind named = d->kind;
        if (!mi) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "decoder: out of memory");
        else if (nx_is_file(mi) && (s = read_kind(model_dir, &named)) == NGPT_ERR_UNSUPPORTED) {
            s = NGPT_OK;
            named = d->kind;
        }
        if (s == NGPT_OK && named != d->kind)
            s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: model_index.json describes the %s decoder, not the %s one asked for",
                       model_dir, nx_decoder_kind_name(named), nx_decoder_kind_name(d->kind));
        nx_free(mi);
    }

    const bool cl = nx_decoder_channels_last(p.flags, ctx->be->kind, p.compute_dtype);
    char *sub = NULL;
    if (want(p.components, NGPT_DECODER_UNET, model_dir, "unet", &s, &sub)) {
        s = nx_unet_load(&d->unet, ctx->be, sub, wdt, cl);
        if (s == NGPT_OK) s = read_sample_size(sub, d->kind, &d->sample_size);
    }
    nx_free(sub);
    if (want(p.components, NGPT_DECODER_VAE, model_dir, "vae", &s, &sub)) s = nx_vae_load(&d->vae, ctx->be, sub, false, wdt, cl);
    nx_free(sub);
    if (d->kind == NGPT_DECODER_AUDIO) {
        const bool voc16 = nx_decoder_vocoder_bf16(ctx->be->kind, p.compute_dtype);
        if (want(p.components, NGPT_DECODER_VOCODER, model_dir, "vocoder", &s, &sub))
            s = nx_hifigan_load(&d->vocoder, ctx->be, sub, voc16 ? NGPT_DTYPE_BF16 : NGPT_DTYPE_F32, voc16);
        nx_free(sub);
    } else if (s == NGPT_OK && (p.components & NGPT_DECODER_VOCODER)) {
        s = nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: only an audio decoder has a vocoder", model_dir);
    }
    if (s == NGPT_OK) {
        /* the text encoder and its tokenizer, together: by default only when both are there;
         * CLIP (IMAGE, VIDEO) or CLAP's RoBERTa text branch (AUDIO) */
        char *te = path_join(model_dir, "text_encoder"), *tk = path_join(model_dir, "tokenizer");
        if (!te || !tk) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "decoder: out of memory");
        bool both = s == NGPT_OK && nx_is_dir(te) && nx_is_dir(tk);
        if (s == NGPT_OK && (p.components & NGPT_DECODER_TEXT_ENCODER) && !both)
            s = nx_err(NGPT_ERR_NOT_FOUND, "%s: folder not found (the decoder was asked to load the text encoder)",
                       nx_is_dir(te) ? tk : te);
        if (s == NGPT_OK && both && (!p.components || (p.components & NGPT_DECODER_TEXT_ENCODER))) {
            if (d->kind == NGPT_DECODER_AUDIO) {
                s = nx_clap_text_load(&d->clap, ctx->be, te);
                if (s == NGPT_OK) s = nx_bpe_load(&d->tokenizer, tk, NX_BPE_ROBERTA);
                const float *e = NULL;  /* the unconditional embedding, once per decoder */
                if (s == NGPT_OK && (s = nx_decoder_uncond(d, 0, &e)) != NGPT_OK)
                    nx_err_wrap(s, "%s: the CLAP embedding of \"\": ", te);
            } else {
                s = nx_clip_text_load(&d->text_encoder, ctx->be, te, d->dt);
                if (s == NGPT_OK) s = nx_clip_bpe_load(&d->tokenizer, tk);
            }
        }
        nx_free(te);
        nx_free(tk);
    }
    if (s == NGPT_OK && (p.flags & NGPT_DECODER_FLAG_SAFETY_CHECKER)) s = load_safety_checker(d, model_dir);
    if (s == NGPT_OK && (p.flags & NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER)) s = nx_decoder_release_text(d);
    if (s == NGPT_OK && d->unet && (nx_unet_is_3d(d->unet) != (d->kind == NGPT_DECODER_VIDEO)))
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s/unet: a %s UNet in a %s pipeline", model_dir,
                   nx_unet_is_3d(d->unet) ? "3-D" : "2-D", d->kind == NGPT_DECODER_VIDEO ? "video" : "non-video");
    if (s != NGPT_OK) {
        ngpt_decoder_free(d);
        return s;
    }
    *out = d;
    return NGPT_OK;
}

NGPT_API void ngpt_decoder_free(ngpt_decoder *d)
{
    if (!d) return;
    NX_HOLD_DEVICE(d->ctx); /* the context outlives its handles */
    nx_unet_free(d->unet);
    nx_vae_free(d->vae);
    nx_hifigan_free(d->vocoder);
    nx_clip_text_free(d->text_encoder);
    nx_clap_text_free(d->clap);
    nx_clip_bpe_free(d->tokenizer);
    nx_safety_free(d->safety);
    nx_free(d->uncond);
    nx_free(d->dir);
    nx_free(d);
}

NGPT_API ngpt_decoder_kind ngpt_decoder_get_kind(const ngpt_decoder *d)
{
    return d ? d->kind : NGPT_DECODER_AUTO;
}

double nx_decoder_latent_scale(const ngpt_decoder *d)
{
    if (!d || !d->vae) return 0.0;
    return d->kind == NGPT_DECODER_IMAGE ? 0.18215 : nx_vae_scaling_factor(d->vae);
}

NGPT_API float ngpt_decoder_vae_scaling_factor(const ngpt_decoder *d)
{
    return (float)nx_decoder_latent_scale(d);
}

NGPT_API int32_t ngpt_decoder_sample_rate(const ngpt_decoder *d)
{
    return d && d->vocoder ? nx_hifigan_sampling_rate(d->vocoder) : 0;
}

/* Upload `t` as F32 and check its rank and (entries >= 0 of) its shape. */
static ngpt_status upload_checked(ngpt_decoder *d, nx_tensor *dst, const ngpt_tensor *t, const char *what, int rank,
                                  const int64_t *shape, ngpt_dtype dt)
{
    NX_TRY(nx_api_check_tensor(t, what, rank));
    for (int i = 0; i < rank; i++) {
        if (shape[i] >= 0 && t->shape[i] != shape[i]) {
            char got[160], want_s[160];
            nx_shape_str(got, sizeof got, t->rank, t->shape);
            nx_shape_str(want_s, sizeof want_s, rank, shape);
            return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: %s: expected %s (-1 = any), got %s", d->dir, what, want_s, got);
        }
    }
    return nx_api_upload(dst, d->ctx->be, t, dt, what);
}

NGPT_API ngpt_status ngpt_decoder_unet(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *sample,
                                       const ngpt_tensor *timesteps, const ngpt_tensor *ehs,
                                       const ngpt_tensor *class_labels)
{
    if (!d || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_unet: decoder or out is NULL");
    NX_HOLD_DEVICE(d->ctx);
    memset(out, 0, sizeof *out);
    if (!d->unet) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no UNet loaded", d->dir);
    int rank = nx_unet_is_3d(d->unet) ? 5 : 4;
    NX_TRY(nx_api_check_tensor(sample, "sample", rank));
    int64_t B = sample->shape[0];
    int64_t sshape[5] = {B, nx_unet_in_channels(d->unet), -1, -1, -1};
    NX_TRY(nx_api_check_tensor(timesteps, "timesteps", 1));
    if (timesteps->shape[0] != 1 && timesteps->shape[0] != B)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_unet: timesteps has %lld entries for a batch of %lld",
                      (long long)timesteps->shape[0], (long long)B);
    int cad = nx_unet_cross_attention_dim(d->unet), ced = nx_unet_class_embed_dim(d->unet);
    if (cad && !ehs) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: this UNet needs encoder_hidden_states [B, S, %d]", d->dir, cad);
    if (!cad && ehs) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: this UNet takes no encoder_hidden_states", d->dir);
    if (ced && !class_labels) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: this UNet needs class_labels [B, %d]", d->dir, ced);
    if (!ced && class_labels) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: this UNet takes no class_labels", d->dir);

    float *ts = NULL;
    int64_t nts = 0;
    nx_tensor xs = {0}, xe = {0}, xc = {0}, y = {0};
    ngpt_status s = nx_api_read_f32(timesteps, &ts, &nts, "timesteps");
    float *tsb = NULL;
    if (s == NGPT_OK) {
        tsb = nx_malloc((size_t)(B ? B : 1) * sizeof *tsb);
        if (!tsb) s = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_decoder_unet: out of memory");
        for (int64_t i = 0; s == NGPT_OK && i < B; i++) tsb[i] = ts[nts == 1 ? 0 : i];
    }
    if (s == NGPT_OK) s = upload_checked(d, &xs, sample, "sample", rank, sshape, d->dt);
    if (s == NGPT_OK && ehs) {
        int64_t es[3] = {B, -1, cad};
        s = upload_checked(d, &xe, ehs, "encoder_hidden_states", 3, es, d->dt);
    }
    if (s == NGPT_OK && class_labels) {
        int64_t cs[2] = {B, ced};
        s = upload_checked(d, &xc, class_labels, "class_labels", 2, cs, d->dt);
    }
    if (s == NGPT_OK) {
        int64_t oshape[5];
        for (int i = 0; i < rank; i++) oshape[i] = sample->shape[i];
        oshape[1] = nx_unet_out_channels(d->unet);
        s = nx_tensor_alloc(&y, d->ctx->be, d->dt, rank, oshape);
    }
    if (s == NGPT_OK) {
        nx_cpu_bf16_scope prev = nx_decoder_bf16_begin(d);
        s = nx_unet_forward(d->unet, &y, &xs, tsb, ehs ? &xe : NULL, class_labels ? &xc : NULL);
        nx_decoder_bf16_end(d, prev);
    }
    if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    nx_tensor_free(&xs);
    nx_tensor_free(&xe);
    nx_tensor_free(&xc);
    nx_tensor_free(&y);
    nx_free(ts);
    nx_free(tsb);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_vae_decode(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *latents)
{
    if (!d || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_vae_decode: decoder or out is NULL");
    NX_HOLD_DEVICE(d->ctx);
    memset(out, 0, sizeof *out);
    if (!d->vae) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no VAE loaded", d->dir);
    bool video = d->kind == NGPT_DECODER_VIDEO;
    int rank = video ? 5 : 4;
    NX_TRY(nx_api_check_tensor(latents, "latents", rank));
    int64_t lshape[5] = {-1, nx_vae_latent_channels(d->vae), -1, -1, -1};
    nx_tensor x = {0}, y = {0}, xf = {0}, yf = {0};
    ngpt_status s = upload_checked(d, &x, latents, "latents", rank, lshape, d->dt);
    nx_cpu_bf16_scope prev = nx_decoder_bf16_begin(d);
    int64_t sc = nx_vae_scale(d->vae), oc = nx_vae_out_channels(d->vae);
    if (s == NGPT_OK && !video) {
        int64_t os[4] = {latents->shape[0], oc, latents->shape[2] * sc, latents->shape[3] * sc};
        s = nx_tensor_alloc(&y, d->ctx->be, d->dt, 4, os);
        if (s == NGPT_OK) s = nx_vae_decode(d->vae, &y, &x);
    } else if (s == NGPT_OK) {
        /* [B, C, F, h, w] -> frames [B*F, C, h, w] -> decode one frame at a time (bounded memory)
         * -> [B, 3, F, H, W]; the permutes are done with the op layer. */
        int64_t B = latents->shape[0], C = latents->shape[1], F = latents->shape[2];
        int64_t h = latents->shape[3], w = latents->shape[4];
        int64_t fs[5] = {B, F, C, h, w};
        int perm[5] = {0, 2, 1, 3, 4};
        s = nx_tensor_alloc(&xf, d->ctx->be, d->dt, 5, fs);
        if (s == NGPT_OK) s = nx_op_permute(d->ctx->be, &xf, &x, perm);
        int64_t ys[5] = {B, F, oc, h * sc, w * sc};
        if (s == NGPT_OK) s = nx_tensor_alloc(&yf, d->ctx->be, d->dt, 5, ys);
        size_t in_frame = (size_t)(C * h * w), out_frame = (size_t)(oc * h * sc * w * sc), es = nx_dtype_size(d->dt);
        for (int64_t i = 0; s == NGPT_OK && i < B * F; i++) {
            int64_t li[4] = {1, C, h, w}, lo[4] = {1, oc, h * sc, w * sc};
            nx_tensor fi = nx_view(d->dt, 4, li, (char *)xf.data + (size_t)i * in_frame * es, xf.be);
            nx_tensor fo = nx_view(d->dt, 4, lo, (char *)yf.data + (size_t)i * out_frame * es, yf.be);
            s = nx_vae_decode(d->vae, &fo, &fi);
        }
        int64_t os[5] = {B, oc, F, h * sc, w * sc};
        if (s == NGPT_OK) s = nx_tensor_alloc(&y, d->ctx->be, d->dt, 5, os);
        if (s == NGPT_OK) s = nx_op_permute(d->ctx->be, &y, &yf, perm);
    }
    nx_decoder_bf16_end(d, prev);
    if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    nx_tensor_free(&x);
    nx_tensor_free(&y);
    nx_tensor_free(&xf);
    nx_tensor_free(&yf);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_vocoder(ngpt_decoder *d, ngpt_tensor *out, const ngpt_tensor *mel)
{
    if (!d || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_vocoder: decoder or out is NULL");
    NX_HOLD_DEVICE(d->ctx);
    memset(out, 0, sizeof *out);
    if (!d->vocoder) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no vocoder loaded (only audio decoders have one)", d->dir);
    NX_TRY(nx_api_check_tensor(mel, "mel", -1));
    if ((mel->rank < 2 || mel->rank > 4) || (mel->rank == 4 && mel->shape[1] != 1)) {
        char got[160];
        nx_shape_str(got, sizeof got, mel->rank, mel->shape);
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_decoder_vocoder: mel: expected [B, T, n_mels], [T, n_mels] or "
                      "[B, 1, T, n_mels], got %s", got);
    }
    ngpt_tensor m3 = *mel;
    if (mel->rank == 4) { /* the VAE's [B, 1, T, n_mels], squeezed as AudioLDMPipeline does */
        m3.rank = 3;
        m3.shape[1] = mel->shape[2];
        m3.shape[2] = mel->shape[3];
        m3.shape[3] = 0;
    } else if (mel->rank == 2) {
        m3.rank = 3;
        m3.shape[0] = 1;
        m3.shape[1] = mel->shape[0];
        m3.shape[2] = mel->shape[1];
    }
    int64_t ms[3] = {-1, -1, nx_hifigan_n_mels(d->vocoder)};
    nx_tensor x = {0}, y = {0};
    ngpt_status s = upload_checked(d, &x, &m3, "mel", 3, ms, NGPT_DTYPE_F32);
    int64_t ws[2] = {m3.shape[0], nx_hifigan_out_len(d->vocoder, m3.shape[1])};
    if (s == NGPT_OK) s = nx_tensor_alloc(&y, d->ctx->be, NGPT_DTYPE_F32, 2, ws);
    if (s == NGPT_OK) { /* in the CPU's BF16 compute where it was loaded for it (AMX, see create) */
        const bool bf16 = d->cpu_bf16 && nx_hifigan_dtype(d->vocoder) == NGPT_DTYPE_BF16;
        nx_cpu_bf16_scope prev = {0};
        if (bf16) prev = nx_cpu_bf16_scope_begin(d->ctx->be, true);
        s = nx_hifigan_forward(d->vocoder, &y, &x);
        if (bf16) nx_cpu_bf16_scope_end(prev);
    }
    if (s == NGPT_OK && mel->rank == 2) {
        y.rank = 1;
        y.ne[0] = ws[1];
    }
    if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    nx_tensor_free(&x);
    nx_tensor_free(&y);
    return s;
}

NGPT_API ngpt_status ngpt_decoder_vae_encode(ngpt_decoder *d, ngpt_tensor *mean, ngpt_tensor *logvar,
                                             const ngpt_tensor *image)
{
    if (!d || !mean) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_decoder_vae_encode: decoder or mean is NULL");
    NX_HOLD_DEVICE(d->ctx);
    memset(mean, 0, sizeof *mean);
    if (logvar) memset(logvar, 0, sizeof *logvar);
    if (!d->vae) return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no VAE loaded", d->dir);
    NX_TRY(nx_api_check_tensor(image, "image", 4));
    int64_t sc = nx_vae_scale(d->vae);
    int64_t ishape[4] = {-1, nx_vae_in_channels(d->vae), -1, -1};
    if (image->shape[2] % sc || image->shape[3] % sc || image->shape[2] == 0 || image->shape[3] == 0)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: image height and width must be positive multiples of %lld, got %lldx%lld",
                      d->dir, (long long)sc, (long long)image->shape[2], (long long)image->shape[3]);
    NX_TRY(nx_vae_load_encoder(d->vae));
    nx_tensor x = {0}, m = {0}, lv = {0};
    ngpt_status s = upload_checked(d, &x, image, "image", 4, ishape, d->dt);
    int64_t ls[4] = {image->shape[0], nx_vae_latent_channels(d->vae), image->shape[2] / sc, image->shape[3] / sc};
    if (s == NGPT_OK) s = nx_tensor_alloc(&m, d->ctx->be, d->dt, 4, ls);
    if (s == NGPT_OK && logvar) s = nx_tensor_alloc(&lv, d->ctx->be, d->dt, 4, ls);
    if (s == NGPT_OK) {
        nx_cpu_bf16_scope prev = nx_decoder_bf16_begin(d);
        s = nx_vae_encode(d->vae, &m, logvar ? &lv : NULL, &x);
        nx_decoder_bf16_end(d, prev);
    }
    if (s == NGPT_OK) s = nx_api_download(mean, &m, NGPT_DTYPE_F32);
    if (s == NGPT_OK && logvar) {
        s = nx_api_download(logvar, &lv, NGPT_DTYPE_F32);
        float *p = logvar->data;
        for (int64_t i = 0; s == NGPT_OK && i < ngpt_tensor_numel(logvar); i++)  /* torch.clamp(logvar, -30, 20) */
            p[i] = p[i] < -30.0f ? -30.0f : p[i] > 20.0f ? 20.0f : p[i];
    }
    if (s != NGPT_OK) {
        ngpt_tensor_free(mean);
        if (logvar) ngpt_tensor_free(logvar);
    }
    nx_tensor_free(&x);
    nx_tensor_free(&m);
    nx_tensor_free(&lv);
    return s;
}
