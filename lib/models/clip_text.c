/* clip_text.c — CLIPTextModel (transformers 4.29, modeling_clip.py) against the op layer.
 *
 *   x = token_embedding[ids] + position_embedding[0..S)                      [B, S, D]
 *   per layer (pre-LN):
 *     x = x + out_proj(attention(q_proj(ln1(x)), k_proj(.), v_proj(.)))    H heads, scale hd^-0.5,
 *                                                                           causal mask
 *     x = x + fc2(act(fc1(ln2(x))))                                         act = config hidden_act
 *   last_hidden_state = final_layer_norm(x)
 * LayerNorm eps = layer_norm_eps. Attention dropout and the attention_mask are not used (the
 * diffusers pipelines pass none unless config.use_attention_mask). The pooled output and a
 * CLIPTextModelWithProjection's text_projection are not computed.
 */
#include "clip_text.h"

#include "mweights.h"

#include "../core/alloc.h"
#include "../core/json.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define CT_MAX_LAYERS 64

typedef struct ct_config {
    int      vocab_size, hidden, layers, heads, inter, max_pos;
    float    eps;
    nx_unary act;
} ct_config;

typedef struct ct_layer {
    const nx_tensor *ln1_w, *ln1_b;           /* [D] */
    const nx_tensor *q_w, *q_b, *k_w, *k_b;   /* [D, D], [D] */
    const nx_tensor *v_w, *v_b, *o_w, *o_b;   /* [D, D], [D] */
    const nx_tensor *ln2_w, *ln2_b;           /* [D] */
    const nx_tensor *fc1_w, *fc1_b;           /* [I, D], [I] */
    const nx_tensor *fc2_w, *fc2_b;           /* [D, I], [D] */
} ct_layer;

struct nx_clip_text {
    nx_backend *be;
    ct_config   cfg;
    nx_mw       mw;
    const nx_tensor *tok;             /* [V, D] */
    const nx_tensor *pos;             /* [P, D] */
    ct_layer    layer[CT_MAX_LAYERS];
    const nx_tensor *lnf_w, *lnf_b;   /* [D] */
};

static ngpt_status read_config(ct_config *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *j = NULL;
    NX_TRY(nx_json_load_file(&j, path));
    ngpt_status s = NGPT_OK;
    const char *mt = NULL, *act = NULL;
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
    GETI("hidden_size", 512, hidden, 1 << 16)
    GETI("num_hidden_layers", 12, layers, 1 << 16)
    GETI("num_attention_heads", 8, heads, 1 << 12)
    GETI("intermediate_size", 2048, inter, 1 << 18)
    GETI("max_position_embeddings", 77, max_pos, 1 << 16)
#undef GETI
    if (s == NGPT_OK && c->layers > CT_MAX_LAYERS)
        s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: %d layers (at most %d supported)", path, c->layers, CT_MAX_LAYERS);
    if (s == NGPT_OK && c->hidden % c->heads)
        s = nx_err(NGPT_ERR_BAD_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", path, c->hidden,
                   c->heads);
    double eps = 1e-5;
    if (s == NGPT_OK) s = nx_json_num_opt(j, "layer_norm_eps", path, 1e-5, &eps);
    c->eps = (float)eps;
    if (s == NGPT_OK) s = nx_json_str_opt(j, "hidden_act", path, "quick_gelu", &act);
    if (s == NGPT_OK) {
        if (strcmp(act, "quick_gelu") == 0) c->act = NX_UNARY_QUICK_GELU;
        else if (strcmp(act, "gelu") == 0) c->act = NX_UNARY_GELU;
        else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0) c->act = NX_UNARY_GELU_TANH;
        else
            s = nx_err(NGPT_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (quick_gelu, gelu, gelu_new, "
                       "gelu_pytorch_tanh are)", path, act);
    }
    json_decref(j);
    return s;
}


static ngpt_status load_weights(nx_clip_text *m)
{
    const ct_config *c = &m->cfg;
    nx_mw *w = &m->mw;
    int64_t D = c->hidden, I = c->inter;
    NX_TRY(nx_mw_get_fmt(w, &m->tok, c->vocab_size, D, "text_model.embeddings.token_embedding.weight", 0));
    NX_TRY(nx_mw_get_fmt(w, &m->pos, c->max_pos, D, "text_model.embeddings.position_embedding.weight", 0));
    nx_weights_mark_used(w->w, "text_model.embeddings.position_ids");  /* a buffer: arange(P) */
    nx_mw_skip_prefix(w, "text_projection.");                            /* CLIPTextModelWithProjection */
    for (int i = 0; i < c->layers; i++) {
        ct_layer *L = &m->layer[i];
#define P "text_model.encoder.layers.%d."
        NX_TRY(nx_mw_get_fmt(w, &L->ln1_w, D, 0, P "layer_norm1.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->ln1_b, D, 0, P "layer_norm1.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->q_w, D, D, P "self_attn.q_proj.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->q_b, D, 0, P "self_attn.q_proj.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->k_w, D, D, P "self_attn.k_proj.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->k_b, D, 0, P "self_attn.k_proj.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->v_w, D, D, P "self_attn.v_proj.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->v_b, D, 0, P "self_attn.v_proj.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->o_w, D, D, P "self_attn.out_proj.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->o_b, D, 0, P "self_attn.out_proj.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->ln2_w, D, 0, P "layer_norm2.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->ln2_b, D, 0, P "layer_norm2.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc1_w, I, D, P "mlp.fc1.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc1_b, I, 0, P "mlp.fc1.bias", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc2_w, D, I, P "mlp.fc2.weight", i));
        NX_TRY(nx_mw_get_fmt(w, &L->fc2_b, D, 0, P "mlp.fc2.bias", i));
#undef P
    }
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

int nx_clip_text_hidden(const nx_clip_text *m) { return m->cfg.hidden; }
ngpt_dtype nx_clip_text_dtype(const nx_clip_text *m) { return m->mw.dt; }
int nx_clip_text_max_positions(const nx_clip_text *m) { return m->cfg.max_pos; }
int nx_clip_text_vocab_size(const nx_clip_text *m) { return m->cfg.vocab_size; }

/* ---- forward ---- */

ngpt_status nx_clip_text_forward(nx_clip_text *m, nx_tensor *out, const int32_t *ids, int64_t B, int64_t S)
{
    const ct_config *c = &m->cfg;
    nx_backend *be = m->be;
    ngpt_dtype dt = out->dtype;  /* the compute dtype (the load's dt) */
    int64_t D = c->hidden, H = c->heads, hd = D / H;
    if (B < 1 || S < 1 || S > c->max_pos)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "text encoder: %lld x %lld tokens (1..%d per sequence)", (long long)B,
                      (long long)S, c->max_pos);
    if (out->rank != 3 || out->ne[0] != B || out->ne[1] != S || out->ne[2] != D)
        return nx_err(NGPT_ERR_SHAPE_MISMATCH, "text encoder: output must be [%lld, %lld, %lld]", (long long)B,
                      (long long)S, (long long)D);
    int32_t *pos_host = nx_malloc((size_t)S * sizeof *pos_host);
    if (!pos_host) return nx_err(NGPT_ERR_OUT_OF_MEMORY, "text encoder: out of memory");
    for (int64_t i = 0; i < S; i++) pos_host[i] = (int32_t)i;

    nx_tensor tid = {0}, pid = {0}, x = {0}, pe = {0}, h = {0}, q = {0}, k = {0}, v = {0}, a = {0}, f = {0};
    int64_t n_tok = B * S;
    int64_t s1[1] = {n_tok}, sp[1] = {S}, sx[3] = {B, S, D}, spe[2] = {S, D}, sf[3] = {B, S, c->inter};
    ngpt_status s = nx_tensor_alloc(&tid, be, NGPT_DTYPE_I32, 1, s1);
    if (s == NGPT_OK) s = nx_tensor_upload(&tid, ids, (size_t)n_tok * sizeof *ids);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pid, be, NGPT_DTYPE_I32, 1, sp);
    if (s == NGPT_OK) s = nx_tensor_upload(&pid, pos_host, (size_t)S * sizeof *pos_host);
    if (s == NGPT_OK) s = nx_tensor_alloc(&x, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&pe, be, dt, 2, spe);
    if (s == NGPT_OK) s = nx_tensor_alloc(&h, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&q, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&k, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&v, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&a, be, dt, 3, sx);
    if (s == NGPT_OK) s = nx_tensor_alloc(&f, be, dt, 3, sf);
    if (s == NGPT_OK) {
        int64_t s2[2] = {n_tok, D};
        nx_tensor x2 = nx_view(dt, 2, s2, x.data, x.be);
        s = nx_op_get_rows(be, &x2, m->tok, &tid);
    }
    if (s == NGPT_OK) s = nx_op_get_rows(be, &pe, m->pos, &pid);
    if (s == NGPT_OK) s = nx_op_binary(be, &x, &x, &pe, NX_BINARY_ADD);
    int64_t s4[4] = {B, S, H, hd};
    float scale = 1.0f / sqrtf((float)hd);
    for (int i = 0; s == NGPT_OK && i < c->layers; i++) {
        const ct_layer *L = &m->layer[i];
        s = nx_op_layer_norm(be, &h, &x, L->ln1_w, L->ln1_b, c->eps);
        if (s == NGPT_OK) s = nx_op_linear(be, &q, &h, L->q_w, L->q_b);
        if (s == NGPT_OK) s = nx_op_linear(be, &k, &h, L->k_w, L->k_b);
        if (s == NGPT_OK) s = nx_op_linear(be, &v, &h, L->v_w, L->v_b);
        if (s == NGPT_OK) {
            nx_tensor q4 = nx_view(dt, 4, s4, q.data, q.be), k4 = nx_view(dt, 4, s4, k.data, k.be);
            nx_tensor v4 = nx_view(dt, 4, s4, v.data, v.be), a4 = nx_view(dt, 4, s4, a.data, a.be);
            s = nx_op_attention(be, &a4, &q4, &k4, &v4, NULL, scale, true);
        }
        if (s == NGPT_OK) s = nx_op_linear(be, &h, &a, L->o_w, L->o_b);
        if (s == NGPT_OK) s = nx_op_binary(be, &x, &x, &h, NX_BINARY_ADD);
        if (s == NGPT_OK) s = nx_op_layer_norm(be, &h, &x, L->ln2_w, L->ln2_b, c->eps);
        if (s == NGPT_OK) s = nx_op_linear(be, &f, &h, L->fc1_w, L->fc1_b);
        if (s == NGPT_OK) s = nx_op_unary(be, &f, &f, c->act, 0.0f);
        if (s == NGPT_OK) s = nx_op_linear(be, &h, &f, L->fc2_w, L->fc2_b);
        if (s == NGPT_OK) s = nx_op_binary(be, &x, &x, &h, NX_BINARY_ADD);
    }
    if (s == NGPT_OK) s = nx_op_layer_norm(be, out, &x, m->lnf_w, m->lnf_b, c->eps);
    nx_tensor *all[] = {&tid, &pid, &x, &pe, &h, &q, &k, &v, &a, &f};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) nx_tensor_free(all[i]);
    nx_free(pos_host);
    return s;
}
