/* projector.c — ngpt_projector: NExT-GPT's input and output projectors behind the ABI. The
 * network lives in lib/models/projector.c; this file maps params to load options, checks the
 * caller's tensors against the loaded sizes and moves data across the ABI (bridge.h). */
#include "bridge.h"
#include "context.h"

#include "../core/alloc.h"
#include "../core/params.h"
#include "../models/projector.h"

#include <string.h>

struct ngpt_projector {
    ngpt_context *ctx;
    nx_projector *p;
};

static const ngpt_projector_params k_defaults = {.struct_size = sizeof(ngpt_projector_params)};

NGPT_API ngpt_status ngpt_projector_params_default(ngpt_projector_params *p, size_t struct_size)
{
    return nx_params_default(p, struct_size, &k_defaults, sizeof k_defaults, "ngpt_projector_params_default");
}

NGPT_API ngpt_status ngpt_projector_create(ngpt_projector **out, ngpt_context *ctx, const char *path,
                                           const ngpt_projector_params *params)
{
    if (!out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_create: out is NULL");
    *out = NULL;
    if (!ctx || !path) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_create: ctx or path is NULL");
    NX_HOLD_DEVICE(ctx);
    ngpt_projector_params p;
    NX_TRY(nx_params_read(&p, params, &k_defaults, sizeof p, "ngpt_projector_create"));
    const uint32_t all = NGPT_PROJECTOR_INPUT | NGPT_PROJECTOR_IMAGE | NGPT_PROJECTOR_AUDIO | NGPT_PROJECTOR_VIDEO;
    if (p.modalities & ~all)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_create: unknown modality bits 0x%x", p.modalities);
    if (p.flags & ~NGPT_PROJECTOR_ALLOW_UNKNOWN_TENSORS)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_create: unknown flags 0x%x", p.flags);
    const int32_t counts[6] = {p.nhead, p.image_num_input_tokens, p.audio_num_input_tokens, p.video_num_input_tokens,
                               p.image_num_output_tokens, p.audio_num_output_tokens};
    for (int i = 0; i < 6; i++)
        if (counts[i] < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_create: negative size in params");
    if (p.video_num_output_tokens < 0)
        return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_create: negative size in params");

    nx_projector_opts o;
    memset(&o, 0, sizeof o);
    o.want_all = p.modalities == 0;
    o.want_input = (p.modalities & NGPT_PROJECTOR_INPUT) != 0;
    o.want_out[NX_PROJ_IMAGE] = (p.modalities & NGPT_PROJECTOR_IMAGE) != 0;
    o.want_out[NX_PROJ_AUDIO] = (p.modalities & NGPT_PROJECTOR_AUDIO) != 0;
    o.want_out[NX_PROJ_VIDEO] = (p.modalities & NGPT_PROJECTOR_VIDEO) != 0;
    o.nhead = p.nhead;
    o.num_input_tokens[NX_PROJ_IMAGE] = p.image_num_input_tokens;
    o.num_input_tokens[NX_PROJ_AUDIO] = p.audio_num_input_tokens;
    o.num_input_tokens[NX_PROJ_VIDEO] = p.video_num_input_tokens;
    o.num_output_tokens[NX_PROJ_IMAGE] = p.image_num_output_tokens;
    o.num_output_tokens[NX_PROJ_AUDIO] = p.audio_num_output_tokens;
    o.num_output_tokens[NX_PROJ_VIDEO] = p.video_num_output_tokens;
    o.allow_unknown = (p.flags & NGPT_PROJECTOR_ALLOW_UNKNOWN_TENSORS) != 0;

    ngpt_projector *h = nx_calloc(1, sizeof *h);
    if (!h) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "ngpt_projector_create: out of memory");
    h->ctx = ctx;
    ngpt_status s = nx_projector_load(&h->p, ctx->be, path, &o);
    if (s != NGPT_OK) {
        nx_free(h);
        return s;
    }
    *out = h;
    return NGPT_OK;
}

NGPT_API void ngpt_projector_free(ngpt_projector *proj)
{
    if (!proj) return;
    NX_HOLD_DEVICE(proj->ctx); /* the context outlives its handles */
    nx_projector_free(proj->p);
    nx_free(proj);
}

/* modality -> output slot (an nx_modality), or -1 */
static int slot_of(ngpt_modality m) { return nx_modality_from_api((int)m); }

static const nx_textfc_cfg *cfg_of(const ngpt_projector *proj, ngpt_modality m)
{
    int s = slot_of(m);
    return proj && s >= 0 ? nx_projector_out_cfg(proj->p, s) : NULL;
}

/* features [n, in] or [in] uploaded as F32 [n, in]; checks the width. */
static ngpt_status upload_features(ngpt_projector *proj, nx_tensor *x, const ngpt_tensor *features, const char *fn)
{
    if (!nx_projector_has_input(proj->p))
        return nx_err(NGPT_ERR_UNSUPPORTED, "%s: no input projector loaded", fn);
    NX_TRY(nx_api_check_tensor(features, "features", -1));
    int64_t in = nx_projector_input_dim(proj->p);
    int r = features->rank;
    if ((r != 1 && r != 2) || features->shape[r - 1] != in) {
        char got[160];
        nx_shape_str(got, sizeof got, features->rank, features->shape);
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "%s: features: expected [n, %lld] or [%lld], got %s", fn,
                      (long long)in, (long long)in, got);
    }
    ngpt_tensor f2 = *features;   /* [in] is seen as [1, in] */
    if (r == 1) {
        f2.rank = 2;
        f2.shape[0] = 1;
        f2.shape[1] = in;
    }
    return nx_api_upload(x, proj->ctx->be, &f2, NGPT_DTYPE_F32, "features");
}

/* ngpt_projector_input; fn names the call in messages (ngpt_projector_input_sum runs it too). */
static ngpt_status project_input(ngpt_projector *proj, ngpt_tensor *out, const ngpt_tensor *features, const char *fn)
{
    if (!proj || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "%s: projector or out is NULL", fn);
    NX_HOLD_DEVICE(proj->ctx);
    memset(out, 0, sizeof *out);
    nx_tensor x = {0}, y = {0};
    NX_TRY(upload_features(proj, &x, features, fn));
    int64_t ne[2] = {x.ne[0], nx_projector_llm_hidden(proj->p)};
    ngpt_status s = nx_tensor_alloc(&y, proj->ctx->be, NGPT_DTYPE_F32, 2, ne);
    if (s == NGPT_OK) s = nx_projector_input_forward(proj->p, &y, &x);
    if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    nx_tensor_free(&x);
    nx_tensor_free(&y);
    return s;
}

NGPT_API ngpt_status ngpt_projector_input(ngpt_projector *proj, ngpt_tensor *out, const ngpt_tensor *features)
{
    return project_input(proj, out, features, "ngpt_projector_input");
}

NGPT_API ngpt_status ngpt_projector_input_sum(ngpt_projector *proj, ngpt_tensor *out, const ngpt_tensor *features)
{
    if (!proj || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_input_sum: projector or out is NULL");
    memset(out, 0, sizeof *out);
    ngpt_tensor each = {0};
    NX_TRY(project_input(proj, &each, features, "ngpt_projector_input_sum"));
    int64_t n = each.shape[0], h = each.shape[1];
    if (n < 1) {
        ngpt_tensor_free(&each);
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_projector_input_sum: features: no items (n = 0)");
    }
    int64_t ne[2] = {1, h};
    ngpt_status s = nx_api_tensor_new(out, NGPT_DTYPE_F32, 2, ne);
    if (s == NGPT_OK) {
        /* torch.cat(features).sum(dim=0): items added in order, in float32 */
        float *dst = out->data;
        const float *src = each.data;
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < h; j++) dst[j] += src[i * h + j];
    }
    ngpt_tensor_free(&each);
    return s;
}

/* Upload a [B, n_in, llm_hidden] caller tensor. */
static ngpt_status upload_hidden(ngpt_projector *proj, nx_tensor *x, const ngpt_tensor *t, const char *what,
                                 const nx_textfc_cfg *c, int64_t B)
{
    NX_TRY(nx_api_check_tensor(t, what, 3));
    int64_t want[3] = {B < 0 ? t->shape[0] : B, c->num_input_tokens, c->in_dim};
    if (want[0] < 1)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_projector_output: %s: batch of 0 (at least one row)", what);
    if (t->shape[0] != want[0] || t->shape[1] != want[1] || t->shape[2] != want[2]) {
        char got[160], ws[160];
        nx_shape_str(got, sizeof got, 3, t->shape);
        nx_shape_str(ws, sizeof ws, 3, want);
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "ngpt_projector_output: %s: expected %s, got %s", what, ws, got);
    }
    return nx_api_upload(x, proj->ctx->be, t, NGPT_DTYPE_F32, what);
}

NGPT_API ngpt_status ngpt_projector_output(ngpt_projector *proj, ngpt_tensor *out, ngpt_modality modality,
                                           const ngpt_tensor *hidden, const ngpt_tensor *input_embs)
{
    if (!proj || !out) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_output: projector or out is NULL");
    NX_HOLD_DEVICE(proj->ctx);
    memset(out, 0, sizeof *out);
    int slot = slot_of(modality);
    if (slot < 0) return nx_err(NGPT_ERR_INVALID_ARGUMENT, "ngpt_projector_output: modality %d has no output projector",
                                (int)modality);
    const nx_textfc_cfg *c = nx_projector_out_cfg(proj->p, slot);
    if (!c) return nx_err(NGPT_ERR_UNSUPPORTED, "ngpt_projector_output: the %s output projector is not loaded",
                          nx_modality_name((nx_modality)slot));
    nx_tensor h = {0}, e = {0}, y = {0};
    NX_TRY(upload_hidden(proj, &h, hidden, "hidden", c, -1));
    ngpt_status s = upload_hidden(proj, &e, input_embs, "input_embs", c, hidden->shape[0]);
    int64_t ne[3] = {hidden->shape[0], c->num_output_tokens, c->out_dim};
    if (s == NGPT_OK) s = nx_tensor_alloc(&y, proj->ctx->be, NGPT_DTYPE_F32, 3, ne);
    if (s == NGPT_OK) s = nx_projector_output_forward(proj->p, slot, &y, &h, &e);
    if (s == NGPT_OK) s = nx_api_download(out, &y, NGPT_DTYPE_F32);
    nx_tensor_free(&h);
    nx_tensor_free(&e);
    nx_tensor_free(&y);
    return s;
}

NGPT_API int32_t ngpt_projector_has_input(const ngpt_projector *proj)
{
    return proj && nx_projector_has_input(proj->p) ? 1 : 0;
}
NGPT_API int32_t ngpt_projector_has_output(const ngpt_projector *proj, ngpt_modality modality)
{
    return cfg_of(proj, modality) ? 1 : 0;
}
NGPT_API int32_t ngpt_projector_llm_hidden_size(const ngpt_projector *proj)
{
    return proj ? nx_projector_llm_hidden(proj->p) : 0;
}
NGPT_API int32_t ngpt_projector_input_dim(const ngpt_projector *proj)
{
    return proj ? nx_projector_input_dim(proj->p) : 0;
}
NGPT_API int32_t ngpt_projector_output_dim(const ngpt_projector *proj, ngpt_modality modality)
{
    const nx_textfc_cfg *c = cfg_of(proj, modality);
    return c ? c->out_dim : 0;
}
NGPT_API int32_t ngpt_projector_num_input_tokens(const ngpt_projector *proj, ngpt_modality modality)
{
    const nx_textfc_cfg *c = cfg_of(proj, modality);
    return c ? c->num_input_tokens : 0;
}
NGPT_API int32_t ngpt_projector_num_output_tokens(const ngpt_projector *proj, ngpt_modality modality)
{
    const nx_textfc_cfg *c = cfg_of(proj, modality);
    return c ? c->num_output_tokens : 0;
}
NGPT_API int32_t ngpt_projector_d_model(const ngpt_projector *proj, ngpt_modality modality)
{
    const nx_textfc_cfg *c = cfg_of(proj, modality);
    return c ? c->d_model : 0;
}
NGPT_API int32_t ngpt_projector_nhead(const ngpt_projector *proj, ngpt_modality modality)
{
    const nx_textfc_cfg *c = cfg_of(proj, modality);
    return c ? c->nhead : 0;
}
