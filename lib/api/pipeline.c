/* pipeline.c — ngpt_pipeline: one NExT-GPT conversation over the stage handles.
 *
 * A turn: media -> encoder -> input projector (one summed soft token per modality) -> language
 * model with NExT-GPT's template -> per signal group: output projector -> decoder -> PNG / WAV /
 * MP4 bytes in the result. Everything here goes through the public stage API; this file adds
 * the bundle manifest, lazy decoders, the template, signal-group extraction, forced groups,
 * events/cancellation and timings.
 *
 * The language-model step (llm_turn) is ngpt_backbone_turn: NExT-GPT's template, stop strings,
 * signal groups with forced modalities and the multi-turn KV cache live there.
 */
#include "nextgpt.h"

#include "core/alloc.h"
#include "core/error.h"
#include "core/json.h"
#include "core/params.h"
#include "core/weights.h"
#include "ops/ops.h"
#include "bundle.h"
#include "context.h"
#include "decoder.h"
#include "sched/sched.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------------------------------------
 * Objects
 * ------------------------------------------------------------------------------------------- */

#define PL_MAX_OUTPUTS 4   /* at most one group per modality (NExT-GPT's demo limit) */

struct ngpt_pipeline {
    ngpt_context          *ctx;
    ngpt_pipeline_params   params;
    char                  *dir;
    char                  *dec_path[4];  /* indexed by ngpt_modality; NULL = none in the bundle */
    ngpt_backbone         *bb;
    ngpt_backbone_session *s;
    ngpt_encoder          *enc;
    ngpt_projector        *proj;
    ngpt_decoder          *dec[4];
    float                 *audio_uncond; /* [audio_uncond_dim] or NULL */
    int32_t                audio_uncond_dim;
    int32_t                random_weights;
    int32_t                n_turns;
    int32_t                n_ctx;        /* the session's */
    int32_t                in_turn;      /* a turn is running: its event callback may not re-enter */
};

/* NGPT_ERR_INVALID_ARGUMENT for fn called from inside p's own turn (its event callback). */
static ngpt_status check_idle(const ngpt_pipeline *p, const char *fn)
{
    return p->in_turn ? nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: called from inside this pipeline's turn (its event "
                                                          "callback); the pipeline is in use until the turn returns", fn)
                      : NGPT_OK;
}

typedef struct pl_output {
    ngpt_modality modality;
    ngpt_status   status;
    char         *message;
    uint8_t      *bytes;
    size_t        size;
    const char   *format;
    int32_t       nsfw;       /* IMAGE: the safety checker blacked it out */
    ngpt_image   *hist_img;   /* IMAGE: the pixels, kept for the history until the turn ends */
    ngpt_audio   *hist_aud;   /* AUDIO: the samples, likewise */
} pl_output;

/* A turn's wall time and tensor-memory high-water marks per stage (the context's host and
 * device backends; a stage's intervals accumulate time and keep the largest peak). */
typedef struct pl_stats {
    double   ms[NGPT_PIPELINE_STAGE_COUNT];
    uint64_t host[NGPT_PIPELINE_STAGE_COUNT];
    uint64_t device[NGPT_PIPELINE_STAGE_COUNT];
} pl_stats;

struct ngpt_pipeline_result {
    char     *text;
    size_t    text_len;
    int32_t   cancelled;
    int32_t   n_outputs;
    pl_output out[PL_MAX_OUTPUTS];
    pl_stats  stats;
    ngpt_status hist_status;   /* generated media re-entering the history */
    char       *hist_message;
    int32_t     n_hist;
};

static const ngpt_pipeline_params k_params = {
    .struct_size = sizeof(ngpt_pipeline_params),
};

static const ngpt_pipeline_turn_params k_turn = {
    .struct_size = sizeof(ngpt_pipeline_turn_params),
    .temperature = 1.0f,
    .top_p = 0.01f,
    .repetition_penalty = 1.0f,
    .max_new_tokens = 246,
};

static const char *const k_mod_name[4] = {"text", "image", "audio", "video"};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* A stage interval: its wall time, and the context's tensor-memory high-water marks over it. */
static double stage_begin(const ngpt_pipeline *p)
{
    nx_mem_window_begin(p->ctx->cpu);
    if (p->ctx->be != p->ctx->cpu) nx_mem_window_begin(p->ctx->be);
    return now_s();
}

static void stage_end(const ngpt_pipeline *p, pl_stats *sx, ngpt_pipeline_stage k, double t0)
{
    sx->ms[k] += (now_s() - t0) * 1e3;
    uint64_t h = nx_mem_window_peak(p->ctx->cpu);
    uint64_t d = p->ctx->be != p->ctx->cpu ? nx_mem_window_peak(p->ctx->be) : 0;
    if (h > sx->host[k]) sx->host[k] = h;
    if (d > sx->device[k]) sx->device[k] = d;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *d = nx_malloc(n + 1);
    if (d) memcpy(d, s, n + 1);
    return d;
}

/* bundle_dir + "/" + rel (rel as it is when absolute). */
static char *bundle_path(const char *dir, const char *rel)
{
    if (rel[0] == '/') return dup_str(rel);
    size_t a = strlen(dir), b = strlen(rel);
    char *p = nx_malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, rel, b + 1);
    return p;
}

/* dir made absolute against the working directory (not resolved: symlinks stay as named), so
 * that decoders loaded lazily, after the caller may have changed directory, are still found and
 * ngpt_pipeline_decoder_path is absolute. As given when the working directory cannot be read. */
static char *absolute_dir(const char *dir)
{
    char cwd[4096];
    if (dir[0] == '/' || !getcwd(cwd, sizeof cwd)) return dup_str(dir);
    while (dir[0] == '.' && dir[1] == '/') dir += 2;
    if (dir[0] == '\0' || strcmp(dir, ".") == 0) return dup_str(cwd);
    return bundle_path(strcmp(cwd, "/") == 0 ? "" : cwd, dir);
}

/* ---------------------------------------------------------------------------------------------
 * Events and cancellation
 * ------------------------------------------------------------------------------------------- */

typedef struct pl_call {
    ngpt_pipeline_event_fn fn;
    void                  *ud;
    const volatile int32_t *cancel;
    double                 t0;
    int                    cancelled;
    ngpt_modality          modality;     /* for DENOISE events */
    const ngpt_tokenizer  *tok;          /* for TOKEN events */
} pl_call;

static bool emit(pl_call *c, ngpt_pipeline_event_kind kind, ngpt_modality m, int32_t step, int32_t total,
                 const char *text, size_t len)
{
    if (c->cancelled) return false;
    if (c->cancel && *c->cancel) { c->cancelled = 1; return false; }
    if (!c->fn) return true;
    ngpt_pipeline_event ev = {kind, m, step, total, text, len, now_s() - c->t0};
    if (!c->fn(&ev, c->ud)) { c->cancelled = 1; return false; }
    return true;
}


static bool on_step(int32_t step, int32_t total, float elapsed_s, void *ud)
{
    (void)elapsed_s;
    pl_call *c = ud;
    return emit(c, NGPT_PIPELINE_EVENT_DENOISE, c->modality, step, total, NULL, 0);
}

/* ---------------------------------------------------------------------------------------------
 * Create / free
 * ------------------------------------------------------------------------------------------- */

NGPT_API ngpt_status ngpt_pipeline_params_default(ngpt_pipeline_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_params, sizeof k_params, "ngpt_pipeline_params_default");
}

NGPT_API ngpt_status ngpt_pipeline_turn_params_default(ngpt_pipeline_turn_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_turn, sizeof k_turn, "ngpt_pipeline_turn_params_default");
}

/* An optional string member of bundle.json resolved against the bundle folder: *out NULL when
 * the key is absent or null. */
static ngpt_status manifest_path(char **out, const json_t *j, const char *key, const char *dir, const char *file)
{
    *out = NULL;
    const json_t *v = json_object_get(j, key);
    if (!v || json_is_null(v)) return NGPT_OK;
    if (!json_is_string(v)) return nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is not a string or null", file, key);
    *out = bundle_path(dir, json_string_value(v));
    return *out ? NGPT_OK : nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", file);
}

/* The LOAD event before one of ngpt_pipeline_create's parts; CANCELLED when the callback says so. */
static ngpt_status load_event(pl_call *c, const char *what)
{
    if (emit(c, NGPT_PIPELINE_EVENT_LOAD, NGPT_MODALITY_TEXT, 0, 0, what, strlen(what))) return NGPT_OK;
    return nx_err(NGPT_ERR_CANCELLED, "ngpt_pipeline_create: cancelled before loading the %s", what);
}

/* NGPT_PIPELINE_CUDA_GRAPHS applies on a CUDA context: on the CPU the backbone's flag would take
 * its device-held-length decode path for nothing (the encoder's and decoders' flags do nothing
 * there). */
static bool cuda_graphs(const ngpt_pipeline *p)
{
    return (p->params.flags & NGPT_PIPELINE_CUDA_GRAPHS) && p->ctx->be->kind == NGPT_BACKEND_CUDA;
}

static ngpt_status load_decoder(ngpt_pipeline *p, ngpt_modality m, pl_call *c)
{
    if (p->dec[m]) return NGPT_OK;
    if (!p->dec_path[m])
        return nx_err(NGPT_ERR_NOT_FOUND, "%s/bundle.json names no %s decoder", p->dir, k_mod_name[m]);
    char what[32];
    snprintf(what, sizeof what, "%s decoder", k_mod_name[m]);
    if (c && !emit(c, NGPT_PIPELINE_EVENT_LOAD, m, 0, 0, what, strlen(what)))
        return nx_err(NGPT_ERR_CANCELLED, "cancelled before loading the %s decoder", k_mod_name[m]);
    ngpt_decoder_params dp;
    ngpt_decoder_params_default(&dp, sizeof dp);
    dp.compute_dtype = p->params.compute_dtype;
    /* the pipeline conditions on projector outputs only: of the text encoder it needs the
     * embedding of "" (the negative prompt), not the weights */
    dp.flags = NGPT_DECODER_FLAG_RELEASE_TEXT_ENCODER;
    if (cuda_graphs(p)) dp.flags |= NGPT_DECODER_FLAG_CUDA_GRAPH;
    if (p->params.flags & NGPT_PIPELINE_CHANNELS_LAST) dp.flags |= NGPT_DECODER_FLAG_CHANNELS_LAST;
    if ((p->params.flags & NGPT_PIPELINE_SAFETY_CHECKER) && m == NGPT_MODALITY_IMAGE)
        dp.flags |= NGPT_DECODER_FLAG_SAFETY_CHECKER;
    ngpt_status st = ngpt_decoder_create(&p->dec[m], p->ctx, p->dec_path[m], &dp);
    if (st != NGPT_OK) return nx_err_wrap(st, "%s decoder (%s): ", k_mod_name[m], p->dec_path[m]);
    return NGPT_OK;
}

static ngpt_status load_audio_uncond(ngpt_pipeline *p, const char *path)
{
    nx_weights *w = NULL;
    NX_TRY(nx_weights_open(&w, path));
    const nx_wtensor *t = NULL;
    int64_t shape[2] = {1, -1};
    ngpt_status st = nx_weights_get(w, "uncond", 0, 2, shape, &t);
    if (st == NGPT_OK) {
        p->audio_uncond = nx_malloc((size_t)t->shape[1] * sizeof(float));
        if (!p->audio_uncond) st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", path);
        else { nx_wtensor_to_f32(t, p->audio_uncond); p->audio_uncond_dim = (int32_t)t->shape[1]; }
    }
    nx_weights_close(w);
    return st;
}

ngpt_status nx_bundle_check_manifest(const json_t *j, const char *manifest)
{
    const json_t *f = json_object_get(j, "format"), *v = json_object_get(j, "version");
    if (f && !(json_is_string(f) && strcmp(json_string_value(f), "nextgpt-bundle") == 0))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'format' is not \"nextgpt-bundle\"", manifest);
    if (v && !(json_is_integer(v) && json_integer_value(v) >= 1))
        return nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'version' is not a positive integer", manifest);
    if (v && json_integer_value(v) > NX_BUNDLE_VERSION)
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: bundle version %lld is newer than this library reads (%d)", manifest,
                      (long long)json_integer_value(v), NX_BUNDLE_VERSION);
    return NGPT_OK;
}

NGPT_API ngpt_status ngpt_pipeline_create(ngpt_pipeline **out, ngpt_context *ctx, const char *bundle_dir,
                                          const ngpt_pipeline_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_create: out is NULL");
    *out = NULL;
    if (!ctx || !bundle_dir) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_create: ctx or bundle_dir is NULL");
    NX_HOLD_DEVICE(ctx);
    ngpt_pipeline *p = nx_calloc(1, sizeof *p);
    if (!p) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_create: out of memory");
    p->ctx = ctx;
    ngpt_status st = nx_params_read(&p->params, params, &k_params, sizeof p->params, "ngpt_pipeline_create");
    if (st == NGPT_OK && (p->params.flags & ~(NGPT_PIPELINE_NO_MEDIA_HISTORY | NGPT_PIPELINE_CUDA_GRAPHS |
                                                NGPT_PIPELINE_CHANNELS_LAST | NGPT_PIPELINE_SAFETY_CHECKER)))
        st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_create: flags 0x%x has unknown bits", p->params.flags);
    const ngpt_dtype cdt = p->params.compute_dtype;
    if (st == NGPT_OK && cdt != NGPT_DTYPE_F32 && cdt != NGPT_DTYPE_F16 && cdt != NGPT_DTYPE_BF16)
        st = nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_create: compute_dtype %s (expected F32, F16 or BF16)",
                    ngpt_dtype_name(cdt));
    else if (st == NGPT_OK && cdt == NGPT_DTYPE_F16 && ngpt_context_backend(ctx) != NGPT_BACKEND_CUDA)
        st = nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_pipeline_create: compute_dtype %s needs a CUDA context (the CPU "
                    "backend computes in F32 or BF16)", ngpt_dtype_name(cdt));
    char *manifest = NULL, *llm = NULL, *delta = NULL, *ib = NULL, *pj = NULL, *uncond = NULL;
    json_t *j = NULL;
    if (st == NGPT_OK) {
        p->dir = absolute_dir(bundle_dir);
        bundle_dir = p->dir ? p->dir : bundle_dir;
        manifest = bundle_path(bundle_dir, "bundle.json");
        if (!p->dir || !manifest) st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_create: out of memory");
    }
    if (st == NGPT_OK) st = nx_json_load_file(&j, manifest);
    if (st == NGPT_OK && !json_is_object(j)) st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: not a JSON object", manifest);
    if (st == NGPT_OK) st = nx_bundle_check_manifest(j, manifest);
    if (st == NGPT_OK) st = manifest_path(&llm, j, "llm", bundle_dir, manifest);
    if (st == NGPT_OK && !llm) st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'llm' (the language model folder) is required", manifest);
    if (st == NGPT_OK) st = manifest_path(&delta, j, "delta", bundle_dir, manifest);
    if (st == NGPT_OK) st = manifest_path(&ib, j, "imagebind", bundle_dir, manifest);
    if (st == NGPT_OK && !ib) st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'imagebind' is required", manifest);
    if (st == NGPT_OK) st = manifest_path(&pj, j, "projectors", bundle_dir, manifest);
    if (st == NGPT_OK && !pj && !delta)
        st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'projectors' is required when there is no 'delta'", manifest);
    if (st == NGPT_OK) st = manifest_path(&uncond, j, "audio_uncond", bundle_dir, manifest);
    if (st == NGPT_OK) {
        const json_t *d = json_object_get(j, "decoders");
        if (d && !json_is_null(d) && !json_is_object(d))
            st = nx_err(NGPT_ERR_BAD_FORMAT, "%s: 'decoders' is not an object", manifest);
        for (int m = NGPT_MODALITY_IMAGE; st == NGPT_OK && d && json_is_object(d) && m <= NGPT_MODALITY_VIDEO; m++)
            st = manifest_path(&p->dec_path[m], d, k_mod_name[m], bundle_dir, manifest);
        const json_t *rw = json_object_get(j, "random_weights");
        p->random_weights = json_is_true(rw) ? 1 : 0;
    }
    pl_call c = {p->params.on_event, p->params.user_data, NULL, now_s(), 0, NGPT_MODALITY_TEXT, NULL};
    if (st == NGPT_OK) {
        ngpt_backbone_params bp;
        ngpt_backbone_params_default(&bp, sizeof bp);
        bp.delta_path = delta;
        bp.compute_dtype = cdt;
        if (cuda_graphs(p)) bp.flags = NGPT_BACKBONE_FLAG_CUDA_GRAPH;
        st = load_event(&c, "language model");
        if (st == NGPT_OK && (st = ngpt_backbone_create(&p->bb, ctx, llm, &bp)) != NGPT_OK)
            st = nx_err_wrap(st, "language model (%s): ", llm);
    }
    if (st == NGPT_OK) {
        ngpt_backbone_session_params sp;
        ngpt_backbone_session_params_default(&sp, sizeof sp);
        int32_t n = p->params.n_ctx ? p->params.n_ctx : 2048;
        if (n > ngpt_backbone_n_ctx(p->bb)) n = ngpt_backbone_n_ctx(p->bb);
        sp.n_ctx = p->n_ctx = n;
        st = ngpt_backbone_session_create(&p->s, p->bb, &sp);
        if (st == NGPT_OK && !ngpt_backbone_tokenizer(p->bb))
            st = nx_err(NGPT_ERR_NOT_FOUND, "language model (%s): no tokenizer.model", llm);
    }
    if (st == NGPT_OK) {
        ngpt_encoder_params ep;
        ngpt_encoder_params_default(&ep, sizeof ep);
        ep.modalities = NGPT_ENCODER_IMAGE | NGPT_ENCODER_AUDIO;
        ep.compute_dtype = cdt;
        if (cuda_graphs(p)) ep.flags = NGPT_ENCODER_FLAG_CUDA_GRAPH;
        st = load_event(&c, "imagebind");
        if (st == NGPT_OK && (st = ngpt_encoder_create(&p->enc, ctx, ib, &ep)) != NGPT_OK)
            st = nx_err_wrap(st, "imagebind (%s): ", ib);
    }
    if (st == NGPT_OK) {
        ngpt_projector_params pp;
        ngpt_projector_params_default(&pp, sizeof pp);
        const char *path = pj ? pj : delta;
        if (!pj) pp.flags |= NGPT_PROJECTOR_ALLOW_UNKNOWN_TENSORS;
        st = load_event(&c, "projectors");
        if (st == NGPT_OK && (st = ngpt_projector_create(&p->proj, ctx, path, &pp)) != NGPT_OK)
            st = nx_err_wrap(st, "projectors (%s): ", path);
        /* the parts come from different files: their widths must meet */
        if (st == NGPT_OK && ngpt_projector_llm_hidden_size(p->proj) != ngpt_backbone_n_embd(p->bb))
            st = nx_err(NGPT_ERR_SHAPE_MISMATCH, "projectors (%s) are for a %d-wide language model, %s is %d wide",
                        path, ngpt_projector_llm_hidden_size(p->proj), llm, ngpt_backbone_n_embd(p->bb));
        if (st == NGPT_OK && ngpt_projector_has_input(p->proj) &&
            ngpt_projector_input_dim(p->proj) != ngpt_encoder_embed_dim(p->enc))
            st = nx_err(NGPT_ERR_SHAPE_MISMATCH, "projectors (%s) take %d-wide embeddings, imagebind (%s) gives %d",
                        path, ngpt_projector_input_dim(p->proj), ib, ngpt_encoder_embed_dim(p->enc));
    }
    if (st == NGPT_OK && uncond) st = nx_err_wrap(load_audio_uncond(p, uncond), "audio_uncond: ");
    for (int m = NGPT_MODALITY_IMAGE; st == NGPT_OK && m <= NGPT_MODALITY_VIDEO; m++)
        if (p->params.preload & NGPT_PIPELINE_FORCE(m)) st = load_decoder(p, (ngpt_modality)m, &c);
    json_decref(j);
    nx_free(manifest); nx_free(llm); nx_free(delta); nx_free(ib); nx_free(pj); nx_free(uncond);
    if (st != NGPT_OK) { ngpt_pipeline_free(p); return st; }
    *out = p;
    return NGPT_OK;
}

NGPT_API void ngpt_pipeline_free(ngpt_pipeline *p)
{
    if (!p) return;
    NX_HOLD_DEVICE(p->ctx); /* the context outlives its handles */
    for (int m = 0; m < 4; m++) { ngpt_decoder_free(p->dec[m]); nx_free(p->dec_path[m]); }
    ngpt_projector_free(p->proj);
    ngpt_encoder_free(p->enc);
    ngpt_backbone_session_free(p->s);
    ngpt_backbone_free(p->bb);
    nx_free(p->audio_uncond);
    nx_free(p->dir);
    nx_free(p);
}

NGPT_API ngpt_status ngpt_pipeline_reset(ngpt_pipeline *p)
{
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_reset: p is NULL");
    NX_TRY(check_idle(p, "ngpt_pipeline_reset"));
    p->n_turns = 0;
    return ngpt_backbone_session_reset(p->s);
}

static int valid_out_modality(ngpt_modality m)
{
    return m == NGPT_MODALITY_IMAGE || m == NGPT_MODALITY_AUDIO || m == NGPT_MODALITY_VIDEO;
}

NGPT_API ngpt_status ngpt_pipeline_release_decoder(ngpt_pipeline *p, ngpt_modality m)
{
    if (!p || !valid_out_modality(m))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_release_decoder: NULL pipeline or bad modality %d", (int)m);
    NX_TRY(check_idle(p, "ngpt_pipeline_release_decoder"));
    ngpt_decoder_free(p->dec[m]);
    p->dec[m] = NULL;
    return NGPT_OK;
}

NGPT_API int32_t ngpt_pipeline_is_test_model(const ngpt_pipeline *p) { return p ? p->random_weights : 0; }
NGPT_API ngpt_backbone *ngpt_pipeline_backbone(const ngpt_pipeline *p) { return p ? p->bb : NULL; }
NGPT_API ngpt_encoder *ngpt_pipeline_encoder(const ngpt_pipeline *p) { return p ? p->enc : NULL; }
NGPT_API ngpt_projector *ngpt_pipeline_projector(const ngpt_pipeline *p) { return p ? p->proj : NULL; }
NGPT_API ngpt_decoder *ngpt_pipeline_decoder(const ngpt_pipeline *p, ngpt_modality m)
{
    return p && valid_out_modality(m) ? p->dec[m] : NULL;
}
NGPT_API const char *ngpt_pipeline_decoder_path(const ngpt_pipeline *p, ngpt_modality m)
{
    return p && valid_out_modality(m) ? p->dec_path[m] : NULL;
}
NGPT_API ngpt_backbone_session *ngpt_pipeline_session(const ngpt_pipeline *p) { return p ? p->s : NULL; }

/* ---------------------------------------------------------------------------------------------
 * Encoding the user's media: one soft token per modality
 * ------------------------------------------------------------------------------------------- */

static ngpt_status encode_item(ngpt_pipeline *p, ngpt_tensor *emb, const ngpt_pipeline_media *m)
{
    ngpt_status st;  /* the item's shape was checked by encode_media */
    switch (m->modality) {
    case NGPT_MODALITY_IMAGE: {
        if (m->audio) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "an image item gives audio");
        if (m->image) return ngpt_encoder_encode_image(p->enc, emb, m->image);
        ngpt_image *img = NULL;
        st = m->path ? ngpt_image_load(&img, m->path) : ngpt_image_load_memory(&img, m->data, m->size, NULL);
        if (st == NGPT_OK) st = ngpt_encoder_encode_image(p->enc, emb, img);
        ngpt_image_free(img);
        return st;
    }
    case NGPT_MODALITY_AUDIO: {
        if (m->image) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "an audio item gives an image");
        if (m->audio) return ngpt_encoder_encode_audio(p->enc, emb, m->audio, NULL);
        ngpt_audio *a = NULL;
        st = m->path ? ngpt_audio_load(&a, m->path) : ngpt_audio_load_memory(&a, m->data, m->size, NULL);
        if (st == NGPT_OK) st = ngpt_encoder_encode_audio(p->enc, emb, a, NULL);
        ngpt_audio_free(a);
        return st;
    }
    case NGPT_MODALITY_VIDEO:
        if (!m->path)
            return nx_err(NGPT_ERR_UNSUPPORTED, "video is read from a file only (set path)");
        return ngpt_encoder_encode_video_file(p->enc, emb, m->path, NULL);
    default:
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "bad modality %d", (int)m->modality);
    }
}

/* soft[m] = [1, n_embd] summed projection of the modality's items (NULL when it has none). */
static ngpt_status encode_media(ngpt_pipeline *p, float *soft[4], const ngpt_pipeline_media *media, size_t n,
                                pl_call *c, pl_stats *sx)
{
    size_t done = 0; /* ENCODE events count the items as they are encoded */
    int32_t d = ngpt_encoder_embed_dim(p->enc), h = ngpt_backbone_n_embd(p->bb);
    /* every item checked before any work: the loop below visits items by modality, so one of
     * another modality would otherwise be dropped without a word */
    for (size_t i = 0; i < n; i++) {
        const ngpt_pipeline_media *it = &media[i];
        if (it->modality < NGPT_MODALITY_IMAGE || it->modality > NGPT_MODALITY_VIDEO)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_turn: media[%zu]: modality %d is not image, "
                          "audio or video", i, (int)it->modality);
        if ((it->path != NULL) + (it->data != NULL) + (it->image != NULL) + (it->audio != NULL) != 1)
            return nx_err(NGPT_ERR_INVALID_ARGUMENT,
                          "ngpt_pipeline_turn: media[%zu] must set exactly one of path, data, image, audio", i);
    }
    for (int m = NGPT_MODALITY_IMAGE; m <= NGPT_MODALITY_VIDEO; m++) {
        size_t cnt = 0;
        for (size_t i = 0; i < n; i++) cnt += media[i].modality == (ngpt_modality)m;
        if (!cnt) continue;
        float *feat = nx_malloc(cnt * (size_t)d * sizeof *feat);
        if (!feat) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory");
        size_t k = 0;
        double t0 = stage_begin(p);
        for (size_t i = 0; i < n; i++) {
            if (media[i].modality != (ngpt_modality)m) continue;
            ngpt_tensor emb = {0};
            ngpt_status st = encode_item(p, &emb, &media[i]);
            if (st != NGPT_OK) {
                nx_free(feat);
                /* the path, unless the decoder's message already names it */
                const char *what = media[i].path && !strstr(ngpt_last_error(), media[i].path) ? media[i].path
                                                                                              : k_mod_name[m];
                return nx_err_wrap(st, "ngpt_pipeline_turn: media[%zu] (%s): ", i, what);
            }
            memcpy(feat + k * (size_t)d, emb.data, (size_t)d * sizeof *feat);
            ngpt_tensor_free(&emb);
            k++;
            if (!emit(c, NGPT_PIPELINE_EVENT_ENCODE, (ngpt_modality)m, (int32_t)++done, (int32_t)n, NULL, 0)) {
                nx_free(feat);  /* cancelled: the turn stops here (c->cancelled) */
                return NGPT_OK;
            }
        }
        stage_end(p, sx, NGPT_PIPELINE_STAGE_ENCODE, t0);
        t0 = stage_begin(p);
        ngpt_tensor f = {NGPT_DTYPE_F32, 2, {(int64_t)cnt, d}, feat, NULL}, tok = {0};
        ngpt_status st = ngpt_projector_input_sum(p->proj, &tok, &f);
        nx_free(feat);
        if (st != NGPT_OK) return st;
        soft[m] = nx_malloc((size_t)h * sizeof(float));
        if (!soft[m]) { ngpt_tensor_free(&tok); return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory"); }
        memcpy(soft[m], tok.data, (size_t)h * sizeof(float));
        ngpt_tensor_free(&tok);
        stage_end(p, sx, NGPT_PIPELINE_STAGE_PROJECT, t0);
    }
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The language model: one ngpt_backbone_turn, its text and signal groups
 * ------------------------------------------------------------------------------------------- */

typedef struct pl_group {
    ngpt_modality modality;
    int32_t       n;
    float        *hidden;      /* [n, n_embd]: the states that predicted [X0..X(n-1)] */
    float        *embs;        /* [n, n_embd]: embed_tokens rows of [X0..X(n-1)] */
    int32_t       ids[24];
    char         *unmet;       /* a forced modality without a group: why (its output's message) */
} pl_group;

typedef struct pl_llm_out {
    char    *text;
    size_t   text_len;
    pl_group groups[PL_MAX_OUTPUTS];
    int32_t  n_groups;
    int      cancelled;
} pl_llm_out;

static void llm_out_free(pl_llm_out *o)
{
    nx_free(o->text);
    for (int i = 0; i < o->n_groups; i++) {
        nx_free(o->groups[i].hidden);
        nx_free(o->groups[i].embs);
        nx_free(o->groups[i].unmet);
    }
    memset(o, 0, sizeof *o);
}

/* ---- the language-model step: ngpt_backbone_turn (template, stops, groups, forcing, streaming) ---- */

static bool on_text(const char *utf8, size_t len, void *ud)
{
    return emit(ud, NGPT_PIPELINE_EVENT_TOKEN, NGPT_MODALITY_TEXT, 0, 0, utf8, len);
}

static ngpt_status llm_turn(ngpt_pipeline *p, const char *text, float *const soft[4],
                            const ngpt_pipeline_turn_params *tp, pl_call *c, pl_llm_out *o)
{
    static const ngpt_modality order[3] = {NGPT_MODALITY_IMAGE, NGPT_MODALITY_AUDIO, NGPT_MODALITY_VIDEO};
    ngpt_turn_media tm[3];
    size_t nm = 0;
    for (int i = 0; i < 3; i++)
        if (soft[order[i]]) tm[nm++] = (ngpt_turn_media){order[i], soft[order[i]], 1};
    ngpt_turn_params pp;
    ngpt_turn_params_default(&pp, sizeof pp);
    pp.temperature = tp->temperature;
    pp.top_k = tp->top_k;
    pp.top_p = tp->top_p;
    pp.repetition_penalty = tp->repetition_penalty;
    pp.seed = tp->seed;
    pp.max_new_tokens = tp->max_new_tokens;
    pp.require_modalities = tp->force;  /* NGPT_PIPELINE_FORCE(m) == NGPT_MODALITY_BIT(m) */
    pp.on_text = on_text;
    pp.user_data = c;
    pp.cancel = tp->cancel;
    ngpt_turn_result *r = NULL;
    NX_TRY(ngpt_backbone_turn(&r, p->s, text, nm ? tm : NULL, nm, &pp));
    const int32_t h = ngpt_backbone_n_embd(p->bb);
    ngpt_status st = NGPT_OK;
    size_t len = 0;
    const char *t = ngpt_turn_result_text(r, &len);
    o->text = nx_malloc(len + 1);
    if (!o->text) st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory");
    else { memcpy(o->text, t, len); o->text[len] = 0; o->text_len = len; }
    o->cancelled = ngpt_turn_result_stop_reason(r) == NGPT_STOP_CANCELLED;
    for (int32_t i = 0; st == NGPT_OK && i < ngpt_turn_result_n_groups(r) && o->n_groups < PL_MAX_OUTPUTS; i++) {
        ngpt_modality m;
        int32_t n;
        const float *hid, *embs;
        st = ngpt_turn_result_group(r, i, &m, &n, &hid, &embs);
        if (st != NGPT_OK) break;
        pl_group *G = &o->groups[o->n_groups++];
        G->modality = m;
        G->n = n;
        G->hidden = nx_malloc((size_t)n * (size_t)h * sizeof(float));
        G->embs = nx_malloc((size_t)n * (size_t)h * sizeof(float));
        if (!G->hidden || !G->embs) { st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory"); break; }
        memcpy(G->hidden, hid, (size_t)n * (size_t)h * sizeof(float));
        memcpy(G->embs, embs, (size_t)n * (size_t)h * sizeof(float));
    }
    /* a forced modality the backbone could not force (the prompt and history left its group no
     * room in the context) is an output that failed, never a silent drop */
    const int32_t n_past = ngpt_backbone_session_n_past(p->s);
    for (int m = NGPT_MODALITY_IMAGE; st == NGPT_OK && !o->cancelled && m <= NGPT_MODALITY_VIDEO; m++) {
        bool have = !(tp->force & NGPT_PIPELINE_FORCE(m));
        for (int32_t i = 0; !have && i < o->n_groups; i++) have = o->groups[i].modality == (ngpt_modality)m;
        if (have || o->n_groups >= PL_MAX_OUTPUTS) continue;
        pl_group *G = &o->groups[o->n_groups++];
        G->modality = (ngpt_modality)m;
        char why[300];
        snprintf(why, sizeof why, "the %s output was forced, but the conversation fills the context (%d of its %d "
                 "positions): its signal group does not fit (reset the conversation, or a larger n_ctx)",
                 k_mod_name[m], n_past, p->n_ctx);
        if (!(G->unmet = dup_str(why))) st = nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory");
    }
    ngpt_turn_result_free(r);
    if (st == NGPT_OK) p->n_turns++;
    return st;
}


/* ---------------------------------------------------------------------------------------------
 * Output: projector -> decoder -> encoded bytes
 * ------------------------------------------------------------------------------------------- */

static ngpt_status blob_take(pl_output *o, ngpt_blob *b, const char *fmt)
{
    o->size = ngpt_blob_size(b);
    o->bytes = nx_malloc(o->size ? o->size : 1);
    if (!o->bytes) { ngpt_blob_free(b); return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory"); }
    memcpy(o->bytes, ngpt_blob_data(b), o->size);
    o->format = fmt;
    ngpt_blob_free(b);
    return NGPT_OK;
}

static ngpt_status run_output(ngpt_pipeline *p, pl_output *o, const pl_group *G, int idx,
                              const ngpt_pipeline_turn_params *tp, pl_call *c, pl_stats *sx)
{
    ngpt_modality m = G->modality;
    if (!ngpt_projector_has_output(p->proj, m))
        return nx_err(NGPT_ERR_UNSUPPORTED, "the bundle's projectors have no %s output projector", k_mod_name[m]);
    double t0 = stage_begin(p);
    if (!p->dec[m]) {
        NX_TRY(load_decoder(p, m, c));
        stage_end(p, sx, NGPT_PIPELINE_STAGE_LOAD, t0);
    }
    t0 = stage_begin(p);
    int32_t h = ngpt_backbone_n_embd(p->bb);
    ngpt_tensor hid = {NGPT_DTYPE_F32, 3, {1, G->n, h}, G->hidden, NULL};
    ngpt_tensor emb = {NGPT_DTYPE_F32, 3, {1, G->n, h}, G->embs, NULL};
    ngpt_tensor cond = {0}, out = {0};
    ngpt_status st = ngpt_projector_output(p->proj, &cond, m, &hid, &emb);
    stage_end(p, sx, NGPT_PIPELINE_STAGE_PROJECT, t0);
    if (st != NGPT_OK) return st;

    t0 = stage_begin(p);
    ngpt_decode_params dp;
    ngpt_decode_params_default(&dp, sizeof dp);
    dp.num_inference_steps = tp->steps;
    dp.guidance_scale = tp->guidance_scale;
    dp.scheduler = tp->scheduler;
    dp.height = tp->height;
    dp.width = tp->width;
    dp.num_frames = tp->num_frames;
    dp.audio_length_s = tp->audio_length_s;
    dp.seed = tp->seed + (uint64_t)idx;
    dp.on_step = on_step;
    dp.user_data = c;
    c->modality = m;
    ngpt_tensor uncond = {0}, *pu = NULL;
    if (m == NGPT_MODALITY_AUDIO) {
        cond.rank = 2;  /* [1, 1, D] -> [1, D], as NExT-GPT views it */
        cond.shape[1] = cond.shape[2];
        if (ngpt_decoder_text_hidden_size(p->dec[m]) == cond.shape[1]) {
            /* the decoder's CLAP text branch computed the embedding of "" at load: uncond NULL */
        } else if (p->audio_uncond && p->audio_uncond_dim == cond.shape[1]) {
            uncond = (ngpt_tensor){NGPT_DTYPE_F32, 2, {1, p->audio_uncond_dim}, p->audio_uncond, NULL};
            pu = &uncond;
        } else {
            dp.guidance_scale = 1.0f;  /* no negative embedding: no classifier-free guidance */
        }
    }
    ngpt_tensor nsfw = {0};  /* IMAGE with the safety checker: BOOL [1] */
    st = ngpt_decoder_generate(p->dec[m], &out, m == NGPT_MODALITY_IMAGE ? &nsfw : NULL, &cond, pu, &dp);
    if (st == NGPT_OK && nsfw.data) o->nsfw = *(const bool *)nsfw.data;
    ngpt_tensor_free(&nsfw);
    ngpt_tensor_free(&cond);
    stage_end(p, sx, NGPT_PIPELINE_STAGE_DECODE, t0);
    if (st != NGPT_OK) { ngpt_tensor_free(&out); return st; }

    t0 = stage_begin(p);
    ngpt_blob *b = NULL;
    if (m == NGPT_MODALITY_IMAGE) {
        ngpt_tensor hw3 = {NGPT_DTYPE_F32, 3, {out.shape[1], out.shape[2], 3}, out.data, NULL};
        ngpt_image *img = NULL;
        st = ngpt_image_from_tensor(&img, &hw3);
        if (st == NGPT_OK) st = ngpt_image_encode(&b, img, NGPT_IMAGE_FORMAT_PNG, 0, 0);
        if (st == NGPT_OK && !(p->params.flags & NGPT_PIPELINE_NO_MEDIA_HISTORY)) o->hist_img = img, img = NULL;
        ngpt_image_free(img);
        if (st == NGPT_OK) st = blob_take(o, b, "png");
    } else if (m == NGPT_MODALITY_AUDIO) {
        ngpt_audio *a = NULL;
        st = ngpt_audio_from_pcm(&a, out.data, out.shape[out.rank - 1], 1, ngpt_decoder_sample_rate(p->dec[m]));
        if (st == NGPT_OK) st = ngpt_audio_encode(&b, a, NGPT_AUDIO_FORMAT_WAV16);
        if (st == NGPT_OK && !(p->params.flags & NGPT_PIPELINE_NO_MEDIA_HISTORY)) o->hist_aud = a, a = NULL;
        ngpt_audio_free(a);
        if (st == NGPT_OK) st = blob_take(o, b, "wav");
    } else {
        ngpt_tensor frames = {0};
        st = ngpt_video_postprocess(&frames, &out);
        if (st == NGPT_OK) st = ngpt_video_encode(&b, &frames, tp->video_fps > 0 ? tp->video_fps : 8.0f, NGPT_VIDEO_FORMAT_MP4);
        ngpt_tensor_free(&frames);
        if (st == NGPT_OK) st = blob_take(o, b, "mp4");
    }
    ngpt_tensor_free(&out);
    stage_end(p, sx, NGPT_PIPELINE_STAGE_MEDIA_OUT, t0);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Generated media re-entering the history (nextgpt-facts §1.4)
 *
 * The demo saves each output (save_image_to_local: PIL JPEG at its default quality 75;
 * save_audio_to_local: the float samples as a float WAV; save_video_to_local: MP4 at 8 fps) and
 * its history holds "<Image>temp/x.jpg</Image> answer", which the next prompt re-encodes with
 * ImageBind, one soft token per tag. Here the same files, in memory.
 * ------------------------------------------------------------------------------------------- */

/* ImageBind embedding [1, D] of output o as the demo's saved file gives it. */
static ngpt_status history_embed(ngpt_pipeline *p, const pl_output *o, ngpt_tensor *emb)
{
    ngpt_status st;
    switch (o->modality) {
    case NGPT_MODALITY_IMAGE: {
        if (!o->hist_img) return nx_err(NGPT_ERR_INTERNAL, "generated image: pixels not kept");
        ngpt_blob *jpg = NULL;
        ngpt_image *back = NULL;
        st = ngpt_image_encode(&jpg, o->hist_img, NGPT_IMAGE_FORMAT_JPEG, 75, 0);
        if (st == NGPT_OK) st = ngpt_image_load_memory(&back, ngpt_blob_data(jpg), ngpt_blob_size(jpg), "generated.jpg");
        if (st == NGPT_OK) st = ngpt_encoder_encode_image(p->enc, emb, back);
        ngpt_image_free(back);
        ngpt_blob_free(jpg);
        return st;
    }
    case NGPT_MODALITY_AUDIO:
        if (!o->hist_aud) return nx_err(NGPT_ERR_INTERNAL, "generated audio: samples not kept");
        return ngpt_encoder_encode_audio(p->enc, emb, o->hist_aud, NULL);
    case NGPT_MODALITY_VIDEO: {
        ngpt_tensor px = {0};
        NX_TRY(ngpt_video_preprocess_memory(&px, o->bytes, o->size, "generated.mp4", NULL));
        ngpt_tensor b = px;  /* [15, 3, 2, H, W] -> [1, 15, 3, 2, H, W]: the mean over its clips */
        b.rank = px.rank + 1;
        b.shape[0] = 1;
        for (int i = 0; i < px.rank; i++) b.shape[1 + i] = px.shape[i];
        st = ngpt_encoder_encode_pixels(p->enc, emb, &b);
        ngpt_tensor_free(&px);
        return st;
    }
    default:
        return nx_err(NGPT_ERR_INTERNAL, "generated output of modality %d", (int)o->modality);
    }
}

/* Re-write the cached answer with the produced outputs (ngpt_backbone_add_assistant_media). */
static ngpt_status history_media(ngpt_pipeline *p, ngpt_pipeline_result *r, pl_stats *sx)
{
    const int32_t h = ngpt_backbone_n_embd(p->bb), d = ngpt_encoder_embed_dim(p->enc);
    ngpt_turn_media tm[PL_MAX_OUTPUTS];
    size_t n = 0;
    for (int32_t i = 0; i < r->n_outputs; i++) n += r->out[i].status == NGPT_OK;
    if (n == 0) return NGPT_OK;
    float *soft = nx_malloc(n * (size_t)h * sizeof *soft);
    if (!soft) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory");
    ngpt_status st = NGPT_OK;
    n = 0;
    for (int32_t i = 0; st == NGPT_OK && i < r->n_outputs; i++) {
        const pl_output *o = &r->out[i];
        if (o->status != NGPT_OK) continue;
        double t0 = stage_begin(p);
        ngpt_tensor emb = {0}, tok = {0};
        st = history_embed(p, o, &emb);
        stage_end(p, sx, NGPT_PIPELINE_STAGE_ENCODE, t0);
        if (st != NGPT_OK) {
            st = nx_err_wrap(st, "generated %s (output %d) re-entering the history: ", k_mod_name[o->modality], (int)i);
            ngpt_tensor_free(&emb);
            break;
        }
        t0 = stage_begin(p);
        ngpt_tensor f = {NGPT_DTYPE_F32, 2, {1, d}, emb.data, NULL};
        st = ngpt_projector_input_sum(p->proj, &tok, &f);
        ngpt_tensor_free(&emb);
        if (st == NGPT_OK) {
            memcpy(soft + n * (size_t)h, tok.data, (size_t)h * sizeof *soft);
            tm[n] = (ngpt_turn_media){o->modality, soft + n * (size_t)h, 1};
            n++;
        }
        ngpt_tensor_free(&tok);
        stage_end(p, sx, NGPT_PIPELINE_STAGE_PROJECT, t0);
    }
    if (st == NGPT_OK) {
        double t0 = stage_begin(p);
        st = ngpt_backbone_add_assistant_media(p->s, tm, n);
        stage_end(p, sx, NGPT_PIPELINE_STAGE_LLM, t0);
    }
    nx_free(soft);
    if (st == NGPT_OK) r->n_hist = (int32_t)n;
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * The turn
 * ------------------------------------------------------------------------------------------- */

static ngpt_status pipeline_turn(ngpt_pipeline_result **out, ngpt_pipeline *p, const char *text,
                                 const ngpt_pipeline_media *media, size_t n_media,
                                 const ngpt_pipeline_turn_params *params);

NGPT_API ngpt_status ngpt_pipeline_turn(ngpt_pipeline_result **out, ngpt_pipeline *p, const char *text,
                                        const ngpt_pipeline_media *media, size_t n_media,
                                        const ngpt_pipeline_turn_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_turn: out is NULL");
    *out = NULL;
    if (!p) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_turn: p is NULL");
    /* the whole turn: its stages' calls, and the per-stage memory windows of the backend */
    NX_HOLD_DEVICE(p->ctx);
    NX_TRY(check_idle(p, "ngpt_pipeline_turn"));
    p->in_turn = 1;
    ngpt_status s = pipeline_turn(out, p, text, media, n_media, params);
    p->in_turn = 0;
    return s;
}

static ngpt_status pipeline_turn(ngpt_pipeline_result **out, ngpt_pipeline *p, const char *text,
                                 const ngpt_pipeline_media *media, size_t n_media,
                                 const ngpt_pipeline_turn_params *params)
{
    if (n_media && !media) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_turn: media is NULL with n_media %zu", n_media);
    ngpt_pipeline_turn_params tp;
    NX_TRY(nx_params_read(&tp, params, &k_turn, sizeof tp, "ngpt_pipeline_turn"));
    if (!(tp.video_fps >= 0.0f && tp.video_fps <= 1000.0f))  /* NaN too; 0 = NExT-GPT's 8 */
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_turn: video_fps %g is not in 0..1000", (double)tp.video_fps);
    /* the decoders' settings, checked before the language model runs (a turn on a real model
     * takes minutes; its outputs would fail only at the end). 0 = the decoder's default. */
    if (tp.steps < 0 || tp.steps > 1000 || !isfinite(tp.guidance_scale) || tp.num_frames < 0 || tp.num_frames > 256 ||
        !(tp.audio_length_s >= 0 && tp.audio_length_s <= 60) || tp.height < 0 || tp.width < 0 ||
        tp.height > NX_DECODE_MAX_SIDE || tp.width > NX_DECODE_MAX_SIDE || tp.height % 8 || tp.width % 8 ||
        (int)tp.scheduler < 0 || (int)tp.scheduler > NX_SCHED_LAST_KIND)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_turn: decoder settings out of range (steps %d in 0..1000, "
                      "guidance_scale %g finite, %dx%d multiples of 8 up to %d, num_frames %d in 0..256, "
                      "audio_length_s %g in 0..60, scheduler %d)", tp.steps, (double)tp.guidance_scale, tp.width,
                      tp.height, NX_DECODE_MAX_SIDE, tp.num_frames, tp.audio_length_s, (int)tp.scheduler);
    if (tp.force & ~(NGPT_PIPELINE_FORCE(1) | NGPT_PIPELINE_FORCE(2) | NGPT_PIPELINE_FORCE(3)))
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_turn: force 0x%x has bits other than image, audio, video", tp.force);
    /* the forced decoders' schedules for these steps (a bad count or scheduler config would
     * otherwise fail only after the language model) */
    for (int m = NGPT_MODALITY_IMAGE; m <= NGPT_MODALITY_VIDEO; m++) {
        if (!(tp.force & NGPT_PIPELINE_FORCE(m)) || !p->dec_path[m] || (!tp.steps && !tp.scheduler)) continue;
        ngpt_decode_params dp;
        ngpt_decode_params_default(&dp, sizeof dp);
        dp.num_inference_steps = tp.steps;
        dp.scheduler = tp.scheduler;
        const ngpt_decoder_kind k = m == NGPT_MODALITY_IMAGE ? NGPT_DECODER_IMAGE
                                  : m == NGPT_MODALITY_AUDIO ? NGPT_DECODER_AUDIO : NGPT_DECODER_VIDEO;
        ngpt_status s = nx_decoder_check_schedule(p->dec_path[m], k, &dp);
        if (s != NGPT_OK)
            return nx_err_wrap(s, "ngpt_pipeline_turn: the forced %s output's steps %d: ", k_mod_name[m], tp.steps);
    }
    if (!text) text = "";

    ngpt_pipeline_result *r = nx_calloc(1, sizeof *r);
    if (!r) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_pipeline_turn: out of memory");
    pl_call c = {tp.on_event, tp.user_data, tp.cancel, now_s(), 0, NGPT_MODALITY_TEXT, ngpt_backbone_tokenizer(p->bb)};
    float *soft[4] = {0};
    ngpt_status st = encode_media(p, soft, media, n_media, &c, &r->stats);
    pl_llm_out lo = {0};
    if (st == NGPT_OK && c.cancelled) {
        /* cancelled while encoding: the language model does not run, the conversation is as
         * before, and each forced output is listed as cancelled (as when cancelled at a load) */
        for (int m = NGPT_MODALITY_IMAGE; m <= NGPT_MODALITY_VIDEO && lo.n_groups < PL_MAX_OUTPUTS; m++)
            if (tp.force & NGPT_PIPELINE_FORCE(m)) lo.groups[lo.n_groups++].modality = (ngpt_modality)m;
    } else if (st == NGPT_OK) {
        int32_t n_past = ngpt_backbone_session_n_past(p->s);
        double t0 = stage_begin(p);
        st = llm_turn(p, text, soft, &tp, &c, &lo);
        stage_end(p, &r->stats, NGPT_PIPELINE_STAGE_LLM, t0);
        if (st != NGPT_OK) ngpt_backbone_session_truncate(p->s, n_past);  /* the session as before */
    }
    for (int m = 0; m < 4; m++) nx_free(soft[m]);
    if (st == NGPT_OK) {
        r->text = lo.text;
        r->text_len = lo.text_len;
        lo.text = NULL;
        for (int i = 0; i < lo.n_groups; i++) {
            pl_output *o = &r->out[r->n_outputs++];
            o->modality = lo.groups[i].modality;
            if (c.cancelled || lo.cancelled) {
                o->status = NGPT_ERR_CANCELLED;
                o->message = dup_str("cancelled");
                continue;
            }
            if (lo.groups[i].unmet) {
                o->status = NGPT_ERR_INVALID_ARGUMENT;
                o->message = dup_str(lo.groups[i].unmet);
                continue;
            }
            o->status = run_output(p, o, &lo.groups[i], i, &tp, &c, &r->stats);
            if (o->status != NGPT_OK) {
                if (c.cancelled) o->status = NGPT_ERR_CANCELLED;
                o->message = dup_str(ngpt_last_error());
                ngpt_clear_error();
            } else {
                emit(&c, NGPT_PIPELINE_EVENT_OUTPUT, o->modality, i, lo.n_groups, NULL, 0);
            }
        }
        r->cancelled = c.cancelled || lo.cancelled;
        if (!r->cancelled && !(p->params.flags & NGPT_PIPELINE_NO_MEDIA_HISTORY)) {
            r->hist_status = history_media(p, r, &r->stats);
            if (r->hist_status != NGPT_OK) {
                r->hist_message = dup_str(ngpt_last_error());
                ngpt_clear_error();
            }
        }
        for (int i = 0; i < r->n_outputs; i++) {
            ngpt_image_free(r->out[i].hist_img);
            ngpt_audio_free(r->out[i].hist_aud);
            r->out[i].hist_img = NULL;
            r->out[i].hist_aud = NULL;
        }
    }
    llm_out_free(&lo);
    if (st != NGPT_OK) { ngpt_pipeline_result_free(r); return st; }
    if (!r->text) r->text = dup_str("");
    *out = r;
    return NGPT_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Result
 * ------------------------------------------------------------------------------------------- */

NGPT_API const char *ngpt_pipeline_result_text(const ngpt_pipeline_result *r, size_t *len)
{
    if (len) *len = r ? r->text_len : 0;
    return r ? r->text : NULL;
}

NGPT_API int32_t ngpt_pipeline_result_cancelled(const ngpt_pipeline_result *r) { return r ? r->cancelled : 0; }
NGPT_API int32_t ngpt_pipeline_result_n_outputs(const ngpt_pipeline_result *r) { return r ? r->n_outputs : 0; }

NGPT_API ngpt_status ngpt_pipeline_result_output(const ngpt_pipeline_result *r, int32_t i, ngpt_modality *modality,
                                                 const uint8_t **bytes, size_t *size, const char **format)
{
    if (bytes) *bytes = NULL;
    if (size) *size = 0;
    if (format) *format = NULL;
    if (!r || i < 0 || i >= r->n_outputs)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_result_output: no output %d", (int)i);
    const pl_output *o = &r->out[i];
    if (modality) *modality = o->modality;
    if (o->status != NGPT_OK) return nx_err(o->status, "%s", o->message ? o->message : "");
    if (bytes) *bytes = o->bytes;
    if (size) *size = o->size;
    if (format) *format = o->format;
    return NGPT_OK;
}

NGPT_API const char *ngpt_pipeline_result_output_message(const ngpt_pipeline_result *r, int32_t i)
{
    if (!r || i < 0 || i >= r->n_outputs || !r->out[i].message) return "";
    return r->out[i].message;
}

NGPT_API int32_t ngpt_pipeline_result_output_nsfw(const ngpt_pipeline_result *r, int32_t i)
{
    return r && i >= 0 && i < r->n_outputs ? r->out[i].nsfw : 0;
}

NGPT_API ngpt_status ngpt_pipeline_result_history(const ngpt_pipeline_result *r, int32_t *n_media)
{
    if (n_media) *n_media = r ? r->n_hist : 0;
    if (!r) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_pipeline_result_history: r is NULL");
    if (r->hist_status != NGPT_OK) return nx_err(r->hist_status, "%s", r->hist_message ? r->hist_message : "");
    return NGPT_OK;
}

NGPT_API double ngpt_pipeline_result_stage_ms(const ngpt_pipeline_result *r, ngpt_pipeline_stage stage)
{
    if (!r || (int)stage < 0 || stage >= NGPT_PIPELINE_STAGE_COUNT) return 0;
    return r->stats.ms[stage];
}

NGPT_API void ngpt_pipeline_result_stage_memory(const ngpt_pipeline_result *r, ngpt_pipeline_stage stage,
                                                uint64_t *host_bytes, uint64_t *device_bytes)
{
    bool ok = r && (int)stage >= 0 && stage < NGPT_PIPELINE_STAGE_COUNT;
    if (host_bytes) *host_bytes = ok ? r->stats.host[stage] : 0;
    if (device_bytes) *device_bytes = ok ? r->stats.device[stage] : 0;
}

NGPT_API void ngpt_pipeline_result_free(ngpt_pipeline_result *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_outputs; i++) {
        nx_free(r->out[i].bytes);
        nx_free(r->out[i].message);
        ngpt_image_free(r->out[i].hist_img);
        ngpt_audio_free(r->out[i].hist_aud);
    }
    nx_free(r->hist_message);
    nx_free(r->text);
    nx_free(r);
}
