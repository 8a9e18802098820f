/* clip_text.c — CLIPTextModel (transformers 4.29, modeling_clip.py) against the op layer.
 *
 *   x = token_embedding[ids] + position_embedding[0..S)                      [B, S, D]
 *   x = CLIPEncoder(x) with the causal mask (clip_encoder.h: pre-LN layers)
 *   last_hidden_state = final_layer_norm(x)
 * LayerNorm eps = layer_norm_eps. Attention dropout and the attention_mask are not used (the
 * diffusers pipelines pass none unless config.use_attention_mask). The pooled output and a
 * CLIPTextModelWithProjection's text_projection are not computed.
 */
#include "clip_text.h"

#include "clip_encoder.h"

#include "../core/alloc.h"
#include "../core/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct ct_config {
    int vocab_size, max_pos;
    nx_clip_enc_config enc;
} ct_config;

struct nx_clip_text {
    nx_backend *be;
    ct_config   cfg;
    nx_mw       mw;
    const nx_tensor *tok;             /* [V, D] */
    const nx_tensor *pos;             /* [P, D] */
    nx_clip_enc enc;
    const nx_tensor *lnf_w, *lnf_b;   /* [D] */
};

static ngpt_status read_config(ct_config *c, const char *dir)
{
    /* CLIPTextConfig's defaults */
    static const nx_clip_enc_config def = {.hidden = 512, .layers = 12, .heads = 8, .inter = 2048, .eps = 1e-5f,
                                           .act = NX_UNARY_QUICK_GELU};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    ngpt_status s = NGPT_OK;
    const char *mt = NULL;
    s = nx_json_str_opt(j, "model_type", path, "clip_text_model", &mt);
    if (s == NGPT_OK && strcmp(mt, "clip_text_model") != 0)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: 'model_type' is '%s' (only CLIPTextModel's 'clip_text_model' is supported)",
                   path, mt);
    int64_t v = 0;
#define GETI(key, def, field, hi)                                                         \
    if (s == NGPT_OK) s = nx_json_int_opt(j, key, path, def, &v);                         \
    if (s == NGPT_OK && (v < 1 || v > (hi)))                                              \
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: '%s' is %lld", path, key, (long long)v);     \
    if (s == NGPT_OK) c->field = (int)v;
    GETI("vocab_size", 49408, vocab_size, 1 << 24)
    GETI("max_position_embeddings", 77, max_pos, 1 << 16)
#undef GETI
    if (s == NGPT_OK) s = nx_clip_enc_read_config(&c->enc, j, path, &def);
    json_decref(j);
    return s;
}


static ngpt_status load_weights(nx_clip_text *m)
{
    const ct_config *c = &m->cfg;
    nx_mw *w = &m->mw;
    int64_t D = c->enc.hidden;
    NX_TRY(nx_mw_get_fmt(w, &m->tok, c->vocab_size, D, "text_model.embeddings.token_embedding.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->pos, c->max_pos, D, "text_model.embeddings.position_embedding.weight", 0));
    nx_weights_mark_used(w->w, "text_model.embeddings.position_ids");  /* a buffer: arange(P) */
    nx_mw_skip_prefix(w, "text_projection.");                            /* CLIPTextModelWithProjection */
    m->enc.cfg = c->enc;
    NX_TRY(nx_clip_enc_load(&m->enc, w, "text_model.encoder.layers."));
    NX_TRY(nx_mw_get_fmt(w, &m->lnf_w, D, 0, "text_model.final_layer_norm.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->lnf_b, D, 0, "text_model.final_layer_norm.bias", 0));
    return nx_mw_check_unused(w);
}

ngpt_status nx_clip_text_load(nx_clip_text **out, nx_backend *be, const char *dir, ngpt_dtype dt)
{
    *out = NULL;
    nx_clip_text *m = nx_calloc(1, sizeof *m);
    if (!m) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "%s: out of memory", dir);
    m->be = be;
    ngpt_status s = read_config(&m->cfg, dir);
    static const char *const files[] = {"model.safetensors", "pytorch_model.bin", NULL};
    if (s == NGPT_OK) s = nx_mw_open(&m->mw, be, dir, files);
    m->mw.dt = dt;
    if (s == NGPT_OK) s = load_weights(m);
    if (s != NGPT_OK) {
        nx_clip_text_free(m);
        return s;
    }
    *out = m;
    return NGPT_OK;
}

void nx_clip_text_free(nx_clip_text *m)
{
    if (!m) return;
    nx_mw_close(&m->mw);
    nx_free(m);
}

int nx_clip_text_hidden(const nx_clip_text *m) { return m->cfg.enc.hidden; }
ngpt_dtype nx_clip_text_dtype(const nx_clip_text *m) { return m->mw.dt; }
int nx_clip_text_max_positions(const nx_clip_text *m) { return m->cfg.max_pos; }
int nx_clip_text_vocab_size(const nx_clip_text *m) { return m->cfg.vocab_size; }

/* ---- forward ---- */

ngpt_status nx_clip_text_forward(nx_clip_text *m, nx_tensor *out, const int32_t *ids, int64_t B, int64_t S)
{
    const ct_config *c = &m->cfg;
    nx_backend *be = m->be;
    ngpt_dtype dt = out->dtype;  /* the compute dtype (the load's dt) */
    int64_t D = c->enc.hidden;
    if (B < 1 || S < 1 || S > c->max_pos)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "text encoder: %lld x %lld tokens (1..%d per sequence)", (long long)B,
                      (long long)S, c->max_pos);
    if (out->rank != 3 || out->ne[0] != B || out->ne[1] != S || out->ne[2] != D)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "text encoder: output must be [%lld, %lld, %lld]", (long long)B,
                      (long long)S, (long long)D);
    int32_t *pos_host = nx_malloc((size_t)S * sizeof *pos_host);
    if (!pos_host) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "text encoder: out of memory");
    for (int64_t i = 0; i < S; i++) pos_host[i] = (int32_t)i;

    nx_tensor tid = {0}, pid = {0}, x = {0}, pe = {0};
    int64_t n_tok = B * S;
    int64_t s1[1] = {n_tok}, sp[1] = {S}, sx[3] = {B, S, D}, spe[2] = {S, D};
    ngpt_status s = nx_tensor_alloc(&tid, be, NGPT_DTYPE_I32, 1, s1);
    if (s == NGPT_OK) s = nx_tensor_upload(&tid, ids, (size_t)n_tok * sizeof *ids);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pid, be, NGPT_DTYPE_I32, 1, sp);
    if (s == NGPT_OK) s = nx_tensor_upload(&pid, pos_host, (size_t)S * sizeof *pos_host);
    if (s == NGPT_OK) s = nx_tensor_alloc(&x, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pe, be, dt, 2, spe);
    if (s == NGPT_OK) {
        int64_t s2[2] = {n_tok, D};
        nx_tensor x2 = nx_view(dt, 2, s2, x.data, x.be);
        s = nx_op_get_rows(be, &x2, m->tok, &tid);
    }
    if (s == NGPT_OK) s = nx_op_get_rows(be, &pe, m->pos, &pid);
    if (s == NGPT_OK) s = nx_op_binary(be, &x, &x, &pe, NX_BINARY_ADD);
    if (s == NGPT_OK) s = nx_clip_enc_forward(&m->enc, be, &x, true);
    if (s == NGPT_OK) s = nx_op_layer_norm(be, out, &x, m->lnf_w, m->lnf_b, c->enc.eps);
    nx_tensor *all[] = {&tid, &pid, &x, &pe};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nx_tensor_free(all[i]);
    nx_free(pos_host);
    return s;
}
